"""`edn pose ...`: make and inspect pose tracks.

Each subcommand is a pair of small functions: `_add_<name>(sub)` builds its parser and `_run_<name>(args,
reporter)` does the work by calling one engine function. Heavy imports (MediaPipe) happen inside the run
functions so `edn --help` and the other verbs stay quick.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from . import add_json_flag
from ..errors import EdnError
from ..events import Reporter
from ..outputs import check_output_file


def register(subparsers) -> None:
    parser = subparsers.add_parser("pose", help="extract, import, export, clean, normalize and inspect pose tracks")
    sub = parser.add_subparsers(dest="pose_command", metavar="SUBCOMMAND")
    sub.required = True
    _add_extract(sub)
    _add_info(sub)
    # ---- other subcommands: import-openpose, export-openpose, clean, normalize (add `_add_<name>(sub)` here) ----
    _add_import_openpose(sub)
    _add_export_openpose(sub)
    _add_clean(sub)
    _add_normalize(sub)
    _add_drive(sub)


# ---------------------------------------------------------------------------------------------------------------
# extract: video or image folder -> track (+ mattes)
# ---------------------------------------------------------------------------------------------------------------
def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="detect body, hands and face in a video or image folder (MediaPipe Holistic)",
                       description="Detect the person in every frame and save an OpenPose-layout pose track.")
    p.add_argument("input", type=Path, help="video file (mp4, mov, avi, mkv) or folder of images")
    p.add_argument("-o", "--output", type=Path, required=True, help="pose track to write (.npz)")
    p.add_argument("--start", type=int, default=None, help="first source frame number to read (default: first)")
    p.add_argument("--end", type=int, default=None, help="last source frame number to read, inclusive (default: last)")
    p.add_argument("--mattes", type=Path, default=None, metavar="DIR",
                   help="also write the person mask of each frame as DIR/matte_NNNNNN.png")
    add_json_flag(p)
    p.set_defaults(func=_run_extract)


def _run_extract(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..outputs import MATTES, check_output_folder, staged_folder
    from ..pose.detect import extract_pose  # imports MediaPipe: only when needed

    check_output_file(args.output, ".npz", "pose track")  # before minutes of detection, not after
    if args.mattes is not None:
        check_output_folder(args.mattes, MATTES, "mattes folder", inputs=(args.input,))
    with staged_folder(args.mattes) if args.mattes is not None else contextlib.nullcontext() as mattes:
        track, summary = extract_pose(args.input, start=args.start, end=args.end, mattes_dir=mattes,
                                      reporter=reporter)
        track.save(args.output)
    for warning in summary["warnings"]:  # frames without anybody, or without the person followed, are named here
        reporter.log(f"warning: {args.input}: {warning}")
    if args.mattes is not None:
        summary["mattes"] = str(args.mattes)  # where they are now, not the staging folder they were written to
    reporter.done(output=str(args.output), **summary)


# ---------------------------------------------------------------------------------------------------------------
# info: a JSON summary of a track
# ---------------------------------------------------------------------------------------------------------------
def _add_info(sub) -> None:
    p = sub.add_parser("info", help="print a JSON summary of a pose track")
    p.add_argument("track", type=Path, help="pose track (.npz)")
    add_json_flag(p)
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..pose.track import PoseTrack

    reporter.done(**track_summary(PoseTrack.load(args.track), args.track))


def track_summary(track, path: Path | str | None = None) -> dict:
    """What `edn pose info` prints: enough to line a track up with a strip and judge its detections."""
    rates = track.detection_rates()
    return {
        "path": str(path) if path is not None else None,
        "frames": track.frames,
        "width": track.width,
        "height": track.height,
        "fps": track.fps,
        "frame_start": track.frame_start,
        "frame_end": track.frame_start + track.frames - 1,
        "source": track.source,
        "detection_rate": {k: round(v, 4) for k, v in rates.items()},
    }


# ---------------------------------------------------------------------------------------------------------------
# import-openpose / export-openpose: OpenPose per-frame JSON <-> track
# ---------------------------------------------------------------------------------------------------------------
def _add_import_openpose(sub) -> None:
    from ..sizes import size_arg

    p = sub.add_parser("import-openpose", help="read a folder of OpenPose JSON files (BODY_25 or COCO-18)",
                       description="Read OpenPose's per-frame *_keypoints.json files into a pose track; "
                                   "with several people in a frame the largest is kept.")
    p.add_argument("input", type=Path, metavar="DIR", help="folder of OpenPose JSON files")
    p.add_argument("-o", "--output", type=Path, required=True, help="pose track to write (.npz)")
    p.add_argument("--size", type=size_arg, required=True, metavar="WxH",
                   help="frame size of the footage OpenPose ran on, e.g. 1920x1080 (the JSON does not record it)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of that footage (default 30)")
    add_json_flag(p)
    p.set_defaults(func=_run_import_openpose)


def _run_import_openpose(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..pose.openpose_json import import_openpose_with_stats

    check_output_file(args.output, ".npz")
    if not args.fps > 0:
        raise EdnError(f"--fps must be positive, not {args.fps}")
    track, stats = import_openpose_with_stats(args.input, args.size, fps=args.fps, reporter=reporter)
    track.save(args.output)
    reporter.done(**track_summary(track, args.output), openpose=stats)


def _add_export_openpose(sub) -> None:
    p = sub.add_parser("export-openpose", help="write a track as OpenPose JSON files, one per frame",
                       description="Write <stem>_<frame:012d>_keypoints.json per frame in OpenPose 1.3 layout.")
    p.add_argument("track", type=Path, help="pose track (.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder for the JSON files")
    p.add_argument("--stem", default=None, help="file name prefix (default: the track's source name)")
    add_json_flag(p)
    p.set_defaults(func=_run_export_openpose)


def _run_export_openpose(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..pose.openpose_json import export_openpose
    from ..pose.track import PoseTrack

    track = PoseTrack.load(args.track)
    files = export_openpose(track, args.output, stem=args.stem, reporter=reporter)
    reporter.done(track=str(args.track), output=str(args.output), files=len(files),
                  first=str(files[0]) if files else None)


# ---------------------------------------------------------------------------------------------------------------
# clean: gap filling + temporal smoothing
# ---------------------------------------------------------------------------------------------------------------
def _add_clean(sub) -> None:
    from ..pose.clean import DEFAULT_MAX_GAP, DEFAULT_MEDIAN, METHODS

    p = sub.add_parser("clean", help="fill short detection gaps and smooth a track over time",
                       description="Fill gaps of up to --max-gap frames by interpolation, then smooth each part "
                                   "(the paper's 7-frame median by default).")
    p.add_argument("track", type=Path, help="pose track (.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, help="cleaned track to write (.npz)")
    p.add_argument("--median", type=int, default=DEFAULT_MEDIAN, metavar="N",
                   help=f"smoothing window in frames, odd; 1 = no smoothing (default {DEFAULT_MEDIAN})")
    p.add_argument("--max-gap", type=int, default=DEFAULT_MAX_GAP, metavar="N",
                   help=f"fill gaps of at most N missing frames; 0 = none (default {DEFAULT_MAX_GAP})")
    p.add_argument("--method", choices=METHODS, default="median", help="smoothing filter (default median)")
    p.add_argument("--parts", default="body,hands,face", help="comma-separated parts to clean (default all)")
    add_json_flag(p)
    p.set_defaults(func=_run_clean)


def _run_clean(args: argparse.Namespace, reporter: Reporter) -> None:
    from ..pose.clean import clean_track
    from ..pose.track import PoseTrack

    check_output_file(args.output, ".npz", "cleaned track", inputs=(args.track,))
    track = PoseTrack.load(args.track)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    cleaned = clean_track(track, median=args.median, max_gap=args.max_gap, method=args.method, parts=parts)
    cleaned.save(args.output)
    filled = {part: int(((getattr(cleaned, part)[..., 2] > 0) & (getattr(track, part)[..., 2] <= 0)).sum())
              for part in ("body", "hands", "face")}
    reporter.done(**track_summary(cleaned, args.output), method=args.method, window=args.median,
                  max_gap=args.max_gap, points_filled=filled)


# ---------------------------------------------------------------------------------------------------------------
# normalize: the paper's global pose normalization, source -> target frame
# ---------------------------------------------------------------------------------------------------------------
def _add_normalize(sub) -> None:
    p = sub.add_parser("normalize", help="map a source dancer's poses into the target video's frame",
                       description="Global pose normalization (Chan et al. 2019): scale and place each source "
                                   "pose as the target person would appear at that spot on the floor.")
    p.add_argument("--source", type=Path, required=True, help="pose track of the motion to transfer (.npz)")
    p.add_argument("--target", type=Path, required=True, help="pose track of the target person's video (.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, help="normalized track to write (.npz)")
    p.add_argument("--params", type=Path, default=None, metavar="OUT.json",
                   help="also write the normalization parameters (anchors, scales, per-frame transform)")
    p.add_argument("--interpolation", choices=("linear", "height"), default="linear",
                   help="scale between far and close: linear (the paper's) or the ratio of interpolated heights")
    add_json_flag(p)
    p.set_defaults(func=_run_normalize)


def _run_normalize(args: argparse.Namespace, reporter: Reporter) -> None:
    _drive(args, reporter, clean=False, interpolation=args.interpolation)


# ---------------------------------------------------------------------------------------------------------------
# drive: clean + normalize, the chain `edn transfer` and the add-on use to turn a motion into driving poses
# ---------------------------------------------------------------------------------------------------------------
def _add_drive(sub) -> None:
    p = sub.add_parser("drive", help="clean a source motion and normalize it to the target (clean + normalize)",
                       description="The source motion as the target would perform it: short gaps filled and "
                                   "smoothed (the paper's 7-frame median), then globally normalized to the "
                                   "target's frame. The same chain `edn transfer` runs.")
    p.add_argument("source", type=Path, help="pose track of the motion to transfer (.npz)")
    p.add_argument("--target", type=Path, required=True, help="pose track of the target person's video (.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, help="driving track to write (.npz)")
    p.add_argument("--params", type=Path, default=None, metavar="OUT.json",
                   help="also write the normalization parameters")
    p.add_argument("--no-clean", action="store_true", help="normalize the motion as it is, without cleaning it")
    add_json_flag(p)
    p.set_defaults(func=_run_drive)


def _run_drive(args: argparse.Namespace, reporter: Reporter) -> None:
    _drive(args, reporter, clean=not args.no_clean)


def _drive(args: argparse.Namespace, reporter: Reporter, clean: bool, interpolation: str = "linear") -> None:
    """normalize (clean=False) and drive: `pipeline.drive_track`, outputs checked first."""
    from ..pipeline import drive_track
    from ..pose.track import PoseTrack

    check_output_file(args.output, ".npz", "driving track", inputs=(args.source, args.target))
    if args.params is not None:
        check_output_file(args.params, ".json")
    figures = drive_track(args.source, args.target, args.output, params=args.params, clean=clean,
                          interpolation=interpolation)
    reporter.done(**track_summary(PoseTrack.load(args.output), args.output), **figures,
                  params=str(args.params) if args.params else None)
