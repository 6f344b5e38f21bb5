"""Images as the networks see them: BGR uint8 arrays <-> RGB float tensors in [-1, 1], and stick-figure labels.

One module for these conversions so the dataset (training), the synthesizer (generation) and the previews
cannot disagree about how a frame or a pose becomes a tensor.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .pose.framing import Framing
from .pose.skeleton import mirror_pose
from .pose.track import PoseTrack
from .render import draw_pose


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 (H, W, 3) -> RGB float (3, H, W) in [-1, 1]."""
    rgb = np.ascontiguousarray(bgr[..., ::-1], dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1).div_(127.5).sub_(1.0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """RGB float (3, H, W) in [-1, 1] -> BGR uint8 (H, W, 3). OpenCV scales, rounds and saturates each plane in one
    pass, and interleaves them: 0.03 ms for 256x256, against 1 ms in torch (generation makes one or three a frame).
    Its absolute value (convertScaleAbs) would fold what lies below -1 back up: clamped first."""
    planes = t.detach().float().clamp_min(-1).cpu().contiguous()
    h = planes.shape[-2]
    q = cv2.convertScaleAbs(planes.reshape(-1, planes.shape[-1]).numpy(), alpha=127.5, beta=127.5)
    return cv2.merge([q[2 * h:], q[h:2 * h], q[:h]])


def stick_figure(track: PoseTrack, i: int, mirror: bool = False) -> np.ndarray:
    """The stick figure of row `i`, drawn in the track's own pixel frame (BGR uint8). `mirror`: the pose as the
    frame mirrored left to right shows it (`pose.skeleton.mirror_pose`), drawn anew, so each side keeps its colours."""
    pose = track.body[i], track.hands[i], track.face[i]
    if mirror:
        pose = mirror_pose(*pose, track.width)
    return draw_pose(*pose, size=(track.width, track.height))


def hand_figure(body: np.ndarray, hands: np.ndarray, side: int, box: Framing) -> np.ndarray:
    """The stick figure of hand `side` (0 left, 1 right) and its forearm, drawn through `box` (the hand box's
    framing, `hand_data.hand_framing`) at its size: what the hand refiner is conditioned on (BGR uint8)."""
    from .pose.skeleton import B

    arm = np.zeros_like(body)
    for name in (("LWrist", "LElbow") if side == 0 else ("RWrist", "RElbow")):
        arm[B[name]] = body[B[name]]
    hand = np.zeros_like(hands)
    hand[side] = hands[side]
    return draw_pose(box.points(arm), box.points(hand), np.zeros((70, 3), np.float32), size=box.dst_size)


def composite(rgb: torch.Tensor, alpha: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """The person (colour `rgb`, coverage `alpha` in [0, 1]) over the background `plate`, all in [-1, 1]."""
    return alpha * rgb + (1.0 - alpha) * plate


def carry(img: torch.Tensor, win_from: torch.Tensor, win_to: torch.Tensor,
          size: tuple[int, int] | None = None) -> torch.Tensor:
    """`img` (B, C, H, W), seen through windows `win_from` (B, 4: x0, y0, width, height in source pixels),
    resampled into windows `win_to`: what the previous frame's output looks like through the current window (or,
    at `size` (H, W), a hand box's view of the window). Where `win_to` sees beyond `win_from`, zeros (as for a
    first frame)."""
    import torch.nn.functional as F

    # A pixel at normalized u in [-1, 1] of win_to sits at source x = x0' + (u + 1) / 2 * w', which is at
    # normalized (x - x0) / w * 2 - 1 in win_from: an affine map per axis, scale w'/w, shift below.
    scale = win_to[:, 2:] / win_from[:, 2:]
    shift = (win_to[:, :2] - win_from[:, :2]) * 2 / win_from[:, 2:] + scale - 1
    theta = torch.zeros(img.shape[0], 2, 3, dtype=img.dtype, device=img.device)
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 1]
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [*img.shape[:2], *(size or img.shape[2:])], align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
