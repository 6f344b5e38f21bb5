"""The steps of "Set up engine": the engine's own virtual environment, made with a Python found on the computer
(pip) or one provisioned with uv, and how a finished environment is told from a half-finished one.

Every step is an argument list run by a job (progress, cancel, log). Nothing is ever installed into Blender's
Python, and nothing is compiled: every pin is first checked to have a binary wheel for the chosen interpreter (a
dry run, before the downloads), and every install passes --only-binary. The stamp file is written only once every
step succeeded, so an environment without it (an interrupted set-up) is rebuilt, never trusted. No bpy here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from .engine import venv_python
from .torch_builds import TorchBuild

STAMP = "edn-setup.json"
UV_VERSION = "0.13.9"  # uv's wheel on PyPI is about 17 MB
UV_PYTHON = "3.11"  # what uv provisions: the version CI runs the engine on
FETCH_UV = Path(__file__).resolve().parent / "fetch_uv.py"
VERIFY = ("import numpy, cv2, skimage, torch, mediapipe, fpng; "
          "print('engine packages import: torch', torch.__version__, 'numpy', numpy.__version__)")
_DROP_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX", "PIP_REQUIRE_VIRTUALENV")


@dataclasses.dataclass(frozen=True)
class Step:
    label: str  # shown while it runs: "Installing PyTorch (CPU)"
    argv: list[str]
    what: str  # for a failure: "could not <what>"


@dataclasses.dataclass(frozen=True)
class Pins:
    """The engine's pinned requirements, as set-up installs them: PyTorch on its own (its build's index), the rest
    from PyPI, MediaPipe without its declared dependencies (see requirements/mediapipe.txt)."""

    torch: str
    engine: list[str]
    mediapipe: list[str]
    digest: str  # of both files: a changed pin makes an existing environment out of date


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def read_pins(requirements_dir: Path) -> Pins:
    engine_txt, mediapipe_txt = requirements_dir / "engine.txt", requirements_dir / "mediapipe.txt"
    engine = _requirement_lines(engine_txt)
    torch = next((p for p in engine if p.split("=")[0].split("<")[0].split(">")[0].strip() == "torch"), None)
    if torch is None:
        raise ValueError(f"{engine_txt} pins no torch")
    digest = hashlib.sha256(engine_txt.read_bytes() + mediapipe_txt.read_bytes()).hexdigest()
    return Pins(torch, [p for p in engine if p != torch], _requirement_lines(mediapipe_txt), digest)


# ----------------------------------------------------------------------------------------------------------------
# the stamp: written last, so its absence means "not finished"
# ----------------------------------------------------------------------------------------------------------------
def wanted_stamp(pins: Pins, build: TorchBuild) -> dict:
    return {"requirements": pins.digest, "torch_build": build.kind, "torch_index": build.index_url or "PyPI"}


def read_stamp(venv: Path) -> dict | None:
    try:
        data = json.loads((venv / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_ready(venv: Path, wanted: dict) -> bool:
    """A finished environment for exactly these pins and this PyTorch build."""
    stamp = read_stamp(venv)
    return (stamp is not None and all(stamp.get(k) == v for k, v in wanted.items())
            and venv_python(venv).is_file())


def write_stamp(venv: Path, stamp: dict) -> None:
    """Mark the environment finished (atomically: a half-written stamp never passes `is_ready`)."""
    data = {**stamp, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    partial = venv / (STAMP + ".partial")
    partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
    partial.replace(venv / STAMP)


def forget_stamp(venv: Path) -> None:
    try:
        (venv / STAMP).unlink()
    except OSError:
        pass


def folder_state(venv: Path) -> str:
    """"new" (missing or empty), "ready" (stamped), "partial" (an environment without a stamp: an interrupted or
    out-of-date set-up, to be rebuilt) or "foreign" (a folder that holds something else: never cleared)."""
    if not venv.exists():
        return "new"
    if not venv.is_dir():
        return "foreign"
    if not any(venv.iterdir()):
        return "new"
    if not (venv / "pyvenv.cfg").is_file():
        return "foreign"
    return "ready" if read_stamp(venv) is not None else "partial"


def folder_problem(venv: Path) -> str | None:
    """Why set-up cannot build an environment in `venv`, or None. Creates the folder to prove it is writable."""
    if folder_state(venv) == "foreign":
        return (f"{venv} is not empty and holds no Python environment; EDN will not clear it. Choose an empty or "
                f"new Environment Folder in the EDN preferences")
    try:
        venv.mkdir(parents=True, exist_ok=True)
        probe = venv / ".edn-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return (f"the folder {venv} cannot be written ({exc.strerror or exc}): choose an Environment Folder you can "
                f"write to in the EDN preferences")
    return None


def setup_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The installers' environment: the user's own (proxies, pip's mirrors), without Blender's or another venv's
    Python settings."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", **(extra or {}))
    return env


# ----------------------------------------------------------------------------------------------------------------
# the plans
# ----------------------------------------------------------------------------------------------------------------
def _install_steps(install: list[str], check: list[str], pins: Pins, build: TorchBuild, vpy: Path,
                   python_text: str) -> list[Step]:
    """Check every pin for a wheel (a dry run, no download of the packages themselves), then install: PyTorch from
    its build's index, the rest from PyPI, MediaPipe without its declared dependencies."""
    index = ["--index-url", build.index_url] if build.index_url else []
    torch_text = f"PyTorch ({build.label})"
    steps = [Step(f"Checking that every package has a wheel for {python_text}",
                  [*check, "--no-deps", *pins.engine, *pins.mediapipe], f"find wheels for {python_text}")]
    steps.append(Step(f"Checking {torch_text}", [*check, "--no-deps", pins.torch, *index],
                      f"find {torch_text} for {python_text}"))
    steps += [
        Step(f"Installing {torch_text}", [*install, pins.torch, *index], f"install {torch_text}"),
        Step("Installing NumPy, OpenCV, scikit-image and the rest", [*install, *pins.engine],
             "install the engine's packages"),
        Step("Installing MediaPipe", [*install, "--no-deps", *pins.mediapipe], "install MediaPipe"),
        verify_step(vpy),
    ]
    return steps


def verify_step(vpy: Path) -> Step:
    return Step("Checking that the engine's packages import", [str(vpy), "-I", "-c", VERIFY],
                "import the engine's packages in the new environment")


def pip_plan(base_python: str, python_text: str, venv: Path, build: TorchBuild, pins: Pins) -> list[Step]:
    """With a compatible Python found on the computer: `venv`, then its own pip."""
    vpy = venv_python(venv)
    pip = [str(vpy), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    install = [*pip, "install", "--only-binary=:all:"]
    check = [*install, "--dry-run", "--quiet"]
    return [
        Step(f"Creating the environment with {python_text}", [base_python, "-m", "venv", "--clear", str(venv)],
             f"create a virtual environment with {python_text}"),
        Step("Updating pip", [*install, "--quiet", "pip>=24"], "update pip in the new environment"),
        *_install_steps(install, check, pins, build, vpy, python_text),
    ]


def uv_plan(uv: Path, fetch_uv: bool, venv: Path, build: TorchBuild, pins: Pins,
            runner_python: str = sys.executable) -> list[Step]:
    """With no compatible Python: uv (unpacked from its PyPI wheel by `runner_python`, which only runs the download
    script) installs Python 3.11 into the extension's folder (UV_PYTHON_INSTALL_DIR, set by `uv_env`), makes the
    environment and installs into it, much faster than pip."""
    python_text = f"Python {UV_PYTHON}"
    vpy = venv_python(venv)
    steps = []
    if fetch_uv:
        steps.append(Step(f"Downloading uv {UV_VERSION} from PyPI (17 MB)",
                          [runner_python, "-I", str(FETCH_UV), "--version", UV_VERSION, "--dest", str(uv.parent)],
                          f"download uv {UV_VERSION}"))
    install = [str(uv), "pip", "install", "--python", str(vpy), "--only-binary", ":all:"]
    steps += [
        Step(f"Downloading {python_text} with uv (about 30 MB)",
             [str(uv), "python", "install", "--no-bin", "--no-registry", UV_PYTHON], f"download {python_text}"),
        Step(f"Creating the environment with {python_text}",
             [str(uv), "venv", "--clear", "--no-project", "--managed-python", "--python", UV_PYTHON, str(venv)],
             f"create a virtual environment with {python_text}"),
        *_install_steps(install, [*install, "--dry-run"], pins, build, vpy, python_text),
    ]
    return steps


def uv_env(python_dir: Path) -> dict[str, str]:
    return setup_env({"UV_PYTHON_INSTALL_DIR": str(python_dir), "UV_NO_PROGRESS": "1", "NO_COLOR": "1"})
