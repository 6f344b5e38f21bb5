"""The Sequencer sidebar tab "EDN": the workflow top to bottom, and the jobs with progress, preview and errors."""

from __future__ import annotations

import os

import bpy
import bpy.utils.previews

from . import compat, jobs

_previews = None  # bpy.utils.previews collection for live training previews
MOVIES = (".mp4", ".mov", ".avi", ".mkv")


def _preview_icon(path: str) -> int:
    """An icon id for an image file, reloaded when the file changes (the trainer overwrites its preview)."""
    global _previews
    if _previews is None:
        _previews = bpy.utils.previews.new()
    try:
        key = f"{path}:{os.stat(path).st_mtime_ns}"
    except OSError:
        return 0
    if key not in _previews:  # the trainer's previews are images; `edn transfer` previews a movie
        _previews.load(key, path, "MOVIE" if path.lower().endswith(MOVIES) else "IMAGE")
    return _previews[key].icon_id


def draw_job(layout, job: jobs.Job) -> None:
    box = layout.box()
    row = box.row()
    row.label(text=f"{job.label}: {job.status}", icon="ERROR" if job.state == jobs.FAILED else "SORTTIME")
    if not job.finished:
        row.operator("edn.cancel_job", text="", icon="CANCEL").job_id = job.id
        eta = job.eta_s
        text = f"{job.fraction * 100:.0f}%" + (f", {eta / 60:.1f} min left" if eta else "")
        box.progress(factor=job.fraction, text=text)
        if job.loss_text:
            box.label(text=f"loss {job.loss_text}")
    if job.preview_path and os.path.isfile(job.preview_path):
        box.template_icon(icon_value=_preview_icon(job.preview_path), scale=6.0)
    if job.state == jobs.FAILED:
        col = box.column(align=True)
        for chunk in wrap(job.error, 60):
            col.label(text=chunk)


def wrap(text: str, width: int) -> list[str]:
    """Words in lines of at most `width` characters: a panel label does not wrap by itself."""
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return lines + ([line] if line else [])


class _EdnPanel:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "EDN"


class EDN_PT_main(_EdnPanel, bpy.types.Panel):
    bl_label = "Everybody Dance Now"

    def draw(self, context):
        layout = self.layout
        scene = compat.sequencer_scene(context)
        if scene is None:
            layout.label(text="No scene")
            return
        s = scene.edn
        layout.prop(s, "project_dir")
        strips_owner = scene.sequence_editor
        strips_prop = compat.all_strips_prop(strips_owner) if strips_owner is not None else ""

        col = layout.column(align=True)
        col.label(text="1. Target person", icon="USER")
        if strips_owner is not None:
            col.prop_search(s, "target_strip", strips_owner, strips_prop, text="")
        else:
            col.label(text="Add a movie strip of the person", icon="INFO")
        op = col.operator("edn.extract_pose", text="Extract Target Pose")
        op.role = "TARGET"
        if s.target_track:
            col.label(text=os.path.basename(s.target_track), icon="CHECKMARK")

        col = layout.column(align=True)
        col.label(text="2. Train", icon="MOD_ARMATURE")
        col.prop(s, "profile")
        col.prop(s, "perceptual")
        row = col.row(align=True)
        row.prop(s, "train_minutes")
        row.prop(s, "train_steps")
        row = col.row(align=True)
        row.prop(s, "width")
        row.prop(s, "height")
        row = col.row(align=True)
        row.operator("edn.train", text="Train")
        row.operator("edn.train", text="Resume").resume = True
        if s.last_loss:
            col.label(text=f"last loss {s.last_loss}")

        col = layout.column(align=True)
        col.label(text="3. Source motion", icon="ARMATURE_DATA")
        col.prop(s, "source_kind", expand=True)
        if s.source_kind == "STRIP":
            if strips_owner is not None:
                col.prop_search(s, "source_strip", strips_owner, strips_prop, text="")
            op = col.operator("edn.extract_pose", text="Extract Source Pose")
            op.role = "SOURCE"
        else:
            col.prop_search(s, "armature", bpy.data, "objects", text="")
            col.prop_search(s, "camera", bpy.data, "objects", text="Camera")
            col.prop(s, "bone_map")
            if s.bone_map == "CUSTOM":
                for item in s.custom_map:
                    obj = bpy.data.objects.get(s.armature)
                    if obj is not None and obj.type == "ARMATURE":
                        col.prop_search(item, "bone", obj.data, "bones", text=item.joint)
                    else:
                        col.prop(item, "bone", text=item.joint)
            row = col.row(align=True)
            row.operator("edn.detect_bone_map", text="Detect")
            row.operator("edn.save_bone_map", text="Save Preset")
            row.operator("edn.load_bone_map", text="Load Preset")
            col.operator("edn.pose_from_armature")
        if s.source_track:
            col.label(text=os.path.basename(s.source_track), icon="CHECKMARK")

        col = layout.column(align=True)
        col.label(text="4. Result", icon="SEQUENCE")
        if strips_owner is not None:
            col.prop_search(s, "plate_strip", strips_owner, strips_prop, text="Plate")
        col.operator("edn.normalize_pose")
        col.operator("edn.render_figures")
        col.prop(s, "hands")
        col.operator("edn.generate")
        col.operator("edn.transfer", icon="PLAY")

        if s.last_error:
            box = layout.box()
            box.label(text="Last error", icon="ERROR")
            for chunk in wrap(s.last_error, 60):
                box.label(text=chunk)


class EDN_PT_jobs(_EdnPanel, bpy.types.Panel):
    bl_label = "Engine Jobs"
    bl_parent_id = "EDN_PT_main"

    def draw(self, context):
        shown = [j for j in jobs.MANAGER.jobs if j.lane != jobs.SETUP][-6:]  # set-up shows in the preferences
        if not shown:
            self.layout.label(text="No jobs yet")
        for job in reversed(shown):
            draw_job(self.layout, job)


CLASSES = (EDN_PT_main, EDN_PT_jobs)


def unregister_previews() -> None:
    global _previews
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None


