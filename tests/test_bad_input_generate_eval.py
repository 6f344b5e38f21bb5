"""Bad input to `edn generate`, `edn eval`, `edn transfer`, `edn info` and to the command line itself (no verb,
an unknown one): the bad-input battery's cases for them (how each runs and what it must do:
bad_input_harness.py); a generate rerun with a shorter track; and every verb on paths with spaces and
non-ASCII characters."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

import bad_input_data as bad
from bad_input_harness import Case, Cases, check_case, run_ok
from bad_input_workspace import LAST, frame_names, good_run_copy, nose_only_track, shorter_track, user_file
from bad_input_workspace import ws  # noqa: F401 (the session's shared good data)
from tiny_run import CLIP


CASES = Cases()
case = CASES.case


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


@case("eval-run-json-empty", upfront=True)
def _(w, d):  # eval needs the run's dataset, which run.json names (generate warns: see below)
    run = good_run_copy(w, d)
    (run / "run.json").write_bytes(b"")
    return ["eval", run, "-o", d / "report"], [run / "run.json", "the file is empty", "--resume"]


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


# also run as `python -m edn_engine ... --json`
JSON_CASES = ("generate-missing-run", "eval-max-frames-0", "eval-dataset-rebuilt-at-another-size",
              "transfer-missing-source", "transfer-steps-zero", "info-unknown-device", "no-verb")
# also run as a plain subprocess
SUBPROCESS_CASES = ("generate-every-checkpoint-damaged",)
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


def test_generate_rerun_with_a_shorter_track_leaves_only_the_new_frames(ws):
    d = ws.case_dir("generate rerun shorter")
    run_ok(["generate", ws.run, ws.track, "-o", d / "frames"])
    assert len(frame_names(d / "frames")) == LAST + 1
    run_ok(["generate", ws.run, shorter_track(ws, d, 5), "-o", d / "frames"])
    assert frame_names(d / "frames") == [f"frame_{n:06d}.png" for n in range(5)]
    assert sorted(p.name for p in d.iterdir()) == ["first 5.npz", "frames"]


def test_paths_with_spaces_and_non_ascii_work(ws):
    """Every verb on paths like an artist's ("Projekt ü 舞/...", "Tänzer 1.npz"), through the real command."""
    d = ws.case_dir("odd paths ü 舞")
    clean, drive = d / "Tänzer 1 clean.npz", d / "Tänzer 1 drive.npz"
    run_ok(["pose", "info", ws.track], subprocess_=True)
    run_ok(["pose", "clean", ws.track, "-o", clean], subprocess_=True)
    run_ok(["pose", "drive", clean, "--target", ws.track, "-o", drive, "--params", d / "norm ü.json"])
    run_ok(["pose", "export-openpose", drive, "-o", d / "open pose 舞"])
    run_ok(["pose", "import-openpose", d / "open pose 舞", "-o", d / "wieder ü.npz", "--size", "414x540"])
    run_ok(["render", drive, "-o", d / "Figuren ü", "--size", "64x64", "--video", d / "Figuren ü.mp4"])
    run_ok(["dataset", "build", CLIP, "-o", d / "Datensatz ü", "--size", "64x64", "--track", ws.track, "--mattes",
             ws.mattes, "--end", str(LAST)])
    run_ok(["generate", ws.run, drive, "-o", d / "Bilder 舞", "--video", d / "Vorschau ü.mp4"])
    assert len(list((d / "Figuren ü").iterdir())) == len(frame_names(d / "Bilder 舞")) == LAST + 1
    assert (d / "Datensatz ü" / "manifest.json").is_file() and (d / "Vorschau ü.mp4").stat().st_size > 0


def test_a_track_of_a_nose_alone_is_named_by_its_file_before_any_frame_folder(ws, monkeypatch):
    """No window can be placed on a nose alone: the error names the track given, not the video it was extracted
    from (its `source`), and comes before the frames folder is made. The good run trains on the whole frame (12
    frames uncover too little plate), so it is loaded here with a window plan."""
    from edn_engine import generate
    from edn_engine.pose.window import FramePlan

    loaded = generate.load_run
    monkeypatch.setattr(generate, "load_run", lambda *a: dataclasses.replace(
        loaded(*a), plan=FramePlan((414, 540), (64, 64), "window")))
    nosy = Case("generate-track-with-only-a-nose", lambda w, d: (["generate", w.run, nose_only_track(w, d), "-o",
                                                                   d / "frames"], [d / "nose only.npz", "window"]))
    check_case(ws, nosy, "in-process")


@pytest.mark.parametrize("damage", ["empty", "half"])
def test_a_damaged_run_json_is_named_but_generate_uses_the_checkpoint(ws, tmp_path, damage):
    """The checkpoint holds all generation needs (a run generates after its dataset is gone), so a damaged run.json
    (which eval and transfer refuse) is named in a warning, where it used to pass without a word."""
    import io

    from edn_engine.events import Reporter
    from edn_engine.generate import generate

    run = good_run_copy(ws, tmp_path)
    if damage == "empty":
        (run / "run.json").write_bytes(b"")
    else:
        bad.truncate(run / "run.json", 0.5)
    log = io.StringIO()
    summary = generate(run, ws.track, tmp_path / "frames", device="cpu", reporter=Reporter(False, log))
    assert summary["written"] > 0 and len(frame_names(tmp_path / "frames")) == summary["frames"]
    assert f"warning: {run / 'run.json'}: unreadable run.json" in log.getvalue()
    assert "--resume` writes it again; the checkpoint alone is used" in log.getvalue()
