"""The training loop, top to bottom: set up, restore, then one step at a time until the steps or minutes run out.

One step trains on a batch of consecutive frame pairs (the paper's temporal smoothing):
    I0 = G(x_t, 0), I1 = G(x_t+1, I0); D judges (x_t, x_t+1, I0, I1) against (x_t, x_t+1, y_t, y_t+1).
Generator loss (`models.losses.generator_losses`): LSGAN + feature matching + VGG19 perceptual (or L1 with
`perceptual none`) + person/limb-weighted L1 + the alpha head's loss against the dataset's mattes. The last
`face_fraction` of the steps trains the Face GAN with the body frozen (paper, section 3.3).

Exact resume: the data order, the learning rate and every random draw are functions of the step, the seed and
the restored RNG states, and checkpoints are written only between steps, so killing a run and resuming it gives
the same weights as never stopping (on CPU, where the kernels are deterministic).

Several processes (`torchrun --nproc_per_node N -m edn_engine train ...`): each takes its own share of every
step's samples (`StepSampler`), and the trained networks are wrapped in DistributedDataParallel, which copies
rank 0's weights to every process at the start and averages the gradients across processes in each backward.
As in pix2pixHD-style GAN code, G and D are updated separately, and D's pass inside the generator update (D
frozen, only the gradient towards G wanted) calls the bare module around its DDP wrapper: that pass needs no
gradient sync. Running G twice before one backward, and D twice (fake, real) in its own update, needs no extra
DDP flags (checked on torch 2.13 with gloo: gradients equal to a hand all-reduce). Not `static_graph=True`:
with D's frozen pass going through DDP, it silently averaged wrong D gradients in that check. With one
process there is no wrapper at all. Checkpoints hold the bare modules' weights, so a run trained in several
processes resumes in one and the other way round. Rank 0 alone writes checkpoints, previews and logs; every
process reads the checkpoint on --resume, so across several machines RUN_DIR must be on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import hashlib
import math
import os
import signal
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import device as devices
from ..atomic import atomic_path, ensure_dir, write_json
from ..dataset import PairDataset, load_manifest
from ..errors import EdnError
from ..events import Reporter
from ..models.config import ModelConfig, get_profile
from ..models.discriminator import build_discriminator
from ..models.face import build_face_discriminator, build_face_generator, crop_faces, face_origins
from ..models.generator import build_generator
from ..models.losses import (GANLoss, VGGLoss, discriminator_losses, face_generator_losses,
                             generator_losses)
from ..models.vgg import load_vgg19
from .checkpoint import list_checkpoints, load_latest, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, lr_at

LOSS_COLUMNS = ("G_gan", "G_feat", "G_vgg", "G_l1", "G_person", "G_limb", "G_alpha", "D_real", "D_fake",
                "F_gan", "F_feat", "F_vgg", "F_l1", "FD_real", "FD_fake")


def train(dataset_dir: str | Path, run_dir: str | Path, tcfg: TrainConfig, *, profile: str = "cpu",
          overrides: dict | None = None, resume: bool = False, reporter: Reporter | None = None) -> dict:
    """Train (or continue) the run in `run_dir` on `dataset_dir`; returns the summary `edn train` prints."""
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    dev = devices.choose_device(tcfg.device)
    rank, world = _init_distributed(dev)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    main = rank == 0
    reporter = reporter if (reporter is not None and main) else Reporter(False, stream=open(os.devnull, "w"))

    # -- the dataset and the run folder -----------------------------------------------------------------
    manifest = load_manifest(dataset_dir)
    data = PairDataset(dataset_dir, "train")
    size = tuple(manifest["size"])
    ensure_dir(run_dir / "checkpoints", "run folder")
    found = load_latest(run_dir, reporter) if resume else None
    if not resume and list_checkpoints(run_dir):
        raise EdnError("this run folder already holds checkpoints: pass --resume to continue it, "
                       "or choose another folder", path=run_dir)
    if found is not None:
        state, ckpt_path = found
        mcfg = ModelConfig.from_dict(state["model"])
        if (mcfg.width, mcfg.height) != size:
            raise EdnError(f"the dataset was built at {size[0]}x{size[1]} but this run trains at "
                           f"{mcfg.width}x{mcfg.height}; rebuild the dataset with --size "
                           f"{mcfg.width}x{mcfg.height} or start a new run", path=dataset_dir)
        # The seed (data order, init), the face stage and the profile belong to the run, not to this command.
        tcfg.seed = int(state["train"]["seed"])
        tcfg.face_fraction = float(state["train"]["face_fraction"])
        profile = state.get("profile", profile)
        reporter.log(f"resuming from {ckpt_path.name} (step {state['step']})")
    else:
        state = None
        mcfg = get_profile(profile, width=size[0], height=size[1], **(overrides or {}))
    has_mattes = bool(manifest.get("mattes"))  # without mattes the alpha head is not trained (opaque output)

    # -- networks, optimizers, losses -----------------------------------------------------------------
    torch.manual_seed(tcfg.seed)
    G, D = build_generator(mcfg).to(dev), build_discriminator(mcfg).to(dev)
    use_face = ("FG" in state["nets"]) if state is not None else (
        mcfg.face and tcfg.face_fraction > 0 and _has_faces(manifest))
    FG = build_face_generator(mcfg).to(dev) if use_face else None
    FD = build_face_discriminator(mcfg).to(dev) if use_face else None
    if devices.use_channels_last(dev, training=True):
        for net in (G, D, FG, FD):
            if net is not None:
                net.to(memory_format=torch.channels_last)
    adam = dict(lr=tcfg.lr, betas=tuple(tcfg.betas))
    opt = {"G": torch.optim.Adam(G.parameters(), **adam), "D": torch.optim.Adam(D.parameters(), **adam)}
    if use_face:
        opt["FG"] = torch.optim.Adam(FG.parameters(), **adam)
        opt["FD"] = torch.optim.Adam(FD.parameters(), **adam)
    nets = {"G": G, "D": D, "FG": FG, "FD": FD}
    gan = GANLoss()
    vgg = VGGLoss(load_vgg19(tcfg.vgg_weights)).to(dev) if mcfg.perceptual == "vgg19" else None

    step = 0
    plan = {"steps": tcfg.steps, "body_steps": _body_steps(tcfg.steps, tcfg, use_face)}
    if state is not None:
        for name, net in nets.items():
            if net is not None:
                if name not in state["nets"]:
                    raise EdnError(f"checkpoint lacks the {name} network", path=ckpt_path)
                net.load_state_dict(state["nets"][name])
        for name, o in opt.items():
            o.load_state_dict(state["optim"][name])
        set_rng_state(state["rng"])
        step = int(state["step"])
        if tcfg.minutes is None and state["plan"]["steps"] == tcfg.steps:
            plan = dict(state["plan"])
    trained = _for_training(nets, world, dev)  # what the steps call: DDP wrappers when world > 1

    # -- outputs of rank 0: run.json, losses.csv, previews -------------------------------------------
    if main:
        write_json(run_dir / "run.json", {
            "format": "edn-run", "dataset": str(dataset_dir.absolute()), "size": list(size),
            "framing": manifest["framing"], "profile": profile, "model": mcfg.to_dict(), "train": tcfg.to_dict(),
            "world_size": world, "device": devices.describe(dev)})
        _trim_csv(run_dir / "losses.csv", step)
    preview_frames = _preview_frames(data.store, tcfg.preview_frames)

    # -- the loop ---------------------------------------------------------------------------------------
    sampler = StepSampler(len(data), tcfg.batch_size, rank, world, tcfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler.batches(step, 10**12),
                                         num_workers=tcfg.num_workers)
    batches = iter(loader)
    t_start = time.monotonic()
    times: list[float] = []
    stopped = "steps" if step < plan["steps"] else "already done"
    last_preview = None
    with _StopFlag() as stop, _deterministic(dev):
        while step < plan["steps"]:
            if _any_rank(stop.raised, world, dev):
                stopped = "signal"
                break
            last = times[-1] if times else 0.0
            if tcfg.minutes is not None and time.monotonic() - t_start + last > tcfg.minutes * 60:
                stopped = "time"
                break
            t0 = time.monotonic()
            batch = {k: v.to(dev) for k, v in next(batches).items()}
            face_stage = step >= plan["body_steps"]
            stage_start, stage_len = ((plan["body_steps"], plan["steps"] - plan["body_steps"]) if face_stage
                                      else (0, plan["body_steps"]))
            lr = lr_at(step, stage_start, stage_len, tcfg)
            for o in opt.values():
                for group in o.param_groups:
                    group["lr"] = lr
            amp = devices.autocast(dev, tcfg.amp)
            if face_stage:
                losses = face_step(G, trained["FG"], trained["FD"], opt["FG"], opt["FD"], batch, mcfg, gan, vgg, amp)
            else:
                losses = body_step(trained["G"], trained["D"], opt["G"], opt["D"], batch, mcfg, gan, vgg, amp,
                                   has_mattes)
            step += 1
            times.append(time.monotonic() - t0)
            # With --minutes, plan the run's length from the measured speed, and re-plan while the learning rate
            # is still constant (so the decay and the face stage still fit the budget if the speed changes).
            if tcfg.minutes is not None and (len(times) == 4 or (len(times) % 25 == 0 and
                                                                 step < tcfg.decay_start * plan["body_steps"])):
                plan = _plan_from_time(step, times, tcfg, use_face, time.monotonic() - t_start)

            if main:
                sec = sum(times[-20:]) / len(times[-20:])
                stage = "face" if face_stage else "train"
                _append_csv(run_dir / "losses.csv", step, "face" if face_stage else "body", lr, sec, losses)
                if step % tcfg.preview_every == 0 or step == plan["steps"]:
                    last_preview = write_preview(run_dir, step, G, FG if face_stage else None, data.store,
                                                 preview_frames, mcfg, dev)
                    plot_losses(run_dir / "losses.csv", run_dir / "loss_curve.png")
                    reporter.preview(str(last_preview))
                planned = tcfg.minutes is None or len(times) >= 4
                reporter.progress(step, plan["steps"] if planned else None, stage=stage,
                                  losses={k: round(v, 5) for k, v in losses.items()}, lr=lr,
                                  sec_per_step=round(sec, 4),
                                  eta_s=round(sec * (plan["steps"] - step), 1) if planned else None,
                                  preview=str(last_preview) if last_preview else None)
            if step % tcfg.save_every == 0 and step < plan["steps"]:
                _save(run_dir, step, nets, opt, mcfg, tcfg, plan, manifest, world, main, profile)
        if stopped != "already done":  # the final checkpoint, also after a signal or the time limit
            _save(run_dir, step, nets, opt, mcfg, tcfg, plan, manifest, world, main, profile)

    digests = _gather_digests(G, world)
    summary = {
        "run": str(run_dir), "step": step, "steps": plan["steps"], "stopped": stopped,
        "checkpoint": str(list_checkpoints(run_dir)[-1]) if main and list_checkpoints(run_dir) else None,
        "seconds": round(time.monotonic() - t_start, 2),
        "sec_per_step": round(sum(times) / len(times), 4) if times else None,
        "face_stage": use_face, "world_size": world, "generator_sha256": digests,
        "device": devices.describe(dev),
    }
    if world > 1:
        # Drop the DDP wrappers before their process group: a minimal gloo script that kept them aborted at
        # exit in 3 of 6 runs ("terminate called without an active exception", torch 2.13), 0 of 6 without.
        trained.clear()
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return summary


# -------------------------------------------------------------------------------------------------------------
# one step of each stage
# -------------------------------------------------------------------------------------------------------------
def body_step(G, D, opt_g, opt_d, batch, cfg: ModelConfig, gan, vgg, autocast,
              mattes: bool = True) -> dict[str, float]:
    """One temporal-pair step of the body GAN: the generator update, then the discriminator's.
    G and D are the networks, or their DDP wrappers when several processes train (see the module docstring)."""
    label, real = batch["label"], batch["image"]
    x0, x1, y0, y1 = label[:, 0], label[:, 1], real[:, 0], real[:, 1]
    m0, m1 = (batch["matte"][:, 0], batch["matte"][:, 1]) if mattes else (None, None)
    with autocast:
        fake0, alpha0 = G(x0, None)  # first frame: no previous output (zeros)
        fake1, alpha1 = G(x1, fake0)  # second frame: fed the first, as at generation time
    fake0, fake1 = fake0.float(), fake1.float()

    # generator: fool D on the pair, match D's features on the real pair, look like the real frames
    frozen_d = _bare(D).requires_grad_(False)  # around DDP: D's weights get no gradient here, nothing to sync
    with autocast:
        d_fake = frozen_d(torch.cat([x0, x1, fake0, fake1], 1))
        with torch.no_grad():
            d_real = frozen_d(torch.cat([x0, x1, y0, y1], 1))
        g = generator_losses(cfg, gan, d_fake, d_real, [fake0, fake1], [y0, y1], [x0, x1], [alpha0, alpha1],
                             [m0, m1], vgg)
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


def face_step(G, refine, FD, opt_g, opt_d, batch, cfg: ModelConfig, gan, vgg, autocast) -> dict[str, float]:
    """One step of the Face GAN on both frames of each pair; the body generator is frozen (paper, sec. 3.3).
    G is the bare body generator; `refine` is the face generator in a `FaceRefine`, and FD the face
    discriminator, or their DDP wrappers when several processes train."""
    label, real = batch["label"], batch["image"]
    with torch.no_grad(), autocast:
        fake0, _ = G(label[:, 0], None)
        fake1, _ = G(label[:, 1], fake0)
    labels = torch.cat([label[:, 0], label[:, 1]])
    fakes = torch.cat([fake0, fake1]).float()
    reals = torch.cat([real[:, 0], real[:, 1]])
    centres = torch.cat([batch["face"][:, 0], batch["face"][:, 1]]).cpu()
    # Frames without a face still run, at weight 0, so that every process takes the same optimizer steps.
    weight = (centres[:, 0] >= 0).float().mean().item()
    size, (h, w) = cfg.face_size, labels.shape[-2:]
    origins = face_origins(torch.where(centres >= 0, centres, torch.tensor([w / 2, h / 2])), size, h, w)
    lab_c, fake_c, real_c = (crop_faces(t, origins, size) for t in (labels, fakes, reals))

    frozen_fd = _bare(FD).requires_grad_(False)  # around DDP, as D in `body_step`
    with autocast:
        refined = refine(lab_c, fake_c).float()
        d_fake = frozen_fd(torch.cat([lab_c, refined], 1))
        with torch.no_grad():
            d_real = frozen_fd(torch.cat([lab_c, real_c], 1))
        g = face_generator_losses(cfg, gan, d_fake, d_real, refined, real_c, vgg)
    opt_g.zero_grad(set_to_none=False)
    (weight * g["total"]).backward()
    opt_g.step()
    frozen_fd.requires_grad_(True)

    with autocast:
        d_fake = FD(torch.cat([lab_c, refined.detach()], 1))
        d_real = FD(torch.cat([lab_c, real_c], 1))
        d = discriminator_losses(gan, d_fake, d_real)
    opt_d.zero_grad(set_to_none=False)
    (weight * d["total"]).backward()
    opt_d.step()
    out = {f"F_{k}": float(v.detach()) for k, v in g.items() if k != "total"}
    out.update(FD_real=float(d["d_real"].detach()), FD_fake=float(d["d_fake"].detach()))
    return out


# -------------------------------------------------------------------------------------------------------------
# data order, distribution, determinism
# -------------------------------------------------------------------------------------------------------------
class StepSampler:
    """The samples of each step as a pure function of (step, rank): the role of a DistributedSampler, but
    resumable at any step. The stream of samples is a sequence of seeded permutations (one per epoch); step s
    takes `batch * world` consecutive samples of it and rank r its own `batch` of those.

    Not torch's DistributedSampler with set_epoch: it shards per epoch, so resuming mid-epoch would need the
    DataLoader fast-forwarded through the batches already trained, and it pads or drops samples to make the
    epoch divide by the number of processes, so the data order would depend on the world size. Here the
    stream is the same for any number of processes (N processes at batch b see what one process at batch N*b
    sees), which is what lets a checkpoint move between one and several processes."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int):
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self._perm: tuple[int, list[int]] | None = None

    def _at(self, pos: int) -> int:
        epoch, k = divmod(pos, self.n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g).tolist())
        return self._perm[1][k]

    def indices(self, step: int) -> list[int]:
        first = step * self.batch * self.world + self.rank * self.batch
        return [self._at(p) for p in range(first, first + self.batch)]

    def batches(self, start: int, stop: int):
        sampler = self

        class _Batches:
            def __iter__(self):
                for s in range(start, stop):
                    yield sampler.indices(s)

            def __len__(self):
                return stop - start

        return _Batches()


def _init_distributed(dev: torch.device) -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; NCCL between GPUs, gloo between CPU processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" and dist.is_nccl_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


class FaceRefine(nn.Module):
    """The face generator's `refine` as a module's forward: DDP syncs only what runs through `forward`."""

    def __init__(self, face_generator: nn.Module):
        super().__init__()
        self.fg = face_generator

    def forward(self, label_crop: torch.Tensor, face_crop: torch.Tensor) -> torch.Tensor:
        return self.fg.refine(label_crop, face_crop)


def _for_training(nets: dict, world: int, dev: torch.device) -> dict[str, nn.Module]:
    """The modules the steps call: the networks themselves in one process (no wrapper, no overhead); in
    several, each in DistributedDataParallel, whose constructor broadcasts rank 0's weights (so every process
    starts from the same ones, also after --resume) and whose backward averages the gradients."""
    out = {"G": nets["G"], "D": nets["D"]}
    if nets["FG"] is not None:
        out.update(FG=FaceRefine(nets["FG"]), FD=nets["FD"])
    if world > 1:
        ids = [dev.index] if dev.type == "cuda" else None
        out = {k: DistributedDataParallel(m, device_ids=ids) for k, m in out.items()}
    return out


def _bare(net: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (or the network itself)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def _any_rank(flag: bool, world: int, dev: torch.device) -> bool:
    """Every process stops at the same step if any of them was signalled."""
    if world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=dev)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _gather_digests(G: torch.nn.Module, world: int) -> list[str]:
    """SHA-256 of the generator's weights on each process: equal digests prove the processes stayed in step."""
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()
    if world <= 1:
        return [digest]
    out: list = [None] * world
    dist.all_gather_object(out, digest)
    return out


@contextlib.contextmanager
def _deterministic(dev: torch.device):
    """Deterministic kernels on CPU (exact resume); cuDNN autotuning on CUDA (speed first there).
    The process-wide switches are put back afterwards, for callers that train in-process."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]


class _StopFlag:
    """SIGTERM (the Blender add-on's cancel) and Ctrl-C finish the current step, save, and exit cleanly."""

    def __enter__(self) -> "_StopFlag":
        self.raised = False
        self._old = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. called from a worker thread): no handlers
            pass
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# -------------------------------------------------------------------------------------------------------------
# planning, saving, logging
# -------------------------------------------------------------------------------------------------------------
def _body_steps(steps: int, tcfg: TrainConfig, use_face: bool) -> int:
    return steps - (int(round(steps * tcfg.face_fraction)) if use_face else 0)


def _plan_from_time(step: int, times: list[float], tcfg: TrainConfig, use_face: bool, elapsed: float) -> dict:
    """With --minutes: how many steps fit, from the median speed of the last steps (the first one warms up).

    The median, not the mean: one step stalled by another process must not shrink the whole plan."""
    sec = statistics.median(times[1:][-50:])
    steps = max(step, step + int((tcfg.minutes * 60 - elapsed) / max(sec, 1e-6)))
    return {"steps": steps, "body_steps": _body_steps(steps, tcfg, use_face)}


def _has_faces(manifest: dict) -> bool:
    return any(e.get("face_centre") is not None for e in manifest["frames"] if e["split"] == "train")


def _save(run_dir, step, nets, opt, mcfg, tcfg, plan, manifest, world, main, profile) -> None:
    if main:
        state = {
            "profile": profile, "model": mcfg.to_dict(), "train": tcfg.to_dict(), "plan": plan,
            "nets": {k: v.state_dict() for k, v in nets.items() if v is not None},
            "optim": {k: v.state_dict() for k, v in opt.items()},
            "rng": rng_state(), "sampler": {"step": step},
            "dataset": {"size": list(manifest["size"]), "framing": manifest["framing"],
                        "mattes": bool(manifest.get("mattes"))},
        }
        save_checkpoint(run_dir, state, step, keep=tcfg.keep_checkpoints)
    if world > 1:
        dist.barrier()


def _float(preds):
    return [[f.float() for f in scale] for scale in preds]


def _preview_frames(store, k: int) -> list[int]:
    """The first `k` held-out frames (consecutive, so the temporal feedback shows); training frames if none."""
    frames = store.frames("holdout") or store.frames("train")
    return frames[:k]


def write_preview(run_dir: Path, step: int, G, FG, store, frames: list[int], cfg: ModelConfig, dev) -> Path:
    """previews/preview_NNNNNNNN.png: one row per frame, stick figure | generated | real."""
    import numpy as np

    from ..dataset import to_image
    from ..generate import Synthesizer
    from ..video import write_image

    synth = Synthesizer(G, FG, cfg, dev, channels_last=False)  # G keeps its training memory format
    rows = []
    for n in frames:
        label = store.label(n)
        rgb, alpha = synth.next_frame(label, store.face_centre(n))
        rows.append(np.concatenate([to_image(label), to_image(rgb), to_image(store.image(n))], axis=1))
    G.train()
    if FG is not None:
        FG.train()
    path = run_dir / "previews" / f"preview_{step:08d}.png"
    write_image(path, np.concatenate(rows, axis=0))
    return path


def _trim_csv(path: Path, step: int) -> None:
    """Drop rows after the step being resumed from: they will be trained again."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step] if rows else []
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(keep)


def _append_csv(path: Path, step: int, stage: str, lr: float, sec: float, losses: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["step", "stage", "lr", "sec_per_step", *LOSS_COLUMNS])
        w.writerow([step, stage, f"{lr:.6g}", f"{sec:.4f}",
                    *(f"{losses[c]:.6g}" if c in losses else "" for c in LOSS_COLUMNS)])


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """The loss curves so far, one line per loss, as a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    colours = plt.get_cmap("tab20").colors
    for k, col in enumerate(LOSS_COLUMNS):
        pts = [(int(r["step"]), float(r[col])) for r in rows if r.get(col)]
        if pts and all(math.isfinite(v) for _, v in pts) and any(v != 0 for _, v in pts):  # skip terms that are off
            ax.plot(*zip(*pts), label=col, linewidth=1, color=colours[k % len(colours)],
                    linestyle="--" if col.startswith("F") else "-")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

