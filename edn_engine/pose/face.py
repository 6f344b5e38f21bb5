"""Where the face is: the centre and the square box of the Face GAN's crop, from one frame's keypoints.

Shared by the dataset (which records them per frame), generation (which crops there) and evaluation (which
scores the face box), so all three crop the same square.
"""

from __future__ import annotations

import numpy as np

from .skeleton import B


def face_centre(body: np.ndarray, face: np.ndarray) -> tuple[float, float] | None:
    """Where the face crop is centred: the nose (as in the paper), else the mean of the face points found."""
    if body[B["Nose"], 2] > 0:
        return float(body[B["Nose"], 0]), float(body[B["Nose"], 1])
    present = face[:, 2] > 0
    if present.any():
        return float(face[present, 0].mean()), float(face[present, 1].mean())
    return None


def face_box(centre: tuple[float, float] | None, side: int, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of a `side` square centred on `centre`, shifted to lie inside the frame."""
    if centre is None:
        return None
    w, h = size
    side = min(side, w, h)
    x0 = int(round(centre[0] - side / 2))
    y0 = int(round(centre[1] - side / 2))
    x0 = min(max(x0, 0), w - side)
    y0 = min(max(y0, 0), h - side)
    return x0, y0, x0 + side, y0 + side
