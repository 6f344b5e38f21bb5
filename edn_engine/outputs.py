"""Output folders that never lose the user's data.

A stage that writes a folder (a dataset, stick figures, generated frames, an evaluation report) follows three
rules, all here so every stage keeps them the same way:

1. Check first (`check_output_folder`, before any long work): the folder is refused when it is a file, lies
   under a file, cannot be written, contains one of the stage's own inputs, or holds anything the stage does not
   make itself (an entry outside the stage's `Layout`). So a typo in `-o` can never delete the user's files.
2. Build beside it (`staged_folder`): the stage writes into `.NAME.partial` next to the target and swaps it in
   only when it finished. A failed run leaves the previous result exactly as it was, and a rerun replaces the
   previous output whole (no stale frames from a longer earlier run).
3. The swap renames the old folder to `.NAME.old`, the new one into place, then deletes the old one. A crash
   between the two renames leaves both on disk under names that say what they are; nothing is lost.

A `Layout` names the entries a stage makes, as regular expressions: a file pattern maps to None, a sub-folder
name maps to the Layout of its own entries.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator, Mapping, Optional

from .errors import EdnError

Layout = Mapping[str, Optional["Layout"]]

FRAMES: Layout = {r"frame_\d{6}\.png": None, "composite": {r"frame_\d{6}\.png": None}}
FIGURES: Layout = {r"figure_\d{6}\.png": None}
MATTES: Layout = {r"matte_\d{6}\.png": None}
DATASET: Layout = {"manifest.json": None, "track.npz": None, "track_source.npz": None, "plate.png": None,
                   "plate_mask.png": None, "frames": {r"frame_\d{6}\.(png|jpg)": None}, "mattes": MATTES,
                   "hands": {r"hand_\d{6}_[01]\.png": None}}
REPORT: Layout = {"report.json": None, "contact_sheet.png": None, "side_by_side.mp4": None}


def foreign_entry(folder: Path, layout: Layout) -> Path | None:
    """The first entry under `folder` that the layout does not name (None when every entry is the stage's own).
    Hidden names (a dot first) are EDN's own partial and scratch files, and the system's."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        sub = _match(layout, entry.name)
        if sub is _NO_MATCH or (sub is None) != (not entry.is_dir()):
            return entry
        if sub is not None:
            found = foreign_entry(entry, sub)
            if found is not None:
                return found
    return None


_NO_MATCH = object()


def _match(layout: Layout, name: str):
    for pattern, sub in layout.items():
        if re.fullmatch(pattern, name):
            return sub
    return _NO_MATCH


def check_output_folder(folder: str | Path, layout: Layout, what: str = "output folder",
                        inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """Refuse, with one line naming the folder, an output folder this stage must not write (see rule 1)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise EdnError(f"the {what} is a file, not a folder", path=folder)
    _check_writable(folder, what)
    resolved = folder.resolve()
    for item in inputs:
        if item is not None and inside(Path(item).resolve(), resolved):
            raise EdnError(f"the {what} contains this stage's input {item}: choose another output folder",
                           path=folder)
    if folder.is_dir():
        found = foreign_entry(folder, layout)
        if found is not None:
            raise EdnError(f"the {what} holds files EDN did not make here ({found.relative_to(folder)}); "
                           "refusing to replace them: choose an empty or new folder", path=folder)
    return folder


def check_output_file(path: str | Path, suffix: str, what: str = "output",
                      inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """Fail before minutes of work if a file output cannot be written (wrong suffix, a folder, a parent that is
    a file, a read-only folder), or would replace one of the stage's `inputs`."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise EdnError(f"the {what} must be a {suffix} file", path=path)
    if path.is_dir():
        raise EdnError(f"the {what} is a folder, not a file", path=path)
    for item in inputs:  # samefile: one file under two spellings (a case-blind disk, a link) is still the input
        if item is not None and path.exists() and Path(item).exists() and os.path.samefile(item, path):
            raise EdnError(f"the {what} is this stage's input {item}: choose another file", path=path)
    _check_writable(path, what)
    return path


def _check_writable(path: Path, what: str) -> None:
    """`path` (a file or folder, made or replaced by renaming) can be written: its nearest existing ancestor is
    a writable folder, and `path` itself, if it exists, is writable."""
    parent = nearest_existing(path.absolute().parent)
    if not parent.is_dir():
        raise EdnError(f"cannot write the {what} here: {parent} is a file, not a folder", path=path)
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise EdnError(f"cannot write the {what} here: {parent} is not writable", path=path)


def nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists."""
    for p in (path, *path.parents):
        if p.exists():
            return p
    return path


def inside(item: Path, folder: Path) -> bool:
    """Whether `item` is `folder` or lies under it (both resolved)."""
    return item == folder or folder in item.parents


def partial_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.partial")


@contextlib.contextmanager
def staged_folder(folder: str | Path, *, keep_on_failure: bool = False,
                  continue_from: bool = False) -> Iterator[Path]:
    """Yield the folder to build into (`.NAME.partial` beside `folder`); swap it in when the block succeeds.

    `continue_from`: start from what is there (an interrupted partial, else the finished folder's files) instead
    of an empty folder; `keep_on_failure`: leave the partial for a later `continue_from` (generation's
    --resume). Call `check_output_folder` first: this function trusts that `folder` is the stage's own.
    """
    folder = Path(folder)
    partial = partial_path(folder)
    if not continue_from and partial.exists():
        shutil.rmtree(partial)  # left by an earlier failed run of this stage
    if continue_from and not partial.exists() and folder.is_dir():
        shutil.copytree(folder, partial, copy_function=_link_or_copy)
    partial.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except BaseException:
        if not keep_on_failure:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    swap_in(partial, folder)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the filesystem allows (instant, and safe: EDN replaces files by rename, never in
    place), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def swap_in(new: Path, folder: Path) -> None:
    """Replace `folder` by `new` (see rule 3)."""
    old = folder.with_name(f".{folder.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
