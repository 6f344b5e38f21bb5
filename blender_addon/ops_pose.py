"""Operators that make pose tracks: from a strip (the engine detects), from an armature (projected here, in
Blender, since it needs the evaluated rig), the driving track (the engine cleans and normalizes) and its stick
figures. Each takes its inputs as properties too, so scripts and tests run them without a UI."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import armature_pose, compat, engine, paths, runner, sequencer
from .bundled import engine_module
from .ops_base import EdnOperator, OpError, edn_scene, engine_python, poll_scene
from .properties import BONE_MAPS

FIGURES_STRIP = "EDN Stick Figures"
FIGURE_FILES = r"figure_\d+\.png"
ROLES = (("TARGET", "Target", "The person to learn"), ("SOURCE", "Source", "The motion to transfer"))


class EDN_OT_extract_pose(EdnOperator, bpy.types.Operator):
    """Detect the person's pose in every frame of a movie or image strip (runs the engine in the background)"""

    bl_idname = "edn.extract_pose"
    bl_label = "Extract Pose"

    strip: StringProperty(name="Strip", options={"SKIP_SAVE"},
                          description="Strip name (empty: the panel's choice, else the active strip)")
    role: EnumProperty(name="Role", items=ROLES, default="TARGET")
    output: StringProperty(name="Output", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Track to write (empty: in the target person's folder)")

    @classmethod
    def poll(cls, context):
        scene = compat.sequencer_scene(context)
        if scene is not None and scene.sequence_editor is None:
            cls.poll_message_set(f"Scene '{scene.name}' has no sequencer: add a movie or image strip first")
            return False
        return poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        target = self.role == "TARGET"
        src = sequencer.strip_source(scene, self.strip or (s.target_strip if target else s.source_strip))
        if self.output:
            out = paths.abspath(self.output)
            mattes = out.parent / "mattes" if target else None
        elif target:
            project = paths.layout(scene, src.name)
            out, mattes = project.target_track, project.target_mattes
        else:
            out, mattes = paths.layout(scene).source_track, None
        steps = [engine.pose_extract(engine_python(context), src.media, out, src.first, src.last, mattes)]

        def done(sc, job):
            if target:
                sc.edn.target_strip, sc.edn.target_track = src.name, str(out)
            else:
                sc.edn.source_kind, sc.edn.source_strip, sc.edn.source_track = "STRIP", src.name, str(out)

        runner.submit_engine(context, scene, "extract_pose", f"Extract pose: {src.name}", steps,
                             [runner.on_success(scene, done)])
        return f"Extracting pose from '{src.name}' ({src.frames} frames)"


def _custom_map(settings) -> armature_pose.BoneMap:
    body = {item.joint: item.bone for item in settings.custom_map if item.bone}
    missing = [j for j in armature_pose.CORE_JOINTS if j not in body]
    if missing:
        raise armature_pose.MappingError(f"the custom bone map has no bone for: {', '.join(missing)}")
    return armature_pose.BoneMap("Custom", body, {})


class EDN_OT_pose_from_armature(EdnOperator, bpy.types.Operator):
    """Project an animated armature through the scene camera into a pose track, frame by frame"""

    bl_idname = "edn.pose_from_armature"
    bl_label = "Pose from Armature"

    armature: StringProperty(name="Armature", options={"SKIP_SAVE"}, description="Armature object (empty: panel)")
    camera: StringProperty(name="Camera", options={"SKIP_SAVE"}, description="Camera object (empty: scene camera)")
    bone_map: EnumProperty(name="Bone Map", items=(("PANEL", "Panel", "The map chosen in the panel"),) + BONE_MAPS,
                           default="PANEL")
    output: StringProperty(name="Output", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Track to write (empty: the source track in the target person's folder)")

    @classmethod
    def poll(cls, context):
        return poll_scene(cls, context)

    def run(self, context):
        scene = context.scene  # the 3D scene with the rig and camera
        edit_scene = edn_scene(context)
        settings = edit_scene.edn
        name = self.armature or settings.armature or (context.object.name if context.object else "")
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "ARMATURE":
            raise OpError(f"'{name}' is not an armature object" if name else "no armature chosen")
        cam_name = self.camera or settings.camera
        camera = bpy.data.objects.get(cam_name) if cam_name else scene.camera
        if camera is None or camera.type != "CAMERA":
            raise OpError(f"scene '{scene.name}' has no camera: add one (or choose a camera) to see the armature"
                          if not cam_name else f"'{cam_name}' is not a camera object")
        key = settings.bone_map if self.bone_map == "PANEL" else self.bone_map
        bones = obj.data.bones.keys()
        bmap = armature_pose.check_map(_custom_map(settings), bones) if key == "CUSTOM" else \
            armature_pose.detect_map(bones, key)
        out = paths.abspath(self.output) if self.output else paths.layout(edit_scene).source_track
        frames = range(scene.frame_start, scene.frame_end + 1)
        current = scene.frame_current
        try:
            body, hands, face, (w, h) = armature_pose.armature_track_arrays(
                scene, context.evaluated_depsgraph_get, obj, camera, bmap, frames)
        finally:
            scene.frame_set(current)
        fps = scene.render.fps / scene.render.fps_base
        engine_module("pose.track").PoseTrack(body=body, hands=hands, face=face, width=w, height=h, fps=fps,
                                              frame_start=scene.frame_start, source=f"armature:{obj.name}").save(out)
        settings.source_kind, settings.armature, settings.source_track = "ARMATURE", obj.name, str(out)
        if cam_name:
            settings.camera = cam_name
        return f"Wrote {len(frames)} frames of '{obj.name}' ({bmap.name} bones) to {out}"


class EDN_OT_normalize_pose(EdnOperator, bpy.types.Operator):
    """Clean the source motion and move it to the target person's body and position (the paper's normalization)"""

    bl_idname = "edn.normalize_pose"
    bl_label = "Normalize"

    source: StringProperty(name="Source Track", subtype="FILE_PATH", options={"SKIP_SAVE"})
    target: StringProperty(name="Target Track", subtype="FILE_PATH", options={"SKIP_SAVE"})
    output: StringProperty(name="Output", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Driving track to write (empty: in the target person's folder)")

    @classmethod
    def poll(cls, context):
        return poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        src = paths.need_file(self.source or s.source_track, "source pose track", "extract the source pose first")
        tgt = paths.need_file(self.target or s.target_track, "target pose track", "extract the target pose first")
        out = paths.abspath(self.output) if self.output else paths.layout(scene).driving
        steps = [engine.pose_drive(engine_python(context), src, tgt, out, out.with_suffix(".json"))]
        runner.submit_engine(context, scene, "drive", "Normalize", steps, [runner.on_success(
            scene, lambda sc, job: setattr(sc.edn, "normalized_track", str(out)))])
        return "Normalizing the source pose"


class EDN_OT_render_figures(EdnOperator, bpy.types.Operator):
    """Draw the pose track as stick figures and add them as an image strip above the source"""

    bl_idname = "edn.render_figures"
    bl_label = "Stick Figures"

    track: StringProperty(name="Track", subtype="FILE_PATH", options={"SKIP_SAVE"},
                          description="Pose track (empty: the normalized track, else the source track)")
    output: StringProperty(name="Output", subtype="DIR_PATH", options={"SKIP_SAVE"},
                           description="Folder to draw into (empty: in the target person's folder)")
    style: EnumProperty(name="Style", items=(("edn", "EDN", "The paper's colours and face"),
                                             ("controlnet", "ControlNet", "OpenPose / ControlNet style")))

    @classmethod
    def poll(cls, context):
        return poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        track = paths.need_file(self.track or s.normalized_track or s.source_track, "pose track",
                                "extract or import a source pose first")
        out = paths.abspath(self.output) if self.output else paths.layout(scene).figures
        start, channel = sequencer.source_placement(scene)
        steps = [engine.render(engine_python(context), track, out, s.width, s.height, self.style)]

        def done(sc, job):
            sc.edn.figures_dir = str(out)
            sequencer.add_frames_strip(sc, FIGURES_STRIP, out, FIGURE_FILES, start, channel,
                                       newer_than=job.started_wall)

        runner.submit_engine(context, scene, "render", "Stick figures", steps, [runner.on_success(scene, done)])
        return f"Drawing stick figures into {out}"


CLASSES = (EDN_OT_extract_pose, EDN_OT_pose_from_armature, EDN_OT_normalize_pose, EDN_OT_render_figures)
