"""OpenPose keypoint layouts: BODY_25, the 21-point hand and the 70-point face, with names and limbs.

These orders are a file-format contract (OpenPose JSON, `.npz` tracks, the add-on's bone maps).
"""

from __future__ import annotations

import numpy as np

BODY_25 = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle",
    "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
B = {name: i for i, name in enumerate(BODY_25)}

# OpenPose's render thresholds: a keypoint is drawn (and counted as found) above its part's confidence.
THRESHOLDS = {"body": 0.05, "hands": 0.2, "face": 0.4}

# OpenPose's BODY_25 limb list, in its drawing order (the order fixes the colours).
BODY_25_LIMBS = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
    (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22),
    (22, 23), (11, 24),
)

# OpenPose's hand: wrist, then four points per finger from thumb to little finger (base to tip).
HAND_21 = ("Wrist",) + tuple(f"{finger}{k}" for finger in ("Thumb", "Index", "Middle", "Ring", "Pinky")
                             for k in range(1, 5))
HAND_LIMBS = tuple((0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4))

# OpenPose's face: the 68 iBUG points (0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth),
# then 68 right pupil and 69 left pupil.
FACE_70_COUNT = 70
FACE_CONTOURS = (
    tuple(range(0, 17)), tuple(range(17, 22)), tuple(range(22, 27)), tuple(range(27, 31)), tuple(range(31, 36)),
    tuple(range(36, 42)) + (36,), tuple(range(42, 48)) + (42,), tuple(range(48, 60)) + (48,),
    tuple(range(60, 68)) + (60,),
)
# The paper's sparse face, as its official code draws it (`renderface_sparse`, "sparse 8 default"): top of the
# nose bridge, nose tip, chin, both jaw ends (beside the ears), bottom of the nose, right and left pupil. They give
# the head's position, turn and tilt without the noisy mouth and eye contours. Used by the default figure style.
FACE_SPARSE_8 = (27, 30, 8, 0, 16, 33, 68, 69)

# OpenPose's COCO-18 body (older models, ControlNet's annotator): its point i is BODY_25 point COCO_18_TO_BODY_25[i].
# COCO-18 has no MidHip, toes or heels.
COCO_18 = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)
COCO_18_TO_BODY_25 = tuple(B[name] for name in COCO_18)

PARTS = ("body", "hands", "face")


def _mirror_of(names: tuple[str, ...]) -> tuple[int, ...]:
    """Each point's mirror image (R and L exchanged): the index of its counterpart, or its own."""
    swap = {"R": "L", "L": "R"}
    where = {name: i for i, name in enumerate(names)}
    return tuple(where.get(swap[n[0]] + n[1:], i) if n[0] in swap else i for i, n in enumerate(names))


# Where each point goes when the picture is mirrored left to right: the right elbow becomes the left one.
BODY_25_MIRROR = _mirror_of(BODY_25)
FACE_70_MIRROR = (
    *range(16, -1, -1), *range(26, 21, -1), *range(21, 16, -1), 27, 28, 29, 30, *range(35, 30, -1),
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes: corner to corner, upper lid to upper lid
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lip
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lip
    69, 68,  # pupils
)


def mirror_pose(body: np.ndarray, hands: np.ndarray, face: np.ndarray,
                width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's keypoints (x, y, confidence) as the picture mirrored left to right shows them: x -> width - x
    (pixel centres at index + 0.5) and each point's right and left exchanged, the hands' too."""
    def flip(points: np.ndarray, order) -> np.ndarray:
        out = points[..., order, :].copy()
        found = out[..., 2] > 0
        out[..., 0] = np.where(found, width - out[..., 0], out[..., 0])
        return out

    return flip(body, list(BODY_25_MIRROR)), flip(hands[::-1], slice(None)), flip(face, list(FACE_70_MIRROR))


def in_frame(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which points (..., 2) in pixels lie on a width x height frame (0 to width - 1, 0 to height - 1)."""
    return (xy[..., 0] >= 0) & (xy[..., 0] <= width - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= height - 1)
