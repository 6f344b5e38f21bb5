"""Layers shared by the generators: pix2pixHD's residual block, down- and upsampling steps."""

from __future__ import annotations

import torch
from torch import nn


def norm_layer(channels: int) -> nn.Module:
    """pix2pixHD's instance norm: no affine parameters, no running statistics."""
    return nn.InstanceNorm2d(channels, affine=False)


def stem(in_ch: int, out_ch: int) -> nn.Sequential:
    """7x7 convolution at full resolution with reflection padding (pix2pixHD's first layer)."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_ch, out_ch, 7), norm_layer(out_ch), nn.ReLU(True))


def down(in_ch: int, out_ch: int) -> nn.Sequential:
    """Stride-2 3x3 convolution: halves the resolution."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1), norm_layer(out_ch), nn.ReLU(True))


def up(in_ch: int, out_ch: int, mode: str) -> nn.Sequential:
    """Doubles the resolution. "transpose" is pix2pixHD's; "resize" (nearest upsample, then a 3x3 convolution)
    gives every output pixel the same kernel overlap, so it cannot paint a checkerboard (Odena et al. 2016)."""
    if mode == "transpose":
        conv: list[nn.Module] = [nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)]
    else:
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, padding=1)]
    return nn.Sequential(*conv, norm_layer(out_ch), nn.ReLU(True))


class ResnetBlock(nn.Module):
    """x + (pad, conv3x3, norm, ReLU, pad, conv3x3, norm), as pix2pixHD (reflection padding, no dropout)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)
