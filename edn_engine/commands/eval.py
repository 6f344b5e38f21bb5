"""`edn eval RUN_DIR -o REPORT_DIR`: score a trained run on its dataset's held-out frames (see `evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_json_flag
from ..events import Reporter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="score a run on its held-out frames: SSIM, PSNR, pose error, flicker, vs a retrieval baseline",
        description="Reconstruct each held-out frame from its own pose and compare with the real frame; the "
                    "retrieval baseline (nearest training pose) is scored the same way. Writes report.json, "
                    "contact_sheet.png and side_by_side.mp4 into REPORT_DIR.")
    p.add_argument("run", type=Path, help="training run folder (from `edn train`)")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder to write")
    p.add_argument("--max-frames", type=int, default=None, help="evaluate only the first N held-out frames")
    p.add_argument("--no-amp", action="store_true",
                   help="generate in fp32 even where bf16 (or, on an x86 CPU without bf16, int8) is available")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..evaluate import evaluate_run

    summary = evaluate_run(args.run, args.output, max_frames=args.max_frames, amp=not args.no_amp,
                           reporter=reporter)
    reporter.done(**summary)
