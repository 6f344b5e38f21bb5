"""Set up engine and Check Engine in the real bpy module: refusals shown in the preferences, the CPU build offered,
and, on Blender 5.2 (Python 3.13, which cannot host the engine), a real end-to-end set-up: the add-on's own job,
driven through its pure poll, builds the engine's environment on a Python 3.11 found on this machine from the real
requirements, Check Engine reports it working, Extract Pose runs through it, and a second set-up reuses it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from addon_fixtures import ADDON, CLIP, _CheckingLayout, _compat, _last_job, _wait, addon, scene  # noqa: F401
from conftest import ENGINE_PYTHON

pytestmark = pytest.mark.blender
bpy = pytest.importorskip("bpy")
SETUP_TIMEOUT_S = 1500  # CI's budget for the first set-up (about 4 minutes here, pip reusing this machine's wheels)


def _prefs():
    return bpy.context.preferences.addons[ADDON].preferences


def _draw_prefs() -> list:
    log: list = []
    prefs = _prefs()

    class Proxy:  # the preferences, drawn into a checking layout
        layout = _CheckingLayout(log)

        def __getattr__(self, name):
            return getattr(prefs, name)

    type(prefs).draw(Proxy(), bpy.context)
    return log


def test_set_up_refuses_bad_pythons_and_builds_in_the_preferences(addon, tmp_path, monkeypatch):
    prefs = _prefs()
    venv = tmp_path / "engine env"
    with pytest.raises(RuntimeError, match="is Blender's own Python: EDN never installs packages into it"):
        bpy.ops.edn.setup_engine(base_python=sys.executable, venv_dir=str(venv))
    assert prefs.check_report.startswith("Set-up refused: cannot use the Base Python:")
    with pytest.raises(RuntimeError, match=r"cannot use the Base Python: .*nowhere/python3 does not exist"):
        bpy.ops.edn.setup_engine(base_python=str(tmp_path / "nowhere" / "python3"), venv_dir=str(venv))
    assert not venv.exists()  # refused before anything was made
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: no NVIDIA driver
    prefs.engine_mode = "VENV"
    try:
        with pytest.raises(RuntimeError, match="the CUDA build was asked for, but no NVIDIA driver was found"):
            bpy.ops.edn.setup_engine(torch_build="CUDA", venv_dir=str(venv))
        assert prefs.offer_cpu
        log = _draw_prefs()
        assert [x for x in log if x[0] == "operator" and x[1] == "edn.setup_engine"] == [
            ("operator", "edn.setup_engine")] * 2  # Set up Engine, and Set up with the CPU Build
        assert ("prop", "torch_build") in log and ("prop", "torch_index") in log
        assert any("no NVIDIA driver was found" in x[1] for x in log if x[0] == "label")
    finally:
        prefs.engine_mode, prefs.custom_python, prefs.offer_cpu = "CUSTOM", ENGINE_PYTHON, False


def test_set_up_respects_blenders_online_access(addon, tmp_path):
    system = bpy.context.preferences.system
    system.use_online_access = False
    with pytest.raises(RuntimeError, match="Blender's online access is off: allow it in Preferences > System > "
                                           "Network"):
        bpy.ops.edn.setup_engine(venv_dir=str(tmp_path / "env"), torch_build="CPU")
    assert not addon.jobs.MANAGER.active()


def test_an_unwritable_environment_folder_is_refused(addon):
    if not Path("/sys").is_dir() or sys.platform != "linux":
        pytest.skip("needs a folder that refuses new folders (Linux's /sys)")
    with pytest.raises(RuntimeError, match="the folder /sys/edn engine cannot be written .*: choose an Environment "
                                           "Folder you can write to"):
        bpy.ops.edn.setup_engine(venv_dir="/sys/edn engine", torch_build="CPU")


def test_check_report_names_the_device_and_warns_about_an_unused_gpu(addon):
    report = addon.ops_engine.check_report
    cuda = {"device": "cuda", "device_name": "NVIDIA H200", "total_memory_gb": 139.8, "free_memory_gb": 138.9,
            "torch": "2.13.0+cu128", "mediapipe": "0.10.21", "python_version": "3.11.7", "python": "/e/bin/python"}
    assert report(cuda, ["NVIDIA H200, 143771 MiB"]).split("\n") == [
        "Device: CUDA, NVIDIA H200 (139.8 GB total, 138.9 GB free)",
        "PyTorch 2.13.0+cu128, MediaPipe 0.10.21, Python 3.11.7 (/e/bin/python)"]
    cpu = {**cuda, "device": "cpu", "device_name": "x86_64", "torch": "2.13.0+cpu"}
    del cpu["total_memory_gb"]
    lines = report(cpu, ["NVIDIA H200, 143771 MiB"]).split("\n")
    assert lines[0] == "Device: CPU, x86_64 (138.9 GB free)"
    assert lines[2].startswith("Warning: an NVIDIA GPU is present (NVIDIA H200, 143771 MiB) but the engine sees none")
    assert len(report(cpu, []).split("\n")) == 2


def _cut_clip(vpy: Path, out: Path, frames: int = 10) -> Path:
    """The first frames of the test clip as their own file, cut with the FFmpeg the new environment ships."""
    ffmpeg = subprocess.run([str(vpy), "-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"],
                            capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(CLIP), "-frames:v", str(frames), "-an", str(out)],
                   check=True)
    return out


def _run_setup(addon, venv: Path) -> tuple["object", float, set[str]]:
    """Press Set up engine and poll its job (as the UI's timer does) to the end: the job, seconds, statuses seen."""
    t0 = time.monotonic()
    assert bpy.ops.edn.setup_engine(venv_dir=str(venv)) == {"FINISHED"}
    job = _last_job(addon)
    assert job.kind == "setup" and job.lane == addon.jobs.SETUP
    seen = set()
    while not job.finished and time.monotonic() - t0 < SETUP_TIMEOUT_S:
        addon.jobs.MANAGER.poll_all()
        seen.add(job.status)
        time.sleep(0.2)
    addon.jobs.MANAGER.poll_all()
    return job, time.monotonic() - t0, seen


@pytest.mark.skipif(bpy.app.version[:2] < (5, 2), reason="the end-to-end set-up runs from Blender 5.2 (Python 3.13)")
def test_set_up_engine_end_to_end_from_blender_52(addon, scene, tmp_path):
    assert sys.version_info[:2] >= (3, 13)  # Blender's own Python cannot host the engine's pins
    prefs = _prefs()
    venv = tmp_path / "engine env ü"
    # PyPI's torch as pip is configured here (its local CPU wheel): PyTorch's own index cannot be reached here
    prefs.torch_build, prefs.torch_index, prefs.base_python = "AUTO", "", ""
    bpy.context.preferences.system.use_online_access = True  # Set up engine downloads: Blender must allow it
    try:
        job, first_s, seen = _run_setup(addon, venv)
        assert job.state == "DONE", job.error
        print(f"\nfirst set-up: {first_s:.0f} s ({len(job.steps)} steps)")
        assert {"Updating pip", "Installing MediaPipe", "Checking that the engine's packages import"} <= seen
        assert any(s.startswith("Installing PyTorch (CPU") for s in seen)
        stamp = addon.setup_plan.read_stamp(venv)
        assert stamp["python"].startswith("3.11.") and stamp["torch_build"] == "CPU"
        assert Path(stamp["base"]) != Path(sys.executable)
        assert prefs.engine_mode == "VENV" and Path(prefs.python()) == addon.engine.venv_python(venv)
        assert prefs.check_report.startswith(f"Engine environment ready: {venv} (Python 3.11.")

        assert bpy.ops.edn.check_engine() == {"FINISHED"}
        check = _wait(addon, _last_job(addon), timeout=300)
        assert check.state == "DONE", check.error
        r = check.result
        assert r["python_version"].startswith("3.11.") and Path(r["python"]).parent.parent == venv
        assert r["mediapipe"] == "0.10.21" and r["torch"].startswith("2.13.0") and r["device"] == "cpu"
        assert prefs.check_report.startswith("Device: CPU")

        clip = _cut_clip(addon.engine.venv_python(venv), tmp_path / "first ten.mp4")
        sed = scene.sequence_editor_create()
        strip = _compat().top_strips(sed).new_movie("ten", str(clip), 1, 1)
        assert _compat().strip_duration(strip) == 10
        assert bpy.ops.edn.extract_pose(strip=strip.name, role="TARGET") == {"FINISHED"}
        pose = _wait(addon, _last_job(addon), timeout=600)
        assert pose.state == "DONE", pose.error
        assert pose.steps[0][0] == str(addon.engine.venv_python(venv))
        with np.load(scene.edn.target_track) as track:
            assert track["body"].shape[0] == 10 and (track["body"][..., 2] > 0).any(axis=1).all()

        job2, second_s, _ = _run_setup(addon, venv)
        print(f"second set-up (reused): {second_s:.1f} s")
        assert job2.state == "DONE", job2.error
        assert len(job2.steps) == 1 and second_s < 30  # reused: only checks that the packages import
    finally:
        prefs.engine_mode, prefs.custom_python = "CUSTOM", ENGINE_PYTHON
        prefs.torch_index = addon.torch_builds.PYTORCH_INDEX
        bpy.context.preferences.system.use_online_access = False
