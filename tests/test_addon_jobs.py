"""The add-on's job runner and engine commands, without Blender's UI: `jobs.py` and `engine.py` import no bpy.

Jobs run real subprocesses (small Python scripts speaking the engine's JSON event protocol); `poll()` is called
in a loop, as the UI's timer does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from addon_import import PACKAGE, addon_module

pytestmark = pytest.mark.blender
jobs = addon_module("jobs")
engine = addon_module("engine")


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


def test_events_are_read_with_the_bundled_engine_reader():
    assert jobs.parse_event.__module__ == f"{PACKAGE}.vendor.edn_engine.events"
    assert jobs.parse_event('{"event": "done", "n": 1}') == {"event": "done", "n": 1}
    assert jobs.parse_event('{"no": "event"}') is None and jobs.parse_event("plain") is None


def test_job_runs_steps_and_calls_back(tmp_path):
    argv = _script(tmp_path, """
n = int(sys.argv[1])
for i in range(n):
    print(json.dumps({"event": "progress", "done": i + 1, "total": n, "stage": "s"}), flush=True)
print("a plain line")
print('{"event": "log", "message": "not json')
print(json.dumps({"event": "done", "n": n}), flush=True)
""")
    seen = []
    job = _job(tmp_path, [argv + ["2"], argv + ["3"]], on_end=[lambda j: seen.append(("first", j.state, j.result)),
                                                               lambda j: seen.append(("second", j.state))])
    manager = jobs.JobManager()
    manager.submit(job)
    manager.wait(job, timeout=60)
    manager.poll_all()  # polling a finished job again must not call its callbacks twice
    assert job.state == jobs.DONE and job.result == {"n": 3} and job.fraction == 1.0
    assert seen == [("first", jobs.DONE, {"n": 3}), ("second", jobs.DONE)]
    assert job.last_lines.count("a plain line") == 2  # plain and malformed lines are logged, not events
    assert job.last_lines.count('{"event": "log", "message": "not json') == 2
    log = job.log_path.read_text(encoding="utf-8")
    assert log.count("a plain line") == 2 and "fake engine ü.py" in log


def test_a_failing_end_callback_fails_the_job_and_the_others_still_run(tmp_path):
    argv = _script(tmp_path, "print(json.dumps({'event': 'done'}), flush=True)\n")
    seen = []

    def broken(job):
        raise KeyError("strip")

    job = _job(tmp_path, [argv], on_end=[broken, lambda j: seen.append((j.state, j.error))])
    manager = jobs.JobManager()
    manager.wait(manager.submit(job), timeout=60)
    assert job.state == jobs.FAILED and "test finished but its result could not be used: 'strip'" in job.error
    assert seen == [(jobs.FAILED, job.error)] and str(job.log_path) in job.error


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


def test_one_job_at_a_time_per_lane(tmp_path):
    argv = _script(tmp_path, "time.sleep(1.0)\nprint(json.dumps({'event': 'done'}), flush=True)\n")
    manager = jobs.JobManager()
    a = manager.submit(_job(tmp_path, [argv], kind="train"))
    b = manager.submit(_job(tmp_path, [argv], kind="generate"))
    c = manager.submit(_job(tmp_path, [argv], kind="check", lane=jobs.CHECK))
    assert (a.state, b.state, c.state) == (jobs.RUNNING, jobs.QUEUED, jobs.RUNNING)
    assert manager.active(kind="train") == [a] and manager.active(lane=jobs.ENGINE) == [a, b]
    manager.wait(a, timeout=30)
    assert b.state == jobs.RUNNING and b.started_wall >= a.started_wall + 1.0  # started only once a had ended
    manager.wait(b, timeout=30)
    manager.wait(c, timeout=30)
    assert all(j.state == jobs.DONE for j in (a, b, c)) and not manager.active()
    with pytest.raises(ValueError, match="unknown job lane 'cpu'"):
        _job(tmp_path, [argv], lane="cpu")
    manager.shutdown()


def test_engine_commands_are_argument_lists(tmp_path):
    odd = tmp_path / "Projekt ü 舞" / "pose.npz"
    cmd = engine.pose_extract("/py", Path("/v/clip 1.mp4"), odd, 3, 7, mattes=odd.parent / "mattes")
    assert cmd[:5] == ["/py", "-m", "edn_engine", "pose", "extract"] and cmd[-1] == "--json"
    assert str(odd) in cmd and cmd[cmd.index("--start") + 1] == "3" and cmd[cmd.index("--end") + 1] == "7"
    train = engine.train("/py", Path("/d"), Path("/r"), "cpu", minutes=2.5, resume=True, device="CUDA")
    assert train[train.index("--minutes") + 1] == "2.5" and "--resume" in train and "cuda" in train
    assert "--perceptual" not in train  # the profile decides unless the artist chose
    chosen = engine.train("/py", Path("/d"), Path("/r"), "cpu", minutes=2.5, steps=10, perceptual="vgg19")
    assert "--minutes" not in chosen and chosen[chosen.index("--perceptual") + 1] == "vgg19"
    drive = engine.pose_drive("/py", Path("/s.npz"), Path("/t.npz"), odd, odd.with_suffix(".json"))
    assert drive[3:6] == ["pose", "drive", "/s.npz"] and drive[drive.index("--target") + 1] == "/t.npz"
    assert drive[drive.index("-o") + 1] == str(odd) and drive[drive.index("--params") + 1].endswith("pose.json")
    transfer = engine.transfer("/py", Path("/s.npz"), Path("/run"), odd.parent, "body")
    assert transfer[3:] == ["transfer", "--source", "/s.npz", "--run", "/run", "-o", str(odd.parent),
                            "--hands", "body", "--json"]
    generate = engine.generate("/py", Path("/run"), odd, odd.parent, "CPU", "refined")
    assert generate[3:] == ["generate", "/run", str(odd), "-o", str(odd.parent), "--device", "cpu",
                            "--hands", "refined", "--json"]
    env = engine.engine_env("MPS")
    assert env["PYTHONPATH"] == str(engine.VENDOR_DIR) and env["EDN_DEVICE"] == "mps"


def test_an_explainer_words_a_failed_step_and_labels_name_the_steps(tmp_path):
    argv = _script(tmp_path, "print('ERROR: No matching distribution found for numpy==1.26.4', flush=True)\n"
                             "print('hint: See above for details.', flush=True)\nsys.exit(1)\n")
    go = tmp_path / "go"  # the first step waits for it: its label is read while it runs, whatever the load
    ok = [sys.executable, "-c", f"import pathlib, time\nwhile not pathlib.Path({str(go)!r}).exists(): time.sleep(0.01)"]
    seen = []

    def explain(job, code):
        seen.append((job.step, code, job.step_label))
        return f"step {job.step_label!r} failed with {code}"

    manager = jobs.JobManager()
    job = manager.submit(_job(tmp_path, [ok, argv], step_labels=["first", "second"], explain=explain))
    assert job.status == "first"
    go.touch()
    manager.wait(job, timeout=60)
    assert seen == [(1, 1, "second")] and job.error == f"step 'second' failed with 1 (log: {job.log_path})"
    # an explainer that has nothing to add leaves the generic message (the last output line)
    job = manager.wait(manager.submit(_job(tmp_path, [argv], explain=lambda j, c: None)), timeout=60)
    assert "exited with code 1: hint: See above for details." in job.error


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
