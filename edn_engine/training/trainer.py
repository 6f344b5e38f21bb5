"""The training loop, top to bottom: set up, restore, then one step at a time until the steps or minutes run out.

A step trains the body GAN on a batch of consecutive frame pairs, or, in the last `face_fraction` of the steps (the
face stage), the Face GAN and the hand refiner with the body frozen (`training.steps`). Exact resume and several
processes: `training.distributed`. What rank 0 logs: `training.logs`. How long and at what learning rate:
`training.config.Plan`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import device as devices
from ..dataset import PairDataset, load_manifest
from ..errors import EdnError
from ..events import ReaderGone, Reporter
from ..models.config import ModelConfig, check_setting, check_trainable_size, get_profile
from ..models.discriminator import build_discriminator
from ..models.face import build_face_discriminator, build_face_generator
from ..models.generator import build_generator
from ..models.hand import build_hand_discriminator, build_hand_refiner
from ..models.losses import GANLoss, VGGLoss
from ..models.vgg import load_vgg19
from ..layout import RUN_HAND_BANK
from ..outputs import inside
from ..runs import (keep_plate, list_checkpoints, load_latest, rng_state, run_folder, save_checkpoint,
                    set_rng_state, write_run_info)
from .config import Plan, TrainConfig
from .distributed import (StepSampler, StopFlag, agree_steps, barrier, deterministic, finish_distributed,
                          gather_digests, init_distributed, wrap_for_training)
from .logs import append_csv, plot_losses, preview_frames, trim_csv, write_preview
from .steps import FrozenBody, body_step, face_step, hand_step

DEFAULT_PROFILE = "cpu"


def train(dataset_dir: str | Path, run_dir: str | Path, tcfg: TrainConfig, *, profile: str | None = None,
          overrides: dict | None = None, resume: bool = False, reporter: Reporter | None = None) -> dict:
    """Train (or continue) the run in `run_dir` on `dataset_dir`; returns the summary `edn train` prints.

    `profile` and `overrides` (model settings) make a new run; on `resume` the run's own win, and a profile or
    an override that differs from them is refused. None: "cpu" for a new run.
    """
    run_dir = Path(run_dir)
    if inside(run_dir.resolve(), Path(dataset_dir).resolve()):
        raise EdnError("the run folder lies in the dataset it trains on: choose another folder", path=run_dir)
    with run_folder(run_dir):  # checked before any long work; a failed run leaves no empty folder behind
        return _train(Path(dataset_dir), run_dir, tcfg, profile, dict(overrides or {}), resume, reporter)


def _train(dataset_dir: Path, run_dir: Path, tcfg: TrainConfig, profile: str | None, overrides: dict,
           resume: bool, reporter: Reporter | None) -> dict:
    # -- the processes: one, or several under torchrun (rank 0 alone reports, logs and saves) ------------------
    dev, rank, world = init_distributed(devices.choose_device(tcfg.device))
    main = rank == 0
    reporter = reporter if (reporter is not None and main) else Reporter(False, stream=open(os.devnull, "w"))

    # -- the dataset, and the checkpoint to continue from ------------------------------------------------------
    manifest = load_manifest(dataset_dir)
    data = PairDataset(dataset_dir)
    size = tuple(manifest["size"])
    if not resume and list_checkpoints(run_dir):
        raise EdnError("this run folder already holds checkpoints: pass --resume to continue it, "
                       "or choose another folder", path=run_dir)
    found = load_latest(run_dir, reporter) if resume else None
    state, ckpt_path = found if found is not None else (None, None)

    # -- what to train: the run's own model and settings when resuming, else the profile with overrides -------
    if state is not None:
        mcfg, profile, tcfg = _resumed_settings(state, ckpt_path, run_dir, dataset_dir, size, profile, overrides,
                                                tcfg, reporter)
    else:
        profile = profile or DEFAULT_PROFILE
        mcfg = _new_model_config(profile, size, overrides, dataset_dir)
    has_mattes = bool(manifest.get("mattes"))  # without mattes the alpha head is not trained (opaque output)
    if data.store.has_plate and not mcfg.alpha:
        raise EdnError("this dataset trains the person over a background plate, which needs the alpha head: drop "
                       "--set alpha=false, or rebuild the dataset with --framing full", path=dataset_dir)
    use_face = ("FG" in state["nets"]) if state is not None else (
        mcfg.face and tcfg.face_fraction > 0 and _has_faces(manifest))
    use_hands = ("HG" in state["nets"]) if state is not None else (
        mcfg.hands and tcfg.face_fraction > 0 and data.store.has_hands)
    if use_hands and not data.store.has_hands:
        raise EdnError("this run trains the hand refiner but the dataset holds no hand crops: resume it on the dataset "
                       "it was trained on, or start a new run", path=dataset_dir)
    if tcfg.mirror and not data.store.has_plate:
        reporter.log("warning: mirroring a whole-frame dataset: the generator paints the room too, and learns it "
                     "mirrored as often")
    if mcfg.hands and data.store.has_plate and "hand_size" not in manifest:
        reporter.log("this dataset was built before the hand refiner: rebuild it with `edn dataset build` to train one")
    detail = use_face or use_hands  # a face stage: the Face GAN, the hand refiner, or both

    # -- networks, optimizers, losses (seeded: a run always starts from the same weights) ----------------------
    torch.manual_seed(tcfg.seed)
    nets = Networks.build(mcfg, use_face, use_hands, tcfg, dev)
    gan = GANLoss()
    vgg = VGGLoss(load_vgg19(tcfg.vgg_weights)).to(dev) if mcfg.perceptual == "vgg19" else None

    # -- restore weights, optimizer moments, RNG states and the step; the plan too, unless the budget changed --
    step, plan = 0, Plan.of(tcfg.steps if tcfg.minutes is None else None, tcfg, detail)
    if state is not None:
        nets.load(state, ckpt_path)
        set_rng_state(state["rng"])
        step = int(state["step"])
        saved = Plan(state["plan"]["steps"], state["plan"]["body_steps"])
        if tcfg.minutes is None and saved.steps == tcfg.steps:
            plan = saved
        elif tcfg.minutes is not None and saved.body_steps is not None and step >= saved.body_steps:
            plan = saved  # past the body stage: finish the face stage on its own schedule, never unfreeze the body
    trained = wrap_for_training(nets.modules(), world, dev)  # what the steps call: DDP wrappers when world > 1

    # -- rank 0's outputs: run.json, and losses.csv cut back to the step resumed from ------------------------
    header = {"profile": profile, "model": mcfg.to_dict(), "train": tcfg.to_dict(),
              "dataset": {"size": list(size), "framing": manifest["framing"], "mattes": has_mattes,
                          "hand_size": manifest.get("hand_size")}}
    if main:
        write_run_info(run_dir, {"dataset": str(dataset_dir.absolute()), "size": list(size),
                                 "framing": manifest["framing"], "profile": profile, "model": mcfg.to_dict(),
                                 "train": tcfg.to_dict(), "world_size": world, "device": devices.describe(dev)})
        trim_csv(run_dir / "losses.csv", step)
        if data.store.has_plate:
            keep_plate(run_dir, dataset_dir)
        if use_hands:  # the training hands that generation lays over the refined ones, kept as the plate is
            data.store.hand_crops().bank().save(run_dir / RUN_HAND_BANK)
    shown = preview_frames(data.store, tcfg.preview_frames)

    # -- the data: each step's samples are a function of (step, rank), so a resumed run continues the order ----
    sampler = StepSampler(len(data), tcfg.batch_size, rank, world, tcfg.seed)
    batches = iter(torch.utils.data.DataLoader(data, batch_sampler=sampler.batches(step),
                                               num_workers=tcfg.num_workers))

    # -- the loop ----------------------------------------------------------------------------------------------
    save = functools.partial(_save, run_dir, nets=nets, header=header, keep=tcfg.keep_checkpoints, world=world,
                             main=main)
    t_start = time.monotonic()
    times: list[float] = []
    # why the loop ended: a --minutes run always ends on its time budget (its plan is fit to the minutes left)
    stopped = "already done" if plan.done(step) else ("time" if tcfg.minutes is not None else "steps")
    face_from = None  # index in `times` of this session's first face step
    frozen_body = FrozenBody(nets.G)  # the face stage's body generator, each pair's crops made once
    last_preview = None
    first_step = step  # this session's
    with StopFlag() as stop, deterministic(dev):
        while not plan.done(step):
            # stop on SIGTERM or Ctrl-C (on any process), or before a step that would overrun --minutes
            last = times[-1] if times else 0.0
            over = tcfg.minutes is not None and time.monotonic() - t_start + last > tcfg.minutes * 60
            why = stop.agreed(world, dev, out_of_time=over)
            if why is not None:
                stopped = why
                break

            # one step: the body GAN, or the Face GAN once the body steps are done; its data first, so that a
            # damaged dataset file (met only when a step samples it) keeps the steps done since the last save
            t0 = time.monotonic()
            try:
                batch, face_stage = next(batches), plan.face_stage(step)
                hands = data.hand_batch(batch["frame"], sampler.mirrored(step, tcfg.mirror)) if (
                    face_stage and use_hands) else None
            except Exception:  # no step has begun: the state is the last step's
                if world == 1 and step > first_step:  # (several processes would wait for the failed one)
                    with contextlib.suppress(Exception):  # a failing save must not hide the file that failed
                        save(step, plan)
                raise
            if not face_stage:  # the face stage keeps each pair's body crops as they are (`FrozenBody`)
                batch = data.mirrored(batch, sampler.mirrored(step, tcfg.mirror))
            batch = {k: v.to(dev) for k, v in batch.items()}
            # the learning rate of the stage (logged: the Face GAN's in the face stage, else the hand refiner's); the
            # hand refiner keeps the body's, as it was measured (not the Face GAN's face_lr)
            base_lr = plan.lr(step, tcfg)
            lr = base_lr * (mcfg.face_lr if face_stage and use_face else 1.0)
            for name, o in nets.opt.items():
                for group in o.param_groups:
                    group["lr"] = base_lr if name in ("HG", "HD") else lr
            amp = devices.autocast(dev, tcfg.amp)
            if face_stage:
                losses = {}
                if use_face:
                    losses.update(face_step(frozen_body, trained["FG"], trained["FD"], nets.opt["FG"], nets.opt["FD"],
                                            batch, mcfg, gan, vgg, amp))
                if use_hands:
                    batch.update({k: v.to(dev) for k, v in hands.items()})
                    losses.update(hand_step(frozen_body, trained["HG"], trained["HD"], nets.opt["HG"], nets.opt["HD"],
                                            batch, mcfg, gan, vgg, amp))
            else:
                losses = body_step(trained["G"], trained["D"], nets.opt["G"], nets.opt["D"], batch, mcfg, gan,
                                   vgg, amp, has_mattes)
            step += 1
            times.append(time.monotonic() - t0)

            # with --minutes, plan the run's length from the measured speed, and re-plan while the learning rate
            # is still constant (so the decay and the face stage still fit the budget if the speed changes); in the
            # face stage (also when resumed there: the body never trains again), likewise from the face steps'
            # speed. Every process takes rank 0's plan.
            if tcfg.minutes is not None and not face_stage and (
                    len(times) == 4 or (len(times) % 25 == 0 and step < tcfg.decay_start * plan.body_steps)):
                plan = Plan.from_speed(step, times, time.monotonic() - t_start, tcfg, detail)
                plan = Plan(*agree_steps(plan.steps, plan.body_steps, world, dev))
            elif tcfg.minutes is not None and face_stage:
                face_from = len(times) - 1 if face_from is None else face_from  # this session's first face step
                timed = len(times) - face_from
                flat = step - plan.body_steps < tcfg.decay_start * (plan.steps - plan.body_steps)
                if flat and (timed == 4 or timed % 25 == 0):
                    plan = plan.fill_face_stage(step, times[face_from:], time.monotonic() - t_start, tcfg)
                    plan = Plan(*agree_steps(plan.steps, plan.body_steps, world, dev))

            # rank 0 logs: a CSV row per step, now and then a preview and the loss curve, and the progress; when
            # no one reads the events any more (a killed parent), it stops and saves as on SIGTERM
            if main:
                sec = sum(times[-20:]) / len(times[-20:])
                append_csv(run_dir / "losses.csv", step, "face" if face_stage else "body", lr, sec, losses)
                try:
                    if step % tcfg.preview_every == 0 or plan.done(step):
                        last_preview = write_preview(run_dir, step, nets.G, nets.FG if face_stage else None,
                                                     data.store, shown, mcfg, dev)
                        plot_losses(run_dir / "losses.csv", run_dir / "loss_curve.png")
                        reporter.preview(str(last_preview))
                    planned = plan.steps is not None
                    reporter.progress(step, plan.steps, stage="face" if face_stage else "train",
                                      losses={k: round(v, 5) for k, v in losses.items()}, lr=lr,
                                      sec_per_step=round(sec, 4),
                                      eta_s=round(sec * (plan.steps - step), 1) if planned else None,
                                      preview=str(last_preview) if last_preview else None)
                except ReaderGone:
                    stop.raised = True

            # a checkpoint every save_every steps (the last one is written after the loop)
            if step % tcfg.save_every == 0 and not plan.done(step):
                save(step, plan)
        if stopped != "already done":  # the final checkpoint, also after a signal or when the time ran out
            save(step, plan)

    # -- the summary `edn train` prints; equal digests prove the processes stayed in step ----------------------
    digests = gather_digests(nets.G, world)
    checkpoints = list_checkpoints(run_dir) if main else []
    summary = {
        "run": str(run_dir), "step": step, "steps": plan.steps, "body_steps": plan.body_steps, "stopped": stopped,
        "checkpoint": str(checkpoints[-1]) if checkpoints else None,
        "seconds": round(time.monotonic() - t_start, 2),
        "sec_per_step": round(sum(times) / len(times), 4) if times else None,
        "face_stage": use_face, "hand_refiner": use_hands, "world_size": world, "generator_sha256": digests,
        "device": devices.describe(dev),
        "bf16_autocast": bool(tcfg.amp and devices.bf16_supported(dev)),  # device's "bf16" says it could
    }
    finish_distributed(trained, world)
    return summary


# -------------------------------------------------------------------------------------------------------------
# the networks, their settings, and saving them
# -------------------------------------------------------------------------------------------------------------
@dataclass
class Networks:
    """The networks being trained and their Adam optimizers: what a checkpoint saves and a resume restores."""

    G: nn.Module
    D: nn.Module
    FG: nn.Module | None
    FD: nn.Module | None
    HG: nn.Module | None  # the hand refiner and its discriminator (`models.hand`)
    HD: nn.Module | None
    opt: dict[str, torch.optim.Optimizer]

    @classmethod
    def build(cls, mcfg: ModelConfig, use_face: bool, use_hands: bool, tcfg: TrainConfig,
              dev: torch.device) -> "Networks":
        """Built in a fixed order (G, D, FG, FD, HG, HD), so the seed fixes every initial weight."""
        G, D = build_generator(mcfg).to(dev), build_discriminator(mcfg).to(dev)
        FG = build_face_generator(mcfg).to(dev) if use_face else None
        FD = build_face_discriminator(mcfg).to(dev) if use_face else None
        HG = build_hand_refiner(mcfg).to(dev) if use_hands else None
        HD = build_hand_discriminator(mcfg).to(dev) if use_hands else None
        nets = cls(G, D, FG, FD, HG, HD, {})
        if devices.use_channels_last(dev, training=True):
            for net in nets.modules().values():
                net.to(memory_format=torch.channels_last)
        nets.opt = {k: torch.optim.Adam(net.parameters(), lr=tcfg.lr, betas=tuple(tcfg.betas))
                    for k, net in nets.modules().items()}
        return nets

    def modules(self) -> dict[str, nn.Module]:
        return {k: v for k, v in (("G", self.G), ("D", self.D), ("FG", self.FG), ("FD", self.FD), ("HG", self.HG),
                                  ("HD", self.HD)) if v is not None}

    def state(self) -> dict:
        return {"nets": {k: v.state_dict() for k, v in self.modules().items()},
                "optim": {k: o.state_dict() for k, o in self.opt.items()}}

    def load(self, state: dict, path: Path) -> None:
        for name, net in self.modules().items():
            if name not in state["nets"]:
                raise EdnError(f"checkpoint lacks the {name} network", path=path)
            net.load_state_dict(state["nets"][name])
        for name, o in self.opt.items():
            o.load_state_dict(state["optim"][name])


def _new_model_config(profile: str, size: tuple[int, int], overrides: dict, dataset_dir: Path) -> ModelConfig:
    """The profile at the dataset's size with the overrides (--set) applied, each checked and named if bad."""
    for key in ("width", "height"):
        if key in overrides:
            raise EdnError(f"--set {key}: the training size is the dataset's ({size[0]}x{size[1]}); rebuild the "
                           "dataset with `edn dataset build --size` to train at another")
    overrides = {key: check_setting(key, value) for key, value in overrides.items()}
    try:
        check_trainable_size(profile, size, overrides)
    except EdnError as exc:
        raise EdnError(exc.message, path=dataset_dir) from None
    return get_profile(profile, width=size[0], height=size[1], **overrides)


def _resumed_settings(state: dict, ckpt_path: Path, run_dir: Path, dataset_dir: Path, size: tuple[int, int],
                      profile: str | None, overrides: dict, tcfg: TrainConfig,
                      reporter: Reporter) -> tuple[ModelConfig, str, TrainConfig]:
    """The run's own model, profile, seed and face fraction: they win over the command's. A --profile or a model
    setting that differs from the run's is refused (the networks could not load the weights, or would silently
    train something else); a different seed or face fraction is reported as not used."""
    mcfg = ModelConfig.from_dict(state["model"])
    if (mcfg.width, mcfg.height) != size:
        raise EdnError(f"the dataset was built at {size[0]}x{size[1]} but this run trains at "
                       f"{mcfg.width}x{mcfg.height}; rebuild the dataset with --size "
                       f"{mcfg.width}x{mcfg.height} or start a new run", path=dataset_dir)
    trained_profile = state.get("profile") or DEFAULT_PROFILE
    if profile is not None and profile != trained_profile:
        raise EdnError(f"the run was trained with profile {trained_profile}; --profile {profile} differs: drop it "
                       "or start a new run", path=run_dir)
    for key, value in overrides.items():
        value, old = check_setting(key, value), getattr(mcfg, key)
        if value != old:
            flag = f"--perceptual {value}" if key == "perceptual" else f"--set {key}={_shown(value)}"
            raise EdnError(f"the run was trained with {key}={_shown(old)}; {flag} differs: drop it or start a new "
                           "run", path=run_dir)
    seed, face_fraction = int(state["train"]["seed"]), float(state["train"]["face_fraction"])
    mirror = float(state["train"].get("mirror", 0.0))  # a run from before mirroring: none
    unused = [f"{name} {mine}" for name, mine, run in (("seed", tcfg.seed, seed),
                                                        ("face fraction", tcfg.face_fraction, face_fraction),
                                                        ("mirror", tcfg.mirror, mirror))
              if mine != run]
    reporter.log(f"resuming from {ckpt_path.name} (step {state['step']}) with the run's own settings: profile "
                 f"{trained_profile}, its model settings, seed {seed}, face fraction {face_fraction}, mirror {mirror}"
                 + (f" (this command's {' and '.join(unused)} not used)" if unused else ""))
    return mcfg, trained_profile, dataclasses.replace(tcfg, seed=seed, face_fraction=face_fraction, mirror=mirror)


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _has_faces(manifest: dict) -> bool:
    return any(e.get("face_centre") is not None for e in manifest["frames"] if e["split"] == "train")


def _save(run_dir: Path, step: int, plan: Plan, *, nets: Networks, header: dict, keep: int, world: int,
          main: bool) -> None:
    """Rank 0 writes the checkpoint; every process waits for it, so none runs ahead of a save."""
    if main:
        save_checkpoint(run_dir, {**header, "plan": plan.to_dict(), **nets.state(), "rng": rng_state(),
                                  "sampler": {"step": step}}, step, keep=keep)
    barrier(world)
