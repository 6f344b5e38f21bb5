"""`PoseTrack`: a person's keypoints over time, the unit every stage passes around.

Saved as `.npz` with a schema version. x and y are pixels of the source frame; the third value is a confidence
in [0, 1] where 0 means missing.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

from ..atomic import read_npz, write_bytes
from ..errors import EdnError

SCHEMA_VERSION = 1
SHAPES = {"body": (25, 3), "hands": (2, 21, 3), "face": (70, 3)}


@dataclasses.dataclass
class PoseTrack:
    body: np.ndarray  # (T, 25, 3) float32, OpenPose BODY_25 order
    hands: np.ndarray  # (T, 2, 21, 3) float32, [left, right], OpenPose hand order
    face: np.ndarray  # (T, 70, 3) float32, OpenPose face order (68 + right pupil, left pupil)
    width: int
    height: int
    fps: float = 30.0
    frame_start: int = 0  # source frame number of row 0, so a track lines up with a sequencer strip
    source: str = ""

    def __post_init__(self) -> None:
        for part in SHAPES:
            setattr(self, part, np.ascontiguousarray(getattr(self, part), dtype=np.float32))
        self.validate()

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def empty(cls, frames: int, width: int, height: int, **meta) -> "PoseTrack":
        """A track with every keypoint missing (confidence 0)."""
        return cls(
            body=np.zeros((frames, *SHAPES["body"]), np.float32),
            hands=np.zeros((frames, *SHAPES["hands"]), np.float32),
            face=np.zeros((frames, *SHAPES["face"]), np.float32),
            width=width, height=height, **meta,
        )

    def __repr__(self) -> str:
        return (f"PoseTrack(frames={self.frames}, size={self.width}x{self.height}, fps={self.fps:g}, "
                f"frame_start={self.frame_start}, source={self.source!r})")

    @property
    def frames(self) -> int:
        return int(self.body.shape[0])

    def __len__(self) -> int:
        return self.frames

    def replace(self, **changes) -> "PoseTrack":
        return dataclasses.replace(self, **changes)

    def slice(self, start: int, stop: int) -> "PoseTrack":
        """Rows [start, stop), keeping `frame_start` in step."""
        return self.replace(body=self.body[start:stop], hands=self.hands[start:stop], face=self.face[start:stop],
                            frame_start=self.frame_start + start)

    def copy(self) -> "PoseTrack":
        return self.replace(body=self.body.copy(), hands=self.hands.copy(), face=self.face.copy())

    def detection_rates(self) -> dict[str, float]:
        """Fraction of frames in which each part was found (body: any joint; hands: each hand; face)."""
        t = max(self.frames, 1)
        return {
            "body": float((self.body[..., 2] > 0).any(axis=1).sum() / t),
            "left_hand": float((self.hands[:, 0, :, 2] > 0).any(axis=1).sum() / t),
            "right_hand": float((self.hands[:, 1, :, 2] > 0).any(axis=1).sum() / t),
            "face": float((self.face[..., 2] > 0).any(axis=1).sum() / t),
        }

    # -- checks ------------------------------------------------------------------------------------
    def validate(self, path: str | Path | None = None) -> None:
        frames = self.body.shape[0] if self.body.ndim else -1
        for part, shape in SHAPES.items():
            arr = getattr(self, part)
            if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape or arr.shape[0] != frames:
                raise EdnError(f"pose track part '{part}' has shape {tuple(arr.shape)}, expected "
                               f"({frames}, {', '.join(map(str, shape))})", path=path)
            if not np.isfinite(arr).all():
                bad = int(np.argwhere(~np.isfinite(arr).reshape(frames, -1).all(axis=1))[0, 0])
                raise EdnError(f"pose track part '{part}' holds NaN or infinite values", path=path,
                               frame=self.frame_start + bad)
            conf = arr[..., 2]
            if conf.size and (conf.min() < 0 or conf.max() > 1):
                raise EdnError(f"pose track part '{part}' has confidences outside [0, 1]", path=path)
        if self.width <= 0 or self.height <= 0:
            raise EdnError(f"pose track size {self.width}x{self.height} is not positive", path=path)
        if not self.fps > 0:
            raise EdnError(f"pose track fps {self.fps} is not positive", path=path)

    # -- files -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write atomically: a crash never leaves a half-written track."""
        path = Path(path)
        buf = io.BytesIO()
        np.savez_compressed(
            buf, schema_version=np.int32(SCHEMA_VERSION), body=self.body, hands=self.hands, face=self.face,
            width=np.int32(self.width), height=np.int32(self.height), fps=np.float64(self.fps),
            frame_start=np.int64(self.frame_start), source=np.str_(self.source),
        )
        write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PoseTrack":
        path = Path(path)
        if path.is_dir():
            raise EdnError("this is a folder, not a pose track file (.npz)", path=path)
        if not path.is_file():
            raise EdnError("pose track not found", path=path)
        fields = read_npz(path, "pose track")
        if "schema_version" not in fields:
            raise EdnError("not an EDN pose track (no schema_version)", path=path)
        version = int(fields["schema_version"])
        if version > SCHEMA_VERSION:
            raise EdnError(f"pose track schema {version} is newer than this EDN reads ({SCHEMA_VERSION}); "
                           "update EDN", path=path)
        missing = [k for k in ("body", "hands", "face", "width", "height") if k not in fields]
        if missing:
            raise EdnError(f"pose track lacks {', '.join(missing)}", path=path)
        try:
            track = cls.__new__(cls)
            track.body = np.asarray(fields["body"], np.float32)
            track.hands = np.asarray(fields["hands"], np.float32)
            track.face = np.asarray(fields["face"], np.float32)
            track.width = int(fields["width"])
            track.height = int(fields["height"])
            track.fps = float(fields.get("fps", 30.0))
            track.frame_start = int(fields.get("frame_start", 0))
            track.source = str(fields.get("source", ""))
        except (TypeError, ValueError) as exc:
            raise EdnError(f"pose track has malformed fields ({exc})", path=path) from exc
        track.validate(path)
        return track
