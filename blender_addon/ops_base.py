"""What every EDN operator shares: input errors reported to the artist, the scene it works on, the engine Python.

Operators check their inputs in Blender (strip exists, file present, camera set...) and report a clear error
before anything starts, so nothing is left half-done.
"""

from __future__ import annotations

import bpy

from . import armature_pose, compat, jobs, preferences, sequencer


class OpError(Exception):
    """An input problem the operator reports to the artist."""


class EdnOperator:
    """Mixin for the operators: `execute` runs `self.run(context)` (does the work or queues it, and returns the
    message shown to the artist); input problems become an error report."""

    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            message = self.run(context)
        except (OpError, sequencer.StripError, armature_pose.MappingError) as exc:
            self.report({"ERROR"}, str(exc))
            scene = compat.sequencer_scene(context)
            if scene is not None and hasattr(scene, "edn"):
                scene.edn.last_error = str(exc)
            return {"CANCELLED"}
        if message:
            self.report({"INFO"}, message)
        return {"FINISHED"}


def edn_scene(context) -> "bpy.types.Scene":
    """The scene the EDN panel works on: the one the Sequencer shows (5.0: maybe not the context scene)."""
    scene = compat.sequencer_scene(context)
    if scene is None:
        raise OpError("there is no scene")
    return scene


def poll_scene(cls, context) -> bool:
    if compat.sequencer_scene(context) is None:
        cls.poll_message_set("There is no scene")
        return False
    return True


def engine_python(context) -> str:
    """The engine Python from the preferences, checked before any job is queued."""
    python = preferences.get(context).python()
    why = jobs.python_executable_ok(python)
    if why:
        raise OpError(why)
    return python
