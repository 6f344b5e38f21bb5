"""Running engine jobs from Blender: queue them, tick them from a timer, and bring their results back to a scene.

`jobs.py` runs the processes without knowing Blender; this module is its Blender side. `submit` queues a job in
a lane and starts the UI timer; `tick` (the timer) polls every job and redraws the panels. Results go back to
the scene that asked for them through `for_scene` callbacks, which find the scene again by its session id: the
Python object may be stale by then, and if another .blend was opened meanwhile nothing is written into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import bpy

from . import engine, jobs, paths, preferences
from .ops_base import OpError

TIMER_INTERVAL = 0.25
SceneCallback = Callable[["bpy.types.Scene", jobs.Job], None]


def submit(kind: str, label: str, steps: list[list[str]], log_dir: Path, *, lane: str = jobs.ENGINE,
           env: dict[str, str] | None = None, cwd: Path | None = None,
           on_end: Iterable[jobs.EndCallback] = (), step_labels: Iterable[str] = (),
           explain: jobs.Explainer | None = None) -> jobs.Job:
    """Queue a job and make sure the timer runs it; a job that cannot even start is an OpError."""
    job = jobs.Job(label=label, steps=steps, log_path=jobs.new_log_path(log_dir, kind), kind=kind, lane=lane,
                   env=env, cwd=cwd, on_end=list(on_end), step_labels=list(step_labels), explain=explain)
    jobs.MANAGER.submit(job)
    ensure_timer()
    if job.state == jobs.FAILED:
        raise OpError(job.error)
    return job


def submit_engine(context, scene, kind: str, label: str, steps: list[list[str]],
                  on_end: Iterable[jobs.EndCallback] = ()) -> jobs.Job:
    """Queue an engine job for `scene`: logs in its project, the bundled engine on the chosen device, and its
    outcome (log, error, last loss) shown in the panel after the job's own callbacks ran."""
    env = engine.engine_env(preferences.get(context).device)
    return submit(kind, label, steps, paths.logs_dir(scene), env=env, cwd=engine.VENDOR_DIR,
                  on_end=[*on_end, for_scene(scene, _show_outcome)])


def _show_outcome(scene, job: jobs.Job) -> None:
    scene.edn.last_log = str(job.log_path)
    scene.edn.last_error = job.error if job.state == jobs.FAILED else ""
    if job.loss_text:
        scene.edn.last_loss = job.loss_text


def job_scene(uid: int) -> "bpy.types.Scene | None":
    """The scene with this session id (even if renamed), or None if it is gone (another .blend was opened)."""
    return next((sc for sc in bpy.data.scenes if sc.session_uid == uid), None)


def for_scene(scene, fn: SceneCallback, states: tuple[str, ...] = jobs.FINISHED) -> jobs.EndCallback:
    """An end callback that runs `fn(scene, job)` when the job ended in one of `states`, on the scene found again."""
    uid = scene.session_uid

    def callback(job: jobs.Job) -> None:
        if job.state not in states:
            return
        sc = job_scene(uid)
        if sc is None:
            job.status = f"{job.state.lower()}; its .blend was closed (log: {job.log_path})"
            return
        fn(sc, job)
    return callback


def on_success(scene, fn: SceneCallback) -> jobs.EndCallback:
    """`for_scene` for a job that finished its work (results to put in the scene)."""
    return for_scene(scene, fn, (jobs.DONE,))


def tick() -> float | None:
    """The UI's timer: poll the jobs and redraw; stops itself when nothing is running."""
    busy = jobs.MANAGER.poll_all()
    wm = getattr(bpy.context, "window_manager", None)
    for window in (wm.windows if wm else ()):
        for area in window.screen.areas:
            if area.type in ("SEQUENCE_EDITOR", "PREFERENCES"):
                area.tag_redraw()
    return TIMER_INTERVAL if busy else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(tick):  # persistent: jobs go on while another .blend is opened
        bpy.app.timers.register(tick, first_interval=TIMER_INTERVAL, persistent=True)


def stop_timer() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
