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

import pytest
import torch

import tiny_run
from conftest import REPO
from edn_engine import threads
from edn_engine.child import run_module
from edn_engine.errors import EdnError
from edn_engine.events import ReaderGone, Reporter
from edn_engine.outputs import partial_path
from edn_engine.pose.track import PoseTrack


@pytest.fixture(scope="module")
def run(root):
    return tiny_run.trained_run(root)[0]


@pytest.fixture
def own_environ(monkeypatch):
    """os.environ as a copy without any threading variable, and no policy chosen yet: what `apply_policy` writes
    stays in this test."""
    env = {k: v for k, v in os.environ.items() if k not in (*threads.POLICY_VARS, "OMP_WAIT_POLICY")}
    monkeypatch.setattr(os, "environ", env)
    monkeypatch.setattr(threads, "_CHOSEN", {})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this test session's torch keeps its threads
    monkeypatch.setattr(sys, "platform", "linux")  # libgomp's platform: the only runtime that reads the spin
    return env


def test_a_training_command_generates_in_a_child_under_generates_policy(own_environ):
    assert not threads.needs_own_process("generate")  # no policy chosen here (tests, scripts): in this process
    threads.apply_policy(command="transfer")
    assert own_environ["GOMP_SPINCOUNT"] == "100000"
    assert threads.needs_own_process("generate")
    child = threads.child_environ()
    assert not any(k in child for k in threads.POLICY_VARS)  # the child's cli.main chooses generate's
    assert threads.policy_env(child, command="generate")["GOMP_SPINCOUNT"] == "10000"


def test_a_command_that_only_generates_stays_in_its_process(own_environ):
    threads.apply_policy(command="generate")  # `edn transfer --run` chose generate's policy already
    assert own_environ["GOMP_SPINCOUNT"] == "10000"
    assert not threads.needs_own_process("generate")


def test_what_the_user_set_reaches_the_child(own_environ):
    own_environ["OMP_NUM_THREADS"] = "1"
    threads.apply_policy(command="transfer")
    assert threads.child_environ()["OMP_NUM_THREADS"] == "1"
    assert threads.needs_own_process("generate")  # the spin is still training's here, generate's there

    own_environ["OMP_WAIT_POLICY"] = "PASSIVE"  # the user's wait policy: the same for every command
    del own_environ["GOMP_SPINCOUNT"]
    threads.apply_policy(command="transfer")
    assert threads.child_environ()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert not threads.needs_own_process("generate")


def test_no_child_where_openmp_reads_no_spin_count(own_environ, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")  # Intel/LLVM OpenMP: KMP_BLOCKTIME=0 for every command
    threads.apply_policy(command="transfer")
    assert not threads.needs_own_process("generate")


def test_transfer_no_amp_trains_and_generates_in_fp32(monkeypatch, tmp_path):
    """`edn transfer --no-amp` reaches training's options and generation, in a child or in this process."""
    from edn_engine import cli, pipeline
    from edn_engine.commands import transfer as transfer_command

    seen = {}
    monkeypatch.setattr("edn_engine.transfer.transfer",
                        lambda target, source, out, run=None, options=None, reporter=None: seen.update(opts=options)
                        or {})
    monkeypatch.setattr(Reporter, "done", lambda self, **summary: None)
    args = cli.build_parser().parse_args(["transfer", "--source", "s.mp4", "-o", "out", "--run", "r", "--no-amp"])
    transfer_command.run(args, Reporter(False))
    assert seen["opts"].train.amp is False

    monkeypatch.setattr(pipeline.threads, "needs_own_process", lambda command: True)
    monkeypatch.setattr(pipeline, "run_module", lambda module, argv, reporter, env=None: seen.update(argv=argv))
    pipeline.generate_frames(tmp_path / "run", tmp_path / "d.npz", tmp_path / "out", Reporter(False), amp=False)
    assert "--no-amp" in seen["argv"]
    monkeypatch.setattr(pipeline.threads, "needs_own_process", lambda command: False)
    monkeypatch.setattr("edn_engine.generate.generate", lambda *a, amp=True, **k: seen.update(amp=amp))
    pipeline.generate_frames(tmp_path / "run", tmp_path / "d.npz", tmp_path / "out", Reporter(False), amp=False)
    assert seen["amp"] is False


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


def test_a_reporter_whose_reader_is_gone_stops_the_verb_as_ctrl_c_does():
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    reporter = Reporter(True, Closed())
    with pytest.raises(ReaderGone) as stop:
        reporter.progress(1, 2, stage="generate")
    assert isinstance(stop.value, KeyboardInterrupt)  # frames and checkpoints are kept as on Ctrl-C
    with pytest.raises(ReaderGone):  # again at every event: no later stage runs unwatched
        reporter.log("the next stage")
    reporter.error("interrupted")  # the last words are dropped, and raise nothing
    reporter.done(step=1)


# A parent that generates through `run_module` and relays the child's events on its stdout; SIGTERM (the add-on's
# cancel) interrupts it as `cli.main` arranges for every verb.
_PARENT = """
import sys
from edn_engine import cli
from edn_engine.child import run_module
from edn_engine.events import Reporter
cli._stop_on_sigterm()
try:
    run_module("edn_engine", sys.argv[1:], Reporter(True))
except KeyboardInterrupt:
    sys.exit(130)
"""


def _start_parent(run, tmp_path, out):
    """A parent generating a 2000-frame track through a child, once the child has written 20 frames."""
    # far more frames than it makes before it is stopped, even on a busy machine
    long = tiny_run.long_track(run.parent / "dataset" / "track_source.npz", 2000, tmp_path / "long.npz")
    env = {**tiny_run.engine_env(), "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, "generate", str(run), str(tmp_path / "long.npz"),
                               "-o", str(out), "--device", "cpu", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    reached = False
    for line in parent.stdout:
        if json.loads(line).get("done", 0) >= 20:
            reached = True
            break
    assert reached, parent.stderr.read()[-3000:]
    return parent, long.frames


def _wait_gone(out: Path) -> None:
    deadline = time.monotonic() + 60
    while _processes_naming(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_naming(out), "the child outlived its parent"


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the child through /proc")
def test_a_child_stops_when_its_parent_is_killed_and_keeps_its_frames(run, tmp_path):
    """The add-on kills a job that ignores its cancel: the generating child must not live on without it. It
    stops at its next event, which finds no reader, as on Ctrl-C."""
    out = tmp_path / "frames of the killed parent"
    parent, frames = _start_parent(run, tmp_path, out)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    _wait_gone(out)
    assert "Traceback" not in parent.stderr.read()  # the child stopped quietly (the stream is the parent's)
    assert 20 <= len(list(partial_path(out).glob("frame_*.png"))) < frames  # kept for --resume


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the child through /proc")
def test_the_addons_cancel_stops_the_child_through_its_parent(run, tmp_path):
    """The add-on cancels with SIGTERM to the engine it started: that process asks its child to stop and waits."""
    out = tmp_path / "frames of the cancelled parent"
    parent, frames = _start_parent(run, tmp_path, out)
    parent.send_signal(signal.SIGTERM)
    rest, err = parent.communicate(timeout=60)
    assert parent.returncode == 130, err[-3000:]
    assert not _processes_naming(out), "the child outlived its parent"
    assert 20 <= len(list(partial_path(out).glob("frame_*.png"))) < frames


# A parent that starts `edn generate` as `run_module` does, its events going to a file: no broken pipe tells the
# child that the parent is gone.
_SILENT_PARENT = """
import os, signal, subprocess, sys, time
from edn_engine.child import PARENT_PID
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell without job control starts a job in the background
with open(sys.argv[1], "w") as events:
    subprocess.Popen([sys.executable, "-m", "edn_engine", *sys.argv[2:]], stdout=events,
                     env={**os.environ, PARENT_PID: str(os.getpid())})
    time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix" or not Path("/proc/self/cmdline").exists(), reason="POSIX, through /proc")
def test_a_child_notices_its_parents_death_without_writing(run, tmp_path):
    long = tiny_run.long_track(run.parent / "dataset" / "track_source.npz", 2000, tmp_path / "long.npz")
    out, events = tmp_path / "frames of the silent child", tmp_path / "events.jsonl"
    env = {**tiny_run.engine_env(), "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", _SILENT_PARENT, str(events), "generate", str(run),
                               str(tmp_path / "long.npz"), "-o", str(out), "--device", "cpu", "--json"], env=env)
    deadline = time.monotonic() + 120
    while len(list(partial_path(out).glob("frame_*.png"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    parent.kill()
    parent.wait(timeout=30)
    _wait_gone(out)
    last = json.loads(events.read_text().splitlines()[-1])
    assert last == {"event": "error", "message": "interrupted"}  # stopped as on Ctrl-C, not by a broken pipe
    assert 20 <= len(list(partial_path(out).glob("frame_*.png"))) < long.frames


def _processes_naming(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids
