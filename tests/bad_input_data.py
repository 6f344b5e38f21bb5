"""Bad inputs for the bad-input battery (`test_bad_input_*.py`), made on the spot: damaged files, synthetic clips,
and a snapshot of a folder tree that tells whether a failed command left anything behind or changed anything.

Nothing here reads the footage beyond a few frames, and nothing is written outside the folders the tests give.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np


# ---------------------------------------------------------------------------------------------------------------
# what a folder holds, to compare before and after a command
# ---------------------------------------------------------------------------------------------------------------
def snapshot(*roots: Path) -> dict[str, str]:
    """Every file (SHA-256 of its bytes) and folder ("<dir>", empty ones included) under `roots`, hidden names too."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            out[str(root)] = "<absent>"
            continue
        for p in sorted(root.rglob("*")):
            if p.is_symlink() or p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir():
                out[str(p)] = "<dir>"
    return out


def describe_changes(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    lines = [f"+ {p}" for p in added] + [f"- {p}" for p in removed] + [f"~ {p}" for p in changed]
    return "\n".join(lines[:40]) + ("\n..." if len(lines) > 40 else "")


# ---------------------------------------------------------------------------------------------------------------
# damaged files
# ---------------------------------------------------------------------------------------------------------------
def damage_npz_member(src: Path, dst: Path, member: str = "body.npy") -> Path:
    """A copy of the compressed .npz `src` with bytes flipped inside `member`'s deflate stream, so zlib fails on it
    (the zip directory stays intact: the file still opens as a zip and lists its members)."""
    data = bytearray(Path(src).read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(member)
    assert info.compress_type == zipfile.ZIP_DEFLATED, f"{member} is not deflated in {src}"
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    size = info.compress_size
    assert size > 64, f"{member} is too small to damage"
    data[start] |= 0x06  # the first block's type becomes 3, which deflate reserves: "invalid block type"
    for k in range(start + size // 3, start + size // 3 + 32):
        data[k] ^= 0xFF
    Path(dst).write_bytes(bytes(data))
    try:  # the damage must be one zlib itself reports, not only a CRC mismatch after a lucky decode
        with zipfile.ZipFile(dst) as zf:
            zf.read(member)
    except zlib.error:
        return Path(dst)
    raise AssertionError(f"damaging {member} of {dst} did not make zlib fail")


def npz_with(dst: Path, **arrays) -> Path:
    """An .npz of the given arrays (to make tracks that lack fields, have wrong shapes or hold NaN)."""
    with open(dst, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(dst)


def track_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def flip_tensor_bytes(ckpt: Path, tensor, count: int = 64) -> int:
    """Flip `count` bytes of `tensor`'s storage inside the torch.save file `ckpt` (stored uncompressed in its zip);
    returns the offset of the first flipped byte. The zip and pickle stay readable: only the numbers change."""
    raw = tensor.detach().cpu().contiguous().view(-1).numpy().tobytes()
    assert len(raw) >= count, "tensor too small"
    data = bytearray(Path(ckpt).read_bytes())
    where = data.find(raw)
    assert where >= 0, "tensor bytes not found in the checkpoint"
    assert data.find(raw, where + 1) < 0, "tensor bytes found twice in the checkpoint"
    for k in range(where, where + count):
        data[k] ^= 0xA5
    Path(ckpt).write_bytes(bytes(data))
    return where


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return Path(path)


def edit_json(path: Path, change) -> None:
    obj = json.loads(Path(path).read_text(encoding="utf-8"))
    change(obj)
    Path(path).write_text(json.dumps(obj, indent=2), encoding="utf-8")


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------------------------
# synthetic footage
# ---------------------------------------------------------------------------------------------------------------
def noise_frames(n: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size[1], size[0], 3), np.uint8) for _ in range(n)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """An .mp4 (OpenCV's mp4v) of BGR frames, written through a temporary ASCII-free-safe route."""
    h, w = frames[0].shape[:2]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for f in frames:
        writer.write(f)
    writer.release()
    assert path.stat().st_size > 0
    return path


def write_pngs(folder: Path, frames: list[np.ndarray], prefix: str = "frame_", first: int = 0) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(frames):
        ok, buf = cv2.imencode(".png", f)
        assert ok
        (folder / f"{prefix}{first + k:06d}.png").write_bytes(buf.tobytes())
    return folder


def read_clip(clip: Path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a real clip (BGR)."""
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) == count, f"{clip} has fewer than {count} frames"
    return frames


def side_by_side(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Two copies of the same person, one beside the other (the second mirrored, so they are not identical)."""
    return [np.concatenate([f, cv2.flip(f, 1)], axis=1) for f in frames]
