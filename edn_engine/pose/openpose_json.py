"""OpenPose JSON interop: a folder of per-frame keypoint files <-> `PoseTrack`.

OpenPose writes one JSON file per frame (`--write_json`), e.g. `clip_000000000042_keypoints.json`:

    {"version": 1.3, "people": [{"person_id": [-1],
        "pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...],          # 25 points (BODY_25) or 18 (COCO-18)
        "face_keypoints_2d": [...],                                 # 70 points, or [] when not run
        "hand_left_keypoints_2d": [...], "hand_right_keypoints_2d": [...],   # 21 points each, or []
        "pose_keypoints_3d": [], ...}]}

Version 1.0/1.1 files use the same lists without the `_2d` suffix; both are read. x and y are pixels, c a
confidence, (0, 0, 0) a missing point.

Import decisions:
* Several people in a frame: the one whose confident body points span the largest bounding box (the dancer in
  front, not a passer-by far behind); the count is reported.
* COCO-18 files are mapped to BODY_25. Toes and heels stay missing. MidHip, which COCO-18 lacks, is derived as the
  midpoint of the two hips (confidence: the lower of the two) when both are present, exactly as BODY_25 defines
  the point; without it the figure's spine (Neck-MidHip) and both hip limbs would vanish from every frame.
* Frame numbers come from the last run of digits in each file name (`..._000000000042_keypoints.json` and
  `frame000042.json` are frame 42); `frame_start` is the first one, and numbers missing from the sequence become
  frames with nobody in them, so the track stays aligned with the footage. Files without distinct numbers are
  taken in natural order from frame 0.
* Confidences are clipped to [0, 1] (OpenPose's hand and face scores can overshoot 1 slightly).

Export writes OpenPose 1.3 files, one per frame, each atomically; numbers are written with the shortest text that
reads back as the same float32, so export -> import keeps every value exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..errors import EdnError
from ..events import Reporter
from .skeleton import B, COCO_18_TO_BODY_25
from .track import PoseTrack

OPENPOSE_VERSION = 1.3
# JSON keys per part; the second name is OpenPose 1.0/1.1's.
_KEYS = {
    "body": ("pose_keypoints_2d", "pose_keypoints"),
    "face": ("face_keypoints_2d", "face_keypoints"),
    "left": ("hand_left_keypoints_2d", "hand_left_keypoints"),
    "right": ("hand_right_keypoints_2d", "hand_right_keypoints"),
}
_POINTS = {"face": 70, "left": 21, "right": 21}
_NUMBER = re.compile(r"(\d+)(?!.*\d)")
_MAX_SPAN_FACTOR = 50  # frame numbers may skip (every 4th frame...), not span a million rows for ten files


# ---------------------------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------------------------
def list_keypoint_files(folder: str | Path) -> list[Path]:
    """`*_keypoints.json` in `folder` if there are any, else every `*.json`; sorted naturally."""
    folder = Path(folder)
    if not folder.exists():
        raise EdnError("OpenPose JSON folder not found", path=folder)
    if not folder.is_dir():
        raise EdnError("expected a folder of OpenPose JSON files, not a file", path=folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json" and not p.name.startswith(".")]
    keypoint_files = [p for p in files if p.stem.lower().endswith("_keypoints")]
    files = keypoint_files or files
    if not files:
        raise EdnError("the folder holds no OpenPose JSON files (*_keypoints.json or *.json)", path=folder)
    return sorted(files, key=lambda p: _natural_key(p.name))


def frame_numbers(files: list[Path]) -> list[int]:
    """The frame number of each file (last digits of its name), or 0, 1, 2... when they are absent or repeat."""
    matches = [_NUMBER.search(p.stem) for p in files]
    if all(matches):
        numbers = [int(m.group(1)) for m in matches]
        if len(set(numbers)) == len(numbers):
            return numbers
    return list(range(len(files)))


def read_frame(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One OpenPose JSON file -> (body (25,3), hands (2,21,3), face (70,3), number of people in the file)."""
    path = Path(path)
    try:
        doc = json.loads(Path(path).read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise EdnError(f"cannot read the OpenPose JSON ({exc})", path=path) from exc
    except json.JSONDecodeError as exc:
        raise EdnError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=path) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise EdnError("not an OpenPose keypoint file (no 'people' list)", path=path)
    people = [_read_person(p, k, path) for k, p in enumerate(doc["people"])]
    body = np.zeros((25, 3), np.float32)
    hands = np.zeros((2, 21, 3), np.float32)
    face = np.zeros((70, 3), np.float32)
    if people:
        body, hands, face = max(people, key=_person_size)
    return body, hands, face, len(people)


def import_openpose(folder: str | Path, size: tuple[int, int], fps: float = 30.0,
                    reporter: Reporter | None = None) -> PoseTrack:
    """Read a folder of per-frame OpenPose JSON files into a track of frame size `size` = (width, height)."""
    return import_openpose_with_stats(folder, size, fps, reporter)[0]


def import_openpose_with_stats(folder: str | Path, size: tuple[int, int], fps: float = 30.0,
                               reporter: Reporter | None = None) -> tuple[PoseTrack, dict]:
    """`import_openpose`, plus counts for the command's summary (files, frames with several people, empty)."""
    folder = Path(folder)
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise EdnError(f"frame size {width}x{height} must be positive", path=folder)
    files = list_keypoint_files(folder)
    numbers = frame_numbers(files)
    start, span = numbers[0], numbers[-1] - numbers[0] + 1
    if span > _MAX_SPAN_FACTOR * len(files) + 1000:
        raise EdnError(f"frame numbers run from {numbers[0]} to {numbers[-1]} for only {len(files)} files; "
                       "are these one clip's files?", path=folder)
    track = PoseTrack.empty(span, width, height, fps=float(fps), frame_start=start, source=str(folder))
    crowded = empty = 0
    for k, (path, n) in enumerate(zip(files, numbers)):
        body, hands, face, people = read_frame(path)
        row = n - start
        track.body[row], track.hands[row], track.face[row] = body, hands, face
        crowded += people > 1
        empty += people == 0
        if reporter is not None:
            reporter.progress(k + 1, len(files), stage="import", frame=n)
    track.validate(folder)
    if crowded and reporter is not None:
        reporter.log(f"{crowded} frame(s) held several people; the largest was kept")
    stats = {"files": len(files), "frames": span, "frames_without_file": span - len(files),
             "frames_with_several_people": crowded, "frames_with_nobody": empty}
    return track, stats


def _read_person(person, index: int, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(person, dict):
        raise EdnError(f"people[{index}] is not an object", path=path)
    raw = {part: _flat_points(person, part, index, path) for part in _KEYS}
    body = _body_25(raw["body"], index, path)
    hands = np.stack([_fixed_points(raw["left"], "left", index, path),
                      _fixed_points(raw["right"], "right", index, path)])
    face = _fixed_points(raw["face"], "face", index, path)
    return body, hands, face


def _flat_points(person: dict, part: str, index: int, path: Path) -> np.ndarray:
    """The part's flat x,y,c list as (N, 3) float32; (0, 3) when absent or empty."""
    key = next((k for k in _KEYS[part] if k in person), None)
    values = person.get(key) if key else None
    if values is None or values == []:
        return np.zeros((0, 3), np.float32)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EdnError(f"people[{index}].{key} holds something other than numbers", path=path) from exc
    if arr.ndim != 1 or arr.size % 3:
        raise EdnError(f"people[{index}].{key} has {arr.size} values, not a flat list of x, y, confidence", path=path)
    if not np.isfinite(arr).all():
        raise EdnError(f"people[{index}].{key} holds NaN or infinite values", path=path)
    pts = arr.astype(np.float32).reshape(-1, 3)
    pts[:, 2] = np.clip(pts[:, 2], 0.0, 1.0)
    return pts


def _body_25(pts: np.ndarray, index: int, path: Path) -> np.ndarray:
    if len(pts) in (0, 25):
        return pts if len(pts) else np.zeros((25, 3), np.float32)
    if len(pts) != 18:
        raise EdnError(f"people[{index}] body has {len(pts)} points; EDN reads BODY_25 (25) and COCO-18 (18)",
                       path=path)
    body = np.zeros((25, 3), np.float32)
    body[list(COCO_18_TO_BODY_25)] = pts
    r, l = body[B["RHip"]], body[B["LHip"]]
    if r[2] > 0 and l[2] > 0:
        body[B["MidHip"]] = ((r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2]))
    return body


def _fixed_points(pts: np.ndarray, part: str, index: int, path: Path) -> np.ndarray:
    n = _POINTS[part]
    if len(pts) == 0:
        return np.zeros((n, 3), np.float32)
    if len(pts) != n:
        raise EdnError(f"people[{index}] {part} has {len(pts)} points, expected {n}", path=path)
    return pts


def _person_size(person: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Bounding-box area of the confident body points (then of all points, then total confidence) for ranking."""
    body, hands, face = person
    everything = np.concatenate([body, hands.reshape(-1, 3), face])
    for pts in (body, everything):
        seen = pts[pts[:, 2] > 0]
        if len(seen) >= 2:
            extent = seen[:, :2].max(axis=0) - seen[:, :2].min(axis=0)
            return float(extent[0] * extent[1]), float(seen[:, 2].sum())
    return 0.0, float(everything[:, 2].sum())


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name.lower())]


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------
def export_openpose(track: PoseTrack, folder: str | Path, stem: str | None = None,
                    reporter: Reporter | None = None) -> list[Path]:
    """Write `<stem>_<frame:012d>_keypoints.json` per frame (OpenPose 1.3), each file atomically.

    `stem` defaults to the track's source name. A frame with no point at all gets an empty `people` list, as
    OpenPose writes for a frame with nobody in it. Existing files of the same names are replaced.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise EdnError("the output must be a folder", path=folder)
    stem = _safe_stem(stem if stem is not None else (Path(track.source).stem if track.source else "") or "pose")
    written = []
    for i in range(track.frames):
        n = track.frame_start + i
        path = folder / f"{stem}_{n:012d}_keypoints.json"
        write_text(path, frame_json(track.body[i], track.hands[i], track.face[i]))
        written.append(path)
        if reporter is not None:
            reporter.progress(i + 1, track.frames, stage="export", frame=n)
    return written


def frame_json(body: np.ndarray, hands: np.ndarray, face: np.ndarray) -> str:
    """One frame in OpenPose 1.3 JSON text."""
    parts = (body, hands[0], hands[1], face)
    if not any((np.asarray(p)[:, 2] > 0).any() for p in parts):
        return json.dumps({"version": OPENPOSE_VERSION, "people": []}) + "\n"
    fields = [
        '"person_id":[-1]',
        f'"pose_keypoints_2d":{_numbers(body)}',
        f'"face_keypoints_2d":{_numbers(face)}',
        f'"hand_left_keypoints_2d":{_numbers(hands[0])}',
        f'"hand_right_keypoints_2d":{_numbers(hands[1])}',
        '"pose_keypoints_3d":[]', '"face_keypoints_3d":[]', '"hand_left_keypoints_3d":[]',
        '"hand_right_keypoints_3d":[]',
    ]
    return '{"version":%s,"people":[{%s}]}\n' % (OPENPOSE_VERSION, ",".join(fields))


def _numbers(pts: np.ndarray) -> str:
    """Flat list; each float32 as the shortest decimal that parses back to the same float32."""
    flat = np.asarray(pts, np.float32).ravel()
    return "[" + ",".join(np.format_float_positional(v, unique=True, trim="-") for v in flat) + "]"


def _safe_stem(stem: str) -> str:
    stem = re.sub(r"[^\w\-]+", "_", stem).strip("_")
    return stem or "pose"
