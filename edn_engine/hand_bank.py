"""Hand exemplars: the training frames' real hands, looked up by hand pose and laid over the refined hand.

Why: the hand refiner draws each hand from the body's blur and a stick figure; at 96 pixels its fingers stay soft,
and the detector found 29 of the 71 held-out hands it made on romp_sample2 (fp32 AVX2, 20 minutes). The training
frames hold the person's own hands, sharp, in many poses. Generation looks up the training hand whose keypoints lie
nearest in the hand's box, moves it onto the driving pose's keypoints (the similarity that best maps one set onto
the other) and lays it over the refined hand, feathered, inside the hull of its fingers: 39 of 71 found on the same
frames. Given that hand as an input instead, the refiner learned to ignore it in a 5.5-minute face stage.

    run/hand_bank.npz   side (N,), frame (N,) source numbers, points (N, 21, 2) in box units ((x - x0) / side),
                        found (N, 21), crops (N, S, S, 4) BGRA: the dataset's train-split hand crops (`hand_data`)
                        pulled off the plate (`compositing.pull_from_plate`: alpha where they differ from it, within
                        their mattes); at most LIMIT a side, so a long clip's bank stays small
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_path, read_npz
from .compositing import premultiplied, straight
from .errors import EdnError
from .pose.skeleton import THRESHOLDS

MIN_POINTS = 5  # keypoints a hand needs to be looked up by, or to be kept (as `pose.hands.hand_box` asks)
GROW = 0.15  # the fingers' hull is dilated by a disc this share of the crop across, so the hand's edge comes along
FEATHER = 0.04  # and its edge softened over this share (a Gaussian's sigma)
MARGIN = 0.25  # the exemplar is drawn in the hand's box grown by this share each way (see `hand_patch`)
SCALES = (0.5, 2.0)  # a move that shrinks or grows the exemplar more than this is a poor match: none is drawn
ARRAYS = ("side", "frame", "points", "found", "crops")  # the file's arrays, in the order of the fields below
# Exemplars kept a side: a long clip's consecutive frames hold near-copies of each hand, and a crop costs 36 KB in
# memory at 96 pixels (10,000 training frames with both hands: 740 MB). Those kept spread over the poses (`spread`).
LIMIT = 1000
LAYERS_KEPT = 256  # exemplars kept premultiplied and masked for drawing (`HandBank._layer`): 9 MB at 96 pixels


def box_points(points: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
    """A hand's (21, 3) keypoints in the pixels of its box (x0, y0, side) -> (21, 2) in box units, (21,) found."""
    x0, y0, side = box
    return (points[:, :2] - np.array([x0, y0], np.float32)) / float(side), points[:, 2] > THRESHOLDS["hands"]


def hull_mask(points: np.ndarray, size: int) -> np.ndarray:
    """Where a hand is in a size x size picture of it: the hull of its found keypoints ((k, 2) in its pixels), grown
    by GROW and feathered by FEATHER of `size`; float32 (size, size) in 0..1."""
    hull = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points.astype(np.int32)), 255)
    grow = max(3, int(size * GROW)) | 1
    hull = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    return cv2.GaussianBlur(hull, (0, 0), max(0.5, size * FEATHER)).astype(np.float32) / 255.0


def distances(points: np.ndarray, found: np.ndarray, xy: np.ndarray, xy_found: np.ndarray):
    """How far hands (N, 21, 2) lie from one hand (21, 2), all in box units: the mean distance over the keypoints
    both show (N,), and how many those are (N,)."""
    both = found & xy_found
    shared = both.sum(1)
    return (np.linalg.norm(points - xy, axis=2) * both).sum(1) / np.maximum(shared, 1), shared


def spread(points: np.ndarray, found: np.ndarray, limit: int) -> np.ndarray:
    """The indices, in order, of at most `limit` of the hands (N, 21, 2): all where they are few enough, else a
    farthest-point sample (each next the hand farthest from all those kept), which keeps the rare poses and drops
    the near-copies."""
    if len(points) <= limit:
        return np.arange(len(points))

    def gap_to(k: int) -> np.ndarray:  # two hands that share too few keypoints to compare count as unlike
        dist, shared = distances(points, found, points[k], found[k])
        return np.where(shared >= MIN_POINTS, dist, np.inf)

    chosen, gap = [0], gap_to(0)
    for _ in range(limit - 1):
        chosen.append(k := int(gap.argmax()))
        gap = np.minimum(gap, gap_to(k))
    return np.sort(chosen)


@dataclass
class HandBank:
    side: np.ndarray
    frame: np.ndarray
    points: np.ndarray
    found: np.ndarray
    crops: np.ndarray
    _layers: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)  # `_layer`

    @classmethod
    def from_crops(cls, entries: list[tuple], read, size: int, limit: int = LIMIT) -> "HandBank":
        """entries: (frame, side, (21, 3) keypoints in source pixels, box) of each training hand; `read(frame, side)`
        its BGRA crop, read only for the hands kept: those with at least MIN_POINTS keypoints (something to look
        them up by), at most `limit` a side, spread over the poses."""
        usable = []
        for frame, side, points, box in entries:
            xy, found = box_points(points, box)
            if found.sum() >= MIN_POINTS:
                usable.append((side, frame, xy, found))
        chosen = []  # indices into `usable`, kept in the clip's order
        for s in (0, 1):
            own = [k for k, h in enumerate(usable) if h[0] == s]
            if own:
                picked = spread(np.stack([usable[k][2] for k in own]), np.stack([usable[k][3] for k in own]), limit)
                chosen += [own[k] for k in picked]
        kept = [usable[k] for k in sorted(chosen)]
        if not kept:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 21, 2), np.float32),
                       np.zeros((0, 21), bool), np.zeros((0, size, size, 4), np.uint8))
        side, frame, xy, found = (np.stack(column) for column in zip(*kept))
        crops = np.stack([read(int(n), int(s)) for n, s in zip(frame, side)])
        return cls(side, frame, xy.astype(np.float32), found, crops)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **{k: getattr(self, k) for k in ARRAYS})

    @classmethod
    def load(cls, path: Path) -> "HandBank":
        arrays = read_npz(path, "file of the run's hand exemplars", hint="train the run again")
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise EdnError(f"the run's hand exemplars lack {', '.join(missing)}: train the run again", path=path)
        bank = cls(*(arrays[k] for k in ARRAYS))
        n = bank.side.shape[0] if bank.side.ndim == 1 else -1
        shapes = (bank.frame.shape == (n,) and bank.points.shape == (n, 21, 2) and bank.found.shape == (n, 21)
                  and bank.crops.dtype == np.uint8 and bank.crops.ndim == 4 and bank.crops.shape[0] == n
                  and bank.crops.shape[1] == bank.crops.shape[2] and bank.crops.shape[3] == 4)
        if not shapes:
            raise EdnError("the run's hand exemplars are not a hand bank (their arrays disagree in shape): train the "
                           "run again", path=path)
        return bank

    def nearest(self, side: int, points: np.ndarray, box) -> int | None:
        """The index of the hand `side` (0 left, 1 right) nearest to `points` ((21, 3) in source pixels) in box
        `box`: the mean distance in box units over the keypoints both show. None where the hand shows too few
        keypoints, or no exemplar shares enough of them."""
        xy, found = box_points(points, box)
        if found.sum() < MIN_POINTS:
            return None
        dist, shared = distances(self.points, self.found, xy, found)
        ok = (self.side == side) & (shared >= MIN_POINTS)
        if not ok.any():
            return None
        return int(np.where(ok, dist, np.inf).argmin())

    def hand_patch(self, side: int, points: np.ndarray, box, size: int) -> tuple[tuple, np.ndarray] | None:
        """The nearest exemplar (`nearest`) moved onto `points` by the similarity that best maps its keypoints onto
        them, opaque only on its hand (its matte within its fingers' hull, grown and feathered): (the box it is
        drawn in, (x0, y0, side) in source pixels: `box` grown by MARGIN each way, so a hand the move pushes past
        `box` is not cut; BGRA uint8, straight alpha, at `size` pixels a `box`), or None where there is none."""
        k = self.nearest(side, points, box)
        if k is None:
            return None
        x0, y0, side_px = box
        grown = (x0 - MARGIN * side_px, y0 - MARGIN * side_px, (1 + 2 * MARGIN) * side_px)
        n = int(round((1 + 2 * MARGIN) * size))
        xy, found = box_points(points, grown)
        both, s = self.found[k] & found, self.crops.shape[1]
        move, _ = cv2.estimateAffinePartial2D(self.points[k][both] * s, xy[both] * n, method=cv2.LMEDS)
        if move is None or not SCALES[0] <= np.hypot(*move[:, 0]) * s / size <= SCALES[1]:  # 1: the same size
            return None  # no move, or one that would shrink or swell the hand: the refined hand stays as it is
        move[:, 2] += 0.5 * (move[:, 0] + move[:, 1] - 1.0)  # between pixel indices (`Framing.pixel_matrix`)
        return grown, straight(cv2.warpAffine(self._layer(k), move, (n, n), flags=cv2.INTER_LINEAR))

    def _layer(self, k: int) -> np.ndarray:
        """Exemplar `k` as it is moved: opaque only on its hand (`hand_patch`), and premultiplied, as compositors
        resample: the colour under a nearly clear pixel (a crop pulled off its plate amplifies it there,
        `compositing.pull_from_plate`) must not bleed into its opaque neighbours. Kept once made, LAYERS_KEPT at
        most (a frame's writer draws the same few hands again and again: 0.5 ms a hand)."""
        if k not in self._layers:
            if len(self._layers) >= LAYERS_KEPT:
                self._layers.clear()
            crop, s = self.crops[k], self.crops.shape[1]
            alpha = crop[..., 3] * hull_mask(self.points[k][self.found[k]] * s, s)
            self._layers[k] = premultiplied(cv2.merge([*cv2.split(crop)[:3], (alpha + 0.5).astype(np.uint8)]),
                                            np.uint8)
        return self._layers[k]
