"""Choosing the Python that runs the engine: probe an interpreter, refuse the wrong ones by name, find one installed.

The engine runs in its own process, so its Python need not be Blender's: Blender 5.1+ ships Python 3.13, for
which MediaPipe 0.10.21 (the last release with the Holistic models) and the pinned numpy have no wheels. The
engine's pins have binary wheels for Python 3.11 and 3.12 only, so set-up looks for one of those (3.11 first:
CI runs the engine on it) and never uses Blender's own Python. No bpy here: tests call this without Blender's UI.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

SUPPORTED = ((3, 11), (3, 12))  # in order of preference
SUPPORTED_TEXT = "Python 3.11 or 3.12"
PROBE_TIMEOUT_S = 20.0
_PROBE = (
    "import importlib.util as u, json, struct, sys, sysconfig; print(json.dumps({'executable': sys.executable, "
    "'version': list(sys.version_info[:3]), 'prefix': sys.prefix, 'base_prefix': sys.base_prefix, "
    "'bits': struct.calcsize('P') * 8, 'platform': sysconfig.get_platform(), "
    "'venv': all(u.find_spec(m) is not None for m in ('venv', 'ensurepip'))}))"
)


class PythonRefused(Exception):
    """An interpreter that cannot run the engine; the message names it and says what to do."""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """What an interpreter reported about itself (`path` is its real executable, not a launcher or shim)."""

    path: str
    version: tuple[int, int, int]
    prefix: str
    base_prefix: str
    bits: int = 64
    platform: str = ""
    has_venv: bool = True

    @property
    def label(self) -> str:
        return f"Python {'.'.join(map(str, self.version))} ({self.path})"


def probe(command: list[str] | str, timeout: float = PROBE_TIMEOUT_S) -> Interpreter:
    """Ask an interpreter (a path, or a launcher command such as ["py", "-3.12"]) what it is."""
    argv = [command] if isinstance(command, str) else list(command)
    name = " ".join(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    try:
        out = subprocess.run([*argv, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, env=env)
    except FileNotFoundError:
        raise PythonRefused(f"{name} does not exist") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PythonRefused(f"{name} cannot be run ({exc})") from None
    try:
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        why = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        raise PythonRefused(f"{name} is not a working Python ({why})") from None
    return Interpreter(path=info["executable"], version=tuple(info["version"]), prefix=info["prefix"],
                       base_prefix=info["base_prefix"], bits=info["bits"], platform=info["platform"],
                       has_venv=info["venv"])


def same_folder(a: str | Path, b: str | Path) -> bool:
    """The same folder, links resolved."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def problem(interp: Interpreter, blender_executable: str = sys.executable,
            blender_prefix: str = sys.prefix) -> str | None:
    """Why this interpreter cannot host the engine's environment, or None if it can.

    Blender's own Python is the one running Blender (its executable or its environment, `blender_prefix`) and any
    virtual environment made from it. Executables are compared unresolved: a venv's python is a link to its base.
    """
    own = (os.path.normcase(os.path.abspath(interp.path)) == os.path.normcase(os.path.abspath(blender_executable))
           or same_folder(interp.prefix, blender_prefix) or same_folder(interp.base_prefix, blender_prefix))
    if own:
        return (f"{interp.label} is Blender's own Python: EDN never installs packages into it. Choose a separately "
                f"installed {SUPPORTED_TEXT}, or leave Base Python empty to find or download one")
    if tuple(interp.version[:2]) not in SUPPORTED:
        age = "too new" if tuple(interp.version[:2]) > SUPPORTED[-1] else "too old"
        return (f"{interp.label} is {age}: the engine needs {SUPPORTED_TEXT} (its pinned packages, MediaPipe "
                f"0.10.21 among them, have binary wheels only for those). Choose another, or leave Base Python "
                f"empty to find or download one")
    if interp.bits != 64:
        return f"{interp.label} is a {interp.bits}-bit Python: PyTorch needs a 64-bit {SUPPORTED_TEXT}"
    if not interp.has_venv:
        return (f"{interp.label} cannot create virtual environments (no 'venv'/'ensurepip' module; on Debian or "
                f"Ubuntu: sudo apt install python3.{interp.version[1]}-venv)")
    return None


def candidates(env: Mapping[str, str] | None = None, platform: str = sys.platform,
               extra_dirs: tuple[Path, ...] = ()) -> list[list[str]]:
    """Commands that may start a supported Python, best first: PATH, the Windows `py` launcher, the usual install
    folders (python.org, Homebrew, the system's, pyenv's and uv's), and `extra_dirs` (Pythons set-up provisioned)."""
    env = os.environ if env is None else env
    path = env.get("PATH", "")
    home = Path(env.get("USERPROFILE" if platform == "win32" else "HOME", str(Path.home())))
    found: list[list[str]] = []
    for major, minor in SUPPORTED:
        ver = f"{major}.{minor}"
        if platform == "win32":
            hit = shutil.which("python", path=path)
            found += [[hit]] if hit else []
            launcher = shutil.which("py", path=path)
            found += [[launcher, f"-{ver}"]] if launcher else []
        else:
            hit = shutil.which(f"python{ver}", path=path)
            found += [[hit]] if hit else []
        found += [[p] for p in _usual_locations(ver, env, platform, home, extra_dirs)]
    seen: set[str] = set()
    unique = []
    for cmd in found:
        key = " ".join(cmd)
        if key not in seen:
            seen.add(key)
            unique.append(cmd)
    return unique


def _usual_locations(ver: str, env: Mapping[str, str], platform: str, home: Path,
                     extra_dirs: tuple[Path, ...]) -> list[str]:
    nodot = ver.replace(".", "")
    pyenv = Path(env.get("PYENV_ROOT", str(home / ".pyenv")))
    if platform == "win32":
        local = Path(env.get("LOCALAPPDATA", str(home / "AppData" / "Local")))
        programs = Path(env.get("ProgramFiles", "C:\\Program Files"))
        patterns = [str(local / "Programs" / "Python" / f"Python{nodot}" / "python.exe"),
                    str(programs / f"Python{nodot}" / "python.exe"), f"C:\\Python{nodot}\\python.exe",
                    str(pyenv / "pyenv-win" / "versions" / f"{ver}*" / "python.exe"),
                    str(local / "uv" / "python" / f"cpython-{ver}*" / "python.exe")]
        patterns += [str(d / f"cpython-{ver}*" / "python.exe") for d in extra_dirs]
    else:
        exe = f"python{ver}"
        patterns = [f"/Library/Frameworks/Python.framework/Versions/{ver}/bin/{exe}", f"/opt/homebrew/bin/{exe}",
                    f"/usr/local/bin/{exe}", f"/usr/bin/{exe}", str(pyenv / "versions" / f"{ver}*" / "bin" / exe),
                    str(home / ".local" / "share" / "uv" / "python" / f"cpython-{ver}*" / "bin" / exe)]
        patterns += [str(d / f"cpython-{ver}*" / "bin" / exe) for d in extra_dirs]
    hits: list[str] = []
    for pattern in patterns:
        hits += sorted(glob.glob(pattern), reverse=True)  # the newest patch release first
    return [h for h in hits if os.path.isfile(h)]


def find_compatible(commands: list[list[str]]) -> tuple[Interpreter | None, list[str]]:
    """The first command that starts a Python fit for the engine, and why each one before it was passed over."""
    passed_over: list[str] = []
    for cmd in commands:
        try:
            interp = probe(cmd)
        except PythonRefused as exc:
            passed_over.append(str(exc))
            continue
        why = problem(interp)
        if why is None:
            return interp, passed_over
        passed_over.append(why)
    return None, passed_over


def chosen(path: str) -> Interpreter:
    """The interpreter the artist picked, or PythonRefused saying why it cannot be used."""
    interp = probe(path)
    why = problem(interp)
    if why:
        raise PythonRefused(why)
    return interp
