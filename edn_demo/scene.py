"""The demo's synthetic target: the mannequin rendered by Cycles, with mattes and a ground-truth pose.

`edn demo` runs this in a subprocess with the bpy module (Blender as a Python module):

    python -m edn_demo.scene --out DIR --motion dance --frames 120 --size 256 [--blend DIR/scene.blend]

It builds the mannequin (`mannequin`) on a textured floor before a backdrop, lights and frames it, animates it
with one of the procedural motions (`motion`), and writes:

    DIR/frames/frame_000000.png ...  the Cycles render (RGB), numbered from 0 as the track's rows
    DIR/mattes/matte_000000.png ...  the person's matte (grey, white = person) from a cheap emission-only
                                     render: the layout `edn dataset build --mattes` reads
    DIR/track.npz              the ground-truth pose, projected from the armature by the add-on's `armature_pose`
    DIR/scene.blend            (with --blend) the scene, animation included

Two motions exist: `dance` (training) and `transfer` (a different one, for the transfer and its ground truth).
The pose comes from the armature (not from a detector), so the demo does not depend on the detector
recognising a mannequin.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import bpy  # first: bmesh and mathutils are provided by the bpy module
import bmesh

from .mannequin import build_armature, build_mannequin, skeleton
from .motion import MOTIONS, animate
from .saving import save_blend


def _textured(name: str, kind: str, c1, c2, scale: float) -> bpy.types.Material:
    """A floor (checker) or backdrop (brick) material: texture gives the generator a background to learn."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF")
    bsdf.inputs["Roughness"].default_value = 0.8
    tex = nodes.new("ShaderNodeTexChecker" if kind == "checker" else "ShaderNodeTexBrick")
    tex.inputs["Color1"].default_value = (*c1, 1.0)
    tex.inputs["Color2"].default_value = (*c2, 1.0)
    tex.inputs["Scale"].default_value = scale
    if kind == "brick":
        tex.inputs["Mortar"].default_value = (0.80, 0.78, 0.72, 1.0)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _plane(scene, name: str, location, rotation, material) -> "bpy.types.Object":
    """A 4 m square with a textured material mapped by object coordinates (a bmesh grid has no generated UVs)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=4.0)
    bm.to_mesh(mesh)
    bm.free()
    ob = bpy.data.objects.new(name, mesh)
    ob.location, ob.rotation_euler = location, rotation
    mesh.materials.append(material)
    nodes = material.node_tree.nodes
    tex = [n for n in nodes if n.type.startswith("TEX_")][0]
    coord = nodes.new("ShaderNodeTexCoord")
    material.node_tree.links.new(coord.outputs["Object"], tex.inputs["Vector"])
    scene.collection.objects.link(ob)
    return ob


def build_scene(motion: str, frames: int, size: int, fps: float = 24.0, samples: int = 16) -> dict:
    """Reset Blender to an empty scene and build the mannequin, set, lights, camera and animation."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = 1
    scene.frame_end = frames
    scene.render.fps = int(round(fps))
    scene.render.fps_base = scene.render.fps / fps

    bone_list = skeleton()
    bones = {n: (h, t, p) for n, h, t, p in bone_list}
    arm = build_armature(bones)
    body = build_mannequin(arm, {n: (h, t) for n, h, t, _ in bone_list})

    floor = _plane(scene, "Floor", (0, 1.0, 0), (0, 0, 0),
                   _textured("floor", "checker", (0.42, 0.42, 0.38), (0.16, 0.18, 0.20), 1.5))
    backdrop = _plane(scene, "Backdrop", (0, 2.2, 2.0), (math.radians(90), 0, 0),
                      _textured("backdrop", "brick", (0.45, 0.30, 0.22), (0.36, 0.24, 0.20), 1.2))

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 50
    cam_data.sensor_width = 36
    cam = bpy.data.objects.new("Camera", cam_data)
    cam.location = (0.0, -3.4, 1.02)
    cam.rotation_euler = (math.radians(90), 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam

    key = bpy.data.lights.new("Key", "AREA")
    key.energy = 500
    key.size = 3.0
    key_obj = bpy.data.objects.new("Key", key)
    key_obj.location = (-2.5, -3.5, 3.5)
    key_obj.rotation_euler = (math.radians(50), 0, math.radians(-35))
    scene.collection.objects.link(key_obj)
    sun = bpy.data.lights.new("Sun", "SUN")
    sun.energy = 1.5
    sun_obj = bpy.data.objects.new("Sun", sun)
    sun_obj.rotation_euler = (math.radians(40), math.radians(20), math.radians(30))
    scene.collection.objects.link(sun_obj)
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.38, 0.42, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
    scene.world = world

    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.image_settings.file_format = "PNG"
    r.use_persistent_data = True
    scene.view_settings.view_transform = "Standard"  # plain sRGB: the matte pass's white stays 255
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = samples
    cy.use_adaptive_sampling = False
    cy.max_bounces = 3
    cy.diffuse_bounces = 2
    cy.glossy_bounces = 1
    cy.transmission_bounces = 0
    cy.transparent_max_bounces = 0
    cy.caustics_reflective = cy.caustics_refractive = False
    cy.use_denoising = True
    cy.denoiser = "OPENIMAGEDENOISE"
    # The albedo and normal passes go to the denoiser as they are, not each denoised first ("ACCURATE"): 0.78 s a
    # beauty frame instead of 2.4 on a 2-core AMD EPYC (Zen 1), 7 of the demo's 17 minutes there, for a picture
    # within 38 dB PSNR of the other (undenoised: 0.5 s, and grainy)
    cy.denoising_prefilter = "FAST"

    animate(arm, motion, frames, fps)
    return {"armature": arm, "body": body, "set": [floor, backdrop], "camera": cam}


def _matte_material() -> bpy.types.Material:
    """Pure white emission: with the set hidden and a black world, a render is the person's matte."""
    mat = bpy.data.materials.new("edn_matte")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    em = nodes.new("ShaderNodeEmission")
    em.inputs["Color"].default_value = (1, 1, 1, 1)
    em.inputs["Strength"].default_value = 1.0
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(em.outputs["Emission"], out.inputs["Surface"])
    return mat


def _use_pass(scene, set_objs, *, world, override, samples: int, denoise: bool, color_mode: str) -> None:
    """Switch the scene between the beauty render and the matte render (the set hidden, the person white)."""
    scene.world = world
    scene.view_layers[0].material_override = override
    for ob in set_objs:
        ob.hide_render = override is not None
    scene.cycles.samples = samples
    scene.cycles.use_denoising = denoise
    scene.render.image_settings.color_mode = color_mode


def render(scene_objs: dict, out: Path, frames: int, log=print) -> dict:
    """Render frames and mattes for every frame; returns timings. Matte passes are cheap (emission, 4 samples)."""
    scene = bpy.context.scene
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "mattes").mkdir(parents=True, exist_ok=True)
    black = bpy.data.worlds.new("black")
    black.use_nodes = True
    black.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    beauty = dict(world=scene.world, override=None, samples=scene.cycles.samples, denoise=True, color_mode="RGB")
    matte = dict(world=black, override=_matte_material(), samples=4, denoise=False, color_mode="BW")
    seconds = {"frames": 0.0, "mattes": 0.0}
    for i in range(frames):
        scene.frame_set(scene.frame_start + i)
        for folder, name, settings in (("frames", "frame", beauty), ("mattes", "matte", matte)):
            _use_pass(scene, scene_objs["set"], **settings)
            scene.render.filepath = str(out / folder / f"{name}_{i:06d}.png")
            t0 = time.perf_counter()
            bpy.ops.render.render(write_still=True)
            seconds[folder] += time.perf_counter() - t0
        log(json.dumps({"event": "progress", "done": i + 1, "total": frames, "stage": "render"}))
    _use_pass(scene, scene_objs["set"], **beauty)  # leave the scene set up for the beauty render (the saved .blend)
    n = max(frames, 1)
    return {"seconds_per_frame_beauty": seconds["frames"] / n, "seconds_per_frame_matte": seconds["mattes"] / n}


def ground_truth_track(scene_objs: dict, frames: int, fps: float, out: Path) -> Path:
    """Project the armature through the camera into an OpenPose track, with the add-on's Mixamo bone map."""
    from blender_addon.armature_pose import armature_track_arrays, detect_map  # the add-on's one projection
    from edn_engine.pose.track import PoseTrack

    scene = bpy.context.scene
    arm = scene_objs["armature"]
    bmap = detect_map([b.name for b in arm.data.bones], "MIXAMO")
    body, hands, face, (w, h) = armature_track_arrays(
        scene, bpy.context.evaluated_depsgraph_get, arm, scene.camera, bmap,
        range(scene.frame_start, scene.frame_start + frames))
    track = PoseTrack(body=body, hands=hands, face=face, width=w, height=h, fps=fps, frame_start=0,
                      source="edn demo mannequin")
    return track.save(out / "track.npz")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edn_demo.scene", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--motion", choices=sorted(MOTIONS), default="dance")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--blend", type=Path, default=None, help="also save the scene as this .blend")
    p.add_argument("--no-render", action="store_true", help="build and write the track only")
    args = p.parse_args(argv)
    if args.frames < 1 or args.size < 16:
        print(json.dumps({"event": "error", "message": "need at least 1 frame and 16 px"}), flush=True)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    objs = build_scene(args.motion, args.frames, args.size, args.fps, args.samples)
    build_s = time.perf_counter() - t0
    track_path = ground_truth_track(objs, args.frames, args.fps, out)
    timings = {"build_s": build_s}
    if not args.no_render:
        timings.update(render(objs, out, args.frames, log=lambda s: print(s, flush=True)))
    if args.blend:
        bpy.context.scene.frame_set(bpy.context.scene.frame_start)
        save_blend(args.blend)
    summary = {"event": "done", "out": str(out), "track": str(track_path), "frames": args.frames,
               "size": args.size, "motion": args.motion, **timings}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
