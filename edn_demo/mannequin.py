"""The demo's mannequin: a Mixamo-named armature and a mesh of simple primitives rigidly skinned to it.

A head with eyes, nose, mouth and ears, hands with fingers, a shirt and trousers of different colours, shoes: enough
for the generator to learn a person-like appearance, and bone names the add-on's Mixamo bone map knows, so the
ground-truth pose comes from the add-on's own armature projection.
"""

from __future__ import annotations

import bpy  # first: bmesh and mathutils are provided by the bpy module
import bmesh
from mathutils import Matrix, Vector

PREFIX = "mixamorig:"
FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")

# -- skeleton (rest pose, metres; the mannequin faces -Y, its left is +X) -----------------------------------

def skeleton() -> list[tuple[str, tuple, tuple, str | None]]:
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


def build_mannequin(arm_obj: bpy.types.Object, bones: dict[str, tuple]) -> bpy.types.Object:
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


def build_armature(bones: dict[str, tuple]) -> bpy.types.Object:
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
