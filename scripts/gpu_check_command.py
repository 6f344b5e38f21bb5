"""scripts/gpu_check.py's commands: run one engine command line, reading its --json events as they come and
stopping it (and every process below it) when it hangs, and the one line that says why it failed."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path


class Outcome:
    """What one command did: exit code, its events (with the time each arrived), stderr, wall time."""

    def __init__(self, rc: int | None, events: list[tuple[float, dict]], stderr: str, wall_s: float,
                 timed_out: bool, started: float):
        self.rc, self.events, self.stderr, self.wall_s, self.timed_out = rc, events, stderr, wall_s, timed_out
        self.started = started

    def of(self, kind: str) -> list[dict]:
        return [e for _, e in self.events if e["event"] == kind]

    @property
    def done(self) -> dict | None:
        found = self.of("done")
        return found[-1] if found else None


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc; elsewhere none): torchrun starts its workers in sessions of their
    own, so signalling torchrun's process group does not reach them."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def run_command(cmd: list[str], env: dict, timeout: float, log: Path | None = None, grace: float = 30) -> Outcome:
    """Run `cmd` (an argument list), reading its stdout events as they come. After `timeout` seconds it and every
    process below it (torchrun's workers) get SIGTERM (the engine saves and exits), then SIGKILL `grace` seconds
    later. stdout and stderr also go to `log`."""
    from edn_engine.events import parse_event

    err_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True, errors="replace", env=env,
                            start_new_session=True)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        family = [proc.pid, *_descendants(proc.pid)]  # ids of the processes this call started, directly or not
        _signal_all(family, signal.SIGTERM)
        end = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        _signal_all([*family, *_descendants(proc.pid)], signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    events, lines = [], []
    try:
        for line in proc.stdout:
            lines.append(line)
            event = parse_event(line)
            if event is not None:
                events.append((time.monotonic(), event))
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted (Ctrl-C): stop what this call started
            _signal_all([proc.pid, *_descendants(proc.pid)], signal.SIGKILL)
            proc.wait()
    wall = time.monotonic() - t0
    err_file.seek(0)
    stderr = err_file.read()
    err_file.close()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(cmd)}\n--- stdout ---\n{''.join(lines)}--- stderr ---\n{stderr}",
                       encoding="utf-8")
    return Outcome(rc, events, stderr, wall, killed.is_set(), t0)


_BANNER = ("=====", "error_file", "traceback :", "Failures:", "<NO_OTHER_FAILURES>", "Root Cause", "time      :",
           "host      :", "rank      :", "exitcode  :", "To enable traceback")


def error_line(outcome: Outcome, timeout: float | None = None) -> str:
    """The one line that says why a command failed: its `error` event, else the last exception line of stderr
    (torchrun's failure banner left out), else the last line of stderr, else the exit code."""
    if outcome.timed_out:
        return f"timed out after {timeout:.0f} s" if timeout else "timed out"
    errors = outcome.of("error")
    if errors:
        return str(errors[0].get("message", "error"))
    lines = [ln.strip() for ln in outcome.stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not any(ln.startswith(b) or b in ln[:30] for b in _BANNER)]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if ":" in ln and " " not in head and (head.endswith(("Error", "Exception", "Interrupt")) or "Error" in head):
            return ln
    if lines:
        return lines[-1]
    return f"exit code {outcome.rc}"
