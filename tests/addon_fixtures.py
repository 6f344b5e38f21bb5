"""The installed add-on for the tests that run inside the real bpy module: build the zip, install it into a
temporary user repository the way a user installs it, enable it; and the strip helpers those tests share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ENGINE_PYTHON, REPO, VIDEO

bpy = pytest.importorskip("bpy")

REPO_MODULE = "edn_test_repo"
ADDON = f"bl_ext.{REPO_MODULE}.edn"
CLIP = VIDEO / "ubc_91BjuE6irxS.mp4"


# ----------------------------------------------------------------------------------------------------------------
# fixtures: build the zip, install it into a temporary user repository, enable it
# ----------------------------------------------------------------------------------------------------------------
def _addon_classes() -> set[str]:
    return {name for name in dir(bpy.types) if name.startswith(("EDN_", "SEQUENCER_PT_edn"))}


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """The installed and enabled add-on package (its modules: ext.jobs, ext.runner, ext.ops_pose, ...)."""
    out = tmp_path_factory.mktemp("ext")
    zip_path = out / "edn.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "-o", str(zip_path)],
                   check=True, capture_output=True, text=True)
    repo_dir = out / "repo"
    repo_dir.mkdir()
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="EDN test", module=REPO_MODULE, custom_directory=str(repo_dir), source="USER")
    before = _addon_classes()
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo=REPO_MODULE,
                                                    enable_on_install=True) == {"FINISHED"}
    assert (repo_dir / "edn" / "vendor" / "edn_engine" / "pose" / "track.py").is_file()
    assert ADDON in bpy.context.preferences.addons
    ext = sys.modules[ADDON]
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.engine_mode = "CUSTOM"
    prefs.custom_python = ENGINE_PYTHON
    prefs.device = "CPU"
    user_dir = Path(bpy.utils.extension_path_user(ADDON))  # logs of jobs that have no project folder
    yield ext
    ext.jobs.MANAGER.shutdown()
    bpy.ops.preferences.addon_disable(module=ADDON)
    assert _addon_classes() == before
    repos.remove(repo)
    shutil.rmtree(user_dir.parent if user_dir.parent.name == REPO_MODULE else user_dir, ignore_errors=True)


@pytest.fixture
def scene(addon, tmp_path):
    """A fresh scene with a project folder whose path has a space and non-ASCII characters."""
    sc = bpy.data.scenes.new("EDN test")
    bpy.context.window.scene = sc  # the bpy module has one (hidden) window: make `sc` the context scene
    assert bpy.context.scene == sc
    project = tmp_path / "Projekt ü 舞"
    project.mkdir()
    sc.edn.project_dir = str(project) + os.sep
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 414, 540, 100
    yield sc
    addon.jobs.MANAGER.shutdown()


def _compat():
    """The installed add-on's compat module: strip frames are read and set the way the add-on does, on every
    Blender version."""
    return sys.modules[f"{ADDON}.compat"]


def _span(strip) -> tuple[int, int]:
    """The timeline frames a strip shows, [start, end)."""
    return _compat().strip_start(strip), _compat().strip_end(strip)


def _movie_strip(sc, first_frame=10, offset=3, frames=4, channel=2):
    sed = sc.sequence_editor_create()
    strip = _compat().top_strips(sed).new_movie("dancer", str(CLIP), channel, first_frame)
    _compat().set_left_handle_offset(strip, offset)
    _compat().set_strip_duration(strip, frames)
    return strip


def _wait(addon, job, timeout=240):
    addon.jobs.MANAGER.wait(job, timeout=timeout)
    return job


def _last_job(addon):
    return addon.jobs.MANAGER.jobs[-1]


def _strips(sc):
    return _compat().all_strips(sc.sequence_editor)


class _CheckingLayout:
    """Stands in for bpy.types.UILayout (the bpy module draws no UI): checks every property and operator named."""

    def __init__(self, log):
        self.log = log

    def _sub(self, *args, **kwargs):
        return _CheckingLayout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties, name
        assert search_name in search_data.bl_rna.properties, f"{search_data} has no collection {search_name!r}"
        self.log.append(("prop_search", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert name in dir(getattr(bpy.ops, module)), idname
        self.log.append(("operator", idname))
        return _Props()

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def progress(self, factor=0.0, text="", **kwargs):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def template_icon(self, icon_value=0, **kwargs):
        self.log.append(("icon", icon_value))


class _Props:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
