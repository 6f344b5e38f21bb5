"""Synthetic, anatomically plausible BODY_25 people for tests whose right answer is known by construction.

`person(stature, ankle_x, ankle_y, ...)` builds one frame: body (25,3), hands (2,21,3), face (70,3) in pixels,
standing with the ankle midpoint at (ankle_x, ankle_y) and `stature` pixels from the ankles to the top of the
head; the nose sits at 0.9 * stature above the ankles, so the head-to-ankle height normalization measures is
exactly NOSE_HEIGHT * stature for an upright pose.
"""

from __future__ import annotations

import numpy as np

from edn_engine.pose.skeleton import B
from edn_engine.pose.track import PoseTrack

NOSE_HEIGHT = 0.90

# (x, y) in statures, origin at the ankle midpoint, y up; the person faces the camera (their right = image left).
_BODY = {
    "Nose": (0.0, 0.90), "Neck": (0.0, 0.82), "RShoulder": (-0.11, 0.81), "LShoulder": (0.11, 0.81),
    "RElbow": (-0.14, 0.64), "LElbow": (0.14, 0.64), "RWrist": (-0.15, 0.48), "LWrist": (0.15, 0.48),
    "MidHip": (0.0, 0.52), "RHip": (-0.055, 0.52), "LHip": (0.055, 0.52), "RKnee": (-0.06, 0.28),
    "LKnee": (0.06, 0.28), "RAnkle": (-0.06, 0.0), "LAnkle": (0.06, 0.0), "REye": (-0.02, 0.92),
    "LEye": (0.02, 0.92), "REar": (-0.045, 0.91), "LEar": (0.045, 0.91), "LBigToe": (0.09, -0.03),
    "LSmallToe": (0.11, -0.025), "LHeel": (0.055, -0.02), "RBigToe": (-0.09, -0.03), "RSmallToe": (-0.11, -0.025),
    "RHeel": (-0.055, -0.02),
}


def _hand(wrist: np.ndarray, side: float) -> np.ndarray:
    """21 points fanning down from the wrist (side -1 right, +1 left), in statures."""
    pts = [wrist]
    for f in range(5):
        angle = np.radians(-90 + side * (40 - 18 * f))
        direction = np.array([np.cos(angle), np.sin(angle)])
        for k in range(1, 5):
            pts.append(wrist + direction * (0.012 + 0.011 * k))
    return np.array(pts)


def _face(nose: np.ndarray) -> np.ndarray:
    """70 iBUG-ordered points around the nose, in statures (a rough but correctly ordered face)."""
    cx, cy = nose
    w, h = 0.045, 0.06
    pts = []
    for i in range(17):  # jaw, from the right ear round the chin to the left ear
        t = np.pi * i / 16
        pts.append((cx - w * np.cos(t), cy + 0.02 - h * np.sin(t)))
    for i in range(5):
        pts.append((cx - w * 0.8 + 0.014 * i, cy + 0.045))  # right brow
    for i in range(5):
        pts.append((cx + w * 0.2 + 0.014 * i, cy + 0.045))  # left brow
    for i in range(4):
        pts.append((cx, cy + 0.035 - 0.01 * i))  # nose bridge down to the tip (30)
    for i in range(5):
        pts.append((cx - 0.012 + 0.006 * i, cy - 0.008))  # nostrils
    for ex in (-0.022, 0.022):  # eyes: 6 points each
        for t in np.linspace(0, 2 * np.pi, 6, endpoint=False):
            pts.append((cx + ex + 0.01 * np.cos(t), cy + 0.025 + 0.004 * np.sin(t)))
    for t in np.linspace(0, 2 * np.pi, 12, endpoint=False):  # outer lips
        pts.append((cx + 0.02 * np.cos(t), cy - 0.025 + 0.008 * np.sin(t)))
    for t in np.linspace(0, 2 * np.pi, 8, endpoint=False):  # inner lips
        pts.append((cx + 0.012 * np.cos(t), cy - 0.025 + 0.004 * np.sin(t)))
    pts.append((cx - 0.022, cy + 0.025))  # right pupil
    pts.append((cx + 0.022, cy + 0.025))  # left pupil
    return np.array(pts)


def person(stature: float, ankle_x: float, ankle_y: float, arm_swing: float = 0.0, crouch: float = 0.0,
           lift_foot: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of a standing person in image pixels (y down). `arm_swing` in statures moves the hands sideways,
    `crouch` (0..0.3) lowers everything above the knees, `lift_foot` raises the left foot (statures)."""
    local = {k: np.array(v, float) for k, v in _BODY.items()}
    for name in ("RElbow", "RWrist"):
        local[name][0] -= arm_swing * (0.5 if name == "RElbow" else 1.0)
    for name in ("LElbow", "LWrist"):
        local[name][0] += arm_swing * (0.5 if name == "LElbow" else 1.0)
    for name, v in local.items():
        if v[1] > 0.28:
            v[1] -= crouch * 0.5
    for name in ("LAnkle", "LBigToe", "LSmallToe", "LHeel"):
        local[name][1] += lift_foot
    body_local = np.array([local[n] for n in sorted(local, key=lambda n: B[n])])
    hands_local = np.stack([_hand(local["LWrist"], 1.0), _hand(local["RWrist"], -1.0)])
    face_local = _face(local["Nose"])

    def to_px(pts):
        out = np.empty(pts.shape[:-1] + (3,), np.float32)
        out[..., 0] = ankle_x + pts[..., 0] * stature
        out[..., 1] = ankle_y - pts[..., 1] * stature
        out[..., 2] = 0.9
        return out

    return to_px(body_local), to_px(hands_local), to_px(face_local)


def track_from_frames(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], width: int, height: int,
                      fps: float = 30.0) -> PoseTrack:
    return PoseTrack(body=np.stack([f[0] for f in frames]), hands=np.stack([f[1] for f in frames]),
                     face=np.stack([f[2] for f in frames]), width=width, height=height, fps=fps)
