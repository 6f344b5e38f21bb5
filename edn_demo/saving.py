"""Saving a .blend atomically, without the backup Blender leaves beside a file it saves over."""

from __future__ import annotations

import os
from pathlib import Path

import bpy


def save_blend(out: Path, relative_paths: bool = False) -> Path:
    """Save the open file as `out`, never half-written: saved beside it first (so relative paths resolve from the
    right folder), then renamed over it. Blender keeps the previous version of a file it saves over as
    `NAME.blend1`; saving the temporary file twice (to make paths relative) would leave one behind, so it goes."""
    out = Path(out)
    tmp = out.with_name("." + out.name + ".tmp.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp), check_existing=False, compress=True)
    if relative_paths:  # needs the file to have a path: only now can paths be made relative to it
        bpy.ops.file.make_paths_relative()
        bpy.ops.wm.save_mainfile(filepath=str(tmp), check_existing=False, compress=True)
    backup = tmp.with_name(tmp.name + "1")
    backup.unlink(missing_ok=True)
    os.replace(tmp, out)
    return out
