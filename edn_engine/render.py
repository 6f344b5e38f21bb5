"""Stick figures: the pose images the generator is trained on and driven with (pure numpy + OpenCV).

Two styles, both on black, anti-aliased, deterministic (same input -> same bytes):

* `edn` (default): OpenPose's BODY_25 skeleton in OpenPose's colours (a limb takes the colour of its end joint, as
  OpenPose's renderer does), so the right and left limbs, feet and spine all differ. Thicknesses follow the image
  size (OpenPose's rule: line ~ sqrt(W*H)/100), joints are drawn as discs a little wider than the limbs, hands in
  OpenPose's hand colours (the left hand with red and blue exchanged, so two crossed hands stay tellable apart),
  and the face in white: the paper's 8 sparse points by default, or all 70 with their contours.
* `controlnet`: what ControlNet's OpenPose models were trained on (lllyasviel's annotator): the COCO-18 skeleton
  (no mid-hip, no feet) as ellipses at 60% brightness with full-colour joints, hands with rainbow bones and blue
  joints, the face as white dots; sizes as the annotator draws them at 512 pixels, scaled to the image.

Confidence thresholds are OpenPose's render defaults (body 0.05, hands 0.2, face 0.4), so a figure shows what
OpenPose would show; keypoints below them are treated as missing.
"""

from __future__ import annotations

import collections
import colorsys
import concurrent.futures
import math
import time
from pathlib import Path

import cv2
import numpy as np

from .errors import EdnError
from .events import Reporter
from .pose.framing import Framing
from .pose.skeleton import (BODY_25_LIMBS, COCO_18_TO_BODY_25, FACE_CONTOURS, FACE_SPARSE_8, HAND_LIMBS,
                            THRESHOLDS)
from .pose.track import PoseTrack

STYLES = ("edn", "controlnet")
FACE_MODES = ("sparse", "full")
_PNG = (cv2.IMWRITE_PNG_COMPRESSION, 1)  # figures are mostly black: fast zlib loses little
_SHIFT = 4  # sub-pixel precision: coordinates are passed to OpenCV in 1/16 pixel
_ONE = 1 << _SHIFT

# OpenPose's POSE_BODY_25_COLORS_RENDER (RGB), one per keypoint.
BODY_25_COLORS = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255),
    (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255), (0, 0, 255),
    (0, 255, 255), (0, 255, 255), (0, 255, 255),
)
# OpenPose's HAND_COLORS_RENDER (RGB), one per hand keypoint.
HAND_COLORS = (
    (100, 100, 100), (100, 0, 0), (150, 0, 0), (200, 0, 0), (255, 0, 0), (100, 100, 0), (150, 150, 0),
    (200, 200, 0), (255, 255, 0), (0, 100, 50), (0, 150, 75), (0, 200, 100), (0, 255, 125), (0, 50, 100),
    (0, 75, 150), (0, 100, 200), (0, 125, 255), (100, 0, 100), (150, 0, 150), (200, 0, 200), (255, 0, 255),
)
# ControlNet's annotator: COCO-18 limbs (in COCO-18 indices) and colours (RGB), limb i drawn in colour i.
COCO_18_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
                 (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COCO_18_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
WHITE = (255, 255, 255)


def _bgr(rgb) -> tuple[int, int, int]:
    return (int(rgb[2]), int(rgb[1]), int(rgb[0]))


# Colours as OpenCV wants them (BGR), precomputed once.
_BODY_BGR = [_bgr(c) for c in BODY_25_COLORS]
_HAND_BGR = {1: [_bgr(c) for c in HAND_COLORS], 0: [(c[0], c[1], c[2]) for c in HAND_COLORS]}  # 1 right, 0 left
_CN_LIMB_BGR = [_bgr([int(v * 0.6) for v in c]) for c in COCO_18_COLORS]  # the annotator dims limbs to 60%
_CN_JOINT_BGR = [_bgr(c) for c in COCO_18_COLORS]
_CN_HAND_EDGE_BGR = [_bgr([round(v * 255) for v in colorsys.hsv_to_rgb(i / len(HAND_LIMBS), 1.0, 1.0)])
                     for i in range(len(HAND_LIMBS))]
_CN_HAND_JOINT_BGR = _bgr((0, 0, 255))
_FACE_SEGMENTS = tuple((c[i], c[i + 1]) for c in FACE_CONTOURS for i in range(len(c) - 1))
_COCO_FROM_BODY = np.array(COCO_18_TO_BODY_25)


# ---------------------------------------------------------------------------------------------------------------
# one figure
# ---------------------------------------------------------------------------------------------------------------
def draw_pose(body: np.ndarray, hands: np.ndarray, face: np.ndarray, size: tuple[int, int],
              style: str = "edn", face_mode: str = "sparse") -> np.ndarray:
    """Draw one pose, given in the output's own pixel coordinates, on a black (H, W, 3) uint8 BGR image."""
    _check(style, face_mode)
    width, height = int(size[0]), int(size[1])
    img = np.zeros((height, width, 3), np.uint8)
    body, hands, face = np.asarray(body), np.asarray(hands), np.asarray(face)
    if style == "edn":
        _draw_edn(img, body, hands, face, face_mode)
    else:
        _draw_controlnet(img, body, hands, face, face_mode)
    return img


def _fixed(pts: np.ndarray, threshold: float) -> tuple[list, list]:
    """Fixed-point integer coordinates (list of (x, y)) and a visibility list for (N, 3) keypoints."""
    xy = np.clip(np.rint(pts[:, :2] * _ONE), -(1 << 26), 1 << 26).astype(np.int64).tolist()
    return [tuple(p) for p in xy], (pts[:, 2] > threshold).tolist()


def _edn_sizes(width: int, height: int) -> dict[str, int]:
    """Line widths and joint radii in pixels, from OpenPose's area rule, so figures look alike at any size."""
    ratio = max(2, round(math.sqrt(width * height) / 75))  # OpenPose: thicknessCircleRatio = 1/75
    line = max(1, round(ratio * 0.75))  # OpenPose: thicknessLineRatioWRTCircle = 0.75
    return {
        "line": line,
        "joint": max(1, round(line * 0.75)),  # a disc slightly wider than the limb, so joints read as joints
        "hand_line": max(1, round(line / 2)),
        "hand_joint": max(1, round(line / 2)),
        "face_sparse": max(1, round(line / 4)),  # a face is ~1/8 of a body: small dots keep its points apart
        "face_dot": max(1, round(line / 6)),  # the full 70 points sit closer still
        "face_line": max(1, round(line / 10)),
    }


def _draw_edn(img: np.ndarray, body: np.ndarray, hands: np.ndarray, face: np.ndarray, face_mode: str) -> None:
    h, w = img.shape[:2]
    sz = _edn_sizes(w, h)
    aa = cv2.LINE_AA
    p, ok = _fixed(body, THRESHOLDS["body"])
    for a, b in BODY_25_LIMBS:
        if ok[a] and ok[b]:
            cv2.line(img, p[a], p[b], _BODY_BGR[b], sz["line"], aa, _SHIFT)
    r = sz["joint"] * _ONE
    for j in range(25):
        if ok[j]:
            cv2.circle(img, p[j], r, _BODY_BGR[j], -1, aa, _SHIFT)
    r = sz["hand_joint"] * _ONE
    for side in (0, 1):
        colors = _HAND_BGR[side]
        p, ok = _fixed(hands[side], THRESHOLDS["hands"])
        for a, b in HAND_LIMBS:
            if ok[a] and ok[b]:
                cv2.line(img, p[a], p[b], colors[b], sz["hand_line"], aa, _SHIFT)
        for j in range(21):
            if ok[j]:
                cv2.circle(img, p[j], r, colors[j], -1, aa, _SHIFT)
    p, ok = _fixed(face, THRESHOLDS["face"])
    r = sz["face_sparse" if face_mode == "sparse" else "face_dot"] * _ONE
    if face_mode == "full":
        segments = [np.array((p[a], p[b]), np.int32) for a, b in _FACE_SEGMENTS if ok[a] and ok[b]]
        if segments:
            cv2.polylines(img, segments, False, WHITE, sz["face_line"], aa, _SHIFT)
    for j in (FACE_SPARSE_8 if face_mode == "sparse" else range(70)):
        if ok[j]:
            cv2.circle(img, p[j], r, WHITE, -1, aa, _SHIFT)


def _draw_controlnet(img: np.ndarray, body: np.ndarray, hands: np.ndarray, face: np.ndarray, face_mode: str) -> None:
    h, w = img.shape[:2]
    k = min(w, h) / 512.0  # the annotator's sizes are for a 512-pixel short side
    stick = max(1.0, 4 * k)
    aa = cv2.LINE_AA
    coco = body[_COCO_FROM_BODY]
    p, ok = _fixed(coco, THRESHOLDS["body"])
    xy = coco[:, :2].astype(np.float64)
    for i, (a, b) in enumerate(COCO_18_LIMBS):
        if ok[a] and ok[b]:
            d = xy[a] - xy[b]
            mid = (xy[a] + xy[b]) / 2
            axes = (int(round(math.hypot(d[0], d[1]) / 2 * _ONE)), int(round(stick * _ONE)))
            center = (int(round(mid[0] * _ONE)), int(round(mid[1] * _ONE)))
            cv2.ellipse(img, center, axes, math.degrees(math.atan2(d[1], d[0])), 0, 360, _CN_LIMB_BGR[i], -1, aa,
                        _SHIFT)
    r = int(round(max(1.0, 4 * k) * _ONE))
    for j in range(18):
        if ok[j]:
            cv2.circle(img, p[j], r, _CN_JOINT_BGR[j], -1, aa, _SHIFT)
    hand_line = max(1, round(2 * k))
    r = int(round(max(1.0, 4 * k) * _ONE))
    for side in (0, 1):
        p, ok = _fixed(hands[side], THRESHOLDS["hands"])
        for i, (a, b) in enumerate(HAND_LIMBS):
            if ok[a] and ok[b]:
                cv2.line(img, p[a], p[b], _CN_HAND_EDGE_BGR[i], hand_line, aa, _SHIFT)
        for j in range(21):
            if ok[j]:
                cv2.circle(img, p[j], r, _CN_HAND_JOINT_BGR, -1, aa, _SHIFT)
    p, ok = _fixed(face, THRESHOLDS["face"])
    r = int(round(max(1.0, 3 * k) * _ONE))
    for j in (FACE_SPARSE_8 if face_mode == "sparse" else range(70)):
        if ok[j]:
            cv2.circle(img, p[j], r, WHITE, -1, aa, _SHIFT)


def _check(style: str, face_mode: str) -> None:
    if style not in STYLES:
        raise EdnError(f"unknown figure style {style!r}; choose {' or '.join(STYLES)}")
    if face_mode not in FACE_MODES:
        raise EdnError(f"unknown face mode {face_mode!r}; choose {' or '.join(FACE_MODES)}")


# ---------------------------------------------------------------------------------------------------------------
# tracks
# ---------------------------------------------------------------------------------------------------------------
def render_frame(track: PoseTrack, i: int, size: tuple[int, int] | None = None, style: str = "edn",
                 face_mode: str = "sparse") -> np.ndarray:
    """Row `i` of `track`, letterboxed from the track's frame into `size` (default: the track's own size)."""
    size = _size(track, size)
    fr = Framing((track.width, track.height), size)
    return draw_pose(fr.points(track.body[i]), fr.points(track.hands[i]), fr.points(track.face[i]), size,
                     style, face_mode)


def render_track(track: PoseTrack, out_dir: str | Path, size: tuple[int, int] | None = None, style: str = "edn",
                 face_mode: str = "sparse", video: str | Path | None = None,
                 reporter: Reporter | None = None) -> dict:
    """Write `figure_<frame:06d>.png` per row (frame = track.frame_start + row), each atomically, and optionally
    an .mp4 of the same figures. Returns a summary for the CLI."""
    from .outputs import FIGURES, check_output_folder, staged_folder
    from .video import write_image
    from .video_out import VideoWriter

    _check(style, face_mode)
    out_dir = check_output_folder(out_dir, FIGURES, "figures folder")
    size = _size(track, size)
    fr = Framing((track.width, track.height), size)
    body, hands, face = fr.points(track.body), fr.points(track.hands), fr.points(track.face)
    start = time.monotonic()
    pending: collections.deque = collections.deque()
    # PNG encoding and the atomic write release the GIL: two workers overlap them with drawing. The figures go
    # to a folder beside OUT, swapped in when all are written: a rerun never leaves an older run's figures.
    with staged_folder(out_dir) as build, concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool, \
            (VideoWriter(video, fps=track.fps, size=size) if video else _NoVideo()) as writer:
        for i in range(track.frames):
            n = track.frame_start + i
            img = draw_pose(body[i], hands[i], face[i], size, style, face_mode)
            pending.append((i, n, pool.submit(write_image, build / f"figure_{n:06d}.png", img, _PNG)))
            writer.write(img)
            while pending and (len(pending) > 8 or i == track.frames - 1):
                k, m, future = pending.popleft()
                future.result()  # re-raises a write error here, naming the file
                if reporter is not None:
                    reporter.progress(k + 1, track.frames, stage="render", frame=m)
    seconds = time.monotonic() - start
    first = out_dir / f"figure_{track.frame_start:06d}.png" if track.frames else None
    if reporter is not None and first is not None:
        reporter.preview(str(first))
    return {"frames": track.frames, "output": str(out_dir), "first": str(first) if first else None,
            "size": list(size), "style": style, "face": face_mode, "video": str(video) if video else None,
            "framing": fr.to_dict(), "seconds": round(seconds, 3),
            "frames_per_second": round(track.frames / seconds, 1) if seconds > 0 else None}


class _NoVideo:
    def __enter__(self):
        return self

    def write(self, img) -> None:
        pass

    def __exit__(self, *exc) -> bool:
        return False


def _size(track: PoseTrack, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is None:
        return (track.width, track.height)
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise EdnError(f"figure size {w}x{h} must be positive")
    return (w, h)
