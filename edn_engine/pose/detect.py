"""Pose detection: MediaPipe Holistic on every frame of a video or image folder -> an OpenPose-layout `PoseTrack`.

Holistic (model_complexity 1, the model that ships inside the wheel and so works offline) gives body, both hands,
the refined face mesh and a person mask per frame; `mediapipe_map` turns them into BODY_25, 2 x 21 and 70 points.
A frame without a person is a row of zeros (confidence 0), counted in the summary; it is not an error.

One person, followed. Holistic reports one person and, when it loses them, re-detects whoever it finds first, so
with two people in view a track could jump between them. `follow.Follower` checks each detection against the
person followed so far (position, size, torso colours) and tells us what the detector should see next: the frame
is blanked outside a region round the person and over anyone recently rejected. A detection that is not the
person is dropped (a row of zeros, as without a person) and its frames are named in the summary's warnings.

Processes. Detection always runs in spawned worker processes, for two reasons. Speed: one Holistic graph uses
about one core and decoding a 640x360 frame costs ~1 ms, so on a 2-core machine the second core would idle; long
inputs are split into contiguous parts (tracking needs consecutive frames; each part's first frame runs the person
detector afresh), one graph per process. Each part's follower starts fresh, so after joining, each part's first
person is checked against the one followed at the end of the parts before it; a part that took someone else (in view
when its fresh follower first found a person) is detected again, its follower seeded with that state. Logs:
MediaPipe's C++ threads write warnings to file descriptor 2 at moments no Python code controls (graph start-up,
each model's lazy first use), so a worker points its fd 2 at /dev/null and reports progress, results and errors
through a queue; the artist's terminal and the `--json` stdout stay clean (EDN_DEBUG=1 keeps MediaPipe's lines).
Starting a worker costs about a second.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import queue
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("GLOG_minloglevel", "2")  # before MediaPipe loads: quieter C++ logging where GLOG applies
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import ensure_dir  # noqa: E402
from ..errors import EdnError  # noqa: E402
from ..events import Reporter  # noqa: E402
from ..video import FrameSource, ImageFolderSource, open_source, prefetch, write_image  # noqa: E402
from . import mediapipe_map as mpm  # noqa: E402
from .follow import (FollowConfig, Follower, FollowState, Status, blank_outside, candidate, continues,  # noqa: E402
                     warnings_for)
from .track import PoseTrack  # noqa: E402


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    model_complexity: int = 1  # the only model bundled with the mediapipe wheel (1 and 2 download at run time)
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True
    # each frame detected afresh, none tracked from the one before (`edn eval`: a frame's score is its own)
    static_image_mode: bool = False
    workers: int | None = None  # None: one per core (at most 2) when the input is long enough to pay for it
    min_frames_per_worker: int = 60  # a worker's start-up (~1 s) must pay for itself
    follow: FollowConfig = FollowConfig()


# ---------------------------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------------------------
def extract_pose(path: str | Path, *, start: int | None = None, end: int | None = None,
                 mattes_dir: str | Path | None = None, reporter: Reporter | None = None,
                 config: DetectorConfig = DetectorConfig()) -> tuple[PoseTrack, dict]:
    """Detect the person in every frame of `path` (frames `start`..`end`, inclusive source numbers).

    Returns the track and a summary (frames, frames without a person, detection rates, frames per second...).
    With `mattes_dir`, each frame's person mask is written there as `matte_{frame:06d}.png` (uint8, 255 = person).
    """
    t0 = time.monotonic()
    path = Path(path)
    source = open_source(path, start, end)
    mattes = ensure_dir(mattes_dir, "mattes folder") if mattes_dir is not None else None
    parts = _split(source, _worker_count(source, config))
    total = source.frame_count
    progress = _Progress(reporter, total)

    results = _run_parts_in_processes(path, parts, mattes, config, progress)
    _check_boundaries(path, parts, results, mattes, config, reporter)

    first = results[0]["frames"][0] if len(results[0]["frames"]) else source.first_frame
    numbers = np.concatenate([r["frames"] for r in results])
    if numbers.size == 0:
        raise EdnError("no frames were decoded", path=path)
    rows = int(numbers.max() - first + 1)  # image sequences may skip numbers: keep rows = frame numbers
    track = PoseTrack.empty(rows, source.width, source.height, fps=source.fps, frame_start=int(first),
                            source=str(path.absolute()))  # found again from any folder
    for r in results:
        idx = r["frames"] - first
        track.body[idx], track.hands[idx], track.face[idx] = r["body"], r["hands"], r["face"]
    track.validate()

    seconds = time.monotonic() - t0
    decoded = int(numbers.size)
    statuses = np.concatenate([r["status"] for r in results])
    summary = {
        "source": str(path),
        "width": source.width,
        "height": source.height,
        "fps": source.fps,
        "frame_start": track.frame_start,
        "frame_end": track.frame_start + track.frames - 1,
        "frames": track.frames,
        "frames_decoded": decoded,
        "frames_missing_in_sequence": track.frames - decoded,
        "frames_without_person": int((statuses == Status.NOBODY).sum()),
        "frames_other_person": int((statuses == Status.OTHER).sum()),
        "detection_rate": {k: round(v, 4) for k, v in track.detection_rates().items()},
        "mattes": str(mattes) if mattes is not None else None,
        "workers": len(parts),
        "seconds": round(seconds, 3),
        "frames_per_second": round(decoded / seconds, 2) if seconds > 0 else None,
        # CPU time per frame, summed over a worker's threads (model loading included): what a frame costs
        # whatever else the machine is doing. cores / this ~ the frames/s a quiet machine reaches.
        "cpu_seconds_per_frame": round(sum(r["cpu_seconds"] for r in results) / decoded, 4),
        "warnings": [w for r in results for w in r["warnings"]] + warnings_for(numbers, statuses),
    }
    return track, summary


# ---------------------------------------------------------------------------------------------------------------
# one contiguous part, run by one worker process
# ---------------------------------------------------------------------------------------------------------------
def _detect_part(path: Path, start: int, end: int | None, mattes: Path | None, config: DetectorConfig,
                 on_progress: Callable[[int], None], seed: FollowState | None = None) -> dict:
    """Run one Holistic graph over frames start..end (in a worker process); returns numpy arrays for them.

    `seed`: the follower's state at the end of the previous part, when this part is detected again for it."""
    cpu0, wall0 = time.process_time(), time.monotonic()  # process time: every thread of this worker
    source = open_source(path, start, end)
    w, h = source.width, source.height
    follower = Follower(config.follow, seed)
    frames, bodies, hands, faces, statuses = [], [], [], [], []
    first_kept = None  # (frame, Candidate): the first person this part kept, checked against the part before
    with _holistic(config) as holistic, _MatteWriter(mattes) as matte_writer:
        # Decoding and colour conversion run on a thread (OpenCV releases the GIL) while the graph works.
        for k, (n, rgb) in enumerate(prefetch(source, depth=4, transform=_to_rgb)):
            res = holistic.process(blank_outside(rgb, *follower.view(n, w, h)))
            body, hand, face = _to_openpose(res, w, h)
            cand = candidate(body, rgb, config.follow.min_confidence)
            status, _ = follower.step(n, [cand] if cand is not None else [])
            mask = res.segmentation_mask
            if status != Status.FOLLOWED:  # nobody, or not the person followed: a missing row, an empty matte
                body, hand, face, mask = np.zeros_like(body), np.zeros_like(hand), np.zeros_like(face), None
            elif first_kept is None:
                first_kept = (n, cand)
            frames.append(n)
            bodies.append(body)
            hands.append(hand)
            faces.append(face)
            statuses.append(status)
            if mattes is not None:
                matte_writer.submit(n, mask, (h, w))
            on_progress(k + 1)
    count = len(frames)
    return {
        "frames": np.asarray(frames, np.int64),
        "body": np.asarray(bodies, np.float32).reshape(count, 25, 3),
        "hands": np.asarray(hands, np.float32).reshape(count, 2, 21, 3),
        "face": np.asarray(faces, np.float32).reshape(count, 70, 3),
        "status": np.asarray(statuses, np.int8),
        "first_kept": first_kept,
        "state": follower.state,
        "warnings": list(source.warnings),
        "cpu_seconds": time.process_time() - cpu0,
        "wall_seconds": time.monotonic() - wall0,
    }


_FACE_POINTS_USED = sorted(set(mpm.FACE_68_FROM_MP) | set(mpm.PUPILS_FROM_MP.values())
                           | {i for pair in mpm.PUPILS_FALLBACK.values() for i in pair})


def _to_rgb(item: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    n, bgr = item
    return n, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _to_openpose(res, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    body = np.zeros((25, 3), np.float32)
    hands = np.zeros((2, 21, 3), np.float32)
    face = np.zeros((70, 3), np.float32)
    if res.pose_landmarks is None:
        return body, hands, face
    pose = np.array([(p.x, p.y, p.z, p.visibility) for p in res.pose_landmarks.landmark], np.float64)
    body = mpm.body_from_mediapipe(pose, w, h)
    for i, (side, lms) in enumerate((("left", res.left_hand_landmarks), ("right", res.right_hand_landmarks))):
        if lms is not None:
            pts = np.array([(p.x, p.y) for p in lms.landmark], np.float64)
            hands[i] = mpm.hand_from_mediapipe(pts, mpm.hand_confidence(pose, side), w, h)
    if res.face_landmarks is not None:
        lms = res.face_landmarks.landmark
        mesh = np.zeros((len(lms), 2), np.float64)  # read only the points the map uses: 75 of 478
        for i in _FACE_POINTS_USED:
            if i < len(lms):
                mesh[i] = (lms[i].x, lms[i].y)
        face = mpm.face_from_mediapipe(mesh, mpm.face_confidence(pose), w, h)
    return body, hands, face


@contextlib.contextmanager
def _holistic(config: DetectorConfig) -> Iterator:
    import mediapipe as mp

    graph = mp.solutions.holistic.Holistic(
        static_image_mode=config.static_image_mode,
        model_complexity=config.model_complexity,
        smooth_landmarks=config.smooth_landmarks,
        enable_segmentation=True,
        smooth_segmentation=True,
        refine_face_landmarks=True,
        min_detection_confidence=config.min_detection_confidence,
        min_tracking_confidence=config.min_tracking_confidence,
    )
    try:
        yield graph
    finally:
        graph.close()


def _mute_native_stderr() -> None:
    """Point file descriptor 2 of this worker process at /dev/null: MediaPipe's C++ threads write there directly,
    at moments no Python code controls. The worker reports everything through its queue instead."""
    if os.environ.get("EDN_DEBUG"):
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


class _MatteWriter:
    """Encodes and writes mattes on a background thread (PNG encoding releases the GIL), at most 8 pending."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1) if folder is not None else None
        self.pending: collections.deque = collections.deque()

    def __enter__(self) -> "_MatteWriter":
        return self

    def submit(self, frame: int, mask: np.ndarray | None, shape: tuple[int, int]) -> None:
        if mask is None:  # nobody in the frame
            matte = np.zeros(shape, np.uint8)
        else:
            matte = (np.clip(mask, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        self.pending.append(self.pool.submit(write_image, self.folder / f"matte_{frame:06d}.png", matte))
        while len(self.pending) > 8:
            self.pending.popleft().result()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.pool is None:
            return
        try:
            while self.pending:
                fut = self.pending.popleft()
                if exc_type is None:
                    fut.result()
        finally:
            self.pool.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------------------------
# splitting into contiguous parts, and the worker processes
# ---------------------------------------------------------------------------------------------------------------
def _worker_count(source: FrameSource, config: DetectorConfig) -> int:
    if config.workers is not None:
        return max(1, int(config.workers))
    if source.frame_count is None:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, cores, source.frame_count // config.min_frames_per_worker))


def _split(source: FrameSource, parts: int) -> list[tuple[int, int | None]]:
    """Contiguous (start, end) frame-number ranges, inclusive; the last part's end is the source's."""
    if parts <= 1 or not source.frame_count:
        return [(source.first_frame, source.last_frame)]
    if isinstance(source, ImageFolderSource):
        numbers = [n for n, _ in source.files]
    else:
        numbers = list(range(source.first_frame, source.first_frame + source.frame_count))
    bounds = np.linspace(0, len(numbers), parts + 1).round().astype(int)
    return [(numbers[a], numbers[b - 1]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run_parts_in_processes(path: Path, parts, mattes, config, progress: "_Progress | None",
                            seeds: list[FollowState | None] | None = None) -> list[dict]:
    """One spawned process per part; progress and results come back on a queue. Errors stop everything."""
    ctx = multiprocessing.get_context("spawn")  # fork would copy MediaPipe's threads' state: not safe
    messages = ctx.Queue()
    seeds = seeds or [None] * len(parts)
    procs = [ctx.Process(target=_worker_main, args=(i, str(path), a, b, mattes, config, messages, seed), daemon=True)
             for i, ((a, b), seed) in enumerate(zip(parts, seeds))]
    for p in procs:
        p.start()
    results: dict[int, dict] = {}
    try:
        while len(results) < len(procs):
            try:
                msg = messages.get(timeout=1.0)
            except queue.Empty:
                dead = [i for i, p in enumerate(procs) if i not in results and not p.is_alive()]
                if dead:
                    raise RuntimeError(f"pose worker {dead[0]} stopped (exit code {procs[dead[0]].exitcode})")
                continue
            kind, i = msg[0], msg[1]
            if kind == "progress":
                if progress is not None:
                    progress.update_part(i)(msg[2])
            elif kind == "result":
                results[i] = msg[2]
            elif kind == "error":
                raise EdnError(msg[2], path=msg[3], frame=msg[4])
            else:
                raise RuntimeError(f"pose worker {i} failed: {msg[2]}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
        messages.close()
    return [results[i] for i in range(len(procs))]


def _check_boundaries(path: Path, parts, results: list[dict], mattes, config: DetectorConfig,
                      reporter: Reporter | None) -> None:
    """Each part's follower started fresh: where a part's first person is not the one followed at the end of the
    parts before it, detect that part again starting from that follower's state (in place in `results`)."""
    carried = results[0]["state"]
    for k in range(1, len(results)):
        first = results[k]["first_kept"]
        if carried.last is not None and first is not None and not continues(carried, *first, config.follow):
            if reporter is not None:
                reporter.log(f"frame {first[0]} starts with someone other than the person followed before it: "
                             f"detecting frames {parts[k][0]}-{parts[k][1]} again, from that person")
            results[k] = _run_parts_in_processes(path, [parts[k]], mattes, config, None, [carried])[0]
        if results[k]["state"].last is not None:
            carried = results[k]["state"]


def _worker_main(index: int, path: str, start: int, end: int, mattes, config, messages, seed=None) -> None:
    _mute_native_stderr()
    parent = os.getppid()
    last = [0.0]

    def report(done: int) -> None:
        if os.getppid() != parent:  # the parent was killed (a cancelled job): stop rather than run on orphaned
            os._exit(1)
        now = time.monotonic()
        if now - last[0] > 0.2:
            last[0] = now
            messages.put(("progress", index, done))

    try:
        result = _detect_part(Path(path), start, end, mattes, config, report, seed)
        messages.put(("progress", index, len(result["frames"])))
        messages.put(("result", index, result))
    except EdnError as exc:
        # Re-raised in the parent with the same file and frame.
        text = exc.message
        prefix = ", ".join(x for x in (exc.path, f"frame {exc.frame}" if exc.frame is not None else None) if x)
        if prefix and text.startswith(prefix + ": "):
            text = text[len(prefix) + 2:]
        messages.put(("error", index, text, exc.path, exc.frame))
    except BaseException as exc:  # an engine bug: report it rather than hang the parent
        messages.put(("crash", index, f"{type(exc).__name__}: {exc}"))


class _Progress:
    """Sums the frames done by each part and reports them, with the running frames per second."""

    def __init__(self, reporter: Reporter | None, total: int | None):
        self.reporter = reporter
        self.total = total
        self.done: dict[int, int] = {}
        self.t0 = time.monotonic()

    def update_part(self, index: int) -> Callable[[int], None]:
        def update(done: int) -> None:
            if self.done.get(index) == done:
                return
            self.done[index] = done
            if self.reporter is not None:
                n = sum(self.done.values())
                elapsed = time.monotonic() - self.t0
                self.reporter.progress(n, self.total, stage="pose", fps=round(n / elapsed, 1) if elapsed > 0 else 0.0)
        return update
