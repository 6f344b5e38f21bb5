#!/usr/bin/env python
"""Build the installable Blender extension zip and check it with Blender's own extension validator.

The zip holds the add-on (blender_addon/) at its root, the engine package under vendor/edn_engine/ (the add-on
puts vendor/ on the engine's PYTHONPATH, so add-on and engine are always the same version) and the requirements
files that "Set up engine" installs. Blender's validator (`bl_pkg/cli/blender_ext.py`, shipped inside the bpy
wheel) builds the zip from a staging folder and then validates the result, as CI does.

    python scripts/build_extension.py [-o dist/edn-0.1.0.zip] [--blender-ext PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def find_blender_ext() -> Path:
    """Blender's extension command-line tool, inside the installed bpy module (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        raise SystemExit("build_extension: the bpy module is not installed here; pass --blender-ext PATH")
    hits = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise SystemExit(f"build_extension: no bl_pkg/cli/blender_ext.py under {Path(spec.origin).parent}")
    return hits[-1]


def stage(dest: Path) -> None:
    """Lay out the extension's files in `dest`."""
    shutil.copytree(REPO / "blender_addon", dest, ignore=IGNORE, dirs_exist_ok=True)
    shutil.copy2(REPO / "blender_manifest.toml", dest / "blender_manifest.toml")
    vendor = dest / "vendor"
    shutil.copytree(REPO / "edn_engine", vendor / "edn_engine", ignore=IGNORE)
    (vendor / "__init__.py").write_text('"""The bundled engine package (run by the engine Python; the add-on imports '
                                        'only its numpy-only modules, see bundled.py)."""\n', encoding="utf-8")
    (dest / "requirements").mkdir(exist_ok=True)
    for name in ("engine.txt", "mediapipe.txt"):
        shutil.copy2(REPO / "requirements" / name, dest / "requirements" / name)


def run_tool(python: str, tool: Path, *args: str) -> None:
    cmd = [python, str(tool), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"build_extension: {' '.join(cmd[1:3])} failed (exit {result.returncode})")


def build(output: Path | None = None, blender_ext: Path | None = None) -> Path:
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text(encoding="utf-8"))
    output = (output or REPO / "dist" / f"{manifest['id']}-{manifest['version']}.zip").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    tool = blender_ext or find_blender_ext()
    with tempfile.TemporaryDirectory(prefix="edn-ext-") as tmp:
        src = Path(tmp) / manifest["id"]
        stage(src)
        partial = output.with_name(output.name + ".part")
        run_tool(sys.executable, tool, "build", "--source-dir", str(src), "--output-filepath", str(partial))
        run_tool(sys.executable, tool, "validate", str(partial))
        partial.replace(output)  # atomic: a failed build never leaves a zip that looks good
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=None, help="zip to write (default: dist/edn-VERSION.zip)")
    ap.add_argument("--blender-ext", type=Path, default=None, help="path to bl_pkg/cli/blender_ext.py")
    args = ap.parse_args(argv)
    print(build(args.output, args.blender_ext))
    return 0


if __name__ == "__main__":
    sys.exit(main())
