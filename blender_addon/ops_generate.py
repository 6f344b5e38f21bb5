"""Operators that make the result: Generate (a trained run driven by a track) and Transfer (`edn transfer`: the
engine cleans and normalizes the source motion, generates and previews, reusing what did not change). Both put
the RGBA frames back as a strip above the source, over its frame range, laid over a plate: the artist's own plate
strip when one is chosen, else the background plate the run learnt the person over (a person-over-plate run
keeps it as plate.png; a whole-frame run has none)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from . import compat, engine, jobs, paths, preferences, runner, sequencer
from .bundled import engine_module
from .ops_base import EdnOperator, edn_scene, engine_python, poll_scene

RESULT_STRIP = "EDN Result"
PLATE_STRIP = "EDN Plate"
FRAME_FILES = r"frame_\d+\.png"
RUN_PLATE = engine_module("layout").RUN_PLATE  # the plate a person-over-plate run keeps


def own_plate(scene):
    """The artist's plate strip, or None (none chosen, or EDN's own plate chosen: that one is replaced, not kept).
    Raises StripError when the chosen strip is gone: operators call this before starting the engine."""
    name = scene.edn.plate_strip
    return sequencer.find_strip(scene, name) if name and name != PLATE_STRIP else None


def hidden_plate(scene) -> str | None:
    """A warning when the artist's plate lies below the source strip: the source (another dancer's footage,
    opaque) would cover it, and the person would land over the source instead. None when nothing is hidden."""
    own, s = own_plate(scene), scene.edn
    if own is None or s.source_kind != "STRIP" or not s.source_strip:
        return None
    source = sequencer.find_strip(scene, s.source_strip)
    if own.channel >= source.channel or source.mute:
        return None
    return (f"the plate strip '{own.name}' (channel {own.channel}) lies below the source strip '{source.name}' "
            f"(channel {source.channel}), which hides it: move the plate above the source, or mute the source")


def warn_hidden_plate(op, scene) -> None:
    """Operator `op` reports `hidden_plate`'s warning, if any; raises StripError if the chosen plate is gone."""
    warning = hidden_plate(scene)
    if warning:
        op.report({"WARNING"}, warning)


def add_result(scene, out: Path, run_dir: Path, newer_than: float | None) -> None:
    """Show the generated frames in `out` as an RGBA strip over the source's frame range, above the plate."""
    start, channel = sequencer.source_placement(scene)
    scene.edn.output_dir = str(out)
    frames = len(sequencer.frame_files(out, FRAME_FILES, newer_than))
    if not frames:
        raise sequencer.StripError(f"the engine wrote no frames matching {FRAME_FILES} in {out}")
    own = own_plate(scene)  # looked up before any strip changes
    own_channel = own.channel if own is not None else 0
    sequencer.remove_strip(scene, PLATE_STRIP)  # a plate of an earlier run, or unwanted now
    if own is not None:  # the artist's own plate: the person goes right above it
        channel = max(channel, own_channel)
    elif (run_dir / RUN_PLATE).is_file():
        channel = sequencer.add_still_strip(scene, PLATE_STRIP, run_dir / RUN_PLATE, start, frames, channel).channel
    sequencer.add_frames_strip(scene, RESULT_STRIP, out, FRAME_FILES, start, channel, alpha_over=True,
                               newer_than=newer_than)


class EDN_OT_generate(EdnOperator, bpy.types.Operator):
    """Make the target person perform the source motion; the RGBA frames come back as a strip above the source"""

    bl_idname = "edn.generate"
    bl_label = "Generate"

    run_dir: StringProperty(name="Run", subtype="DIR_PATH", options={"SKIP_SAVE"})
    track: StringProperty(name="Track", subtype="FILE_PATH", options={"SKIP_SAVE"})
    output: StringProperty(name="Output", subtype="DIR_PATH", options={"SKIP_SAVE"},
                           description="Folder for the frames (empty: in the target person's folder)")

    @classmethod
    def poll(cls, context):
        return poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        run = paths.need_file(self.run_dir or s.run_dir, "training run", "train on the target first")
        track = paths.need_file(self.track or s.normalized_track or s.source_track, "pose track",
                                "extract the source pose first")
        out = paths.abspath(self.output) if self.output else paths.layout(scene).frames
        sequencer.source_placement(scene)  # fail now, not after generating, if the source strip is gone
        warn_hidden_plate(self, scene)  # or the chosen plate strip; warned if the source would hide it
        steps = [engine.generate(engine_python(context), run, track, out, preferences.get(context).device, s.hands)]

        def done(sc, job: jobs.Job) -> None:  # frames an earlier, longer run left in `out` are not shown
            add_result(sc, out, run, job.started_wall)

        runner.submit_engine(context, scene, "generate", "Generate", steps, [runner.on_success(scene, done)])
        return f"Generating into {out}"


class EDN_OT_transfer(EdnOperator, bpy.types.Operator):
    """Drive the trained run with the source motion: the engine cleans and normalizes it, generates and previews"""

    bl_idname = "edn.transfer"
    bl_label = "Transfer"

    @classmethod
    def poll(cls, context):
        if not poll_scene(cls, context):
            return False
        s = compat.sequencer_scene(context).edn
        for path, why in ((s.run_dir, "Train on the target first"),
                          (s.source_track, "Extract the source's pose (strip or armature) first")):
            if not path:
                cls.poll_message_set(why)
                return False
        return True

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        run = paths.need_file(s.run_dir, "training run", "train on the target first")
        source = paths.need_file(s.source_track, "source pose track", "extract the source pose first")
        project = paths.layout(scene)
        sequencer.source_placement(scene)
        warn_hidden_plate(self, scene)
        steps = [engine.transfer(engine_python(context), source, run, project.root, s.hands)]

        def done(sc, job: jobs.Job) -> None:  # the engine clears its frames folder itself before generating
            sc.edn.normalized_track = str(project.driving)
            add_result(sc, project.frames, run, None)

        runner.submit_engine(context, scene, "transfer", "Transfer", steps, [runner.on_success(scene, done)])
        return "Transferring the motion"


CLASSES = (EDN_OT_generate, EDN_OT_transfer)
