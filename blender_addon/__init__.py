"""EDN: Everybody Dance Now in Blender's Video Sequencer.

Learn a person's appearance from a movie strip, then make them perform the motion of another strip or of a rigged
character; the result comes back as an RGBA image strip. The heavy work runs in a separate engine process
(`edn_engine`, bundled in this extension) so Blender never freezes or crashes because of it.
"""

from __future__ import annotations

import atexit

import bpy

from . import (jobs, ops_bone_map, ops_engine, ops_generate, ops_pose, ops_train, panels, preferences, properties,
               runner)

_CLASSES = (preferences.CLASSES + ops_engine.CLASSES + ops_pose.CLASSES + ops_bone_map.CLASSES + ops_train.CLASSES
            + ops_generate.CLASSES + panels.CLASSES)


def register() -> None:
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    atexit.register(jobs.MANAGER.shutdown)  # engines run in their own session: stop them when Blender quits


def unregister() -> None:
    atexit.unregister(jobs.MANAGER.shutdown)
    jobs.MANAGER.shutdown()
    runner.stop_timer()
    panels.unregister_previews()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
