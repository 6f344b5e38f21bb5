"""Atomic writes: write to a temporary file in the same folder, fsync, then rename over the target.

An interrupted job (SIGKILL, full disk) never leaves a half-written track, checkpoint or frame behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import EdnError


def ensure_dir(folder: str | Path, what: str = "output folder") -> Path:
    """Create `folder` and its parents and check it can be written; the error names the folder and says why."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise EdnError(f"the {what} is a file, not a folder", path=folder)
    for parent in folder.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise EdnError(f"cannot create the {what}: {parent} is a file, not a folder", path=folder)
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdnError(f"cannot create the {what} ({exc.strerror or exc})", path=folder) from exc
    if not os.access(folder, os.W_OK):
        raise EdnError(f"the {what} is not writable", path=folder)
    return folder


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed to `target`, on failure removed.

    `suffix` defaults to the target's own suffix so that writers which choose a format by extension
    (cv2.imwrite, np.savez) behave as for the real name.
    """
    target = Path(target)
    folder = ensure_dir(target.parent)
    suffix = suffix if suffix is not None else target.suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the user's usual mode
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, so not while writer threads run


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, what: str = "file", format_name: str | None = None, hint: str = "") -> Any:
    """A JSON file EDN wrote; EdnError naming it when it is unreadable, empty or (with `format_name`) not of that
    format, ending with `hint` (what to do) when given."""
    end = f": {hint}" if hint else ""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if not text.strip():  # json says "Expecting value: line 1 column 1 (char 0)"
            raise EdnError(f"unreadable {what} (the file is empty){end}", path=path)
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdnError(f"unreadable {what} ({exc}){end}", path=path) from exc
    if format_name is not None and (not isinstance(doc, dict) or doc.get("format") != format_name):
        raise EdnError(f"not an EDN {what}{end}", path=path)
    return doc


_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive: a member first, or an empty one


def read_npz(path: str | Path, what: str, hint: str = "") -> dict[str, np.ndarray]:
    """The arrays of an .npz EDN wrote, pickles refused; EdnError naming it when it is damaged or not an .npz
    (zlib.error: a damaged member), ending with `hint` (what to do) when given. A file that is no zip archive at all
    (text renamed .npz, an .npy) is told apart first: numpy would try it as a pickle and report pickled data."""
    end = f": {hint}" if hint else ""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head.startswith(_NPZ_MAGIC):
            raise EdnError(f"not a readable {what}: " + ("the file is empty" if not head else
                                                         "the file is not an .npz archive") + end, path=path)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise EdnError(f"not a readable {what}, damaged or not an .npz ({exc}){end}", path=path) from exc
