"""The add-on in the real bpy module, installed from the built zip the way a user installs it.

The engine really runs (as a subprocess, via the add-on's job runner) with the Python in $EDN_ENGINE_PYTHON, at
tiny sizes and short frame ranges. These tests run on bpy 5.0 (.venv), 4.2 and 4.5 (.venv-bpy42, .venv-bpy45; no torch there:
nothing heavy is imported in-process).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ENGINE_PYTHON, REPO, VIDEO

pytestmark = pytest.mark.blender
bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

REPO_MODULE = "edn_test_repo"
ADDON = f"bl_ext.{REPO_MODULE}.edn"
CLIP = VIDEO / "ubc_91BjuE6irxS.mp4"


# ----------------------------------------------------------------------------------------------------------------
# fixtures: build the zip, install it into a temporary user repository, enable it
# ----------------------------------------------------------------------------------------------------------------
def _addon_classes() -> set[str]:
    return {name for name in dir(bpy.types) if name.startswith(("EDN_", "SEQUENCER_PT_edn"))}


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """The installed and enabled add-on package (its modules: ext.jobs, ext.operators, ...)."""
    out = tmp_path_factory.mktemp("ext")
    zip_path = out / "edn.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "-o", str(zip_path)],
                   check=True, capture_output=True, text=True)
    repo_dir = out / "repo"
    repo_dir.mkdir()
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="EDN test", module=REPO_MODULE, custom_directory=str(repo_dir), source="USER")
    before = _addon_classes()
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo=REPO_MODULE,
                                                    enable_on_install=True) == {"FINISHED"}
    assert (repo_dir / "edn" / "vendor" / "edn_engine" / "pose" / "track.py").is_file()
    assert ADDON in bpy.context.preferences.addons
    ext = sys.modules[ADDON]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.engine_mode = "CUSTOM"
    prefs.custom_python = ENGINE_PYTHON
    prefs.device = "CPU"
    user_dir = Path(bpy.utils.extension_path_user(ADDON))  # logs of jobs that have no project folder
    yield ext
    ext.jobs.MANAGER.shutdown()
    bpy.ops.preferences.addon_disable(module=ADDON)
    assert _addon_classes() == before
    repos.remove(repo)
    shutil.rmtree(user_dir.parent if user_dir.parent.name == REPO_MODULE else user_dir, ignore_errors=True)


@pytest.fixture
def scene(addon, tmp_path):
    """A fresh scene with a project folder whose path has a space and non-ASCII characters."""
    sc = bpy.data.scenes.new("EDN test")
    bpy.context.window.scene = sc  # the bpy module has one (hidden) window: make `sc` the context scene
    assert bpy.context.scene == sc
    project = tmp_path / "Projekt ü 舞"
    project.mkdir()
    sc.edn.project_dir = str(project) + os.sep
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 414, 540, 100
    yield sc
    addon.jobs.MANAGER.shutdown()


def _movie_strip(sc, first_frame=10, offset=3, frames=4, channel=2):
    sed = sc.sequence_editor_create()
    strips = sed.strips if hasattr(sed, "strips") else sed.sequences
    strip = strips.new_movie("dancer", str(CLIP), channel, first_frame)
    strip.frame_offset_start = offset
    strip.frame_final_duration = frames
    return strip


def _wait(addon, job, timeout=240):
    addon.jobs.MANAGER.wait(job, timeout=timeout)
    return job


def _last_job(addon):
    return addon.jobs.MANAGER.jobs[-1]


def _strips(sc):
    sed = sc.sequence_editor
    return sed.strips_all if hasattr(sed, "strips_all") else sed.sequences_all


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
    assert not bpy.app.timers.is_registered(addon.operators._tick)
    bpy.ops.preferences.addon_enable(module=ADDON)
    assert hasattr(bpy.types.Scene, "edn") and "EDN_PT_main" in dir(bpy.types)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.engine_mode, prefs.custom_python, prefs.device = "CUSTOM", ENGINE_PYTHON, "CPU"


# ----------------------------------------------------------------------------------------------------------------
# pose from an armature: projection against world_to_camera_view
# ----------------------------------------------------------------------------------------------------------------
MIXAMO_BONES = {  # name: (head, tail, parent)
    "Hips": ((0, 0, 1.0), (0, 0, 1.1), None),
    "Spine": ((0, 0, 1.1), (0, 0, 1.4), "Hips"),
    "Neck": ((0, 0, 1.45), (0, 0, 1.55), "Spine"),
    "Head": ((0, 0, 1.55), (0, 0, 1.78), "Neck"),
    "RightArm": ((-0.2, 0, 1.42), (-0.45, 0, 1.42), "Spine"),
    "RightForeArm": ((-0.45, 0, 1.42), (-0.7, 0, 1.42), "RightArm"),
    "RightHand": ((-0.7, 0, 1.42), (-0.8, 0, 1.42), "RightForeArm"),
    "LeftArm": ((0.2, 0, 1.42), (0.45, 0, 1.42), "Spine"),
    "LeftForeArm": ((0.45, 0, 1.42), (0.7, 0, 1.42), "LeftArm"),
    "LeftHand": ((0.7, 0, 1.42), (0.8, 0, 1.42), "LeftForeArm"),
    "RightUpLeg": ((-0.1, 0, 1.0), (-0.1, 0, 0.55), "Hips"),
    "RightLeg": ((-0.1, 0, 0.55), (-0.1, 0, 0.1), "RightUpLeg"),
    "RightFoot": ((-0.1, 0, 0.1), (-0.1, -0.12, 0.03), "RightLeg"),
    "RightToe_End": ((-0.1, -0.2, 0.0), (-0.1, -0.25, 0.0), "RightFoot"),
    "LeftUpLeg": ((0.1, 0, 1.0), (0.1, 0, 0.55), "Hips"),
    "LeftLeg": ((0.1, 0, 0.55), (0.1, 0, 0.1), "LeftUpLeg"),
    "LeftFoot": ((0.1, 0, 0.1), (0.1, -0.12, 0.03), "LeftLeg"),
    "LeftToe_End": ((0.1, -0.2, 0.0), (0.1, -0.25, 0.0), "LeftFoot"),
}
JOINT_BONES = {  # BODY_25 index: bone whose head is the joint
    1: "Neck", 2: "RightArm", 3: "RightForeArm", 4: "RightHand", 5: "LeftArm", 6: "LeftForeArm", 7: "LeftHand",
    8: "Hips", 9: "RightUpLeg", 10: "RightLeg", 11: "RightFoot", 12: "LeftUpLeg", 13: "LeftLeg", 14: "LeftFoot",
    19: "LeftToe_End", 22: "RightToe_End",
}


def _finger_bones() -> dict:
    """Mixamo finger chains for the left hand: <Finger>1..4, spread in a fan beyond the wrist."""
    bones = {}
    for f, finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Pinky")):
        z = 1.42 + 0.03 - 0.015 * f
        parent = "LeftHand"
        for k in range(1, 5):
            x0, x1 = 0.74 + 0.025 * (k - 1), 0.74 + 0.025 * k
            bones[f"LeftHand{finger}{k}"] = ((x0, -0.01 * f, z), (x1, -0.01 * f, z), parent)
            parent = f"LeftHand{finger}{k}"
    return bones


def _build_rig(sc, prefix="mixamorig:", name="Dancer", fingers=False):
    arm_data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm_data)
    sc.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, (head, tail, parent) in {**MIXAMO_BONES, **(_finger_bones() if fingers else {})}.items():
        eb = arm_data.edit_bones.new(prefix + bone)
        eb.head, eb.tail = head, tail
        if parent:
            eb.parent = arm_data.edit_bones[prefix + parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.location = (0.3, 0.5, 0.0)
    return obj


def _camera(sc, location=(0.2, -6.0, 1.1), ortho=False):
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    sc.collection.objects.link(cam)
    cam.location = location
    cam.rotation_euler = (math.radians(88), 0.0, math.radians(2))
    cam.data.shift_x = 0.05
    if ortho:
        cam.data.type = "ORTHO"
        cam.data.ortho_scale = 3.0
    sc.camera = cam
    return cam


def _animate(sc, obj, prefix="mixamorig:"):
    """Frames 1-3: hips sway, a forearm and the head turn; on frame 3 the right hand is moved behind the camera."""
    sc.frame_start, sc.frame_end = 1, 3
    pb = obj.pose.bones
    for f in (1, 2, 3):
        sc.frame_set(f)
        pb[prefix + "Hips"].location = (0.05 * f, 0.0, 0.02 * f)
        pb[prefix + "Hips"].keyframe_insert("location", frame=f)
        pb[prefix + "RightForeArm"].rotation_mode = "XYZ"
        pb[prefix + "RightForeArm"].rotation_euler = (0.0, 0.0, 0.4 * f)
        pb[prefix + "RightForeArm"].keyframe_insert("rotation_euler", frame=f)
        pb[prefix + "Head"].rotation_mode = "XYZ"
        pb[prefix + "Head"].rotation_euler = (0.0, 0.5 * (f - 1), 0.0)
        pb[prefix + "Head"].keyframe_insert("rotation_euler", frame=f)
        hand = pb[prefix + "RightHand"]
        hand.location = (0.0, 0.0, 0.0)
        if f == 3:  # armature-space target far behind the camera (camera at y = -6 looking along +y)
            bpy.context.view_layer.update()
            want = hand.matrix.copy()
            want.translation = Vector((-0.7, -9.0, 1.42))
            hand.matrix_basis = obj.convert_space(pose_bone=hand, matrix=want, from_space="POSE", to_space="LOCAL")
        hand.keyframe_insert("location", frame=f)


def _expected(sc, cam, obj, prefix):
    """Independent reference: Blender's world_to_camera_view on each bone head, in render pixels."""
    r = sc.render
    w = int(r.resolution_x * r.resolution_percentage / 100)
    h = int(r.resolution_y * r.resolution_percentage / 100)
    rows = []
    for f in range(sc.frame_start, sc.frame_end + 1):
        sc.frame_set(f)
        row = {}
        for j, bone in JOINT_BONES.items():
            co = obj.matrix_world @ obj.pose.bones[prefix + bone].head
            u, v, z = world_to_camera_view(sc, cam, co)
            row[j] = (u * w, (1 - v) * h, z)
        rows.append(row)
    return rows, (w, h)


@pytest.mark.parametrize("mode", ["perspective", "ortho", "border"])
def test_pose_from_armature_matches_world_to_camera_view(addon, scene, mode):
    sc = scene
    ortho = mode == "ortho"
    sc.render.resolution_percentage = 50
    sc.render.pixel_aspect_x = 1.0 if not ortho else 1.25
    crop = (0.1, 0.9, 0.2, 0.95)  # border min_x, max_x, min_y, max_y: the output is the border region
    if mode == "border":
        sc.render.use_border = sc.render.use_crop_to_border = True
        (sc.render.border_min_x, sc.render.border_max_x, sc.render.border_min_y, sc.render.border_max_y) = crop
    obj = _build_rig(sc, fingers=True)
    cam = _camera(sc, ortho=ortho)
    _animate(sc, obj)
    out = Path(sc.edn.project_dir) / "rig pose ü.npz"
    assert bpy.ops.edn.pose_from_armature(armature=obj.name, output=str(out)) == {"FINISHED"}
    assert sc.edn.source_kind == "ARMATURE" and sc.edn.source_track == str(out)
    data = np.load(out)
    body, face, hands = data["body"], data["face"], data["hands"]
    expected, (w, h) = _expected(sc, cam, obj, "mixamorig:")
    assert (w, h) == (207, 270)
    x0, y1 = 0.0, 1.0
    if mode == "border":  # pixels of the cropped output: shift by the border's corner
        x0, y1 = crop[0], crop[3]
        expected = [{j: (x - x0 * w, y - (1 - y1) * h, z) for j, (x, y, z) in row.items()} for row in expected]
        assert (int(data["width"]), int(data["height"])) == (round(w * 0.8), round(h * 0.75))
    else:
        assert (int(data["width"]), int(data["height"])) == (w, h)
    assert int(data["frame_start"]) == 1 and body.shape == (3, 25, 3)
    behind = 0
    for t, row in enumerate(expected):
        for j, (x, y, z) in row.items():
            if z <= 0:
                behind += 1
                assert body[t, j, 2] == 0, f"frame {t + 1} joint {j} is behind the camera but not missing"
            else:
                assert body[t, j, 2] == 1
                assert abs(body[t, j, 0] - x) < 0.5 and abs(body[t, j, 1] - y) < 0.5, (t, j, body[t, j], x, y)
    assert behind == 1  # the right wrist on frame 3
    assert (face[..., 2] == 1).all() and (body[:, 0, 2] == 1).all()  # face and nose from the head template
    # the head turns on frames 2-3: the nose moves relative to the neck while the neck stays centred on the body
    nose_offset = body[:, 0, 0] - body[:, 1, 0]
    assert abs(nose_offset[2] - nose_offset[0]) > 1.0
    # the left hand comes from its finger bones (wrist = the body's wrist); the right hand has none
    assert (hands[:, 1, :, 2] == 0).all() and (hands[:, 0, :, 2] == 1).all()
    assert np.abs(hands[:, 0, 0, :2] - body[:, 7, :2]).max() < 1e-3
    for t, f in enumerate(range(sc.frame_start, sc.frame_end + 1)):
        sc.frame_set(f)
        for i, bone in ((4, "LeftHandThumb4"), (8, "LeftHandIndex4"), (17, "LeftHandPinky1")):
            u, v, _ = world_to_camera_view(sc, cam, obj.matrix_world @ obj.pose.bones["mixamorig:" + bone].head)
            assert abs(hands[t, 0, i, 0] - (u - x0) * w) < 0.5 and abs(hands[t, 0, i, 1] - (y1 - v) * h) < 0.5


def test_armature_errors(addon, scene):
    sc = scene
    obj = _build_rig(sc, prefix="", name="Plain")
    for bone in list(obj.data.bones):
        bone.name = "bone_" + bone.name  # matches no map
    with pytest.raises(RuntimeError, match="no camera"):
        bpy.ops.edn.pose_from_armature(armature=obj.name)
    _camera(sc)
    with pytest.raises(RuntimeError, match=r"unmapped joints: Neck .*RShoulder"):
        bpy.ops.edn.pose_from_armature(armature=obj.name)
    assert "unmapped joints" in sc.edn.last_error
    with pytest.raises(RuntimeError, match="not an armature"):
        bpy.ops.edn.pose_from_armature(armature=sc.camera.name)


def test_bone_maps_detect_rig_types(addon):
    ap = addon.armature_pose
    mixamo = [f"mixamorig7:{b}" for b in MIXAMO_BONES]
    assert ap.detect_map(mixamo).body["Neck"] == "mixamorig7:Neck"
    assert ap.detect_map(list(MIXAMO_BONES)).name.startswith("BVH")
    rigify = ["DEF-spine", "DEF-spine.004", "DEF-spine.006"] + [
        f"DEF-{b}.{s}" for b in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot", "toe") for s in "LR"]
    assert ap.detect_map(rigify).name.startswith("Rigify")
    metarig = [n[4:] for n in rigify]
    assert ap.detect_map(metarig).name.startswith("Rigify / Human")
    with pytest.raises(ap.MappingError, match="LKnee"):
        ap.detect_map([n for n in mixamo if "LeftLeg" not in n])


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
    assert track.is_file() and sc.edn.target_strip == "dancer"
    data = np.load(track)
    assert data["body"].shape[0] == 4 and int(data["frame_start"]) == 3  # offset 3, 4 frames
    assert (data["body"][..., 2] > 0).any(axis=1).all()  # the person is found in every frame
    assert (track.parent / "mattes").is_dir()

    sc.edn.source_kind, sc.edn.source_strip, sc.edn.source_track = "STRIP", "dancer", str(track)
    sc.edn.width, sc.edn.height = 64, 64
    stale = track.parent / "figures" / "figure_000999.png"  # left by an earlier, longer run: not shown
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    os.utime(stale, (1e9, 1e9))
    assert bpy.ops.edn.render_figures() == {"FINISHED"}
    job = _wait(addon, _last_job(addon))
    assert job.state == "DONE", job.error
    fig = _strips(sc).get("EDN Stick Figures")
    assert fig is not None and fig.type == "IMAGE"
    assert (fig.frame_final_start, fig.frame_final_end) == (strip.frame_final_start, strip.frame_final_end)
    assert fig.channel == 3 and len(fig.elements) == 4
    assert len(list(Path(sc.edn.figures_dir).glob("figure_*.png"))) == 5  # 4 new + the stale one
    assert stale.name not in {e.filename for e in fig.elements}

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
    sed = sc.sequence_editor_create()
    strips = sed.strips if hasattr(sed, "strips") else sed.sequences
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
    with pytest.raises(RuntimeError, match="Extract the target's pose first"):  # the poll explains
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
    assert bpy.ops.edn.render_figures(track=str(bad)) == {"FINISHED"}  # the engine finds the problem
    tick = addon.operators._tick  # the UI's timer callback: registered, polls, and stops when all is done
    assert bpy.app.timers.is_registered(tick)
    assert tick() == addon.operators.TIMER_INTERVAL
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
    s.width, s.height, s.profile, s.perceptual, s.train_steps = 64, 64, "cpu", "none", 400
    assert bpy.ops.edn.extract_pose(strip=strip.name, role="TARGET") == {"FINISHED"}
    assert _wait(addon, _last_job(addon)).state == "DONE"
    assert bpy.ops.edn.train() == {"FINISHED"}
    job = _last_job(addon)
    assert job.label == "Train" and len(job.steps) == 2  # dataset build, then train
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
    assert job.result.get("stopped") == "signal" and job.result.get("step", stopped_at) >= stopped_at

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
    res = _strips(sc).get("EDN Result")
    assert res is not None and res.blend_type == "ALPHA_OVER" and len(res.elements) == 5
    assert (res.frame_final_start, res.frame_final_end) == (strip.frame_final_start, strip.frame_final_end)
    assert res.channel == strip.channel + 1
    img = bpy.data.images.load(str(Path(s.output_dir) / res.elements[0].filename))
    assert img.channels == 4 and tuple(img.size) == (64, 64)

    # the same run driven by a rigged character: Transfer = normalize, stick figures, generate
    obj = _build_rig(sc)
    _camera(sc)
    _animate(sc, obj)
    assert bpy.ops.edn.pose_from_armature(armature=obj.name) == {"FINISHED"}
    assert bpy.ops.edn.transfer() == {"FINISHED"}
    job4 = _wait(addon, _last_job(addon))
    assert job4.state == "DONE", job4.error
    assert [step[3] for step in job4.steps] == ["pose", "render", "generate"]
    res = _strips(sc).get("EDN Result")
    assert (res.frame_final_start, res.frame_final_end, res.channel) == (1, 4, 1)
    assert Path(s.normalized_track).is_file() and len(list(Path(s.figures_dir).glob("figure_*.png"))) == 3


def test_setup_engine_reports_a_missing_base_python(addon, tmp_path):
    with pytest.raises(RuntimeError, match="cannot create the engine environment: the base Python .* does not exist"):
        bpy.ops.edn.setup_engine(base_python=str(tmp_path / "nowhere" / "python3"), venv_dir=str(tmp_path / "venv"))
    assert not (tmp_path / "venv").exists()


def test_custom_bone_map_and_presets(addon, scene):
    sc = scene
    obj = _build_rig(sc, prefix="", name="BVH Dancer")
    _camera(sc)
    sc.frame_start, sc.frame_end = 1, 2
    sc.edn.armature = obj.name
    assert bpy.ops.edn.detect_bone_map() == {"FINISHED"}
    s = sc.edn
    assert s.bone_map == "CUSTOM" and {i.joint: i.bone for i in s.custom_map}["LKnee"] == "LeftLeg"
    mapping = {i.joint: i.bone for i in s.custom_map}
    assert bpy.ops.edn.save_bone_map(name="Mein Rig ü") == {"FINISHED"}
    s.custom_map.clear()
    assert bpy.ops.edn.load_bone_map(name="Mein Rig ü") == {"FINISHED"}
    assert {i.joint: i.bone for i in s.custom_map} == mapping
    out = Path(s.project_dir) / "custom.npz"
    assert bpy.ops.edn.pose_from_armature(output=str(out)) == {"FINISHED"}
    assert np.load(out)["body"].shape == (2, 25, 3)
    next(i for i in s.custom_map if i.joint == "RKnee").bone = "no such bone"
    with pytest.raises(RuntimeError, match=r"unmapped joints: RKnee \('no such bone'\)"):
        bpy.ops.edn.pose_from_armature()
    next(i for i in s.custom_map if i.joint == "Neck").bone = ""
    with pytest.raises(RuntimeError, match="custom bone map has no bone for: Neck"):
        bpy.ops.edn.pose_from_armature()
    with pytest.raises(RuntimeError, match="no bone map preset"):
        bpy.ops.edn.load_bone_map(name="never saved")


def test_sequencer_scene_other_than_context_scene(addon, scene, tmp_path):
    """Blender 5.0: the Sequencer shows the workspace's sequencer scene, which may differ from the context scene."""
    ws = bpy.context.workspace
    if not hasattr(ws, "sequencer_scene"):
        pytest.skip("Blender before 5.0 has no separate sequencer scene")
    edit = bpy.data.scenes.new("EDN edit")
    edit.edn.project_dir = scene.edn.project_dir
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
        assert not scene.edn.source_track
    finally:
        prefs.custom_python = ENGINE_PYTHON
        ws.sequencer_scene = None


class _CheckingLayout:
    """Stands in for bpy.types.UILayout (the bpy module draws no UI): checks every property and operator named."""

    def __init__(self, log):
        self.log = log

    def _sub(self, *args, **kwargs):
        return _CheckingLayout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties, name
        assert search_name in search_data.bl_rna.properties, f"{search_data} has no collection {search_name!r}"
        self.log.append(("prop_search", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert name in dir(getattr(bpy.ops, module)), idname
        self.log.append(("operator", idname))
        return _Props()

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def progress(self, factor=0.0, text="", **kwargs):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def template_icon(self, icon_value=0, **kwargs):
        self.log.append(("icon", icon_value))


class _Props:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


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
                         state=jobs.RUNNING, device="setup")
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
    assert bpy.ops.edn.render_figures(track=str(track)) == {"FINISHED"}
    job, name = _last_job(addon), sc.name
    bpy.ops.wm.open_mainfile(filepath=str(other))  # while the engine runs
    _wait(addon, job, timeout=120)
    assert job.state == "FAILED"
    reopened = bpy.data.scenes[name]  # same name, but another file's scene: nothing is written into it
    assert reopened.edn.last_error == "" and reopened.edn.last_log == ""
