"""`edn render TRACK.npz -o DIR`: stick figures of a pose track as PNGs (and optionally an .mp4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_json_flag
from ..errors import EdnError
from ..events import Reporter
from ..sizes import size_arg


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="draw a pose track's stick figures (PNG per frame, optional .mp4)",
                              description="Draw each frame of a pose track as a stick figure, "
                                          "figure_<frame:06d>.png, letterboxed into --size.")
    p.add_argument("track", type=Path, help="pose track (.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder for the PNGs")
    p.add_argument("--size", type=size_arg, default=None, metavar="WxH",
                   help="figure size, e.g. 512x256 (default: the track's frame size); other aspects are letterboxed")
    p.add_argument("--style", choices=("edn", "controlnet"), default="edn",
                   help="edn: what the generator trains on (default); controlnet: ControlNet OpenPose look")
    p.add_argument("--face", choices=("sparse", "full"), default="sparse",
                   help="the paper's 8 face points (default) or all 70")
    p.add_argument("--video", type=Path, default=None, metavar="OUT.mp4", help="also write the figures as a video")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..pose.track import PoseTrack
    from ..render import render_track

    track = PoseTrack.load(args.track)
    if args.video is not None and args.video.suffix.lower() != ".mp4":
        raise EdnError("the video must be an .mp4 file", path=args.video)
    summary = render_track(track, args.output, size=args.size, style=args.style, face_mode=args.face,
                           video=args.video, reporter=reporter)
    reporter.done(track=str(args.track), **summary)
