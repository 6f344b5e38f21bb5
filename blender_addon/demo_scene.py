"""The demo's synthetic target: a procedural mannequin rendered by Cycles, with mattes and a ground-truth pose.

`edn demo` runs this in a subprocess with the bpy module (Blender as a Python module):

    python -m blender_addon.demo_scene render --out DIR --motion dance --frames 120 --size 256

It builds a mannequin (head with eyes, nose, mouth and ears, hands with fingers, a shirt and trousers of different
colours, shoes) skinned to an armature with Mixamo bone names, a textured floor and backdrop, animates it with a
procedural dance (sines at several frequencies), and writes:

    DIR/frames/frame_000000.png ...  the Cycles render (RGB), numbered from 0 as the track's rows
    DIR/mattes/matte_000000.png ...  the person's matte (grey, white = person) from a cheap emission-only
                                     render: the layout `edn dataset build --mattes` reads
    DIR/track.npz              the ground-truth pose, projected from the armature by `armature_pose`
    DIR/scene.blend            (with --blend) the scene, animation included

Two motions exist: `dance` (training) and `transfer` (a different one, for the transfer and its ground truth).
The pose comes from the armature (not from a detector), so the demo does not depend on the detector
recognising a mannequin.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import bpy  # first: bmesh and mathutils are provided by the bpy module
import bmesh
from mathutils import Matrix, Vector

PREFIX = "mixamorig:"
FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")

# -- skeleton (rest pose, metres; the mannequin faces -Y, its left is +X) -----------------------------------

def _skeleton() -> list[tuple[str, tuple, tuple, str | None]]:
    """(bone, head, tail, parent) for a Mixamo-named T-pose skeleton 1.8 m tall."""
    bones = [
        ("Hips", (0, 0, 0.98), (0, 0, 1.08), None),
        ("Spine", (0, 0, 1.08), (0, 0, 1.20), "Hips"),
        ("Spine1", (0, 0, 1.20), (0, 0, 1.32), "Spine"),
        ("Spine2", (0, 0, 1.32), (0, 0, 1.46), "Spine1"),
        ("Neck", (0, 0, 1.46), (0, 0, 1.56), "Spine2"),
        ("Head", (0, 0, 1.56), (0, 0, 1.76), "Neck"),
        ("HeadTop_End", (0, 0, 1.76), (0, 0, 1.84), "Head"),
    ]
    for side, s in (("Left", 1.0), ("Right", -1.0)):
        bones += [
            (f"{side}Shoulder", (0.04 * s, 0, 1.42), (0.17 * s, 0, 1.42), "Spine2"),
            (f"{side}Arm", (0.17 * s, 0, 1.42), (0.44 * s, 0, 1.42), f"{side}Shoulder"),
            (f"{side}ForeArm", (0.44 * s, 0, 1.42), (0.69 * s, 0, 1.42), f"{side}Arm"),
            (f"{side}Hand", (0.69 * s, 0, 1.42), (0.78 * s, 0, 1.42), f"{side}ForeArm"),
            (f"{side}UpLeg", (0.10 * s, 0, 0.94), (0.10 * s, 0, 0.52), "Hips"),
            (f"{side}Leg", (0.10 * s, 0, 0.52), (0.10 * s, 0, 0.09), f"{side}UpLeg"),
            (f"{side}Foot", (0.10 * s, 0, 0.09), (0.10 * s, -0.11, 0.03), f"{side}Leg"),
            (f"{side}ToeBase", (0.10 * s, -0.11, 0.03), (0.10 * s, -0.19, 0.02), f"{side}Foot"),
            (f"{side}Toe_End", (0.10 * s, -0.19, 0.02), (0.10 * s, -0.23, 0.02), f"{side}ToeBase"),
        ]
        # Fingers: bases across the front of the palm, three segments plus an end bone, as Mixamo has.
        for f, finger in enumerate(FINGERS):
            if finger == "Thumb":
                base, step = Vector((0.715 * s, -0.035, 1.415)), Vector((0.022 * s, -0.018, -0.004))
            else:
                base = Vector((0.78 * s, -0.027 + 0.018 * (f - 1), 1.42))
                seg = (0.030, 0.034, 0.032, 0.024)[f - 1]
                step = Vector((seg * s, 0, 0))
            parent = f"{side}Hand"
            for k in range(1, 5):
                head = base + step * (k - 1)
                tail = head + step * (0.6 if k == 4 else 1.0)
                bones.append((f"{side}Hand{finger}{k}", tuple(head), tuple(tail), parent))
                parent = f"{side}Hand{finger}{k}"
    return bones


# -- materials -----------------------------------------------------------------------------------------

def _material(name: str, color, roughness: float = 0.6, emission: float = 0.0) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    if emission:
        bsdf.inputs["Emission Color"].default_value = (*color, 1.0)
        bsdf.inputs["Emission Strength"].default_value = emission
    return mat


def _textured(name: str, kind: str, c1, c2, scale: float) -> bpy.types.Material:
    """A floor (checker) or backdrop (brick) material: texture gives the generator a background to learn."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF")
    bsdf.inputs["Roughness"].default_value = 0.8
    tex = nodes.new("ShaderNodeTexChecker" if kind == "checker" else "ShaderNodeTexBrick")
    tex.inputs["Color1"].default_value = (*c1, 1.0)
    tex.inputs["Color2"].default_value = (*c2, 1.0)
    tex.inputs["Scale"].default_value = scale
    if kind == "brick":
        tex.inputs["Mortar"].default_value = (0.80, 0.78, 0.72, 1.0)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


MATERIALS = {  # name: (colour, roughness)
    "skin": ((0.80, 0.55, 0.42), 0.5),
    "shirt": ((0.10, 0.35, 0.80), 0.7),
    "trousers": ((0.55, 0.12, 0.10), 0.8),
    "shoes": ((0.06, 0.06, 0.06), 0.4),
    "hair": ((0.09, 0.05, 0.03), 0.6),
    "eye_white": ((0.95, 0.95, 0.95), 0.3),
    "pupil": ((0.02, 0.02, 0.05), 0.2),
    "mouth": ((0.60, 0.05, 0.08), 0.4),
    "nose": ((0.70, 0.40, 0.30), 0.5),
    "belt": ((0.95, 0.80, 0.15), 0.5),
}


# -- mesh ----------------------------------------------------------------------------------------------

class _Builder:
    """Accumulates primitives into one bmesh; each primitive is rigidly weighted to one bone."""

    def __init__(self, groups: list[str], materials: list[str]):
        self.bm = bmesh.new()
        self.deform = self.bm.verts.layers.deform.verify()
        self.groups = {g: i for i, g in enumerate(groups)}
        self.materials = {m: i for i, m in enumerate(materials)}

    def _finish(self, geom, bone: str, material: str) -> None:
        verts = [g for g in geom if isinstance(g, bmesh.types.BMVert)]
        gi = self.groups[PREFIX + bone]
        for v in verts:
            v[self.deform][gi] = 1.0
        faces = {f for v in verts for f in v.link_faces}
        for f in faces:
            f.material_index = self.materials[material]
            f.smooth = True

    def ellipsoid(self, bone: str, material: str, centre, radii, rot: Matrix | None = None, segs: int = 16):
        m = Matrix.Translation(Vector(centre)) @ (rot.to_4x4() if rot else Matrix()) @ Matrix.Diagonal(
            (*radii, 1.0))
        res = bmesh.ops.create_uvsphere(self.bm, u_segments=segs, v_segments=max(6, segs // 2), radius=1.0,
                                        matrix=m)
        self._finish(res["verts"], bone, material)

    def capsule(self, bone: str, material: str, a, b, r1: float, r2: float | None = None, segs: int = 12):
        """A tapered cylinder from a to b, closed by spheres (which hide the seams at bent joints)."""
        a, b = Vector(a), Vector(b)
        r2 = r1 if r2 is None else r2
        axis = b - a
        rot = axis.to_track_quat("Z", "Y").to_matrix().to_4x4()
        m = Matrix.Translation((a + b) / 2) @ rot
        res = bmesh.ops.create_cone(self.bm, cap_ends=True, segments=segs, radius1=r1, radius2=r2,
                                    depth=axis.length, matrix=m)
        self._finish(res["verts"], bone, material)
        for p, r in ((a, r1), (b, r2)):
            self.ellipsoid(bone, material, p, (r, r, r), segs=segs)

    def box(self, bone: str, material: str, centre, size, rot: Matrix | None = None):
        m = Matrix.Translation(Vector(centre)) @ (rot.to_4x4() if rot else Matrix()) @ Matrix.Diagonal(
            (*size, 1.0))
        res = bmesh.ops.create_cube(self.bm, size=1.0, matrix=m)
        self._finish(res["verts"], bone, material)


def _build_mannequin(arm_obj: bpy.types.Object, bones: dict[str, tuple]) -> bpy.types.Object:
    names = [PREFIX + n for n in bones]
    mats = list(MATERIALS)
    b = _Builder(names, mats)
    H = {n: Vector(v[0]) for n, v in bones.items()}
    T = {n: Vector(v[1]) for n, v in bones.items()}

    # Torso: pelvis (trousers), belly and chest (shirt), a belt between them for a readable waist.
    b.ellipsoid("Hips", "trousers", (0, 0, 0.98), (0.17, 0.11, 0.12))
    b.ellipsoid("Spine", "belt", (0, 0, 1.075), (0.155, 0.10, 0.035))
    b.ellipsoid("Spine1", "shirt", (0, 0, 1.20), (0.15, 0.10, 0.13))
    b.ellipsoid("Spine2", "shirt", (0, 0, 1.34), (0.19, 0.115, 0.14))
    b.capsule("Neck", "skin", H["Neck"], T["Neck"] + Vector((0, 0, 0.02)), 0.045)
    # Head: skin ellipsoid, hair cap at the back and top, eyes, nose, mouth, ears (a readable face).
    hc = Vector((0, 0, 1.67))
    b.ellipsoid("Head", "skin", hc, (0.095, 0.105, 0.12))
    b.ellipsoid("Head", "hair", hc + Vector((0, 0.022, 0.035)), (0.10, 0.10, 0.105))
    for s in (1, -1):
        b.ellipsoid("Head", "eye_white", hc + Vector((0.036 * s, -0.088, 0.018)), (0.022, 0.014, 0.016))
        b.ellipsoid("Head", "pupil", hc + Vector((0.036 * s, -0.100, 0.018)), (0.011, 0.006, 0.011), segs=10)
        b.ellipsoid("Head", "skin", hc + Vector((0.097 * s, 0.0, 0.005)), (0.015, 0.028, 0.035), segs=10)
    b.ellipsoid("Head", "nose", hc + Vector((0, -0.108, -0.018)), (0.016, 0.024, 0.028), segs=10)
    b.ellipsoid("Head", "mouth", hc + Vector((0, -0.094, -0.060)), (0.034, 0.012, 0.011), segs=12)

    for side in ("Left", "Right"):
        s = 1.0 if side == "Left" else -1.0
        b.capsule(f"{side}Shoulder", "shirt", H[f"{side}Shoulder"] + Vector((0.04 * s, 0, 0)),
                  T[f"{side}Shoulder"], 0.065)
        b.capsule(f"{side}Arm", "shirt", H[f"{side}Arm"], T[f"{side}Arm"], 0.058, 0.048)
        b.capsule(f"{side}ForeArm", "skin", H[f"{side}ForeArm"], T[f"{side}ForeArm"], 0.042, 0.032)
        # Palm and fingers.
        palm_c = (H[f"{side}Hand"] + T[f"{side}Hand"]) / 2
        b.box(f"{side}Hand", "skin", palm_c, (0.10, 0.08, 0.028))
        for finger in FINGERS:
            for k in range(1, 4):
                n = f"{side}Hand{finger}{k}"
                b.capsule(n, "skin", H[n], T[n], 0.0095 if finger != "Thumb" else 0.011, segs=8)
        b.capsule(f"{side}UpLeg", "trousers", H[f"{side}UpLeg"], T[f"{side}UpLeg"], 0.085, 0.062)
        b.capsule(f"{side}Leg", "trousers", H[f"{side}Leg"], T[f"{side}Leg"], 0.058, 0.045)
        foot_c = (H[f"{side}Foot"] + T[f"{side}ToeBase"]) / 2 + Vector((0, 0.015, -0.005))
        b.box(f"{side}Foot", "shoes", foot_c, (0.095, 0.26, 0.07))

    mesh = bpy.data.meshes.new("Mannequin")
    b.bm.to_mesh(mesh)
    b.bm.free()
    obj = bpy.data.objects.new("Mannequin", mesh)
    bpy.context.scene.collection.objects.link(obj)
    for n in names:
        obj.vertex_groups.new(name=n)
    for m in mats:
        color, rough = MATERIALS[m]
        mesh.materials.append(_material(f"mannequin_{m}", color, rough))
    obj.parent = arm_obj
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_obj
    return obj


def _build_armature(bones: dict[str, tuple]) -> bpy.types.Object:
    data = bpy.data.armatures.new("Mannequin_Armature")
    obj = bpy.data.objects.new("Armature", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for name, (head, tail, parent) in bones.items():
        eb = data.edit_bones.new(PREFIX + name)
        eb.head, eb.tail = Vector(head), Vector(tail)
        axis = (eb.tail - eb.head).normalized()
        # Local Z forward (-Y) where the bone is not itself along Y, else up: rotations about local Z then swing
        # a limb in the frontal plane and about local X forward/back, the same for every bone.
        eb.align_roll(Vector((0, -1, 0)) if abs(axis.y) < 0.7 else Vector((0, 0, 1)))
        if parent:
            eb.parent = data.edit_bones[PREFIX + parent]
            eb.use_connect = (Vector(bones[parent][1]) - eb.head).length < 1e-6
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "XYZ"
    return obj


# -- motion --------------------------------------------------------------------------------------------

MOTIONS = {
    # The training dance: broad arm swings and steps, several incommensurate frequencies so poses vary.
    "dance": dict(freqs=(0.50, 0.83, 1.27), arm_lift=(55, 35), arm_swing=45, elbow=(50, 40), knee=(25, 20),
                  hip_swing=22, hip_side=10, twist=20, bob=0.03, lean=8, phase=0.0),
    # The transfer motion: faster, arms overhead more often, wider stance, a different phase pattern.
    "transfer": dict(freqs=(0.71, 1.13, 0.37), arm_lift=(80, 25), arm_swing=30, elbow=(70, 30), knee=(35, 15),
                     hip_swing=15, hip_side=16, twist=30, bob=0.05, lean=12, phase=1.3),
}


def _pose_at(t: float, m: dict) -> dict[str, tuple[float, float, float]]:
    """Bone -> XYZ Euler degrees (local axes: X forward/back swing, Z frontal-plane swing) at time t seconds."""
    f1, f2, f3 = m["freqs"]
    ph = m["phase"]
    w = lambda f, p=0.0: math.sin(2 * math.pi * f * t + p + ph)  # noqa: E731
    rot: dict[str, tuple[float, float, float]] = {}
    rot["Hips"] = (0.0, m["twist"] * w(f1 * 0.5, 0.4), m["lean"] * w(f3, 1.0) * 0.5)
    rot["Spine"] = (m["lean"] * w(f2, 0.2) * 0.5, 0.0, m["lean"] * w(f1, 2.0))
    rot["Spine2"] = (0.0, -m["twist"] * 0.5 * w(f1 * 0.5, 0.4), 0.0)
    rot["Neck"] = (8 * w(f2, 0.7), 15 * w(f3, 0.3), 0.0)
    rot["Head"] = (6 * w(f1, 1.9), 10 * w(f2, 2.5), 8 * w(f3, 0.1))
    lift_base, lift_amp = m["arm_lift"]
    for side, s, p in (("Left", 1.0, 0.0), ("Right", -1.0, math.pi * 0.6)):
        # Arms: from the T-pose rest, lower by (90 - lift) degrees; sines raise them overhead and drop them.
        lift = -(90 - lift_base) + lift_amp * w(f1, p) + 0.4 * lift_amp * w(f3, 2 * p)
        swing = m["arm_swing"] * w(f2, p + 0.5)
        rot[f"{side}Arm"] = (swing, 0.0, lift * s)
        el_base, el_amp = m["elbow"]
        rot[f"{side}ForeArm"] = (0.0, 0.0, s * (el_base + el_amp * w(f2, p + 1.1)))
        rot[f"{side}Hand"] = (25 * w(f3, p), 0.0, 15 * w(f1, p) * s)
        curl = 20 + 20 * w(f2 * 0.7, p)
        for finger in FINGERS:
            for k in (1, 2, 3):
                rot[f"{side}Hand{finger}{k}"] = ((-curl if finger != "Thumb" else -0.3 * curl), 0.0, 0.0)
        # Legs: forward/back steps and side steps; knees bend.
        lp = p * 1.4
        rot[f"{side}UpLeg"] = (m["hip_swing"] * w(f1, lp + 0.3), 0.0,
                               s * (m["hip_side"] * (0.5 + 0.5 * w(f2, lp))))
        kb, ka = m["knee"]
        rot[f"{side}Leg"] = (-(kb * 0.5 + ka * (0.5 + 0.5 * w(f1 * 2, lp))), 0.0, 0.0)
        rot[f"{side}Foot"] = (10 * w(f1, lp + 0.9), 0.0, 0.0)
    return rot


def _animate(arm_obj: bpy.types.Object, motion: str, frames: int, fps: float) -> None:
    """Keyframe every bone rotation on every frame (so the .blend replays exactly what was rendered)."""
    m = MOTIONS[motion]
    scene = bpy.context.scene
    pbones = arm_obj.pose.bones
    hips = pbones[PREFIX + "Hips"]
    for i in range(frames):
        frame = scene.frame_start + i
        t = i / fps
        for bone, deg in _pose_at(t, m).items():
            pb = pbones[PREFIX + bone]
            pb.rotation_euler = [math.radians(d) for d in deg]
            pb.keyframe_insert("rotation_euler", frame=frame)
        hips.location = (0.0, -m["bob"] * abs(math.sin(2 * math.pi * m["freqs"][0] * t)), 0.0)
        hips.keyframe_insert("location", frame=frame)


# -- scene ---------------------------------------------------------------------------------------------

def _plane(scene, name: str, location, rotation, material) -> "bpy.types.Object":
    """A 4 m square with a textured material mapped by object coordinates (a bmesh grid has no generated UVs)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=4.0)
    bm.to_mesh(mesh)
    bm.free()
    ob = bpy.data.objects.new(name, mesh)
    ob.location, ob.rotation_euler = location, rotation
    mesh.materials.append(material)
    nodes = material.node_tree.nodes
    tex = [n for n in nodes if n.type.startswith("TEX_")][0]
    coord = nodes.new("ShaderNodeTexCoord")
    material.node_tree.links.new(coord.outputs["Object"], tex.inputs["Vector"])
    scene.collection.objects.link(ob)
    return ob


def build_scene(motion: str, frames: int, size: int, fps: float = 24.0, samples: int = 16) -> dict:
    """Reset Blender to an empty scene and build the mannequin, set, lights, camera and animation."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = 1
    scene.frame_end = frames
    scene.render.fps = int(round(fps))
    scene.render.fps_base = scene.render.fps / fps

    bone_list = _skeleton()
    bones = {n: (h, t, p) for n, h, t, p in bone_list}
    arm = _build_armature(bones)
    body = _build_mannequin(arm, {n: (h, t) for n, h, t, _ in bone_list})

    floor = _plane(scene, "Floor", (0, 1.0, 0), (0, 0, 0),
                   _textured("floor", "checker", (0.42, 0.42, 0.38), (0.16, 0.18, 0.20), 1.5))
    backdrop = _plane(scene, "Backdrop", (0, 2.2, 2.0), (math.radians(90), 0, 0),
                      _textured("backdrop", "brick", (0.45, 0.30, 0.22), (0.36, 0.24, 0.20), 1.2))

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 50
    cam_data.sensor_width = 36
    cam = bpy.data.objects.new("Camera", cam_data)
    cam.location = (0.0, -3.4, 1.02)
    cam.rotation_euler = (math.radians(90), 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam

    key = bpy.data.lights.new("Key", "AREA")
    key.energy = 500
    key.size = 3.0
    key_obj = bpy.data.objects.new("Key", key)
    key_obj.location = (-2.5, -3.5, 3.5)
    key_obj.rotation_euler = (math.radians(50), 0, math.radians(-35))
    scene.collection.objects.link(key_obj)
    sun = bpy.data.lights.new("Sun", "SUN")
    sun.energy = 1.5
    sun_obj = bpy.data.objects.new("Sun", sun)
    sun_obj.rotation_euler = (math.radians(40), math.radians(20), math.radians(30))
    scene.collection.objects.link(sun_obj)
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.38, 0.42, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
    scene.world = world

    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.image_settings.file_format = "PNG"
    r.use_persistent_data = True
    scene.view_settings.view_transform = "Standard"  # plain sRGB: the matte pass's white stays 255
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = samples
    cy.use_adaptive_sampling = False
    cy.max_bounces = 3
    cy.diffuse_bounces = 2
    cy.glossy_bounces = 1
    cy.transmission_bounces = 0
    cy.transparent_max_bounces = 0
    cy.caustics_reflective = cy.caustics_refractive = False
    cy.use_denoising = True
    cy.denoiser = "OPENIMAGEDENOISE"

    _animate(arm, motion, frames, fps)
    return {"armature": arm, "body": body, "set": [floor, backdrop], "camera": cam}


def _matte_material() -> bpy.types.Material:
    """Pure white emission: with the set hidden and a black world, a render is the person's matte."""
    mat = bpy.data.materials.new("edn_matte")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    em = nodes.new("ShaderNodeEmission")
    em.inputs["Color"].default_value = (1, 1, 1, 1)
    em.inputs["Strength"].default_value = 1.0
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(em.outputs["Emission"], out.inputs["Surface"])
    return mat


def _use_pass(scene, set_objs, *, world, override, samples: int, denoise: bool, color_mode: str) -> None:
    """Switch the scene between the beauty render and the matte render (the set hidden, the person white)."""
    scene.world = world
    scene.view_layers[0].material_override = override
    for ob in set_objs:
        ob.hide_render = override is not None
    scene.cycles.samples = samples
    scene.cycles.use_denoising = denoise
    scene.render.image_settings.color_mode = color_mode


def render(scene_objs: dict, out: Path, frames: int, log=print) -> dict:
    """Render frames and mattes for every frame; returns timings. Matte passes are cheap (emission, 4 samples)."""
    scene = bpy.context.scene
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "mattes").mkdir(parents=True, exist_ok=True)
    black = bpy.data.worlds.new("black")
    black.use_nodes = True
    black.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    beauty = dict(world=scene.world, override=None, samples=scene.cycles.samples, denoise=True, color_mode="RGB")
    matte = dict(world=black, override=_matte_material(), samples=4, denoise=False, color_mode="BW")
    seconds = {"frames": 0.0, "mattes": 0.0}
    for i in range(frames):
        scene.frame_set(scene.frame_start + i)
        for folder, name, settings in (("frames", "frame", beauty), ("mattes", "matte", matte)):
            _use_pass(scene, scene_objs["set"], **settings)
            scene.render.filepath = str(out / folder / f"{name}_{i:06d}.png")
            t0 = time.perf_counter()
            bpy.ops.render.render(write_still=True)
            seconds[folder] += time.perf_counter() - t0
        log(json.dumps({"event": "progress", "done": i + 1, "total": frames, "stage": "render"}))
    _use_pass(scene, scene_objs["set"], **beauty)  # leave the scene set up for the beauty render (the saved .blend)
    n = max(frames, 1)
    return {"seconds_per_frame_beauty": seconds["frames"] / n, "seconds_per_frame_matte": seconds["mattes"] / n}


def ground_truth_track(scene_objs: dict, frames: int, fps: float, out: Path) -> Path:
    """Project the armature through the camera into an OpenPose track, with the add-on's Mixamo bone map."""
    from edn_engine.pose.track import PoseTrack

    from .armature_pose import armature_track_arrays, detect_map  # the add-on's one armature projection

    scene = bpy.context.scene
    arm = scene_objs["armature"]
    bmap = detect_map([b.name for b in arm.data.bones], "MIXAMO")
    body, hands, face, (w, h) = armature_track_arrays(
        scene, bpy.context.evaluated_depsgraph_get, arm, scene.camera, bmap,
        range(scene.frame_start, scene.frame_start + frames))
    track = PoseTrack(body=body, hands=hands, face=face, width=w, height=h, fps=fps, frame_start=0,
                      source="edn demo mannequin")
    return track.save(out / "track.npz")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m blender_addon.demo_scene", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--motion", choices=sorted(MOTIONS), default="dance")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--blend", type=Path, default=None, help="also save the scene as this .blend")
    p.add_argument("--no-render", action="store_true", help="build and write the track only")
    args = p.parse_args(argv)
    if args.frames < 1 or args.size < 16:
        print(json.dumps({"event": "error", "message": "need at least 1 frame and 16 px"}), flush=True)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    objs = build_scene(args.motion, args.frames, args.size, args.fps, args.samples)
    build_s = time.perf_counter() - t0
    track_path = ground_truth_track(objs, args.frames, args.fps, out)
    timings = {"build_s": build_s}
    if not args.no_render:
        timings.update(render(objs, out, args.frames, log=lambda s: print(s, flush=True)))
    if args.blend:
        bpy.context.scene.frame_set(bpy.context.scene.frame_start)
        tmp = args.blend.with_name("." + args.blend.name + ".tmp.blend")
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), check_existing=False, compress=True)
        tmp.replace(args.blend)
    summary = {"event": "done", "out": str(out), "track": str(track_path), "frames": args.frames,
               "size": args.size, "motion": args.motion, **timings}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
