"""scripts/gpu_check.sh, the GPU proof, in its CPU fallback: real footage, the tests' tiny networks at 64x64, 3 + 3
steps, world sizes 1 and 2 over gloo. The JSON it writes must have its shape and every case must pass, resuming
across 2 -> 1 and 1 -> 2 processes included. (On a GPU machine the same script runs the CUDA paths; see its
docstring.) Also: how a failed command's error line is found, and that a hung command is killed."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ENGINE_PYTHON, REPO, VIDEO

SCRIPTS = REPO / "scripts"
FRAMES = 16


def _module(name: str):
    """scripts/NAME.py: scripts/ is no package, and gpu_check.py's parts import each other by name (as they do when
    the script runs, with scripts/ first on sys.path)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    return importlib.import_module(name)


def test_cpu_fallback_passes_every_case(tmp_path):
    out, work = tmp_path / "gpu_check_cpu.json", tmp_path / "work"
    cmd = ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--profiles", "paper-global",
           "--frames", str(FRAMES), "--clip", str(VIDEO / "ubc_91BjuE6irxS.mp4"), "--out", str(out),
           "--work", str(work)]
    env = dict(os.environ, EDN_ENGINE_PYTHON=ENGINE_PYTHON)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.is_file(), res.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert res.returncode == 0, (doc.get("failures"), res.stderr[-3000:])

    assert doc["format"] == "edn-gpu-check" and doc["ok"] is True
    assert (doc["passed"], doc["failed"], doc["skipped"]) == (7, 0, 0) and doc["failures"] == []
    assert {"torch", "cuda", "gpu_count", "gpus", "nccl_available"} <= set(doc["environment"])
    s = doc["settings"]
    assert (s["device"], s["processes"], s["steps"], s["resume_to"], s["frames"]) == ("cpu", 2, 3, 6, FRAMES)
    assert s["sizes"] == {"paper-global": [64, 64]} and s["networks"] == "tiny"

    cases = {c["name"]: c for c in doc["cases"]}
    assert list(cases) == ["pose", "dataset-64x64", "paper-global/train-1", "paper-global/train-2",
                           "paper-global/resume-2-to-1", "paper-global/resume-1-to-2", "paper-global/generate"]
    assert all(c["status"] == "passed" and "error" not in c for c in cases.values())
    for name in ("paper-global/train-1", "paper-global/train-2", "paper-global/resume-2-to-1",
                 "paper-global/resume-1-to-2"):
        c = cases[name]
        assert c["sec_per_step"] > 0 and c["losses_finite"] and c["face_stage"] and c["device"]["device"] == "cpu"
        assert len(c["memory"]["per_rank"]) == c["processes"] and c["memory"]["peak_rss_mb"] > 0
        assert "peak_gpu_mb" not in c["memory"]  # no GPU: nothing to report, rather than a made-up figure
    back = cases["paper-global/resume-2-to-1"]
    assert (back["from_processes"], back["processes"], back["resumed_from_step"], back["steps"]) == (2, 1, 3, 6)
    assert back["resumed_on_other_process_count"] is True
    assert cases["paper-global/resume-1-to-2"]["resumed_on_other_process_count"] is True
    gen = cases["paper-global/generate"]
    assert gen["run_from"] == "paper-global/resume-2-to-1" and gen["frames"] == FRAMES and gen["fps"] > 0
    assert gen["face_gan"] is True

    summary = doc["profiles"]["paper-global"]
    assert summary["resume_2_to_1"] == summary["resume_1_to_2"] == "passed"
    assert summary["sec_per_step_1"] > 0 and summary["sec_per_step_2"] > 0 and summary["generate_fps"] > 0
    # --work is kept, with a log per command; a second run may clear it (it carries the script's marker)
    assert (work / ".edn-gpu-check").is_file() and len(list((work / "logs").glob("*.log"))) == 7


def test_error_line_of_a_failed_command():
    gc = _module("gpu_check_command")

    def outcome(events=(), stderr="", rc=1, timed_out=False):
        return gc.Outcome(rc, [(0.0, e) for e in events], stderr, 1.0, timed_out, 0.0)

    assert gc.error_line(outcome([{"event": "error", "message": "internal error: IndexError: boom"}],
                                 "Traceback ...\nIndexError: boom\n")) == "internal error: IndexError: boom"
    torchrun = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1, unhandled cuda error\n"
                "E0101 rank 1 failed\n============================================================\n"
                "x.py FAILED\n------------------------------------------------------------\nFailures:\n"
                "  <NO_OTHER_FAILURES>\n------------------------------------------------------------\n"
                "Root Cause (first observed failure):\n[0]:\n  time      : 2026-01-01_00:00:00\n"
                "  exitcode  : 1 (pid: 12)\n  error_file: <N/A>\n"
                "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html\n"
                "============================================================\n")
    assert gc.error_line(outcome(stderr=torchrun)).startswith("torch.distributed.DistBackendError: NCCL error")
    assert gc.error_line(outcome(stderr="Segmentation fault\n")) == "Segmentation fault"
    assert gc.error_line(outcome(rc=-9)) == "exit code -9"
    assert gc.error_line(outcome(timed_out=True), 30) == "timed out after 30 s"


def test_a_command_is_read_as_it_runs_and_killed_when_it_hangs():
    gc = _module("gpu_check_command")
    sys.path.insert(0, str(REPO))
    talk = ("import json, sys; print('stray'); print(json.dumps({'event': 'progress', 'done': 1, 'total': 2})); "
            "print(json.dumps({'event': 'error', 'message': 'bad input'})); sys.exit(2)")
    out = gc.run_command([sys.executable, "-c", talk], dict(os.environ), timeout=60)
    assert out.rc == 2 and [e["event"] for _, e in out.events] == ["progress", "error"]
    assert gc.error_line(out) == "bad input"
    # a hung command with a child in a session of its own (as torchrun starts its workers): both are stopped
    hang_src = ("import json, subprocess, sys, time; "
                "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
                "print(json.dumps({'event': 'log', 'message': str(c.pid)}), flush=True); time.sleep(60)")
    hang = gc.run_command([sys.executable, "-c", hang_src], dict(os.environ), timeout=2, grace=1)
    assert hang.timed_out and hang.wall_s < 30 and gc.error_line(hang, 2) == "timed out after 2 s"
    worker = int(hang.of("log")[0]["message"])
    time.sleep(0.5)
    stat = Path(f"/proc/{worker}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", "the worker still runs"


@pytest.mark.parametrize("rows, first, expected", [
    ([("1", "body", "9.0"), ("2", "body", "1.0"), ("3", "face", "2.0")], 0, 2.0),  # short: only the last row
    ([(str(s), "body", "5.0" if s <= 20 else "1.0") for s in range(1, 31)], 0, 1.0),  # warm-up rows left out
    ([(str(s), "body", "3.0" if s <= 10 else "1.0") for s in range(1, 13)], 10, 1.0),  # a resume: its rows only
])
def test_step_time_is_the_median_after_warm_up(rows, first, expected):
    gc = _module("gpu_check_cases")
    got = gc.step_times([{"step": a, "stage": b, "sec_per_step": c} for a, b, c in rows], first)
    assert got["sec_per_step"] == expected


@pytest.mark.parametrize("nproc, expected", [
    (1, ["train 1", "resume 1->1", "generate resume-1-to-1"]),  # one GPU: still a resume, and generate from it
    (2, ["train 1", "train 2", "resume 2->1", "resume 1->2", "generate resume-2-to-1"]),
])
def test_cases_run_for_one_and_several_processes(tmp_path, nproc, expected):
    """The order of the cases, with the engine commands stubbed out: a one-GPU machine (as `device` lends) resumes
    train-1's run on one process rather than skipping every resume."""
    gc = _module("gpu_check_cases")
    args = SimpleNamespace(python=sys.executable, device="cuda", nproc=nproc, track=None, mattes=None, size=(64, 64),
                           profiles=["cpu"], vgg_weights=None)
    check = gc.Check(args, {}, tmp_path)
    calls = []
    check.pose = lambda: True
    check.dataset = lambda size, profile: True
    check.train = lambda p, procs, run: calls.append(f"train {procs}") or True
    check.resume = lambda p, src, run, a, b: calls.append(f"resume {a}->{b}") or True
    check.generate = lambda p, run, source: calls.append(f"generate {run.name}") or True
    check.all()
    assert calls == expected and not [c for c in check.cases if c["status"] == "skipped"]
