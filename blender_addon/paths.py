"""Where the add-on's files live: the engine's one project layout, one folder per target person.

The scene's Project Folder (default `//edn/`, beside the .blend) holds a folder per target strip; each is an
engine project (`edn_engine.layout.ProjectLayout`, the layout `edn transfer` writes), so the add-on's stages and
`edn transfer` on the same folder find each other's outputs, and a second person never overwrites the first
one's dataset or trained run. The source motion, driving poses, stick figures and frames of a transfer live in
the folder of the person who performs them. Logs go to the Project Folder's logs/; set-up and check logs, and
bone map presets, to the extension's user folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import bpy

from .bundled import engine_module
from .ops_base import OpError

ProjectLayout = engine_module("layout").ProjectLayout


def safe_name(name: str) -> str:
    """A folder name from a strip or object name: keeps spaces and non-ASCII, drops path separators."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
    return cleaned or "untitled"


def abspath(path: str) -> Path:
    """A property's path as an absolute path (`//` is the .blend's folder)."""
    return Path(bpy.path.abspath(path))


def need_file(path: str, what: str, hint: str) -> Path:
    """An input file that a stage needs: missing ones are named with what to do about them."""
    if not path:
        raise OpError(f"no {what} yet: {hint}")
    p = abspath(path)
    if not p.exists():
        raise OpError(f"the {what} {p} is missing: {hint}")
    return p


def project_dir(scene) -> Path:
    """The scene's Project Folder, created if needed; a `//` path needs the .blend to be saved."""
    raw = scene.edn.project_dir or "//edn/"
    if raw.startswith("//") and not bpy.data.filepath:
        raise OpError("the .blend file is not saved yet: save it, or set an absolute Project Folder in the EDN panel")
    path = abspath(raw)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OpError(f"cannot create the project folder {path}: {exc.strerror or exc}") from exc
    return path


def layout(scene, target: str = "") -> ProjectLayout:
    """The project of the target person `target` (default: the panel's target strip)."""
    name = target or scene.edn.target_strip
    if not name:
        raise OpError("choose the target person's strip first: EDN keeps each person's files, and the motions "
                      "they perform, in their own folder of the Project Folder")
    return ProjectLayout(project_dir(scene) / safe_name(name))


def logs_dir(scene) -> Path:
    return project_dir(scene) / "logs"


def user_dir() -> Path:
    """The extension's own folder (kept across updates): the engine environment, set-up logs, presets."""
    return Path(bpy.utils.extension_path_user(__package__, create=True))


def presets_dir() -> Path:
    return user_dir() / "bone_maps"
