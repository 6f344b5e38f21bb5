"""Operators for the engine itself: set up its Python environment, check what it sees, cancel its jobs."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import engine, engine_setup, jobs, paths, preferences, runner, torch_builds
from .ops_base import EdnOperator, OpError


class EDN_OT_setup_engine(EdnOperator, bpy.types.Operator):
    """Create the engine's own Python environment (Python 3.11 or 3.12, never Blender's) and install PyTorch and
    MediaPipe into it, in the background"""

    bl_idname = "edn.setup_engine"
    bl_label = "Set up Engine"

    venv_dir: StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE"},
                             description="Environment folder (empty: preferences / extension folder)")
    base_python: StringProperty(name="Base Python", subtype="FILE_PATH", options={"SKIP_SAVE"},
                                description="Python that creates the environment (empty: preferences)")
    torch_build: EnumProperty(name="PyTorch Build", options={"SKIP_SAVE"},
                              items=(("PREFS", "Preferences", "The build chosen in the preferences"),
                                     *preferences.TORCH_BUILDS))

    @classmethod
    def poll(cls, context):
        if jobs.MANAGER.active(lane=jobs.SETUP):
            cls.poll_message_set("The engine is being set up already")
            return False
        return True

    def run(self, context):
        prefs = preferences.get(context)
        picked = bpy.path.abspath(self.base_python) if self.base_python else prefs.setup_base_python()
        venv = paths.abspath(self.venv_dir) if self.venv_dir else prefs.venv_path()
        if engine.is_blenders_python(engine.venv_python(venv)):
            raise OpError("the engine environment may not be Blender's own Python; choose another folder")
        build = prefs.torch_build if self.torch_build == "PREFS" else self.torch_build
        try:
            user = paths.user_dir()  # set-up logs, uv and a provisioned Python live here
        except OSError as exc:
            raise OpError(f"cannot create the extension's folder ({exc.strerror or exc}): Blender's user folder "
                          f"is read-only; make it writable, or choose Existing Python") from None
        try:
            setup = engine_setup.plan(venv, picked, build, prefs.torch_index, user, engine.REQUIREMENTS_DIR)
        except engine_setup.SetupRefused as exc:
            prefs.offer_cpu = exc.offer_cpu
            prefs.check_report = f"Set-up refused: {exc}"
            raise OpError(str(exc)) from None
        prefs.offer_cpu = False
        if setup.how != "reuse" and not bpy.app.online_access:
            why = ("Set up engine downloads PyTorch and MediaPipe, but Blender's online access is off: allow it in "
                   "Preferences > System > Network (Allow Online Access), or choose Existing Python with the engine's "
                   "requirements installed")
            prefs.check_report = f"Set-up refused: {why}"
            raise OpError(why)
        custom_dir = bool(self.venv_dir)

        def report(job: jobs.Job) -> None:
            engine_setup.finish(setup, job.state == jobs.DONE)
            p = preferences.get()
            if job.state != jobs.DONE:
                p.check_report = f"Set-up {job.state.lower()}: {job.error or job.status}"
                return
            p.engine_mode = "VENV"
            if custom_dir:
                p.venv_dir = str(venv)
            p.check_report = (f"Engine environment ready: {venv} ({setup.python_text}, PyTorch {setup.build.label})"
                              "\nPress Check Engine to see the device it will use")

        job = runner.submit("setup", "Set up engine", [s.argv for s in setup.steps], user / "logs", lane=jobs.SETUP,
                            env=setup.env, cwd=user, on_end=[report], step_labels=[s.label for s in setup.steps],
                            explain=setup.explain)
        note = f" ({setup.note})" if setup.note else ""
        return f"Setting up the engine in {venv}{note} (log: {job.log_path})"


class EDN_OT_check_engine(EdnOperator, bpy.types.Operator):
    """Ask the engine what it sees: Python, PyTorch version, the device it will use (name and memory)"""

    bl_idname = "edn.check_engine"
    bl_label = "Check Engine"

    def run(self, context):
        prefs = preferences.get(context)
        python = prefs.python()
        why = jobs.python_executable_ok(python)
        if why:
            prefs.check_report = why
            raise OpError(why)
        gpus = torch_builds.nvidia_gpus() if prefs.device in ("AUTO", "CUDA") else []

        def report(job: jobs.Job) -> None:
            p = preferences.get()
            if job.state != jobs.DONE:
                p.check_report = f"Engine check failed: {job.error or job.status}"
                return
            p.check_report = check_report(job.result, gpus)

        runner.submit("check", "Check engine", [engine.info(python)], paths.user_dir() / "logs", lane=jobs.CHECK,
                      env=engine.engine_env(prefs.device), cwd=engine.VENDOR_DIR, on_end=[report])
        return "Checking the engine"


def check_report(r: dict, gpus: list[str]) -> str:
    """What `edn info` said, for the preferences: the device (name, memory), versions, and a warning when the
    driver sees a GPU the engine does not use."""
    memory = [f"{r[k]} GB {w}" for k, w in (("total_memory_gb", "total"), ("free_memory_gb", "free")) if k in r]
    lines = [f"Device: {str(r.get('device', '?')).upper()}, {r.get('device_name') or 'unknown'}"
             + (f" ({', '.join(memory)})" if memory else ""),
             f"PyTorch {r.get('torch')}, MediaPipe {r.get('mediapipe') or 'missing'}, "
             f"Python {r.get('python_version', '')} ({r.get('python')})"]
    warning = torch_builds.gpu_unused_warning(gpus, str(r.get("device", "")), str(r.get("torch", "")))
    return "\n".join(lines + ([warning] if warning else []))


class EDN_OT_cancel_job(EdnOperator, bpy.types.Operator):
    """Stop an engine job (training saves a checkpoint first)"""

    bl_idname = "edn.cancel_job"
    bl_label = "Cancel"

    job_id: IntProperty(name="Job", default=0, description="Job to stop (0: every running job)")

    @classmethod
    def poll(cls, context):
        if not jobs.MANAGER.active():
            cls.poll_message_set("No engine job is running")
            return False
        return True

    def run(self, context):
        active = jobs.MANAGER.active()
        targets = active if not self.job_id else [j for j in active if j.id == self.job_id]
        if not targets:
            raise OpError(f"there is no running job {self.job_id}")
        for job in targets:
            jobs.cancel(job)
        return f"Stopping {', '.join(j.label for j in targets)}"


CLASSES = (EDN_OT_setup_engine, EDN_OT_check_engine, EDN_OT_cancel_job)
