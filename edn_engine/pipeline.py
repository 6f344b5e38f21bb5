"""The chains of stages, owned by the engine: `edn transfer`, `edn demo`, `edn pose drive`, the quality benchmark
and the Blender add-on all run their stages through here, so they chain them the same way.

A `Pipeline` works in one project folder laid out by `layout.ProjectLayout`. Each method is one stage; through
`stages.Stages` it is skipped when it finished before from the same inputs, and redone (with everything after
it) when they changed. Each returns where its output is. The stage bodies are the engine's own functions
(`extract_pose`, `build_dataset`, `train`, `generate`, `evaluate_run`); nothing here re-implements them.

    target_pose   clip -> ROOT/target/track.npz + mattes/
    dataset       clip + track + mattes -> ROOT/dataset/
    train         dataset -> ROOT/run/ (an interrupted run with the same inputs continues from its checkpoint)
    source_pose   clip -> ROOT/source/track.npz
    drive         source track -> cleaned, normalized to the target -> ROOT/driving.npz
    generate      run + driving track -> ROOT/frames/
    evaluate      run -> a report folder (`edn eval`)
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path

from . import threads
from .atomic import ensure_dir, read_json
from .child import run_module
from .errors import EdnError
from .events import Reporter
from .layout import HANDS, ProjectLayout
from .models.config import get_profile
from .pose.track import PoseTrack
from .stages import Stages
from .training.config import TrainConfig


@dataclasses.dataclass
class TrainOptions:
    """How a pipeline trains: the `edn train` options that `edn transfer`, the demo and the benchmark set."""

    profile: str = "cpu"
    steps: int | None = None  # a step budget, or
    minutes: float | None = None  # a wall-clock budget (neither: the trainer's default steps)
    face_fraction: float = TrainConfig.face_fraction
    mirror: float = TrainConfig.mirror
    perceptual: str | None = None  # "vgg19" or "none"; None: the profile's own
    settings: dict = dataclasses.field(default_factory=dict)  # model settings over the profile's (`edn train --set`)
    save_every: int = 500
    preview_every: int = 250
    amp: bool = True  # bf16 autocast where the device computes bf16 natively


class Pipeline:
    """Stages in one project folder, each reused when its inputs are unchanged (see the module docstring)."""

    def __init__(self, root: str | Path, reporter: Reporter | None = None):
        self.paths = ProjectLayout(Path(root))
        self.reporter = reporter or Reporter(False)
        ensure_dir(self.paths.root, "project folder")
        self.stages = Stages(self.paths.root, self.reporter)

    @property
    def status(self) -> dict[str, str]:
        return dict(self.stages.status)

    def target_pose(self, clip: Path) -> tuple[Path, Path]:
        track, mattes = self.paths.target_track, self.paths.target_mattes
        self.stages.run("target_pose", {"target": clip}, [track, mattes],
                        lambda: extract_track(clip, track, mattes, self.reporter))
        return track, mattes

    def source_pose(self, clip: Path) -> Path:
        track = self.paths.source_track
        self.stages.run("source_pose", {"source": clip}, [track], lambda: extract_track(clip, track, None,
                                                                                          self.reporter))
        return track

    def dataset(self, clip: Path, size: tuple[int, int], holdout: float, track: Path, mattes: Path | None,
                profile: str = "cpu", framing: str = "auto", out: Path | None = None, name: str = "dataset") -> Path:
        from .dataset import build_dataset
        from .hand_data import HAND_SIZE

        out = out or self.paths.dataset
        # hand_size: a dataset built before the hand refiner holds no hand crops, and is built again
        self.stages.run(name, {"target": clip, "track": track, "mattes": mattes, "size": list(size),
                               "holdout": holdout, "framing": framing, "hand_size": HAND_SIZE},
                        [out / "manifest.json"],
                        lambda: build_dataset(clip, out, tuple(size), track=track, mattes=mattes, holdout=holdout,
                                              profile=profile, framing=framing, reporter=self.reporter))
        return out

    def train(self, dataset: Path, options: TrainOptions, run_dir: Path | None = None,
              name: str = "train") -> Path:
        run_dir = run_dir or self.paths.run
        # The options, and what they stand for today: a profile or a trainer default changed by a newer EDN
        # retrains rather than reusing a run made with the old one
        inputs = {"manifest": dataset / "manifest.json", "track": dataset / "track.npz",
                  **dataclasses.asdict(options), "model": get_profile(options.profile).to_dict(),
                  "trainer": dataclasses.asdict(train_config(options))}
        self.stages.run(name, inputs, [run_dir / "run.json"],
                        lambda: train_run(dataset, run_dir, options, self.reporter, resume=self.stages.resumable))
        return run_dir

    def drive(self, source_track: Path, target_track: Path) -> Path:
        out = self.paths.driving
        self.stages.run("drive", {"source": source_track, "target": target_track}, [out],
                        lambda: drive_track(source_track, target_track, out))
        return out

    def generate(self, run_dir: Path, driving: Path, out: Path | None = None, hands: str = HANDS[0],
                 amp: bool = True) -> Path:
        out = out or self.paths.frames
        inputs = {"run": run_dir / "checkpoints", "driving": driving, "hands": hands, "amp": amp}
        self.stages.run("generate", inputs, [out], lambda: generate_frames(run_dir, driving, out, self.reporter, hands,
                                                                            amp))
        return out

    def evaluate(self, run_dir: Path, out: Path, max_frames: int | None = None, name: str = "evaluate",
                 amp: bool = True) -> dict:
        from .evaluate import evaluate_run

        result: dict = {}
        self.stages.run(name, {"run": run_dir / "checkpoints", "max_frames": max_frames, "amp": amp},
                        [out / "report.json"],
                        lambda: result.update(evaluate_run(run_dir, out, max_frames=max_frames, amp=amp,
                                                           reporter=self.reporter)))
        return result or {"report": str(out / "report.json"), **read_json(out / "report.json", "report")}


# -- stage bodies, also usable on their own -------------------------------------------------------------------

def extract_track(clip: Path, track_path: Path, mattes: Path | None, reporter: Reporter) -> None:
    """Detect the person in `clip`; save the track (and the mattes, swapped in whole) or fail if nobody is seen."""
    from .outputs import MATTES, check_output_file, check_output_folder, staged_folder
    from .pose.detect import extract_pose

    check_output_file(track_path, ".npz", "pose track")
    if mattes is not None:
        check_output_folder(mattes, MATTES, "mattes folder", inputs=(clip,))
    with staged_folder(mattes) if mattes is not None else contextlib.nullcontext() as build:
        track, summary = extract_pose(clip, mattes_dir=build, reporter=reporter)
        if summary.get("frames_without_person") == track.frames:
            raise EdnError("nobody was detected in any frame", path=clip)
        track.save(track_path)


def generate_frames(run_dir: Path, driving: Path, out: Path, reporter: Reporter, hands: str = HANDS[0],
                    amp: bool = True) -> dict:
    """`edn generate`, in this process, or in a child under generate's own threading policy where this process
    has another (`edn transfer` and `edn demo` train under training's; `threads.needs_own_process`) and the
    frames are made on the CPU (a GPU's context and memory are not worth a second process)."""
    from .device import choose_device

    if threads.needs_own_process("generate") and choose_device("auto").type == "cpu":
        args = ["generate", str(Path(run_dir).absolute()), str(Path(driving).absolute()),
                "-o", str(Path(out).absolute()), "--hands", hands, *([] if amp else ["--no-amp"]), "--json"]
        return run_module("edn_engine", args, reporter, env=threads.child_environ())
    from .generate import generate

    return generate(run_dir, driving, out, hands=hands, amp=amp, reporter=reporter)


def train_run(dataset: Path, run_dir: Path, options: TrainOptions, reporter: Reporter, resume: bool = False) -> dict:
    """Train `run_dir` on `dataset`. `resume`: an interrupted run with the same inputs continues from its last
    checkpoint; otherwise the old run folder (this pipeline's own) starts afresh."""
    from .atomic import write_json
    from .runs import list_checkpoints
    from .training import train

    resume = resume and bool(list_checkpoints(run_dir))
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # the pipeline's own run folder, made from other inputs
    tcfg = train_config(options)
    overrides = {**options.settings, **({"perceptual": options.perceptual} if options.perceptual else {})}
    summary = train(dataset, run_dir, tcfg, profile=options.profile, overrides=overrides, resume=resume,
                    reporter=reporter)
    write_json(run_dir / "summary.json", summary)  # what the run did, for whoever reuses the stage later
    if summary.get("stopped") == "signal":  # Ctrl-C or SIGTERM: the checkpoint is saved, the stage unfinished
        raise KeyboardInterrupt
    return summary


def train_config(options: TrainOptions):
    """The trainer's config for these options; checks them, so a chain can refuse bad ones before its first
    stage."""
    budget = {"steps": options.steps} if options.steps is not None else {}  # else the trainer's default
    return TrainConfig(**budget, minutes=options.minutes, face_fraction=options.face_fraction, mirror=options.mirror,
                       save_every=options.save_every, preview_every=options.preview_every, amp=options.amp)


def drive_track(source: Path, target: Path, out: Path, params: Path | None = None, clean: bool = True,
                interpolation: str = "linear") -> dict:
    """The motion of `source` as the target would perform it: cleaned (the paper's 7-frame median, short gaps
    filled), then globally normalized to the target's frame. Returns the normalization's figures."""
    from .atomic import write_json
    from .pose.clean import clean_track
    from .pose.normalize import NormalizeConfig, normalize_track

    src, tgt = PoseTrack.load(source), PoseTrack.load(target)
    driven, norm = normalize_track(clean_track(src) if clean else src, tgt,
                                   NormalizeConfig(interpolation=interpolation),
                                   source_name=str(source), target_name=str(target))
    driven.save(out)
    if params is not None:
        write_json(params, norm.to_dict())
    return {"scale_close": round(norm.scale_close, 4), "scale_far": round(norm.scale_far, 4),
            "range_narrowed": norm.range_narrowed, "cleaned": clean}
