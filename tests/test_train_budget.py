"""Training on a time budget (`--minutes`): it stops and saves when the time is up, plans the cheaper face stage
over the time left, stops two processes at the same step, and resumes inside the face stage without going back to
the body."""

from __future__ import annotations

import csv
import json
import subprocess
import time

import pytest

import tiny_run
from conftest import ENGINE_PYTHON
from edn_engine.runs import list_checkpoints, read_checkpoint
from edn_engine.training import TrainConfig, train
from edn_engine.training.config import lr_at


def test_minutes_budget_stops_and_saves(dataset, tmp_path):
    tcfg = TrainConfig(steps=None, minutes=0.04, save_every=10**6, preview_every=10**6, device="cpu")
    t0 = time.monotonic()
    with tiny_run.one_thread():
        summary = train(dataset, tmp_path / "run", tcfg, overrides=dict(tiny_run.TINY))
    assert summary["stopped"] == "time" and summary["step"] >= 1
    assert time.monotonic() - t0 < 60
    assert read_checkpoint(list_checkpoints(tmp_path / "run")[-1])["step"] == summary["step"]


def test_a_minutes_plan_stretches_the_cheaper_face_stage_over_the_time_left():
    """Planned at the body's speed, a face stage of cheaper steps would end early: once its steps are timed, it
    is stretched to fill the budget, the body's share untouched."""
    from edn_engine.training.config import Plan

    tcfg = TrainConfig(steps=None, minutes=2.0, face_fraction=0.2)
    plan = Plan.from_speed(4, [5.0, 1.0, 1.0, 1.0], 10.0, tcfg, use_face=True)
    assert (plan.steps, plan.body_steps) == (114, 91)  # 4 + 110 s / 1 s, the last 20% in the face stage
    later = plan.fill_face_stage(95, [0.9, 0.25, 0.25, 0.25], 100.0, tcfg)  # 4 face steps timed at 0.25 s
    assert (later.steps, later.body_steps) == (95 + 80, 91)
    assert later.lr(95, tcfg) == tcfg.lr  # still in the face stage's constant part: no jump in the schedule
    assert plan.fill_face_stage(95, [0.9, 0.25], 121.0, tcfg).steps == 95  # no time left: stop where it is


def test_two_processes_stop_together_on_a_minutes_budget(dataset, tmp_path):
    """With --minutes each process times its own steps and reads its own clock; they must still plan the same
    steps and stop at the same one, or one would wait for the others forever."""
    out = tmp_path / "ddp minutes"
    cmd = [ENGINE_PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edn_engine", "train", str(dataset), "-o", str(out), "--device", "cpu", "--json", "--minutes",
           "0.15", "--save-every", "100", *tiny_run.tiny_args()]
    res = subprocess.run(cmd, capture_output=True, text=True, env=tiny_run.engine_env(), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    done = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")][-1]
    assert done["event"] == "done" and done["world_size"] == 2 and done["stopped"] == "time", done
    assert done["face_stage"] and len(set(done["generator_sha256"])) == 1
    assert read_checkpoint(list_checkpoints(out)[-1])["step"] == done["step"]


def test_a_minutes_resume_inside_the_face_stage_keeps_the_body_frozen(dataset, tmp_path):
    """Resumed with --minutes (as the add-on's Resume does) after the body stage ended, the run finishes its face
    stage on its own schedule, past the point where a --minutes run re-plans from its speed: it never goes back to
    training the body. The face stage runs at the model's face_lr times the body's learning rate."""
    out = tmp_path / "run"
    with tiny_run.one_thread():
        train(dataset, out, TrainConfig(steps=10, face_fraction=0.6, save_every=5, preview_every=100,
                                        keep_checkpoints=5, device="cpu"), overrides=dict(tiny_run.TINY, face_lr=3.0))
        (out / "checkpoints" / "step_00000010.pt").unlink()  # as if stopped after step 5, in the face stage
        summary = train(dataset, out, TrainConfig(steps=None, minutes=0.5, save_every=100, preview_every=100,
                                                  device="cpu"), resume=True)
    assert summary["step"] == 10
    with open(out / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["stage"] for r in rows] == ["body"] * 4 + ["face"] * 6
    tcfg = TrainConfig()  # each stage: constant for its first half, then down towards 0 (`lr_at`)
    expected = [lr_at(s, 0, 4, tcfg) for s in range(4)] + [3 * lr_at(s, 4, 6, tcfg) for s in range(4, 10)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=1e-4)
