"""One optimizer step of each training stage: the body GAN on a temporal pair, and the Face GAN and hand refiner.

Body (`body_step`), the paper's temporal smoothing: I0 = G(x_t, 0), I1 = G(x_t+1, I0); D judges
(x_t, x_t+1, I0, I1) against (x_t, x_t+1, y_t, y_t+1). Generator loss (`models.losses.generator_losses`): LSGAN +
feature matching + VGG19 perceptual (or L1 with `perceptual none`) + person/limb/hand-weighted L1 + the alpha head's
loss against the dataset's mattes. Face (`face_step`): the last `face_fraction` of the steps trains the Face GAN
on the face crop of each pair's second frame with the body frozen (paper, section 3.3), and the hand refiner
(`hand_step`, `models.hand`) on that frame's hand boxes at the source's resolution; the frozen body's crops of each
pair are made once (`FrozenBody`).

G and D are updated separately, as in pix2pixHD-style GAN code; D's pass inside the generator update (D frozen,
only the gradient towards G wanted) calls the bare module around its DDP wrapper: that pass needs no gradient
sync (see `training.distributed`).
"""

from __future__ import annotations

import torch

from ..models.config import ModelConfig
from ..models.face import crop_faces, face_origins
from ..models.hand import box_windows
from ..models.losses import discriminator_losses, face_generator_losses, generator_losses, hand_generator_losses
from ..tensors import carry, composite
from .distributed import bare


def generate_pair(G, x0, x1, batch, autocast):
    """A temporal pair as generation makes it: I0 = G(x_t, zeros), I1 = G(x_t+1, I0). With a background plate
    (person over plate) each output is G's colour and alpha composited over the frame's plate crop, and I0 is
    carried into frame t+1's window before it is fed back. Returns (I0, I1, alpha0, alpha1), outputs in fp32."""
    plate = batch.get("plate")
    if plate is None:
        with autocast:
            fake0, alpha0 = G(x0, None)  # first frame: no previous output (zeros)
            fake1, alpha1 = G(x1, fake0)  # second frame: fed the first, as at generation time
        return fake0.float(), fake1.float(), alpha0, alpha1
    window = batch["window"]
    with autocast:
        rgb0, alpha0 = G(x0, None)
    fake0 = composite(rgb0.float(), alpha0.float(), plate[:, 0])
    with autocast:
        rgb1, alpha1 = G(x1, carry(fake0, window[:, 0], window[:, 1]))
    fake1 = composite(rgb1.float(), alpha1.float(), plate[:, 1])
    return fake0, fake1, alpha0, alpha1


def body_step(G, D, opt_g, opt_d, batch, cfg: ModelConfig, gan, vgg, autocast,
              mattes: bool = True) -> dict[str, float]:
    """One temporal-pair step of the body GAN: the generator update, then the discriminator's.
    G and D are the networks, or their DDP wrappers when several processes train."""
    label, real = batch["label"], batch["image"]
    x0, x1, y0, y1 = label[:, 0], label[:, 1], real[:, 0], real[:, 1]
    m0, m1 = (batch["matte"][:, 0], batch["matte"][:, 1]) if mattes else (None, None)
    h0, h1 = (batch["hands"][:, 0], batch["hands"][:, 1]) if "hands" in batch else (None, None)
    fake0, fake1, alpha0, alpha1 = generate_pair(G, x0, x1, batch, autocast)

    # generator: fool D on the pair, match D's features on the real pair, look like the real frames
    frozen_d = bare(D).requires_grad_(False)  # around DDP: D's weights get no gradient here, nothing to sync
    with autocast:
        d_fake = frozen_d(torch.cat([x0, x1, fake0, fake1], 1))
        with torch.no_grad():
            d_real = frozen_d(torch.cat([x0, x1, y0, y1], 1))
        g = generator_losses(cfg, gan, d_fake, d_real, [fake0, fake1], [y0, y1], [x0, x1], [alpha0, alpha1],
                             [m0, m1], vgg, hands=[h0, h1])
    opt_g.zero_grad(set_to_none=False)
    g["total"].backward()  # with DDP, the gradients are averaged across processes here
    opt_g.step()
    frozen_d.requires_grad_(True)

    # discriminator: real pairs towards 1, generated pairs towards 0 (LSGAN)
    with autocast:
        d_fake = D(torch.cat([x0, x1, fake0.detach(), fake1.detach()], 1))
        d_real = D(torch.cat([x0, x1, y0, y1], 1))
        d = discriminator_losses(gan, d_fake, d_real)
    opt_d.zero_grad(set_to_none=False)
    d["total"].backward()
    opt_d.step()
    out = {f"G_{k}": float(v.detach()) for k, v in g.items() if k != "total"}
    out.update(D_real=float(d["d_real"].detach()), D_fake=float(d["d_fake"].detach()))
    return out


class FrozenBody:
    """The body generator during the face stage, where it is frozen (paper, sec. 3.3): what it makes of a training pair
    never changes, so each pair's face and hand crops are generated once, kept in half precision (32 KB a pair's face
    and alpha at 64 px, 144 KB its hands at 96 px) and reused each time the pair comes round. Its two generator passes
    were two thirds of a face step (237 of 343 ms on the demo's `cpu` run, fp32 AVX2); with them gone the stage takes
    several times the steps in its minutes, once each pair has come round (a clip with more pairs than the stage has
    steps gains little). Kept by pair as the frame has them: the face stage never mirrors the body's frames (`trainer`),
    so a pair's boxes never change (`hand_step` mirrors a mirrored pair's hand crops). Keeps at most `max_bytes` of
    crops (past that, pairs not yet kept are generated every time)."""

    def __init__(self, G, max_bytes: int = 512 * 2**20):
        self.G, self.max_bytes, self.nbytes = G, max_bytes, 0
        self.crops: dict[tuple[str, int, int], torch.Tensor] = {}  # ("face" or "hands", t, t+1) -> a pair's crops
        self._made: tuple | None = None  # the last batch generated: its pairs, and (fake0, fake1, alpha0, alpha1)

    def _generated(self, batch, autocast) -> tuple:
        """The body's pair outputs for this batch, generated once however many kinds of crop want them."""
        pairs = batch["frame"].tolist()
        if self._made is None or self._made[0] != pairs:
            label = batch["label"]
            with torch.no_grad():
                out = generate_pair(self.G, label[:, 0], label[:, 1], batch, autocast)
            self._made = (pairs, out)
        return self._made[1]

    def _kept(self, kind: str, batch, make, autocast) -> torch.Tensor:
        """(pairs, ...) crops of `kind`, each pair's from the store, or all made by `make(outputs)` (and kept)."""
        keys = [(kind, *pair) for pair in batch["frame"].tolist()]
        if any(k not in self.crops for k in keys):
            made = make(*self._generated(batch, autocast)).half()
            for k, crops in zip(keys, made):
                if k not in self.crops and self.nbytes + crops.nbytes <= self.max_bytes:
                    self.crops[k] = crops
                    self.nbytes += crops.nbytes
            if any(k not in self.crops for k in keys):
                return made.float()
        return torch.stack([self.crops[k] for k in keys]).float()

    def face_crops(self, batch, origins: torch.Tensor, size: int, autocast) -> torch.Tensor:
        """The body's face crop of each pair's second frame (see `face_step`) and how much of it is the person's:
        (pairs, 4, size, size), fp32, its alpha last (1 without a plate: the whole frame is the body's)."""

        def make(fake0, fake1, alpha0, alpha1):
            seen = torch.ones_like(fake1[:, :1]) if batch.get("plate") is None else alpha1.float()
            return crop_faces(torch.cat([fake1.float(), seen], 1), origins, size)

        return self._kept("face", batch, make, autocast)

    def hand_crops(self, batch, size: int, autocast) -> torch.Tensor:
        """The body's composite and alpha of each pair's second frame, seen through its two hand boxes: (pairs,
        2 hands, 4, size, size), fp32 (a hand without a box gets a meaningless crop, weighted 0 by `hand_step`)."""

        def make(fake0, fake1, alpha0, alpha1):
            n = fake1.shape[0]
            pics = torch.cat([fake1, alpha1.float()], 1)[:, None].expand(-1, 2, -1, -1, -1).flatten(0, 1)
            windows = batch["window"][:, 1, None].expand(-1, 2, -1).flatten(0, 1)  # (pairs * 2 hands, 4)
            crops = carry(pics.float(), windows, box_windows(batch["hand_box"]).flatten(0, 1), (size, size))
            return crops.view(n, 2, 4, size, size)

        return self._kept("hands", batch, make, autocast)


def face_step(body: FrozenBody, refine, FD, opt_g, opt_d, batch, cfg: ModelConfig, gan, vgg,
              autocast) -> dict[str, float]:
    """One step of the Face GAN on each pair's second frame; the body generator is frozen (paper, sec. 3.3). Only
    the second: it is generated from the first, as every frame is in use, and the two are nearly alike, so the
    stage fits more steps in its minutes for nearly the same lesson (with the hand refiner, romp_sample2's 20
    minutes gave 1889 face-stage steps instead of 920; bench_quality_face_stage_second_frame.json).
    `body` holds the bare body generator; `refine` is the face generator in a `FaceRefine`, and FD the face
    discriminator, or their DDP wrappers when several processes train."""
    labels, reals = batch["label"][:, 1], batch["image"][:, 1]
    centres = batch["face"][:, 1].cpu()
    # Frames without a face still run, at weight 0, so that every process takes the same optimizer steps.
    weight = (centres[:, 0] >= 0).float().mean().item()
    size, (h, w) = cfg.face_size, labels.shape[-2:]
    origins = face_origins(torch.where(centres >= 0, centres, torch.tensor([w / 2, h / 2])), size, h, w)
    lab_c, real_c = (crop_faces(t, origins, size) for t in (labels, reals))
    fake_c, person = body.face_crops(batch, origins, size, autocast).split([3, 1], dim=1)

    def make():  # the refined face crop; its change shows by the person's alpha, as generation adds it to their colour
        return (fake_c + person * (refine(lab_c, fake_c).float() - fake_c)), None

    def losses(d_fake, d_real, refined, _):
        return face_generator_losses(cfg, gan, d_fake, d_real, refined, real_c, vgg)

    return _crop_gan_step(FD, opt_g, opt_d, lab_c, real_c, make, losses, gan, autocast, weight, "F")


def hand_step(body: FrozenBody, HG, HD, opt_g, opt_d, batch, cfg: ModelConfig, gan, vgg,
              autocast) -> dict[str, float]:
    """One step of the hand refiner on the hands of each pair's second frame (as `face_step`), the body frozen.
    HG and HD are the hand refiner and its discriminator, or their DDP wrappers when several processes train."""
    label, real, matte, plate = (batch[f"hand_{k}"].flatten(0, 1) for k in ("label", "real", "matte", "plate"))
    crops = body.hand_crops(batch, label.shape[-1], autocast)  # (pairs, 2 hands, 4, S, S), as the frame has them
    if "hand_mirrored" in batch:  # mirrored with the pair's hands (`PairDataset.hand_batch`)
        crops = torch.where(batch["hand_mirrored"].view(-1, 1, 1, 1, 1), crops.flip(-1), crops)
    crops = crops.flatten(0, 1)  # (pairs * 2 hands, 4, S, S)
    found = batch["hand_box"].flatten(0, 1)[:, 2].cpu() > 0
    # Only the hands with a box train; a batch with none still runs, at weight 0, so every process steps alike.
    keep = found.nonzero()[:, 0] if found.any() else torch.arange(len(found))
    weight = 1.0 if found.any() else 0.0
    label, real, matte, plate, crops = (t[keep.to(t.device)] for t in (label, real, matte, plate, crops))

    def make():  # the refined hand over the plate crop (what D judges), and its alpha (for the matte's loss)
        _, alpha, comp = HG(label, crops[:, :3], crops[:, 3:], plate)
        return comp, alpha

    def losses(d_fake, d_real, comp, alpha):
        return hand_generator_losses(cfg, gan, d_fake, d_real, comp, real, alpha, matte, vgg)

    return _crop_gan_step(HD, opt_g, opt_d, label, real, make, losses, gan, autocast, weight, "H")


def _crop_gan_step(D, opt_g, opt_d, label, real, make, losses, gan, autocast, weight: float,
                   prefix: str) -> dict[str, float]:
    """The generator update, then the discriminator's, of a GAN on crops (the Face GAN, the hand refiner): `make()`
    gives (fake, extra) from the generator, `losses(d_fake, d_real, fake, extra)` its weighted losses; D judges
    cat(label, crop). Logged as PREFIX_loss and PREFIXD_real / PREFIXD_fake."""
    frozen = bare(D).requires_grad_(False)  # around DDP, as D in `body_step`
    with autocast:
        fake, extra = make()
        d_fake = frozen(torch.cat([label, fake], 1))
        with torch.no_grad():
            d_real = frozen(torch.cat([label, real], 1))
        g = losses(d_fake, d_real, fake, extra)
    opt_g.zero_grad(set_to_none=False)
    (weight * g["total"]).backward()
    opt_g.step()
    frozen.requires_grad_(True)

    with autocast:
        d = discriminator_losses(gan, D(torch.cat([label, fake.detach()], 1)), D(torch.cat([label, real], 1)))
    opt_d.zero_grad(set_to_none=False)
    (weight * d["total"]).backward()
    opt_d.step()
    out = {f"{prefix}_{k}": float(v.detach()) for k, v in g.items() if k != "total"}
    out.update({f"{prefix}D_real": float(d["d_real"].detach()), f"{prefix}D_fake": float(d["d_fake"].detach())})
    return out
