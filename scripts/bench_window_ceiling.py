"""What a training window keeps before any model: the real held-out frames, passed down to a window size and back.

    .venv/bin/python scripts/bench_window_ceiling.py DATASET --sizes 256x256,256x384,512x512
        -> benchmarks/bench_window_ceiling.json

DATASET is a person-over-plate dataset (`edn dataset build`, or bench_quality's work folder's dataset_window). Each
held-out frame's window (the dataset's, widened or narrowed to each size's aspect about its centre, so the person
keeps their height in pixels) is resampled to the size and back over the dataset's plate, as a perfect generator's
composite would be; the detector then scores these frames against the untouched ones with `edn eval`'s figures
(person found, body error, hands and face found; the JSON counts the hands and faces the real frames show). It
tells whether a goal is lost mostly to the window's resolution or to the model; with a few dozen hands and a
handful of faces, a model can land a few above it by chance.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from edn_engine import metrics  # noqa: E402
from edn_engine.atomic import write_json  # noqa: E402
from edn_engine.dataset import load_manifest  # noqa: E402
from edn_engine.errors import EdnError  # noqa: E402
from edn_engine.evaluate import DETECTION, detect_folder  # noqa: E402
from edn_engine.compositing import paste  # noqa: E402
from edn_engine.events import Reporter  # noqa: E402
from edn_engine.pose.window import window_framing  # noqa: E402
from edn_engine.sizes import parse_size  # noqa: E402
from edn_engine.video import open_source, read_image, write_png_fast  # noqa: E402


def through_window(img: np.ndarray, plate: np.ndarray, window, size: tuple[int, int]) -> np.ndarray:
    """`img`'s `window` (x0, y0, w, h), at `size`'s aspect, resampled to `size` and pasted back over the `plate` by
    generation's own `paste`: what a person-over-plate model shows at best (a hand outside its window is lost)."""
    x0, y0, w, h = window
    wide = h * size[0] / size[1]
    fr = window_framing((img.shape[1], img.shape[0]), size, (x0 + (w - wide) / 2, y0, wide, h))
    crop = fr.image(img)
    _, composite = paste(fr, np.dstack([crop, np.full(crop.shape[:2], 255, np.uint8)]), plate)
    return composite


def figures(detected: np.ndarray, reference: np.ndarray) -> dict:
    body = metrics.body_errors(detected, reference, metrics.robust_torso(reference[:, metrics.BODY]))
    return {"person_found": metrics.person_found(detected),
            "body_error": metrics.mean(body),
            "hands_found": metrics.part_found_rate(detected, reference, "hands"),
            "face_found": metrics.part_found_rate(detected, reference, "face"),
            # what the two rates count
            "hands_shown": int(metrics.part_shown(reference, "hands").sum()),
            "faces_shown": int(metrics.part_shown(reference, "face").sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--sizes", default="256x256,256x384,512x512")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "bench_window_ceiling.json")
    args = ap.parse_args()
    manifest = load_manifest(args.dataset)
    if manifest["framing"]["mode"] != "window":
        raise EdnError("not a person-over-plate dataset: it has no windows", path=args.dataset)
    held = {e["frame"]: e["window"] for e in manifest["frames"] if e["split"] == "holdout"}
    frames = sorted(held)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    reporter = Reporter(False)
    plate = read_image(args.dataset / "plate.png")
    with tempfile.TemporaryDirectory(prefix="edn-ceiling-") as tmp:
        folders = {"real": Path(tmp) / "real", **{f"{w}x{h}": Path(tmp) / f"{w}x{h}" for w, h in sizes}}
        for folder in folders.values():
            folder.mkdir()
        for n, img in open_source(manifest["source"], frames[0], frames[-1]):  # one frame in memory at a time
            if n in held:
                write_png_fast(folders["real"] / f"frame_{n:06d}.png", img)
                for size in sizes:
                    write_png_fast(folders[f"{size[0]}x{size[1]}"] / f"frame_{n:06d}.png",
                                   through_window(img, plate, held[n], size))
        detected = {name: detect_folder(folder, frames, reporter, name) for name, folder in folders.items()}
    reference = detected.pop("real")
    result = {"benchmark": "what each training window size keeps of the real held-out frames (a perfect model)",
              "dataset": str(args.dataset), "source": Path(manifest["source"]).name, "frames": len(frames),
              "window_size_in_dataset": manifest["size"], "detection": DETECTION,
              "sizes": {name: figures(det, reference) for name, det in detected.items()},
              "machine": {"platform": platform.platform(), "python": platform.python_version()}}
    write_json(args.output, result)
    print(result["sizes"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
