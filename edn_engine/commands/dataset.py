"""`edn dataset build`: turn the target's clip (or image folder) into a training dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_json_flag
from ..events import Reporter
from ..sizes import size_arg

FRAMINGS = ("auto", "window", "full", "letterbox", "crop")  # as edn_engine.dataset.FRAMINGS (not imported: torch)


def register(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="build a training dataset from the target's footage")
    sub = parser.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser("build", help="frames, mattes, face boxes and track at the training size",
                       description="Map every frame of the target's footage to the training size (one framing, "
                                   "recorded), store frames, mattes and the pose track, and hold out the last "
                                   "fraction for evaluation.")
    p.add_argument("input", type=Path, help="target video file or folder of images")
    p.add_argument("-o", "--output", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--size", type=size_arg, required=True, metavar="WxH",
                   help="training size WIDTHxHEIGHT, e.g. 256x256 or 512x256")
    p.add_argument("--track", type=Path, default=None,
                   help="pose track of this footage (.npz); default: detect poses now")
    p.add_argument("--mattes", default=None, metavar="DIR|none",
                   help="folder of matte_NNNNNN.png person masks in source pixels; default: from the pose "
                        "detector (run for the mattes only when --track is given); 'none': no alpha training")
    p.add_argument("--holdout", type=float, default=0.2, help="last fraction of frames held out (default 0.2)")
    p.add_argument("--framing", choices=FRAMINGS, default="auto",
                   help="auto (default): the person over a background plate when the camera is static, else the "
                        "whole frame; window: person over plate or fail; full (= letterbox): the whole frame "
                        "with padding; crop: the whole frame filled, sides cut")
    p.add_argument("--format", dest="image_format", choices=("png", "jpg"), default="png",
                   help="frame files: png (lossless, default) or jpg (smaller, quality 95)")
    p.add_argument("--profile", default="cpu", metavar="PROFILE",
                   help="the network profile this dataset is for: a size it cannot train is refused before the "
                        "build (default cpu)")
    p.add_argument("--start", type=int, default=None, help="first source frame to use")
    p.add_argument("--end", type=int, default=None, help="last source frame to use (inclusive)")
    add_json_flag(p)
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..dataset import build_dataset

    summary = build_dataset(args.input, args.output, args.size, track=args.track, mattes=args.mattes,
                            holdout=args.holdout, framing=args.framing, image_format=args.image_format,
                            start=args.start, end=args.end, profile=args.profile, reporter=reporter)
    reporter.done(**summary)
