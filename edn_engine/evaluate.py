"""`edn eval`: how good a trained run is, on the dataset's held-out frames, against two retrieval baselines.

Each held-out frame is reconstructed from its own pose (the generator fed its previous output, as in use) and
compared with the real frame. The baselines answer "could we just look the pose up?" (see `retrieval`): the
training frame of the nearest posture ("retrieval") and the one whose pose in source pixels is nearest as it
stands ("retrieval_absolute": the right posture in the right place). All three are scored the same way (see
`metrics`), the poses by the same detector on the real and the output frames, each frame on its own (no
tracking from the frame before, so that a frame's figures are its own):

    ssim_frame, psnr_frame      whole frame
    ssim_person, psnr_person    the box around the real frame's matte (the person region)
    ssim_face                   the face box the Face GAN works on (the paper's face crop)
    background_psnr             outside the real matte grown by 3% of the frame (None without mattes)
    pose_error                  the detector run on the output vs on the real frame, mean distance in torso
                                lengths over body, hands and face (the detector's own error cancels out)
    body_error                  the same over the main body joints only, on frames where both show a person
    missed_rate                 share of the real frame's keypoints the detector does not find on the output
    person_found                share of output frames on which the detector finds a person
    hands_found, face_found     share of the hands (each counted) / faces shown on the real frames that it
                                also finds on the outputs (None when the real frames never show one)
    flicker                     mean change between consecutive frames in the person region, over the real one's
    alpha_person                the model's alpha (0-1) inside the real person, away from the matte's edge: below
                                1, another plate shows through them (None for the retrievals, or without mattes)
    alpha_background            the same over the sure background (as background_psnr's): the veil it lays there
    facing_flipped              share of the frames in body_error that the detector reads facing the other way
                                (left and right swapped: a face too faint to tell front from back), each adding
                                about a torso length to body_error and pose_error with every limb in place

Frames of any size are scored one at a time, so a long clip at full resolution stays out of memory.
REPORT_DIR gets `report.json` ({"frames": n, "detection": DETECTION, "model": {...}, "retrieval": {...},
"retrieval_absolute": {...}}: a contract other tools read), `contact_sheet.png` (stick figure | retrievals |
generated | real for a spread of frames) and `side_by_side.mp4` (the same panels for every frame, scaled to at most
PANEL_HEIGHT).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from . import metrics
from .atomic import write_json
from .errors import EdnError
from .events import Reporter
from .metrics import FIGURES, Sample, Scorer, score
from .pose.track import PoseTrack
from .retrieval import retrieve, retrieve_absolute, source_track
from .runs import RUN_INFO, read_run_info

# What the demo, the pipeline and the tests take from here (the figures themselves live in `metrics`).
__all__ = ["FIGURES", "Sample", "Scorer", "score", "evaluate_run", "evaluate_frames", "retrieve",
           "retrieve_absolute", "run_dataset_dir"]

BASELINES = {"retrieval": "retrieval: posture", "retrieval_absolute": "retrieval: place"}  # report key: panel
# How the detector saw the frames, written into each report: figures scored with MediaPipe's tracking (before
# 2026-12-04, no such key) do not compare with these
DETECTION = "each frame on its own"
PANEL_HEIGHT = 360  # contact-sheet and video panels are scaled down to this height


# -- pictures ------------------------------------------------------------------------------------------

def fit_height(images: list[np.ndarray], height: int) -> list[np.ndarray]:
    """Each image (colour part) scaled to `height`, keeping its aspect: panels of any size side by side."""
    out = []
    for im in images:
        im = np.ascontiguousarray(im[..., :3])
        if im.shape[0] != height:
            w = max(1, int(round(im.shape[1] * height / im.shape[0])))
            im = cv2.resize(im, (w, height), interpolation=cv2.INTER_AREA)
        out.append(im)
    return out


def panel_row(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ascontiguousarray(im[..., :3]) for im in images], axis=1)


def contact_sheet(rows: list[list[np.ndarray]], labels: tuple[str, ...], max_width: int = 1600) -> np.ndarray:
    """Rows of panels (of one height per row, the same widths in every row) under a header naming the columns;
    scaled down to `max_width`."""
    grid = np.concatenate([panel_row(r) for r in rows], axis=0)
    big = max(1.0, rows[0][0].shape[0] / 256)  # tall panels are scaled down more: a larger font to match
    header = np.full((int(28 * big), grid.shape[1], 3), 255, np.uint8)
    x, font = 0, cv2.FONT_HERSHEY_SIMPLEX
    for label, panel in zip(labels, rows[0]):
        width = cv2.getTextSize(label, font, 0.55, 1)[0][0]
        scale = min(0.55 * big, 0.55 * (panel.shape[1] - 8) / width)  # narrow panels: labels must not overlap
        cv2.putText(header, label, (x + 4, int(20 * big)), font, max(scale, 0.2), (0, 0, 0), max(1, int(big)),
                    cv2.LINE_AA)
        x += panel.shape[1]
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
    from .pose.detect import DetectorConfig, extract_pose
    from .pose.follow import FollowConfig

    # Each frame is scored on its own: no following, which could drop a garbled frame as "someone else", and no
    # tracking, which carried one frame's detection into the next (changed frames 274-286 flipped hands at 289-291)
    reporter.log(f"detecting poses on the {stage} frames")
    track, _ = extract_pose(folder, start=min(frames), end=max(frames), mattes_dir=None, reporter=reporter,
                            config=DetectorConfig(follow=FollowConfig(enabled=False), static_image_mode=True))
    return keypoints(track, [n - track.frame_start for n in frames])


def evaluate_run(run_dir: str | Path, out_dir: str | Path, *, split: str = "holdout", max_frames: int | None = None,
                 amp: bool = True, reporter: Reporter | None = None) -> dict:
    """Generate the `split` frames of the run's dataset from their own poses and score model and baselines.
    `amp`: generate as `edn generate` does (bf16, or int8, where the CPU has it); False: in fp32."""
    from .dataset import FrameStore
    from .outputs import REPORT, check_output_folder, staged_folder
    from .video import open_source

    # -- everything checked before the (long) generation ------------------------------------------------------
    reporter = reporter or Reporter(False)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if max_frames is not None and max_frames < 1:
        raise EdnError(f"--max-frames must be at least 1, not {max_frames}")
    store = FrameStore(run_dataset_dir(run_dir))
    _check_run_size(run_dir, store)
    frames = store.frames(split)
    if not frames:
        raise EdnError(f"the dataset has no '{split}' frames to evaluate on (rebuild it with a --holdout above "
                       f"{store.manifest.get('holdout', 0)})", path=store.dir)
    frames = frames[:max_frames]
    source = open_source(store.manifest["source"], min(frames), max(frames))  # the real frames: the clip's own
    if (source.width, source.height) != tuple(store.plan.src_size):
        raise EdnError(f"the footage is {source.width}x{source.height}, the dataset was built from "
                       f"{store.plan.src_size[0]}x{store.plan.src_size[1]} footage: is it another clip?",
                       path=store.manifest["source"])
    check_output_folder(out_dir, REPORT, "report folder", inputs=(run_dir, store.dir))

    with staged_folder(out_dir) as build:
        # The model: the evaluated frames' own poses, in source pixels, through the run's generator.
        work = build / ".work"
        src_track = source_track(store.dir)
        rows = [n - src_track.frame_start for n in frames]
        src_track.slice(rows[0], rows[-1] + 1).save(work / "driving.npz")
        reporter.log(f"generating {len(frames)} {split} frames")
        _generate(run_dir, work / "driving.npz", work / "generated", amp, reporter)
        seen = store.track  # the poses as the model saw them, for the posture baseline
        result = evaluate_frames(
            build, store, _clip_samples(store, frames, src_track), work / "generated",
            retrieve(store, np.stack([seen.body[n - seen.frame_start] for n in frames])), src_track,
            reporter=reporter, nearest_absolute=retrieve_absolute(store, src_track.body[rows]))
    paths = {k: str(out_dir / Path(result[k]).name) for k in ("report", "contact_sheet", "video")}
    reporter.preview(paths["contact_sheet"])
    return {**result, **paths, "split": split}


def _clip_samples(store, frames: list[int], src: PoseTrack) -> Iterator[Sample]:
    """The real frames at the clip's resolution, one at a time, with their mattes and face boxes there."""
    from .video import open_source, read_image

    wanted = set(frames)
    for n, real in open_source(store.manifest["source"], min(frames), max(frames)):
        if n not in wanted:
            continue
        fr, i = store.framing(n), n - src.frame_start
        matte = (fr.back(read_image(store.dir / "mattes" / f"matte_{n:06d}.png", cv2.IMREAD_GRAYSCALE))
                 if store.has_mattes else None)
        yield Sample(n, real, matte, clip_face_box(store, fr, src.body[i], src.face[i]))


def clip_face_box(store, fr, body: np.ndarray, face: np.ndarray):
    """The face box at the clip's framing: the dataset's face square, scaled back out of window `fr`;
    `body`/`face` in source pixels. None when no face is found."""
    from .pose.face import face_box, face_centre

    side = int(round(int(store.manifest.get("face_size") or 32) / fr.scale))
    c = face_centre(body, face)
    return metrics.clip_box(face_box(c, side, tuple(fr.src_size)), *fr.src_size) if c is not None else None


def clip_library(store) -> Callable[[int], np.ndarray]:
    """Training frame n at the clip's framing, as a retrieval baseline shows it (the same resolution the model's
    output has): its window pasted back over the plate as generation pastes the model's (`compositing.paste`,
    opaque), or a whole-frame run's training frame scaled back. Where the window reaches past the frame's edge,
    the training frame is black padding: there its alpha is the share of each pixel inside the frame (its colour
    is already that share of the real pixel's), so the frame's edge does not take a dark line."""
    from .compositing import paste
    from .video import read_image

    plate = read_image(store.dir / "plate.png") if store.has_plate else None

    def image(n: int) -> np.ndarray:
        fr = store.framing(n)
        crop = read_image(store.dir / "frames" / f"frame_{n:06d}{store.ext}")
        if plate is None:
            return fr.back(crop)
        inside = fr.image(np.full(plate.shape[:2], 255, np.uint8))
        colour = cv2.divide(crop, cv2.cvtColor(inside, cv2.COLOR_GRAY2BGR), scale=255)  # 0 wholly outside
        return paste(fr, np.dstack([colour, inside]), plate)[1]

    return image


def _check_run_size(run_dir: Path, store) -> None:
    """A run scores only on a dataset of its own size: refuse at once, not after generating every frame."""
    try:
        size = tuple(read_run_info(run_dir)["size"])
    except (KeyError, TypeError) as exc:
        raise EdnError(f"run.json lacks the training size ({exc})", path=run_dir / RUN_INFO) from exc
    if size != tuple(store.size):
        raise EdnError(f"the run trains at {size[0]}x{size[1]} but its dataset is now {store.size[0]}x"
                       f"{store.size[1]} (rebuilt since?): rebuild it at {size[0]}x{size[1]} or train a new run",
                       path=store.dir)


def evaluate_frames(out_dir: Path, store, samples: Iterable[Sample], generated_dir: Path, nearest: list[int],
                    driving: PoseTrack, reference: PoseTrack | None = None, reporter: Reporter | None = None, *,
                    nearest_absolute: list[int] | None = None) -> dict:
    """Score generated frames and retrieved training frames against `samples`, all at the clip's own framing.

    `generated_dir`: an `edn generate` output folder of this store's run; a person-over-plate run is scored on
    its composites (generated_dir/composite/frame_NNNNNN.png), a whole-frame run on its frames (a `crop` run's
    are blank outside the crop, and score lower for it).
    `samples`: the real frames at the clip's size, in order; read once (a generator keeps a long clip out of
    memory). `nearest` / `nearest_absolute`: the training frame each baseline retrieves per sample
    ("retrieval_absolute" is scored only when given), shown at the clip's framing (`clip_library`).
    `driving`: the poses the frames were generated from (for the stick-figure panels).
    `reference`: a ground-truth track in the samples' pixels (the demo's armature pose); None: the detector's
    output on the real frames is the reference. Writes report.json, contact_sheet.png and side_by_side.mp4.
    """
    from .tensors import stick_figure
    from .video import read_image, write_image
    from .video_out import write_video

    reporter = reporter or Reporter(False)
    picks = {"retrieval": list(nearest)}
    if nearest_absolute is not None:
        picks["retrieval_absolute"] = list(nearest_absolute)
    if store.plan.windowed:
        generated_dir = generated_dir / "composite"
    library_image = clip_library(store)
    work = out_dir / ".work"
    staged = _stage(work, samples, generated_dir, picks, library_image, reporter)
    frames = [s.frame for s in staged]

    detected = {"model": detect_folder(generated_dir, frames, reporter, "generated")}
    for name in picks:
        detected[name] = detect_folder(work / name, frames, reporter, BASELINES[name])
    if reference is None:
        ref = detect_folder(work / "real", frames, reporter, "real")
    else:
        ref = keypoints(reference, [n - reference.frame_start for n in frames])

    # One pass over the frames: score every method and draw the side-by-side video and the contact sheet.
    scorers = {name: Scorer() for name in detected}
    sheet_at, sheet = set(spread(len(staged), 6)), []

    def rows() -> Iterator[np.ndarray]:  # stick figure | retrievals | generated | real
        for k, st in enumerate(staged):
            smp, name = st.load(work), f"frame_{st.frame:06d}.png"
            shown = read_image(generated_dir / name, cv2.IMREAD_UNCHANGED)
            rgba = read_image(generated_dir.parent / name, cv2.IMREAD_UNCHANGED) if store.plan.windowed else shown
            outs = {"model": _rgb(shown)}
            outs.update({m: read_image(work / m / name) for m in picks})
            alpha = rgba[..., 3] if rgba.ndim == 3 and rgba.shape[2] == 4 else None
            for m, img in outs.items():  # the model's matte is scored too (the retrievals make none)
                scorers[m].add(smp, img, alpha if m == "model" else None)
            panels = fit_height([stick_figure(driving, st.frame - driving.frame_start), *(outs[m] for m in picks),
                                 outs["model"], smp.real], min(PANEL_HEIGHT, smp.real.shape[0]))
            if k in sheet_at:
                sheet.append(panels)
            reporter.progress(k + 1, len(staged), stage="eval-score")
            yield panel_row(panels)

    out_dir.mkdir(parents=True, exist_ok=True)
    video_path = out_dir / "side_by_side.mp4"
    write_video(video_path, rows(), fps=float(store.manifest.get("fps") or 30.0))
    report = {"frames": len(staged), "detection": DETECTION,
              **{m: scorers[m].figures(detected[m], ref) for m in detected}}
    write_json(out_dir / "report.json", report)
    sheet_path = out_dir / "contact_sheet.png"
    write_image(sheet_path, contact_sheet(sheet, ("stick figure", *(BASELINES[m] for m in picks), "generated",
                                                  "real")))
    shutil.rmtree(work, ignore_errors=True)
    return {"report": str(out_dir / "report.json"), "contact_sheet": str(sheet_path), "video": str(video_path),
            **report}


@dataclass
class _Staged:
    """What stays in memory of a sample once its images are on disk."""

    frame: int
    face_box: tuple[int, int, int, int] | None
    has_matte: bool

    def load(self, work: Path) -> Sample:
        from .video import read_image

        name = f"frame_{self.frame:06d}.png"
        matte = read_image(work / "mattes" / name, cv2.IMREAD_GRAYSCALE) if self.has_matte else None
        return Sample(self.frame, read_image(work / "real" / name), matte, self.face_box)


def _stage(work: Path, samples: Iterable[Sample], generated_dir: Path, picks: dict[str, list[int]],
           library_image: Callable[[int], np.ndarray], reporter: Reporter) -> list[_Staged]:
    """Write each sample's real frame, matte and retrieved frames under `work`, one sample at a time: the detector
    reads folders, and the scoring pass reads them back frame by frame."""
    from .video import write_png_fast

    for sub in ("real", "mattes", *picks):
        _fresh(work / sub)
    total = len(picks["retrieval"])
    if any(len(p) != total for p in picks.values()):
        raise ValueError(f"the baselines retrieved {[len(p) for p in picks.values()]} frames")
    staged: list[_Staged] = []
    for k, smp in enumerate(samples):
        name = f"frame_{smp.frame:06d}.png"
        if k >= total:
            raise ValueError(f"more samples than the {total} retrieved frames")
        if not (generated_dir / name).is_file():
            raise EdnError("the generator wrote no frame here", path=generated_dir / name, frame=smp.frame)
        write_png_fast(work / "real" / name, smp.real)
        if smp.matte is not None:
            write_png_fast(work / "mattes" / name, smp.matte)
        for m, chosen in picks.items():
            write_png_fast(work / m / name, library_image(chosen[k]))
        staged.append(_Staged(smp.frame, smp.face_box, smp.matte is not None))
        reporter.progress(k + 1, total, stage="eval-load")
    if len(staged) != total:
        raise ValueError(f"{len(staged)} samples but {total} retrieved frames")
    return staged


def _generate(run_dir: Path, track_path: Path, out: Path, amp: bool, reporter: Reporter) -> None:
    from .generate import generate

    generate(run_dir, track_path, out, amp=amp, reporter=reporter)


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def run_dataset_dir(run_dir: Path) -> Path:
    """The dataset a run was trained on, as its run.json records it."""
    dataset = read_run_info(run_dir).get("dataset")
    if not isinstance(dataset, str) or not Path(dataset).is_dir():
        raise EdnError(f"the run's dataset is gone: {dataset}", path=run_dir / RUN_INFO)
    return Path(dataset)


def _rgb(img: np.ndarray) -> np.ndarray:
    """A generated frame's colour (BGR uint8); its alpha is the predicted matte, not used for scoring."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[..., :3])
