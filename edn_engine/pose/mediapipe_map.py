"""From MediaPipe Holistic's landmarks to OpenPose's layouts (BODY_25, 2 x 21 hand points, 70 face points).

Plain tables plus small numpy functions; nothing here imports MediaPipe. Inputs are arrays of normalized
landmarks as Holistic gives them (x, y in [0, 1] of the image, z, and for the pose a visibility), outputs are
OpenPose rows (x, y in pixels, confidence in [0, 1], 0 = missing).

Left and right are always the PERSON's: MediaPipe's pose landmark 11 "left shoulder" and Holistic's
`left_hand_landmarks` (cropped around pose landmark 15, the left wrist) are the person's left, exactly as
OpenPose's LShoulder and `hand_left_keypoints_2d` are (checked on ../shared/data/openpose_frames: OpenPose's
LShoulder and MediaPipe's 11 land on the same image point). Nothing is mirrored.

Confidences. The pose has a per-landmark visibility, used as is. Holistic reports no per-point score for hands
or face, so a hand takes the visibility of its pose wrist and the face takes the mean visibility of the pose's
face landmarks (nose, eyes, ears, mouth): an occluded hand or a turned-away face then reads as less certain.
A point that falls outside the image (MediaPipe extrapolates off-frame joints) is marked missing, as OpenPose
would not report it.
"""

from __future__ import annotations

import numpy as np

from .skeleton import in_frame

# -- body ------------------------------------------------------------------------------------------------------
# MediaPipe Pose's 33 landmarks, for reference:
#  0 nose, 1-3 left eye inner/centre/outer, 4-6 right eye inner/centre/outer, 7 left ear, 8 right ear,
#  9 mouth left, 10 mouth right, 11 left shoulder, 12 right shoulder, 13 left elbow, 14 right elbow,
#  15 left wrist, 16 right wrist, 17/18 pinky, 19/20 index, 21/22 thumb, 23 left hip, 24 right hip,
#  25/26 knee, 27/28 ankle, 29/30 heel, 31/32 foot index (the toe end of the foot, at the second toe).
#
# BODY_25 index -> MediaPipe landmark(s). Two landmarks mean their midpoint; None means derived below.
BODY_25_FROM_MP: tuple[tuple[int, ...] | None, ...] = (
    (0,),        # 0  Nose
    (11, 12),    # 1  Neck       = shoulder midpoint (OpenPose's neck sits there, a few pixels lower at most)
    (12,),       # 2  RShoulder
    (14,),       # 3  RElbow
    (16,),       # 4  RWrist
    (11,),       # 5  LShoulder
    (13,),       # 6  LElbow
    (15,),       # 7  LWrist
    (23, 24),    # 8  MidHip     = hip midpoint (OpenPose defines it the same way)
    (24,),       # 9  RHip
    (26,),       # 10 RKnee
    (28,),       # 11 RAnkle
    (23,),       # 12 LHip
    (25,),       # 13 LKnee
    (27,),       # 14 LAnkle
    (5,),        # 15 REye      (eye centre)
    (2,),        # 16 LEye
    (8,),        # 17 REar
    (7,),        # 18 LEar
    None,        # 19 LBigToe    derived from the left foot index: see TOES
    None,        # 20 LSmallToe  derived: see TOES
    (29,),       # 21 LHeel
    None,        # 22 RBigToe    derived from the right foot index
    None,        # 23 RSmallToe  derived
    (30,),       # 24 RHeel
)

# Toes. MediaPipe's "foot index" is the tip of the second toe, between OpenPose's big toe (medial) and small toe
# (lateral); it has no point for either. We move the foot index medially for the big toe and laterally for the
# small toe by TOE_SPREAD x the hip vector (same-side hip minus other hip: the body's lateral direction as seen in
# the image, foreshortened as the body turns), and the small toe back toward the heel by SMALL_TOE_BACK x the
# toe-heel vector, as the fifth toe sits behind the others. The offset's direction was seen on OpenPose's own
# output (../shared/data/openpose_frames: the foot index lands between OpenPose's two toes, 15-20 px from each);
# its size is a round anatomical figure, not fitted to those frames: a fifth of the hip-joint spacing is about
# 3.5 cm, half a forefoot's width. (Mapping the foot index straight to the big toe gave PCK@0.1 0.887 there.)
TOES = {  # BODY_25 (big toe, small toe): (foot index, heel, same-side hip, other hip) in MediaPipe indices
    (19, 20): (31, 29, 23, 24),
    (22, 23): (32, 30, 24, 23),
}
TOE_SPREAD = 0.2
SMALL_TOE_BACK = 0.1

# Pose landmarks of the head: their mean visibility is the face's confidence.
FACE_VISIBILITY_FROM = tuple(range(0, 11))

# -- hands -----------------------------------------------------------------------------------------------------
# MediaPipe Hands and OpenPose share the 21-point order: wrist, then thumb, index, middle, ring, little finger,
# four points each from the base to the tip. So the map is the identity.
HAND_21_FROM_MP = tuple(range(21))
HAND_WRIST_FROM_MP = {"left": 15, "right": 16}  # pose wrist whose visibility a hand's points take

# -- face ------------------------------------------------------------------------------------------------------
# OpenPose's face: the 68 iBUG-300W points, then the right pupil (68) and the left pupil (69). iBUG numbers the
# person's right side first (image left on a face looking at the camera); MediaPipe's mesh point 33 is the
# person's right outer eye corner, 263 the left one. The table follows the face's outline, brows, nose, eyes and
# lips in iBUG order, choosing mesh points that lie on the same anatomical contour and are mirror pairs in the
# mesh (127/356, 234/454, 33/263, 61/291, ...), so the 68 points are as symmetric as iBUG's.
FACE_68_FROM_MP: tuple[int, ...] = (
    # 0-16 jaw line, from the right temple over the chin (8 = 152) to the left temple
    127, 234, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 454, 356,
    # 17-21 right brow (outer to inner), 22-26 left brow (inner to outer)
    70, 63, 105, 66, 107,
    336, 296, 334, 293, 300,
    # 27-30 nose bridge from between the eyes to the tip (1 is MediaPipe's nose tip)
    168, 197, 5, 1,
    # 31-35 lower nose, right alar base to left, 33 = below the tip (subnasale)
    75, 97, 2, 326, 305,
    # 36-41 right eye: outer corner, upper outer, upper inner, inner corner, lower inner, lower outer
    33, 160, 158, 133, 153, 144,
    # 42-47 left eye: inner corner, upper inner, upper outer, outer corner, lower outer, lower inner
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lips: right corner, upper lip to the left corner (54), lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lips: right corner, upper inner lip, left corner (64), lower inner lip
    78, 81, 13, 311, 308, 402, 14, 178,
)
# Pupils: the iris centres of the refined mesh (refine_face_landmarks=True gives 478 points; 468-472 are the
# person's right iris, 473-477 the left). Without refinement, the midpoint of the eye corners.
PUPILS_FROM_MP = {68: 468, 69: 473}
PUPILS_FALLBACK = {68: (33, 133), 69: (362, 263)}

assert len(BODY_25_FROM_MP) == 25 and len(FACE_68_FROM_MP) == 68


def _to_pixels(norm_xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalized 0..1 image coordinates -> pixels (no half-pixel shift: it changed nothing measurable vs OpenPose)."""
    return norm_xy[..., :2].astype(np.float64) * np.array([width, height], np.float64)


def body_from_mediapipe(pose: np.ndarray, width: int, height: int) -> np.ndarray:
    """(33, >=4) normalized pose landmarks (x, y, z, visibility) -> (25, 3) BODY_25 in pixels."""
    xy = _to_pixels(pose, width, height)
    vis = np.clip(pose[:, 3], 0.0, 1.0)
    out = np.zeros((25, 3), np.float64)
    for j, src in enumerate(BODY_25_FROM_MP):
        if src is None:
            continue
        idx = list(src)
        out[j, :2] = xy[idx].mean(axis=0)
        out[j, 2] = vis[idx].min()
    for (big, small), (toe, heel, hip, other_hip) in TOES.items():
        lateral = TOE_SPREAD * (xy[hip] - xy[other_hip])
        out[big, :2] = xy[toe] - lateral
        out[small, :2] = xy[toe] + lateral + SMALL_TOE_BACK * (xy[heel] - xy[toe])
        out[big, 2] = vis[toe]
        out[small, 2] = min(vis[toe], vis[heel])
    out[~in_frame(out[:, :2], width, height), 2] = 0.0
    out[out[:, 2] <= 0] = 0.0
    return out.astype(np.float32)


def hand_from_mediapipe(hand: np.ndarray, confidence: float, width: int, height: int) -> np.ndarray:
    """(21, >=2) normalized hand landmarks -> (21, 3) OpenPose hand in pixels, every point at `confidence`."""
    out = np.zeros((21, 3), np.float32)
    out[:, :2] = _to_pixels(hand[list(HAND_21_FROM_MP)], width, height)
    out[:, 2] = float(np.clip(confidence, 0.0, 1.0))
    out[~in_frame(out[:, :2], width, height)] = 0.0
    return out


def face_from_mediapipe(mesh: np.ndarray, confidence: float, width: int, height: int) -> np.ndarray:
    """(468 or 478, >=2) normalized face mesh -> (70, 3) OpenPose face in pixels, every point at `confidence`."""
    xy = _to_pixels(mesh, width, height)
    out = np.zeros((70, 3), np.float64)
    out[:68, :2] = xy[list(FACE_68_FROM_MP)]
    for j, idx in PUPILS_FROM_MP.items():
        out[j, :2] = xy[idx] if len(xy) > idx else xy[list(PUPILS_FALLBACK[j])].mean(axis=0)
    out[:, 2] = float(np.clip(confidence, 0.0, 1.0))
    out[~in_frame(out[:, :2], width, height)] = 0.0
    return out.astype(np.float32)


def face_confidence(pose: np.ndarray) -> float:
    return float(np.clip(pose[list(FACE_VISIBILITY_FROM), 3], 0.0, 1.0).mean())


def hand_confidence(pose: np.ndarray, side: str) -> float:
    return float(np.clip(pose[HAND_WRIST_FROM_MP[side], 3], 0.0, 1.0))
