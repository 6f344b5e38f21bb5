"""`edn eval`: how good a trained run is, on the dataset's held-out frames, against a retrieval baseline.

Each held-out frame is reconstructed from its own pose (the generator fed its previous output, as in use) and
compared with the real frame. The baseline answers "could we just look the pose up?": for each held-out pose
the training frame whose normalized pose is closest. Both are scored the same way (see `metrics`):

    ssim_frame, psnr_frame      whole frame
    ssim_person, psnr_person    the box around the real frame's matte (the person region)
    ssim_face                   the face box the Face GAN works on (the paper's face crop)
    pose_error                  the detector run on the output vs on the real frame, mean distance in torso
                                lengths over body, hands and face (the detector's own error cancels out)
    missed_rate                 share of the real frame's keypoints the detector does not find on the output
    flicker                     mean change between consecutive frames in the person region, over the real one's

REPORT_DIR gets `report.json` ({"frames": n, "model": {...}, "retrieval": {...}}: a contract other tools
read), `contact_sheet.png` (stick figure | retrieval | generated | real for a spread of frames) and
`side_by_side.mp4` (the same four panels for every frame).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import metrics
from .atomic import write_json
from .errors import EdnError
from .events import Reporter
from .pose.track import PoseTrack

FIGURES = ("ssim_frame", "psnr_frame", "ssim_person", "psnr_person", "ssim_face", "pose_error", "missed_rate",
           "flicker")
PANELS = ("stick figure", "retrieval", "generated", "real")


# -- scoring (pure: arrays in, figures out) ------------------------------------------------------------

@dataclass
class Sample:
    """One evaluated frame: the real frame, its matte (or None), its face box (or None)."""

    frame: int
    real: np.ndarray  # BGR uint8 (H, W, 3)
    matte: np.ndarray | None  # uint8 (H, W)
    face_box: tuple[int, int, int, int] | None


def score(samples: list[Sample], outputs: list[np.ndarray], detected: np.ndarray, reference: np.ndarray) -> dict:
    """The eight figures for one method. outputs[i] is that method's image for samples[i] (BGR uint8);
    detected/reference: (N, K, 3) keypoints found on the outputs / on the real frames (or ground truth)."""
    if len(samples) != len(outputs) or len(samples) != len(detected) or len(samples) != len(reference):
        raise ValueError("samples, outputs and poses differ in length")
    s_frame, p_frame, s_person, p_person, s_face = [], [], [], [], []
    for smp, out in zip(samples, outputs):
        s_frame.append(metrics.ssim(smp.real, out))
        p_frame.append(metrics.psnr(smp.real, out))
        box = person_box(smp)
        if box is not None:
            s_person.append(metrics.ssim(metrics.crop(smp.real, box), metrics.crop(out, box)))
            p_person.append(metrics.psnr(metrics.crop(smp.real, box), metrics.crop(out, box)))
        if smp.face_box is not None:
            s_face.append(metrics.ssim(metrics.crop(smp.real, smp.face_box), metrics.crop(out, smp.face_box)))
    torso = metrics.robust_torso(reference[:, :25]) if len(reference) else np.zeros(0)
    err, missed = metrics.pose_errors(detected, reference, torso) if len(reference) else (np.zeros(0),) * 2
    pairs = [i for i in range(len(samples) - 1) if samples[i + 1].frame == samples[i].frame + 1]
    flicker = metrics.flicker_ratio([(outputs[i], outputs[i + 1]) for i in pairs],
                                    [(samples[i].real, samples[i + 1].real) for i in pairs],
                                    [region_mask(samples[i], samples[i + 1]) for i in pairs])
    return {
        "ssim_frame": metrics.mean(s_frame), "psnr_frame": metrics.mean(p_frame),
        "ssim_person": metrics.mean(s_person), "psnr_person": metrics.mean(p_person),
        "ssim_face": metrics.mean(s_face), "pose_error": metrics.mean(err), "missed_rate": metrics.mean(missed),
        "flicker": None if not np.isfinite(flicker) else float(flicker),
    }


def person_box(smp: Sample) -> tuple[int, int, int, int] | None:
    """The person region: the real matte's box; the whole frame when the dataset has no mattes."""
    h, w = smp.real.shape[:2]
    if smp.matte is None:
        return (0, 0, w, h)
    return metrics.matte_box(smp.matte)


def region_mask(a: Sample, b: Sample) -> np.ndarray:
    """Where flicker is measured between two frames: the union of their mattes (or everywhere)."""
    h, w = a.real.shape[:2]
    if a.matte is None or b.matte is None:
        return np.ones((h, w), bool)
    return (a.matte > 127) | (b.matte > 127)


# -- pictures ------------------------------------------------------------------------------------------

def panel_row(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ascontiguousarray(im[..., :3]) for im in images], axis=1)


def contact_sheet(rows: list[list[np.ndarray]], labels: tuple[str, ...] = PANELS, max_width: int = 1600) -> np.ndarray:
    """Rows of panels under a header naming the columns; scaled down to `max_width`."""
    grid = np.concatenate([panel_row(r) for r in rows], axis=0)
    w = rows[0][0].shape[1]
    header = np.full((28, grid.shape[1], 3), 255, np.uint8)
    for k, label in enumerate(labels):
        cv2.putText(header, label, (k * w + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header, grid], axis=0)
    if sheet.shape[1] > max_width:
        s = max_width / sheet.shape[1]
        sheet = cv2.resize(sheet, (max_width, int(round(sheet.shape[0] * s))), interpolation=cv2.INTER_AREA)
    return sheet


def spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


# -- the run -------------------------------------------------------------------------------------------

def keypoints(track: PoseTrack, rows: list[int]) -> np.ndarray:
    """(N, 137, 3) keypoints (body, hands, face) for the given rows; a row outside the track is all missing."""
    out = np.zeros((len(rows), 25 + 42 + 70, 3), np.float32)
    for k, i in enumerate(rows):
        if 0 <= i < track.frames:
            out[k] = metrics.flat_pose(track.body[i], track.hands[i], track.face[i])
    return out


def detect_folder(folder: Path, frames: list[int], reporter: Reporter, stage: str) -> np.ndarray:
    """Run the pose detector on frame_NNNNNN images in `folder`; (N, 137, 3) in the same order as `frames`."""
    from .pose.detect import extract_pose

    reporter.log(f"detecting poses on the {stage} frames")
    track, _ = extract_pose(folder, start=min(frames), end=max(frames), mattes_dir=None, reporter=reporter)
    return keypoints(track, [n - track.frame_start for n in frames])


def retrieve(store, bodies: np.ndarray) -> list[int]:
    """The baseline: for each BODY_25 pose (N, 25, 3) in training pixels, the training frame posed most alike."""
    t = store.track
    train = store.frames("train")
    if not train:
        raise EdnError("the dataset has no training frames for the retrieval baseline", path=store.dir)
    lib = np.stack([t.body[n - t.frame_start] for n in train])
    return [train[k] for k in metrics.nearest_poses(bodies, lib)]


def face_box_of(store, body: np.ndarray, face: np.ndarray):
    """The face crop for a pose in training pixels, as the dataset defines it (centred on the nose)."""
    from .dataset import face_box, face_centre

    c = face_centre(body, face)
    side = int(store.manifest.get("face_size") or 32)
    return metrics.clip_box(face_box(c, side, store.size), *store.size) if c is not None else None


def evaluate_run(run_dir: str | Path, out_dir: str | Path, *, split: str = "holdout", max_frames: int | None = None,
                 reporter: Reporter | None = None) -> dict:
    """Generate the `split` frames of the run's dataset from their own poses and score model and retrieval."""
    from .dataset import FrameStore
    from .video import read_image

    reporter = reporter or Reporter(False)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    store = FrameStore(run_dataset_dir(run_dir))
    frames = store.frames(split)
    if not frames:
        raise EdnError(f"the dataset has no '{split}' frames to evaluate on (build it with --holdout > 0)",
                       path=store.dir)
    if max_frames:
        frames = frames[:max_frames]
    work = _fresh(out_dir / "work")

    # The model: the evaluated frames' own poses, in source pixels, through the run's generator.
    src_track = PoseTrack.load(store.dir / "track_source.npz")
    rows = [n - src_track.frame_start for n in frames]
    src_track.slice(rows[0], rows[-1] + 1).save(work / "driving.npz")
    reporter.log(f"generating {len(frames)} {split} frames")
    _generate(run_dir, work / "driving.npz", work / "generated", reporter)

    t = store.track
    samples = []
    for n in frames:
        i = n - t.frame_start
        matte = (read_image(store.dir / "mattes" / f"matte_{n:06d}.png", cv2.IMREAD_GRAYSCALE)
                 if store.has_mattes else None)
        samples.append(Sample(n, read_image(store.dir / "frames" / f"frame_{n:06d}{store.ext}"), matte,
                              face_box_of(store, t.body[i], t.face[i])))
    nearest = retrieve(store, np.stack([t.body[n - t.frame_start] for n in frames]))
    result = evaluate_frames(out_dir, store, samples, work / "generated", nearest, t, reference=None,
                             reporter=reporter)
    return {**result, "split": split}


def evaluate_frames(out_dir: Path, store, samples: list[Sample], generated_dir: Path, nearest: list[int],
                    driving: PoseTrack, reference: PoseTrack | None = None,
                    reporter: Reporter | None = None) -> dict:
    """Score generated frames (generated_dir/frame_NNNNNN.png) and retrieved training frames against `samples`.

    `driving`: the poses the frames were generated from, in training pixels (for the stick-figure panels).
    `reference`: a ground-truth track in training pixels (the demo's armature pose); None: the detector's
    output on the real frames is the reference. Writes report.json, contact_sheet.png and side_by_side.mp4.
    """
    from .dataset import stick_figure
    from .video import read_image, write_image, write_video

    reporter = reporter or Reporter(False)
    frames = [s.frame for s in samples]
    work = out_dir / "work"
    for sub in ("retrieval", "real"):
        _fresh(work / sub)
    generated, retrieved = [], []
    for k, (smp, m) in enumerate(zip(samples, nearest)):
        gen_path = generated_dir / f"frame_{smp.frame:06d}.png"
        if not gen_path.is_file():
            raise EdnError("the generator wrote no frame here", path=gen_path, frame=smp.frame)
        generated.append(_rgb(read_image(gen_path, cv2.IMREAD_UNCHANGED)))
        retrieved.append(read_image(store.dir / "frames" / f"frame_{m:06d}{store.ext}"))
        write_image(work / "retrieval" / f"frame_{smp.frame:06d}.png", retrieved[-1])
        write_image(work / "real" / f"frame_{smp.frame:06d}.png", smp.real)
        reporter.progress(k + 1, len(samples), stage="eval-load")

    det_model = detect_folder(generated_dir, frames, reporter, "generated")
    det_retrieval = detect_folder(work / "retrieval", frames, reporter, "retrieved")
    if reference is None:
        ref = detect_folder(work / "real", frames, reporter, "real")
    else:
        ref = keypoints(reference, [n - reference.frame_start for n in frames])
    report = {
        "frames": len(samples),
        "model": score(samples, generated, det_model, ref),
        "retrieval": score(samples, retrieved, det_retrieval, ref),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report)

    def panels(k: int) -> list[np.ndarray]:  # stick figure | retrieval | generated | real
        return [stick_figure(driving, frames[k] - driving.frame_start), retrieved[k], generated[k], samples[k].real]

    sheet_path = out_dir / "contact_sheet.png"
    write_image(sheet_path, contact_sheet([panels(k) for k in spread(len(samples), 6)]))
    video_path = out_dir / "side_by_side.mp4"
    write_video(video_path, (panel_row(panels(k)) for k in range(len(samples))),
                fps=float(store.manifest.get("fps") or 30.0))
    shutil.rmtree(work, ignore_errors=True)
    reporter.preview(str(sheet_path))
    return {"report": str(out_dir / "report.json"), "contact_sheet": str(sheet_path), "video": str(video_path),
            **report}


def _generate(run_dir: Path, track_path: Path, out: Path, reporter: Reporter) -> None:
    from .generate import generate

    generate(run_dir, track_path, out, reporter=reporter)


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def run_dataset_dir(run_dir: Path) -> Path:
    """The dataset a run was trained on, as its run.json records it."""
    path = run_dir / "run.json"
    if not path.is_file():
        raise EdnError("not a training run (no run.json; train one with `edn train`)", path=run_dir)
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))["dataset"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise EdnError(f"unreadable run.json ({exc})", path=path) from exc
    if not Path(dataset).is_dir():
        raise EdnError(f"the run's dataset is gone: {dataset}", path=path)
    return Path(dataset)


def _rgb(img: np.ndarray) -> np.ndarray:
    """A generated frame's colour (BGR uint8); its alpha is the predicted matte, not used for scoring."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[..., :3])


def load_report(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EdnError(f"unreadable report ({exc})", path=path) from exc
