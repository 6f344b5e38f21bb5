"""Differences between Blender versions in the sequencer API, in one place.

4.2: `sequence_editor.sequences` / `sequences_all`. 4.4 added `strips` / `strips_all` and 5.0 removed the old
names. In 5.0 the sequencer may also show a scene other than the context scene (`context.sequencer_scene`).
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

