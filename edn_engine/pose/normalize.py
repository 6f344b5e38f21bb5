"""Global pose normalization (the paper's section 3.2), generalized to BODY_25: source poses into the target's frame.

Why: the generator only knows the target person at the sizes and floor positions of its training video. A source
dancer who is taller, or filmed closer, must be rescaled and moved so that each frame shows a body the target
video could have shown at that spot on the floor, with the target's own perspective (people further back, i.e.
feet higher in the frame, look smaller).

Per video (source and target) we measure, from frames where the head and both ankles are found:
* ankle position: the y of the lower ankle in the image (the standing foot), per frame;
* close: the 98th percentile of the ankle positions. The paper takes the maximum; a percentile ignores the few
  frames where a detector puts an ankle at the frame's bottom edge;
* far: the smallest ankle position at most 0.5 * (close - median) above the median (`far_band`), as the
  official code computes it (the paper words it as "median minus the largest gap in the lower half"). Not the
  raw minimum: jumps lift the ankles above any floor position the dancer stands on, and glitches land anywhere.
  A wider band (1.0) reaches the true far end of an even walk but, in our tests, let jumps near the back of the
  floor set `far` and its height; with 0.5, `far` sits inside the range, where standing frames outnumber jumps,
  and positions further back are reached by extrapolation, which is as good as the linear model itself;
* height: head to the midpoint of the ankles (head = nose, else the eyes' midpoint, else the ears'), taken as
  the 75th percentile over frames whose ankles lie near `close` (resp. `far`): within 2% of (close - far), or the
  7 nearest frames. An upper percentile because crouches and bows only ever shorten the measure (the paper takes
  the maximum); not the maximum or the 90th, because a jump seen at a floor row it does not stand on is too
  tall for that row, and one such frame among few would set it. The band is narrow because height changes
  with the row: the official 5% band biased our synthetic perspective tests by up to 4%;
* centre x: the mean over frames of the torso's x.

If the source moves through less depth than the target (measured in body heights), the target's far..close range
is narrowed around its middle to the source's extent, as the official code does, so a dancer who stays on one
spot is not stretched over the whole of the target's floor (which would turn detector noise into big jumps back
and forth). Heights at the narrowed positions are interpolated between the target's far and close heights.

Per source frame with ankle position a (interpolated in time where the ankles are missing):
    p = (a - s_far) / (s_close - s_far)
    scale s = s_far_scale + p * (s_close_scale - s_far_scale)   ("linear", the paper's rule), with
              scale_close = target height at close / source height at close, the same at far; or
    scale s = target height(p) / source height(p), heights interpolated linearly ("height"): exact for a
              pinhole camera over a flat floor, where height is linear in ankle position;
              both rules extrapolate beyond far..close (p outside 0..1), the scale kept within half the smaller
              and twice the larger of the two anchor scales so that a glitch cannot blow a figure up;
    vertical: the source ankle a goes to the target's ankle position t_far + p * (t_close - t_far), and the
              body keeps its shape about it, scaled by s;
    horizontal: x' = target centre x + s * (x - source centre x): the source's sideways motion about its own
              mean, scaled, about the target's mean.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import EdnError
from .skeleton import B
from .track import PoseTrack

INTERPOLATIONS = ("linear", "height")
_TORSO = (B["Neck"], B["MidHip"], B["RHip"], B["LHip"], B["RShoulder"], B["LShoulder"])


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    close_percentile: float = 98.0
    far_band: float = 0.5  # far = lowest ankle within far_band * (close - median) above the median
    height_band: float = 0.02  # frames "near" a position: ankle within this fraction of (close - far)
    height_percentile: float = 75.0
    min_frames: int = 7  # at least this many frames measure a height
    interpolation: str = "linear"  # "linear": the paper's; "height": ratio of interpolated heights


@dataclasses.dataclass
class VideoAnchors:
    """What global normalization measures in one video (pixels of that video)."""

    close: float  # ankle y nearest the camera
    far: float  # ankle y furthest from the camera (floor only, jumps excluded)
    height_close: float  # head-to-ankles height near `close`
    height_far: float
    center_x: float
    frames_measured: int  # frames with head and both ankles

    def height_at(self, ankle_y: np.ndarray | float) -> np.ndarray | float:
        """Height linearly interpolated (and extrapolated) in ankle position."""
        if self.close - self.far <= 1e-6:
            return (self.height_close + self.height_far) / 2
        p = (np.asarray(ankle_y) - self.far) / (self.close - self.far)
        return self.height_far + p * (self.height_close - self.height_far)


@dataclasses.dataclass
class NormalizeParams:
    source: VideoAnchors
    target: VideoAnchors
    target_close: float  # target ankle positions the source's close/far map to (narrowed if needed)
    target_far: float
    scale_close: float
    scale_far: float
    range_narrowed: bool
    interpolation: str
    source_size: tuple[int, int]
    target_size: tuple[int, int]
    scale: np.ndarray  # (T,) per source frame
    offset: np.ndarray  # (T, 2): x' = scale * x + offset[0], y' = scale * y + offset[1]
    ankle: np.ndarray  # (T,) source ankle position used per frame

    def to_dict(self) -> dict:
        return {
            "method": "global pose normalization (Chan et al. 2019, sec. 3.2), BODY_25",
            "interpolation": self.interpolation,
            "source_size": list(self.source_size),
            "target_size": list(self.target_size),
            "source": _rounded(dataclasses.asdict(self.source)),
            "target": _rounded(dataclasses.asdict(self.target)),
            "target_close_used": round(self.target_close, 3),
            "target_far_used": round(self.target_far, 3),
            "range_narrowed": self.range_narrowed,
            "scale_close": round(self.scale_close, 6),
            "scale_far": round(self.scale_far, 6),
            "per_frame": {
                "scale": [round(float(v), 6) for v in self.scale],
                "offset_x": [round(float(v), 3) for v in self.offset[:, 0]],
                "offset_y": [round(float(v), 3) for v in self.offset[:, 1]],
                "source_ankle_y": [round(float(v), 3) for v in self.ankle],
            },
        }


def normalize_track(source: PoseTrack, target: PoseTrack, config: NormalizeConfig = NormalizeConfig(),
                    source_name: str = "source track", target_name: str = "target track",
                    ) -> tuple[PoseTrack, NormalizeParams]:
    """Map `source`'s poses into `target`'s frame (size, floor positions, perspective). Returns (track, params)."""
    if config.interpolation not in INTERPOLATIONS:
        raise EdnError(f"unknown scale interpolation {config.interpolation!r}; choose {' or '.join(INTERPOLATIONS)}")
    s = measure(source, config, source_name)
    t = measure(target, config, target_name)

    # Narrow the target's range to the source's depth extent (in body heights) when the source moves less.
    s_range, t_range = s.close - s.far, t.close - t.far
    narrowed = s_range / s.height_close < t_range / t.height_close * (1 - 1e-6)
    if narrowed:
        mid, half = (t.close + t.far) / 2, s_range / s.height_close * t.height_close / 2
        t_close, t_far = mid + half, mid - half
    else:
        t_close, t_far = t.close, t.far
    th_close, th_far = float(t.height_at(t_close)), float(t.height_at(t_far))
    scale_close, scale_far = th_close / s.height_close, th_far / s.height_far

    ankle = _ankle_track(source, source_name)
    degenerate = s_range < 1e-3 * s.height_close  # a source that never moves in depth
    p = np.full_like(ankle, 0.5) if degenerate else (ankle - s.far) / s_range
    if config.interpolation == "linear":
        scale = scale_far + p * (scale_close - scale_far)
    else:
        source_height = np.maximum(s.height_far + p * (s.height_close - s.height_far), 1e-3 * s.height_close)
        scale = (th_far + p * (th_close - th_far)) / source_height
    # Beyond far..close the rule extrapolates (as the paper's does); a safety net keeps a glitch from exploding it.
    lo, hi = min(scale_close, scale_far), max(scale_close, scale_far)
    scale = np.clip(scale, lo / 2, hi * 2)
    if degenerate:
        target_ankle = (t_close + t_far) / 2 + scale * (ankle - (s.close + s.far) / 2)
    else:
        target_ankle = t_far + p * (t_close - t_far)
    offset = np.stack([t.center_x - scale * s.center_x, target_ankle - scale * ankle], axis=1)

    out = source.replace(body=_apply(source.body, scale, offset), hands=_apply(source.hands, scale, offset),
                         face=_apply(source.face, scale, offset), width=target.width, height=target.height)
    params = NormalizeParams(
        source=s, target=t, target_close=float(t_close), target_far=float(t_far), scale_close=float(scale_close),
        scale_far=float(scale_far), range_narrowed=bool(narrowed), interpolation=config.interpolation,
        source_size=(source.width, source.height), target_size=(target.width, target.height),
        scale=scale.astype(np.float64), offset=offset.astype(np.float64), ankle=ankle.astype(np.float64))
    return out, params


# ---------------------------------------------------------------------------------------------------------------
# measuring one video
# ---------------------------------------------------------------------------------------------------------------
def frame_measures(body: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: ankle y (lower ankle), height (head to ankle midpoint), torso x, and where each is defined."""
    conf = body[..., 2] > 0
    r, l = B["RAnkle"], B["LAnkle"]
    ankle_ok = conf[:, r] | conf[:, l]
    ankle_y = np.where(conf[:, r] & conf[:, l], np.maximum(body[:, r, 1], body[:, l, 1]),
                       np.where(conf[:, r], body[:, r, 1], body[:, l, 1]))
    head, head_ok = _head(body, conf)
    both = conf[:, r] & conf[:, l]
    feet = (body[:, r, :2] + body[:, l, :2]) / 2
    height = np.linalg.norm(head - feet, axis=1)
    torso_conf = conf[:, _TORSO]
    torso_ok = torso_conf.any(axis=1)
    torso_x = (body[:, _TORSO, 0] * torso_conf).sum(axis=1) / np.maximum(torso_conf.sum(axis=1), 1)
    return {"ankle_y": ankle_y, "ankle_ok": ankle_ok, "height": height, "height_ok": head_ok & both,
            "center_x": torso_x, "center_ok": torso_ok}


def measure(track: PoseTrack, config: NormalizeConfig = NormalizeConfig(), name: str = "track") -> VideoAnchors:
    """Close and far ankle positions, the heights there, and the mean centre x of one video."""
    m = frame_measures(track.body)
    full = m["height_ok"] & m["ankle_ok"]
    if full.sum() < 1:
        raise EdnError("no frame shows the head and both ankles; global normalization needs full-body frames",
                       path=name)
    a = m["ankle_y"][full].astype(np.float64)
    h = m["height"][full].astype(np.float64)
    close = float(np.percentile(a, config.close_percentile))
    median = float(np.median(a))
    lowest = median - config.far_band * max(close - median, 0.0)
    band = a[(a >= lowest) & (a <= median)]  # empty when an even count puts the median in a gap between values
    far = float(band.min()) if band.size else float(a[a <= median].max())
    far = min(far, close)
    tol = max(config.height_band * (close - far), 0.01 * float(np.median(h)))
    height_close, height_far = _height_near(a, h, close, tol, config), _height_near(a, h, far, tol, config)
    if min(height_close, height_far) < 2.0:
        raise EdnError(f"the person measures {min(height_close, height_far):.1f} pixels from head to ankles; "
                       "check the track's keypoints", path=name)
    return VideoAnchors(close=close, far=far, height_close=height_close, height_far=height_far,
                        center_x=float(m["center_x"][m["center_ok"]].mean()), frames_measured=int(full.sum()))


def _height_near(a: np.ndarray, h: np.ndarray, pos: float, tol: float, config: NormalizeConfig) -> float:
    near = np.abs(a - pos) <= tol
    if near.sum() < config.min_frames:
        near = np.argsort(np.abs(a - pos), kind="stable")[:config.min_frames]
    return float(np.percentile(h[near], config.height_percentile))


def _head(body: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nose, else the eyes' midpoint, else the ears' midpoint."""
    head = np.zeros((body.shape[0], 2), np.float64)
    ok = np.zeros(body.shape[0], bool)
    for pair in ((B["Nose"], B["Nose"]), (B["REye"], B["LEye"]), (B["REar"], B["LEar"])):
        use = ~ok & conf[:, pair[0]] & conf[:, pair[1]]
        head[use] = (body[use, pair[0], :2] + body[use, pair[1], :2]) / 2
        ok |= use
    return head, ok


def _ankle_track(track: PoseTrack, name: str) -> np.ndarray:
    """The source's ankle position for every frame, linearly interpolated over frames without ankles."""
    m = frame_measures(track.body)
    ok = m["ankle_ok"]
    if not ok.any():
        raise EdnError("no frame shows an ankle", path=name)
    frames = np.arange(track.frames)
    return np.interp(frames, frames[ok], m["ankle_y"][ok].astype(np.float64))


def _apply(arr: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """x' = s x + ox, y' = s y + oy per frame on (T, ..., 3); missing points stay (0, 0, 0)."""
    shape = (-1,) + (1,) * (arr.ndim - 2)
    s = scale.reshape(shape)
    out = np.array(arr, dtype=np.float64, copy=True)
    present = out[..., 2] > 0
    out[..., 0] = np.where(present, out[..., 0] * s + offset[:, 0].reshape(shape), 0.0)
    out[..., 1] = np.where(present, out[..., 1] * s + offset[:, 1].reshape(shape), 0.0)
    return out.astype(np.float32)


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
