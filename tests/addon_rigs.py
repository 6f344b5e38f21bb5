"""A Mixamo-named test rig, its camera and animation, and the independent reference for projecting it
(Blender's own world_to_camera_view), shared by the armature and transfer tests."""

from __future__ import annotations

import math

import pytest

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

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
