"""Pose from an armature: evaluated bone positions projected through the scene camera into a BODY_25 track.

A bone map says which bone point (head or tail) stands for each OpenPose joint. Maps for Mixamo, Rigify (DEF-
bones and the metarig), Blender's Human metarig and CMU-style BVH names are built in and detected by bone names.
The face (and nose, eyes, ears) comes from a 3D face template fixed to the head bone, so head turns show; hands
come from finger bones when the rig has them. The projection uses the camera's own projection matrix at the
render resolution (percentage, pixel aspect, shift, orthographic and border crop respected); a point behind the
camera is missing (confidence 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundled import engine_module

skeleton = engine_module("pose.skeleton")  # the engine's OpenPose tables: one BODY_25 order for tracks and maps
J = skeleton.B  # BODY_25 joint name -> index
N_BODY, N_HAND, N_FACE = len(skeleton.BODY_25), len(skeleton.HAND_21), skeleton.FACE_70_COUNT
FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")
# Joints a bone map must give; the rest are derived (face template, heels) or optional (toes).
CORE_JOINTS = ("Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
               "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle")
MAP_JOINTS = CORE_JOINTS + ("Head", "RBigToe", "LBigToe")  # "Head" is the bone the face template rides on


class MappingError(Exception):
    """The armature does not fit any bone map; the message lists the unmapped joints."""


# A bone point: "Bone" (its head) or "Bone@tail".
def _side_map(fmt: dict[str, str]) -> dict[str, str]:
    out = {}
    for joint, pattern in fmt.items():
        if "{S}" in pattern or "{s}" in pattern or "{Side}" in pattern:
            for prefix, side in (("R", "Right"), ("L", "Left")):
                out[prefix + joint] = pattern.format(S=prefix, s=prefix.lower(), Side=side)
        else:
            out[joint] = pattern
    return out


def _mixamo_like(prefix: str, toe: str) -> dict[str, str]:
    return _side_map({
        "Neck": f"{prefix}Neck", "Head": f"{prefix}Head", "MidHip": f"{prefix}Hips",
        "Shoulder": f"{prefix}{{Side}}Arm", "Elbow": f"{prefix}{{Side}}ForeArm", "Wrist": f"{prefix}{{Side}}Hand",
        "Hip": f"{prefix}{{Side}}UpLeg", "Knee": f"{prefix}{{Side}}Leg", "Ankle": f"{prefix}{{Side}}Foot",
        "BigToe": toe.format(p=prefix),
    })


def _rigify_like(prefix: str) -> dict[str, str]:
    return _side_map({
        "Neck": f"{prefix}spine.004", "Head": f"{prefix}spine.006", "MidHip": f"{prefix}spine",
        "Shoulder": f"{prefix}upper_arm.{{S}}", "Elbow": f"{prefix}forearm.{{S}}", "Wrist": f"{prefix}hand.{{S}}",
        "Hip": f"{prefix}thigh.{{S}}", "Knee": f"{prefix}shin.{{S}}", "Ankle": f"{prefix}foot.{{S}}",
        "BigToe": f"{prefix}toe.{{S}}@tail",
    })


def _mixamo_hands(prefix: str) -> dict[str, list[str]]:
    return {side: [f"{prefix}{name}Hand"] + [f"{prefix}{name}Hand{f}{k}" for f in FINGERS for k in range(1, 5)]
            for side, name in (("L", "Left"), ("R", "Right"))}


def _rigify_hands(prefix: str) -> dict[str, list[str]]:
    names = {"Thumb": "thumb", "Index": "f_index", "Middle": "f_middle", "Ring": "f_ring", "Pinky": "f_pinky"}
    hands = {}
    for s in ("L", "R"):
        pts = [f"{prefix}hand.{s}"]
        for f in FINGERS:
            b = f"{prefix}{names[f]}"
            pts += [f"{b}.01.{s}", f"{b}.02.{s}", f"{b}.03.{s}", f"{b}.03.{s}@tail"]
        hands[s] = pts
    return hands


@dataclass
class BoneMap:
    name: str
    body: dict[str, str]  # joint -> bone point
    hands: dict[str, list[str]]  # "L"/"R" -> 21 bone points in OpenPose hand order (optional)


BUILTIN_MAPS = {
    "MIXAMO": BoneMap("Mixamo", _mixamo_like("mixamorig:", "{p}{{Side}}Toe_End"), _mixamo_hands("mixamorig:")),
    "RIGIFY": BoneMap("Rigify (DEF bones)", _rigify_like("DEF-"), _rigify_hands("DEF-")),
    "METARIG": BoneMap("Rigify / Human metarig", _rigify_like(""), _rigify_hands("")),
    "CMU": BoneMap("BVH (CMU names)", _mixamo_like("", "{p}{{Side}}ToeBase@tail"), {}),
}


def _bone_name(point: str) -> str:
    return point.split("@", 1)[0]


def _match_count(bmap: BoneMap, bone_names: set[str]) -> int:
    return sum(_bone_name(bmap.body[j]) in bone_names for j in CORE_JOINTS if j in bmap.body)


def _mixamo_prefix(bone_names: set[str]) -> str | None:
    """Mixamo rigs come as `mixamorig:`, `mixamorig1:` ... : find the prefix in use."""
    for n in bone_names:
        if n.endswith("Hips") and ":" in n:
            return n[: -len("Hips")]
    return None


def detect_map(bone_names, key: str = "AUTO") -> BoneMap:
    """The built-in map named `key`, or the one matching most bones; MappingError lists what is unmapped."""
    names = set(bone_names)
    maps = dict(BUILTIN_MAPS)
    prefix = _mixamo_prefix(names)
    if prefix and prefix != "mixamorig:":
        maps["MIXAMO"] = BoneMap("Mixamo", _mixamo_like(prefix, "{p}{{Side}}Toe_End"), _mixamo_hands(prefix))
    if key != "AUTO":
        best = maps[key]
    else:
        best = max(maps.values(), key=lambda m: _match_count(m, names))
    missing = missing_joints(best, names)
    if missing:
        tried = ", ".join(m.name for m in maps.values()) if key == "AUTO" else best.name
        raise MappingError(
            f"the armature's bones match no bone map (tried {tried}); unmapped joints: "
            + ", ".join(f"{j} (expects '{_bone_name(best.body[j])}')" for j in missing)
            + ". Edit the bone map in the EDN panel")
    return best


def missing_joints(bmap: BoneMap, bone_names) -> list[str]:
    """Core joints whose bone the armature lacks (also a mapped head bone that is not there)."""
    names = set(bone_names)
    joints = CORE_JOINTS + (("Head",) if bmap.body.get("Head") else ())
    return [j for j in joints if _bone_name(bmap.body.get(j, "")) not in names]


def check_map(bmap: BoneMap, bone_names) -> BoneMap:
    """An edited map must name bones the armature has: say which joints point nowhere."""
    missing = missing_joints(bmap, bone_names)
    if missing:
        raise MappingError(f"the {bmap.name} bone map names bones this armature lacks; unmapped joints: "
                           + ", ".join(f"{j} ('{_bone_name(bmap.body.get(j, ''))}')" for j in missing))
    return bmap


# ----------------------------------------------------------------------------------------------------------------
# the face template: in units of the head bone's length, axes (character's left, forward, up) from its base
# ----------------------------------------------------------------------------------------------------------------
def face_template() -> np.ndarray:
    """70 OpenPose face points (68 iBUG + pupils) of an average face, as (left, forward, up) offsets."""
    pts = np.zeros((N_FACE, 3))
    t = np.linspace(0.0, np.pi, 17)  # jaw: subject's right ear, chin, left ear
    pts[0:17] = np.stack([-0.42 * np.cos(t), 0.1 + 0.32 * np.sin(t), 0.62 - 0.5 * np.sin(t)], 1)
    for i, x in enumerate(np.linspace(-0.36, -0.08, 5)):  # right brow (outer to inner), then left brow
        pts[17 + i] = (x, 0.44, 0.86 + 0.04 * np.sin(np.pi * i / 4))
        pts[26 - i] = (-x, 0.44, 0.86 + 0.04 * np.sin(np.pi * i / 4))
    for i, z in enumerate(np.linspace(0.78, 0.52, 4)):  # nose bridge to tip
        pts[27 + i] = (0.0, 0.47 + 0.04 * i, z)
    for i, x in enumerate(np.linspace(-0.1, 0.1, 5)):  # nostrils
        pts[31 + i] = (x, 0.5 - 0.04 * abs(x) / 0.1, 0.46)
    # iBUG eyes run left to right in the image for both eyes: corner, upper lid, corner, lower lid
    eye = np.array([(-1, 0), (-0.5, 0.45), (0.5, 0.45), (1, 0), (0.5, -0.4), (-0.5, -0.4)])
    for base, cx in ((36, -0.18), (42, 0.18)):  # right eye, left eye
        for k, (dx, dz) in enumerate(eye):
            pts[base + k] = (cx + 0.08 * dx, 0.42, 0.7 + 0.04 * dz)
    a = np.linspace(np.pi, -np.pi, 13)[:12]  # outer lip from the right corner, top lip first
    pts[48:60] = np.stack([0.16 * np.cos(a), 0.44 + 0.02 * np.abs(np.sin(a)), 0.3 + 0.06 * np.sin(a)], 1)
    b = np.linspace(np.pi, -np.pi, 9)[:8]
    pts[60:68] = np.stack([0.11 * np.cos(b), np.full(8, 0.45), 0.3 + 0.025 * np.sin(b)], 1)
    pts[68] = (-0.18, 0.43, 0.7)  # right pupil
    pts[69] = (0.18, 0.43, 0.7)  # left pupil
    return pts


FACE_TEMPLATE = face_template()
EARS = np.array([(-0.46, 0.05, 0.66), (0.46, 0.05, 0.66)])  # right, left


# ----------------------------------------------------------------------------------------------------------------
# projection (numpy; the matrices come from Blender)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class CameraView:
    """Everything needed to project world points to output pixels for one frame."""

    world_to_clip: np.ndarray  # 4x4: projection @ view
    world_to_view: np.ndarray  # 4x4
    width: int  # full render size in pixels (after resolution percentage)
    height: int
    crop: tuple[float, float, float, float] | None  # border (min_x, max_x, min_y, max_y) when cropping to it

    @property
    def out_size(self) -> tuple[int, int]:
        if self.crop is None:
            return self.width, self.height
        x0, x1, y0, y1 = self.crop
        return round(self.width * (x1 - x0)), round(self.height * (y1 - y0))

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) rows of x, y pixels (y down) and confidence (0 behind the camera)."""
        h = np.c_[points, np.ones(len(points))]
        view = h @ self.world_to_view.T
        clip = h @ self.world_to_clip.T
        w = np.where(np.abs(clip[:, 3]) < 1e-12, 1e-12, clip[:, 3])
        u = (clip[:, 0] / w + 1.0) / 2.0
        v = (clip[:, 1] / w + 1.0) / 2.0
        x0, y1 = (0.0, 1.0) if self.crop is None else (self.crop[0], self.crop[3])
        out = np.empty((len(points), 3))
        out[:, 0] = (u - x0) * self.width
        out[:, 1] = (y1 - v) * self.height
        visible = view[:, 2] < 0.0  # Blender cameras look down -Z
        out[:, 2] = visible.astype(float)
        out[~visible, :2] = 0.0
        return out


def camera_view(scene, camera, depsgraph) -> CameraView:
    """The camera's projection at the scene's render resolution (percentage, pixel aspect, border crop)."""
    r = scene.render
    width = int(r.resolution_x * r.resolution_percentage / 100)
    height = int(r.resolution_y * r.resolution_percentage / 100)
    cam_eval = camera.evaluated_get(depsgraph)
    proj = np.array(cam_eval.calc_matrix_camera(depsgraph, x=width, y=height, scale_x=r.pixel_aspect_x,
                                                scale_y=r.pixel_aspect_y))
    view = np.array(cam_eval.matrix_world.inverted())
    crop = (r.border_min_x, r.border_max_x, r.border_min_y, r.border_max_y) if (
        r.use_border and r.use_crop_to_border) else None
    return CameraView(proj @ view, view, width, height, crop)


# ----------------------------------------------------------------------------------------------------------------
# bone points -> world points
# ----------------------------------------------------------------------------------------------------------------
def _bone_point(obj_eval, point: str) -> np.ndarray | None:
    name, _, end = point.partition("@")
    pb = obj_eval.pose.bones.get(name)
    if pb is None:
        return None
    co = pb.tail if end == "tail" else pb.head
    return np.array(obj_eval.matrix_world @ co)


def _head_frame(obj, bmap: BoneMap):
    """Rest-pose basis for the face template: origin at the head bone's head, axes (left, forward, up)."""
    bones = obj.data.bones
    head = bones[_bone_name(bmap.body["Head"])]

    def rest(j):
        return np.array(bones[_bone_name(bmap.body[j])].head_local)

    up = rest("Neck") - rest("MidHip")
    up /= np.linalg.norm(up) or 1.0
    left = rest("LShoulder") - rest("RShoulder")
    left -= up * left.dot(up)
    left /= np.linalg.norm(left) or 1.0
    forward = np.cross(left, up)
    size = max(head.length, 1e-4)
    return np.array(head.head_local), np.stack([left, forward, up], 1) * size


def frame_points(obj, obj_eval, bmap: BoneMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World positions of body (25), hands (2, 21) and face (70) for the evaluated armature; NaN = not available."""
    body = np.full((N_BODY, 3), np.nan)
    for joint, point in bmap.body.items():
        if joint in J:
            p = _bone_point(obj_eval, point)
            if p is not None:
                body[J[joint]] = p
    for s in ("R", "L"):  # heel: behind the ankle, along the foot (rigs have no heel bone; no small toe either)
        ankle, toe = body[J[s + "Ankle"]], body[J[s + "BigToe"]]
        if not np.isnan(toe).any():
            body[J[s + "Heel"]] = ankle - 0.25 * (toe - ankle)
    face = np.full((N_FACE, 3), np.nan)
    head_name = _bone_name(bmap.body.get("Head", ""))
    if head_name in obj_eval.pose.bones:
        origin, basis = _head_frame(obj, bmap)
        # rest armature space -> posed armature space -> world, via the head bone's deformation
        pb = obj_eval.pose.bones[head_name]
        deform = np.array(pb.matrix) @ np.linalg.inv(np.array(obj.data.bones[head_name].matrix_local))
        to_world = np.array(obj_eval.matrix_world) @ deform
        local = np.vstack([FACE_TEMPLATE, EARS]) @ basis.T + origin
        world = (np.c_[local, np.ones(len(local))] @ to_world.T)[:, :3]
        face = world[:N_FACE]
        body[J["Nose"]] = face[30]
        body[J["REye"]], body[J["LEye"]] = face[68], face[69]
        body[J["REar"]], body[J["LEar"]] = world[N_FACE], world[N_FACE + 1]
    hands = np.full((2, N_HAND, 3), np.nan)
    for k, s in enumerate(("L", "R")):
        pts = bmap.hands.get(s, [])
        if len(pts) == N_HAND and all(_bone_name(p) in obj_eval.pose.bones for p in pts[1:]):
            for i, point in enumerate(pts):
                p = _bone_point(obj_eval, point)
                if p is not None:
                    hands[k, i] = p
    return body, hands, face


def _project_part(view: CameraView, pts: np.ndarray) -> np.ndarray:
    flat = pts.reshape(-1, 3)
    out = np.zeros((len(flat), 3))
    ok = ~np.isnan(flat).any(axis=1)
    if ok.any():
        out[ok] = view.project(flat[ok])
    return out.reshape(*pts.shape[:-1], 3)


def armature_track_arrays(scene, depsgraph_getter, armature, camera, bmap: BoneMap, frames: range):
    """Project the armature for each frame. Returns body, hands, face arrays and the output size.

    `depsgraph_getter()` returns the evaluated depsgraph after `scene.frame_set` (a function so tests and the
    operator share this code).
    """
    n = len(frames)
    body, hands, face = np.zeros((n, N_BODY, 3)), np.zeros((n, 2, N_HAND, 3)), np.zeros((n, N_FACE, 3))
    size = None
    for i, f in enumerate(frames):
        scene.frame_set(f)
        dg = depsgraph_getter()
        view = camera_view(scene, camera, dg)
        size = view.out_size
        b, h, fc = frame_points(armature, armature.evaluated_get(dg), bmap)
        body[i], hands[i], face[i] = _project_part(view, b), _project_part(view, h), _project_part(view, fc)
    return body, hands, face, size
