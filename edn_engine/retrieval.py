"""The retrieval baselines `edn eval` scores the model against: "could we just look the pose up?".

Two answers, from the dataset's training frames:

    nearest posture   the frame whose pose, centred and scaled by the torso, is closest: the same posture
                      anywhere in the frame at any size (the paper's baseline)
    nearest place     the frame whose pose in source pixels is closest: the same posture where the driving
                      pose stands, so the retrieved person is also in the right place (a stronger baseline
                      for a still camera, and the one a person-over-plate composite has to beat)

Distances are means over the BODY_25 joints present in both poses; a joint present in only one costs a fixed
penalty (one torso), so a partial match does not beat a full one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import EdnError
from .metrics import torso_length
from .pose.track import PoseTrack

SOURCE_TRACK = "track_source.npz"  # the dataset's track in source pixels


def pose_scale(body: np.ndarray) -> float:
    """A pose's size in its own pixels: the torso length, or a third of its visible height without one."""
    scale = torso_length(body)
    if scale > 0:
        return scale
    on = body[:, 2] > 0
    return max(float(np.ptp(body[on, 1])), 1.0) / 3.0 if on.any() else 1.0


def normalized_pose(body: np.ndarray) -> np.ndarray:
    """A BODY_25 pose (25, 3) centred on its visible points and scaled by its size (translation and size
    invariant, so retrieval matches the posture rather than the place)."""
    out = np.zeros_like(body, dtype=np.float32)
    on = body[:, 2] > 0
    if not on.any():
        return out
    centre = body[on, :2].mean(axis=0)
    out[on, :2] = (body[on, :2] - centre) / pose_scale(body)
    out[:, 2] = on
    return out


def nearest_poses(queries: np.ndarray, library: np.ndarray) -> np.ndarray:
    """For each query pose (Q, 25, 3), the index of the library pose (N, 25, 3) of the closest posture."""
    q = np.stack([normalized_pose(p) for p in queries])
    lib = np.stack([normalized_pose(p) for p in library])
    return np.array([_closest(p, lib, penalty=1.0) for p in q], np.int64)  # penalty: one (normalized) torso


def nearest_absolute(queries: np.ndarray, library: np.ndarray) -> np.ndarray:
    """For each query pose (Q, 25, 3) in pixels, the index of the library pose (N, 25, 3) in the same pixels
    that is closest as it stands (not translation invariant). Penalty: the library's median torso in pixels."""
    scales = [pose_scale(b) for b in library if (b[:, 2] > 0).any()]
    penalty = float(np.median(scales)) if scales else 1.0
    lib = np.asarray(library, np.float32)
    return np.array([_closest(np.asarray(p, np.float32), lib, penalty) for p in queries], np.int64)


def _closest(pose: np.ndarray, lib: np.ndarray, penalty: float) -> int:
    """Index of the library pose nearest `pose`: mean distance over joints in both, `penalty` per joint in one."""
    q_on = pose[None, :, 2] > 0
    lib_on = lib[:, :, 2] > 0
    both, either = q_on & lib_on, q_on | lib_on
    d = np.linalg.norm(lib[:, :, :2] - pose[None, :, :2], axis=-1)
    cost = (np.where(both, d, 0).sum(axis=1) + penalty * (either & ~both).sum(axis=1)) / np.maximum(
        either.sum(axis=1), 1)
    return int(np.argmin(cost))


# -- on a dataset ----------------------------------------------------------------------------------------

def retrieve(store, bodies: np.ndarray) -> list[int]:
    """Nearest posture: for each BODY_25 pose (N, 25, 3), the training frame number posed most alike."""
    t = store.track
    train = _train_frames(store)
    lib = np.stack([t.body[n - t.frame_start] for n in train])
    return [train[k] for k in nearest_poses(bodies, lib)]


def retrieve_absolute(store, bodies: np.ndarray) -> list[int]:
    """Nearest place: for each BODY_25 pose (N, 25, 3) in the dataset's source pixels, the training frame
    number whose source-pixel pose is closest as it stands."""
    src = source_track(store.dir)
    train = _train_frames(store)
    rows = [n - src.frame_start for n in train]
    if min(rows) < 0 or max(rows) >= src.frames:
        raise EdnError(f"{SOURCE_TRACK} does not cover the training frames", path=Path(store.dir) / SOURCE_TRACK)
    return [train[k] for k in nearest_absolute(bodies, src.body[rows])]


def source_track(dataset_dir: str | Path) -> PoseTrack:
    """The dataset's track in source pixels."""
    return PoseTrack.load(Path(dataset_dir) / SOURCE_TRACK)


def _train_frames(store) -> list[int]:
    train = store.frames("train")
    if not train:
        raise EdnError("the dataset has no training frames for the retrieval baselines", path=store.dir)
    return train
