"""`edn plate INPUT -o PLATE.png`: the clip's background without the person (and PLATE_mask.png, the inpainted part)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from . import add_json_flag
from ..errors import EdnError
from ..events import Reporter
from ..outputs import check_output_file


def register(subparsers) -> None:
    p = subparsers.add_parser("plate", help="estimate the background plate of a static-camera clip",
                              description="Estimate the clip's background without the person, at full resolution: "
                                          "the per-pixel median over frames where the pixel is background. "
                                          "Writes PLATE.png and PLATE_mask.png (255 where never uncovered, "
                                          "inpainted) and says whether the camera is static enough to use it.")
    p.add_argument("input", type=Path, help="video file or folder of images")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="PLATE.png", help="plate image to write")
    p.add_argument("--mattes", type=Path, default=None, metavar="DIR",
                   help="person mattes (matte_NNNNNN.png, from `edn pose extract --mattes`); default: detect them")
    p.add_argument("--start", type=int, default=None, help="first source frame number to use (default: first)")
    p.add_argument("--end", type=int, default=None, help="last source frame number to use, inclusive (default: last)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="frames sampled evenly over the range (default 48)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..plate import PlateConfig, estimate_plate, mask_path
    from ..video import open_source

    t0 = time.monotonic()
    config = PlateConfig() if args.max_frames is None else PlateConfig(max_frames=args.max_frames)
    config.check()
    output, mask = _check_outputs(args)
    open_source(args.input, args.start, args.end)  # a missing or undecodable input: said now, before detecting
    if args.mattes is not None:
        if not args.mattes.is_dir():
            raise EdnError("mattes folder not found", path=args.mattes)
        plate = estimate_plate(args.input, args.mattes, start=args.start, end=args.end, config=config,
                               reporter=reporter)
    else:
        from ..pose.detect import extract_pose  # imports MediaPipe: only when needed

        with tempfile.TemporaryDirectory(prefix="edn-plate-mattes-") as scratch:
            reporter.log(f"detecting the person in {args.input} (for the mattes)")
            extract_pose(args.input, start=args.start, end=args.end, mattes_dir=scratch, reporter=reporter)
            plate = estimate_plate(args.input, scratch, start=args.start, end=args.end, config=config,
                                   reporter=reporter)
    plate.save(output, mask)
    for warning in plate.warnings:
        reporter.log(f"warning: {warning}")
    summary = plate.summary()
    summary.pop("frame_numbers")
    reporter.done(output=str(output), mask=str(mask_path(output)), input=str(args.input),
                  seconds=round(time.monotonic() - t0, 2), **summary)


def _check_outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """Refuse, before any work, outputs that cannot be written or that would land among the inputs."""
    from ..plate import mask_path

    output = check_output_file(args.output, ".png", "plate")
    mask = check_output_file(mask_path(output), ".png", "plate mask")
    for item in (args.input, args.mattes):
        if item is None:
            continue
        item = item.resolve()
        for out in (output, mask):
            if out.resolve() == item or (item.is_dir() and item in out.resolve().parents):
                raise EdnError(f"the output would overwrite or join this stage's input {item}: write elsewhere",
                               path=out)
    return output, mask
