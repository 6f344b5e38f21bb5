"""`edn transfer`: one command from a target clip and a source motion to RGBA frames of the target dancing.

The stages are the engine's pipeline (`pipeline.Pipeline`, laid out by `layout.ProjectLayout`; each is reused
on a re-run when its inputs did not change):

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
from pathlib import Path

import cv2
import numpy as np

from .errors import EdnError
from .events import Reporter
from .layout import HANDS
from .pipeline import Pipeline, TrainOptions, train_config
from .compositing import over
from .pose.track import PoseTrack


@dataclasses.dataclass
class TransferOptions:
    train: TrainOptions = dataclasses.field(default_factory=TrainOptions)
    size: tuple[int, int] | None = None  # training size; None: the profile's own
    holdout: float = 0.1  # the dataset's held-out share (previews and `edn eval`)
    hands: str = HANDS[0]  # how generation draws the hands (`edn generate --hands`)


def transfer(target: str | Path | None, source: str | Path, out_dir: str | Path, *, run: str | Path | None = None,
             options: TransferOptions | None = None, reporter: Reporter | None = None) -> dict:
    """Run (or resume) the whole transfer in `out_dir`; returns a summary naming every output."""
    from .evaluate import run_dataset_dir
    from .generate import check_hands

    from .models.config import check_trainable_size

    # -- every input and option checked before the first stage writes anything ----------------------------
    opts = options or TransferOptions()
    reporter = reporter or Reporter(False)
    source = Path(source)
    if not source.exists():
        raise EdnError("source not found", path=source)
    if source.suffix.lower() == ".npz":
        PoseTrack.load(source)
    check_hands(opts.hands)
    if run is None and target is None:
        raise EdnError("give --target (a clip of the person to animate) or --run (a trained run)")
    if run is not None:
        run_dataset_dir(Path(run))  # a run folder whose dataset is still there
    else:
        if not Path(target).exists():
            raise EdnError("target not found", path=target)
        if not 0.0 <= opts.holdout < 1.0:
            raise EdnError(f"the held-out share must be in [0, 1), not {opts.holdout}")
        train_config(opts.train)
        size = opts.size or _profile_size(opts.train.profile)
        check_trainable_size(opts.train.profile, tuple(size))
    pipe = Pipeline(out_dir, reporter)

    # -- the target: its pose, dataset and run ----------------------------------------------------------
    if run is None:
        target = Path(target)
        t_track, t_mattes = pipe.target_pose(target)
        dataset = pipe.dataset(target, size, opts.holdout, t_track, t_mattes, opts.train.profile)
        run_dir = pipe.train(dataset, opts.train)
    else:
        run_dir = Path(run)
    target_track = run_dataset_dir(run_dir) / "track_source.npz"

    # -- the source motion, cleaned and normalized to the target ----------------------------------------
    s_track = source if source.suffix.lower() == ".npz" else pipe.source_pose(source)
    driving = pipe.drive(s_track, target_track)

    # -- generation and the preview ---------------------------------------------------------------------
    frames = pipe.generate(run_dir, driving, hands=opts.hands, amp=opts.train.amp)
    preview = pipe.paths.preview
    pipe.stages.run("preview", {"frames": frames, "driving": driving, "source": source}, [preview],
                    lambda: write_preview(source, driving, frames, run_dir, preview, reporter))
    reporter.preview(str(preview))
    return {"output": str(pipe.paths.root), "frames": str(frames), "preview": str(preview), "run": str(run_dir),
            "driving": str(driving), "stages": pipe.status}


def _profile_size(profile: str) -> tuple[int, int]:
    from .models.config import get_profile

    cfg = get_profile(profile)
    return cfg.width, cfg.height


# -- the preview ---------------------------------------------------------------------------------------------

def checker(h: int, w: int, square: int = 16) -> np.ndarray:
    """A grey checkerboard (BGR), the usual backdrop that shows transparency."""
    yy, xx = np.mgrid[0:h, 0:w]
    c = np.where(((yy // square) + (xx // square)) % 2 == 0, 200, 150).astype(np.uint8)
    return np.dstack([c, c, c])


def fit_height(img: np.ndarray, h: int) -> np.ndarray:
    if img.shape[0] == h:
        return img
    w = max(1, int(round(img.shape[1] * h / img.shape[0])))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def write_preview(source: Path, driving_path: Path, frames: Path, run_dir: Path, out: Path,
                  reporter: Reporter | None = None) -> Path:
    """source | stick figure | result, one row per generated frame, as an mp4 at the run's training height.

    The stick figure is the driving pose, in the target's frame. The result is the composite over the plate
    (person-over-plate runs), else the RGBA frame over a checkerboard. With a pose-track source the source
    panel is that track's own stick figure.
    """
    from .render import draw_pose
    from .runs import read_run_info
    from .video import open_source, read_image
    from .video_out import write_video

    driving = PoseTrack.load(driving_path)
    h = int(read_run_info(run_dir)["size"][1])

    def figure(track: PoseTrack, i: int) -> np.ndarray:
        return draw_pose(track.body[i], track.hands[i], track.face[i], size=(track.width, track.height))

    if source.suffix.lower() == ".npz":
        src_track = PoseTrack.load(source)
        source_frames = lambda: ((src_track.frame_start + i, figure(src_track, i))  # noqa: E731
                                 for i in range(src_track.frames))
    else:
        clip = open_source(source, driving.frame_start, driving.frame_start + driving.frames - 1)
        source_frames = lambda: iter(clip)  # noqa: E731

    def result(n: int) -> np.ndarray:
        composite = frames / "composite" / f"frame_{n:06d}.png"
        if composite.is_file():
            return fit_height(read_image(composite), h)
        rgba = read_image(frames / f"frame_{n:06d}.png", cv2.IMREAD_UNCHANGED)
        rgba = fit_height(rgba, h)
        return over(rgba, checker(*rgba.shape[:2]))

    def rows():
        for k, (n, img) in enumerate(source_frames()):
            i = n - driving.frame_start
            if not 0 <= i < driving.frames or not (frames / f"frame_{n:06d}.png").is_file():
                continue
            yield np.concatenate([fit_height(img, h), fit_height(figure(driving, i), h), result(n)], axis=1)
            if reporter is not None:
                reporter.progress(k + 1, driving.frames, stage="preview")

    write_video(out, rows(), fps=driving.fps)
    return out
