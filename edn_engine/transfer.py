"""`edn transfer`: one command from a target clip and a source motion to RGBA frames of the target dancing.

Stages (each a function of this package; `stages.Stages` reuses those whose inputs did not change):

    target_pose  detect the target's pose and mattes            OUT/target/track.npz, OUT/target/mattes/
    source_pose  detect the source's pose (SOURCE a clip)       OUT/source/track.npz
    dataset      the target's frames at the training size       OUT/dataset/
    train        the pose-to-person GAN                         OUT/run/
    drive        clean the source motion, normalize it to the target (the paper's global normalization)
                                                                OUT/driving.npz
    generate     RGBA frames, one per source frame              OUT/frames/frame_NNNNNN.png
    preview      source | stick figure | result                 OUT/preview.mp4

With `run` (an existing run folder) the target is not processed again: its dataset gives the target's pose.
SOURCE may be a video, an image folder, or a pose track `.npz` (for example one made from a Blender armature).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from .errors import EdnError
from .events import Reporter
from .pose.framing import Framing
from .pose.track import PoseTrack
from .stages import Stages


@dataclasses.dataclass
class TransferOptions:
    profile: str = "cpu"
    size: tuple[int, int] | None = None  # training size; None: the profile's own
    steps: int | None = None  # training budget: steps, or
    minutes: float | None = None  # wall-clock minutes (neither: the trainer's default steps)
    holdout: float = 0.1  # the dataset's held-out share (previews and `edn eval`)
    face_fraction: float = 0.2
    perceptual: str | None = None  # "vgg19" or "none" (L1 instead); None: the profile's


def transfer(target: str | Path | None, source: str | Path, out_dir: str | Path, *, run: str | Path | None = None,
             options: TransferOptions | None = None, reporter: Reporter | None = None) -> dict:
    """Run (or resume) the whole transfer in `out_dir`; returns a summary naming every output."""
    opts = options or TransferOptions()
    reporter = reporter or Reporter(False)
    out = Path(out_dir)
    source = Path(source)
    if not source.exists():
        raise EdnError("source not found", path=source)
    if run is None and target is None:
        raise EdnError("give --target (a clip of the person to animate) or --run (a trained run)")
    out.mkdir(parents=True, exist_ok=True)
    st = Stages(out, reporter)

    # -- the target: its pose, dataset and run ----------------------------------------------------------
    if run is None:
        target = Path(target)
        if not target.exists():
            raise EdnError("target not found", path=target)
        size = opts.size or _profile_size(opts.profile)
        t_track, t_mattes = out / "target" / "track.npz", out / "target" / "mattes"
        st.run("target_pose", {"target": target}, [t_track, t_mattes],
               lambda: _detect(target, t_track, t_mattes, reporter))
        dataset = out / "dataset"
        st.run("dataset", {"target": target, "track": t_track, "mattes": t_mattes, "size": list(size),
                           "holdout": opts.holdout}, [dataset / "manifest.json"],
               lambda: _build_dataset(target, dataset, size, t_track, t_mattes, opts.holdout, reporter))
        run_dir = out / "run"
        st.run("train", {"manifest": dataset / "manifest.json", "track": dataset / "track.npz",
                         "profile": opts.profile, "steps": opts.steps, "minutes": opts.minutes,
                         "face_fraction": opts.face_fraction, "perceptual": opts.perceptual}, [run_dir / "run.json"],
               lambda: _train(dataset, run_dir, opts, reporter, resume=st.resumable))
    else:
        run_dir = Path(run)
        if not (run_dir / "run.json").is_file():
            raise EdnError("not a training run (no run.json)", path=run_dir)
    from .evaluate import run_dataset_dir

    target_track = run_dataset_dir(run_dir) / "track_source.npz"

    # -- the source motion, cleaned and normalized to the target ----------------------------------------
    if source.suffix.lower() == ".npz":
        s_track = source
    else:
        s_track = out / "source" / "track.npz"
        st.run("source_pose", {"source": source}, [s_track], lambda: _detect(source, s_track, None, reporter))
    driving = out / "driving.npz"
    st.run("drive", {"source": s_track, "target": target_track}, [driving],
           lambda: _drive(s_track, target_track, driving))

    # -- generation and the preview ---------------------------------------------------------------------
    frames = out / "frames"
    st.run("generate", {"run": run_dir / "checkpoints", "driving": driving}, [frames],
           lambda: _generate(run_dir, driving, frames, reporter))
    preview = out / "preview.mp4"
    st.run("preview", {"frames": frames, "driving": driving, "source": source}, [preview],
           lambda: write_preview(source, driving, frames, run_dir, preview, reporter))
    reporter.preview(str(preview))
    return {"output": str(out), "frames": str(frames), "preview": str(preview), "run": str(run_dir),
            "driving": str(driving), "stages": dict(st.status)}


# -- stage bodies ------------------------------------------------------------------------------------------

def _profile_size(profile: str) -> tuple[int, int]:
    from .models.config import get_profile

    cfg = get_profile(profile)
    return cfg.width, cfg.height


def _detect(clip: Path, track_path: Path, mattes: Path | None, reporter: Reporter) -> None:
    from .pose.detect import extract_pose

    if mattes is not None and mattes.exists():
        shutil.rmtree(mattes)
    track, summary = extract_pose(clip, mattes_dir=mattes, reporter=reporter)
    if summary.get("frames_without_person") == track.frames:
        raise EdnError("nobody was detected in any frame", path=clip)
    track.save(track_path)


def _build_dataset(target: Path, dataset: Path, size, track: Path, mattes: Path, holdout: float,
                   reporter: Reporter) -> None:
    from .dataset import build_dataset

    build_dataset(target, dataset, tuple(size), track=track, mattes=mattes, holdout=holdout, reporter=reporter)


def _train(dataset: Path, run_dir: Path, opts: TransferOptions, reporter: Reporter,
           resume: bool = False) -> None:
    from .training import TrainConfig, train
    from .training.checkpoint import list_checkpoints

    resume = resume and bool(list_checkpoints(run_dir))  # interrupted with the same inputs: continue it
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # its inputs changed: start afresh
    steps = opts.steps if opts.steps is not None else (10**9 if opts.minutes is not None else TrainConfig.steps)
    tcfg = TrainConfig(steps=steps, minutes=opts.minutes, face_fraction=opts.face_fraction,
                       save_every=max(1, min(500, steps)), preview_every=max(1, min(250, steps)))
    overrides = {"perceptual": opts.perceptual} if opts.perceptual else None
    summary = train(dataset, run_dir, tcfg, profile=opts.profile, overrides=overrides, resume=resume,
                    reporter=reporter)
    if summary.get("stopped") == "signal":  # Ctrl-C or SIGTERM: the checkpoint is saved, the stage unfinished
        raise KeyboardInterrupt


def _drive(source_track: Path, target_track: Path, out: Path) -> None:
    from .pose.clean import clean_track
    from .pose.normalize import normalize_track

    src = PoseTrack.load(source_track)
    tgt = PoseTrack.load(target_track)
    normalized, _ = normalize_track(clean_track(src), tgt, source_name=str(source_track),
                                    target_name=str(target_track))
    normalized.save(out)


def _generate(run_dir: Path, driving: Path, frames: Path, reporter: Reporter) -> None:
    from .generate import generate

    if frames.exists():
        shutil.rmtree(frames)  # no stale frame of an older, longer source may survive
    generate(run_dir, driving, frames, reporter=reporter)


# -- the preview ---------------------------------------------------------------------------------------------

def checker(h: int, w: int, square: int = 16) -> np.ndarray:
    """A grey checkerboard (BGR), the usual backdrop that shows transparency."""
    yy, xx = np.mgrid[0:h, 0:w]
    c = np.where(((yy // square) + (xx // square)) % 2 == 0, 200, 150).astype(np.uint8)
    return np.dstack([c, c, c])


def over(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Composite a BGRA uint8 image over a BGR background of the same size."""
    if rgba.ndim == 3 and rgba.shape[2] == 4:
        a = rgba[..., 3:4].astype(np.float32) / 255.0
        return (rgba[..., :3] * a + background * (1 - a)).round().astype(np.uint8)
    return rgba[..., :3] if rgba.ndim == 3 else cv2.cvtColor(rgba, cv2.COLOR_GRAY2BGR)


def fit_height(img: np.ndarray, h: int) -> np.ndarray:
    if img.shape[0] == h:
        return img
    w = max(1, int(round(img.shape[1] * h / img.shape[0])))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def write_preview(source: Path, driving_path: Path, frames: Path, run_dir: Path, out: Path,
                  reporter: Reporter | None = None) -> Path:
    """source | stick figure | result (over a checkerboard), one row per generated frame, as an mp4.

    The stick figure is the driving pose in the training framing: exactly what the generator was given. With a
    pose-track source the source panel is that track's own stick figure.
    """
    from .dataset import stick_figure
    from .render import draw_pose
    from .video import open_source, read_image, write_video

    driving = PoseTrack.load(driving_path)
    run_info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    fr = Framing.from_dict(run_info["framing"])
    w, h = run_info["size"]
    if (driving.width, driving.height) != tuple(fr.src_size):
        fr = Framing((driving.width, driving.height), (w, h), fr.mode)
    framed = driving.replace(body=fr.points(driving.body), hands=fr.points(driving.hands),
                             face=fr.points(driving.face), width=w, height=h)
    backdrop = checker(h, w)

    if source.suffix.lower() == ".npz":
        src_track = PoseTrack.load(source)

        def source_frames():
            for i in range(src_track.frames):
                yield src_track.frame_start + i, draw_pose(src_track.body[i], src_track.hands[i], src_track.face[i],
                                                           size=(src_track.width, src_track.height))
    else:
        clip = open_source(source, driving.frame_start, driving.frame_start + driving.frames - 1)
        source_frames = lambda: iter(clip)  # noqa: E731

    def rows():
        for k, (n, img) in enumerate(source_frames()):
            i = n - driving.frame_start
            if not 0 <= i < driving.frames:
                continue
            path = frames / f"frame_{n:06d}.png"
            result = over(read_image(path, cv2.IMREAD_UNCHANGED), backdrop) if path.is_file() else backdrop
            yield np.concatenate([fit_height(img, h), stick_figure(framed, i), result], axis=1)
            if reporter is not None:
                reporter.progress(k + 1, driving.frames, stage="preview")

    write_video(out, rows(), fps=driving.fps)
    return out
