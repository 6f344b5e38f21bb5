"""A generated frame finished: after the body generator's frame, the Face GAN refines its face and the hand refiner
its hands, with the person's own training hands laid over those (`hand_bank`).

Where the generator runs on the CPU, frames are finished in the frame writer's process (`frame_writer`), each
just before it is scaled back and written, so that the generator has a core of its own. On a thread of the
generating process, the two stalled each other: with three busy threads on two cores the body generator took
73 ms a frame instead of 58 (int8 held to AVX2; the finishing thread also held the interpreter between its small
ops). `edn generate` of romp_sample2 at 1080p on a 2-core Sapphire Rapids, in turns with the thread
(`benchmarks/bench_generate_xeon_finishing.json`): held to AVX2, 15.3-15.7 frames/s against 12.7, and 6.8-7.7
against 6.5-6.9 with a busy process per core; with AVX-VNNI 16.1-16.9 against 15.5-15.8, but 7.6-8.0 against
8.4-9.2 loaded (two busy threads of ours take less of a loaded machine than three: so on 2 cores two writers now
write beside the generator, `threads.frame_writers`). A writer then holds torch and the refiners: about 250 MB of its
own. On a GPU (or MPS) frames are finished in the generating process, between frames.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from .frame_writer import FrameJob
from .compositing import feather_weights
from .hand_bank import MIN_POINTS, HandBank, hull_mask
from .hand_data import hand_framing
from .inference import BodyFrame, Run, Synthesizer
from .pose.framing import Framing, Mipmap
from .pose.hands import hand_box
from .pose.skeleton import THRESHOLDS
from .tensors import hand_figure, to_image, to_tensor


@dataclasses.dataclass(frozen=True)
class Unfinished:
    """What finishing one frame needs besides the run: the body generator's frame, and the poses that place its
    face (in the window's pixels) and its hands (the driving track's rows, in source pixels)."""

    body: BodyFrame
    face_centre: tuple[float, float] | None  # `pose.face.face_centre` of the framed pose
    body_points: np.ndarray  # the track's body row
    hands: np.ndarray  # the track's hands row


class Finisher:
    """The run's face and hand refiners, finishing frames wherever `start` was called: the frame writer's process
    (pickled there with the networks in fp32: each process makes its own int8 copies, as `Synthesizer` does), or the
    generating one. `windowed` False: a whole-frame run, whose hands are not refined (they are laid over a plate)."""

    def __init__(self, run: Run, amp: bool, src_size: tuple[int, int], windowed: bool):
        self.FG, self.HG = run.FG, run.HG if windowed else None
        self.cfg, self.device, self.amp, self.mattes = run.cfg, run.device, amp, run.mattes
        self.hand_size, self.bank = run.hand_size, run.hand_bank
        self.src_size = tuple(src_size)
        self.synth: Synthesizer | None = None
        self.plate_mip: Mipmap | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "synth": None, "plate_mip": None}  # what `start` builds, built again there

    def start(self, plate: np.ndarray | None, threads: int | None = None) -> "Finisher":
        """Make the networks ready here, with the run's `plate` (BGR, the clip's size) for the hands' plate crops;
        `threads`: torch's thread count in this process (a frame writer's: 1)."""
        if threads is not None:
            torch.set_num_threads(threads)
        self.synth = Synthesizer(None, self.FG, self.cfg, self.device, amp=self.amp, alpha=self.mattes, HG=self.HG)
        self.plate_mip = Mipmap(plate) if plate is not None else None
        return self

    def __call__(self, job: FrameJob) -> FrameJob:
        """`job` (with its `unfinished` frame) with the window's RGBA, and its hands for the writer to lay over."""
        u: Unfinished = job.unfinished
        centre = torch.tensor(u.face_centre) if u.face_centre is not None else None
        rgb, alpha = self.synth.refine_face(u.body, centre)
        hands, exemplars = self._hand_patches(u, job.fr) if self.synth.HG is not None else ((), ())
        return dataclasses.replace(job, window=_bgra(rgb, alpha), hands=hands, exemplars=exemplars, unfinished=None)

    def _hand_patches(self, u: Unfinished, fr: Framing) -> tuple:
        """The frame's hands: as the hand refiner redraws them over the body, each a (box framing, BGRA patch,
        weights: only the hand itself, `_on_the_hand`), and the training hands to lay over those, each a (box
        framing, BGRA patch; none without a bank). The boxes follow the driving pose (source pixels) by the
        dataset's rule, sized by the frame's window."""
        size, bank = self.hand_size, self.bank
        found = [(side, box) for side in (0, 1)
                 if (box := hand_box(u.body_points, u.hands, side, fr.window[3])) is not None]
        if not found:
            return (), ()
        framings = [hand_framing(self.src_size, box, size) for _, box in found]
        labels = torch.stack([to_tensor(hand_figure(u.body_points, u.hands, side, f))
                              for (side, _), f in zip(found, framings)])
        plates = torch.stack([to_tensor(self.plate_mip.image(f)) for f in framings])
        boxes = torch.tensor([box for _, box in found])
        colour, a = self.synth.refine_hands(u.body, torch.tensor(fr.window), boxes, labels, plates)
        refined = tuple((f, _bgra(c, h), _on_the_hand(f, u.hands[side], size))
                        for (side, _), f, c, h in zip(found, framings, colour, a))
        return refined, _training_hands(bank, found, u.hands, self.src_size, size) if bank is not None else ()


def _bgra(colour: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """A network's colour (3, H, W) in [-1, 1] and alpha (1, H, W) in [0, 1] as a BGRA uint8 picture (np.dstack took
    5x as long as cv2.merge)."""
    return cv2.merge([to_image(colour), (alpha[0].clamp(0, 1) * 255).round().byte().numpy()])


def _on_the_hand(fr: Framing, points: np.ndarray, size: int) -> np.ndarray:
    """Where a refined hand counts in its box (`compositing.blend_patch`'s weights): the hull of the driving hand's
    keypoints (`points`, (21, 3) in source pixels), grown and feathered (`hand_bank.hull_mask`). Around the hand
    the body generator's frame is kept, but for its blur, which the writer lets the refiner clear
    (`blend_patch(clears=True)`): the refiner learned the hands of its clip, mostly against the background, and
    over the body (a hand across the chest, driven by another dancer) it drew dark red smears all over its box, or
    cleared it, the plate showing through the chest (`scripts/bench_transfer_hands.py`)."""
    found = points[:, 2] > THRESHOLDS["hands"]
    if found.sum() < MIN_POINTS:  # a box placed along the forearm (`pose.hands.hand_box`): all of it counts
        return feather_weights(size)
    return hull_mask(fr.points(points)[found, :2], size) * feather_weights(size)


def _training_hands(bank: HandBank, found: list, hands: np.ndarray, src_size: tuple[int, int], size: int) -> tuple:
    """The nearest training hand of each found hand, moved onto its pose, to lay over the refined one."""
    exemplars = []
    for side, box in found:
        if (drawn := bank.hand_patch(side, hands[side], box, size)) is not None:
            grown, patch = drawn
            exemplars.append((hand_framing(src_size, grown, patch.shape[0]), patch))
    return tuple(exemplars)
