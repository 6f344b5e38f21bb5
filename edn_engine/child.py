"""A stage in a child process that speaks the event protocol (`events`): its progress, previews and log lines are
relayed to this process's reporter, and its `done` event is the stage's result.

Two kinds of child run this way. The demo renders with Blender (`python -m edn_demo.scene`), which must not share
a process with torch. And `edn transfer` and `edn demo` generate in `python -m edn_engine generate`: the OpenMP
wait policy is read once, when torch loads, and training's long spin made generation twice as slow on a loaded
machine (`threads.needs_own_process`).

Stopping: when this process is interrupted (Ctrl-C, or the add-on's SIGTERM, which `cli` turns into
KeyboardInterrupt) the child is asked to stop (SIGTERM: an engine verb keeps what it wrote, as its own Ctrl-C
does) and killed if it does not within `grace` seconds. If this process is killed outright, an engine verb
notices within half a second (`cli`: its parent changes) or at its next event, which finds no reader
(`events.ReaderGone`), and stops as on Ctrl-C, its frames kept for --resume: no child outlives the job.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from .errors import EdnError
from .events import Reporter, parse_event

ENGINE_ROOT = Path(__file__).resolve().parents[1]  # holds edn_engine/ (a checkout or site-packages)
PARENT_PID = "EDN_PARENT_PID"  # tells an engine verb which process started it (`cli` stops when it is gone)


def run_module(module: str, args: list[str], reporter: Reporter, *, stage: str | None = None,
               env: dict[str, str] | None = None, log_path: Path | None = None, what: str | None = None,
               grace: float = 30.0) -> dict:
    """Run `python -m module args`, relaying its events; return its `done` event.

    `stage` renames its progress (None: the child's own stage names); `log_path` keeps its stderr (and events)
    in a file, None passes its stderr through; `what` prefixes a failure's message (None: the child's own
    message, already one line that names the file or frame)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ENGINE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env[PARENT_PID] = str(os.getpid())
    log = open(log_path, "w", encoding="utf-8") if log_path is not None else None
    done, error = None, None
    try:
        # its own session: a terminal's Ctrl-C reaches this process only, which then stops the child (below)
        with subprocess.Popen([sys.executable, "-m", module, *args], cwd=ENGINE_ROOT, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                              encoding="utf-8", errors="replace", start_new_session=os.name == "posix") as proc:
            try:
                for line in proc.stdout:
                    event = parse_event(line)
                    if log is not None:
                        log.write(line)  # the events too: the log tells the whole story
                    elif event is None:
                        with contextlib.suppress(OSError):  # its stray output, beside its stderr
                            sys.stderr.write(line)
                    if event is not None:
                        done, error = _relay(event, reporter, stage, done, error)
                rc = proc.wait()
            except BaseException:
                _stop(proc, grace)
                raise
    finally:
        if log is not None:
            log.close()
    if rc == 130 and error == "interrupted":  # stopped by someone else: an interruption here too
        raise KeyboardInterrupt
    if rc != 0 or done is None:
        message = error or (_tail(log_path) if log_path is not None else "see its messages above")
        message = f"{what or f'`python -m {module}`'} ended with exit code {rc}: {message}"
        raise EdnError(error if error and not what else message, path=log_path)
    return done


def _relay(event: dict, reporter: Reporter, stage: str | None, done: dict | None,
           error: str | None) -> tuple[dict | None, str | None]:
    """Pass one child event on; returns the (done, error) seen so far."""
    kind = event["event"]
    if kind == "progress":
        extra = {k: v for k, v in event.items() if k not in ("event", "done", "total", "stage")}
        reporter.progress(event.get("done", 0), event.get("total"), stage=stage or event.get("stage", ""), **extra)
    elif kind == "preview" and "path" in event:
        reporter.preview(event["path"])
    elif kind == "log" and "message" in event:
        reporter.log(str(event["message"]))
    elif kind == "done":
        done = {k: v for k, v in event.items() if k != "event"}
    elif kind == "error":
        error = str(event.get("message"))
    return done, error


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """Ask the child to stop (SIGTERM), kill it after `grace` seconds, and reap it: a second Ctrl-C or cancel
    while it stops must not leave it running."""
    with contextlib.suppress(OSError):
        proc.terminate()  # on Windows TerminateProcess
    deadline, killed = time.monotonic() + grace, False
    while proc.poll() is None:
        try:
            proc.wait(timeout=None if killed else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            killed = True
        except KeyboardInterrupt:
            pass  # asked again: it is stopping already


def _tail(path: Path, lines: int = 5) -> str:
    """The log's last lines, on one line: what a failed child said last."""
    try:
        return " | ".join(path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
