"""The hand refiner: the Face GAN's design (`models.face`) on each hand's box at the source's resolution.

The body generator draws a hand as a 15-pixel blur in its window; scaled back into a 1080p frame it stays one.
The refiner sees the hand's box at HAND_SIZE pixels (about the source's own resolution): the body's composite
and alpha there (upscaled), and the stick figure of the hand and forearm. It returns the person's colour and
alpha, so fingers the body's matte missed can appear, and the result composites over any plate. It is judged by
its own PatchGAN on (stick figure, composite over the plate crop) against the real crop.
"""

from __future__ import annotations

import torch
from torch import nn

from ..tensors import composite
from .config import ModelConfig
from .discriminator import MultiscaleDiscriminator
from .generator import GlobalGenerator, init_weights


class HandRefiner(nn.Module):
    """forward(label, comp, alpha, plate) -> (colour, alpha, composite) of the hand box, each (N, C, S, S):
    colour and the composite in [-1, 1], alpha in [0, 1]. `comp`/`alpha`: the body's composite and alpha seen
    through the box; `plate`: the plate there. Residuals on the body's picture, as the Face GAN's (alpha's in
    logit space)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = GlobalGenerator(cfg.label_nc + 4, 4, cfg.face_ngf, cfg.face_n_downsample, cfg.face_n_blocks,
                                   cfg.max_channels, cfg.upsample, cfg.skips, cfg.hand_skip_finest)
        init_weights(self)

    def forward(self, label: torch.Tensor, comp: torch.Tensor, alpha: torch.Tensor,
                plate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = self.net(torch.cat([label, comp, alpha * 2 - 1], dim=1)).float()
        colour = (comp + torch.tanh(r[:, :3])).clamp(-1.0, 1.0)
        # alpha's residual in logit space: a clamped sum would saturate at 0 or 1 with no gradient to leave it
        alpha = torch.sigmoid(torch.logit(alpha.float(), eps=1e-3) + r[:, 3:])
        return colour, alpha, composite(colour, alpha, plate)


def build_hand_refiner(cfg: ModelConfig) -> HandRefiner:
    return HandRefiner(cfg)


def build_hand_discriminator(cfg: ModelConfig) -> MultiscaleDiscriminator:
    """One PatchGAN scale on cat(label, composite): as the face discriminator."""
    return MultiscaleDiscriminator(cfg.label_nc + 3, cfg.face_ndf, cfg.face_n_layers_d, 1)


def box_windows(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 3) hand boxes (x0, y0, side) -> (..., 4) windows (x0, y0, side, side), for `tensors.carry`."""
    return torch.cat([boxes, boxes[..., 2:]], dim=-1)
