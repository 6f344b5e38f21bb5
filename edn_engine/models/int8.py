"""int8 inference on CPUs without bf16: the generators' convolutions computed in 8-bit integers (transposed ones,
the paper profiles' upsampling, stay fp32; the `cpu` profile has none).

A CPU without AMX or AVX512-BF16 (most laptops, AMD before Zen 4) has no faster float than fp32, but its AVX2
multiplies 8-bit integers at several times fp32's rate; convolutions are most of a generated frame's time. Each
convolution's weights are quantized once, per output channel (symmetric int8); its input is quantized on every
call from its own range (dynamic quantization: nothing to calibrate, no ranges stored in checkpoints, and a pose
the training never showed cannot overflow a stored range), and its output comes back in fp32. The norms,
activations, paddings and additions between convolutions stay in fp32, untouched: instance norm renormalises every
map, so the rounding of one layer does not build up through the next.

oneDNN computes them: with VNNI (AVX512-VNNI, AVX-VNNI) a layer is within ~1% of fp32; without it (AVX2 alone, as
Zen 1-3 and Intel before Ice Lake) its weights are halved to keep AVX2's 16-bit pair sums from saturating, and a
layer is within ~3%. ONEDNN_MAX_CPU_ISA=AVX2 holds it to the latter, as for fp32, so a benchmark shows a bf16-less
CPU's speed and quality. A trained run's 1080p person generated so, against fp32: 42.9 dB PSNR (no visible change),
and the same detector figures but for 30 hands found of 71 against 32 (`benchmarks/bench_quality_zen5_int8.json`).
Speed: `scripts/bench_generate.py` (`benchmarks/bench_generate_zen5*.json`, `bench_generate_xeon_int8.json`:
the `cpu` generator 63 ms a frame on one thread with AVX2, 44 with AVX-VNNI, Xeon; about 58 with AVX2 by the
profiler since inputs are quantized by OpenCV).
"""

from __future__ import annotations

import copy

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ChannelsLastConv2d, UpsampleConv


class Int8Conv2d(nn.Module):
    """A 2-D convolution (groups 1, dilation 1) with int8 weights and its input quantized to uint8 per call from
    the input's own range (asymmetric: post-ReLU maps use all 256 levels, signed ones keep their sign); fp32 out.
    oneDNN's int8 convolution on plain uint8/int8 tensors (the kernels PyTorch's x86 quantization compiles to).

    Two things keep oneDNN from laying the weights out again on every call, which cost more than the convolution
    (with AVX-VNNI 34 ms a call of a 256-channel residual block against its 0.8): the weights are packed for each
    input shape the layer meets (a generator meets one or two), and oneDNN always sees a zero point of 0, for which
    the packed weights need no compensation. The input's own zero point `zero` is moved into the bias instead: the
    convolution of (q - zero) equals that of q less zero * (the sum of each output channel's weights), and where
    the layer pads with zeros, it pads q with `zero` itself."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, reflect: int = 0):
        super().__init__()
        self.reflect = reflect  # the ReflectionPad2d before it, done on the quantized map (`_swap`)
        weight = weight.detach().float()
        self.w_scale = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
        self.weight = torch.round(weight / self.w_scale[:, None, None, None]).clamp(-127, 127).to(torch.int8)
        self.w_sums = self.weight.sum(dim=(1, 2, 3), dtype=torch.float32) * self.w_scale  # per output channel
        self.w_zero = torch.zeros_like(self.w_scale, dtype=torch.long)
        self.bias = torch.zeros_like(self.w_scale) if bias is None else bias.detach().float()
        self.stride, self.padding = list(stride), list(padding)
        self.packed: dict[tuple, torch.Tensor] = {}  # (input shape, padding) -> the weights packed for it

    @classmethod
    def of(cls, conv: nn.Conv2d, reflect: int = 0) -> "Int8Conv2d":
        if conv.groups != 1 or tuple(conv.dilation) != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError(f"int8: unsupported convolution {conv}")
        return cls(conv.weight, conv.bias, conv.stride, conv.padding, reflect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qx, scale, zero = to_uint8(x)  # (a reflection pads with values the map has: its range is the padded one's)
        if self.reflect:
            qx = _reflection_padded(qx, self.reflect)
        padding = self.padding
        if zero and any(padding):  # x's zeros are `zero` in q
            qx, padding = F.pad(qx, (padding[1], padding[1], padding[0], padding[0]), value=zero), [0, 0]
        key = (tuple(qx.shape), tuple(padding))
        packed = self.packed.get(key)
        if packed is None:
            packed = self.packed[key] = torch.ops.onednn.qconv_prepack(
                self.weight, self.w_scale, scale, 0, self.stride, padding, [1, 1], 1, list(qx.shape))
        bias = self.bias - (zero * scale) * self.w_sums if zero else self.bias
        return torch.ops.onednn.qconv2d_pointwise(qx, scale, 0, packed, self.w_scale, self.w_zero, bias,
                                                  self.stride, padding, [1, 1], 1, 1.0, 0, torch.float32, "none",
                                                  [], "")


def to_uint8(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """`x` quantized over its own range, widened to hold 0 (zero padding must stay exact): (q, scale, zero point)
    with x ~ (q - zero) * scale, in `x`'s memory format. OpenCV's convertScaleAbs computes x / scale + zero,
    rounded and saturated to uint8, in one pass: a quarter of the time of torch's add then cast (3.4 ms of a
    64-channel 256x256 map with AVX2), since torch has no fused op for it on plain tensors. The values are never
    negative, so its absolute value changes nothing; saturation keeps the range's ends from wrapping (x = 1 of a
    [-1, 1] stick figure once came to 256, which a cast wraps to 0)."""
    x = x.float()  # (OpenCV reads neither bf16 nor, here, fp16)
    channels_last = x.is_contiguous(memory_format=torch.channels_last)
    dense = (x.permute(0, 2, 3, 1) if channels_last else x.contiguous()).detach()  # oneDNN's maps, memory order
    lo, hi = (float(v) for v in torch.aminmax(dense))  # reduced in memory order: 3x faster than across it
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 254
    zero = round(-lo / scale)
    rows = dense.reshape(-1, dense.shape[-2] * dense.shape[-1]).numpy()  # contiguous: a view of x, or a copy
    q = torch.from_numpy(cv2.convertScaleAbs(rows, alpha=1 / scale, beta=zero)).view(dense.shape)
    return (q.permute(0, 3, 1, 2) if channels_last else q), scale, zero


def _reflection_padded(q: torch.Tensor, pad: int) -> torch.Tensor:
    """A uint8 map reflection-padded (as nn.ReflectionPad2d) by OpenCV, channels-last: a 16x256x256 map in 0.05 ms,
    where torch took 0.3 on it and 0.5 on the fp32 map before quantization (AVX2). OpenCV's images hold at most 512
    channels (the paper profiles' bottleneck has 1024): torch pads those."""
    if q.shape[1] > 512:
        return F.pad(q, (pad,) * 4, mode="reflect")
    images = q.permute(0, 2, 3, 1).contiguous().numpy()  # (a view of a channels-last map)
    padded = np.stack([cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) for im in images])
    return torch.from_numpy(padded.reshape(*padded.shape[:3], -1)).permute(0, 3, 1, 2)  # (OpenCV drops one channel)


class Int8UpsampleConv(nn.Module):
    """`UpsampleConv` (nearest 2x upsampling, then a 3x3 convolution) as its folded int8 convolution: the fold is
    done once here, where the fp32 layer does it on every call."""

    def __init__(self, conv: UpsampleConv):
        super().__init__()
        kernels, bias = conv.folded()
        self.conv = Int8Conv2d(kernels, bias, (1, 1), (1, 1))  # padding 1: the fp32 layer's F.pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return UpsampleConv.interleave(self.conv(x), x.shape)


def quantized(net: nn.Module) -> nn.Module:
    """A copy of `net`, for inference, whose convolutions compute in int8 (`net` is left as it is)."""
    net = copy.deepcopy(net).eval()
    _swap(net)
    return net


def _swap(module: nn.Module) -> None:
    """Each convolution of `module` by its int8 layer; a reflection padding just before one (pix2pixHD's 7x7 and
    residual convolutions) joins it, done on the quantized map."""
    before = None
    for name, child in module.named_children():
        if isinstance(child, UpsampleConv):
            setattr(module, name, Int8UpsampleConv(child))
        elif type(child) in (nn.Conv2d, ChannelsLastConv2d):
            pad = before[1].padding if before and isinstance(before[1], nn.ReflectionPad2d) else None
            if isinstance(module, nn.Sequential) and pad and len(set(pad)) == 1 and not any(child.padding):
                setattr(module, before[0], nn.Identity())
                setattr(module, name, Int8Conv2d.of(child, reflect=pad[0]))
            else:
                setattr(module, name, Int8Conv2d.of(child))
        else:
            _swap(child)
        before = (name, child)
