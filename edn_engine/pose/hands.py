"""Where the hands are: a mask of one frame's hand regions, for the hand-weighted loss, and the boxes the hand
refiner works in (`hand_box`).

Hands are a few hundredths of a training frame, so in a frame-wide or even a person-wide mean their error
vanishes and the generator leaves them as flesh-coloured blurs that no detector reads as hands. The training
loss adds an L1 term normalized over this mask (`models.losses`), so the two hands weigh as much as the whole
person. The mask is discs around the hand keypoints found (each hand's 21 points), and, for a hand the detector
missed, a larger disc around the body's wrist, so a missed hand still counts.
"""

from __future__ import annotations

import cv2
import numpy as np

from .skeleton import B, THRESHOLDS

RADIUS_PER_HEIGHT = 0.02  # disc radius as a share of the frame height: ~5 px at 256, a finger's width and a half


def hand_radius(height: int) -> int:
    """The discs' radius in pixels for a frame `height` tall (the window holds the person at one scale)."""
    return max(2, int(round(RADIUS_PER_HEIGHT * height)))


def hand_mask(body: np.ndarray, hands: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 in {0, 1}: the hand regions of one frame, whose keypoints are in the pixels of `size` (W, H).

    body: (25, 3) BODY_25, hands: (2, 21, 3) [left, right], as a `PoseTrack` row."""
    w, h = size
    r = hand_radius(h)
    mask = np.zeros((h, w), np.uint8)
    for side, wrist in ((0, B["LWrist"]), (1, B["RWrist"])):
        points = hands[side]
        found = points[:, 2] > THRESHOLDS["hands"]
        if found.any():
            for x, y in points[found, :2]:
                cv2.circle(mask, (int(round(x)), int(round(y))), r, 1, -1)
        elif body[wrist, 2] > THRESHOLDS["body"]:
            x, y = body[wrist, :2]
            cv2.circle(mask, (int(round(x)), int(round(y))), 3 * r, 1, -1)
    return mask


# -- hand boxes: where the hand refiner works, in the source's own pixels ---------------------------------------
HAND_BOX = 0.10  # a hand box's side as a share of the window's height (the person's scale): a hand is about half
#                  of it (romp_sample2: hands 47-72 px across, boxes 100-123 px in 1080p)
FOREARM_REACH = 0.35  # a hand the detector missed: its centre that share of the forearm beyond the wrist


def hand_box(body: np.ndarray, hands: np.ndarray, side: int, person_height: float,
             share: float = HAND_BOX) -> tuple[float, float, float] | None:
    """The square (x0, y0, size) in the keypoints' pixels where hand `side` (0 left, 1 right) is, or None.

    Centred on the hand's keypoints when at least five were found, else past the wrist along the forearm (the
    detector misses hands that a refiner can still draw); sized by `person_height` (the window's height), not by
    the keypoints, which shrink when a hand is seen edge-on."""
    wrist, elbow = (B["LWrist"], B["LElbow"]) if side == 0 else (B["RWrist"], B["RElbow"])
    points = hands[side]
    found = points[:, 2] > THRESHOLDS["hands"]
    if found.sum() >= 5:
        centre = (points[found, :2].min(axis=0) + points[found, :2].max(axis=0)) / 2
    elif body[wrist, 2] > THRESHOLDS["body"] and body[elbow, 2] > THRESHOLDS["body"]:
        centre = body[wrist, :2] + FOREARM_REACH * (body[wrist, :2] - body[elbow, :2])
    else:
        return None
    size = share * float(person_height)
    return (float(centre[0]) - size / 2, float(centre[1]) - size / 2, size)
