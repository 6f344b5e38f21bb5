"""The demo's two motions: procedural dances (sines at several frequencies), keyframed on every frame."""

from __future__ import annotations

import math

import bpy

from .mannequin import FINGERS, PREFIX

MOTIONS = {
    # The training dance: broad arm swings and steps, several incommensurate frequencies so poses vary.
    "dance": dict(freqs=(0.50, 0.83, 1.27), arm_lift=(55, 35), arm_swing=45, elbow=(50, 40), knee=(25, 20),
                  hip_swing=22, hip_side=10, twist=20, bob=0.03, lean=8, phase=0.0),
    # The transfer motion: faster, arms overhead more often, wider stance, a different phase pattern.
    "transfer": dict(freqs=(0.71, 1.13, 0.37), arm_lift=(80, 25), arm_swing=30, elbow=(70, 30), knee=(35, 15),
                     hip_swing=15, hip_side=16, twist=30, bob=0.05, lean=12, phase=1.3),
}


def pose_at(t: float, m: dict) -> dict[str, tuple[float, float, float]]:
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


def animate(arm_obj: bpy.types.Object, motion: str, frames: int, fps: float) -> None:
    """Keyframe every bone rotation on every frame (so the .blend replays exactly what was rendered)."""
    m = MOTIONS[motion]
    scene = bpy.context.scene
    pbones = arm_obj.pose.bones
    hips = pbones[PREFIX + "Hips"]
    for i in range(frames):
        frame = scene.frame_start + i
        t = i / fps
        for bone, deg in pose_at(t, m).items():
            pb = pbones[PREFIX + bone]
            pb.rotation_euler = [math.radians(d) for d in deg]
            pb.keyframe_insert("rotation_euler", frame=frame)
        hips.location = (0.0, -m["bob"] * abs(math.sin(2 * math.pi * m["freqs"][0] * t)), 0.0)
        hips.keyframe_insert("location", frame=frame)
