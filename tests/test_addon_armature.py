"""Pose from an armature in the real bpy module: the add-on's projection against Blender's world_to_camera_view,
bone map detection, custom maps and presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from addon_fixtures import addon, scene  # noqa: F401
from addon_rigs import MIXAMO_BONES, _animate, _build_rig, _camera, _expected

pytestmark = pytest.mark.blender
bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402


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
