"""How much of the stick figure's own colour a trained body generator paints onto the person.

    .venv/bin/python scripts/bench_colour_leak.py TRACK RUN [RUN ...] -o benchmarks/bench_colour_leak.json

A generator should read the stick figure's colours as names (which limb is which), not as paint. One that
passes the colour through paints its lines onto the person: on romp_sample2's dark trousers, thin green streaks
along the legs, where the legs' lines are green. The probe: for every `--every`-th frame of TRACK (a
person-over-plate run's own kind of track, in source pixels), generate the frame from a first frame (no temporal
input), then again with the figure's mostly-green lines redrawn magenta, and take the mean change of the
composite (0-255, all three channels) on those lines (dilated by 2 pixels). A generator that only reads the
colours as names changes the limb it draws; one that paints them changes the colour it draws there. Compare runs
of one clip and track: the figure has no meaning on its own.

The hand refiner, where the run trained one, is probed the same way on each hand's box, after the body's frame:
the hand's figure (hand and forearm, many colours) drawn with its channels rotated (BGR -> GRB), and the change
of the refined hand over the plate measured on the figure's pixels (dilated by 2). The Face GAN likewise on its
box: the body's frame refined with the box's figure rotated, against not, measured on the figure's pixels there
(where a side-on dancer raises her arms, the arms' lines cross the face box).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchkit  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from edn_engine.atomic import write_json  # noqa: E402
from edn_engine.events import Reporter  # noqa: E402
from edn_engine.generate import plate_for  # noqa: E402
from edn_engine.hand_data import hand_framing  # noqa: E402
from edn_engine.inference import BodyFrame, Synthesizer, load_run  # noqa: E402
from edn_engine.models.face import face_origins  # noqa: E402
from edn_engine.pose.face import face_centre  # noqa: E402
from edn_engine.pose.framing import Mipmap  # noqa: E402
from edn_engine.pose.hands import hand_box  # noqa: E402
from edn_engine.pose.track import PoseTrack  # noqa: E402
from edn_engine.pose.window import frame_track  # noqa: E402
from edn_engine.tensors import hand_figure, stick_figure, to_image, to_tensor  # noqa: E402


def green_lines(figure: np.ndarray) -> np.ndarray:
    """The pixels of a BGR stick figure whose colour is mostly green (on BODY_25's palette: parts of the legs and
    the left arm)."""
    b, g, r = (figure[..., c].astype(int) for c in range(3))
    return (g > 150) & (g > b + 60) & (g > r + 60)


def leak(run_dir: Path, track: PoseTrack, every: int) -> dict:
    """The mean change of the composite on the recoloured lines, over the frames probed, for one run."""
    run = load_run(run_dir, "cpu", Reporter(False))
    if not run.plan.windowed:
        raise SystemExit(f"{run_dir}: not a person-over-plate run")
    size = (track.width, track.height)
    plate = plate_for(run, size)  # as generation lays it: at the track's size, or a one-line error
    framings = run.plan.for_source(size).framings(track)  # the track framed as generation frames it
    framed, mip = frame_track(track, framings), Mipmap(plate)
    synth = Synthesizer(run.G, run.FG, run.cfg, run.device, amp=False, alpha=run.mattes, HG=run.HG)
    changes, hand_changes, face_changes = [], [], []
    for i in range(0, track.frames, every):
        fr, figure = framings[i], stick_figure(framed, i)
        lines = green_lines(figure)
        if fr.window is None or not lines.any():
            continue
        recoloured = figure.copy()
        recoloured[lines] = figure[lines][:, [1, 0, 1]]  # green (0, G, 0) -> magenta (G, 0, G)
        shown = []
        for f in (recoloured, figure):  # the figure as drawn last: the hands are probed over its frame
            synth.reset()  # a first frame: no temporal input
            body = synth.body_frame(to_tensor(f), to_tensor(mip.image(fr)), torch.tensor(fr.window))
            shown.append(to_image(body.shown[0]).astype(np.int16))
        changes.append(float(np.abs(shown[1] - shown[0])[_band(lines)].mean()))
        if run.HG is not None:
            hand_changes += hand_leak(synth, body, track, i, fr, mip, run.hand_size)
        centre = face_centre(framed.body[i], framed.face[i])
        if run.FG is not None and centre is not None:
            face_changes += face_leak(synth, body, figure, centre)
    return {"run": str(run_dir), "step": run.step, "frames": len(changes),
            "mean_change": round(float(np.mean(changes)), 2) if changes else None,
            "hands": len(hand_changes),
            "hand_mean_change": round(float(np.mean(hand_changes)), 2) if hand_changes else None,
            "faces": len(face_changes),
            "face_mean_change": round(float(np.mean(face_changes)), 2) if face_changes else None,
            "skip_finest": run.cfg.skip_finest, "hand_skip_finest": run.cfg.hand_skip_finest}


def hand_leak(synth: Synthesizer, body: BodyFrame, track: PoseTrack, i: int, fr, mip: Mipmap,
              size: int) -> list[float]:
    """The change of each refined hand over the plate (0-255) on its figure's pixels, recoloured against not; the
    boxes as generation finds them (`finishing.Finisher._hand_patches`), from frame `i`'s framing `fr`."""
    out, window = [], torch.tensor(fr.window)
    for side in (0, 1):
        box = hand_box(track.body[i], track.hands[i], side, fr.window[3])
        if box is None:
            continue
        f = hand_framing((track.width, track.height), box, size)
        figure, plate = hand_figure(track.body[i], track.hands[i], side, f), mip.image(f)
        shown = []
        for fig in (figure, figure[..., [1, 2, 0]]):  # BGR -> GRB: every colour but the wrist's grey
            colour, alpha = synth.refine_hands(body, window, torch.tensor([box]), to_tensor(fig)[None],
                                               to_tensor(plate)[None])
            a = alpha[0, 0].numpy()[..., None]
            shown.append(to_image(colour[0]).astype(np.float32) * a + plate.astype(np.float32) * (1 - a))
        out.append(float(np.abs(shown[1] - shown[0])[_band(figure.max(axis=2) > 40)].mean()))
    return out


def face_leak(synth: Synthesizer, body: BodyFrame, figure: np.ndarray, centre: tuple[float, float]) -> list[float]:
    """The change of the Face GAN's colour (0-255) on the figure's pixels in its box, the body's frame refined with
    the figure's channels rotated (BGR -> GRB) against as drawn; none where the box holds no line."""
    size = synth.cfg.face_size
    ((x, y),) = face_origins(torch.tensor([centre]), size, *figure.shape[:2]).tolist()
    rotated = dataclasses.replace(body, label=to_tensor(figure[..., [1, 2, 0]])[None])
    faces = [to_image(synth.refine_face(b, torch.tensor(centre))[0])[y:y + size, x:x + size].astype(np.int16)
             for b in (rotated, body)]
    lines = _band(figure[y:y + size, x:x + size].max(axis=2) > 40)
    return [float(np.abs(faces[1] - faces[0])[lines].mean())] if lines.any() else []


def _band(pixels: np.ndarray) -> np.ndarray:
    """`pixels` dilated by 2: the lines and the pixels just beside them."""
    return cv2.dilate(pixels.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("track", type=Path, help="a pose track in the runs' clip's pixels (.npz)")
    ap.add_argument("runs", type=Path, nargs="+", help="person-over-plate runs of that clip")
    ap.add_argument("--every", type=int, default=6, help="probe every N-th frame of the track (default 6)")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "bench_colour_leak.json")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    track = PoseTrack.load(args.track)
    results = []
    for run_dir in args.runs:
        results.append(leak(run_dir, track, args.every))
        r = results[-1]
        print(f"{run_dir}: {r['mean_change']}, hands {r['hand_mean_change']}, faces {r['face_mean_change']}",
              file=sys.stderr)
    write_json(args.output, {"benchmark": "bench_colour_leak", "track": str(args.track), "every": args.every,
                             "machine": benchkit.cpu_info(), "runs": results})


if __name__ == "__main__":
    main()
