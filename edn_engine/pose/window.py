"""The person-centred window: per frame, the rectangle of the source that training and generation work in.

The person covers about a tenth of a whole letterboxed frame; in the window they fill most of it, at one scale
whether near the camera or far from it, so every trained pixel is spent on them (issue "Person over plate").

    centre  x: midway between the neck and the mid-hip; y: the mid-hip, lifted by a fraction of the height
    height  `margin` x the person's height, measured as `height_per_torso` x the torso (neck to mid-hip): the
            torso does not change when arms go up or legs bend, so the window does not breathe with them. The
            vertical extent of the joints is a floor (a bow foreshortens the torso). Where no torso is seen (a
            frame cut at the hips), the extent alone stands in.
    width   the training size's aspect

Both are smoothed over time (a rolling median, then a mean) so the window glides instead of jittering, and
frames without a person take their neighbours' window. The same rule runs on the target's own track (the
dataset) and on a driving track (generation), so a pose lands in the window as it did in training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import EdnError
from .framing import Framing
from .skeleton import B
from .track import PoseTrack


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    margin: float = 1.3  # window height over the person's height
    height_per_torso: float = 3.3  # a standing adult: about 3.3 torso lengths (neck to mid-hip) tall
    centre_lift: float = 0.08  # the window centre sits this share of the height above the mid-hip
    smooth: int = 9  # frames in the rolling median and mean (odd)
    min_confidence: float = 0.3  # joints below this do not place or size the window

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "WindowConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})


def person_windows(track: PoseTrack, dst_size: tuple[int, int], config: WindowConfig = WindowConfig(),
                   path: str | Path | None = None) -> np.ndarray:
    """(N, 4) windows (x0, y0, width, height) in source pixels, one per row of `track`, of aspect `dst_size`.
    `path`: what the error names when no frame can place one, the track's file as the user gave it (not the
    track's `source`, the video it was once extracted from)."""
    centre, height = _measure(track.body, config)
    seen = ~np.isnan(height)
    if not seen.any():
        raise EdnError("no frame of the track shows enough of a person to place a window on (the neck and mid-hip, "
                       f"or three joints not all at one height, at confidence {config.min_confidence:g} or more)",
                       path=path)
    centre = np.stack([_smooth(_fill(centre[:, k], seen), config.smooth) for k in range(2)], axis=1)
    height = _smooth(_fill(height, seen), config.smooth) * config.margin
    width = height * dst_size[0] / dst_size[1]
    cy = centre[:, 1] - config.centre_lift * height / config.margin
    return np.stack([centre[:, 0] - width / 2, cy - height / 2, width, height], axis=1).astype(np.float64)


def window_framing(src_size: tuple[int, int], dst_size: tuple[int, int], window) -> Framing:
    return Framing(tuple(src_size), tuple(dst_size), "window", tuple(float(v) for v in window))


@dataclasses.dataclass(frozen=True)
class FramePlan:
    """How every frame of a clip maps to the training size: one fixed `Framing` for all (letterbox, crop), or a
    person-centred window per frame. A dataset records its plan (manifest "framing"), and generation applies
    the same plan to a driving track, so poses land where they landed in training."""

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    mode: str = "letterbox"  # "window", or a fixed Framing's mode
    window: WindowConfig | None = None

    @property
    def windowed(self) -> bool:
        return self.mode == "window"

    @property
    def window_config(self) -> WindowConfig:
        """The window rule in force: the plan's own, else the default (a plan that records none)."""
        return self.window or WindowConfig()

    def framings(self, track: PoseTrack, path: str | Path | None = None) -> list[Framing]:
        """One framing per row of `track` (a track of this plan's source size); `path` names it in errors."""
        if not self.windowed:
            return [Framing(self.src_size, self.dst_size, self.mode)] * track.frames
        wins = person_windows(track, self.dst_size, self.window_config, path)
        return [window_framing(self.src_size, self.dst_size, w) for w in wins]

    def for_source(self, src_size: tuple[int, int]) -> "FramePlan":
        """The same plan for footage or a track of another size."""
        return dataclasses.replace(self, src_size=tuple(src_size))

    def to_dict(self) -> dict:
        d = {"src_size": list(self.src_size), "dst_size": list(self.dst_size), "mode": self.mode}
        if self.windowed:
            d["window_config"] = self.window_config.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FramePlan":
        mode = d.get("mode", "letterbox")
        window = WindowConfig.from_dict(d.get("window_config")) if mode == "window" else None
        return cls(tuple(d["src_size"]), tuple(d["dst_size"]), mode, window)


def frame_track(track: PoseTrack, framings: list[Framing]) -> PoseTrack:
    """The track with each row mapped by its own framing (all framings share one output size)."""
    body, hands, face = (np.stack([fr.points(part[i]) for i, fr in enumerate(framings)])
                         for part in (track.body, track.hands, track.face))
    w, h = framings[0].dst_size
    return track.replace(body=body, hands=hands, face=face, width=w, height=h)


# -- measuring and smoothing ----------------------------------------------------------------------------------

def _measure(body: np.ndarray, config: WindowConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the person's centre (x, y) and height in pixels; NaN where nobody is seen."""
    n = len(body)
    centre = np.full((n, 2), np.nan)
    height = np.full(n, np.nan)
    ok = body[..., 2] >= config.min_confidence
    neck, hip = B["Neck"], B["MidHip"]
    for i in range(n):
        if not ok[i].any():
            continue
        pts = body[i, ok[i], :2]
        extent = float(pts[:, 1].max() - pts[:, 1].min())
        if ok[i, neck] and ok[i, hip]:
            torso = float(np.hypot(*(body[i, neck, :2] - body[i, hip, :2])))
            height[i] = max(config.height_per_torso * torso, extent)
            centre[i] = [(body[i, neck, 0] + body[i, hip, 0]) / 2, body[i, hip, 1]]
        elif len(pts) >= 3 and extent > 0:
            height[i] = extent / 0.8  # a partial view: the joints seen span most of the person
            centre[i] = [pts[:, 0].mean(), (pts[:, 1].max() + pts[:, 1].min()) / 2]
        if not height[i] > 0:  # every joint at one point (a broken track): no size to frame a window by
            centre[i], height[i] = np.nan, np.nan
    return centre, height


def _fill(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Frames without a person take the value interpolated between their neighbours (held at the ends)."""
    idx = np.arange(len(values))
    return np.interp(idx, idx[seen], values[seen])


def _smooth(values: np.ndarray, k: int) -> np.ndarray:
    """A rolling median (drops a one-frame detector glitch), then a rolling mean (removes the steps)."""
    if k <= 1 or len(values) < 3:
        return values
    k = min(k | 1, (len(values) // 2) * 2 + 1)
    pad = k // 2
    padded = np.pad(values, pad, mode="edge")
    med = np.median(np.lib.stride_tricks.sliding_window_view(padded, k), axis=1)
    padded = np.pad(med, pad, mode="edge")
    return np.convolve(padded, np.ones(k) / k, mode="valid")
