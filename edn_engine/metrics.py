"""The evaluation figures as pure functions over arrays: image similarity, pose error, detection rates, flicker.

These follow the paper's protocol (Chan et al. 2019, section 6): SSIM and PSNR against the real frame for the
whole frame and for crops (the person's matte box, the face box), the distance between the pose detected on a
generated frame and the reference pose in torso lengths, and the share of reference keypoints the detector
misses. SSIM and PSNR come from scikit-image so the numbers match other papers' tools. Beyond the paper: whether
the detector finds a person, hands and face on an output at all, the error of the main body joints alone, and the
PSNR of the background outside the (grown) matte, which a composite over the real plate should keep. `Scorer`
gathers them for one method over a clip, a frame at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .pose.skeleton import B, BODY_25_MIRROR

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels

PSNR_CAP = 100.0  # identical images have infinite PSNR; a finite cap keeps JSON valid and averages meaningful
BACKGROUND_MARGIN = 0.03  # the matte grown by this share of the frame's longer side: a matte's edge is not exact
INTERIOR_MARGIN = 0.005  # the matte shrunk by this share of the longer side: its soft edge is not the person's inside


def ssim(real: np.ndarray, fake: np.ndarray) -> float:
    """SSIM of two uint8 images (H, W) or (H, W, 3); 1.0 when identical. Small crops shrink the window."""
    real, fake = _pair(real, fake)
    side = min(real.shape[0], real.shape[1])
    if side < 3:
        return float(np.mean(real == fake))
    win = min(7, side if side % 2 else side - 1)
    channel_axis = 2 if real.ndim == 3 else None
    return float(structural_similarity(real, fake, data_range=255, channel_axis=channel_axis, win_size=win))


def psnr(real: np.ndarray, fake: np.ndarray) -> float:
    """PSNR in dB of two uint8 images, capped at PSNR_CAP for identical images."""
    real, fake = _pair(real, fake)
    if np.array_equal(real, fake):
        return PSNR_CAP
    return float(min(PSNR_CAP, peak_signal_noise_ratio(real, fake, data_range=255)))


def crop(img: np.ndarray, box: Box | None) -> np.ndarray:
    if box is None:
        return img
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def matte_box(matte: np.ndarray, pad: float = 0.05, threshold: float = 0.5) -> Box | None:
    """Bounding box of the person in a matte (H, W) in [0, 1] or [0, 255], padded by a share of its size.

    None when the matte is empty (then the person-region figures skip this frame).
    """
    m = np.asarray(matte, np.float32)
    if m.max() > 1.0:
        m = m / 255.0
    ys, xs = np.nonzero(m > threshold)
    if xs.size == 0:
        return None
    h, w = m.shape[:2]
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    px, py = int(round((x1 - x0) * pad)), int(round((y1 - y0) * pad))
    return (max(0, x0 - px), max(0, y0 - py), min(w, x1 + px), min(h, y1 + py))


def clip_box(box, width: int, height: int) -> Box | None:
    """A box (x0, y0, x1, y1) clipped to the image; None when nothing is left."""
    if box is None:
        return None
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (x0, y0, x1, y1)


def background_mask(matte: np.ndarray, margin: float = BACKGROUND_MARGIN) -> np.ndarray:
    """Where the frame is surely background: outside the matte (uint8, 255 = person) grown by `margin` of the
    frame's longer side, so the figure does not count the matte's own edge errors as background errors."""
    outside = (np.asarray(matte) <= 127).astype(np.uint8)
    if outside.all():
        return np.ones(outside.shape, bool)
    grow = margin * max(outside.shape)
    return cv2.distanceTransform(outside, cv2.DIST_L2, 5) > grow  # distance to the nearest person pixel


def person_interior(matte: np.ndarray, margin: float = INTERIOR_MARGIN) -> np.ndarray:
    """Where the frame is surely the person: inside the matte (uint8, 255 = person) by more than `margin` of the
    frame's longer side (and at least its outermost pixel), so the matte's own soft edge does not count."""
    inside = (np.asarray(matte) > 127).astype(np.uint8)
    return cv2.distanceTransform(inside, cv2.DIST_L2, 5) > max(margin * max(inside.shape), 1.0)


def masked_psnr(real: np.ndarray, fake: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the pixels where `mask` (H, W) is True, capped at PSNR_CAP; NaN for an empty mask."""
    real, fake = _pair(real, fake)
    if not mask.any():
        return float("nan")
    mse = float(np.mean((real[mask].astype(np.float64) - fake[mask]) ** 2))
    return PSNR_CAP if mse == 0 else float(min(PSNR_CAP, 10 * np.log10(255.0 ** 2 / mse)))


# -- pose -----------------------------------------------------------------------------------------------

def torso_length(body: np.ndarray) -> float:
    """Neck to mid-hip distance of one BODY_25 pose (25, 3); NaN when either point is missing."""
    neck, hip = body[B["Neck"]], body[B["MidHip"]]
    if neck[2] <= 0 or hip[2] <= 0:
        return float("nan")
    return float(np.hypot(*(neck[:2] - hip[:2])))


# The flat keypoint layout (see flat_pose) and the body joints the body error is measured on.
BODY, HANDS, FACE = slice(0, 25), slice(25, 67), slice(67, 137)
MAIN_NAMES = ("Nose", "Neck", "RShoulder", "LShoulder", "RElbow", "LElbow", "RWrist", "LWrist", "RHip", "LHip",
              "RKnee", "LKnee", "RAnkle", "LAnkle")
MAIN_BODY = tuple(B[name] for name in MAIN_NAMES)
# The same joints with each left one and its right twin swapped: the pose as read by a detector that takes a
# person facing the camera for one seen from behind.
MIRRORED_BODY = tuple(BODY_25_MIRROR[i] for i in MAIN_BODY)


def flat_pose(body: np.ndarray, hands: np.ndarray, face: np.ndarray) -> np.ndarray:
    """One frame's keypoints as (25 + 42 + 70, 3): body, left hand, right hand, face."""
    return np.concatenate([body.reshape(-1, 3), hands.reshape(-1, 3), face.reshape(-1, 3)], axis=0)


def pose_errors(detected: np.ndarray, reference: np.ndarray, torso: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pose distance and miss rate.

    detected, reference: (T, K, 3) keypoints; torso: (T,) reference torso lengths in pixels.
    Distance: mean over keypoints present in both of the pixel distance divided by the torso length (NaN when
    no keypoint is shared). Miss rate: the share of the reference's keypoints the detector did not find.
    """
    ref_on = reference[..., 2] > 0
    det_on = detected[..., 2] > 0
    both = ref_on & det_on
    dist = np.linalg.norm(detected[..., :2] - reference[..., :2], axis=-1) / np.maximum(torso, 1e-6)[:, None]
    n_both = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(n_both > 0, (dist * both).sum(axis=1) / np.maximum(n_both, 1), np.nan)
        n_ref = ref_on.sum(axis=1)
        missed = np.where(n_ref > 0, (ref_on & ~det_on).sum(axis=1) / np.maximum(n_ref, 1), np.nan)
    return err.astype(np.float64), missed.astype(np.float64)


FLIP_GAP = 0.25  # torso lengths: a flip moves each limb by a shoulder's or a hip's width, not by detector noise


def facing_flipped(detected: np.ndarray, reference: np.ndarray, torso: np.ndarray) -> np.ndarray:
    """Per frame: whether the detector read the output facing the other way (1.0) or not (0.0), NaN unless both
    frames show a person. Flipped: the main joints with left and right swapped lie at less than half the distance
    of the joints as labelled, and at least FLIP_GAP closer (side-on, where left and right nearly coincide, a few
    pixels of noise is no flip; nor is a frame whose swapped joints share none with the reference). A generated
    face too faint to tell front from back flips the labels, and each flipped frame then adds about a torso
    length to the body and pose errors with every limb where it belongs."""
    as_is = body_errors(detected, reference, torso)
    swapped, _ = pose_errors(detected[:, MIRRORED_BODY], reference[:, MAIN_BODY], torso)
    with np.errstate(invalid="ignore"):
        flipped = (swapped < 0.5 * as_is) & (as_is - swapped > FLIP_GAP)
    return np.where(np.isfinite(as_is), flipped.astype(np.float64), np.nan)


def found(points: np.ndarray) -> np.ndarray:
    """(..., K, 3) keypoints -> (...): whether any of the K points is present (the part was detected)."""
    return (np.asarray(points)[..., 2] > 0).any(axis=-1)


def person_found(detected: np.ndarray) -> float | None:
    """Share of frames (T, 137, 3) with any body joint: did the detector see a person at all."""
    return float(found(detected[:, BODY]).mean()) if len(detected) else None


def body_errors(detected: np.ndarray, reference: np.ndarray, torso: np.ndarray) -> np.ndarray:
    """Per-frame mean distance over the MAIN_BODY joints present in both, in torso lengths; NaN unless both
    frames show a person. Hands and face are left out: their detector noise would drown the body's error."""
    err, _ = pose_errors(detected[:, MAIN_BODY], reference[:, MAIN_BODY], torso)
    return np.where(found(detected[:, BODY]) & found(reference[:, BODY]), err, np.nan)


def part_shown(frames: np.ndarray, part: str) -> np.ndarray:
    """Per hand (two a frame, each counted) or per face: whether the detector found it in these frames'
    rows of keypoints. part: "hands" or "face"."""
    sl, shape = (HANDS, (2, 21, 3)) if part == "hands" else (FACE, (1, 70, 3))
    return found(frames[:, sl].reshape(-1, *shape))


def part_found_rate(detected: np.ndarray, reference: np.ndarray, part: str) -> float | None:
    """Share of the hands (each counted) or faces shown in the reference frames that the detector also finds
    on the output frames; None when the reference never shows one. part: "hands" or "face"."""
    shown = part_shown(reference, part)
    hit = part_shown(detected, part) & shown
    return float(hit.sum() / shown.sum()) if shown.any() else None


def robust_torso(bodies: np.ndarray) -> np.ndarray:
    """Per-frame torso length, with missing frames filled by the clip's median (a person's torso is constant)."""
    t = np.array([torso_length(b) for b in bodies], np.float64)
    fill = np.nanmedian(t) if np.isfinite(t).any() else float("nan")
    return np.where(np.isfinite(t), t, fill)


# -- flicker --------------------------------------------------------------------------------------------

class FlickerMeter:
    """Flicker accumulated pair by pair (a long clip is never held in memory): the change between consecutive
    generated frames over that between the real ones, in the same region; 1.0 = as steady as the footage."""

    def __init__(self) -> None:
        self.generated = 0.0
        self.real = 0.0

    def add(self, generated: tuple[np.ndarray, np.ndarray], real: tuple[np.ndarray, np.ndarray],
            mask: np.ndarray) -> None:
        if mask.any():
            self.generated += _change(*generated, mask)
            self.real += _change(*real, mask)

    def ratio(self) -> float:
        return self.generated / self.real if self.real > 0 else float("nan")


def _change(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Summed absolute change (0-255, channels averaged) from a to b inside the boolean mask (H, W)."""
    diff = np.abs(b.astype(np.float32) - a.astype(np.float32))
    if diff.ndim == 3:
        diff = diff.mean(axis=2)
    return float(diff[mask].sum(dtype=np.float64))


def flicker_ratio(generated: list[tuple[np.ndarray, np.ndarray]], real: list[tuple[np.ndarray, np.ndarray]],
                  masks: list[np.ndarray]) -> float:
    """FlickerMeter over lists of consecutive (a, b) pairs and their region masks."""
    meter = FlickerMeter()
    for g, r, m in zip(generated, real, masks):
        meter.add(g, r, m)
    return meter.ratio()


FIGURES = ("ssim_frame", "psnr_frame", "ssim_person", "psnr_person", "ssim_face", "pose_error", "missed_rate",
           "flicker", "person_found", "body_error", "hands_found", "face_found", "background_psnr",
           "alpha_person", "alpha_background", "facing_flipped")
IMAGE_FIGURES = ("ssim_frame", "psnr_frame", "ssim_person", "psnr_person", "ssim_face", "background_psnr",
                 "alpha_person", "alpha_background")


# -- one method over a clip ---------------------------------------------------------------------------

@dataclass
class Sample:
    """One evaluated frame, at any size: the real frame, its matte (or None), its face box (or None)."""

    frame: int
    real: np.ndarray  # BGR uint8 (H, W, 3)
    matte: np.ndarray | None  # uint8 (H, W)
    face_box: tuple[int, int, int, int] | None

    @cached_property
    def background(self) -> np.ndarray | None:
        """Where the frame is surely background (computed once, shared by every method scored on it)."""
        return None if self.matte is None else background_mask(self.matte)


class Scorer:
    """One method's figures, fed a frame at a time: only the previous frame is kept (for flicker), so frames of
    any size over a clip of any length are scored in flat memory. The pose figures come at the end, from the
    keypoints the detector found on all the outputs and the real frames."""

    def __init__(self) -> None:
        self.frames = 0
        self.values: dict[str, list[float]] = {k: [] for k in IMAGE_FIGURES}
        self.flicker = FlickerMeter()
        self._last: tuple[Sample, np.ndarray] | None = None

    def add(self, smp: Sample, out: np.ndarray, alpha: np.ndarray | None = None) -> None:
        """Score the method's image `out` (BGR uint8, the real frame's size) for `smp`; `alpha` (uint8, the same
        size): the matte it hands to a compositor, if it makes one. Its mean inside the real person
        (`alpha_person`, 0-1) says how much of another plate would show through them, and over the sure background
        (`alpha_background`) how much veil it would lay over that plate."""
        v = self.values
        if alpha is not None and smp.matte is not None:
            a = np.asarray(alpha, np.float32) / 255.0
            inside = person_interior(smp.matte)
            v["alpha_person"].append(float(a[inside].mean()) if inside.any() else float("nan"))
            v["alpha_background"].append(float(a[smp.background].mean()) if smp.background.any() else float("nan"))
        v["ssim_frame"].append(ssim(smp.real, out))
        v["psnr_frame"].append(psnr(smp.real, out))
        box = person_box(smp)
        if box is not None:
            real, fake = crop(smp.real, box), crop(out, box)
            v["ssim_person"].append(ssim(real, fake))
            v["psnr_person"].append(psnr(real, fake))
        if smp.face_box is not None:
            v["ssim_face"].append(ssim(crop(smp.real, smp.face_box), crop(out, smp.face_box)))
        if smp.background is not None:
            v["background_psnr"].append(masked_psnr(smp.real, out, smp.background))
        if self._last is not None and smp.frame == self._last[0].frame + 1:
            last, last_out = self._last
            self.flicker.add((last_out, out), (last.real, smp.real), region_mask(last, smp))
        self._last = (smp, out)
        self.frames += 1

    def figures(self, detected: np.ndarray, reference: np.ndarray) -> dict:
        """Every figure; detected/reference: (N, 137, 3) keypoints found on the outputs / on the real frames
        (or ground truth), in the order the frames were added."""
        if len(detected) != self.frames or len(reference) != self.frames:
            raise ValueError(f"{self.frames} frames scored but {len(detected)} / {len(reference)} poses given")
        empty = np.zeros(0)
        torso = robust_torso(reference[:, BODY]) if self.frames else empty
        err, missed = pose_errors(detected, reference, torso) if self.frames else (empty, empty)
        body = body_errors(detected, reference, torso) if self.frames else empty
        flicker = self.flicker.ratio()
        out = {
            **{k: mean(self.values[k]) for k in IMAGE_FIGURES},
            "pose_error": mean(err), "missed_rate": mean(missed),
            "flicker": float(flicker) if np.isfinite(flicker) else None,
            "person_found": person_found(detected), "body_error": mean(body),
            "hands_found": part_found_rate(detected, reference, "hands"),
            "face_found": part_found_rate(detected, reference, "face"),
            "facing_flipped": mean(facing_flipped(detected, reference, torso)) if self.frames else None,
        }
        return {k: out[k] for k in FIGURES}


def score(samples: Iterable[Sample], outputs: Iterable[np.ndarray], detected: np.ndarray,
          reference: np.ndarray) -> dict:
    """The figures (FIGURES) for one method: outputs[i] is its image for samples[i] (BGR uint8, any size, the
    same as the real frame's). Both may be generators: frames are read and scored one at a time."""
    scorer = Scorer()
    for smp, out in zip(samples, outputs, strict=True):
        scorer.add(smp, out)
    return scorer.figures(detected, reference)


def person_box(smp: Sample) -> tuple[int, int, int, int] | None:
    """The person region: the real matte's box; the whole frame when the dataset has no mattes."""
    h, w = smp.real.shape[:2]
    if smp.matte is None:
        return (0, 0, w, h)
    return matte_box(smp.matte)


def region_mask(a: Sample, b: Sample) -> np.ndarray:
    """Where flicker is measured between two frames: the union of their mattes (or everywhere)."""
    h, w = a.real.shape[:2]
    if a.matte is None or b.matte is None:
        return np.ones((h, w), bool)
    return (a.matte > 127) | (b.matte > 127)


def mean(values) -> float | None:
    """Mean of the finite values, or None (JSON null) when there are none."""
    arr = np.asarray(list(values), np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def _pair(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(real)
    fake = np.asarray(fake)
    if real.shape != fake.shape:
        raise ValueError(f"images differ in shape: {real.shape} vs {fake.shape}")
    return real.astype(np.uint8, copy=False), fake.astype(np.uint8, copy=False)
