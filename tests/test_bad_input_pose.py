"""Bad input to `edn pose` (extract, info, clean, normalize, drive, import-openpose, export-openpose): the
bad-input battery's cases for it (how each runs and what it must do: bad_input_harness.py), and two people in
frame, which is not an error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import bad_input_data as bad
from bad_input_harness import Cases, check_case, run_ok
from bad_input_workspace import track_fields, user_file, ws  # noqa: F401 (ws: the session's shared good data)
from conftest import OPENPOSE_FRAMES
from tiny_run import CLIP


CASES = Cases()
case = CASES.case


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


@case("clean-output-is-its-input")
def _(w, d):
    raw = shutil.copy(w.track, d / "raw pose.npz")
    return ["pose", "clean", raw, "-o", raw], [raw, "input"]


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


@case("drive-output-is-the-target")
def _(w, d):
    target = shutil.copy(w.track, d / "target pose.npz")
    return ["pose", "drive", w.track, "--target", target, "-o", target], [target, "input"]


@case("normalize-output-is-the-source")
def _(w, d):
    source = shutil.copy(w.track, d / "source pose.npz")
    return ["pose", "normalize", "--source", source, "--target", w.track, "-o", source], [source, "input"]


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


# also run as `python -m edn_engine ... --json`
JSON_CASES = ("extract-output-under-a-file", "extract-start-not-a-number", "info-damaged-npz",
              "import-openpose-size-abc")
# also run as a plain subprocess
SUBPROCESS_CASES = ("extract-images-of-two-sizes", "extract-text-renamed-mp4")
assert set(JSON_CASES + SUBPROCESS_CASES) <= {c.id for c in CASES}


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(ws, c):
    check_case(ws, c, "in-process")


@pytest.mark.parametrize("cid", JSON_CASES)
def test_bad_input_json(ws, cid):
    check_case(ws, CASES.by_id(cid), "json")


@pytest.mark.parametrize("cid", SUBPROCESS_CASES)
def test_bad_input_subprocess(ws, cid):
    check_case(ws, CASES.by_id(cid), "subprocess")


def test_two_people_side_by_side_follows_one(ws):
    """Two people in frame is not an error: the track follows one of them (the first seen) in every frame."""
    from edn_engine.pose.track import PoseTrack

    d = ws.case_dir("two people")
    frames = bad.side_by_side(bad.read_clip(CLIP, 6))
    clip = bad.write_video(d / "zwei Tänzer.mp4", frames)
    run_ok(["pose", "extract", clip, "-o", d / "t.npz"])
    track = PoseTrack.load(d / "t.npz")
    assert track.width == 2 * 414 and track.frames == 6
    seen = (track.body[..., 2] > 0).any(axis=1)
    assert seen.sum() >= 5
    xs = np.array([track.body[i][track.body[i, :, 2] > 0, 0].mean() for i in range(6) if seen[i]])
    assert (xs < 414).all() or (xs >= 414).all(), f"the track jumps between the two people: {xs}"
