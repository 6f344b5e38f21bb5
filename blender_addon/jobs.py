"""Background engine jobs: one subprocess per step, a reader thread, and a pure `poll()` that applies events.

Blender must never freeze or crash because of the engine, so the engine always runs in its own process. A reader
thread turns its stdout lines into events on a queue (read with the engine's own `parse_event`); `poll(job)`
(called by the runner's `bpy.app.timers` callback in the UI, and directly by tests and scripts, since the bpy
module has no event loop) drains the queue into the job's state. Nothing here imports bpy: a job's end callbacks
(adding strips, storing paths) run inside `poll`, on the caller's thread, which is Blender's main thread.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .bundled import engine_module

parse_event = engine_module("events").parse_event  # the one reader of the engine's --json protocol

CANCEL_GRACE_S = 60.0  # after SIGTERM the trainer finishes its step and saves a checkpoint; then we kill
_ids = itertools.count(1)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"
FINISHED = (DONE, FAILED, CANCELLED)

# Queue lanes: jobs in one lane run one after another, lanes run side by side. Engine work shares the compute
# device (and the project's files), so it queues in one lane; setting up the engine and checking it must not
# wait behind an hour of training.
ENGINE, SETUP, CHECK = "engine", "setup", "check"
LANES = (ENGINE, SETUP, CHECK)

EndCallback = Callable[["Job"], None]
# Turns a failed step into a message an artist can act on (None: the generic explanation). The set-up job uses one
# to name the package an installer could not install, instead of the installer's last output line.
Explainer = Callable[["Job", int], "str | None"]


@dataclasses.dataclass
class Job:
    """One engine task: a list of commands (steps) run in a row, and what the panel shows about it."""

    label: str
    steps: list[list[str]]
    log_path: Path
    kind: str = "engine"  # what it does ("train", "setup", ...): operators find their jobs by kind, never by label
    lane: str = ENGINE
    env: dict[str, str] | None = None
    cwd: Path | None = None  # engine jobs run in the bundled engine's folder, so `-m edn_engine` finds that copy
    # Called once, in order, when the job ends (done, failed or cancelled: they read `state`), on the thread that
    # polls (Blender's main). One that raises on a DONE job fails it: its result could not be used.
    on_end: list[EndCallback] = dataclasses.field(default_factory=list)
    step_labels: list[str] = dataclasses.field(default_factory=list)  # what each step does, for the panel
    explain: Explainer | None = None
    id: int = dataclasses.field(default_factory=lambda: next(_ids))
    # state, written only by apply_event / poll
    state: str = QUEUED
    step: int = 0
    done: int = 0
    total: int = 0
    stage: str = ""
    status: str = "queued"
    preview_path: str = ""
    error: str = ""
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # last progress extras (loss, eta, ...)
    started_at: float = 0.0  # time.monotonic() of the first step's start
    started_wall: float = 0.0  # time.time() of the same moment: files older than this are from earlier runs
    last_lines: list[str] = dataclasses.field(default_factory=list)
    # process plumbing
    proc: subprocess.Popen | None = dataclasses.field(default=None, repr=False)
    events: "queue.Queue[dict]" = dataclasses.field(default_factory=queue.Queue, repr=False)
    cancel_requested_at: float | None = None
    ended: bool = False  # the end callbacks have run

    def __post_init__(self) -> None:
        if self.lane not in LANES:
            raise ValueError(f"unknown job lane {self.lane!r} (lanes: {', '.join(LANES)})")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def step_label(self) -> str:
        return self.step_labels[self.step] if self.step < len(self.step_labels) else ""

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1] across all steps."""
        n = max(len(self.steps), 1)
        inner = self.done / self.total if self.total else 0.0
        return min(1.0, (self.step + min(inner, 1.0)) / n)

    @property
    def loss_text(self) -> str:
        """The last losses the trainer reported, short enough for one panel line."""
        losses = self.extra.get("losses", self.extra.get("loss"))
        if isinstance(losses, dict):
            return ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}"
                             for k, v in list(losses.items())[:4])
        return "" if losses is None else str(losses)

    @property
    def eta_s(self) -> float | None:
        if self.extra.get("eta_s") is not None:
            try:
                return float(self.extra["eta_s"])
            except (TypeError, ValueError):
                return None
        if self.state != RUNNING or not self.fraction or not self.started_at:
            return None
        elapsed = time.monotonic() - self.started_at
        return elapsed * (1 - self.fraction) / self.fraction


# ----------------------------------------------------------------------------------------------------------------
# events -> state (pure)
# ----------------------------------------------------------------------------------------------------------------
def apply_event(job: Job, event: dict) -> None:
    """Apply one engine event to the job's state. No I/O: this is the heart of what tests check."""
    kind = event.get("event")
    if kind == "progress":
        job.done = int(event.get("done") or 0)
        job.total = int(event.get("total") or 0)
        job.stage = str(event.get("stage") or job.stage)
        job.extra = {k: v for k, v in event.items() if k not in ("event", "done", "total", "stage")}
        job.status = f"{job.stage} {job.done}/{job.total}" if job.total else job.stage
    elif kind == "preview":
        job.preview_path = str(event.get("path", ""))
    elif kind == "log":
        _remember(job, str(event.get("message", "")))
    elif kind == "done":
        job.result = {k: v for k, v in event.items() if k != "event"}
    elif kind == "error":
        job.error = str(event.get("message", "engine error"))
    elif kind == "_exit":  # our own: the step's process ended
        _step_ended(job, int(event["code"]))


def _remember(job: Job, line: str) -> None:
    if line.strip():
        job.last_lines = (job.last_lines + [line.rstrip()])[-20:]


def _step_ended(job: Job, code: int) -> None:
    job.proc = None
    if job.cancel_requested_at is not None:
        job.state, job.status = CANCELLED, "cancelled"
        return
    if code != 0 or job.error:
        job.state = FAILED
        job.error = explain_failure(job, code)
        job.status = "failed"
        return
    job.step += 1
    job.done = job.total = 0
    if job.step >= len(job.steps):
        job.state, job.status = DONE, "done"


def explain_failure(job: Job, code: int) -> str:
    """A message an artist can act on: the job's own explainer's, else the engine's error if it sent one, else its
    last output line."""
    special = job.explain(job, code) if job.explain is not None else None
    if special:
        return f"{special} (log: {job.log_path})"
    msg = job.error
    if not msg:
        tail = next((ln for ln in reversed(job.last_lines) if ln.strip()), "")
        msg = f"engine exited with code {code}" + (f": {tail}" if tail else "")
    missing = re.search(r"No module named '([\w.]+)'", " ".join([msg] + job.last_lines[-3:]))
    if missing and "is not installed" not in msg:
        msg = (f"the engine Python {job.steps[job.step][0]} lacks the engine's requirements (no module "
               f"'{missing.group(1)}'): run 'Set up engine' or choose a Python with requirements/engine.txt")
    return f"{msg} (log: {job.log_path})"


# ----------------------------------------------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------------------------------------------
def start(job: Job) -> None:
    """Start the job's current step. A missing Python fails the job with a clear message, never an exception."""
    argv = job.steps[job.step]
    job.state, job.status = RUNNING, job.step_label or f"starting {job.label}"
    if not job.started_at:
        job.started_at, job.started_wall = time.monotonic(), time.time()
    job.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
    try:
        job.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=job.env,
            cwd=job.cwd,
            start_new_session=(os.name == "posix"),
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) if os.name == "nt" else 0,
        )
    except OSError as exc:
        job.state, job.status = FAILED, "failed"
        reason = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be run ({exc.strerror or exc})"
        job.error = f"the program {argv[0]} {reason}; check the Python paths in the EDN preferences"
        with open(job.log_path, "a", encoding="utf-8") as log:
            log.write(job.error + "\n")
        job.error += f" (log: {job.log_path})"
        return
    threading.Thread(target=_read, args=(job.proc, job.events, job.log_path), daemon=True).start()


def _read(proc: subprocess.Popen, events: "queue.Queue[dict]", log_path: Path) -> None:
    """Reader thread: every stdout line goes to the log; JSON lines become events, others become log events.

    It always ends with an `_exit` event, even if the log cannot be written, so no job waits forever.
    """
    assert proc.stdout is not None
    try:
        log = open(log_path, "a", encoding="utf-8")
    except OSError:
        log = None
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if log is not None:
                try:
                    log.write(line + "\n")
                    log.flush()
                except OSError:
                    log = None
            events.put(parse_event(line) or {"event": "log", "message": line})
    finally:
        if log is not None:
            log.close()
        events.put({"event": "_exit", "code": proc.wait()})


def poll(job: Job) -> Job:
    """Drain the job's events into its state; start its next step; escalate a cancel past its grace period."""
    while True:
        try:
            event = job.events.get_nowait()
        except queue.Empty:
            break
        apply_event(job, event)
    if job.state == RUNNING and job.proc is None and job.step < len(job.steps):
        start(job)
    if job.cancel_requested_at is not None and job.proc is not None and job.proc.poll() is None:
        if time.monotonic() - job.cancel_requested_at > CANCEL_GRACE_S:
            job.proc.kill()
    if job.finished and not job.ended:
        job.ended = True
        for callback in job.on_end:
            _call_end(job, callback)
    return job


def _call_end(job: Job, callback: EndCallback) -> None:
    """Run one end callback; a failure must not break the timer or skip the later callbacks: it becomes the
    job's error (and fails a job that had succeeded, since its result did not reach Blender)."""
    try:
        callback(job)
    except Exception as exc:  # noqa: BLE001 - shown in the panel, not raised
        if job.state == DONE:
            job.state, job.status = FAILED, "failed"
            job.error = f"{job.label} finished but its result could not be used: {exc} (log: {job.log_path})"
        else:
            job.error = job.error or f"{job.label}: {exc}"


def cancel(job: Job) -> None:
    """Ask the engine to stop (SIGTERM: the trainer saves a checkpoint); `poll` kills it after the grace period."""
    if job.finished:
        return
    job.cancel_requested_at = time.monotonic()
    job.status = "cancelling"
    if job.proc is None:
        job.state, job.status = CANCELLED, "cancelled"
        return
    try:
        if os.name == "posix":
            job.proc.send_signal(signal.SIGTERM)
        else:
            job.proc.send_signal(signal.CTRL_BREAK_EVENT)
    except (ProcessLookupError, OSError):
        pass


# ----------------------------------------------------------------------------------------------------------------
# the queue: several jobs, one running at a time per lane
# ----------------------------------------------------------------------------------------------------------------
class JobManager:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> Job:
        self.jobs.append(job)
        self.poll_all()
        return job

    def active(self, *, lane: str | None = None, kind: str | None = None) -> list[Job]:
        """Unfinished jobs, optionally only those of one lane and/or kind."""
        return [j for j in self.jobs if not j.finished and lane in (None, j.lane) and kind in (None, j.kind)]

    def get(self, job_id: int) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def poll_all(self) -> bool:
        """Poll every job and start queued ones whose lane is free. Returns True while any job is unfinished."""
        for job in self.jobs:
            if job.state != QUEUED:
                poll(job)
        busy = {j.lane for j in self.jobs if j.state == RUNNING}
        for job in self.jobs:
            if job.state == QUEUED and job.lane not in busy:
                start(job)
                busy.add(job.lane)
                poll(job)
        return bool(self.active())

    def wait(self, job: Job, timeout: float = 600.0, interval: float = 0.05) -> Job:
        """Poll until `job` finishes (for scripts and tests; the UI uses a timer instead)."""
        deadline = time.monotonic() + timeout
        while not job.finished:
            self.poll_all()
            if job.finished:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job.label} did not finish in {timeout:.0f} s (log: {job.log_path})")
            time.sleep(interval)
        self.poll_all()
        return job

    def shutdown(self, timeout: float = 5.0) -> None:
        """On unregister: stop every job so no engine process outlives the add-on."""
        for job in self.active():
            cancel(job)
        deadline = time.monotonic() + timeout
        for job in self.jobs:
            proc = job.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.jobs.clear()


MANAGER = JobManager()


def python_executable_ok(path: str) -> str | None:
    """None if `path` looks like a runnable Python, else why not (checked before a job starts)."""
    if not path:
        return "no engine Python is set: open Preferences > Add-ons > EDN and run 'Set up engine' or choose a Python"
    p = Path(path)
    if not p.exists():
        return f"the engine Python {path} does not exist: run 'Set up engine' or choose another Python"
    if p.is_dir() or not os.access(p, os.X_OK):
        return f"the engine Python {path} is not an executable program"
    return None


def new_log_path(folder: Path, label: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
    return folder / f"{stamp}-{safe}-{os.getpid()}-{next(_ids)}.log"

