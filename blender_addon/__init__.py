"""EDN: Everybody Dance Now in Blender's Video Sequencer.

Learn a person's appearance from a movie strip, then make them perform the motion of another strip or of a rigged
character; the result comes back as an RGBA image strip. The heavy work runs in a separate engine process
(`edn_engine`, bundled in this extension) so Blender never freezes or crashes because of it.
"""

from __future__ import annotations

import atexit

import bpy

from . import jobs, operators, panels, preferences, properties

_CLASSES = preferences.CLASSES + operators.CLASSES + panels.CLASSES


def register() -> None:
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    atexit.register(jobs.MANAGER.shutdown)  # engines run in their own session: stop them when Blender quits


def unregister() -> None:
    atexit.unregister(jobs.MANAGER.shutdown)
    jobs.MANAGER.shutdown()
    if bpy.app.timers.is_registered(operators._tick):
        bpy.app.timers.unregister(operators._tick)
    panels.unregister_previews()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
