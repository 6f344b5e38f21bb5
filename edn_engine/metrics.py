"""The evaluation figures as pure functions over arrays: image similarity, pose error, flicker, retrieval.

These follow the paper's protocol (Chan et al. 2019, section 6): SSIM and PSNR against the real frame for the
whole frame and for crops (the person's matte box, the face box), the distance between the pose detected on a
generated frame and the reference pose in torso lengths, and the share of reference keypoints the detector
misses. SSIM and PSNR come from scikit-image so the numbers match other papers' tools.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .pose.skeleton import B

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels

PSNR_CAP = 100.0  # identical images have infinite PSNR; a finite cap keeps JSON valid and averages meaningful


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


# -- pose -----------------------------------------------------------------------------------------------

def torso_length(body: np.ndarray) -> float:
    """Neck to mid-hip distance of one BODY_25 pose (25, 3); NaN when either point is missing."""
    neck, hip = body[B["Neck"]], body[B["MidHip"]]
    if neck[2] <= 0 or hip[2] <= 0:
        return float("nan")
    return float(np.hypot(*(neck[:2] - hip[:2])))


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


def robust_torso(bodies: np.ndarray) -> np.ndarray:
    """Per-frame torso length, with missing frames filled by the clip's median (a person's torso is constant)."""
    t = np.array([torso_length(b) for b in bodies], np.float64)
    fill = np.nanmedian(t) if np.isfinite(t).any() else float("nan")
    return np.where(np.isfinite(t), t, fill)


# -- flicker --------------------------------------------------------------------------------------------

def temporal_change(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """Mean absolute change (0-255) between consecutive frames (a, b) inside a boolean region mask (H, W)."""
    total, count = 0.0, 0
    for a, b, mask in pairs:
        if not mask.any():
            continue
        diff = np.abs(b.astype(np.float32) - a.astype(np.float32))
        if diff.ndim == 3:
            diff = diff.mean(axis=2)
        total += float(diff[mask].sum())
        count += int(mask.sum())
    return total / count if count else float("nan")


def flicker_ratio(generated: list[tuple[np.ndarray, np.ndarray]], real: list[tuple[np.ndarray, np.ndarray]],
                  masks: list[np.ndarray]) -> float:
    """Temporal change of generated consecutive pairs over that of the real ones; 1.0 = as steady as the footage."""
    real_change = temporal_change([(a, b, m) for (a, b), m in zip(real, masks)])
    if not real_change > 0:
        return float("nan")
    return temporal_change([(a, b, m) for (a, b), m in zip(generated, masks)]) / real_change


# -- retrieval baseline -----------------------------------------------------------------------------------

def normalized_pose(body: np.ndarray) -> np.ndarray:
    """A BODY_25 pose (25, 3) centred on its visible points and scaled by torso length (translation and size
    invariant, so retrieval matches the posture rather than the place)."""
    out = np.zeros_like(body, dtype=np.float32)
    on = body[:, 2] > 0
    if not on.any():
        return out
    centre = body[on, :2].mean(axis=0)
    scale = torso_length(body)
    if not scale > 0:
        xy = body[on, :2]
        scale = max(float(np.ptp(xy[:, 1])), 1.0) / 3.0
    out[on, :2] = (body[on, :2] - centre) / scale
    out[:, 2] = on
    return out


def nearest_poses(queries: np.ndarray, library: np.ndarray) -> np.ndarray:
    """For each query pose (Q, 25, 3), the index of the closest library pose (N, 25, 3) after normalization.

    Distance: mean over joints present in both; joints present in only one count as a fixed penalty so a
    partial match does not beat a full one.
    """
    q = np.stack([normalized_pose(p) for p in queries])
    lib = np.stack([normalized_pose(p) for p in library])
    out = np.empty(len(q), np.int64)
    penalty = 1.0  # one torso length
    for i, p in enumerate(q):
        both = (p[None, :, 2] > 0) & (lib[:, :, 2] > 0)
        either = (p[None, :, 2] > 0) | (lib[:, :, 2] > 0)
        d = np.linalg.norm(lib[:, :, :2] - p[None, :, :2], axis=-1)
        cost = (np.where(both, d, 0).sum(axis=1) + penalty * (either & ~both).sum(axis=1)) / np.maximum(
            either.sum(axis=1), 1)
        out[i] = int(np.argmin(cost))
    return out


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
