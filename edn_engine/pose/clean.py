"""Cleaning a pose track: fill short detection gaps, then smooth over time, per part (body, hands, face).

Why: detectors drop a joint for a frame or two and jitter by a few pixels; the generator turns both into flicker.
The paper smooths with a 7-frame median; a One-Euro filter (smooths more at rest than in motion; run forwards and
backwards so it does not lag) and Savitzky-Golay (keeps the peaks of fast moves better than a median) are options.

Rules, per keypoint series:
* Gap filling: a run of at most `max_gap` missing frames with a detection on both sides is filled by linear
  interpolation of x and y. Its confidence is the lower of the two bridging detections, with no extra discount:
  a discount would push filled points under the renderer's confidence threshold and bring back the very flicker
  the filling removes. Longer gaps stay missing.
* Smoothing only ever uses and changes present frames: a missing point stays missing, and nothing appears before
  a keypoint's first or after its last detection. The median window shrinks at the ends of the track.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import EdnError
from .skeleton import PARTS
from .track import PoseTrack

METHODS = ("median", "one_euro", "savgol")
DEFAULT_MEDIAN = 7  # the paper's window
DEFAULT_MAX_GAP = 5  # frames; 1/6 s at 30 fps: a blink of the detector, not a real exit from the frame
_CHUNK = 2048  # rows per median pass: memory stays flat on long tracks


@dataclasses.dataclass(frozen=True)
class OneEuroParams:
    """One-Euro filter (Casiez et al. 2012) on coordinates measured in frame heights, so one setting fits any size."""

    min_cutoff: float = 1.0  # Hz: smoothing at rest
    beta: float = 5.0  # cutoff rise per (frame height / s) of speed: fast moves are followed closely
    d_cutoff: float = 1.0  # Hz: smoothing of the speed estimate


def clean_track(track: PoseTrack, *, median: int = DEFAULT_MEDIAN, max_gap: int = DEFAULT_MAX_GAP,
                method: str = "median", parts: tuple[str, ...] = PARTS,
                one_euro: OneEuroParams = OneEuroParams(), savgol_order: int = 2) -> PoseTrack:
    """Return a cleaned copy of `track`.

    `median` is the smoothing window in frames (odd; 1 turns smoothing off): the median's window, and the
    Savitzky-Golay window. The One-Euro filter has no window. `max_gap` 0 turns gap filling off.
    """
    if method not in METHODS:
        raise EdnError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")
    if median < 1 or median % 2 == 0:
        raise EdnError(f"--median (the smoothing window) must be an odd number of frames, 1 or more, not {median}")
    if max_gap < 0:
        raise EdnError(f"--max-gap (the largest gap to fill) must be 0 or more frames, not {max_gap}")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise EdnError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if method == "savgol" and median <= savgol_order:
        raise EdnError(f"the Savitzky-Golay window ({median}) must be longer than its order ({savgol_order})")

    out = track.copy()
    for part in parts:
        arr = getattr(out, part)
        pts = arr.reshape(arr.shape[0], -1, 3)  # (T, K, 3) view
        pts = fill_gaps(pts, max_gap)
        if method == "median":
            pts = median_filter(pts, median)
        elif method == "savgol":
            pts = savgol_filter(pts, median, savgol_order)
        else:
            pts = one_euro_filter(pts, fps=track.fps, scale=float(track.height), params=one_euro)
        setattr(out, part, np.ascontiguousarray(pts.reshape(arr.shape), dtype=np.float32))
    out.validate()
    return out


def fill_gaps(pts: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate runs of at most `max_gap` missing frames bounded by detections. (T, K, 3) -> copy."""
    out = np.array(pts, dtype=np.float32, copy=True)
    frames = out.shape[0]
    if max_gap <= 0 or frames < 3:
        return out
    present = out[..., 2] > 0
    t = np.arange(frames)[:, None]
    prev = np.maximum.accumulate(np.where(present, t, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(present, t, frames)[::-1], axis=0)[::-1]
    fill = ~present & (prev >= 0) & (nxt < frames) & (nxt - prev - 1 <= max_gap)
    if not fill.any():
        return out
    p = np.clip(prev, 0, frames - 1)
    n = np.clip(nxt, 0, frames - 1)
    before = np.take_along_axis(out, p[..., None], axis=0)
    after = np.take_along_axis(out, n[..., None], axis=0)
    w = ((t - prev) / np.maximum(nxt - prev, 1)).astype(np.float32)[..., None]
    xy = before[..., :2] * (1 - w) + after[..., :2] * w
    conf = np.minimum(before[..., 2], after[..., 2])
    out[..., :2] = np.where(fill[..., None], xy, out[..., :2])
    out[..., 2] = np.where(fill, conf, out[..., 2])
    return out


def median_filter(pts: np.ndarray, window: int) -> np.ndarray:
    """Per-coordinate median over a centred window of present frames (the paper's smoothing).

    Near a gap or an end of the track the window shrinks symmetrically (to 1 frame at the last detection), so
    a moving point is not dragged toward its inner neighbours there.
    """
    out = np.array(pts, dtype=np.float32, copy=True)
    if window <= 1:
        return out
    half = window // 2
    present = out[..., 2] > 0
    reach = np.minimum(np.minimum(_run_reach(present), _run_reach(present[::-1])[::-1]), half)  # (T, K)
    offsets = np.abs(np.arange(window) - half)
    vals = np.where(present[..., None], out, np.nan)
    padded = np.pad(vals, ((half, half), (0, 0), (0, 0)), constant_values=np.nan)
    for a in range(0, out.shape[0], _CHUNK):
        b = min(a + _CHUNK, out.shape[0])
        win = np.lib.stride_tricks.sliding_window_view(padded[a:b + 2 * half], window, axis=0)  # (n, K, 3, w)
        outside = offsets > reach[a:b, :, None, None]
        win = np.sort(np.where(outside, np.nan, win), axis=-1)  # NaNs (missing or outside) sort last
        count = np.sum(~np.isnan(win[..., 0, :]), axis=-1)  # (n, K) frames in each window
        lo = np.clip((count - 1) // 2, 0, window - 1)[..., None, None]
        hi = np.clip(count // 2, 0, window - 1)[..., None, None]
        med = (np.take_along_axis(win, lo, axis=-1) + np.take_along_axis(win, hi, axis=-1))[..., 0] / 2
        out[a:b] = np.where(present[a:b, :, None], med, out[a:b])
    return out


def _run_reach(present: np.ndarray) -> np.ndarray:
    """For each (t, k): how many present frames directly precede t (0 at a run's first frame)."""
    frames = present.shape[0]
    t = np.arange(frames)[:, None]
    last_missing = np.maximum.accumulate(np.where(present, -1, t), axis=0)
    return t - last_missing - 1


def savgol_filter(pts: np.ndarray, window: int, order: int = 2) -> np.ndarray:
    """Savitzky-Golay on each run of consecutive present frames (shorter runs use the largest window that fits)."""
    from scipy.signal import savgol_filter as _savgol

    out = np.array(pts, dtype=np.float32, copy=True)
    if window <= 1:
        return out
    for k in range(out.shape[1]):
        for a, b in _runs(out[:, k, 2] > 0):
            w = min(window, (b - a) if (b - a) % 2 else (b - a) - 1)
            if w > order:
                out[a:b, k, :2] = _savgol(out[a:b, k, :2].astype(np.float64), w, order, axis=0, mode="interp")
    return out


def one_euro_filter(pts: np.ndarray, fps: float, scale: float,
                    params: OneEuroParams = OneEuroParams()) -> np.ndarray:
    """One-Euro filter over time for all keypoints at once, restarting after every missing frame.

    The filter is causal and so lags behind motion; offline we can do better: it runs forwards and backwards and
    the two passes are averaged, which cancels the lag to first order (the two lags have opposite signs).
    """
    out = np.array(pts, dtype=np.float32, copy=True)
    present = out[..., 2] > 0
    xy = out[..., :2].astype(np.float64) / scale
    forward = _one_euro_pass(xy, present, fps, params)
    backward = _one_euro_pass(xy[::-1], present[::-1], fps, params)[::-1]
    out[..., :2] = np.where(present[..., None], (forward + backward) / 2 * scale, out[..., :2])
    return out


def _one_euro_pass(xy: np.ndarray, present: np.ndarray, fps: float, params: OneEuroParams) -> np.ndarray:
    """Causal One-Euro (Casiez et al. 2012) on (T, K, 2); missing frames are skipped and restart the filter."""
    te = 1.0 / fps

    def alpha(cutoff):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    out = xy.copy()
    k = xy.shape[1]
    a_d = alpha(params.d_cutoff)
    x_prev = np.zeros((k, 2))
    dx_prev = np.zeros((k, 2))
    had = np.zeros(k, bool)
    for t in range(xy.shape[0]):
        p = present[t]
        go_on = (p & had)[:, None]
        dx_hat = a_d * (xy[t] - x_prev) * fps + (1 - a_d) * dx_prev
        a = alpha(params.min_cutoff + params.beta * np.abs(dx_hat))
        x_hat = np.where(go_on, a * xy[t] + (1 - a) * x_prev, xy[t])
        out[t] = x_hat
        x_prev = np.where(p[:, None], x_hat, x_prev)
        dx_prev = np.where(go_on, dx_hat, 0.0)
        had = p
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
