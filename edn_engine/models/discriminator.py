"""pix2pixHD's multi-scale PatchGAN discriminator, returning every layer's features for feature matching.

With temporal smoothing the discriminator judges a pair of consecutive frames with their stick figures:
input = cat(label_t, label_t1, img_t, img_t1), 12 channels; without, cat(label, img), 6 channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import norm_layer
from .config import ModelConfig
from .generator import init_weights


def disc_input_channels(cfg: ModelConfig) -> int:
    frames = 2 if cfg.temporal else 1
    return frames * (cfg.label_nc + 3)


class NLayerDiscriminator(nn.Module):
    """One PatchGAN: 4x4 convolutions, `n_layers` of them strided, LeakyReLU 0.2; last layer = 1-channel map."""

    def __init__(self, in_ch: int, ndf: int, n_layers: int):
        super().__init__()
        pad = math.ceil((4 - 1) / 2)  # 2, as pix2pixHD: each layer grows the map by one pixel
        layers: list[nn.Sequential] = [
            nn.Sequential(nn.Conv2d(in_ch, ndf, 4, stride=2, padding=pad), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            layers.append(nn.Sequential(nn.Conv2d(prev, nf, 4, stride=2, padding=pad), norm_layer(nf),
                                        nn.LeakyReLU(0.2, True)))
        prev, nf = nf, min(nf * 2, 512)
        layers.append(nn.Sequential(nn.Conv2d(prev, nf, 4, stride=1, padding=pad), norm_layer(nf),
                                    nn.LeakyReLU(0.2, True)))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=pad)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """`num_d` PatchGANs; scale i sees the input average-pooled i times. forward -> per scale, its features
    (the last one is the prediction map). Scale 0 is the full-resolution one."""

    def __init__(self, in_ch: int, ndf: int, n_layers: int, num_d: int):
        super().__init__()
        self.scales = nn.ModuleList(NLayerDiscriminator(in_ch, ndf, n_layers) for _ in range(num_d))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            out.append(d(x))
        return out


def build_discriminator(cfg: ModelConfig) -> MultiscaleDiscriminator:
    return MultiscaleDiscriminator(disc_input_channels(cfg), cfg.ndf, cfg.n_layers_d, cfg.num_d)
