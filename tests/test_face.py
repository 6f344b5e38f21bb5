"""Where the Face GAN's residual applies, in training and in generation alike: within `face_head` of the face centre
(when set), and on the person only, by their alpha: over a plate, generation adds the change to the person's colour
(the composite itself would carry the training plate into the RGBA wherever the alpha is partial: a halo)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edn_engine import device as devices
from edn_engine.errors import EdnError
from edn_engine.inference import Synthesizer
from edn_engine.models.config import get_profile
from edn_engine.models.face import (build_face_discriminator, build_face_generator, face_origins, head_weights,
                                    paste_faces)
from edn_engine.models.generator import build_generator
from edn_engine.models.losses import GANLoss
from edn_engine.tensors import composite
from edn_engine.training import steps
from edn_engine.training.steps import FrozenBody, face_step

CPU = torch.device("cpu")


def tiny(**changes):
    return get_profile("cpu", width=64, height=64, n_blocks=1, face_size=32, face_ngf=8, face_n_blocks=1,
                       face_ndf=8, **changes)


def constant_face_gan(cfg, value: float) -> nn.Module:
    """A face generator whose residual is `value` everywhere (its networks are the real ones, unused)."""
    fg = build_face_generator(cfg)
    fg.forward = lambda label_crop, face_crop: torch.full_like(face_crop, value)
    return fg


def test_head_weights_are_a_feathered_disc_around_the_face_centre():
    """Whole within face_head crop sides of the centre (which need not be the box's: a face at the frame's edge),
    gone an eighth of a side further out; 0 leaves the residual over the whole box."""
    fs = 64
    centre = torch.tensor([[10.0, 128.0]])
    origins = face_origins(centre, fs, 256, 256)  # the box is shifted: the centre at (10, 32) in it
    assert head_weights(centre, origins, fs, 0.0) is None
    head = head_weights(centre, origins, fs, 0.25)[0, 0]
    assert head.shape == (fs, fs) and head[32, 10] == 1 and head[32, 10 + 16] == 1  # 0.25 sides: 16 pixels
    assert head[32, 10 + 20] == 0.5 and head[32, 10 + 24] == 0 and head[0, fs - 1] == 0
    with pytest.raises(EdnError, match="face_head must not be negative"):
        get_profile("cpu", face_head=-0.1)


def test_generation_changes_only_the_head_with_face_head():
    cfg = tiny(face_head=0.25)
    synth = Synthesizer(build_generator(cfg), build_face_generator(cfg), cfg, CPU, amp=False)
    body = synth.body_frame(torch.rand(3, 64, 64) * 2 - 1)
    changed = (synth.refine_face(body, torch.tensor([20.0, 30.0]))[0] != body.rgb[0]).any(0)
    ys, xs = changed.nonzero().T
    assert changed.any() and torch.hypot(xs - 20.0, ys - 30.0).max() < 0.25 * 32 + 32 / 8


def test_generation_adds_the_face_gans_change_to_the_persons_colour():
    """Over the plate the frame shows the body's composite plus the change, by the person's alpha; a Face GAN that
    changes nothing leaves the person's colour as the body made it (no plate where the alpha is partial)."""
    cfg = tiny()
    plate = torch.zeros(3, 64, 64)
    for value in (0.0, 0.1):
        synth = Synthesizer(build_generator(cfg), constant_face_gan(cfg, value), cfg, CPU, amp=False)
        body = synth.body_frame(torch.rand(3, 64, 64) * 2 - 1, plate=plate)
        assert 0 < body.alpha.min() and body.alpha.max() < 1  # an untrained alpha: partial everywhere
        rgb, alpha = synth.refine_face(body, torch.tensor([32.0, 32.0]))
        assert torch.equal(alpha, body.alpha[0])
        change = paste_faces(torch.zeros(1, 3, 64, 64), torch.full((1, 3, 32, 32), value), torch.tensor([[16, 16]]))
        shown = composite(rgb[None], alpha[None], plate[None])
        unclamped = (body.rgb + change).abs() < 1
        assert torch.allclose(shown[unclamped], (body.shown + body.alpha * change)[unclamped], atol=1e-6)


@pytest.mark.parametrize("face_head", [0.0, 0.25])
def test_training_weighs_the_change_as_generation_shows_it(monkeypatch, face_head):
    """The face step's refined crop is the body's composite plus the change by the body's alpha (and the head's
    disc): what generation shows over the training plate."""
    cfg = tiny(face_head=face_head)
    torch.manual_seed(0)
    batch = {"label": torch.rand(1, 2, 3, 64, 64) * 2 - 1, "image": torch.rand(1, 2, 3, 64, 64) * 2 - 1,
             "frame": torch.tensor([[3, 4]]), "plate": torch.zeros(1, 2, 3, 64, 64),
             "window": torch.tensor([[[0.0, 0, 64, 64]] * 2]), "face": torch.tensor([[[30.0, 30.0], [28.0, 34.0]]])}
    amp = devices.autocast(CPU, False)
    body = FrozenBody(build_generator(cfg))
    origins = face_origins(torch.tensor([[28.0, 34.0]]), 32, 64, 64)
    fake, person = body.face_crops(batch, origins, 32, amp).split([3, 1], dim=1)
    assert 0 < person.min() and person.max() < 1
    seen = {}
    original = steps.face_generator_losses

    def spy(*args):  # (cfg, gan, d_fake, d_real, refined, real, vgg)
        seen["refined"] = args[4].detach()
        return original(*args)

    monkeypatch.setattr(steps, "face_generator_losses", spy)
    FG, FD = build_face_generator(cfg), build_face_discriminator(cfg)
    FG.scale = nn.Parameter(torch.ones(()))  # something for the step to train
    FG.forward = lambda label_crop, face_crop: torch.full_like(face_crop, 0.1) * FG.scale
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=1e-3) for n in (FG, FD))
    face_step(body, FG.refine, FD, opt_g, opt_d, batch, cfg, GANLoss(), None, amp)
    head = head_weights(torch.tensor([[28.0, 34.0]]), origins, 32, face_head)
    expected = fake + person * 0.1 * (1 if head is None else head)
    assert torch.allclose(seen["refined"], expected, atol=1e-6)
