"""Layers shared by the generators: pix2pixHD's residual block, down- and upsampling steps."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def norm_layer(channels: int) -> nn.Module:
    """pix2pixHD's instance norm: no affine parameters, no running statistics."""
    return InstanceNorm2d(channels, affine=False)


class InstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d, computed on a CPU from PyTorch's faster kernels: the same statistics. Mostly as a group
    norm of one channel a group (forward and backward, fp32 and bf16; numbers in `benchmarks/bench_norm.json`).
    Channels-last maps keep PyTorch's instance norm where it was faster (a GPU's, bf16 inference's), but not in fp32
    (int8 inference's: `models.int8`), where it took 1.5 ms a 16x256x256 map against the group norm's 0.2; and
    channels-last fp32 maps smaller than 32x32 (the bottleneck's) are normalised one image at a time as a batch
    norm of one, whose channels-last kernel took 0.03 ms a 256x16x16 map against the group norm's 0.27 (AVX2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or self.affine or self.track_running_stats:
            return super().forward(x)
        if x.dtype == torch.float32 and not x.is_contiguous() and x.shape[-2] * x.shape[-1] < 32 * 32 \
                and x.is_contiguous(memory_format=torch.channels_last):
            return torch.cat([F.batch_norm(image, None, None, training=True, eps=self.eps) for image in x.split(1)])
        if x.is_contiguous() or x.dtype == torch.float32:
            return F.group_norm(x, x.shape[1], eps=self.eps)
        return super().forward(x)


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
        return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
                             norm_layer(out_ch), nn.ReLU(True))
    # named "1", "2", "3" as when an nn.Upsample came first, so that older checkpoints load as they are
    return nn.Sequential(OrderedDict([("1", UpsampleConv(in_ch, out_ch)), ("2", norm_layer(out_ch)),
                                      ("3", nn.ReLU(True))]))


def _fold(w: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3-tap axis of a kernel folded onto the two input rows (or columns) that output row 2i + a reads after
    nearest 2x upsampling, for a = 0 and a = 1. Row 2i reads input rows i - 1 (tap 0) and i (taps 1, 2); row
    2i + 1 reads rows i (taps 0, 1) and i + 1 (tap 2). Plain additions: the same sums on every call."""
    t0, t1, t2 = w.unbind(dim)
    return torch.stack([t0, t1 + t2], dim), torch.stack([t0 + t1, t2], dim)


class UpsampleConv(nn.Conv2d):
    """Nearest 2x upsampling then a 3x3 convolution (zero padding 1): nn.Upsample + nn.Conv2d's weights and
    result (up to rounding), computed where it pays without the upsampled map.

    Each of the four output pixels of a 2x2 block sees only two input rows and two input columns, so the 3x3
    kernel folds into four 2x2 kernels (one per phase), run as one convolution at the input's resolution and
    interleaved: 2.25x fewer multiplications. With `ChannelsLastConv2d`, in fp32 on the 2-core dev machine
    (benchmarks/bench_{generate,train}_layers.json; "plain-layers" undoes both): the `cpu` generator's frame 16%
    faster with AVX2 (76.7 against 90.9 ms, Face GAN included) and 3% with AVX-512, its training step 9% faster
    with AVX2 (0.666 against 0.734 s) and the same with AVX-512; the face and hand steps unchanged."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(in_ch, out_ch, 3, padding=1)

    def upsampled(self, x: torch.Tensor) -> torch.Tensor:
        """The plain way, on the upsampled map: where the fold does not pay, and the reference it is held to."""
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._folds(x):
            return self.upsampled(x)
        kernels, bias = self.folded()
        return self.interleave(F.conv2d(F.pad(x, (1, 1, 1, 1)), kernels, bias), x.shape)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The four phases' 2x2 kernels as one convolution's weight (4 * out_channels) and bias."""
        o = self.out_channels
        # kernels[a, b]: the 2x2 kernel of output phase (a, b), the pixels at row 2i + a, column 2j + b
        kernels = torch.stack([torch.stack(_fold(rows, -1)) for rows in _fold(self.weight, -2)])
        return kernels.reshape(4 * o, -1, 2, 2), self.bias.repeat(4)

    @staticmethod
    def interleave(y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The folded convolution's output `y` (of the input of `shape`, padded by 1) -> the upsampled map, in
        `y`'s layout. A channels-last `y` (int8's convolutions return one) is interleaved channels-last: each copy
        then moves whole pixels, 7-9x faster than across the layout (9 ms a `cpu` frame against 1.2, AVX2)."""
        n, _, h, w = shape
        o = y.shape[1] // 4
        if y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
            pixels = y.permute(0, 2, 3, 1).view(n, h + 1, w + 1, 2, 2, o)
            out = y.new_empty(n, h, 2, w, 2, o)
            for a in (0, 1):  # phase (a, b) starts at row a, column b
                for b in (0, 1):
                    out[:, :, a, :, b] = pixels[:, a:a + h, b:b + w, a, b]
            return out.view(n, 2 * h, 2 * w, o).permute(0, 3, 1, 2)
        y = y.view(n, 2, 2, o, h + 1, w + 1)
        out = y.new_empty(n, o, h, 2, w, 2)
        for a in (0, 1):
            for b in (0, 1):
                out[:, :, :, a, :, b] = y[:, a, b, :, a:a + h, b:b + w]
        return out.view(n, o, 2 * h, 2 * w)

    @staticmethod
    def _folds(x: torch.Tensor) -> bool:
        """Where the fold was measured faster: fp32 on a CPU, in the default layout, on maps of 32x32 or more.
        Under bf16 autocast it was slower (oneDNN's 2x2 kernels); on the face-sized networks' small maps its fixed
        costs ate the gain; GPUs are unmeasured."""
        return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
                and x.shape[-2] * x.shape[-1] >= 32 * 32 and not torch.is_autocast_enabled("cpu"))


class ChannelsLastConv2d(nn.Conv2d):
    """A convolution computed channels-last on a CPU, for the generators' 7x7 output layer: oneDNN computes its
    few output channels (RGB and matte) slowly in the default layout (figures in `UpsampleConv`). Returns the
    input's layout: the default one, or channels-last for a network already in it (as on a GPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last) \
                or x.shape[-2] * x.shape[-1] < 128 * 128:  # GPUs: channels-last networks already; small maps: no gain
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


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
