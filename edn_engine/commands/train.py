"""`edn train`: train (or resume) a run on a dataset. Works under `torchrun` for several GPUs or nodes."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from . import add_json_flag
from ..errors import EdnError
from ..events import Reporter
from ..training.config import TrainConfig


def register(subparsers) -> None:
    from ..models.config import PROFILES

    p = subparsers.add_parser("train", help="train the pose-to-person GAN on a dataset",
                              description="Train the body GAN (temporal pairs), then the Face GAN, saving "
                                          "checkpoints under RUN_DIR/checkpoints. SIGTERM or Ctrl-C saves a "
                                          "checkpoint and exits with code 0; --resume continues exactly.")
    p.add_argument("dataset", type=Path, help="dataset folder from `edn dataset build`")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder (checkpoints, previews, losses)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="network profile (default: cpu; with --resume, the run's own)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps in all (default 10000)")
    budget.add_argument("--minutes", type=float, default=None, help="train for this many minutes, then save")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps (default 500)")
    p.add_argument("--preview-every", type=int, default=250, help="preview and loss curve every N steps")
    p.add_argument("--perceptual", choices=("vgg19", "none"), default=None,
                   help="vgg19: VGG19 perceptual loss (needs its weights); none: L1 instead (default: profile's)")
    p.add_argument("--vgg-weights", default=None, metavar="PATH",
                   help="torchvision's vgg19-dcbb9e9d.pth (default: the torch hub cache, downloaded when online)")
    p.add_argument("--face-fraction", type=float, default=TrainConfig.face_fraction,
                   help="last fraction of the steps spent on the Face GAN and the hand refiner, body frozen "
                        "(0: no face stage; default %(default)s)")
    p.add_argument("--mirror", type=float, default=TrainConfig.mirror,
                   help="chance that a training pair is mirrored left to right, the pose's sides exchanged (a person "
                        "over plate: a whole frame's room would be learned mirrored too; default %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, help="frame pairs per step per process (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 even where bf16 autocast is available")
    p.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one model setting of the profile, e.g. --set ngf=32 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run's newest good checkpoint; the run's own profile, model settings, "
                        "seed, face fraction and mirror win (a --profile, --set or --perceptual that differs is "
                        "refused)")
    add_json_flag(p)
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    """['ngf=8', 'skips=false'] -> {'ngf': 8, 'skips': False}: values are JSON, else plain strings."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdnError(f"--set expects KEY=VALUE, not {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..training import train

    overrides = parse_overrides(args.set)
    if args.perceptual is not None:
        overrides["perceptual"] = args.perceptual
    # --minutes: no step count, the run plans its length from its measured speed
    steps = args.steps if args.steps is not None else (None if args.minutes is not None else TrainConfig.steps)
    tcfg = TrainConfig(steps=steps, minutes=args.minutes, save_every=args.save_every,
                       preview_every=args.preview_every, face_fraction=args.face_fraction, mirror=args.mirror,
                       batch_size=args.batch_size, seed=args.seed, device=args.device, amp=not args.no_amp,
                       num_workers=args.workers, vgg_weights=args.vgg_weights)
    summary = train(args.dataset, args.output, tcfg, profile=args.profile, overrides=overrides,
                    resume=args.resume, reporter=reporter)
    if int(os.environ.get("RANK", "0")) == 0:
        reporter.done(**summary)
