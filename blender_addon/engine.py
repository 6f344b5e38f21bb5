"""Building engine commands: `[python, "-m", "edn_engine", verb..., "--json"]` run on the bundled engine.

The engine package ships inside the extension (`vendor/edn_engine`, put there by `scripts/build_extension.py`);
PYTHONPATH points the engine's Python at that copy, so the add-on and the engine it drives are always the same
version, and the engine's environment needs only third-party requirements. No bpy here: tests build commands
without Blender's UI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
VENDOR_DIR = ADDON_DIR / "vendor"  # holds edn_engine/
REQUIREMENTS_DIR = ADDON_DIR / "requirements"
DEVICES = ("AUTO", "CUDA", "CPU", "MPS")


def engine_env(device: str = "AUTO") -> dict[str, str]:
    """The engine's environment: our bundled package first, unbuffered UTF-8 output, the chosen device."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(VENDOR_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONNOUSERSITE"] = "1"
    env["EDN_DEVICE"] = device.lower()
    # no threading policy here: the engine sets its own per command (edn_engine.threads), the user's still wins
    return env


def engine_command(python: str, *args: str | os.PathLike) -> list[str]:
    """One engine call as an argument list (never a shell string: paths may hold spaces and any characters)."""
    return [str(python), "-m", "edn_engine", *(str(a) for a in args), "--json"]


def venv_python(venv_dir: str | os.PathLike) -> Path:
    venv_dir = Path(venv_dir)
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_blenders_python(python: str | os.PathLike) -> bool:
    """True for the Python running Blender itself: we never install packages into it."""
    try:
        return Path(python).resolve() == Path(sys.executable).resolve() and Path(sys.prefix) == Path(sys.base_prefix)
    except OSError:
        return False


# The verbs the add-on calls (a contract with edn_engine.commands.*).
def pose_extract(python: str, media: Path, out: Path, start: int | None, end: int | None,
                 mattes: Path | None = None) -> list[str]:
    args: list = ["pose", "extract", media, "-o", out]
    if mattes is not None:
        args += ["--mattes", mattes]  # the target's person masks, for training the alpha channel
    if start is not None:
        args += ["--start", start]
    if end is not None:
        args += ["--end", end]
    return engine_command(python, *args)


def pose_drive(python: str, source: Path, target: Path, out: Path, params: Path) -> list[str]:
    """The source motion cleaned and normalized to the target: the engine's own chain, as `edn transfer` runs it."""
    return engine_command(python, "pose", "drive", source, "--target", target, "-o", out, "--params", params)


def render(python: str, track: Path, out_dir: Path, width: int, height: int, style: str = "edn") -> list[str]:
    return engine_command(python, "render", track, "-o", out_dir, "--size", f"{width}x{height}", "--style", style)


def dataset_build(python: str, media: Path, out_dir: Path, width: int, height: int, track: Path | None = None,
                  start: int | None = None, end: int | None = None, mattes: Path | None = None) -> list[str]:
    args: list = ["dataset", "build", media, "-o", out_dir, "--size", f"{width}x{height}"]
    if track is not None:
        args += ["--track", track]  # reuse the extracted target pose instead of detecting it again
    if mattes is not None:
        args += ["--mattes", mattes]
    if start is not None:
        args += ["--start", start]
    if end is not None:
        args += ["--end", end]
    return engine_command(python, *args)


def train(python: str, dataset: Path, run_dir: Path, profile: str, minutes: float = 0.0, steps: int = 0,
          resume: bool = False, device: str = "AUTO", perceptual: str | None = None) -> list[str]:
    """`perceptual` None leaves the loss to the profile (the cpu profile trains without VGG19)."""
    args: list = ["train", dataset, "-o", run_dir, "--profile", profile, "--device", device.lower()]
    if perceptual is not None:
        args += ["--perceptual", perceptual]
    if steps > 0:
        args += ["--steps", steps]
    elif minutes > 0:
        args += ["--minutes", f"{minutes:g}"]
    if resume:
        args.append("--resume")
    return engine_command(python, *args)


def generate(python: str, run_dir: Path, track: Path, out_dir: Path, device: str = "AUTO",
             hands: str = "training") -> list[str]:
    return engine_command(python, "generate", run_dir, track, "-o", out_dir, "--device", device.lower(),
                          "--hands", hands)


def transfer(python: str, source: Path, run_dir: Path, out_dir: Path, hands: str = "training") -> list[str]:
    """Drive a trained run with a source motion: the engine cleans, normalizes, generates and previews, reusing
    every stage of `out_dir` whose inputs did not change."""
    return engine_command(python, "transfer", "--source", source, "--run", run_dir, "-o", out_dir, "--hands", hands)


def info(python: str) -> list[str]:
    return engine_command(python, "info")
