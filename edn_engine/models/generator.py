"""The body generator: pix2pixHD's GlobalGenerator, optionally wrapped in one LocalEnhancer, with an alpha head.

Input: the stick figure (and, when temporal, the previous generated frame); output: RGB in [-1, 1] and the
person's matte in [0, 1]. The matte is one more channel of the last convolution: nearly free.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ChannelsLastConv2d, ResnetBlock, down, stem, up
from .config import ModelConfig


def init_weights(module: nn.Module) -> None:
    """pix2pixHD's initialisation: convolution weights from N(0, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _head(in_ch: int, out_ch: int) -> nn.Sequential:
    """7x7 output convolution (no activation: the generator splits it into tanh RGB and sigmoid matte)."""
    return nn.Sequential(nn.ReflectionPad2d(3), ChannelsLastConv2d(in_ch, out_ch, 7))


def _output(out: torch.Tensor) -> torch.Tensor:
    """The output layer's map, in the default layout on a CPU: its callers split off a few channels for tanh and
    sigmoid, which took 2.2 ms on a channel slice of a channels-last 256x256 map against 0.2 (int8 and bf16
    inference run channels-last)."""
    return out.contiguous() if out.device.type == "cpu" else out


class GlobalGenerator(nn.Module):
    """Encoder (7x7 stem, strided convs), residual blocks at the bottleneck, decoder back to full resolution.

    `features(x)` returns the last full-resolution feature map (`ngf` channels), which the LocalEnhancer consumes
    (pix2pixHD drops the global generator's output layer when it is nested).
    `skips` adds each encoder feature map to the decoder's at the same resolution, from `skip_finest` halvings
    down: never at full resolution, where a skip was seen to paint the stick figure's colours onto the person early
    in training."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int, n_downsample: int, n_blocks: int, max_channels: int,
                 upsample: str, skips: bool, skip_finest: int = 1):
        super().__init__()
        chans = [min(ngf * 2**i, max_channels) for i in range(n_downsample + 1)]
        self.skips, self.skip_finest = skips, skip_finest
        self.stem = stem(in_ch, chans[0])
        self.down = nn.ModuleList(down(chans[i], chans[i + 1]) for i in range(n_downsample))
        self.blocks = nn.Sequential(*(ResnetBlock(chans[-1]) for _ in range(n_blocks)))
        self.up = nn.ModuleList(up(chans[i + 1], chans[i], upsample) for i in reversed(range(n_downsample)))
        self.head = _head(chans[0], out_ch) if out_ch else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        enc = [self.stem(x)]
        for layer in self.down:
            enc.append(layer(enc[-1]))
        x = self.blocks(enc[-1])
        for i, layer in enumerate(self.up):
            x = layer(x)
            if self.skips and len(self.up) - 1 - i >= self.skip_finest:  # x is at 1 / 2**(len(up) - 1 - i)
                x = x + enc[-2 - i]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _output(self.head(self.features(x)))


class LocalEnhancer(nn.Module):
    """pix2pixHD's local enhancer: a global generator on the half-resolution input, whose features are added to
    a full-resolution branch (`ngf // 2` channels) that refines them with a few residual blocks."""

    def __init__(self, in_ch: int, out_ch: int, cfg: ModelConfig):
        super().__init__()
        ngf_local = max(1, cfg.ngf // 2)
        self.global_net = GlobalGenerator(in_ch, 0, cfg.ngf, cfg.n_downsample, cfg.n_blocks, cfg.max_channels,
                                          cfg.upsample, cfg.skips, cfg.skip_finest)
        g_out = min(cfg.ngf, cfg.max_channels)
        self.local_stem = stem(in_ch, ngf_local)
        self.local_down = down(ngf_local, g_out)
        self.local_blocks = nn.Sequential(*(ResnetBlock(g_out) for _ in range(cfg.n_blocks_local)))
        self.local_up = up(g_out, ngf_local, cfg.upsample)
        self.head = _head(ngf_local, out_ch)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.global_net.features(self.downsample(x))
        s = self.local_stem(x)
        return _output(self.head(self.local_up(self.local_blocks(self.local_down(s) + g))))


class Generator(nn.Module):
    """forward(label, prev) -> (rgb, alpha). `prev` is ignored unless temporal (None means zeros: first frame);
    alpha is None when the config has no alpha head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.temporal = cfg.temporal
        self.alpha = cfg.alpha
        in_ch, out_ch = cfg.gen_input_channels, cfg.gen_output_channels
        if cfg.n_local_enhancers:
            self.net: nn.Module = LocalEnhancer(in_ch, out_ch, cfg)
        else:
            self.net = GlobalGenerator(in_ch, out_ch, cfg.ngf, cfg.n_downsample, cfg.n_blocks, cfg.max_channels,
                                       cfg.upsample, cfg.skips, cfg.skip_finest)
        init_weights(self)

    def forward(self, label: torch.Tensor, prev: torch.Tensor | None = None):
        x = label
        if self.temporal:
            if prev is None:
                prev = label.new_zeros(label.shape[0], 3, *label.shape[2:])
            x = torch.cat([label, prev], dim=1)
        out = self.net(x)
        rgb = torch.tanh(out[:, :3])
        alpha = torch.sigmoid(out[:, 3:4]) if self.alpha else None
        return rgb, alpha


def build_generator(cfg: ModelConfig) -> Generator:
    return Generator(cfg)
