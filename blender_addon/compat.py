"""Differences between Blender versions in the sequencer API, in one place.

Strip collections: 4.2 has `sequence_editor.sequences` / `sequences_all`; 4.4 added `strips` / `strips_all` and
5.0 removed the old names. In 5.0 the sequencer may also show a scene other than the context scene
(`context.sequencer_scene`).

Strip frames: 4.2 to 5.0 call them `frame_final_start` / `frame_final_end` (the handles, on the timeline),
`frame_final_duration` and `frame_start` (where the content's first frame would sit); 5.1 renamed them
`left_handle`, `right_handle`, `duration` and `content_start` (and `frame_offset_start` `left_handle_offset`);
5.2 deprecates the old names ("expected to be removed in Blender 6.0"). Every such access in the add-on, the demo
and the tests goes through the functions below, so none raises a DeprecationWarning on 5.2.
"""

from __future__ import annotations

import bpy


def sequencer_scene(context) -> "bpy.types.Scene | None":
    """The scene whose strips the Sequencer shows (5.0: may differ from `context.scene`)."""
    return getattr(context, "sequencer_scene", None) or context.scene


def top_strips(sed):
    """The editor's top-level strip collection (has `new_movie`, `new_image`, `remove`)."""
    return sed.strips if hasattr(sed, "strips") else sed.sequences


def all_strips(sed):
    """Every strip, including those inside meta strips."""
    return sed.strips_all if hasattr(sed, "strips_all") else sed.sequences_all


def all_strips_prop(sed) -> str:
    """The name of `all_strips`' collection property, for `prop_search` in panels."""
    return "strips_all" if hasattr(sed, "strips_all") else "sequences_all"


def _renamed(strip) -> bool:
    return hasattr(strip, "left_handle")  # 5.1+ (note: older versions have `select_left_handle`, another thing)


def strip_start(strip) -> int:
    """The first timeline frame the strip shows (its left handle)."""
    return int(strip.left_handle if _renamed(strip) else strip.frame_final_start)


def strip_end(strip) -> int:
    """The timeline frame after the last one the strip shows (its right handle, exclusive)."""
    return int(strip.right_handle if _renamed(strip) else strip.frame_final_end)


def strip_duration(strip) -> int:
    """How many frames the strip shows, handle to handle."""
    return int(strip.duration if _renamed(strip) else strip.frame_final_duration)


def set_strip_duration(strip, frames: int) -> None:
    """Show `frames` frames from the left handle (moves the right handle)."""
    if _renamed(strip):
        strip.duration = frames
    else:
        strip.frame_final_duration = frames


def content_start(strip) -> int:
    """The timeline frame where the strip's content (its file's frame 0) sits, handles aside."""
    return int(strip.content_start if _renamed(strip) else strip.frame_start)


def set_left_handle_offset(strip, frames: int) -> None:
    """Trim `frames` frames off the start of the content (moves the left handle right, the content stays)."""
    if _renamed(strip):
        strip.left_handle_offset = frames
    else:
        strip.frame_offset_start = frames
