"""`edn transfer --target CLIP --source MOTION -o OUT`: the whole pipeline in one command (see `transfer`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_hands_flag, add_json_flag
from ..events import Reporter
from ..sizes import size_arg


def register(subparsers) -> None:
    from ..models.config import PROFILES

    p = subparsers.add_parser(
        "transfer", help="make the target person perform the source's motion (pose, dataset, train, generate)",
        description="Extract both poses, build the dataset, train (or reuse --run), clean and normalize the "
                    "source motion to the target, generate RGBA frames and a preview (source | stick figure | "
                    "result). Re-running with the same -o reuses every stage whose inputs did not change.")
    p.add_argument("--target", type=Path, default=None, help="clip or image folder of the person to animate")
    p.add_argument("--source", type=Path, required=True,
                   help="the motion: a video, an image folder or a pose track (.npz, e.g. from a Blender armature)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (also holds every stage)")
    p.add_argument("--run", type=Path, default=None, help="use this trained run instead of training one")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="network profile (default: cpu)")
    p.add_argument("--size", type=size_arg, default=None, metavar="WxH",
                   help="training size WxH (default: the profile's)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="training budget in minutes")
    budget.add_argument("--steps", type=int, default=None, help="training budget in steps (default 10000)")
    p.add_argument("--perceptual", choices=("vgg19", "none"), default=None,
                   help="vgg19: VGG19 perceptual loss (needs its weights); none: L1 instead (default: profile's)")
    p.add_argument("--no-amp", action="store_true",
                   help="train and generate in fp32 even where bf16 (or, generating on an x86 CPU without bf16, "
                        "int8) is available")
    add_hands_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..pipeline import TrainOptions
    from ..transfer import TransferOptions, transfer

    train = TrainOptions(profile=args.profile, steps=args.steps, minutes=args.minutes, perceptual=args.perceptual,
                         amp=not args.no_amp)
    opts = TransferOptions(size=args.size, hands=args.hands, train=train)
    summary = transfer(args.target, args.source, args.output, run=args.run, options=opts, reporter=reporter)
    reporter.done(**summary)
