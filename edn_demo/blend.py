"""The demo's .blend: the mannequin scene with the source render, stick figures and EDN's result in the Sequencer.

`edn demo` runs it with the bpy module once everything is generated:

    python -m edn_demo.blend --scene SCENE.blend --out DEMO.blend \
        --strip "Source render=DIR" --strip "Stick figures=DIR" --strip "EDN result=DIR:alpha"

Each strip shows DIR/frame_NNNNNN.png from the scene's first frame, on its own channel, bottom to top; ":alpha"
lays the RGBA strip over the ones below (ALPHA_OVER). Paths are saved relative to the .blend, so the output
folder can be moved as a whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bpy
from blender_addon import compat
from blender_addon.sequencer import add_frames_strip  # the add-on's own way of adding a frames strip

from .saving import save_blend

FRAME_PATTERN = r"frame_\d+\.png"


def assemble(scene_blend: Path, out: Path, strips: list[tuple[str, Path, bool]]) -> dict:
    bpy.ops.wm.open_mainfile(filepath=str(scene_blend))
    scene = bpy.context.scene
    channel = 0
    added = []
    for name, folder, alpha in strips:
        strip = add_frames_strip(scene, name, folder, FRAME_PATTERN, scene.frame_start, channel, alpha_over=alpha)
        channel = strip.channel
        added.append({"name": strip.name, "channel": strip.channel, "frames": compat.strip_duration(strip)})
    save_blend(out, relative_paths=True)
    return {"blend": str(out), "strips": added}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edn_demo.blend", description=__doc__.split("\n")[0])
    p.add_argument("--scene", type=Path, required=True, help="the .blend saved by edn_demo.scene")
    p.add_argument("--out", type=Path, required=True, help=".blend to write")
    p.add_argument("--strip", action="append", default=[], metavar="NAME=DIR[:alpha]")
    args = p.parse_args(argv)
    strips = []
    for item in args.strip:
        name, _, rest = item.partition("=")
        alpha = rest.endswith(":alpha")
        strips.append((name, Path(rest[: -len(":alpha")] if alpha else rest), alpha))
    try:
        summary = assemble(args.scene, args.out, strips)
    except Exception as exc:  # noqa: BLE001 - reported to the engine as one error event
        print(json.dumps({"event": "error", "message": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"event": "done", **summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
