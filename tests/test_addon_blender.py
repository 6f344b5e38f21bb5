"""The add-on in the real bpy module, installed from the built zip the way a user installs it.

The engine really runs (as a subprocess, via the add-on's job runner) with the Python in $EDN_ENGINE_PYTHON, at
tiny sizes and short frame ranges. These tests run on bpy 5.0 (.venv), and 4.2, 4.5, 5.1 and 5.2 (.venv-bpy42 ...
.venv-bpy52; no torch there: nothing heavy is imported in-process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ENGINE_PYTHON

pytestmark = pytest.mark.blender
bpy = pytest.importorskip("bpy")
from addon_fixtures import (ADDON, CLIP, _addon_classes, _CheckingLayout, _compat, _last_job,  # noqa: F401
                            _movie_strip, _span, _strips, _wait, addon, scene)
from addon_rigs import _animate, _build_rig, _camera  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# install / enable / disable
# ----------------------------------------------------------------------------------------------------------------
def test_disable_and_reenable_leaves_no_classes(addon):
    ops = {"setup_engine", "check_engine", "extract_pose", "pose_from_armature", "normalize_pose",
           "render_figures", "train", "generate", "transfer", "cancel_job"}
    assert ops <= set(dir(bpy.ops.edn))
    assert hasattr(bpy.types.Scene, "edn")
    bpy.ops.preferences.addon_disable(module=ADDON)
    assert not hasattr(bpy.types.Scene, "edn")
    assert not _addon_classes()
    assert not bpy.app.timers.is_registered(addon.runner.tick)
    bpy.ops.preferences.addon_enable(module=ADDON)
    assert hasattr(bpy.types.Scene, "edn") and "EDN_PT_main" in dir(bpy.types)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.engine_mode, prefs.custom_python, prefs.device = "CUSTOM", ENGINE_PYTHON, "CPU"


def test_the_addon_reads_the_engine_it_bundles(addon):
    """Events, project paths and the skeleton come from vendor/edn_engine, the engine the add-on runs."""
    vendor = f"{ADDON}.vendor.edn_engine"
    assert addon.jobs.parse_event.__module__ == f"{vendor}.events"
    assert addon.paths.ProjectLayout.__module__ == f"{vendor}.layout"
    assert addon.armature_pose.skeleton.__name__ == f"{vendor}.pose.skeleton"


# ----------------------------------------------------------------------------------------------------------------
# engine jobs from the sequencer
# ----------------------------------------------------------------------------------------------------------------
def test_extract_render_save_reload(addon, scene, tmp_path):
    sc = scene
    strip = _movie_strip(sc)
    assert bpy.ops.edn.extract_pose(strip=strip.name, role="TARGET") == {"FINISHED"}
    job = _wait(addon, _last_job(addon))
    assert job.state == "DONE", job.error
    track = Path(sc.edn.target_track)
    project = Path(sc.edn.project_dir) / "dancer"  # the person's folder, in the engine's project layout
    assert track == project / "target" / "track.npz" and track.is_file() and sc.edn.target_strip == "dancer"
    data = np.load(track)
    assert data["body"].shape[0] == 4 and int(data["frame_start"]) == 3  # offset 3, 4 frames
    assert (data["body"][..., 2] > 0).any(axis=1).all()  # the person is found in every frame
    assert (project / "target" / "mattes").is_dir()

    sc.edn.source_kind, sc.edn.source_strip, sc.edn.source_track = "STRIP", "dancer", str(track)
    sc.edn.width, sc.edn.height = 64, 64
    stale = project / "figures" / "figure_000999.png"  # left by an earlier, longer run: not shown
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    os.utime(stale, (1e9, 1e9))
    assert bpy.ops.edn.render_figures() == {"FINISHED"}
    job = _wait(addon, _last_job(addon))
    assert job.state == "DONE", job.error
    fig = _strips(sc).get("EDN Stick Figures")
    assert fig is not None and fig.type == "IMAGE"
    assert _span(fig) == _span(strip) == (13, 17)  # content at 10, 3 frames trimmed, 4 shown
    assert fig.channel == 3 and len(fig.elements) == 4
    assert Path(sc.edn.figures_dir) == project / "figures"
    drawn = {p.name for p in Path(sc.edn.figures_dir).glob("figure_*.png")}
    assert {e.filename for e in fig.elements} == {f"figure_{n:06d}.png" for n in range(3, 7)} <= drawn

    blend = tmp_path / "saved ü.blend"
    name = sc.name
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    sc2 = bpy.data.scenes[name]
    assert sc2.edn.target_track == str(track) and sc2.edn.figures_dir
    assert _strips(sc2).get("EDN Stick Figures").channel == 3


def test_bad_strips_and_scenes(addon, scene):
    sc = scene
    with pytest.raises(RuntimeError, match="has no sequencer"):
        bpy.ops.edn.extract_pose(strip="dancer")
    strips = _compat().top_strips(sc.sequence_editor_create())
    sound_path = Path(tempfile.mkdtemp()) / "beep.wav"
    _write_wav(sound_path)
    try:
        strips.new_sound("music", str(sound_path), 1, 1)
        kind = "sound"
    except RuntimeError:  # the bpy 4.2 wheel is built without audio: use another non-media strip
        strips.new_effect("music", "COLOR", 1, frame_start=1, frame_end=10)
        kind = "color"
    with pytest.raises(RuntimeError, match=f"'music' is a {kind} strip: choose a movie or image strip"):
        bpy.ops.edn.extract_pose(strip="music")
    missing = strips.new_movie("gone", str(CLIP), 2, 1)
    missing.filepath = str(Path(tempfile.mkdtemp()) / "moved away.mp4")
    with pytest.raises(RuntimeError, match="movie of strip 'gone' is missing"):
        bpy.ops.edn.extract_pose(strip="gone")
    with pytest.raises(RuntimeError, match="no strip named 'nope'"):
        bpy.ops.edn.extract_pose(strip="nope")
    with pytest.raises(RuntimeError, match="no source pose track"):
        bpy.ops.edn.normalize_pose()
    with pytest.raises(RuntimeError, match="no training run"):
        bpy.ops.edn.generate(track=str(CLIP))
    with pytest.raises(RuntimeError, match="Train on the target first"):  # the poll explains
        bpy.ops.edn.transfer()
    with pytest.raises(RuntimeError, match="No engine job is running"):
        bpy.ops.edn.cancel_job()


def test_unsaved_blend_needs_a_project_folder(addon):
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    assert not bpy.data.filepath and sc.edn.project_dir == "//edn/"
    with pytest.raises(RuntimeError, match="not saved yet"):
        bpy.ops.edn.extract_pose(strip=_movie_strip(sc).name)
    assert not addon.jobs.MANAGER.active()


def _write_wav(path: Path) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)


def test_engine_python_missing_or_without_torch(addon, scene, tmp_path):
    sc = scene
    prefs = bpy.context.preferences.addons[ADDON].preferences
    strip = _movie_strip(sc)
    try:
        prefs.custom_python = str(tmp_path / "no such python")
        with pytest.raises(RuntimeError, match="does not exist"):
            bpy.ops.edn.extract_pose(strip=strip.name)
        with pytest.raises(RuntimeError, match="does not exist"):
            bpy.ops.edn.check_engine()
        assert "does not exist" in prefs.check_report
        bare = tmp_path / "bare venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
        prefs.custom_python = str(addon.engine.venv_python(bare))
        assert bpy.ops.edn.check_engine() == {"FINISHED"}
        job = _wait(addon, _last_job(addon), timeout=60)
        assert job.state == "FAILED" and "Set up engine" in job.error
        assert re.search(r"PyTorch is not installed|lacks the engine's requirements \(no module 'numpy'\)", job.error)
        assert job.error in prefs.check_report
    finally:
        prefs.custom_python = ENGINE_PYTHON
    assert bpy.ops.edn.check_engine() == {"FINISHED"}
    job = _wait(addon, _last_job(addon), timeout=120)
    assert job.state == "DONE", job.error
    assert job.result["torch"] and job.result["device"] == "cpu" and job.result["free_memory_gb"] > 0
    assert "PyTorch" in prefs.check_report


def test_failing_engine_command_surfaces_its_message(addon, scene):
    sc = scene
    bad = Path(sc.edn.project_dir) / "not a track.npz"
    bad.write_bytes(b"this is not a pose track")
    sc.edn.width, sc.edn.height = 64, 64
    with pytest.raises(RuntimeError, match="choose the target person's strip first"):  # whose folder to draw in
        bpy.ops.edn.render_figures(track=str(bad))
    assert not addon.jobs.MANAGER.active()
    sc.edn.target_strip = "dancer"
    assert bpy.ops.edn.render_figures(track=str(bad)) == {"FINISHED"}  # the engine finds the problem
    tick = addon.runner.tick  # the UI's timer callback: registered, polls, and stops when all is done
    assert bpy.app.timers.is_registered(tick)
    assert tick() == addon.runner.TIMER_INTERVAL
    job = _wait(addon, _last_job(addon), timeout=120)
    assert tick() is None
    assert job.state == "FAILED"
    assert "not a readable pose track" in job.error and str(job.log_path) in job.error
    assert sc.edn.last_error == job.error and Path(sc.edn.last_log).is_file()


def test_train_cancel_resume_generate(addon, scene):
    """Train a tiny model from the Sequencer, cancel it (checkpoint), resume it, then generate an RGBA strip."""
    sc = scene
    strip = _movie_strip(sc, frames=5)
    sc.edn.target_strip = strip.name
    s = sc.edn
    s.width, s.height, s.profile, s.train_steps = 64, 64, "cpu", 400
    assert s.perceptual == "PROFILE"  # the cpu profile's own choice (no VGG19) stands: nothing is sent
    assert bpy.ops.edn.extract_pose(strip=strip.name, role="TARGET") == {"FINISHED"}
    assert _wait(addon, _last_job(addon)).state == "DONE"
    assert bpy.ops.edn.train() == {"FINISHED"}
    job = _last_job(addon)
    assert job.kind == "train" and len(job.steps) == 2  # dataset build, then train
    assert [step[3] for step in job.steps] == ["dataset", "train"] and "--perceptual" not in job.steps[1]
    with pytest.raises(RuntimeError, match="training job is running"):
        bpy.ops.edn.train()
    deadline = time.monotonic() + 240
    while not (job.step == 1 and job.done >= 1) and not job.finished and time.monotonic() < deadline:
        addon.jobs.MANAGER.poll_all()
        time.sleep(0.05)
    assert job.state == "RUNNING" and job.stage == "train", (job.state, job.error)
    assert bpy.ops.edn.cancel_job(job_id=job.id) == {"FINISHED"}
    _wait(addon, job, timeout=60)
    assert job.state == "CANCELLED"
    run_dir = Path(s.run_dir)
    assert run_dir.is_dir() and list(run_dir.rglob("*.pt")), "cancel must leave a checkpoint"
    stopped_at = job.done
    assert job.result["stopped"] == "signal" and job.result["step"] >= stopped_at >= 1

    assert bpy.ops.edn.train(resume=True, steps=job.result["step"] + 1) == {"FINISHED"}
    job2 = _wait(addon, _last_job(addon))
    assert job2.state == "DONE", job2.error
    assert len(job2.steps) == 1 and "--resume" in job2.steps[0]  # the dataset is reused
    assert job2.result["step"] == job.result["step"] + 1
    assert s.last_loss

    s.source_kind, s.source_strip, s.source_track = "STRIP", strip.name, s.target_track
    assert bpy.ops.edn.generate() == {"FINISHED"}
    job3 = _wait(addon, _last_job(addon))
    assert job3.state == "DONE", job3.error
    assert job3.steps[0][job3.steps[0].index("--hands") + 1] == "training"  # the default: the training hands
    res = _strips(sc).get("EDN Result")
    assert res is not None and res.blend_type == "ALPHA_OVER" and len(res.elements) == 5
    assert _span(res) == _span(strip) and res.channel == strip.channel + 1
    img = bpy.data.images.load(str(Path(s.output_dir) / res.elements[0].filename))
    # trained at 64x64, handed back at the footage's 414x540, so the strip lines up with the source strip
    assert img.channels == 4 and tuple(img.size) == (414, 540)

    # the same run driven by a rigged character: Transfer is the engine's own chain (`edn transfer --run`)
    obj = _build_rig(sc)
    _camera(sc)
    _animate(sc, obj)
    assert bpy.ops.edn.pose_from_armature(armature=obj.name) == {"FINISHED"}
    project = Path(s.project_dir) / strip.name
    assert Path(s.source_track) == project / "source" / "track.npz"
    s.hands = "body"  # the artist's choice reaches the engine, which knows every choice the add-on offers
    assert [item[0] for item in addon.properties.HANDS] == list(addon.paths.engine_module("layout").HANDS)
    assert bpy.ops.edn.transfer() == {"FINISHED"}
    job4 = _wait(addon, _last_job(addon))
    assert job4.state == "DONE", job4.error
    (cmd,) = job4.steps
    assert cmd[3] == "transfer" and cmd[cmd.index("--run") + 1] == s.run_dir and "--target" not in cmd
    assert cmd[cmd.index("--hands") + 1] == "body"
    assert cmd[cmd.index("--source") + 1] == s.source_track and cmd[cmd.index("-o") + 1] == str(project)
    res = _strips(sc).get("EDN Result")
    assert (*_span(res), res.channel) == (1, 4, 1) and len(res.elements) == 3
    assert Path(s.normalized_track) == project / "driving.npz" and Path(s.normalized_track).is_file()
    assert Path(s.output_dir) == project / "frames" and Path(job4.result["preview"]).is_file()

    # Normalize alone runs the engine's `edn pose drive` (clean + normalize) into the same project file
    s.normalized_track = ""
    assert bpy.ops.edn.normalize_pose() == {"FINISHED"}
    job5 = _wait(addon, _last_job(addon))
    assert job5.state == "DONE", job5.error
    assert job5.steps[0][3:6] == ["pose", "drive", s.source_track]
    assert Path(s.normalized_track) == project / "driving.npz" and (project / "driving.json").is_file()




def test_sequencer_scene_other_than_context_scene(addon, scene, tmp_path):
    """Blender 5.0: the Sequencer shows the workspace's sequencer scene, which may differ from the context scene."""
    ws = bpy.context.workspace
    if not hasattr(ws, "sequencer_scene"):
        pytest.skip("Blender before 5.0 has no separate sequencer scene")
    edit = bpy.data.scenes.new("EDN edit")
    edit.edn.project_dir = scene.edn.project_dir
    edit.edn.target_strip = "dancer"
    _movie_strip(edit)
    ws.sequencer_scene = edit
    prefs = bpy.context.preferences.addons[ADDON].preferences
    try:
        assert bpy.context.scene == scene and bpy.context.sequencer_scene == edit
        prefs.custom_python = str(tmp_path / "absent python")
        with pytest.raises(RuntimeError, match="absent python does not exist"):  # the strip itself was found
            bpy.ops.edn.extract_pose(strip="dancer")
        obj = _build_rig(scene)
        _camera(scene)
        scene.frame_start, scene.frame_end = 1, 2
        assert bpy.ops.edn.pose_from_armature(armature=obj.name) == {"FINISHED"}
        assert edit.edn.source_kind == "ARMATURE" and Path(edit.edn.source_track).is_file()
        assert Path(edit.edn.source_track) == Path(edit.edn.project_dir) / "dancer" / "source" / "track.npz"
        assert not scene.edn.source_track
    finally:
        prefs.custom_python = ENGINE_PYTHON
        ws.sequencer_scene = None


def test_panels_draw_every_stage(addon, scene, tmp_path):
    sc = scene
    strip = _movie_strip(sc)
    sc.edn.target_strip = strip.name
    panels, jobs = addon.panels, addon.jobs
    running = jobs.Job(label="Train", steps=[["x"]], log_path=tmp_path / "a.log", state=jobs.RUNNING,
                       done=3, total=10, extra={"losses": {"G": 0.5}, "eta_s": 90.0})
    failed = jobs.Job(label="Generate", steps=[["x"]], log_path=tmp_path / "b.log", state=jobs.FAILED,
                      error="frame 7: the run's checkpoint is damaged (log: b.log)")
    preview = bpy.data.images.new("preview", 8, 8)
    preview.filepath_raw = str(tmp_path / "preview_00000003.png")
    preview.file_format = "PNG"
    preview.save()
    running.preview_path = preview.filepath_raw
    jobs.MANAGER.jobs += [running, failed]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    try:
        for kind in ("STRIP", "ARMATURE"):
            sc.edn.source_kind = kind
            sc.edn.bone_map = "CUSTOM" if kind == "ARMATURE" else "AUTO"
            log = []
            ctx = type("Ctx", (), {"scene": sc, "sequencer_scene": sc})()
            for panel in (bpy.types.EDN_PT_main, bpy.types.EDN_PT_jobs):
                panel.draw(type("P", (), {"layout": _CheckingLayout(log)})(), ctx)
            ops = {x[1] for x in log if x[0] == "operator"}
            assert {"edn.extract_pose", "edn.train", "edn.normalize_pose", "edn.render_figures", "edn.generate",
                    "edn.transfer", "edn.cancel_job"} <= ops
            assert ("progress", "30%, 1.5 min left") in log and ("label", "loss G 0.5") in log
            assert any(x[0] == "icon" for x in log)  # the live training preview (icon ids are 0 without a UI)
            assert [tuple(p.image_size) for p in panels._previews.values()] == [(8, 8)]
            assert any("checkpoint is damaged" in x[1] for x in log if x[0] == "label")
            if kind == "ARMATURE":
                assert "edn.pose_from_armature" in ops and ("prop_search", "armature") in log
        prefs.check_report = "PyTorch 2 on cpu\nPython /x"
        setup = jobs.Job(label="Set up engine", steps=[["x"], ["y"]], log_path=tmp_path / "c.log",
                         state=jobs.RUNNING, kind="setup", lane=jobs.SETUP)
        jobs.MANAGER.jobs.append(setup)
        for mode in ("VENV", "CUSTOM"):
            prefs.engine_mode = mode
            log = []

            class Proxy:  # the preferences, with our checking layout
                layout = _CheckingLayout(log)

                def __getattr__(self, name):
                    return getattr(prefs, name)

            type(prefs).draw(Proxy(), bpy.context)
            assert ("operator", "edn.check_engine") in log and ("label", "Python /x") in log
            assert (("operator", "edn.setup_engine") in log) == (mode == "VENV")
            assert (("progress", "step 1/2") in log) == (mode == "VENV")
        jobs.MANAGER.jobs.remove(setup)
    finally:
        jobs.MANAGER.jobs.remove(running)
        jobs.MANAGER.jobs.remove(failed)
        prefs.engine_mode, prefs.custom_python = "CUSTOM", ENGINE_PYTHON


def test_job_ending_after_another_blend_was_opened_leaves_it_alone(addon, scene, tmp_path):
    sc = scene
    other = tmp_path / "other.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(other), check_existing=False, copy=True)
    track = Path(sc.edn.project_dir) / "broken.npz"
    track.write_bytes(b"not a track")
    sc.edn.target_strip = "dancer"
    assert bpy.ops.edn.render_figures(track=str(track)) == {"FINISHED"}
    job, name = _last_job(addon), sc.name
    bpy.ops.wm.open_mainfile(filepath=str(other))  # while the engine runs
    _wait(addon, job, timeout=120)
    assert job.state == "FAILED"
    reopened = bpy.data.scenes[name]  # same name, but another file's scene: nothing is written into it
    assert reopened.edn.last_error == "" and reopened.edn.last_log == ""
