"""The generators' own layers (`models.blocks`): what they compute, and that they compute it the fast way where
it was measured to be faster."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edn_engine.models import blocks
from edn_engine.models.blocks import ChannelsLastConv2d, up


def test_resize_upsampling_paints_no_checkerboard():
    """A flat feature map must stay flat after upsampling (away from the border): resize-convolution does;
    a stride-2 transposed convolution gives a periodic 2x2 pattern, the checkerboard seen in the cpu tests."""
    torch.manual_seed(0)
    flat = torch.ones(1, 8, 16, 16)
    for mode, expect_flat in (("resize", True), ("transpose", False)):
        conv = up(8, 4, mode)[:-2]  # without norm/ReLU: the upsampling itself
        nn.init.normal_(conv[-1].weight)
        inner = conv(flat)[..., 2:-2, 2:-2]
        spread = (inner.amax(dim=(2, 3)) - inner.amin(dim=(2, 3))).max().item()
        assert (spread < 1e-4) == expect_flat, (mode, spread)


@pytest.mark.parametrize("shape", [(2, 6, 33, 35), (1, 6, 32, 32), (1, 6, 17, 64)])
def test_folded_upsampling_matches_upsample_then_convolution(shape, monkeypatch):
    """fp32 resize upsampling on a CPU runs folded (four 2x2 kernels at the input's resolution, never the
    upsampled map): the values and gradients of nn.Upsample + the 3x3 convolution, under that pair's keys."""
    torch.manual_seed(0)
    layer = up(6, 5, "resize")
    assert set(layer.state_dict()) == {"1.weight", "1.bias"}  # as when nn.Upsample came first: old runs load
    conv = layer[0]
    x = torch.randn(*shape, requires_grad=True)
    with monkeypatch.context() as m:
        m.setattr(blocks.F, "interpolate", lambda *a, **k: pytest.fail("upsampled the map instead of folding"))
        folded = conv(x)
    reference = conv.upsampled(x)  # nn.Upsample + nn.Conv2d's way
    assert folded.shape == reference.shape == (shape[0], 5, 2 * shape[2], 2 * shape[3])
    assert torch.allclose(folded, reference, atol=1e-5)
    g = torch.randn_like(folded)
    grads = [torch.autograd.grad((out * g).sum(), (x, conv.weight, conv.bias)) for out in (folded, reference)]
    for a, b in zip(*grads):  # sums over many pixels: compared relative to their size (fp32 rounding)
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_channels_last_interleave_matches_the_default_layouts():
    """int8 convolutions return channels-last maps: interleaved in that layout (whole pixels a copy), the same
    numbers as the default layout's, and the upsampled map stays channels-last."""
    torch.manual_seed(0)
    y = torch.randn(2, 4 * 5, 9, 12)
    plain = blocks.UpsampleConv.interleave(y, (2, 7, 8, 11))
    last = blocks.UpsampleConv.interleave(y.contiguous(memory_format=torch.channels_last), (2, 7, 8, 11))
    assert last.is_contiguous(memory_format=torch.channels_last) and plain.is_contiguous()
    assert plain.shape == (2, 5, 16, 22) and torch.equal(plain, last)


def test_upsampling_is_not_folded_where_it_was_slower_or_unmeasured(monkeypatch):
    """bf16 autocast (slower folded), other dtypes, a channels-last network and small maps (the face-sized
    networks') upsample the map, as before."""
    torch.manual_seed(0)
    conv = up(6, 5, "resize")[0]
    x = torch.randn(1, 6, 32, 32)
    calls = []
    real = F.interpolate
    monkeypatch.setattr(blocks.F, "interpolate", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.autocast("cpu", torch.bfloat16):
        conv(x)
    conv.double()(x.double())
    conv.float()(x.contiguous(memory_format=torch.channels_last))
    conv(x[..., :16, :16])
    assert len(calls) == 4


def test_output_convolution_runs_channels_last_on_a_cpu_and_returns_the_default_layout(monkeypatch):
    torch.manual_seed(0)
    conv = ChannelsLastConv2d(6, 4, 7)
    seen = []
    inner = conv._conv_forward
    monkeypatch.setattr(conv, "_conv_forward", lambda x, w, b: seen.append(x) or inner(x, w, b))
    x = torch.randn(1, 6, 130, 134)
    y = conv(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()
    assert y.is_contiguous() and torch.allclose(y, nn.Conv2d.forward(conv, x), atol=1e-5)
    x_cl = x.contiguous(memory_format=torch.channels_last)  # a channels-last network (GPUs) keeps its layout
    assert conv(x_cl).is_contiguous(memory_format=torch.channels_last)


def test_the_norm_is_instance_norm_computed_as_a_group_norm_on_a_cpu(monkeypatch):
    """pix2pixHD's instance norm, from the group norm's faster CPU kernel (one channel a group) on the default
    layout and channels-last fp32 (below 32x32, a batch norm of each image): nn.InstanceNorm2d's values and
    gradients, no parameters (old runs load); channels-last bf16 keeps torch's."""
    torch.manual_seed(0)
    norm, reference = blocks.norm_layer(7), nn.InstanceNorm2d(7)
    assert isinstance(norm, nn.InstanceNorm2d) and not list(norm.parameters()) and not norm.state_dict()
    x = (torch.randn(2, 7, 9, 11) * 3 + 1).requires_grad_()
    g = torch.randn(2, 7, 9, 11)
    calls = []
    group_norm = F.group_norm
    monkeypatch.setattr(blocks.F, "group_norm", lambda *a, **k: calls.append(1) or group_norm(*a, **k))
    ours = norm(x)
    grad = torch.autograd.grad(ours, x, g)[0]
    assert calls and torch.allclose(ours, reference(x), atol=1e-5)
    assert torch.allclose(grad, torch.autograd.grad(reference(x), x, g)[0], atol=1e-5)
    flat = x.detach()[:1] * 1e-3  # a map of little variance: the eps decides
    assert torch.allclose(norm(flat), reference(flat), atol=1e-5)
    calls.clear()
    big = torch.randn(2, 7, 33, 40).contiguous(memory_format=torch.channels_last)  # fp32 (int8 inference's)
    assert torch.allclose(norm(big), reference(big), atol=1e-5) and calls  # a group norm too
    calls.clear()
    batch_norm, images = F.batch_norm, []
    monkeypatch.setattr(blocks.F, "batch_norm", lambda x, *a, **k: images.append(len(x)) or batch_norm(x, *a, **k))
    last = x.detach().contiguous(memory_format=torch.channels_last)  # under 32x32: a batch norm of each image
    ours = norm(last)
    assert torch.allclose(ours, reference(last), atol=1e-5) and images == [1, 1] and not calls
    assert ours.is_contiguous(memory_format=torch.channels_last)
    last = last.bfloat16()  # bf16 inference's: torch's instance norm
    assert torch.allclose(norm(last).float(), reference(last).float(), atol=3e-2) and not calls
