"""Videos out: H.264 .mp4 previews, written frame by frame and moved into place atomically."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from .atomic import atomic_path
from .errors import EdnError
from .video import DEFAULT_FPS, to_bgr8


class VideoWriter:
    """Write an H.264 .mp4 frame by frame; the file appears (atomically) only when the writer closes without error.

        with VideoWriter(out, fps=30) as w:
            for img in frames:
                w.write(img)

    Encoded by the FFmpeg that the imageio-ffmpeg wheel ships (libx264, yuv420p: what browsers, players and
    Blender's sequencer all read). OpenCV's wheel can only write MPEG-4 Part 2, which many players refuse.
    Odd sizes are padded by one pixel, which yuv420p requires.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int] | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise EdnError("videos are written as .mp4", path=self.path)
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self.size = size
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._encoder = None
        self._tmp: Path | None = None

    def __enter__(self) -> "VideoWriter":
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        return self

    def write(self, img: np.ndarray) -> None:
        if self._tmp is None:
            raise RuntimeError("use VideoWriter as a context manager")
        img = to_bgr8(img)
        h, w = img.shape[:2]
        if self._encoder is None:
            self.size = self.size or (w, h)
            self._encoder = self._open()
        if (w, h) != tuple(self.size):
            raise EdnError(f"frame {self.frames} is {w}x{h}, the video is {self.size[0]}x{self.size[1]}",
                           path=self.path, frame=self.frames)
        self._encoder.send(np.ascontiguousarray(img))
        self.frames += 1

    def _open(self):
        import imageio_ffmpeg

        encoder = imageio_ffmpeg.write_frames(
            str(self._tmp), tuple(self.size), fps=self.fps, codec="libx264", pix_fmt_in="bgr24",
            pix_fmt_out="yuv420p", quality=7, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart"])
        try:
            encoder.send(None)  # starts FFmpeg
        except (OSError, RuntimeError) as exc:
            raise EdnError(f"cannot start the video encoder ({exc})", path=self.path) from exc
        return encoder

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._encoder is not None:
                self._encoder.close()  # waits for FFmpeg to finish the file
            if exc_type is None and self.frames == 0:
                raise EdnError("no frames to write", path=self.path)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return bool(self._stack.__exit__(exc_type, exc, tb))


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write all `frames` (BGR uint8) to an .mp4 atomically; returns the number written."""
    with VideoWriter(path, fps) as w:
        for img in frames:
            w.write(img)
    return w.frames
