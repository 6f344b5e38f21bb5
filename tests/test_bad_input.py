"""Bad input to every `edn` verb (issue 9, item 6): each case runs the real command line and checks that

* it exits with code 2 (an input problem), never 1 (an engine bug) or 0;
* stderr ends with one line `edn: error: ...` naming what is wrong (the file, frame, field or argument), and holds
  no traceback;
* nothing is left behind: no new file or folder anywhere under the case's folder or the shared good data (hidden
  `.NAME.partial` staging folders and empty folders included), and every file of earlier good output is
  byte-identical afterwards (a snapshot of SHA-256s before and after);
* with `--json` (a subset, run as a subprocess), the last stdout line is `{"event": "error", "message": ...}`, and
  where the problem is knowable up front, no progress event came before it.

Each case builds its own bad input in a fresh folder (`d`) from shared good data made once per module: a pose
track and mattes of 12 real frames, a 64x64 dataset and a run of the tiny `cpu` profile trained for 2 steps. Every
path has a space and non-ASCII characters, so the good data also proves such paths work. Cases run in this
process through `edn_engine.cli.main` (the same code as the `edn` command, much faster than a fresh interpreter
each); the `--json` subset and a few others run `python -m edn_engine` as a subprocess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import bad_input_data as bad
import tiny_run
from conftest import OPENPOSE_FRAMES

CLIP = tiny_run.CLIP  # ubc_91BjuE6irxS.mp4, 414x540
LAST = 11  # frames 0..11 of the clip
TINY_ARGS = tiny_run.tiny_args()


# ---------------------------------------------------------------------------------------------------------------
# the shared good data, built once
# ---------------------------------------------------------------------------------------------------------------
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


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    if not CLIP.is_file():
        pytest.skip(f"test footage not found at {CLIP} (see ../shared/data/README.md)")
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


# ---------------------------------------------------------------------------------------------------------------
# running the command line
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


def run_inprocess(argv: list) -> Result:
    from edn_engine import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), tiny_run.one_thread():
        try:
            rc = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # nothing in the engine should exit by itself; report it as it would show
            rc = exc.code if isinstance(exc.code, int) else 1
    return Result(rc, out.getvalue(), err.getvalue())


def run_subprocess(argv: list, cwd: Path | None = None) -> Result:
    p = tiny_run.edn(*argv, timeout=300, cwd=cwd)
    return Result(p.returncode, p.stdout, p.stderr)


def error_line(res: Result) -> str:
    """The one `edn: error: ...` line of a failed run's stderr (asserting there is exactly one, last, and no
    traceback); returns the message after the prefix."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("edn: error: ")]
    assert len(errors) == 1, f"expected one 'edn: error:' line on stderr, got:\n{res.stderr}"
    assert lines[-1] == errors[0], f"the error is not the last line of stderr:\n{res.stderr}"
    message = errors[0][len("edn: error: "):]
    assert message.strip() and "internal error" not in message, message
    return message


def json_error(res: Result) -> tuple[str, list[dict]]:
    """The message of the final `error` event of a --json run (every stdout line must be an event)."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert lines, f"no JSON events on stdout; stderr:\n{res.stderr}"
    events = [json.loads(ln) for ln in lines]
    assert all(isinstance(e, dict) and isinstance(e.get("event"), str) for e in events), res.stdout
    last = events[-1]
    assert last["event"] == "error" and isinstance(last.get("message"), str), last
    assert "internal error" not in last["message"], last["message"]
    return last["message"], events


def assert_names(message: str, needles) -> None:
    low = message.lower()
    for needle in needles:
        assert str(needle).lower() in low, f"the message does not name {str(needle)!r}: {message}"


# ---------------------------------------------------------------------------------------------------------------
# the cases: each builds its bad input in a fresh folder d and returns (argv, what the message must name)
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Workspace, Path], tuple[list, list]]
    upfront: bool = False  # knowable before any work: with --json, no progress event may come before the error


CASES: list[Case] = []


def case(id: str, upfront: bool = False):
    def register(make):
        CASES.append(Case(id, make, upfront))
        return make
    return register


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


# -- edn pose extract ------------------------------------------------------------------------------------------
@case("extract-missing-input", upfront=True)
def _(w, d):
    return ["pose", "extract", d / "missing clip.mp4", "-o", d / "t.npz"], [d / "missing clip.mp4", "not found"]


@case("extract-empty-folder", upfront=True)
def _(w, d):
    (d / "empty").mkdir()
    return ["pose", "extract", d / "empty", "-o", d / "t.npz"], [d / "empty", "no images"]


@case("extract-text-renamed-mp4", upfront=True)
def _(w, d):
    return ["pose", "extract", w.fake_mp4, "-o", d / "t.npz"], [w.fake_mp4, "not a video"]


@case("extract-output-not-npz", upfront=True)
def _(w, d):
    return ["pose", "extract", CLIP, "--end", "2", "-o", d / "t.txt"], [d / "t.txt", ".npz"]


@case("extract-output-under-a-file", upfront=True)
def _(w, d):
    return ["pose", "extract", CLIP, "--end", "2", "-o", w.text_file / "t.npz"], [w.text_file, "not a folder"]


@case("extract-mattes-is-a-file", upfront=True)
def _(w, d):
    return (["pose", "extract", CLIP, "--end", "2", "-o", d / "t.npz", "--mattes", w.text_file],
            [w.text_file, "mattes"])


@case("extract-negative-start", upfront=True)
def _(w, d):
    return ["pose", "extract", CLIP, "--start", "-1", "-o", d / "t.npz"], ["--start", "-1"]


@case("extract-end-before-start", upfront=True)
def _(w, d):
    return ["pose", "extract", CLIP, "--start", "50", "--end", "10", "-o", d / "t.npz"], ["--end", "--start"]


@case("extract-start-past-the-clip", upfront=True)
def _(w, d):
    return ["pose", "extract", CLIP, "--start", "100000", "-o", d / "t.npz"], ["--start", "100000"]


@case("extract-start-not-a-number", upfront=True)
def _(w, d):
    return ["pose", "extract", CLIP, "--start", "abc", "-o", d / "t.npz"], ["--start", "abc"]


@case("extract-mattes-folder-holds-user-file", upfront=True)
def _(w, d):
    user_file(d / "mattes")
    return (["pose", "extract", CLIP, "--end", "2", "-o", d / "t.npz", "--mattes", d / "mattes"],
            [d / "mattes", "my notes.txt"])


@case("extract-mattes-folder-contains-input", upfront=True)
def _(w, d):
    shutil.copytree(w.noise_frames, d / "me" / "frames")
    return (["pose", "extract", d / "me" / "frames", "-o", d / "t.npz", "--mattes", d / "me"],
            [d / "me", "input"])


@case("extract-images-of-two-sizes")
def _(w, d):
    frames = bad.noise_frames(3)
    frames[1] = frames[1][:32, :40]
    bad.write_pngs(d / "shots", frames)
    return (["pose", "extract", d / "shots", "-o", d / "t.npz", "--mattes", d / "mattes"],
            [d / "shots" / "frame_000001.png", "frame 1", "size"])


@case("extract-truncated-video", upfront=True)
def _(w, d):
    clip = bad.truncate(shutil.copy(w.noise_clip, d / "cut off.mp4"), 0.6)
    return ["pose", "extract", clip, "-o", d / "t.npz", "--mattes", d / "mattes"], [clip]


# -- edn pose info ---------------------------------------------------------------------------------------------
@case("info-missing-track")
def _(w, d):
    return ["pose", "info", d / "gone.npz"], [d / "gone.npz", "not found"]


@case("info-damaged-npz")
def _(w, d):
    return ["pose", "info", w.damaged_track], [w.damaged_track, "damaged"]


@case("info-text-renamed-npz")
def _(w, d):
    (d / "notes.npz").write_text("not a zip\n", encoding="utf-8")
    return ["pose", "info", d / "notes.npz"], [d / "notes.npz"]


@case("info-npz-not-a-track")
def _(w, d):
    bad.npz_with(d / "weights.npz", w=np.zeros((3, 3)))
    return ["pose", "info", d / "weights.npz"], [d / "weights.npz", "schema_version"]


@case("info-wrong-body-shape")
def _(w, d):
    bad.npz_with(d / "coco.npz", **track_fields(w, body=np.zeros((12, 18, 3), np.float32)))
    return ["pose", "info", d / "coco.npz"], [d / "coco.npz", "body"]


@case("info-nan-in-frame-5")
def _(w, d):
    body = bad.track_arrays(w.track)["body"].copy()
    body[5, 3, 0] = np.nan
    bad.npz_with(d / "nan.npz", **track_fields(w, body=body))
    return ["pose", "info", d / "nan.npz"], [d / "nan.npz", "frame 5", "nan"]


@case("info-confidence-above-one")
def _(w, d):
    face = bad.track_arrays(w.track)["face"].copy()
    face[2, :, 2] = 2.0
    bad.npz_with(d / "conf.npz", **track_fields(w, face=face))
    return ["pose", "info", d / "conf.npz"], [d / "conf.npz", "face", "confidence"]


@case("info-folder-instead-of-track")
def _(w, d):
    return ["pose", "info", w.mattes], [w.mattes, "folder"]


# -- edn pose clean / normalize / drive ------------------------------------------------------------------------
@case("clean-damaged-npz")
def _(w, d):
    return ["pose", "clean", w.damaged_track, "-o", d / "c.npz"], [w.damaged_track]


@case("clean-even-window")
def _(w, d):
    return ["pose", "clean", w.track, "-o", d / "c.npz", "--median", "4"], ["--median", "odd", "4"]


@case("clean-zero-window")
def _(w, d):
    return ["pose", "clean", w.track, "-o", d / "c.npz", "--median", "0"], ["--median", "0"]


@case("clean-negative-gap")
def _(w, d):
    return ["pose", "clean", w.track, "-o", d / "c.npz", "--max-gap", "-1"], ["--max-gap", "-1"]


@case("clean-unknown-method")
def _(w, d):
    return ["pose", "clean", w.track, "-o", d / "c.npz", "--method", "kalman"], ["--method", "kalman"]


@case("clean-unknown-part")
def _(w, d):
    return ["pose", "clean", w.track, "-o", d / "c.npz", "--parts", "body,tail"], ["tail"]


@case("clean-output-not-npz")
def _(w, d):
    return ["pose", "clean", w.track, "-o", d / "c.json"], [d / "c.json", ".npz"]


@case("normalize-damaged-target")
def _(w, d):
    return (["pose", "normalize", "--source", w.track, "--target", w.damaged_track, "-o", d / "n.npz"],
            [w.damaged_track])


@case("normalize-params-not-json")
def _(w, d):
    return (["pose", "normalize", "--source", w.track, "--target", w.track, "-o", d / "n.npz", "--params",
             d / "p.txt"], [d / "p.txt", ".json"])


@case("normalize-source-argument-missing")
def _(w, d):
    return ["pose", "normalize", "--target", w.track, "-o", d / "n.npz"], ["--source"]


@case("normalize-source-with-nobody")
def _(w, d):
    return (["pose", "normalize", "--source", w.nobody_track, "--target", w.track, "-o", d / "n.npz"],
            [w.nobody_track])


@case("drive-damaged-source")
def _(w, d):
    return ["pose", "drive", w.damaged_track, "--target", w.track, "-o", d / "drv.npz"], [w.damaged_track]


@case("drive-missing-target")
def _(w, d):
    return (["pose", "drive", w.track, "--target", d / "me.npz", "-o", d / "drv.npz"],
            [d / "me.npz", "not found"])


@case("drive-output-under-a-file")
def _(w, d):
    return (["pose", "drive", w.track, "--target", w.track, "-o", w.text_file / "drv.npz"],
            [w.text_file, "not a folder"])


# -- edn pose import-openpose / export-openpose ----------------------------------------------------------------
@case("import-openpose-empty-folder")
def _(w, d):
    (d / "json").mkdir()
    return (["pose", "import-openpose", d / "json", "-o", d / "t.npz", "--size", "1920x1080"],
            [d / "json", "no openpose json"])


@case("import-openpose-missing-folder")
def _(w, d):
    return (["pose", "import-openpose", d / "json", "-o", d / "t.npz", "--size", "1920x1080"],
            [d / "json", "not found"])


@case("import-openpose-malformed-json")
def _(w, d):
    shutil.copytree(OPENPOSE_FRAMES / "openpose", d / "json")
    (d / "json" / "frame000102.json").write_text('{"version": 1.3, "people": [', encoding="utf-8")
    return (["pose", "import-openpose", d / "json", "-o", d / "t.npz", "--size", "1920x1080"],
            [d / "json" / "frame000102.json", "malformed"])


@case("import-openpose-not-openpose")
def _(w, d):
    (d / "json").mkdir()
    (d / "json" / "a_keypoints.json").write_text('{"frames": []}', encoding="utf-8")
    return (["pose", "import-openpose", d / "json", "-o", d / "t.npz", "--size", "1920x1080"],
            [d / "json" / "a_keypoints.json", "people"])


@case("import-openpose-size-abc")
def _(w, d):
    return (["pose", "import-openpose", OPENPOSE_FRAMES / "openpose", "-o", d / "t.npz", "--size", "abc"],
            ["--size", "abc"])


@case("import-openpose-size-zero")
def _(w, d):
    return (["pose", "import-openpose", OPENPOSE_FRAMES / "openpose", "-o", d / "t.npz", "--size", "0x0"],
            ["--size", "0x0"])


@case("import-openpose-fps-zero")
def _(w, d):
    return (["pose", "import-openpose", OPENPOSE_FRAMES / "openpose", "-o", d / "t.npz", "--size", "1920x1080",
             "--fps", "0"], ["--fps", "0"])


@case("export-openpose-damaged-npz")
def _(w, d):
    return ["pose", "export-openpose", w.damaged_track, "-o", d / "json"], [w.damaged_track]


@case("export-openpose-output-is-a-file")
def _(w, d):
    return ["pose", "export-openpose", w.track, "-o", w.text_file], [w.text_file, "folder"]


@case("export-openpose-output-under-a-file")
def _(w, d):
    return ["pose", "export-openpose", w.track, "-o", w.text_file / "json"], [w.text_file, "not a folder"]


# -- edn render ------------------------------------------------------------------------------------------------
@case("render-size-100000x100000", upfront=True)
def _(w, d):
    return ["render", w.track, "-o", d / "figures", "--size", "100000x100000"], ["--size", "100000x100000"]


@case("render-size-abc", upfront=True)
def _(w, d):
    return ["render", w.track, "-o", d / "figures", "--size", "abc"], ["--size", "abc"]


@case("render-size-zero-width", upfront=True)
def _(w, d):
    return ["render", w.track, "-o", d / "figures", "--size", "0x64"], ["--size", "0x64"]


@case("render-video-not-mp4", upfront=True)
def _(w, d):
    return ["render", w.track, "-o", d / "figures", "--video", d / "figures.avi"], [d / "figures.avi", "mp4"]


@case("render-output-holds-user-file", upfront=True)
def _(w, d):
    user_file(d / "figures")
    return ["render", w.track, "-o", d / "figures"], [d / "figures", "my notes.txt"]


@case("render-output-is-a-file", upfront=True)
def _(w, d):
    return ["render", w.track, "-o", w.text_file], [w.text_file, "file"]


@case("render-damaged-npz", upfront=True)
def _(w, d):
    return ["render", w.damaged_track, "-o", d / "figures"], [w.damaged_track]


@case("render-missing-track", upfront=True)
def _(w, d):
    return ["render", d / "t.npz", "-o", d / "figures"], [d / "t.npz", "not found"]


@case("render-unknown-style", upfront=True)
def _(w, d):
    return ["render", w.track, "-o", d / "figures", "--style", "sketch"], ["--style", "sketch"]


# -- edn dataset build -----------------------------------------------------------------------------------------
def build_args(src, out, *extra, size="64x64"):
    return ["dataset", "build", src, "-o", out, "--size", size, *extra]


@case("dataset-output-is-the-folder-of-its-frames", upfront=True)
def _(w, d):
    shutil.copytree(w.noise_frames, d / "me" / "frames")
    return build_args(d / "me" / "frames", d / "me"), [d / "me", "input"]


@case("dataset-rebuild-mattes-typo", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    return (build_args(CLIP, ds, "--track", w.track, "--mattes", w.good / "matts", "--start", "0", "--end", str(LAST)),
            [w.good / "matts", "not found"])


@case("dataset-rebuild-end-before-start", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    return (build_args(CLIP, ds, "--track", w.track, "--mattes", w.mattes, "--start", "50", "--end", "10"),
            ["--end", "--start"])


@case("dataset-rebuild-track-of-another-size", upfront=True)
def _(w, d):
    bad.npz_with(d / "other.npz", **track_fields(w, width=np.int32(1920), height=np.int32(1080)))
    ds = good_dataset_copy(w, d)
    return (build_args(CLIP, ds, "--track", d / "other.npz", "--mattes", w.mattes, "--end", str(LAST)),
            ["1920x1080", "414x540"])


@case("dataset-user-file-in-frames-folder", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    user_file(ds / "frames")
    return (build_args(CLIP, ds, "--track", w.track, "--mattes", w.mattes, "--end", str(LAST)),
            [ds, "my notes.txt"])


@case("dataset-output-contains-track-and-mattes", upfront=True)
def _(w, d):
    me2 = d / "me2"
    me2.mkdir()
    shutil.copy(w.track, me2 / "track.npz")
    shutil.copytree(w.mattes, me2 / "mattes")
    return (build_args(CLIP, me2, "--track", me2 / "track.npz", "--mattes", me2 / "mattes", "--end", str(LAST)),
            [me2, "input"])


@case("dataset-damaged-track", upfront=True)
def _(w, d):
    return (build_args(CLIP, d / "ds", "--track", w.damaged_track, "--mattes", w.mattes, "--end", str(LAST)),
            [w.damaged_track])


@case("dataset-size-100x100-untrainable", upfront=True)
def _(w, d):
    return build_args(CLIP, d / "ds", "--start", "0", "--end", str(LAST), size="100x100"), ["100x100"]


@case("dataset-size-abc", upfront=True)
def _(w, d):
    return build_args(CLIP, d / "ds", size="abc"), ["--size", "abc"]


@case("dataset-holdout-1.5", upfront=True)
def _(w, d):
    return build_args(CLIP, d / "ds", "--holdout", "1.5"), ["--holdout", "1.5"]


@case("dataset-holdout-negative", upfront=True)
def _(w, d):
    return build_args(CLIP, d / "ds", "--holdout", "-0.2"), ["--holdout", "-0.2"]


@case("dataset-missing-input", upfront=True)
def _(w, d):
    return build_args(d / "me.mp4", d / "ds"), [d / "me.mp4", "not found"]


@case("dataset-text-renamed-mp4", upfront=True)
def _(w, d):
    return build_args(w.fake_mp4, d / "ds"), [w.fake_mp4, "not a video"]


@case("dataset-empty-folder", upfront=True)
def _(w, d):
    (d / "shots").mkdir()
    return build_args(d / "shots", d / "ds"), [d / "shots", "no images"]


@case("dataset-output-is-a-file", upfront=True)
def _(w, d):
    return build_args(CLIP, w.text_file, "--track", w.track, "--mattes", w.mattes), [w.text_file, "file"]


@case("dataset-unknown-format", upfront=True)
def _(w, d):
    return build_args(CLIP, d / "ds", "--format", "gif"), ["--format", "gif"]


@case("dataset-clip-with-nobody-in-it")
def _(w, d):
    return build_args(w.noise_clip, d / "ds"), [w.noise_clip, "nobody"]


@case("dataset-matte-of-another-size")
def _(w, d):
    shutil.copytree(w.mattes, d / "mattes")
    bad.write_pngs(d / "mattes", [np.zeros((32, 32, 3), np.uint8)], prefix="matte_", first=3)
    return (build_args(CLIP, d / "ds", "--track", w.track, "--mattes", d / "mattes", "--end", str(LAST)),
            [d / "mattes" / "matte_000003.png", "32x32"])


# -- edn train -------------------------------------------------------------------------------------------------
def train_args(w, ds, out, *extra):
    return ["train", ds, "-o", out, "--steps", "2", "--device", "cpu", *TINY_ARGS, *extra]


@case("train-set-ngf-abc", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--set", "ngf=abc"), ["ngf", "abc"]


@case("train-set-unknown-key", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--set", "ngff=8"), ["ngff"]


@case("train-set-without-value", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--set", "ngf"), ["--set", "ngf"]


@case("train-steps-zero", upfront=True)
def _(w, d):
    return ["train", w.dataset, "-o", d / "run", "--steps", "0"], ["--steps", "0"]


@case("train-steps-abc", upfront=True)
def _(w, d):
    return ["train", w.dataset, "-o", d / "run", "--steps", "abc"], ["--steps", "abc"]


@case("train-minutes-negative", upfront=True)
def _(w, d):
    return ["train", w.dataset, "-o", d / "run", "--minutes", "-1"], ["--minutes", "-1"]


@case("train-steps-and-minutes", upfront=True)
def _(w, d):
    return ["train", w.dataset, "-o", d / "run", "--steps", "5", "--minutes", "1"], ["--minutes", "--steps"]


@case("train-batch-size-zero", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--batch-size", "0"), ["--batch-size", "0"]


@case("train-save-every-zero", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--save-every", "0"), ["--save-every"]


@case("train-face-fraction-1.5", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--face-fraction", "1.5"), ["--face-fraction", "1.5"]


@case("train-missing-dataset", upfront=True)
def _(w, d):
    return train_args(w, d / "dataset", d / "run"), [d / "dataset", "not found"]


@case("train-folder-is-not-a-dataset", upfront=True)
def _(w, d):
    return train_args(w, w.noise_frames, d / "run"), [w.noise_frames, "manifest"]


@case("train-manifest-entry-without-frame", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    bad.edit_json(ds / "manifest.json", lambda m: m["frames"][4].pop("frame"))
    return train_args(w, ds, d / "run"), [ds / "manifest.json", "entry 4", "frame"]


@case("train-manifest-not-json", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    bad.truncate(ds / "manifest.json", 0.5)
    return train_args(w, ds, d / "run"), [ds / "manifest.json"]


@case("train-dataset-track-damaged", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    bad.damage_npz_member(w.dataset / "track.npz", ds / "track.npz")
    return train_args(w, ds, d / "run"), [ds / "track.npz"]


@case("train-dataset-at-untrainable-100x100", upfront=True)
def _(w, d):
    ds = good_dataset_copy(w, d)
    bad.edit_json(ds / "manifest.json", lambda m: m.update(size=[100, 100]))
    fields = bad.track_arrays(ds / "track.npz")
    fields.update(width=np.int32(100), height=np.int32(100))
    bad.npz_with(ds / "track.npz", **fields)
    return train_args(w, ds, d / "run"), ["100x100"]


@case("train-output-is-a-file", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, w.text_file), [w.text_file, "file"]


@case("train-output-under-a-file", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, w.text_file / "run"), [w.text_file, "not a folder"]


@case("train-into-a-run-without-resume", upfront=True)
def _(w, d):
    run = good_run_copy(w, d)
    return train_args(w, d / "dataset", run), [run, "--resume"]


@case("train-resume-every-checkpoint-damaged", upfront=True)
def _(w, d):
    run = good_run_copy(w, d)
    bad.truncate(run / "checkpoints" / "step_00000002.pt", 0.5)
    (run / "checkpoints" / "step_00000001.pt").write_bytes(b"garbage" * 100)
    return (train_args(w, d / "dataset", run, "--resume"),
            ["no usable checkpoint", "step_00000001.pt", "step_00000002.pt"])


# -- edn generate ----------------------------------------------------------------------------------------------
@case("generate-missing-run", upfront=True)
def _(w, d):
    return ["generate", d / "run", w.track, "-o", d / "frames"], [d / "run", "not found"]


@case("generate-run-without-checkpoints", upfront=True)
def _(w, d):
    (d / "run").mkdir()
    shutil.copy(w.run / "run.json", d / "run" / "run.json")
    return ["generate", d / "run", w.track, "-o", d / "frames"], [d / "run", "checkpoint"]


@case("generate-every-checkpoint-damaged", upfront=True)
def _(w, d):
    run = good_run_copy(w, d)
    for p in (run / "checkpoints").iterdir():
        bad.truncate(p, 0.3)
    return ["generate", run, w.track, "-o", d / "frames"], ["no usable checkpoint", "step_00000002.pt"]


@case("generate-damaged-track", upfront=True)
def _(w, d):
    return ["generate", w.run, w.damaged_track, "-o", d / "frames"], [w.damaged_track]


@case("generate-track-with-nobody", upfront=True)
def _(w, d):
    return ["generate", w.run, w.nobody_track, "-o", d / "frames"], [w.nobody_track, "no person"]


@case("generate-output-is-a-file", upfront=True)
def _(w, d):
    return ["generate", w.run, w.track, "-o", w.text_file], [w.text_file, "file"]


@case("generate-output-holds-user-file", upfront=True)
def _(w, d):
    user_file(d / "frames")
    return ["generate", w.run, w.track, "-o", d / "frames"], [d / "frames", "my notes.txt"]


@case("generate-output-is-the-run-folder", upfront=True)
def _(w, d):
    run = good_run_copy(w, d)
    return ["generate", run, w.track, "-o", run], [run, "input"]


@case("generate-video-not-mp4", upfront=True)
def _(w, d):
    return ["generate", w.run, w.track, "-o", d / "frames", "--video", d / "v.mov"], [d / "v.mov", "mp4"]


# -- edn eval --------------------------------------------------------------------------------------------------
@case("eval-max-frames-0", upfront=True)
def _(w, d):
    return ["eval", w.run, "-o", d / "report", "--max-frames", "0"], ["--max-frames", "0"]


@case("eval-max-frames-minus-3", upfront=True)
def _(w, d):
    return ["eval", w.run, "-o", d / "report", "--max-frames", "-3"], ["--max-frames", "-3"]


@case("eval-max-frames-abc", upfront=True)
def _(w, d):
    return ["eval", w.run, "-o", d / "report", "--max-frames", "abc"], ["--max-frames", "abc"]


@case("eval-output-is-a-file", upfront=True)
def _(w, d):
    return ["eval", w.run, "-o", w.text_file], [w.text_file, "file"]


@case("eval-output-under-a-file", upfront=True)
def _(w, d):
    return ["eval", w.run, "-o", w.text_file / "report"], [w.text_file, "not a folder"]


@case("eval-output-holds-user-file", upfront=True)
def _(w, d):
    user_file(d / "report")
    return ["eval", w.run, "-o", d / "report"], [d / "report", "my notes.txt"]


@case("eval-dataset-rebuilt-at-another-size", upfront=True)
def _(w, d):
    from edn_engine.dataset import build_dataset

    run = good_run_copy(w, d)
    shutil.rmtree(d / "dataset")
    build_dataset(CLIP, d / "dataset", (48, 48), track=w.track, mattes=w.mattes, holdout=0.2, end=LAST)
    return ["eval", run, "-o", d / "report"], ["64x64", "48x48"]


@case("eval-not-a-run", upfront=True)
def _(w, d):
    return ["eval", w.noise_frames, "-o", d / "report"], [w.noise_frames, "run.json"]


@case("eval-dataset-gone", upfront=True)
def _(w, d):
    run = good_run_copy(w, d)
    shutil.rmtree(d / "dataset")
    return ["eval", run, "-o", d / "report"], [d / "dataset", "dataset"]


# -- edn transfer ----------------------------------------------------------------------------------------------
@case("transfer-missing-source", upfront=True)
def _(w, d):
    return ["transfer", "--run", w.run, "--source", d / "dance.mp4", "-o", d / "out"], [d / "dance.mp4", "not found"]


@case("transfer-missing-target", upfront=True)
def _(w, d):
    return (["transfer", "--target", d / "me.mp4", "--source", w.track, "-o", d / "out"],
            [d / "me.mp4", "not found"])


@case("transfer-neither-target-nor-run", upfront=True)
def _(w, d):
    return ["transfer", "--source", w.track, "-o", d / "out"], ["--target", "--run"]


@case("transfer-run-is-not-a-run", upfront=True)
def _(w, d):
    return ["transfer", "--run", w.noise_frames, "--source", w.track, "-o", d / "out"], [w.noise_frames, "run.json"]


@case("transfer-size-abc", upfront=True)
def _(w, d):
    return ["transfer", "--target", CLIP, "--source", w.track, "-o", d / "out", "--size", "abc"], ["--size", "abc"]


@case("transfer-damaged-source-track", upfront=True)
def _(w, d):
    return ["transfer", "--run", w.run, "--source", w.damaged_track, "-o", d / "out"], [w.damaged_track]


@case("transfer-output-is-a-file", upfront=True)
def _(w, d):
    return ["transfer", "--run", w.run, "--source", w.track, "-o", w.text_file], [w.text_file, "file"]


@case("transfer-steps-zero", upfront=True)
def _(w, d):
    return (["transfer", "--target", w.noise_frames, "--source", w.track, "-o", d / "out", "--steps", "0"],
            ["--steps", "0"])


@case("transfer-minutes-negative", upfront=True)
def _(w, d):
    return (["transfer", "--target", w.noise_frames, "--source", w.track, "-o", d / "out", "--minutes", "-1"],
            ["--minutes", "-1"])


@case("transfer-size-100x100-untrainable", upfront=True)
def _(w, d):
    return (["transfer", "--target", w.noise_frames, "--source", w.track, "-o", d / "out", "--size", "100x100"],
            ["100x100"])


# -- edn info and the verbs themselves -------------------------------------------------------------------------
@case("info-unknown-device", upfront=True)
def _(w, d):
    return ["info", "--device", "tpu"], ["tpu"]


@case("info-cuda-absent", upfront=True)
def _(w, d):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    return ["info", "--device", "cuda"], ["cuda"]


@case("no-verb", upfront=True)
def _(w, d):
    return [], ["command"]


@case("unknown-verb", upfront=True)
def _(w, d):
    return ["dance"], ["dance"]


@case("pose-without-subcommand", upfront=True)
def _(w, d):
    return ["pose"], ["subcommand"]


# Cases also run as `python -m edn_engine ... --json` (argument errors included) ...
JSON_CASES = ("extract-output-under-a-file", "extract-start-not-a-number", "info-damaged-npz",
              "import-openpose-size-abc", "render-size-100000x100000", "render-size-abc",
              "dataset-output-is-the-folder-of-its-frames", "dataset-size-100x100-untrainable", "dataset-size-abc",
              "train-set-ngf-abc", "train-steps-abc", "train-manifest-entry-without-frame", "generate-missing-run",
              "eval-max-frames-0", "eval-dataset-rebuilt-at-another-size", "transfer-missing-source",
              "transfer-steps-zero", "info-unknown-device", "no-verb")
# ... and as a plain subprocess (the real stderr, with whatever OpenCV, MediaPipe and torch print).
SUBPROCESS_CASES = ("extract-images-of-two-sizes", "extract-text-renamed-mp4", "train-set-unknown-key",
                    "generate-every-checkpoint-damaged")
BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "duplicate case ids"
assert set(JSON_CASES) <= set(BY_ID) and set(SUBPROCESS_CASES) <= set(BY_ID)


def _check_case(w: Workspace, c: Case, mode: str) -> None:
    d = w.case_dir(f"{c.id} ({mode})")
    argv, needles = c.make(w, d)
    if mode == "json":
        argv = [*argv, "--json"]
    before = bad.snapshot(w.good, w.bad, d)
    res = run_inprocess(argv) if mode == "in-process" else run_subprocess(argv, cwd=d)
    after = bad.snapshot(w.good, w.bad, d)
    detail = f"edn {' '.join(map(str, argv))}\nrc={res.rc}\nstdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr[-3000:]}"
    assert res.rc == 2, f"exit code {res.rc}, expected 2\n{detail}"
    if mode == "json":
        message, events = json_error(res)
        if c.upfront:
            assert not [e for e in events if e["event"] == "progress"], f"work started before the error\n{detail}"
    else:
        message = error_line(res)
    assert_names(message, needles)
    assert before == after, f"the failed command changed files:\n{bad.describe_changes(before, after)}\n{detail}"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(ws, c):
    _check_case(ws, c, "in-process")


@pytest.mark.parametrize("cid", JSON_CASES)
def test_bad_input_json(ws, cid):
    _check_case(ws, BY_ID[cid], "json")


@pytest.mark.parametrize("cid", SUBPROCESS_CASES)
def test_bad_input_subprocess(ws, cid):
    _check_case(ws, BY_ID[cid], "subprocess")


# ---------------------------------------------------------------------------------------------------------------
# cases with a more particular right answer
# ---------------------------------------------------------------------------------------------------------------
def _run_ok(argv: list, subprocess_: bool = False) -> Result:
    res = run_subprocess(argv) if subprocess_ else run_inprocess(argv)
    assert res.rc == 0, f"edn {' '.join(map(str, argv))}\nrc={res.rc}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr
    return res


def _resume_with(ws: Workspace, name: str, extra: list, wrong: str) -> None:
    """--resume with a setting the run was not trained with: refused (code 2, naming the option), or done with
    the run's own setting and a line that says so."""
    d = ws.case_dir(name)
    run = good_run_copy(ws, d)
    before = bad.snapshot(run)
    res = run_inprocess(["train", d / "dataset", "-o", run, "--resume", "--steps", "3", "--device", "cpu", *extra])
    assert "Traceback" not in res.stderr, res.stderr
    if res.rc == 2:
        assert_names(error_line(res), [wrong])
        assert bad.snapshot(run) == before
    else:
        assert res.rc == 0, res.stderr
        said = res.stderr.lower()
        assert wrong.lower() in said and any(w in said for w in ("ignor", "instead", "keep", "trained with")), (
            f"--resume with another {wrong} was neither refused nor said to be ignored:\n{res.stderr}")


def test_resume_with_another_profile_is_refused_or_stated(ws):
    _resume_with(ws, "resume-other-profile", ["--profile", "paper-global"], "profile")


def test_resume_with_another_set_is_refused_or_stated(ws):
    _resume_with(ws, "resume-other-set", ["--set", "ngf=16"], "ngf")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "64-bytes-flipped-in-optimizer-state"])
@pytest.mark.parametrize("verb", ["generate", "train-resume"])
def test_damaged_newest_checkpoint_falls_back_with_a_warning(ws, verb, damage):
    d = ws.case_dir(f"fallback {verb} {damage}")
    run = good_run_copy(ws, d)
    newest = run / "checkpoints" / "step_00000002.pt"
    if damage == "truncated":
        bad.truncate(newest, 0.6)
    elif damage == "garbage":
        newest.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    else:
        state = torch.load(newest, map_location="cpu", weights_only=True)
        exp_avg = state["optim"]["G"]["state"][0]["exp_avg"]
        bad.flip_tensor_bytes(newest, exp_avg, 64)
    if verb == "generate":
        res = _run_ok(["generate", run, ws.track, "-o", d / "frames"])
        assert sorted(p.name for p in (d / "frames").iterdir()) == [f"frame_{n:06d}.png" for n in range(LAST + 1)]
        summary = json.loads(res.stdout)
        assert summary["step"] == 1 and summary["checkpoint"].endswith("step_00000001.pt")
    else:
        res = _run_ok(["train", d / "dataset", "-o", run, "--resume", "--steps", "3", "--device", "cpu"])
        assert json.loads(res.stdout)["step"] == 3
    warnings = [ln for ln in res.stderr.splitlines() if "warning" in ln.lower() and "step_00000002.pt" in ln]
    assert len(warnings) == 1, f"no warning naming the damaged checkpoint:\n{res.stderr}"
    # what is wrong with it, truthfully: damaged bytes are not a pickle "that would run code"
    assert "damaged" in warnings[0] and "run code" not in warnings[0], warnings[0]


def _shorter_track(ws: Workspace, d: Path, frames: int) -> Path:
    from edn_engine.pose.track import PoseTrack

    return PoseTrack.load(ws.track).slice(0, frames).save(d / f"first {frames}.npz")


def test_render_rerun_with_a_shorter_track_leaves_only_the_new_figures(ws):
    d = ws.case_dir("render rerun shorter")
    _run_ok(["render", ws.track, "-o", d / "figures", "--size", "64x64"])
    assert len(list((d / "figures").iterdir())) == LAST + 1
    _run_ok(["render", _shorter_track(ws, d, 4), "-o", d / "figures", "--size", "64x64"])
    assert sorted(p.name for p in (d / "figures").iterdir()) == [f"figure_{n:06d}.png" for n in range(4)]
    assert sorted(p.name for p in d.iterdir()) == ["figures", "first 4.npz"]  # no staging folder left


def test_generate_rerun_with_a_shorter_track_leaves_only_the_new_frames(ws):
    d = ws.case_dir("generate rerun shorter")
    _run_ok(["generate", ws.run, ws.track, "-o", d / "frames"])
    assert len(list((d / "frames").iterdir())) == LAST + 1
    _run_ok(["generate", ws.run, _shorter_track(ws, d, 5), "-o", d / "frames"])
    assert sorted(p.name for p in (d / "frames").iterdir()) == [f"frame_{n:06d}.png" for n in range(5)]
    assert sorted(p.name for p in d.iterdir()) == ["first 5.npz", "frames"]


def test_paths_with_spaces_and_non_ascii_work(ws):
    """Every verb on paths like an artist's ("Projekt ü 舞/...", "Tänzer 1.npz"), through the real command."""
    d = ws.case_dir("odd paths ü 舞")
    clean, drive = d / "Tänzer 1 clean.npz", d / "Tänzer 1 drive.npz"
    _run_ok(["pose", "info", ws.track], subprocess_=True)
    _run_ok(["pose", "clean", ws.track, "-o", clean], subprocess_=True)
    _run_ok(["pose", "drive", clean, "--target", ws.track, "-o", drive, "--params", d / "norm ü.json"])
    _run_ok(["pose", "export-openpose", drive, "-o", d / "open pose 舞"])
    _run_ok(["pose", "import-openpose", d / "open pose 舞", "-o", d / "wieder ü.npz", "--size", "414x540"])
    _run_ok(["render", drive, "-o", d / "Figuren ü", "--size", "64x64", "--video", d / "Figuren ü.mp4"])
    _run_ok(["dataset", "build", CLIP, "-o", d / "Datensatz ü", "--size", "64x64", "--track", ws.track, "--mattes",
             ws.mattes, "--end", str(LAST)])
    _run_ok(["generate", ws.run, drive, "-o", d / "Bilder 舞", "--video", d / "Vorschau ü.mp4"])
    assert len(list((d / "Figuren ü").iterdir())) == len(list((d / "Bilder 舞").iterdir())) == LAST + 1
    assert (d / "Datensatz ü" / "manifest.json").is_file() and (d / "Vorschau ü.mp4").stat().st_size > 0


def test_two_people_side_by_side_follows_one(ws):
    """Two people in frame is not an error: the track follows one of them (the first seen) in every frame."""
    from edn_engine.pose.track import PoseTrack

    d = ws.case_dir("two people")
    frames = bad.side_by_side(bad.read_clip(CLIP, 6))
    clip = bad.write_video(d / "zwei Tänzer.mp4", frames)
    _run_ok(["pose", "extract", clip, "-o", d / "t.npz"])
    track = PoseTrack.load(d / "t.npz")
    assert track.width == 2 * 414 and track.frames == 6
    seen = (track.body[..., 2] > 0).any(axis=1)
    assert seen.sum() >= 5
    xs = np.array([track.body[i][track.body[i, :, 2] > 0, 0].mean() for i in range(6) if seen[i]])
    assert (xs < 414).all() or (xs >= 414).all(), f"the track jumps between the two people: {xs}"
