"""The hands of a transfer, where no real frame exists to compare with: a trained run driven by another dancer's
motion (a track from `edn pose drive`), generated with each `--hands` choice, and the detector `edn eval` uses run
on the composites.

    .venv/bin/python scripts/bench_transfer_hands.py RUN DRIVING [--start 80] [--frames 80] [--hands body,training]
        [--bank-from-dataset] [--label LABEL] -o benchmarks/bench_transfer_hands.json

Why: `edn eval` drives the run with its own clip's held-out poses, which put the hands where the training hands
were, on romp_sample2 mostly against the wall. Another dancer puts them across the body, where neither the hand
refiner nor the training hands had been (`finishing`, `compositing.pull_from_plate`). Per choice: the share of the
driving track's hands that the detector finds on the generated frames (`metrics.part_found_rate`, the driving track
in place of the real frames), and of frames with a person found; with `body` first among the choices, the frames
where the others' hands leave holes in the person (`alpha_holes`). `--bank-from-dataset`: the training hands as this
checkout's code builds them from the run's dataset (as training would), not the run's own hand_bank.npz. Each call
adds an entry (its label, commit, machine and figures) to the JSON's "runs": compare the entries of one run and
track, the code of two checkouts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchkit  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edn_engine import metrics  # noqa: E402
from edn_engine.atomic import write_json  # noqa: E402
from edn_engine.dataset_store import FrameStore  # noqa: E402
from edn_engine.evaluate import DETECTION, detect_folder  # noqa: E402
from edn_engine.events import Reporter  # noqa: E402
from edn_engine.generate import generate  # noqa: E402
from edn_engine.layout import RUN_HAND_BANK  # noqa: E402
from edn_engine.pose.track import PoseTrack  # noqa: E402
from edn_engine.runs import read_run_info  # noqa: E402
from edn_engine.video import read_image  # noqa: E402


def run_with_own_bank(run: Path, work: Path) -> Path:
    """A copy of `run` (its files linked) whose training hands this checkout builds from the run's dataset."""
    copy = work / "run"
    copy.mkdir()
    for item in run.iterdir():
        if item.name != RUN_HAND_BANK:
            (copy / item.name).symlink_to(item.resolve())
    FrameStore(read_run_info(run)["dataset"]).hand_crops().bank().save(copy / RUN_HAND_BANK)
    return copy


def measure(run: Path, track: PoseTrack, track_path: Path, hands: str, work: Path) -> dict:
    """Generate `track` with `--hands hands`; the detector's figures on its composites, and where the body frames
    were generated first (`--hands body`), the holes the hands left in the person."""
    out = work / f"frames_{hands}"
    generate(run, track_path, out, hands=hands, device="cpu")
    frames = list(range(track.frame_start, track.frame_start + track.frames))
    detected = detect_folder(out / "composite", frames, Reporter(False), hands)
    driving = np.stack([metrics.flat_pose(track.body[i], track.hands[i], track.face[i]) for i in range(track.frames)])
    figures = {"hands_found": metrics.part_found_rate(detected, driving, "hands"),
               "hands_shown": int(metrics.part_shown(driving, "hands").sum()),
               "person_found": metrics.person_found(detected)}
    if hands != "body" and (work / "frames_body").is_dir():
        holes = [alpha_holes(work / "frames_body" / f"frame_{n:06d}.png", out / f"frame_{n:06d}.png") for n in frames]
        figures.update(frames_with_holes=sum(h > HOLE_PIXELS for h in holes), hole_pixels=int(sum(holes)))
    return figures


HOLE_PIXELS = 20  # a frame has a hole where more pixels than this are


def alpha_holes(body_png: Path, png: Path) -> int:
    """Pixels the body generator drew opaque (alpha above 0.9) that the finished frame leaves mostly transparent
    (below 0.5): the plate showing through the person where a refined hand cleared its box (over the chest)."""
    body, finished = (read_image(p, cv2.IMREAD_UNCHANGED)[..., 3] for p in (body_png, png))
    return int(((body > 230) & (finished < 128)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a person-over-plate run with a hand refiner")
    ap.add_argument("track", type=Path, help="a driving track in the run's clip's pixels (`edn pose drive`)")
    ap.add_argument("--start", type=int, default=0, help="first row of the track to generate")
    ap.add_argument("--frames", type=int, default=None, help="rows to generate (default: to the end)")
    ap.add_argument("--hands", default="body,training", help="`edn generate --hands` choices, a,b,... (body first: "
                    "the others' holes are measured against it)")
    ap.add_argument("--bank-from-dataset", action="store_true", help="build the training hands with this code")
    ap.add_argument("--label", default="", help="what this entry measures")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "bench_transfer_hands.json")
    args = ap.parse_args()

    full = PoseTrack.load(args.track)
    end = full.frames if args.frames is None else min(full.frames, args.start + args.frames)
    with tempfile.TemporaryDirectory(prefix="edn_transfer_hands_") as tmp:
        work = Path(tmp)
        track = full.slice(args.start, end)
        track_path = work / "driving.npz"
        track.save(track_path)
        run = run_with_own_bank(args.run, work) if args.bank_from_dataset else args.run
        results = {h: measure(run, track, track_path, h, work) for h in args.hands.split(",")}
    entry = {"label": args.label, "commit": benchkit.commit(), "run": str(args.run), "track": str(args.track),
             "rows": [args.start, end], "bank_from_dataset": args.bank_from_dataset, "detection": DETECTION,
             "machine": benchkit.cpu_info(),
             "isa_held": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ},
             "results": results}
    report = json.loads(args.output.read_text()) if args.output.is_file() else {
        "benchmark": "bench_transfer_hands", "runs": []}
    report["runs"].append(entry)
    write_json(args.output, report)
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
