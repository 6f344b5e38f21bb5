"""The U-Net skips of the body generator and the hand refiner: where each starts (`skip_finest`,
`hand_skip_finest`), and what a run saved before the setting rebuilds. A skip at 1/2 resolution carried the stick
figure's colours through as paint (green streaks on dark trousers; the hand figure's colours in the hand), so the
`cpu` profile starts both at 1/4. The Face GAN keeps its skip at 1/2: starting it at 1/4 did not change the
confetti over a side-on dancer's face, nor the hands found (benchmarks/README.md)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from edn_engine.errors import EdnError
from edn_engine.models.config import ModelConfig, get_profile
from edn_engine.models.generator import build_generator
from edn_engine.models.hand import build_hand_refiner


def outputs(build, cfg: ModelConfig, settings: dict[str, dict], run) -> dict[str, torch.Tensor]:
    """`run(net)` for the network built from `cfg` and for one built with each of `settings`, all with the first's
    weights (skips have none, so every variant loads them)."""
    torch.manual_seed(0)
    net = build(cfg)
    out = {"profile": run(net)}
    for key, changes in settings.items():
        other = build(dataclasses.replace(cfg, **changes))
        other.load_state_dict(net.state_dict())
        out[key] = run(other)
    return out


def assert_older_runs_rebuild_with_half(name: str) -> None:
    with pytest.raises(EdnError, match=f"{name} must be at least 1"):
        get_profile("cpu", **{name: 0})
    older = {k: v for k, v in get_profile("cpu").to_dict().items() if k != name}
    assert getattr(ModelConfig.from_dict(older), name) == 1


def test_the_body_generators_skips_start_at_skip_finest():
    """skip_finest names the finest resolution whose encoder map is added to the decoder's (1: at 1/2); a level
    coarser than the coarsest skip leaves the U-Net with no skip at all, the same network as skips=False."""
    cfg = get_profile("cpu", width=64, height=64, n_blocks=1)
    assert cfg.skip_finest == 2
    label = torch.rand(1, 3, 64, 64) * 2 - 1
    out = outputs(build_generator, cfg, {"half": dict(skip_finest=1), "none": dict(skip_finest=cfg.n_downsample),
                                         "off": dict(skips=False)}, lambda g: g(label, None)[0])
    assert torch.equal(out["none"], out["off"])
    assert not torch.allclose(out["half"], out["profile"]) and not torch.allclose(out["profile"], out["off"])
    assert_older_runs_rebuild_with_half("skip_finest")


def test_the_hand_refiners_skips_start_at_hand_skip_finest():
    cfg = get_profile("cpu", width=64, height=64, face_size=32, face_ngf=8, face_n_blocks=1)
    assert cfg.hand_skip_finest == 2
    inputs = (torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32),
              torch.rand(1, 3, 32, 32) * 2 - 1)
    out = outputs(build_hand_refiner, cfg, {"half": dict(hand_skip_finest=1),
                                            "none": dict(hand_skip_finest=cfg.face_n_downsample),
                                            "off": dict(skips=False)}, lambda hg: hg(*inputs)[2])
    assert torch.equal(out["none"], out["off"])
    assert not torch.allclose(out["half"], out["profile"]) and not torch.allclose(out["profile"], out["off"])
    assert_older_runs_rebuild_with_half("hand_skip_finest")
