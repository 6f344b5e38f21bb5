"""Where the Face GAN's residual applies, in training and in generation alike: on the person, by their alpha. Over a
plate, generation adds the change to the person's colour (the composite itself would carry the training plate into
the RGBA wherever the alpha is partial: a halo), and training weighs it the same way."""

from __future__ import annotations

import torch
from torch import nn

from edn_engine import device as devices
from edn_engine.inference import Synthesizer
from edn_engine.models.config import get_profile
from edn_engine.models.face import build_face_discriminator, build_face_generator, face_origins, paste_faces
from edn_engine.models.generator import build_generator
from edn_engine.models.losses import GANLoss
from edn_engine.tensors import composite
from edn_engine.training import steps
from edn_engine.training.steps import FrozenBody, face_step

CPU = torch.device("cpu")


def tiny():
    return get_profile("cpu", width=64, height=64, n_blocks=1, face_size=32, face_ngf=8, face_n_blocks=1, face_ndf=8)


def constant_face_gan(cfg, value: float) -> nn.Module:
    """A face generator whose residual is `value` everywhere (its networks are the real ones, unused)."""
    fg = build_face_generator(cfg)
    fg.forward = lambda label_crop, face_crop: torch.full_like(face_crop, value)
    return fg


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


def test_training_weighs_the_change_as_generation_shows_it(monkeypatch):
    """The face step's refined crop is the body's composite plus the change by the body's alpha: what generation
    shows over the training plate."""
    cfg = tiny()
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
    assert torch.allclose(seen["refined"], fake + person * 0.1, atol=1e-6)
