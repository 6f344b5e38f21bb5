"""Following one person: which of a frame's detections is the person the track is about, if any.

MediaPipe Holistic reports one person per frame and, when it loses track, re-detects whoever its detector finds
first, so with two people in view a track can jump from one to the other. The `Follower` here decides, frame by
frame, whether the detection belongs to the person followed so far, by three gates measured against the last frame
that person was seen: the body centre may move only so far (in person sizes, more the longer the person was
unseen), the size may change only so much, and the colours of the torso must stay close to the person's own (a
slowly updated reference, so light and turning are followed). A detection that fails is *rejected*: its frame is
marked missing, never joined to the track, and named in a warning. Whoever is detected first is the person followed.

The follower also says what the detector should see next (`Follower.view`): a region round the person's last
position, minus the boxes of people recently rejected; the caller blanks the rest of the frame. The region is
tight where Holistic's detector will run (a new graph, or after a frame the person was not kept), so it finds this
person again and not whoever else is in view; wide while Holistic tracks, so blanking leaves its view of the
person untouched; it grows while they are unseen and is the whole frame once they have been gone a while.
Everything here is numpy on keypoints and pixels, no MediaPipe, so it is tested on synthetic detections.
"""

from __future__ import annotations

import dataclasses
import enum

import cv2
import numpy as np

from .skeleton import B

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels

_CORE = (B["Neck"], B["MidHip"], B["RShoulder"], B["LShoulder"], B["RHip"], B["LHip"])
_TORSO = (B["RShoulder"], B["LShoulder"], B["LHip"], B["RHip"])  # a quadrilateral, in drawing order


class Status(enum.IntEnum):
    FOLLOWED = 0  # the followed person, kept
    NOBODY = 1  # nobody detected
    OTHER = 2  # a detection that is not the followed person (another one, or an unexplained jump): dropped


@dataclasses.dataclass(frozen=True)
class FollowConfig:
    enabled: bool = True  # False: keep every detection, see everything (e.g. scoring generated frames one by one)
    min_confidence: float = 0.3  # joints below this are not used to place or measure the person
    # The gates. On the six clips of ../shared/data (150 frames each, one person) the centre moved at most 0.18
    # sizes a frame, the size changed by at most 8% and the colour distance reached 0.46 (a striped shirt under
    # motion blur); between different people's torsos it was 0.5-1.0, but only 0.2-0.3 among dark clothes, whom
    # colour cannot tell apart (position still does).
    max_move: float = 0.75  # centre shift allowed from one frame to the next, in person sizes
    move_per_missed: float = 0.25  # ...plus this much for every frame the person was not seen
    max_scale: float = 1.5  # size ratio allowed from one frame to the next
    scale_per_missed: float = 0.03
    max_appearance: float = 0.55  # Hellinger distance of the torso colours from the person's, 0..1 (see matches)
    appearance_rate: float = 0.05  # how fast the reference follows the kept frames (light, turning)
    search_after: int = 20  # frames unseen after which position and size no longer gate (they may come back anywhere)
    # Region kept visible round the person's joints, in person sizes, each side. Holistic's next look at the person
    # is a square of about five torso lengths round the hips; with less than 3 (2 was tried) blanking reached into it
    # and moved a few joints on a letterboxed clip. With 3 the poses of one-person clips are bit-identical.
    pad_x: float = 3.0
    pad_y: float = 3.0
    search_pad: float = 1.0  # ...but when Holistic's detector runs (a new graph, or the person was not kept in the
    # last frame), which would take anyone in view: tight, so it finds this person and nobody else
    exclude_for: int = 30  # frames a rejected person's box stays blanked


@dataclasses.dataclass
class Candidate:
    """One detected person, reduced to what identity needs."""

    centre: np.ndarray  # (2,) pixels: mean of the confident torso joints
    size: float  # pixels: the larger of torso length and shoulder width
    box: Box  # bounding box of the confident joints
    appearance: np.ndarray | None  # normalised colour histogram of the torso, None when the torso is not visible


@dataclasses.dataclass
class FollowState:
    """What the follower knows; picklable, so a part of a video can start from the previous part's end."""

    frame: int | None = None  # last frame the person was kept
    last: Candidate | None = None
    reference: np.ndarray | None = None  # the person's torso colours
    excluded: list[tuple[int, Box]] = dataclasses.field(default_factory=list)  # (frame, box) of rejected people


# ---------------------------------------------------------------------------------------------------------------
# detections -> candidates
# ---------------------------------------------------------------------------------------------------------------
def candidate(body: np.ndarray, image: np.ndarray | None = None, min_confidence: float = 0.3) -> Candidate | None:
    """A (25, 3) BODY_25 row (pixels, confidence) -> Candidate; None when too few joints are confident."""
    ok = body[:, 2] > min_confidence
    if ok.sum() < 3:  # an unsure detection: place it by whatever it has
        ok = body[:, 2] > 0
        if ok.sum() < 3:
            return None
    core = [j for j in _CORE if ok[j]]
    centre = body[core, :2].mean(axis=0) if core else body[ok, :2].mean(axis=0)
    xy = body[ok, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    lengths = [np.linalg.norm(body[a, :2] - body[b, :2]) for a, b in ((B["Neck"], B["MidHip"]),
                                                                      (B["RShoulder"], B["LShoulder"]))
               if ok[a] and ok[b]]
    size = max(lengths) if lengths else 0.3 * float(np.hypot(x1 - x0, y1 - y0))
    size = max(float(size), 4.0)
    appearance = torso_colours(image, body, min_confidence) if image is not None else None
    return Candidate(np.asarray(centre, np.float64), size, (float(x0), float(y0), float(x1), float(y1)), appearance)


def torso_colours(image: np.ndarray, body: np.ndarray, min_confidence: float = 0.3) -> np.ndarray | None:
    """Histogram of the colours inside the torso (shoulders and hips, shrunk a quarter toward its centre).

    15 bins: 12 hues for coloured pixels, 3 brightnesses for greyish ones (where hue is noise), softly binned.
    `image` is RGB or BGR uint8: only the same order must be used throughout one video. Returns None when fewer
    than three torso corners are confident or the torso covers under 16 pixels.
    """
    corners = [j for j in _TORSO if body[j, 2] > min_confidence]
    if len(corners) < 3:
        return None
    pts = body[corners, :2].astype(np.float64)
    pts = pts.mean(axis=0) + 0.75 * (pts - pts.mean(axis=0))
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(pts.min(axis=0)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(pts.max(axis=0)).astype(int) + 1, 0, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    patch = image[y0:y1, x0:x1]
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts - (x0, y0)).astype(np.int32)], 1)
    pixels = patch[mask.astype(bool)]
    if len(pixels) < 16:
        return None
    hsv = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float64)
    coloured = (hsv[:, 1] >= 40) & (hsv[:, 2] >= 50)
    hist = np.zeros(_HUES + _GREYS)
    _soft_bin(hist[:_HUES], hsv[coloured, 0] * _HUES / 256.0, circular=True)
    _soft_bin(hist[_HUES:], hsv[~coloured, 2] * _GREYS / 256.0, circular=False)
    return hist / hist.sum()


_HUES, _GREYS = 12, 3


def _soft_bin(hist: np.ndarray, x: np.ndarray, circular: bool) -> None:
    """Add values x (in bin units) to `hist`, each split between its two nearest bins: a colour on a bin edge
    (a blurred stripe, a shade under changing light) then moves the histogram a little, not a whole bin."""
    n = len(hist)
    low = np.floor(x - 0.5)
    w = x - 0.5 - low
    a, b = low.astype(int), low.astype(int) + 1
    a, b = (a % n, b % n) if circular else (np.clip(a, 0, n - 1), np.clip(b, 0, n - 1))
    np.add.at(hist, a, 1.0 - w)
    np.add.at(hist, b, w)


def appearance_distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Hellinger distance between two histograms: 0 same colours, 1 no colour in common; None if either is missing."""
    if a is None or b is None:
        return None
    return float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(a * b).sum()))))


# ---------------------------------------------------------------------------------------------------------------
# the follower
# ---------------------------------------------------------------------------------------------------------------
class Follower:
    """Keeps the followed person frame by frame: `view` before detecting, `step` with what was detected."""

    def __init__(self, config: FollowConfig = FollowConfig(), state: FollowState | None = None):
        self.config = config
        self.state = state if state is not None else FollowState()
        self.detecting = True  # Holistic looks at the whole picture next (a new graph, or the person was lost)

    def matches(self, frame: int, cand: Candidate) -> float | None:
        """How well `cand`, seen in `frame`, continues the followed person: a cost >= 0, None if it cannot be them."""
        cfg, st = self.config, self.state
        if st.last is None or not cfg.enabled:
            return 0.0
        missed = max(0, frame - st.frame - 1)
        cost = 0.0
        if missed < cfg.search_after:
            size = st.last.size
            move = float(np.linalg.norm(cand.centre - st.last.centre)) / size
            allowed = cfg.max_move + cfg.move_per_missed * missed
            ratio = max(cand.size, size) / min(cand.size, size)
            if move > allowed or ratio > cfg.max_scale + cfg.scale_per_missed * missed:
                return None
            cost += move / allowed
        # Against the slow reference and the last frame kept: motion blur and turning change colours gradually.
        dists = [d for d in (appearance_distance(cand.appearance, st.reference),
                             appearance_distance(cand.appearance, st.last.appearance)) if d is not None]
        dist = min(dists) if dists else None
        if dist is None:
            # Colours cannot be checked: trust position alone, but never to take someone back after a long absence.
            return cost if missed < cfg.search_after else None
        if dist > cfg.max_appearance:
            return None
        return cost + dist / cfg.max_appearance

    def step(self, frame: int, candidates: list[Candidate]) -> tuple[Status, int | None]:
        """Decide for one frame: (status, index of the kept candidate or None). Updates the state."""
        status, index = self._decide(frame, candidates)
        self.detecting = status != Status.FOLLOWED
        return status, index

    def _decide(self, frame: int, candidates: list[Candidate]) -> tuple[Status, int | None]:
        if not candidates:
            return Status.NOBODY, None
        costs = [self.matches(frame, c) for c in candidates]
        valid = [i for i, c in enumerate(costs) if c is not None]
        if not valid:
            self._reject(frame, candidates)
            return Status.OTHER, None
        best = min(valid, key=lambda i: costs[i])
        self._keep(frame, candidates[best])
        self._reject(frame, [c for i, c in enumerate(candidates) if i != best])
        return Status.FOLLOWED, best

    def _keep(self, frame: int, cand: Candidate) -> None:
        st, rate = self.state, self.config.appearance_rate
        st.frame, st.last = frame, cand
        if cand.appearance is not None:
            st.reference = (cand.appearance.copy() if st.reference is None
                            else (1.0 - rate) * st.reference + rate * cand.appearance)
        st.excluded = [(f, box) for f, box in st.excluded if not _overlap(box, cand.box)]

    def _reject(self, frame: int, candidates: list[Candidate]) -> None:
        st = self.state
        for cand in candidates:
            if st.last is not None and _overlap(cand.box, st.last.box):
                continue  # crossing the followed person: blanking it would blank them too
            st.excluded.append((frame, _grown(cand.box, 0.3 * cand.size)))

    def view(self, frame: int, width: int, height: int) -> tuple[Box | None, list[Box]]:
        """What the detector should see in `frame`: (region to keep or None for the whole frame, boxes to blank)."""
        cfg, st = self.config, self.state
        st.excluded = [(f, box) for f, box in st.excluded if frame - f <= cfg.exclude_for]
        if not cfg.enabled:
            return None, []
        if st.last is None:
            return None, [box for _, box in st.excluded]
        near = _grown(st.last.box, 0.5 * st.last.size)  # never blank where the person may be now
        blank = [box for _, box in st.excluded if not _overlap(box, near)]
        missed = frame - st.frame - 1
        if missed >= cfg.search_after:
            return None, blank
        grow = cfg.move_per_missed * missed * st.last.size
        x0, y0, x1, y1 = st.last.box
        pad_x, pad_y = (cfg.search_pad, cfg.search_pad) if self.detecting else (cfg.pad_x, cfg.pad_y)
        px, py = pad_x * st.last.size + grow, pad_y * st.last.size + grow
        keep = (max(0.0, x0 - px), max(0.0, y0 - py), min(float(width), x1 + px), min(float(height), y1 + py))
        if keep == (0.0, 0.0, float(width), float(height)):
            keep = None
        return keep, blank


def blank_outside(image: np.ndarray, keep: Box | None, blank: list[Box], fill: int = 0) -> np.ndarray:
    """`image` as the detector should see it (`Follower.view`): black (a letterbox) outside `keep` and over `blank`.
    The coordinates stay the frame's, so the detector's own tracking and smoothing work as on the whole frame."""
    if keep is None and not blank:
        return image
    h, w = image.shape[:2]

    def pixels(box: Box) -> tuple[slice, slice]:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return slice(min(max(y0, 0), h), min(max(y1, 0), h)), slice(min(max(x0, 0), w), min(max(x1, 0), w))

    if keep is None:
        out = image.copy()
    else:
        out = np.full_like(image, fill)
        out[pixels(keep)] = image[pixels(keep)]
    for box in blank:
        out[pixels(box)] = fill
    return out


def _grown(box: Box, pad: float) -> Box:
    return box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ---------------------------------------------------------------------------------------------------------------
# whole sequences, and what to tell the artist
# ---------------------------------------------------------------------------------------------------------------
def follow(frames: list[int], candidates: list[list[Candidate]], config: FollowConfig = FollowConfig(),
           state: FollowState | None = None) -> tuple[list[Status], list[int | None], FollowState]:
    """Run a follower over a sequence: per frame the status and the kept candidate's index; then the final state."""
    follower = Follower(config, state)
    statuses, chosen = [], []
    for frame, cands in zip(frames, candidates):
        status, index = follower.step(frame, cands)
        statuses.append(status)
        chosen.append(index)
    return statuses, chosen, follower.state


def continues(state: FollowState, frame: int, cand: Candidate, config: FollowConfig = FollowConfig()) -> bool:
    """Whether `cand`, seen in `frame`, is the person `state` followed: the check across two parts' boundary."""
    return Follower(config, state).matches(frame, cand) is not None  # matches() only reads the state


def frame_ranges(frames: list[int] | np.ndarray, limit: int = 20) -> str:
    """[3, 4, 5, 9, 12, 13] -> '3-5, 9, 12-13' (at most `limit` ranges, then '... and N more frames')."""
    frames = sorted(int(f) for f in frames)
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    text = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs[:limit])
    rest = sum(b - a + 1 for a, b in runs[limit:])
    return text + (f" ... and {rest} more frames" if rest else "")


def warnings_for(frames: np.ndarray, statuses: np.ndarray) -> list[str]:
    """The summary's warnings about frames without the followed person (none when every frame has them)."""
    out = []
    total = len(frames)
    nobody = frames[statuses == Status.NOBODY]
    if len(nobody):
        out.append(f"{len(nobody)} of {total} frames have nobody in them (kept, with confidence 0): "
                   f"frames {frame_ranges(nobody)}")
    other = frames[statuses == Status.OTHER]
    if len(other):
        out.append(f"{len(other)} of {total} frames show someone other than the followed person, or a jump the "
                   f"person's motion cannot explain; marked missing (confidence 0): frames {frame_ranges(other)}")
    return out
