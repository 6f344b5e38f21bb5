"""The add-on's job runner and engine commands, without Blender's UI: `jobs.py` and `engine.py` import no bpy.

Jobs run real subprocesses (small Python scripts speaking the engine's JSON event protocol); `poll()` is called
in a loop, as the UI's timer does.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.blender


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"edn_addon_{name}", REPO / "blender_addon" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


jobs = _load("jobs")
engine = _load("engine")


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake engine ü.py"
    path.write_text("import json, sys, time, signal\n" + body, encoding="utf-8")
    return [sys.executable, str(path)]


def _job(tmp_path, steps, **kw):
    return jobs.Job(label="test", steps=steps, log_path=tmp_path / "logs" / "job.log", **kw)


def test_apply_event_is_pure_state():
    job = jobs.Job(label="x", steps=[["a"], ["b"]], log_path=Path("unused.log"))
    jobs.apply_event(job, {"event": "progress", "done": 5, "total": 10, "stage": "train",
                           "losses": {"G": 1.5, "D": 0.25}, "eta_s": 12.0})
    assert (job.done, job.total, job.stage) == (5, 10, "train") and job.fraction == pytest.approx(0.25)
    assert job.loss_text == "G 1.5, D 0.25" and job.eta_s == 12.0
    jobs.apply_event(job, {"event": "preview", "path": "/p/preview.png"})
    jobs.apply_event(job, {"event": "log", "message": "hello"})
    assert job.preview_path == "/p/preview.png" and job.last_lines == ["hello"]
    job.state = jobs.RUNNING
    jobs.apply_event(job, {"event": "_exit", "code": 0})
    assert job.state == jobs.RUNNING and job.step == 1 and job.fraction == pytest.approx(0.5)
    jobs.apply_event(job, {"event": "error", "message": "frame 7: bad"})
    jobs.apply_event(job, {"event": "_exit", "code": 2})
    assert job.state == jobs.FAILED and job.error.startswith("frame 7: bad (log: ")


def test_job_runs_steps_and_calls_back(tmp_path):
    argv = _script(tmp_path, """
n = int(sys.argv[1])
for i in range(n):
    print(json.dumps({"event": "progress", "done": i + 1, "total": n, "stage": "s"}), flush=True)
print("a plain line")
print(json.dumps({"event": "done", "n": n}), flush=True)
""")
    seen = []
    job = _job(tmp_path, [argv + ["2"], argv + ["3"]], on_done=lambda j: seen.append(("done", j.result)),
               on_end=lambda j: seen.append(("end", j.state)))
    manager = jobs.JobManager()
    manager.submit(job)
    manager.wait(job, timeout=60)
    assert job.state == jobs.DONE and job.result == {"n": 3} and job.fraction == 1.0
    assert seen == [("done", {"n": 3}), ("end", jobs.DONE)]
    log = job.log_path.read_text(encoding="utf-8")
    assert log.count("a plain line") == 2 and "fake engine ü.py" in log


def test_failure_without_error_event_names_the_last_line_and_log(tmp_path):
    argv = _script(tmp_path, "print('Traceback: something broke', flush=True)\nsys.exit(3)\n")
    manager = jobs.JobManager()
    job = manager.wait(manager.submit(_job(tmp_path, [argv])), timeout=60)
    assert job.state == jobs.FAILED
    assert "exited with code 3: Traceback: something broke" in job.error and str(job.log_path) in job.error


def test_missing_modules_are_explained(tmp_path):
    argv = _script(tmp_path, "print(\"ModuleNotFoundError: No module named 'torch'\", flush=True)\nsys.exit(1)\n")
    manager = jobs.JobManager()
    job = manager.wait(manager.submit(_job(tmp_path, [argv])), timeout=60)
    assert "lacks the engine's requirements (no module 'torch')" in job.error and "Set up engine" in job.error


def test_missing_program_fails_cleanly(tmp_path):
    manager = jobs.JobManager()
    job = manager.submit(_job(tmp_path, [[str(tmp_path / "no python here"), "-m", "edn_engine"]]))
    assert job.state == jobs.FAILED and "does not exist" in job.error
    assert "no python here" in jobs.python_executable_ok(str(tmp_path / "no python here"))
    assert jobs.python_executable_ok(sys.executable) is None


def test_cancel_sends_sigterm_then_kills_after_grace(tmp_path, monkeypatch):
    graceful = _script(tmp_path, """
def stop(*_):
    print(json.dumps({"event": "log", "message": "saving checkpoint"}), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print(json.dumps({"event": "progress", "done": 1, "total": 100, "stage": "train"}), flush=True)
time.sleep(60)
""")
    manager = jobs.JobManager()
    job = manager.submit(_job(tmp_path, [graceful]))
    while job.done < 1:
        manager.poll_all()
        time.sleep(0.02)
    jobs.cancel(job)
    manager.wait(job, timeout=20)
    assert job.state == jobs.CANCELLED and "saving checkpoint" in job.last_lines

    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('{\"event\": \"log\", \"message\": \"up\"}', flush=True); time.sleep(60)"]
    monkeypatch.setattr(jobs, "CANCEL_GRACE_S", 0.3)
    job = manager.submit(_job(tmp_path, [stubborn]))
    while not job.last_lines:
        manager.poll_all()
        time.sleep(0.02)
    t0 = time.monotonic()
    jobs.cancel(job)
    manager.wait(job, timeout=20)
    assert job.state == jobs.CANCELLED and time.monotonic() - t0 < 10


def test_one_job_at_a_time_per_device(tmp_path):
    argv = _script(tmp_path, "time.sleep(0.3)\nprint(json.dumps({'event': 'done'}), flush=True)\n")
    manager = jobs.JobManager()
    a = manager.submit(_job(tmp_path, [argv], device="cpu"))
    b = manager.submit(_job(tmp_path, [argv], device="cpu"))
    c = manager.submit(_job(tmp_path, [argv], device="check"))
    assert (a.state, b.state, c.state) == (jobs.RUNNING, jobs.QUEUED, jobs.RUNNING)
    manager.wait(a, timeout=30)
    assert b.state in (jobs.RUNNING, jobs.DONE)
    manager.wait(b, timeout=30)
    manager.wait(c, timeout=30)
    assert all(j.state == jobs.DONE for j in (a, b, c))
    manager.shutdown()


def test_engine_commands_are_argument_lists(tmp_path):
    odd = tmp_path / "Projekt ü 舞" / "pose.npz"
    cmd = engine.pose_extract("/py", Path("/v/clip 1.mp4"), odd, 3, 7, mattes=odd.parent / "mattes")
    assert cmd[:5] == ["/py", "-m", "edn_engine", "pose", "extract"] and cmd[-1] == "--json"
    assert str(odd) in cmd and cmd[cmd.index("--start") + 1] == "3" and cmd[cmd.index("--end") + 1] == "7"
    train = engine.train("/py", Path("/d"), Path("/r"), "cpu", minutes=2.5, resume=True, device="CUDA")
    assert train[train.index("--minutes") + 1] == "2.5" and "--resume" in train and "cuda" in train
    assert "--minutes" not in engine.train("/py", Path("/d"), Path("/r"), "cpu", minutes=2.5, steps=10)
    env = engine.engine_env("MPS")
    assert env["PYTHONPATH"] == str(engine.VENDOR_DIR) and env["EDN_DEVICE"] == "mps"


def test_setup_steps_make_a_venv_and_never_touch_blenders_python(tmp_path):
    venv = tmp_path / "engine venv ü"
    steps = engine.setup_steps("/usr/bin/python3", venv)
    assert steps[0] == ["/usr/bin/python3", "-m", "venv", str(venv)]
    vpy = str(engine.venv_python(venv))
    assert all(step[0] == vpy and step[1:3] == ["-m", "pip"] for step in steps[1:])
    assert any("engine.txt" in " ".join(s) for s in steps) and "--no-deps" in steps[-1]
    # a base Python that does not exist fails the set-up job with a clear message, before pip
    manager = jobs.JobManager()
    job = manager.submit(_job(tmp_path, engine.setup_steps(str(tmp_path / "missing python"), venv)))
    assert job.state == jobs.FAILED and "missing python does not exist" in job.error
    assert not venv.exists()


def test_shutdown_stops_running_engines(tmp_path):
    """Disabling the add-on (or quitting) must not leave engine processes behind."""
    argv = [sys.executable, "-c", "import time; print('{\"event\": \"log\", \"message\": \"up\"}', flush=True); "
            "time.sleep(60)"]
    manager = jobs.JobManager()
    job = manager.submit(_job(tmp_path, [argv]))
    queued = manager.submit(_job(tmp_path, [argv]))
    while not job.last_lines:
        manager.poll_all()
        time.sleep(0.02)
    proc = job.proc
    manager.shutdown(timeout=5)
    assert proc.poll() is not None and queued.proc is None and not manager.jobs
