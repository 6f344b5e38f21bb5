"""The hand refiner's data in a person-over-plate dataset: each hand's box and the real frame's crop there, at
the source's own resolution.

Why: in the 256-pixel window a hand is about 15 pixels across; even the real frame, scaled to the window and
back, shows the detector hands in only 59% of the frames that show them (benchmarks/bench_window_ceiling.json),
and the window's generator in 14%. The hand refiner (`models.hand`) redraws each hand at the source's
resolution from these crops.

    manifest.json   "hand_size": the crops' side in pixels (`crop_size`: null where the window is not smaller than
                    the source, and the refiner would add nothing); per frame "hand_boxes": [left, right], each
                    [x0, y0, size] in source pixels (`pose.hands.hand_box`) or null where no hand can be placed
    hands/hand_NNNNNN_0.png (left), hand_NNNNNN_1.png (right)
                    BGRA at hand_size x hand_size: the real frame's crop, its matte as alpha
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .compositing import pull_from_plate
from .errors import EdnError
from .hand_bank import HandBank
from .pose.framing import Framing, Mipmap
from .pose.hands import HAND_BOX, hand_box
from .pose.skeleton import mirror_pose
from .pose.track import PoseTrack
from .pose.window import window_framing
from .tensors import hand_figure, to_tensor

HAND_SIZE = 96  # the largest crop side: about a hand box's own pixels in 1080p footage (100-123 px on romp_sample2)
MIN_SIZE = 32  # the smallest (the refiner halves a crop three times)
MIN_ZOOM = 1.5  # no refiner where the window is less than this many source pixels per training pixel: there the
#                 window already holds the hands at the source's resolution, and the refiner's time would be taken
#                 from the Face GAN for nothing (the demo's 256-pixel renders: windows of 233-244 pixels)
FOLDER = "hands"


def crop_size(window_heights: np.ndarray, train_height: int) -> int | None:
    """The side to keep a clip's hand crops at, or None where a refiner would add nothing: the median hand box's
    own pixels (`pose.hands.HAND_BOX` of the window's height), a multiple of 8 between MIN_SIZE and HAND_SIZE."""
    height = float(np.median(window_heights))
    if height < MIN_ZOOM * train_height:
        return None
    return int(np.clip(round(HAND_BOX * height / 8) * 8, MIN_SIZE, HAND_SIZE))


def hand_framing(src_size: tuple[int, int], box, size: int) -> Framing:
    """How source pixels map into hand box `box` (x0, y0, side) at `size` x `size`."""
    x0, y0, side = box
    return window_framing(src_size, (size, size), (x0, y0, side, side))


def write_hands(folder: Path, n: int, bgr: np.ndarray, matte: np.ndarray | None, body: np.ndarray,
                hands: np.ndarray, person_height: float, size: int) -> list:
    """Write frame `n`'s hand crops into `folder` (keypoints in source pixels); its [left, right] boxes."""
    from .video import write_image

    src_size = (bgr.shape[1], bgr.shape[0])
    boxes = []
    for side in (0, 1):
        box = hand_box(body, hands, side, person_height)
        if box is not None:
            fr = hand_framing(src_size, box, size)
            alpha = fr.image(matte) if matte is not None else np.full((size, size), 255, np.uint8)
            write_image(folder / f"hand_{n:06d}_{side}.png", np.dstack([fr.image(bgr), alpha]))
        boxes.append(None if box is None else [round(v, 3) for v in box])
    return boxes


class HandCrops:
    """Reads a dataset's hand crops for training: per frame, both hands' stick figures, real crops, mattes and
    plate crops, with their boxes (a hand without a box gets zeros and a box of size 0)."""

    def __init__(self, dataset_dir: Path, manifest: dict, plate: Mipmap):
        self.dir, self.size, self.plate = Path(dataset_dir), int(manifest["hand_size"]), plate
        self.boxes = {e["frame"]: e.get("hand_boxes") or [None, None] for e in manifest["frames"]}
        self.track = PoseTrack.load(self.dir / "track_source.npz")  # the boxes' pixels
        self.src_size = (self.track.width, self.track.height)
        self.train = [e["frame"] for e in manifest["frames"] if e["split"] == "train"]

    def bank(self) -> HandBank:
        """The train split's hands, for generation to look up (`hand_bank`; at most its LIMIT a side). Built afresh
        each call (the trainer saves it once). A crop the manifest names but the folder lacks is an error, as in
        `frame`, rather than a smaller bank written over a resumed run's."""
        entries = [(n, side, self.track.hands[n - self.track.frame_start][side], box)
                   for n in self.train for side, box in enumerate(self.boxes[n]) if box is not None]
        return HandBank.from_crops(entries, self._bank_crop, self.size)

    def _bank_crop(self, n: int, side: int) -> np.ndarray:
        """Frame `n`'s hand crop of `side` pulled off the plate (`compositing.pull_from_plate`): a training hand
        is laid over other pictures than its own."""
        plate = self.plate.image(hand_framing(self.src_size, self.boxes[n][side], self.size))
        return pull_from_plate(self._crop(n, side), plate)

    def _crop(self, n: int, side: int) -> np.ndarray:
        """Frame `n`'s hand crop of `side`, BGRA (its matte as alpha); one the manifest names must be there."""
        from .video import read_image

        path = self.dir / FOLDER / f"hand_{n:06d}_{side}.png"
        if not path.is_file():
            raise EdnError("dataset hand crop missing", path=path, frame=n)
        crop = read_image(path, cv2.IMREAD_UNCHANGED)
        if crop.shape != (self.size, self.size, 4) or crop.dtype != np.uint8:
            raise EdnError(f"dataset hand crop is not {self.size}x{self.size} 8-bit BGRA (its matte as alpha)",
                           path=path, frame=n)
        return crop

    def frame(self, n: int, mirror: bool = False) -> dict[str, torch.Tensor]:
        """Frame `n`'s two hands: label and real (2, 3, S, S), matte (2, 1, S, S), plate (2, 3, S, S), box (2, 3).

        `mirror`: each crop mirrored left to right, so the left hand shows as a right one, and its stick figure
        drawn so (in the right hand's colours); the boxes stay where the frame has them (the frozen body's crops are
        cut there, then mirrored by `hand_step`)."""
        s, i = self.size, n - self.track.frame_start
        body, hands = self.track.body[i], self.track.hands[i]
        if mirror:
            body, hands, _ = mirror_pose(body, hands, self.track.face[i], self.src_size[0])
        out = {"label": torch.zeros(2, 3, s, s), "real": torch.zeros(2, 3, s, s), "matte": torch.zeros(2, 1, s, s),
               "plate": torch.zeros(2, 3, s, s), "box": torch.zeros(2, 3)}
        for side, box in enumerate(self.boxes[n]):
            if box is None:
                continue
            bgra = self._crop(n, side)
            fr = hand_framing(self.src_size, box, s)
            out["real"][side] = to_tensor(bgra[..., :3])
            out["matte"][side] = torch.from_numpy(bgra[..., 3].astype(np.float32) / 255.0)
            out["plate"][side] = to_tensor(self.plate.image(fr))
            out["box"][side] = torch.tensor(box, dtype=torch.float32)
            if mirror:  # the same box in the mirrored frame holds the other hand
                x0, y0, side_px = box
                fr = hand_framing(self.src_size, (self.src_size[0] - x0 - side_px, y0, side_px), s)
                for key in ("real", "matte", "plate"):
                    out[key][side] = out[key][side].flip(-1)
            out["label"][side] = to_tensor(hand_figure(body, hands, 1 - side if mirror else side, fr))
        return out
