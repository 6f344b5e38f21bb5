"""Bad input to `edn render` and `edn dataset build`: the bad-input battery's cases for them (how each runs and
what it must do: bad_input_harness.py), and a render rerun with a shorter track."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import bad_input_data as bad
from bad_input_harness import Case, Cases, check_case, run_ok
from bad_input_workspace import LAST, good_dataset_copy, nose_only_track, shorter_track, track_fields, user_file
from bad_input_workspace import ws  # noqa: F401 (the session's shared good data)
from tiny_run import CLIP


CASES = Cases()
case = CASES.case


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


@case("render-text-file-named-npz", upfront=True)
def _(w, d):  # numpy tried it as a pickle and said "Cannot load file containing pickled data"
    (d / "t.npz").write_text("a user's notes, renamed\n", encoding="utf-8")
    return ["render", d / "t.npz", "-o", d / "figures"], [d / "t.npz", "pose track", "not an .npz archive"]


@case("render-npy-named-npz", upfront=True)
def _(w, d):  # numpy gave an array, not an archive: an internal error
    np.save(d / "t.npy", np.zeros((2, 25, 3), np.float32))
    (d / "t.npy").rename(d / "t.npz")
    return ["render", d / "t.npz", "-o", d / "figures"], [d / "t.npz", "pose track", "not an .npz archive"]


@case("render-empty-npz", upfront=True)
def _(w, d):
    (d / "t.npz").write_bytes(b"")
    return ["render", d / "t.npz", "-o", d / "figures"], [d / "t.npz", "pose track", "file is empty"]


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


@case("dataset-track-of-one-frame")
def _(w, d):  # built a dataset of 0 training pairs, exit 0: only `edn train` refused it
    one = shorter_track(w, d, 1)
    return (build_args(CLIP, d / "ds", "--track", one, "--mattes", w.mattes, "--end", str(LAST)),
            [one, "1 usable frame (frame 0)", "no two consecutive frames"])


@case("dataset-track-without-two-consecutive-frames")
def _(w, d):
    from edn_engine.pose.track import PoseTrack

    track = PoseTrack.load(w.track)
    for part in (track.body, track.hands, track.face):
        part[1::2] = 0  # nobody in every other frame: 6 usable frames, but no pair of them
    gappy = track.save(d / "gappy.npz")
    return (build_args(CLIP, d / "ds", "--track", gappy, "--mattes", w.mattes, "--end", str(LAST)),
            [gappy, "6 usable frames (frames 0, 2, 4, 6, 8, 10; 1 held out by --holdout)", "no two consecutive"])


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


# also run as `python -m edn_engine ... --json`
JSON_CASES = ("render-size-100000x100000", "render-size-abc", "dataset-output-is-the-folder-of-its-frames",
              "dataset-size-100x100-untrainable", "dataset-size-abc")
assert set(JSON_CASES) <= {c.id for c in CASES}


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(ws, c):
    check_case(ws, c, "in-process")


@pytest.mark.parametrize("cid", JSON_CASES)
def test_bad_input_json(ws, cid):
    check_case(ws, CASES.by_id(cid), "json")


def test_a_track_of_a_nose_alone_is_named_by_its_file(ws, monkeypatch):
    """No window can be placed on a nose alone: the error names the track given, not the video it was extracted
    from (its `source`). 12 frames uncover too little plate for a window plan, so the build is given one here."""
    from edn_engine import dataset
    from edn_engine.pose.window import FramePlan

    monkeypatch.setattr(dataset, "_plan", lambda framing, source, mattes, src_size, size, *rest: FramePlan(
        src_size, size, "window"))
    nosy = Case("dataset-track-with-only-a-nose", lambda w, d: (
        build_args(CLIP, d / "ds", "--track", nose_only_track(w, d), "--mattes", w.mattes, "--end", str(LAST)),
        [d / "nose only.npz", "window"]))
    check_case(ws, nosy, "in-process")


def test_render_rerun_with_a_shorter_track_leaves_only_the_new_figures(ws):
    d = ws.case_dir("render rerun shorter")
    run_ok(["render", ws.track, "-o", d / "figures", "--size", "64x64"])
    assert len(list((d / "figures").iterdir())) == LAST + 1
    run_ok(["render", shorter_track(ws, d, 4), "-o", d / "figures", "--size", "64x64"])
    assert sorted(p.name for p in (d / "figures").iterdir()) == [f"figure_{n:06d}.png" for n in range(4)]
    assert sorted(p.name for p in d.iterdir()) == ["figures", "first 4.npz"]  # no staging folder left
