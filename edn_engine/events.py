"""Progress reporting: a tqdm bar on a terminal, or one JSON object per line for the Blender add-on.

Events (the contract with `blender_addon.jobs`):
    {"event": "progress", "done": i, "total": n, "stage": "...", ...extra}
    {"event": "preview", "path": "..."}
    {"event": "log", "message": "..."}
    {"event": "done", ...summary}
    {"event": "error", "message": "..."}
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from typing import Any, TextIO


class ReaderGone(KeyboardInterrupt):
    """The events' reader is gone (a parent that was killed, `| head`): the verb stops as on Ctrl-C, keeping what
    it wrote (a trainer saves its checkpoint). Every later event raises it again, so no stage after it runs
    unwatched; the last words (`done`, `error`) are dropped."""


class Reporter:
    """Writes events. In JSON mode every event is one flushed line on stdout; otherwise a bar on stderr."""

    def __init__(self, json_mode: bool = False, stream: TextIO | None = None, min_interval: float = 0.1):
        self.json_mode = json_mode
        self.stream = stream or (sys.stdout if json_mode else sys.stderr)
        self.min_interval = min_interval
        self._last = 0.0
        self._bar = None  # the terminal's tqdm bar of the current stage
        self._bar_stage = ""
        self.gone = False  # the reader of the events is gone: nothing more is written

    def emit(self, event: str, **fields: Any) -> None:
        if not self.json_mode:
            return
        if self.gone:
            raise ReaderGone
        try:
            self.stream.write(json.dumps({"event": event, **fields}, default=_jsonable) + "\n")
            self.stream.flush()
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EINVAL:  # Windows: EINVAL
                raise
            self.gone = True
            if self.stream is sys.stdout:  # else Python's exit flushes it again, and complains
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise ReaderGone from None

    def progress(self, done: int, total: int | None, stage: str = "", **extra: Any) -> None:
        """`done` of `total` items of `stage`; in JSON mode at most one event per `min_interval` (and the last)."""
        if not self.json_mode:
            self._terminal_bar(done, total, stage, extra)
            return
        now = time.monotonic()
        if (total is None or done < total) and now - self._last < self.min_interval:
            return
        self._last = now
        self.emit("progress", done=done, total=total, stage=stage, **extra)

    def _terminal_bar(self, done: int, total: int | None, stage: str, extra: dict) -> None:
        from tqdm import tqdm  # tqdm draws on terminals and stays quiet in pipes and log files (disable=None)

        if self._bar is None or self._bar_stage != stage:
            self._close_bar()
            self._bar = tqdm(total=total, desc=stage, file=self.stream, disable=None, dynamic_ncols=True,
                             mininterval=self.min_interval, leave=True)
            self._bar_stage = stage
        if self._bar.disable:  # not a terminal
            return
        self._bar.total = total
        self._bar.set_postfix({k: _short(v) for k, v in extra.items()}, refresh=False)
        self._bar.update(done - self._bar.n)
        if total is not None and done >= total:
            self._close_bar()

    def preview(self, path: str) -> None:
        self.emit("preview", path=str(path))

    def log(self, message: str) -> None:
        if self.json_mode:
            self.emit("log", message=message)
        else:
            self._close_bar()
            print(message, file=self.stream, flush=True)

    def done(self, **summary: Any) -> None:
        if self.json_mode:
            with contextlib.suppress(ReaderGone):  # the last word: there is nothing left to stop
                self.emit("done", **summary)
        else:
            self._close_bar()
            print(json.dumps(summary, indent=2, default=_jsonable), file=sys.stdout, flush=True)

    def error(self, message: str) -> None:
        if self.json_mode:
            with contextlib.suppress(ReaderGone):  # the last word, often said because the reader went
                self.emit("error", message=message)
        else:
            self._close_bar()
            print(f"edn: error: {message}", file=sys.stderr, flush=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def parse_event(line: str) -> dict | None:
    """One line of an `edn ... --json` stream as an event dict; None for anything else (stray output).

    The one reader of the protocol: the add-on (through the engine copy it bundles), the demo, the benchmarks
    and the tests all read events with it."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return " ".join(f"{k}={_short(x)}" for k, x in v.items())
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _jsonable(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(v)
