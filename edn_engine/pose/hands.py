"""Where the hands are: a mask of one frame's hand regions, from its keypoints, for the hand-weighted loss.

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
