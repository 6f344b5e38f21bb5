"""Bad input to `edn train`: the bad-input battery's cases for it (how each runs and what it must do:
bad_input_harness.py), --resume with other settings, and a damaged newest checkpoint (train and generate fall
back to the one before, with a warning)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bad_input_data as bad
import tiny_run
from bad_input_harness import Cases, assert_names, check_case, error_line, run_inprocess, run_ok
from bad_input_workspace import LAST, Workspace, frame_names, good_dataset_copy, good_run_copy
from bad_input_workspace import ws  # noqa: F401 (the session's shared good data)

TINY_ARGS = tiny_run.tiny_args()


CASES = Cases()
case = CASES.case


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


@case("train-workers-negative", upfront=True)
def _(w, d):
    return train_args(w, w.dataset, d / "run", "--workers", "-1"), ["--workers", "-1"]


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


@case("train-dataset-without-two-consecutive-train-frames", upfront=True)
def _(w, d):  # a dataset built before `edn dataset build` refused one: both refuse by `training_pairs`
    ds = good_dataset_copy(w, d)
    bad.edit_json(ds / "manifest.json", lambda m: m.update(frames=m["frames"][::2]))
    return train_args(w, ds, d / "run"), [ds, "6 usable frames (frames 0, 2, 4, 6, 8, 10; 1 held out by --holdout)",
                                          "no two consecutive frames"]


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


# also run as `python -m edn_engine ... --json`
JSON_CASES = ("train-set-ngf-abc", "train-steps-abc", "train-manifest-entry-without-frame")
# also run as a plain subprocess
SUBPROCESS_CASES = ("train-set-unknown-key",)
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
        res = run_ok(["generate", run, ws.track, "-o", d / "frames"])
        assert frame_names(d / "frames") == [f"frame_{n:06d}.png" for n in range(LAST + 1)]
        summary = json.loads(res.stdout)
        assert summary["step"] == 1 and summary["checkpoint"].endswith("step_00000001.pt")
    else:
        res = run_ok(["train", d / "dataset", "-o", run, "--resume", "--steps", "3", "--device", "cpu"])
        assert json.loads(res.stdout)["step"] == 3
    warnings = [ln for ln in res.stderr.splitlines() if "warning" in ln.lower() and "step_00000002.pt" in ln]
    assert len(warnings) == 1, f"no warning naming the damaged checkpoint:\n{res.stderr}"
    # what is wrong with it, truthfully: damaged bytes are not a pickle "that would run code"
    assert "damaged" in warnings[0] and "run code" not in warnings[0], warnings[0]
