"""One small real dataset and one tiny trained run, built once per test session and shared by the dataset,
training and generation tests (building them takes ~20 s on a busy 2-core machine; every test reuses them).

The footage is 30 frames of a real clip (`ubc_91BjuE6irxS.mp4`, 414x540) at 64x64; the networks are the `cpu`
profile shrunk by overrides (TINY) so a training step takes about a tenth of a second on one thread.
Subprocess runs get OMP_NUM_THREADS=1: on a shared machine two OpenMP threads that wait on each other made the
tiny networks ~100x slower, and one thread also keeps CPU results bitwise repeatable between runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from conftest import ENGINE_PYTHON, VIDEO
from edn_engine.pose.track import PoseTrack

CLIP = VIDEO / "ubc_91BjuE6irxS.mp4"
FRAMES = 30  # source frames 0..29
SIZE = (64, 64)
TINY = {"ngf": 8, "n_blocks": 1, "max_channels": 64, "ndf": 8, "n_layers_d": 2, "num_d": 2,
        "face_ngf": 8, "face_n_blocks": 1, "face_ndf": 8, "face_n_layers_d": 2, "perceptual": "none"}
TRAIN_STEPS = 90  # the shared run: 81 body steps, then 9 face-stage steps

_cache: dict[str, object] = {}


def tiny_args() -> list[str]:
    """TINY as `edn train` options."""
    out = []
    for k, v in TINY.items():
        out += ["--perceptual", v] if k == "perceptual" else ["--set", f"{k}={json.dumps(v)}"]
    return out


def engine_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def edn(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """Run `python -m edn_engine ARGS` and capture its output."""
    return subprocess.run([ENGINE_PYTHON, "-m", "edn_engine", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=engine_env(), **kw)


def json_events(stdout: str) -> list[dict]:
    """Every stdout line must be one JSON object with an "event"."""
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert all(isinstance(e, dict) and "event" in e for e in events)
    return events


@contextlib.contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def source_pose(root: Path) -> tuple[Path, Path]:
    """The clip's pose track and mattes (source pixels), detected once with MediaPipe."""
    if "pose" not in _cache:
        from edn_engine.pose.detect import extract_pose

        root.mkdir(parents=True, exist_ok=True)
        track, _ = extract_pose(CLIP, start=0, end=FRAMES - 1, mattes_dir=root / "mattes")
        track.save(root / "track.npz")
        _cache["pose"] = (root / "track.npz", root / "mattes")
    return _cache["pose"]


def dataset(root: Path) -> Path:
    """The shared 64x64 dataset (last 20% held out)."""
    if "dataset" not in _cache:
        from edn_engine.dataset import build_dataset

        track, mattes = source_pose(root)
        out = root / "dataset"
        _cache["summary"] = build_dataset(CLIP, out, SIZE, track=track, mattes=mattes, holdout=0.2, end=FRAMES - 1,
                                          framing="full")  # the whole frame; person over plate: test_plate_pipeline
        _cache["dataset"] = out
    return _cache["dataset"]


def trained_run(root: Path) -> tuple[Path, dict]:
    """A run trained for TRAIN_STEPS on the shared dataset (in this process, one thread)."""
    if "run" not in _cache:
        from edn_engine.training import TrainConfig, train

        ds = dataset(root)
        run = root / "run"
        tcfg = TrainConfig(steps=TRAIN_STEPS, save_every=30, preview_every=45, face_fraction=0.1, device="cpu")
        with one_thread():
            summary = train(ds, run, tcfg, profile="cpu", overrides=dict(TINY))
        _cache["run"] = (run, summary)
    return _cache["run"]


def long_track(source: Path, at_least: int, path: Path) -> PoseTrack:
    """`source`'s rows repeated until there are at least `at_least` (a generation long enough to be stopped while
    it runs), saved to `path`."""
    short = PoseTrack.load(source)
    reps = at_least // short.frames + 1
    long = short.replace(body=np.tile(short.body, (reps, 1, 1)), hands=np.tile(short.hands, (reps, 1, 1, 1)),
                         face=np.tile(short.face, (reps, 1, 1)))
    long.save(path)
    return long


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest
