"""Operators for the editable bone map: fill it from the detected rig type, save it as a preset, load a preset.

Presets are JSON files (joint -> bone point) in the extension's user folder, so they outlive any one .blend.
"""

from __future__ import annotations

import json

import bpy
from bpy.props import StringProperty

from . import armature_pose, paths
from .ops_base import EdnOperator, OpError, edn_scene


class EDN_OT_detect_bone_map(EdnOperator, bpy.types.Operator):
    """Fill the editable bone map from the detected rig type"""

    bl_idname = "edn.detect_bone_map"
    bl_label = "Detect Bone Map"

    def run(self, context):
        s = edn_scene(context).edn
        obj = bpy.data.objects.get(s.armature)
        if obj is None or obj.type != "ARMATURE":
            raise OpError("choose an armature first")
        bmap = armature_pose.detect_map(obj.data.bones.keys())
        s.custom_map.clear()
        for joint in armature_pose.MAP_JOINTS:
            item = s.custom_map.add()
            item.joint, item.bone = joint, bmap.body.get(joint, "")
        s.bone_map = "CUSTOM"
        return f"Detected {bmap.name}"


class EDN_OT_save_bone_map(EdnOperator, bpy.types.Operator):
    """Save the editable bone map as a preset"""

    bl_idname = "edn.save_bone_map"
    bl_label = "Save Bone Map Preset"

    name: StringProperty(name="Name", default="My Rig")

    def run(self, context):
        s = edn_scene(context).edn
        path = paths.presets_dir() / f"{paths.safe_name(self.name)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({i.joint: i.bone for i in s.custom_map}, indent=1), encoding="utf-8")
        tmp.replace(path)  # atomic: a preset is never half-written
        return f"Saved {path}"

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)


class EDN_OT_load_bone_map(EdnOperator, bpy.types.Operator):
    """Load a saved bone map preset into the editable map"""

    bl_idname = "edn.load_bone_map"
    bl_label = "Load Bone Map Preset"

    name: StringProperty(name="Name", default="My Rig")

    def run(self, context):
        s = edn_scene(context).edn
        path = paths.presets_dir() / f"{paths.safe_name(self.name)}.json"
        if not path.is_file():
            raise OpError(f"there is no bone map preset {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OpError(f"cannot read the bone map preset {path}: {exc}") from exc
        s.custom_map.clear()
        for joint, bone in data.items():
            item = s.custom_map.add()
            item.joint, item.bone = str(joint), str(bone)
        s.bone_map = "CUSTOM"
        return f"Loaded {path}"

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)


CLASSES = (EDN_OT_detect_bone_map, EDN_OT_save_bone_map, EDN_OT_load_bone_map)
