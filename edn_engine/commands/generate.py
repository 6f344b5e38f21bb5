"""`edn generate`: render the trained target performing the poses of a track, as RGBA frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_hands_flag, add_json_flag
from ..events import Reporter


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate RGBA frames of the target from a pose track",
                              description="Run the trained generator frame by frame on a pose track (in the "
                                          "target's frame size) and write frame_NNNNNN.png RGBA files.")
    p.add_argument("run", type=Path, help="run folder from `edn train`")
    p.add_argument("track", type=Path, help="pose track (.npz), normalized to the target")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the RGBA frames")
    p.add_argument("--video", type=Path, default=None, help="also write an .mp4 preview (RGB)")
    p.add_argument("--resume", action="store_true", help="keep frames already written and continue after them")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--no-amp", action="store_true",
                   help="run in fp32 even where bf16 (or, on an x86 CPU without bf16, int8) is available")
    add_hands_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..generate import generate

    summary = generate(args.run, args.track, args.output, video=args.video, resume=args.resume,
                       device=args.device, amp=not args.no_amp, hands=args.hands, reporter=reporter)
    reporter.done(**summary)
