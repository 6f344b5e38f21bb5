"""Deciding what "Set up engine" does: reuse a finished environment, or build one with the Python the artist
picked, else one found on the computer, else one provisioned with uv; and explaining a failed step in words.

The operator (ops_engine.py) only turns a `Setup` into a job. No bpy here, so tests plan set-ups for any
computer (`discover`, `gpus`, `system` stand in for this one's).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
from pathlib import Path
from typing import Callable

from . import installer_errors, pythons, setup_plan, torch_builds
from .setup_plan import Step

Discover = Callable[[tuple[Path, ...]], "tuple[pythons.Interpreter | None, list[str]]"]


class SetupRefused(Exception):
    """Set-up cannot start; the message says why and what to do. `offer_cpu`: the CPU build is the way out."""

    def __init__(self, message: str, offer_cpu: bool = False) -> None:
        super().__init__(message)
        self.offer_cpu = offer_cpu


@dataclasses.dataclass
class Setup:
    venv: Path
    how: str  # "reuse", "pip" (a Python found or picked) or "uv" (provisioned)
    steps: list[Step]
    env: dict[str, str]
    stamp: dict  # written into the environment once every step succeeded
    python_text: str
    build: torch_builds.TorchBuild
    note: str = ""  # e.g. "repairing a half-finished environment"

    def explain(self, job, code: int) -> str | None:
        """The failed step in words (a jobs.Explainer): what is missing and what to do."""
        step = self.steps[min(job.step, len(self.steps) - 1)]
        lines = installer_errors.step_output(job.log_path)
        own = job.error or installer_errors.meaningful_line(lines) or f"exit code {code}"
        if step.argv[2:3] == [str(setup_plan.FETCH_UV)] or step.argv[1:3] == ["python", "install"]:
            host = installer_errors.unreachable(lines)
            own = f"{host} cannot be reached: {own}" if host and host not in own else own
            return (f"no {pythons.SUPPORTED_TEXT} was found on this computer, and EDN could not {step.what} ({own}). "
                    f"Either install Python {setup_plan.UV_PYTHON} (python.org, or your package manager) and press "
                    f"Set up engine again, or connect to the internet so EDN can download one")
        if step.argv[-1] == setup_plan.VERIFY:
            if self.how == "reuse":
                return (f"the engine environment {self.venv} no longer works ({own}): press Set up engine again to "
                        f"rebuild it")
            return f"the new engine environment does not work ({own})"
        hint = (", or, if that index is blocked here, empty 'PyTorch Index' in the EDN preferences to take PyPI's "
                "build" if self.build.index_url else "")
        return installer_errors.explain(lines, step.what, self.python_text, hint)


def _uv_version(uv: Path) -> str:
    try:
        out = subprocess.run([str(uv), "--version"], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.split()[1] if out.returncode == 0 and len(out.stdout.split()) > 1 else ""


def default_discover(extra_dirs: tuple[Path, ...]) -> tuple[pythons.Interpreter | None, list[str]]:
    return pythons.find_compatible(pythons.candidates(extra_dirs=extra_dirs))


def plan(venv: Path, picked: str, build_choice: str, torch_index: str, user_dir: Path, requirements_dir: Path, *,
         discover: Discover = default_discover, gpus: list[str] | None = None, system: str | None = None,
         machine: str | None = None) -> Setup:
    """What Set up engine will do, or SetupRefused (impossible build, bad Python, bad folder) before anything runs."""
    if gpus is None:
        gpus = torch_builds.nvidia_gpus() if build_choice in ("AUTO", "CUDA") else []
    try:
        build = torch_builds.resolve(build_choice, system or platform.system(), machine or platform.machine(), gpus,
                                     torch_index)
    except torch_builds.BuildError as exc:
        raise SetupRefused(str(exc), offer_cpu=exc.offer_cpu) from None
    pins = setup_plan.read_pins(requirements_dir)
    wanted = setup_plan.wanted_stamp(pins, build)
    interp = None
    if picked:
        try:
            interp = pythons.chosen(picked)
        except pythons.PythonRefused as exc:
            raise SetupRefused(f"cannot use the Base Python: {exc}") from None
        if pythons.same_folder(interp.prefix, venv):
            raise SetupRefused(f"cannot use the Base Python: {interp.label} lives in the environment being set up "
                               f"({venv}); pick a Python installed elsewhere, or leave Base Python empty")
    why = setup_plan.folder_problem(venv)  # last: it creates the folder
    if why:
        raise SetupRefused(why)
    stamp = setup_plan.read_stamp(venv) or {}
    if setup_plan.is_ready(venv, wanted) and (interp is None or stamp.get("base") == interp.path):
        return Setup(venv, "reuse", [setup_plan.verify_step(setup_plan.venv_python(venv))], setup_plan.setup_env(),
                     stamp, f"Python {stamp.get('python', '')}".strip(), build, "reusing the finished environment")
    state = setup_plan.folder_state(venv)
    note = {"partial": "repairing a half-finished environment", "ready": "rebuilding an out-of-date environment"}
    python_dir = user_dir / "python"
    passed_over: list[str] = []
    if interp is None:
        interp, passed_over = discover((python_dir,))
    if interp is not None:
        text = f"Python {'.'.join(map(str, interp.version))}"
        return Setup(venv, "pip", setup_plan.pip_plan(interp.path, text, venv, build, pins), setup_plan.setup_env(),
                     {**wanted, "base": interp.path, "python": ".".join(map(str, interp.version))}, text, build,
                     note.get(state, ""))
    uv = user_dir / "uv" / ("uv.exe" if os.name == "nt" else "uv")
    fetch = _uv_version(uv) != setup_plan.UV_VERSION
    text = f"Python {setup_plan.UV_PYTHON}"
    return Setup(venv, "uv", setup_plan.uv_plan(uv, fetch, venv, build, pins), setup_plan.uv_env(python_dir),
                 {**wanted, "base": "uv", "python": setup_plan.UV_PYTHON}, text, build,
                 note.get(state, f"no {pythons.SUPPORTED_TEXT} found on this computer{_why_not(passed_over)}: "
                                 f"downloading one with uv"))


def _why_not(passed_over: list[str]) -> str:
    """The first reasons found Pythons were passed over, e.g. a 3.11 without its venv module."""
    relevant = [w for w in passed_over if "does not exist" not in w][:2]
    return f" ({'; '.join(relevant)})" if relevant else ""


def finish(setup: Setup, succeeded: bool) -> None:
    """After the job: stamp a built environment as finished; a reused one that failed its check is un-stamped so
    the next set-up rebuilds it."""
    if setup.how != "reuse" and succeeded:
        setup_plan.write_stamp(setup.venv, setup.stamp)
    elif setup.how == "reuse" and not succeeded:
        setup_plan.forget_stamp(setup.venv)
