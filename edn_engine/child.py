"""A stage in a child process that speaks the event protocol (`events`): its progress, previews and log lines are
relayed to this process's reporter, and its `done` event is the stage's result.

Two kinds of child run this way. The demo renders with Blender (`python -m edn_demo.scene`), which must not share
a process with torch. And `edn transfer` and `edn demo` generate in `python -m edn_engine generate`: the OpenMP
wait policy is read once, when torch loads, and training's long spin made generation twice as slow on a loaded
machine (`threads.needs_own_process`).

Stopping: when this process is interrupted (Ctrl-C, or the add-on's SIGTERM, which `cli` turns into
KeyboardInterrupt) the child is asked to stop (SIGTERM: an engine verb keeps what it wrote, as its own Ctrl-C
does) and killed if it does not within `grace` seconds. If this process is killed outright, the child's next
event (generation reports progress ten times a second) finds its stdout closed and ends it, with the frames it
wrote kept for --resume: no child outlives the job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .errors import EdnError
from .events import Reporter, parse_event

ENGINE_ROOT = Path(__file__).resolve().parents[1]  # holds edn_engine/ (a checkout or site-packages)


def run_module(module: str, args: list[str], reporter: Reporter, *, stage: str | None = None,
               env: dict[str, str] | None = None, log_path: Path | None = None, what: str | None = None,
               grace: float = 30.0) -> dict:
    """Run `python -m module args`, relaying its events; return its `done` event.

    `stage` renames its progress (None: the child's own stage names); `log_path` keeps its stderr (and events)
    in a file, None passes its stderr through; `what` prefixes a failure's message (None: the child's own
    message, already one line that names the file or frame)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ENGINE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    log = open(log_path, "w", encoding="utf-8") if log_path is not None else None
    done, error = None, None
    try:
        with subprocess.Popen([sys.executable, "-m", module, *args], cwd=ENGINE_ROOT, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                              encoding="utf-8", errors="replace") as proc:
            try:
                for line in proc.stdout:
                    if log is not None:
                        log.write(line)
                    event = parse_event(line)
                    if event is not None:
                        done, error = _relay(event, reporter, stage, done, error)
                rc = proc.wait()
            except BaseException:
                _stop(proc, grace)
                raise
    finally:
        if log is not None:
            log.close()
    if rc != 0 or done is None:
        message = error or (_tail(log_path) if log_path is not None else f"`python -m {module}` ended without a "
                                                                            "result (its messages are above)")
        raise EdnError(f"{what} failed with exit code {rc}: {message}" if what else message, path=log_path)
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
    """Ask the child to stop, then make sure it has."""
    try:
        proc.terminate()  # SIGTERM; on Windows TerminateProcess
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
