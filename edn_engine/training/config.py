"""How long and how to train, as opposed to `ModelConfig` (what to train): `TrainConfig` (the command's settings,
saved in checkpoints), `Plan` (how many steps, and where the face stage starts) and the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from ..errors import EdnError


@dataclass
class TrainConfig:
    steps: int | None = 10000  # optimizer steps in all, body stage plus face stage (one step = one batch of pairs)
    minutes: float | None = None  # a wall-clock budget instead (it wins over steps): stop and save when it runs out
    face_fraction: float = 0.3  # the last fraction of the steps trains the Face GAN with the body frozen (paper);
    # 0.3, not 0.2: the faces tell the detector front from back. The demo, fp32 AVX2, 9 minutes: pose error 0.17
    # at 0.3 (347 body, 1270 face steps; benchmarks/demo_fp32_avx2.json) against 0.24 at 0.2 (383, 611;
    # bench_face_stage.json's as_trained); romp_sample2, 20 minutes: 3 of 11 faces found against 1, body error
    # 0.076 against 0.072 (bench_quality_face_stage.json, bench_quality_lambda_alpha_20.json)
    # (measured when a face step took both frames of a pair; it now takes the second: `steps.face_step`)
    mirror: float = 0.0  # the chance that a pair is mirrored left to right in body and hand-refiner steps
    # (`PairDataset.mirrored`); off: on romp_sample2, 20 minutes fp32 AVX2, it found no more hands and trained a
    # worse body (benchmarks/bench_quality_mirror*.json, face_stage_hand_mirror.json)
    decay_start: float = 0.5  # fraction of each stage's steps at constant lr; then linear decay to 0 (pix2pixHD)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 1  # pairs per step per process (pix2pixHD trains with batch 1)
    save_every: int = 500  # checkpoint every N steps (and always at the end)
    preview_every: int = 250  # preview PNG, CSV rows and loss curve every N steps
    preview_frames: int = 3  # held-out frames shown in each preview
    keep_checkpoints: int = 2  # checkpoints kept on disk; older ones are removed after a good save
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast where the device computes bf16 natively
    num_workers: int = 0  # data loader processes (0: load in the training process)
    vgg_weights: str | None = None  # torchvision's vgg19-dcbb9e9d.pth; default: the torch hub cache (or download)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.validate()

    def validate(self) -> None:
        if self.minutes is None and self.steps is None:
            raise EdnError("give a training budget: --steps or --minutes")
        if self.steps is not None and self.steps < 1:
            raise EdnError(f"--steps must be at least 1, not {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise EdnError(f"--minutes must be positive, not {self.minutes}")
        if self.save_every < 1 or self.preview_every < 1:
            raise EdnError("--save-every and --preview-every must be at least 1")
        if self.num_workers < 0:
            raise EdnError(f"--workers must be 0 or more, not {self.num_workers}")
        if self.batch_size < 1:
            raise EdnError(f"--batch-size must be at least 1, not {self.batch_size}")
        if not 0.0 <= self.face_fraction < 1.0:
            raise EdnError(f"--face-fraction must be in [0, 1), not {self.face_fraction}")
        if not 0.0 <= self.mirror <= 1.0:
            raise EdnError(f"--mirror must be in [0, 1], not {self.mirror}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise EdnError(f"decay_start must be in [0, 1], not {self.decay_start}")
        if self.keep_checkpoints < 1:
            raise EdnError("keep_checkpoints must be at least 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def lr_at(step: int, stage_start: int, stage_steps: int, cfg: TrainConfig) -> float:
    """pix2pixHD's schedule within a stage: constant for `decay_start` of it, then linear down to 0.

    A pure function of the step, so a resumed run follows exactly the same schedule: the scheduler's
    state is the step counter saved in the checkpoint.
    """
    if stage_steps <= 0:
        return cfg.lr
    t = step - stage_start
    flat = int(round(cfg.decay_start * stage_steps))
    if t < flat:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - (t - flat) / max(1, stage_steps - flat))


@dataclass
class Plan:
    """How long this run trains: `steps` in all, the first `body_steps` of them the body stage, the rest the face
    stage. Both None while a --minutes run has not yet measured its speed (it trains the body at a constant lr)."""

    steps: int | None
    body_steps: int | None

    @classmethod
    def of(cls, steps: int | None, tcfg: TrainConfig, use_face: bool) -> "Plan":
        if steps is None:
            return cls(None, None)
        return cls(steps, steps - (int(round(steps * tcfg.face_fraction)) if use_face else 0))

    @classmethod
    def from_speed(cls, step: int, times: list[float], elapsed: float, tcfg: TrainConfig, use_face: bool) -> "Plan":
        """With --minutes: how many steps fit (`_steps_that_fit`), the last share of them the face stage."""
        return cls.of(_steps_that_fit(step, times, elapsed, tcfg), tcfg, use_face)

    def fill_face_stage(self, step: int, face_times: list[float], elapsed: float, tcfg: TrainConfig) -> "Plan":
        """With --minutes, once face steps are timed: a face step is cheaper than a body step (the body is frozen),
        so the face stage planned at the body's speed would end minutes early; stretch it over the time left."""
        return Plan(_steps_that_fit(step, face_times, elapsed, tcfg), self.body_steps)

    def done(self, step: int) -> bool:
        return self.steps is not None and step >= self.steps

    def face_stage(self, step: int) -> bool:
        return self.body_steps is not None and step >= self.body_steps

    def lr(self, step: int, tcfg: TrainConfig) -> float:
        """The learning rate of `step` within its stage (see `lr_at`); constant while not yet planned."""
        if self.steps is None:
            return tcfg.lr
        if self.face_stage(step):
            return lr_at(step, self.body_steps, self.steps - self.body_steps, tcfg)
        return lr_at(step, 0, self.body_steps, tcfg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _steps_that_fit(step: int, times: list[float], elapsed: float, tcfg: TrainConfig) -> int:
    """The step a --minutes run reaches at its budget, at the median speed of `times`' last steps (the first one
    warms up). The median, not the mean: one step stalled by another process must not shrink the whole plan."""
    sec = statistics.median(times[1:][-50:])
    return max(step, step + int((tcfg.minutes * 60 - elapsed) / max(sec, 1e-6)))
