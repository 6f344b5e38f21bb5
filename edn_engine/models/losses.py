"""The training losses: pix2pixHD's LSGAN, feature matching and VGG loss, plus the L1 terms that make thin limbs,
hands and the face matter (person-, limb- and hand-weighted), and the matte loss.

Every function returns an unweighted term, except `generator_losses`/`discriminator_losses` (and the face and hand
stages' `face_generator_losses`/`hand_generator_losses`), which apply the config's lambdas and are the one place
the terms are combined. Inputs may be bf16 (autocast): terms are fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .vgg import VGG19

# pix2pixHD's weights for relu1_1 ... relu5_1: the deepest (most semantic) layer counts most.
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

Feats = list[list[torch.Tensor]]


class GANLoss(nn.Module):
    """LSGAN: mean squared distance of each scale's prediction map (the last feature) to 1 (real) or 0 (fake),
    summed over scales as pix2pixHD."""

    def forward(self, preds: Feats, target_is_real: bool) -> torch.Tensor:
        target = 1.0 if target_is_real else 0.0
        total = preds[0][-1].new_zeros((), dtype=torch.float32)
        for scale in preds:
            p = scale[-1].float()
            total = total + F.mse_loss(p, torch.full_like(p, target))
        return total


def feature_matching_loss(fake_feats: Feats, real_feats: Feats, cfg: ModelConfig | None = None) -> torch.Tensor:
    """pix2pixHD's feature matching: L1 between the discriminator's intermediate features (all but the
    prediction map) on fake and real, weighted 4/(n_layers+1) per layer and 1/num_d per scale; real detached.
    The weights are read from the lists' structure (n_layers+2 features per scale), which `cfg` determines."""
    num_d = len(fake_feats)
    total = fake_feats[0][0].new_zeros((), dtype=torch.float32)
    for fake, real in zip(fake_feats, real_feats):
        layer_w = 4.0 / (len(fake) - 1)
        for f, r in zip(fake[:-1], real[:-1]):
            total = total + (layer_w / num_d) * F.l1_loss(f.float(), r.detach().float())
    return total


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss: weighted L1 between VGG19 activations of fake and real images in [-1, 1],
    after ImageNet normalization. The real image's activations carry no gradient."""

    def __init__(self, vgg: VGG19, weights: tuple[float, ...] = VGG_WEIGHTS):
        super().__init__()
        self.vgg = vgg
        self.weights = weights
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1.0) * 0.5 - self.mean) / self.std

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        n = len(self.weights)
        fake_f = self.vgg(self._normalize(fake), n)
        with torch.no_grad():
            real_f = self.vgg(self._normalize(real), n)
        total = fake.new_zeros((), dtype=torch.float32)
        for w, f, r in zip(self.weights, fake_f, real_f):
            total = total + w * F.l1_loss(f.float(), r.float())
        return total


def limb_mask(label: torch.Tensor, radius: int) -> torch.Tensor:
    """(N, 1, H, W) in {0, 1}: pixels within `radius` of the stick figure's lines (drawn on black, i.e. -1)."""
    lines = (label.float().amax(dim=1, keepdim=True) > -0.8).float()
    if radius <= 0:
        return lines
    return F.max_pool2d(lines, 2 * radius + 1, stride=1, padding=radius)


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 inside `mask` (N, 1, H, W), normalized by the mask's area: a small person or a thin arm weighs as
    much as a large one, instead of vanishing in a frame-wide mean."""
    diff = (fake.float() - real.float()).abs() * mask
    return diff.sum() / (mask.sum() * fake.shape[1] + 1.0)


def matte_loss(alpha: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the predicted matte (after its sigmoid) against the real one, in fp32.

    Not L1: L1 pulls every pixel by the same amount whatever its error, so with the background covering most of
    the frame the matte first collapses towards 0 (the median) and the sigmoid then barely moves; measured on
    the test clip at 64x64, L1 still had alpha lower inside the person than outside after 100 steps, BCE had
    0.50 inside against 0.12 outside."""
    a = alpha.float().clamp(1e-6, 1.0 - 1e-6)
    m = matte.float()
    return -(m * torch.log(a) + (1.0 - m) * torch.log1p(-a)).mean()


def reconstruction_terms(cfg: ModelConfig, fake: torch.Tensor, real: torch.Tensor, label: torch.Tensor,
                         matte: torch.Tensor | None, hands: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Unweighted L1 terms of one frame: whole frame, inside the real matte, near the stick figure, on the hands
    (`hands`: the dataset's hand mask, `pose.hands`)."""
    terms = {"l1": F.l1_loss(fake.float(), real.float())}
    if cfg.lambda_person and matte is not None:
        terms["person"] = masked_l1(fake, real, matte.float())
    if cfg.lambda_limb:
        terms["limb"] = masked_l1(fake, real, limb_mask(label, cfg.limb_radius))
    if cfg.lambda_hand and hands is not None:
        terms["hand"] = masked_l1(fake, real, hands.float())
    return terms


def l1_weight(cfg: ModelConfig, face: bool = False) -> float:
    """With the perceptual loss switched off, its weight moves onto the plain L1 term."""
    if face:
        return cfg.lambda_face_l1 + (cfg.lambda_face_vgg if cfg.perceptual == "none" else 0.0)
    return cfg.lambda_l1 + (cfg.lambda_vgg if cfg.perceptual == "none" else 0.0)


def generator_losses(cfg: ModelConfig, gan: GANLoss, d_fake: Feats, d_real: Feats,
                     fakes: list[torch.Tensor], reals: list[torch.Tensor], labels: list[torch.Tensor],
                     alphas: list[torch.Tensor | None], mattes: list[torch.Tensor | None],
                     vgg_loss: VGGLoss | None, hands: list[torch.Tensor | None] | None = None
                     ) -> dict[str, torch.Tensor]:
    """The body generator's weighted losses for one training example (a temporal pair, or a single frame).

    d_fake/d_real: the discriminator's outputs on the fake and real input (pair); fakes/reals/labels/alphas/
    mattes/hands (hand masks): per frame. Per-frame terms are summed over the frames. Returns each weighted term
    and "total"."""
    out = {"gan": cfg.lambda_gan * gan(d_fake, True),
           "feat": cfg.lambda_feat * feature_matching_loss(d_fake, d_real)}
    w_l1 = l1_weight(cfg)
    zero = out["gan"].new_zeros(())
    vgg = l1 = person = limb = hand = alpha_term = zero
    hands = hands or [None] * len(fakes)
    for fake, real, label, alpha, matte, hand_m in zip(fakes, reals, labels, alphas, mattes, hands,
                                                        strict=True):
        if vgg_loss is not None and cfg.perceptual == "vgg19" and cfg.lambda_vgg:
            vgg = vgg + cfg.lambda_vgg * vgg_loss(fake, real)
        rec = reconstruction_terms(cfg, fake, real, label, matte, hand_m)
        l1 = l1 + w_l1 * rec["l1"]
        person = person + cfg.lambda_person * rec.get("person", zero)
        limb = limb + cfg.lambda_limb * rec.get("limb", zero)
        hand = hand + cfg.lambda_hand * rec.get("hand", zero)
        if alpha is not None and matte is not None and cfg.lambda_alpha:
            alpha_term = alpha_term + cfg.lambda_alpha * matte_loss(alpha, matte)
    out.update(vgg=vgg, l1=l1, person=person, limb=limb, hand=hand, alpha=alpha_term)
    out["total"] = sum(out.values())
    return out


def discriminator_losses(gan: GANLoss, d_fake: Feats, d_real: Feats) -> dict[str, torch.Tensor]:
    """pix2pixHD's discriminator loss: half of (fake -> 0) + (real -> 1). Pass d_fake computed on detached fakes."""
    fake, real = gan(d_fake, False), gan(d_real, True)
    return {"d_fake": fake, "d_real": real, "total": 0.5 * (fake + real)}


def face_generator_losses(cfg: ModelConfig, gan: GANLoss, d_fake: Feats, d_real: Feats, fake: torch.Tensor,
                          real: torch.Tensor, vgg_loss: VGGLoss | None) -> dict[str, torch.Tensor]:
    """The face stage's weighted losses on the face crops (the body generator is frozen then)."""
    out = {"gan": cfg.lambda_face_gan * gan(d_fake, True),
           "feat": cfg.lambda_face_feat * feature_matching_loss(d_fake, d_real)}
    out["vgg"] = out["gan"].new_zeros(())
    if vgg_loss is not None and cfg.perceptual == "vgg19" and cfg.lambda_face_vgg:
        out["vgg"] = cfg.lambda_face_vgg * vgg_loss(fake, real)
    out["l1"] = l1_weight(cfg, face=True) * F.l1_loss(fake.float(), real.float())
    out["total"] = sum(out.values())
    return out


def hand_generator_losses(cfg: ModelConfig, gan: GANLoss, d_fake: Feats, d_real: Feats, comp: torch.Tensor,
                          real: torch.Tensor, alpha: torch.Tensor, matte: torch.Tensor,
                          vgg_loss: VGGLoss | None) -> dict[str, torch.Tensor]:
    """The hand refiner's losses: the face stage's on its composite, plus the matte's (as the body's alpha)."""
    out = face_generator_losses(cfg, gan, d_fake, d_real, comp, real, vgg_loss)
    out["alpha"] = cfg.lambda_alpha * matte_loss(alpha, matte)
    out["total"] = out["total"] + out["alpha"]
    return out
