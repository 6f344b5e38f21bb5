"""Generated frames at the clip's full resolution: the window's RGBA scaled back into the frame, laid over the
plate, encoded and written as PNGs, in worker processes beside the generator.

Why processes, not threads: fpng holds the GIL while it encodes (16 ms a 1920x1080 RGBA frame, 11 ms an RGB
one), so on a thread each encode stalled the generator's loop whenever a torch op returned and wanted the GIL back;
the paste (25 ms of a 1080p frame's work) ran on the generator's thread too. A worker is sent the window (256x256
RGBA: a quarter of a megabyte) and its framing; the plate goes once, when the worker starts. Workers exit when the
generating process dies (an add-on job that is cancelled or killed leaves none behind). Measured interleaved on a
150-frame 1080p clip on the 2-core dev machine: 1.2x more frames a second in fp32 (AVX2) and 1.35x in bf16 than the
threads. Where the generator runs on the CPU, a worker is sent the body generator's frame instead (2.6 MB of float
maps) and finishes it first (its face and hands refined: `finishing`), holding torch and the refiners; elsewhere
workers import no torch. A script that generates must guard its top level with `if __name__ == "__main__":`, as any
user of spawned processes must.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import pickle
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .allocator import keep_large_blocks
from .compositing import blend_patch, paste
from .errors import EdnError
from .pose.framing import Framing
from .threads import frame_writers, physical_cores


@dataclasses.dataclass(frozen=True)
class FrameJob:
    """One output frame. `window`: the generator's RGBA at the training size, None for a frame with no person
    (written transparent); `kept`: already on disk from an interrupted run (--resume), only read back for the
    preview video; `unfinished`: the body generator's frame, which the writer's `finisher` turns into the window
    and its hands first."""

    path: Path  # OUT/frame_NNNNNN.png; a person-over-plate run also writes OUT/composite/frame_NNNNNN.png
    fr: Framing
    window: np.ndarray | None = None
    kept: bool = False
    # refined hands: each box's framing, BGRA patch and where it counts (`compositing.blend_patch`'s weights)
    hands: tuple[tuple[Framing, np.ndarray, np.ndarray], ...] = ()
    exemplars: tuple[tuple[Framing, np.ndarray], ...] = ()  # training hands laid over them (`hand_bank`), likewise
    unfinished: object | None = None  # `finishing.Unfinished`


class FrameWriter:
    """Runs `FrameJob`s on worker processes, at most `depth` waiting (memory stays flat in clip length); their
    results are taken in frame order.

        with FrameWriter(plate, (w, h), preview=video.write) as out:
            out.submit(FrameJob(path, framing, window_rgba))

    `plate` (BGR at the clip's size) makes a person-over-plate writer (RGBA and composite), None a whole-frame one
    (the training frame scaled back). `preview`, if given, receives each frame's picture in order (the composite,
    or the RGB of a whole-frame run): for the preview video. A worker's error is raised here. `generator_on_cpu`:
    whether the generator shares the cores with the writers, `generator_threads` its torch threads there
    (`threads.frame_writers`). `finisher` (a `finishing.Finisher`): what finishes the jobs sent `unfinished`, copied
    to each worker and started there with the plate (`start(plate, threads=1)`)."""

    def __init__(self, plate: np.ndarray | None, size: tuple[int, int], *,
                 preview: Callable[[np.ndarray], None] | None = None, workers: int | None = None, depth: int = 4,
                 generator_on_cpu: bool = True, generator_threads: int | None = None, finisher=None):
        self.preview = preview
        self.depth = depth
        self.workers = workers or frame_writers(physical_cores() or os.cpu_count() or 2, generator_on_cpu,
                                                generator_threads)
        # the finisher by plain pickle: its networks' weights copied, where multiprocessing's pickler would move
        # them to shared memory (/dev/shm, 64 MB in a default Docker container)
        self._init = (plate, tuple(size), preview is not None, None if finisher is None else pickle.dumps(finisher))
        self.pending: collections.deque[tuple[Path, Future]] = collections.deque()

    def __enter__(self) -> "FrameWriter":
        # spawn, not fork: the generating process has torch's OpenMP threads running, which a fork would copy
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_start_worker, initargs=self._init)
        return self

    def submit(self, job: FrameJob) -> None:
        try:
            future = self.pool.submit(_run, job)
        except BrokenProcessPool:  # a worker died since the last frame: the frames before it say which was lost
            while self.pending:
                self._finish_one()
            raise _lost(job.path) from None
        self.pending.append((job.path, future))
        while len(self.pending) > self.depth:
            self._finish_one()

    def _finish_one(self) -> None:
        path, future = self.pending.popleft()
        try:
            picture = future.result()
        except BrokenProcessPool:  # killed (out of memory?) or could not start: say which frame was lost
            raise _lost(path) from None
        if self.preview is not None:
            self.preview(picture)

    def __exit__(self, exc_type, *exc) -> None:
        try:
            # finished, or interrupted (Ctrl-C, the add-on's cancel): write the frames already generated, so that
            # --resume starts after them; after an error, drop them
            while self.pending and (exc_type is None or issubclass(exc_type, KeyboardInterrupt)):
                self._finish_one()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _lost(path: Path) -> EdnError:
    return EdnError("a frame-writing process ended abruptly; nothing after this frame was written", path=path)


# --- in the worker processes ---

_WORKER: dict = {}


def _start_worker(plate: np.ndarray | None, size: tuple[int, int], preview: bool, finisher: bytes | None) -> None:
    """Keep the plate; start the finisher; one OpenCV thread and one torch thread (the workers and the generator
    share the cores); large blocks kept for the next frame; exit with the parent. A finisher that cannot start
    fails each job with its own error (raised in this initializer, it would reach the parent only as a worker
    that ended).
    Ctrl-C in a terminal reaches the whole process group: the parent stops the pool, the workers stay quiet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    keep_large_blocks()  # a frame's full-resolution pictures reuse the last one's pages (`allocator`)
    try:
        _WORKER["finisher"] = None if finisher is None else pickle.loads(finisher).start(plate, threads=1)
    except Exception as exc:  # any error: given back with the first job
        _WORKER["error"] = exc
    # the pictures are kept in RGB order, as PNGs hold them: two 1080p conversions a frame fewer
    _WORKER.update(plate=None if plate is None else cv2.cvtColor(plate, cv2.COLOR_BGR2RGB), size=size,
                   preview=preview)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _run(job: FrameJob) -> np.ndarray | None:
    """Write one frame (and its composite); return its preview picture when the writer has a preview."""
    from .video import read_image, write_png_fast

    if "error" in _WORKER:
        raise _WORKER["error"]
    plate, (w, h), preview = _WORKER["plate"], _WORKER["size"], _WORKER["preview"]
    if job.unfinished is not None:
        job = _WORKER["finisher"](job)
    comp_path = job.path.parent / "composite" / job.path.name
    if job.kept:
        if not preview:
            return None
        return read_image(comp_path) if plate is not None else read_image(job.path)
    if job.window is None:
        rgba, comp = np.zeros((h, w, 4), np.uint8), plate
    elif plate is None:
        rgba, comp = job.fr.back(_rgba(job.window)), None  # the whole training frame, back at the clip's framing
    else:
        rgba, comp = paste(job.fr, _rgba(job.window), plate)  # the window's person, back in the full frame
        for fr, patch, weights in job.hands:  # then the hands, redrawn at the source's resolution
            blend_patch(rgba, comp, plate, fr, _rgba(patch), weights=weights, clears=True)
        for fr, patch in job.exemplars:  # and the person's own hands over them
            blend_patch(rgba, comp, plate, fr, _rgba(patch), over=True)
    if comp is not None:  # first: --resume keeps a frame whose RGBA is on disk, so its composite must be there too
        write_png_fast(comp_path, comp, rgb_order=True)
    write_png_fast(job.path, rgba, rgb_order=True)
    if not preview:
        return None
    return cv2.cvtColor(comp, cv2.COLOR_RGB2BGR) if comp is not None else cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR)


def _rgba(bgra: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
