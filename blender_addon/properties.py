"""EDN state stored on the scene (`scene.edn`), so a saved .blend reopens where the artist left off."""

from __future__ import annotations

import bpy
from bpy.props import (CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

PROFILES = (
    ("cpu", "CPU (small)", "A small model that trains on a CPU in minutes; the default"),
    ("paper-global", "Paper 512x256", "pix2pixHD's global generator as in the paper; needs a GPU"),
    ("paper-local", "Paper 1024x512", "pix2pixHD with a local enhancer as in the paper; needs a large GPU"),
)
BONE_MAPS = (
    ("AUTO", "Automatic", "Detect the rig type from its bone names"),
    ("MIXAMO", "Mixamo", "mixamorig:Hips, mixamorig:LeftArm, ..."),
    ("RIGIFY", "Rigify", "A generated Rigify rig's DEF- bones"),
    ("METARIG", "Metarig", "Blender's Human metarig (and Rigify metarigs)"),
    ("CMU", "BVH (CMU)", "BVH imports with CMU-style names (Hips, LeftArm, ...)"),
    ("CUSTOM", "Custom", "The bone map edited below"),
)

# The engine's `layout.HANDS`, in its order (a test holds the two together), with the words an artist reads.
HANDS = (
    ("training", "Training Hands", "The person's own hands from the training footage, laid over the refined ones"),
    ("refined", "Refined", "The hand refiner's hands alone"),
    ("body", "Body Only", "The body network's blurred hands, without the hand refiner: faster"),
)


# 5.0 warns about "//" paths in string properties that do not declare support for them (older versions lack it).
PATH = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (5, 0, 0) else set()


class EDN_BoneMapItem(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint", description="OpenPose joint (Head is the bone the face rides on)")
    bone: StringProperty(name="Bone", description="Bone whose head stands for the joint; 'Bone@tail' for its tail")


class EDN_SceneSettings(bpy.types.PropertyGroup):
    project_dir: StringProperty(
        name="Project Folder", subtype="DIR_PATH", options=PATH, default="//edn/",
        description="Where tracks, frames, datasets and checkpoints are written (// = next to the .blend)")
    target_strip: StringProperty(name="Target", description="Movie or image strip of the person to learn")
    source_kind: EnumProperty(name="Source", items=(
        ("STRIP", "Strip", "Motion from a movie or image strip"),
        ("ARMATURE", "Armature", "Motion from a rigged character seen by the scene camera")))
    source_strip: StringProperty(name="Source Strip", description="Movie or image strip with the motion")
    plate_strip: StringProperty(
        name="Plate", description="Strip to lay the person over (empty: the background plate EDN made from the "
                                  "target footage, when the camera was static)")
    armature: StringProperty(name="Armature", description="Armature object with the motion")
    camera: StringProperty(name="Camera", description="Camera to project the armature (empty: scene camera)")
    bone_map: EnumProperty(name="Bone Map", items=BONE_MAPS, default="AUTO")
    custom_map: CollectionProperty(type=EDN_BoneMapItem)
    width: IntProperty(name="Width", default=256, min=32, max=4096, description="Output and training width")
    height: IntProperty(name="Height", default=256, min=32, max=4096, description="Output and training height")
    profile: EnumProperty(name="Profile", items=PROFILES, default="cpu")
    # Numbered so .blend files saved before "PROFILE" existed keep their choice.
    perceptual: EnumProperty(name="Perceptual Loss", default="PROFILE", items=(
        ("PROFILE", "Profile's", "The profile's own choice: L1 for the cpu profile, VGG19 for the paper profiles", 2),
        ("vgg19", "VGG19", "pix2pixHD's perceptual loss (needs the VGG19 weights, fetched once)", 0),
        ("none", "None", "L1 instead: no VGG weights needed, trains faster, slightly softer detail", 1)))
    hands: EnumProperty(name="Hands", items=HANDS, default="training",
                        description="How Generate and Transfer draw the hands of a run that trained a hand refiner")
    train_minutes: FloatProperty(name="Minutes", default=30.0, min=0.0, description="Training time (0: steps)")
    train_steps: IntProperty(name="Steps", default=0, min=0, description="Training steps (0: use minutes)")
    # results of the stages, written when a job finishes
    target_track: StringProperty(name="Target Track", subtype="FILE_PATH", options=PATH)
    source_track: StringProperty(name="Source Track", subtype="FILE_PATH", options=PATH)
    normalized_track: StringProperty(name="Normalized Track", subtype="FILE_PATH", options=PATH)
    figures_dir: StringProperty(name="Stick Figures", subtype="DIR_PATH", options=PATH)
    dataset_dir: StringProperty(name="Dataset", subtype="DIR_PATH", options=PATH)
    run_dir: StringProperty(name="Training Run", subtype="DIR_PATH", options=PATH)
    output_dir: StringProperty(name="Generated Frames", subtype="DIR_PATH", options=PATH)
    last_loss: StringProperty(name="Last Loss")
    last_error: StringProperty(name="Last Error")
    last_log: StringProperty(name="Last Log", subtype="FILE_PATH", options=PATH)


CLASSES = (EDN_BoneMapItem, EDN_SceneSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.edn = PointerProperty(type=EDN_SceneSettings)


def unregister() -> None:
    del bpy.types.Scene.edn
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
