"""int8 inference (`models.int8`): each layer and whole networks against fp32, and who gets it (`device`)."""

import pytest
import torch
from torch import nn

from edn_engine import device as devices
from edn_engine.inference import Synthesizer
from edn_engine.models.blocks import UpsampleConv
from edn_engine.models.config import get_profile
from edn_engine.models.generator import build_generator
from edn_engine.models.hand import build_hand_refiner
from edn_engine.models.int8 import Int8Conv2d, Int8UpsampleConv, quantized, to_uint8

pytestmark = pytest.mark.skipif(not devices.int8_supported(), reason="int8 needs an x86 CPU and oneDNN")


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / a.pow(2).mean().sqrt())


@pytest.mark.parametrize("shape", [(6, 16, 7, 1, 0), (16, 32, 3, 2, 1), (64, 64, 3, 1, 0)])
def test_conv_matches_fp32_on_signed_and_rectified_input(shape):
    """Within a few percent of fp32 (1% with VNNI, 3% without: oneDNN halves the weights there), on post-ReLU
    maps too: PyTorch's own dynamic int8 convolution was 70% off on those (inputs with a positive mean), which is
    why the layer quantizes its input itself."""
    ci, co, k, stride, pad = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(ci, co, k, stride=stride, padding=pad).eval()
    nn.init.normal_(conv.weight, 0.0, 0.02)
    q = Int8Conv2d.of(conv)
    for x in (torch.randn(1, ci, 33, 33), torch.relu(torch.randn(1, ci, 33, 33)) + 0.5):
        with torch.no_grad():
            assert rel_rms(conv(x), q(x)) < 0.05
    packed = dict(q.packed)  # packed once per input: packing anew on every call cost 40x the convolution
    x = torch.randn(1, ci, 33, 33) * 2  # another range, in weights packed for the first
    with torch.no_grad():
        assert rel_rms(conv(x), q(x)) < 0.05
    assert q.packed.keys() == packed.keys() and all(q.packed[k] is w for k, w in packed.items())
    x = torch.randn(2, ci, 33, 33).contiguous(memory_format=torch.channels_last)  # a batch, channels-last
    with torch.no_grad():
        assert rel_rms(conv(x), q(x)) < 0.05


@pytest.mark.parametrize("channels, pad", [(1, 1), (6, 3), (16, 1), (600, 1)])
def test_a_reflection_padding_joins_its_convolution_with_the_same_result(channels, pad):
    """pix2pixHD's ReflectionPad2d + Conv2d becomes one int8 layer that pads the quantized map (OpenCV; torch past
    512 channels): the same numbers, to the bit, as padding in fp32 and then quantizing."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(channels, 8, 2 * pad + 1)).eval()
    q = quantized(net)
    assert isinstance(q[0], nn.Identity) and q[1].reflect == pad
    x = torch.randn(2, channels, 9, 11)
    for x in (x, x.contiguous(memory_format=torch.channels_last)):
        with torch.no_grad():
            assert torch.equal(q(x), Int8Conv2d.of(net[1])(net[0](x)))


def test_a_padding_the_convolution_cannot_take_stays_apart():
    """Uneven reflection, or a convolution that pads too: the padding stays a layer of its own, in fp32."""
    for pad, conv_pad in (((1, 2, 1, 1), 0), (1, 1)):
        net = nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(4, 4, 3, padding=conv_pad)).eval()
        q = quantized(net)
        assert isinstance(q[0], nn.ReflectionPad2d) and q[1].reflect == 0
        x = torch.randn(1, 4, 9, 9)
        with torch.no_grad():
            assert torch.equal(q(x), Int8Conv2d.of(net[1])(net[0](x)))


def test_the_ends_of_the_range_stay_in_uint8():
    """A stick figure's -1 and 1 (0 and 255 in the picture) must not wrap: over 255 steps, 1 rounded to 256 -> 0."""
    for x in (torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([0.0, 3.0]), torch.tensor([-2.0, 0.0]), torch.zeros(3)):
        q, scale, zero = to_uint8(x.view(1, -1, 1, 1))
        assert torch.allclose((q.view(-1).float() - zero) * scale, x, atol=scale / 2 + 1e-6), (x, q)
    q, _, _ = to_uint8(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1))
    assert q.view(-1).tolist()[2] >= 254


def test_to_uint8_rounds_to_the_nearest_level_in_either_layout():
    """q = round(x / scale + zero), in the input's own memory format (oneDNN reads channels-last maps as they are)."""
    torch.manual_seed(0)
    for x in (torch.randn(2, 5, 7, 9), torch.randn(2, 5, 7, 9).contiguous(memory_format=torch.channels_last),
              torch.randn(1, 3, 4, 6)[..., ::2]):  # a strided view too
        q, scale, zero = to_uint8(x)
        assert q.dtype == torch.uint8 and q.shape == x.shape
        assert q.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(memory_format=torch.channels_last)
        want = (x / scale + zero).round().clamp(0, 255)
        assert (q.float() - want).abs().max() <= 1 and (q.float() != want).float().mean() < 1e-3


def test_upsample_conv_matches_fp32():
    torch.manual_seed(0)
    up = UpsampleConv(32, 16).eval()
    x = torch.relu(torch.randn(2, 32, 20, 24))
    with torch.no_grad():
        want, got = up.upsampled(x), Int8UpsampleConv(up)(x)
    assert got.shape == want.shape == (2, 16, 40, 48)
    assert rel_rms(want, got) < 0.05


def test_quantized_networks_stay_close_and_leave_the_original_alone():
    cfg = get_profile("cpu", width=64, height=64)
    torch.manual_seed(0)
    G, HG = build_generator(cfg).eval(), build_hand_refiner(cfg).eval()
    G8, HG8 = quantized(G), quantized(HG)
    assert not any(isinstance(m, nn.Conv2d) for m in G8.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in G.modules()) > 10  # the fp32 network is untouched
    label, prev = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        (rgb, alpha), (rgb8, alpha8) = G(label, prev), G8(label, prev)
        # random weights: a trained run's frames differ less (scripts/bench_quality.py --compare-fp32); a broken
        # layer differs by ~0.3
        assert (rgb - rgb8).abs().mean() < 0.1 and (alpha - alpha8).abs().mean() < 0.1
        crops = [torch.rand(2, c, 32, 32) for c in (3, 3, 1, 3)]
        assert (HG(*crops)[0] - HG8(*crops)[0]).abs().mean() < 0.1


def test_precision_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    assert devices.inference_precision(cpu, amp=False) == "fp32"
    monkeypatch.setattr(devices, "bf16_supported", lambda d: True)
    assert devices.inference_precision(cpu) == "bf16"
    monkeypatch.setattr(devices, "bf16_supported", lambda d: False)
    assert devices.inference_precision(cpu) == "int8"


def test_synthesizer_generates_in_int8_without_bf16(monkeypatch):
    monkeypatch.setattr(devices, "bf16_supported", lambda d: False)
    cfg = get_profile("cpu", width=64, height=64, face=False)
    torch.manual_seed(0)
    G = build_generator(cfg)
    label = torch.rand(3, 64, 64) * 2 - 1
    fast, exact = (Synthesizer(G, None, cfg, torch.device("cpu"), amp=amp) for amp in (True, False))
    assert (fast.precision, exact.precision) == ("int8", "fp32")
    # one frame: random weights amplify any difference fed back through a chain (a trained run's frames are
    # scored against fp32 by scripts/bench_quality.py --compare-fp32)
    (rgb8, a8), (rgb, a) = fast.next_frame(label), exact.next_frame(label)
    assert (rgb - rgb8).abs().mean() < 0.1 and (a - a8).abs().mean() < 0.1
