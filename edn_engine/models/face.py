"""The paper's Face GAN: a small generator that adds a residual to the body generator's face crop, judged by
its own PatchGAN on (stick-figure crop, face crop) pairs. Also the crop/paste helpers both stages share."""

from __future__ import annotations

import torch
from torch import nn

from ..compositing import feather_weights
from .config import ModelConfig
from .discriminator import MultiscaleDiscriminator
from .generator import GlobalGenerator, init_weights


class FaceGenerator(nn.Module):
    """forward(label_crop, face_crop) -> residual (N, 3, fs, fs) in [-1, 1]; the refined face is
    `(face_crop + residual).clamp(-1, 1)` (see `refine`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = GlobalGenerator(cfg.label_nc + 3, 3, cfg.face_ngf, cfg.face_n_downsample, cfg.face_n_blocks,
                                   cfg.max_channels, cfg.upsample, cfg.skips)
        init_weights(self)

    def forward(self, label_crop: torch.Tensor, face_crop: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([label_crop, face_crop], dim=1)))

    def refine(self, label_crop: torch.Tensor, face_crop: torch.Tensor) -> torch.Tensor:
        return (face_crop + self(label_crop, face_crop)).clamp(-1.0, 1.0)


def build_face_generator(cfg: ModelConfig) -> FaceGenerator:
    return FaceGenerator(cfg)


def build_face_discriminator(cfg: ModelConfig) -> MultiscaleDiscriminator:
    """One PatchGAN scale on cat(label_crop, face_crop): 6 channels."""
    return MultiscaleDiscriminator(cfg.label_nc + 3, cfg.face_ndf, cfg.face_n_layers_d, 1)


def face_origins(centers: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Top-left corners (N, 2) as (x0, y0) of `size` squares centred on `centers` (N, 2) = (x, y) pixels,
    shifted to lie inside the frame (a face at the border still gets a full crop)."""
    c = torch.as_tensor(centers, dtype=torch.float32).reshape(-1, 2)
    x0 = (c[:, 0].round() - size // 2).clamp(0, width - size)
    y0 = (c[:, 1].round() - size // 2).clamp(0, height - size)
    return torch.stack([x0, y0], dim=1).long()


def crop_faces(img: torch.Tensor, origins: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size) crops at `origins` from `face_origins` (differentiable)."""
    return torch.stack([img[i, :, y:y + size, x:x + size] for i, (x, y) in enumerate(origins.tolist())])


def feather(size: int, margin: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(size, size) weights: 1 inside, falling linearly to 0 at each edge over its outer `margin` pixels (the
    writer's hand paste uses the same, `compositing.feather_weights`)."""
    return torch.from_numpy(feather_weights(size, margin)).to(device)


def paste_faces(img: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
    """A copy of `img` with `faces` blended in at `origins` (differentiable through both): whole inside, fading
    to `img`'s own pixels over the box's outer eighth (its outermost pixels are `img`'s). A hard paste left a seam
    wherever the Face GAN's residual is not zero at the box's edge, which crosses the neck, chest and hair (seen on
    trained cpu-profile runs)."""
    out = img.clone()
    size = faces.shape[-1]
    w = feather(size, max(size // 8, 1), img.device).to(img.dtype)
    for i, (x, y) in enumerate(origins.tolist()):
        under = img[i, :, y:y + size, x:x + size]
        out[i, :, y:y + size, x:x + size] = under + w * (faces[i] - under)
    return out
