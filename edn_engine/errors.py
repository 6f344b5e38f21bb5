"""The one exception type the CLI turns into a clean one-line message (and an `error` JSON event)."""

from __future__ import annotations

from pathlib import Path


class EdnError(Exception):
    """A user-facing error. Name the file and, where it applies, the frame, so the artist can act on it."""

    def __init__(self, message: str, *, path: str | Path | None = None, frame: int | None = None):
        self.path = str(path) if path is not None else None
        self.frame = frame
        where = []
        if self.path is not None:
            where.append(self.path)
        if frame is not None:
            where.append(f"frame {frame}")
        self.message = f"{': '.join([', '.join(where), message]) if where else message}"
        super().__init__(self.message)
