"""The bad-input battery's shared good data (see bad_input_harness.py), built once per test session however many
test files use it: a pose track and mattes of 12 real frames, a 64x64 dataset and a run of the tiny `cpu` profile
trained for 2 steps, and a few bad inputs no case changes. Every path has a space and non-ASCII characters. Also
the copies of it that cases change, and small makers of inputs several files share.

Test files take the `ws` fixture by importing it (`from bad_input_workspace import ws  # noqa: F401`). Each file
that imports it gets a fixture of its own, so the workspace itself is kept per session in `_BUILT`, keyed by the
session's tmp_path_factory folder.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

import bad_input_data as bad
import tiny_run

CLIP = tiny_run.CLIP  # ubc_91BjuE6irxS.mp4, 414x540
LAST = 11  # frames 0..11 of the clip


@dataclasses.dataclass
class Workspace:
    root: Path

    @property
    def good(self) -> Path:  # earlier good output: never changed by any case
        return self.root / "good"

    @property
    def bad(self) -> Path:  # shared bad inputs: never changed either
        return self.root / "bad inputs"

    @property
    def track(self) -> Path:
        return self.good / "track ü.npz"

    @property
    def mattes(self) -> Path:
        return self.good / "mattes"

    @property
    def dataset(self) -> Path:
        return self.good / "dataset 64"

    @property
    def run(self) -> Path:
        return self.good / "run 舞"

    @property
    def damaged_track(self) -> Path:
        return self.bad / "damaged zlib.npz"

    @property
    def text_file(self) -> Path:
        return self.bad / "notes.txt"

    @property
    def fake_mp4(self) -> Path:
        return self.bad / "not a video.mp4"

    @property
    def nobody_track(self) -> Path:
        return self.bad / "nobody.npz"

    @property
    def noise_frames(self) -> Path:  # 3 PNGs of random noise, 64x48: nobody in them
        return self.bad / "noise frames"

    @property
    def noise_clip(self) -> Path:  # 8 frames of random noise, 64x48, as an .mp4: nobody in it
        return self.bad / "noise clip.mp4"

    def case_dir(self, name: str) -> Path:
        d = self.root / "cases" / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d



def _build(tmp_path_factory) -> Workspace:
    from edn_engine.dataset import build_dataset
    from edn_engine.pose.detect import extract_pose
    from edn_engine.pose.track import PoseTrack
    from edn_engine.training import TrainConfig, train

    w = Workspace(tmp_path_factory.mktemp("bad_input") / "Projekt ü 舞")
    w.good.mkdir(parents=True)
    track, _ = extract_pose(CLIP, start=0, end=LAST, mattes_dir=w.mattes)
    track.save(w.track)
    build_dataset(CLIP, w.dataset, (64, 64), track=w.track, mattes=w.mattes, holdout=0.2, start=0, end=LAST)
    tcfg = TrainConfig(steps=2, save_every=1, preview_every=1000, face_fraction=0.2, device="cpu")
    with tiny_run.one_thread():
        train(w.dataset, w.run, tcfg, profile="cpu", overrides=dict(tiny_run.TINY))
    assert [p.name for p in sorted((w.run / "checkpoints").iterdir())] == ["step_00000001.pt", "step_00000002.pt"]

    w.bad.mkdir()
    bad.damage_npz_member(w.track, w.damaged_track)
    w.text_file.write_text("a user's notes, not EDN's\n", encoding="utf-8")
    w.fake_mp4.write_text("this is a text file renamed .mp4\n" * 20, encoding="utf-8")
    PoseTrack.empty(5, 414, 540).save(w.nobody_track)
    bad.write_pngs(w.noise_frames, bad.noise_frames(3))
    bad.write_video(w.noise_clip, bad.noise_frames(8, seed=1))
    return w


_BUILT: dict[Path, Workspace | Exception] = {}  # by the session's base temporary folder


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Workspace:
    if not CLIP.is_file():
        pytest.skip(f"test footage not found at {CLIP} (see ../shared/data/README.md)")
    key = tmp_path_factory.getbasetemp()
    if key not in _BUILT:
        try:
            _BUILT[key] = _build(tmp_path_factory)
        except Exception as exc:  # built once: a failure is not retried by every later file
            _BUILT[key] = exc
            raise
    built = _BUILT[key]
    if isinstance(built, Exception):
        raise RuntimeError("building the bad-input battery's good data failed earlier in this session") from built
    return built


# ---------------------------------------------------------------------------------------------------------------
# copies of it that a case may change, and inputs made from it
# ---------------------------------------------------------------------------------------------------------------
def good_dataset_copy(w: Workspace, d: Path) -> Path:
    return bad.copy_tree(w.dataset, d / "dataset")


def good_run_copy(w: Workspace, d: Path) -> Path:
    """A copy of the good run whose run.json points at a copy of its dataset (so the copy can be changed)."""
    ds = good_dataset_copy(w, d)
    run = bad.copy_tree(w.run, d / "run")
    bad.edit_json(run / "run.json", lambda info: info.update(dataset=str(ds.absolute())))
    return run


def user_file(folder: Path, name: str = "my notes.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("the user's own file\n", encoding="utf-8")
    return p


def track_fields(w: Workspace, **changes) -> dict:
    fields = bad.track_arrays(w.track)
    fields.update(changes)
    return fields


def shorter_track(ws: Workspace, d: Path, frames: int) -> Path:
    from edn_engine.pose.track import PoseTrack

    return PoseTrack.load(ws.track).slice(0, frames).save(d / f"first {frames}.npz")


def nose_only_track(ws: Workspace, d: Path) -> Path:
    """The good track with only a nose left in each frame (no other joint, hand or face), saved as EDN saves
    tracks: its `source` still names the clip it was extracted from, which an error must not name for it."""
    from edn_engine.pose.track import PoseTrack

    track = PoseTrack.load(ws.track)
    assert track.source and Path(track.source).name == CLIP.name
    body = np.zeros_like(track.body)
    body[:, 0] = (207.0, 100.0, 0.9)
    return track.replace(body=body, hands=np.zeros_like(track.hands), face=np.zeros_like(track.face)).save(
        d / "nose only.npz")


def frame_names(folder: Path) -> list[str]:
    """The entries of a frames folder but its hidden record of what they were generated from (`generate`)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
