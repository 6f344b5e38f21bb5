"""Stages in a child process (`edn_engine.child`): `edn transfer` and `edn demo` generate in one under generate's
threading policy; its events reach the parent's reporter, its errors become the parent's, and it never outlives
the parent."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tiny_run
from conftest import REPO
from edn_engine import threads
from edn_engine.child import run_module
from edn_engine.errors import EdnError
from edn_engine.events import Reporter
from edn_engine.outputs import partial_path
from edn_engine.pose.track import PoseTrack


@pytest.fixture(scope="module")
def run(root):
    return tiny_run.trained_run(root)[0]


def _policy_free(monkeypatch) -> None:
    for k in (*threads.POLICY_VARS, "OMP_WAIT_POLICY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(threads, "_CHOSEN", {})


def test_a_training_command_generates_in_a_child_under_generates_policy(monkeypatch):
    _policy_free(monkeypatch)
    assert not threads.needs_own_process("generate")  # no policy chosen here (tests, scripts): in this process
    threads.apply_policy(command="transfer")
    assert os.environ["GOMP_SPINCOUNT"] == "100000"
    assert threads.needs_own_process("generate")
    child = threads.child_environ()
    assert not any(k in child for k in threads.POLICY_VARS)  # the child's cli.main chooses generate's
    assert threads.policy_env(child, command="generate")["GOMP_SPINCOUNT"] == "10000"

    monkeypatch.setattr(threads, "_CHOSEN", {})
    threads.apply_policy(command="generate")  # `edn transfer --run` chose generate's policy already
    assert not threads.needs_own_process("generate")


def test_what_the_user_set_reaches_the_child_and_keeps_it_in_this_process(monkeypatch):
    _policy_free(monkeypatch)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads.apply_policy(command="transfer")
    assert threads.child_environ()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert threads.child_environ()["OMP_NUM_THREADS"] == "1"
    assert not threads.needs_own_process("generate")  # the user's policy is the same for every command


def test_a_childs_events_are_relayed_and_its_error_is_raised(run, tmp_path):
    stream = io.StringIO()
    with pytest.raises(EdnError) as err:
        run_module("edn_engine", ["generate", str(run), str(tmp_path / "no such track.npz"), "-o",
                                  str(tmp_path / "out"), "--json"], Reporter(True, stream))
    assert "no such track.npz" in err.value.message and "\n" not in err.value.message

    hold = PoseTrack.load(run.parent / "dataset" / "track_source.npz")
    hold.slice(0, 3).save(tmp_path / "drive.npz")
    out = tmp_path / "frames ü"
    done = run_module("edn_engine", ["generate", str(run), str(tmp_path / "drive.npz"), "-o", str(out),
                                     "--device", "cpu", "--json"], Reporter(True, stream), stage="frames")
    assert done["written"] == 3 and len(list(out.glob("frame_*.png"))) == 3
    progress = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert progress and {e["stage"] for e in progress if e["event"] == "progress"} == {"frames"}
    assert all("frame" in e for e in progress if e["event"] == "progress")  # the child's extra fields too


# A parent that generates through `run_module` and relays the child's events on its stdout.
_PARENT = """
import sys
from pathlib import Path
from edn_engine.child import run_module
from edn_engine.events import Reporter
run_module("edn_engine", sys.argv[1:], Reporter(True))
"""


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the child through /proc")
def test_a_child_stops_when_its_parent_is_killed_and_keeps_its_frames(run, tmp_path):
    """The add-on kills a job that ignores its cancel: the generating child must not live on without it. It
    stops at its next event, which finds no reader."""
    short = PoseTrack.load(run.parent / "dataset" / "track_source.npz")
    reps = 600 // short.frames + 1
    long = short.replace(body=np.tile(short.body, (reps, 1, 1)), hands=np.tile(short.hands, (reps, 1, 1, 1)),
                         face=np.tile(short.face, (reps, 1, 1)))
    long.save(tmp_path / "long.npz")
    out = tmp_path / "frames of the killed parent"
    env = {**tiny_run.engine_env(), "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, "generate", str(run), str(tmp_path / "long.npz"),
                               "-o", str(out), "--device", "cpu", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    for line in parent.stdout:
        if json.loads(line).get("done", 0) >= 20:
            break
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 60
    while _processes_naming(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_naming(out), "the child outlived its parent"
    assert "Traceback" not in parent.stderr.read()  # the child stopped quietly (the stream is the parent's)
    kept = len(list(partial_path(out).glob("frame_*.png")))
    assert 0 < kept < long.frames  # what it wrote is there for --resume


def _processes_naming(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids
