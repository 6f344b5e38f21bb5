"""`edn demo -o OUT_DIR`: render a mannequin in Blender, learn it, make it dance a new motion, score it."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_json_flag
from ..events import Reporter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole pipeline on a synthetic mannequin rendered by Blender (minutes: the training "
                     "budget plus Blender's renders)",
        description="Render a procedural mannequin dancing (Blender/Cycles, ground-truth pose from its armature), "
                    "train the cpu profile on it, make it perform a second motion, compare with that motion's "
                    "ground-truth render, and save a .blend with the result in the Sequencer. Re-running with the "
                    "same -o reuses every finished stage.")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--minutes", type=float, default=9.0, help="training minutes (default 9)")
    p.add_argument("--frames", type=int, default=96, help="frames of the training dance (default 96)")
    p.add_argument("--test-frames", type=int, default=48, help="frames of the second motion (default 48)")
    p.add_argument("--size", type=int, default=256, help="square render and training size in pixels (default 256)")
    p.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel (default 4, denoised)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..demo import DemoOptions, describe, run_demo

    opts = DemoOptions(minutes=args.minutes, frames=args.frames, test_frames=args.test_frames, size=args.size,
                       samples=args.samples)
    summary = run_demo(args.output, opts, reporter)
    reporter.log(describe(summary))
    reporter.done(**summary)
