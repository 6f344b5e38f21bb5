"""Which stage drew what: a run's frames generated stage by stage, side by side with the real ones.

    .venv/bin/python scripts/stage_sheet.py RUN TRACK [--video VIDEO] --frames 276:300:4 -o sheet.png

Columns, per frame: the body generator alone; with the Face GAN; with the hand refiner (`--hands refined`); with
the training hands laid over (`--hands training`, what `edn generate` writes); with `--video`, the real frame (the
run's clip, TRACK in its pixels, as the dataset's `track_source.npz`; without it, TRACK may be any driving track,
`edn pose drive`'s). Each row is cropped around the person. Why: an
artefact seen in a composite belongs to one stage; the side-on dancer's multicoloured speckles on romp_sample2's
last held-out frames were put down to the Face GAN, but the body generator alone draws them (a view its training
frames do not show), and the stripes where a hidden hand's box lies over the torso are the hand refiner's.
Generation runs as `edn generate` does on this CPU (int8 where it has no bf16), over every row from start to stop
(the first without a previous frame, so not exactly what a whole track's generation draws there).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edn_engine import generate as gen  # noqa: E402
from edn_engine.inference import load_run  # noqa: E402
from edn_engine.pose.track import PoseTrack  # noqa: E402
from edn_engine.video import open_source  # noqa: E402

STAGES = (("body", "body", False), ("face", "body", True), ("refined", "refined", True),
          ("training", "training", True))  # (column, --hands, Face GAN)
CROP = 400  # the side of the square cut around the person, in source pixels


def _without_face_gan(*args, **kwargs):
    """`load_run` with the Face GAN left out (`edn generate` has no switch for it)."""
    run = load_run(*args, **kwargs)
    run.FG = None  # the run is sent whole to the frame writer's process, so the change reaches it there
    return run


def generate_stages(run: Path, track: Path, work: Path) -> dict[str, Path]:
    """Each stage's frames folder, generated from `track`."""
    folders = {}
    for name, hands, face in STAGES:
        folders[name] = work / name
        gen.load_run = load_run if face else _without_face_gan
        try:
            summary = gen.generate(run, track, folders[name], hands=hands)
        finally:
            gen.load_run = load_run
        if summary["face_gan"] != face or (hands == "training" and not summary["training_hands"]):
            sys.exit(f"{run}: the {name} column cannot be drawn (no Face GAN, or no training hands, in this run)")
    return folders


def crop_box(rgba: np.ndarray) -> tuple[int, int]:
    """The top-left corner of a CROP x CROP square around the person in an RGBA frame (its alpha's extent)."""
    ys, xs = np.nonzero(rgba[..., 3] > 128)
    if not len(xs):
        return 0, 0
    h, w = rgba.shape[:2]
    x0 = int(np.clip(xs.mean() - CROP // 2, 0, max(0, w - CROP)))
    return x0, int(np.clip(ys.min() - CROP // 20, 0, max(0, h - CROP)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("track", type=Path,
                    help="pose track in the clip's pixels (a dataset's track_source.npz, or any driving track)")
    ap.add_argument("--video", type=Path, help="the clip TRACK was extracted from: a column of its real frames")
    ap.add_argument("--frames", default="0:8:2", help="rows of TRACK, start:stop[:step]")
    ap.add_argument("-o", "--output", type=Path, required=True, help="the sheet (.png)")
    args = ap.parse_args()
    track = PoseTrack.load(args.track)
    try:
        start, stop, *step = (int(v) for v in args.frames.split(":"))
        rows = range(start, stop, *step[:1])
    except ValueError:
        ap.error(f"--frames must be start:stop[:step] with a step above 0, not {args.frames!r}")
    if not 0 <= start < stop <= track.frames or not rows:
        ap.error(f"--frames {args.frames}: the track has rows 0 to {track.frames - 1}")
    track = track.slice(start, stop)
    with tempfile.TemporaryDirectory() as tmp:
        track.save(Path(tmp) / "track.npz")
        folders = generate_stages(args.run, Path(tmp) / "track.npz", Path(tmp))
        wanted = [track.frame_start + row - start for row in rows]
        real = {} if args.video is None else {
            n: bgr for n, bgr in open_source(args.video, wanted[0], wanted[-1]) if n in wanted}
        sheet = []
        for n in wanted:
            name = f"frame_{n:06d}.png"
            x0, y0 = crop_box(cv2.imread(str(folders["training"] / name), cv2.IMREAD_UNCHANGED))
            cells = [cv2.imread(str(folders[s] / "composite" / name)) for s, _, _ in STAGES] + [real.get(n)]
            cells = [c for c in cells if c is not None]
            sheet.append(cv2.hconcat([c[y0:y0 + CROP, x0:x0 + CROP] for c in cells]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.vconcat(sheet))
    columns = [s for s, _, _ in STAGES] + ([] if args.video is None else ["real"])
    print(f"{args.output}: {len(sheet)} frames; columns {', '.join(columns)}")


if __name__ == "__main__":
    main()
