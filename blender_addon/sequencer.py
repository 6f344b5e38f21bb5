"""Reading strips (their media and frame ranges) and putting frame folders back into the Sequencer as strips."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import compat
from .bundled import engine_module

MEDIA_TYPES = ("MOVIE", "IMAGE")


class StripError(Exception):
    """A strip that cannot be used, with a message for the artist."""


@dataclass
class StripSource:
    """What the engine needs from a strip: a media path and the content frames shown on the timeline."""

    name: str
    media: Path  # movie file, or the folder of an image strip
    first: int  # first content frame shown (0 = first frame of the file/folder)
    last: int  # last content frame shown, inclusive
    timeline_start: int  # timeline frame where `first` is shown
    channel: int

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


def editor(scene, create: bool = False):
    sed = scene.sequence_editor
    if sed is None and create:
        sed = scene.sequence_editor_create()
    if sed is None:
        raise StripError(f"scene '{scene.name}' has no sequencer: add a movie or image strip in the Video Sequencer")
    return sed


def find_strip(scene, name: str):
    sed = editor(scene)
    if not name:
        strip = sed.active_strip
        if strip is None:
            raise StripError("no strip chosen: select a movie or image strip or type its name in the EDN panel")
        return strip
    strip = compat.all_strips(sed).get(name)
    if strip is None:
        raise StripError(f"there is no strip named '{name}' in scene '{scene.name}'")
    return strip


def strip_source(scene, name: str) -> StripSource:
    """The media and frame range of a movie or image strip, checked so the engine is not started in vain."""
    strip = find_strip(scene, name)
    if strip.type not in MEDIA_TYPES:
        raise StripError(f"strip '{strip.name}' is a {strip.type.lower()} strip: choose a movie or image strip")
    if strip.type == "MOVIE":
        media = Path(bpy.path.abspath(strip.filepath, library=strip.id_data.library))
        if not media.is_file():
            raise StripError(f"the movie of strip '{strip.name}' is missing: {media}")
    else:
        media = Path(bpy.path.abspath(strip.directory, library=strip.id_data.library))
        if not media.is_dir() or not any((media / e.filename).is_file() for e in strip.elements):
            raise StripError(f"the images of strip '{strip.name}' are missing: {media}")
    start, origin = compat.strip_start(strip), compat.content_start(strip)
    first, last = start - origin, compat.strip_end(strip) - 1 - origin
    return StripSource(strip.name, media, first, last, start, int(strip.channel))


def source_placement(scene) -> tuple[int, int]:
    """(timeline start, channel) for results of the scene's source motion: its strip's, or for an armature the
    first frame its track was made from (channel 0: results go on the first free channel)."""
    s = scene.edn
    if s.source_kind == "STRIP" and s.source_strip:
        src = strip_source(scene, s.source_strip)
        return src.timeline_start, src.channel
    track = Path(bpy.path.abspath(s.source_track)) if s.source_track else None
    if track is not None and track.is_file():
        try:  # read as the engine reads it: a damaged or foreign file is named, not a traceback
            return engine_module("pose.track").PoseTrack.load(track).frame_start, 0
        except engine_module("errors").EdnError as exc:
            raise StripError(f"the source track: {exc}") from None
    return scene.frame_start, 0


def first_free_channel(scene, above: int, start: int, end: int) -> int:
    """The lowest channel above `above` with no strip overlapping timeline frames [start, end)."""
    strips = list(compat.top_strips(editor(scene)))
    channel = above + 1
    while any(s.channel == channel and compat.strip_start(s) < end and compat.strip_end(s) > start for s in strips):
        channel += 1
    if channel > 128:
        raise StripError("no free sequencer channel above the source strip")
    return channel


def frame_files(folder: Path, pattern: str, newer_than: float | None = None) -> list[Path]:
    """Frame files in `folder` whose names match `pattern` (a regex), in frame order.

    `newer_than` (a time.time() value) leaves out frames an earlier, longer run left behind.
    """
    rx = re.compile(pattern)
    files = [p for p in Path(folder).iterdir() if rx.fullmatch(p.name)] if Path(folder).is_dir() else []
    if newer_than is not None:
        files = [p for p in files if p.stat().st_mtime >= newer_than - 2.0]
    return sorted(files)


def remove_strip(scene, name: str):
    """Remove the top-level strip called `name`, if any (re-running a stage replaces its strip instead of stacking
    copies); returns the editor's strip collection."""
    strips = compat.top_strips(editor(scene, create=True))
    old = strips.get(name)
    if old is not None:
        strips.remove(old)
    return strips


def add_still_strip(scene, name: str, image: Path, frame_start: int, frames: int, above_channel: int):
    """Add (or replace) a strip holding one image for `frames` frames, on a free channel (the background plate
    under the person)."""
    strips = remove_strip(scene, name)
    channel = first_free_channel(scene, above_channel, frame_start, frame_start + frames)
    strip = strips.new_image(name=name, filepath=str(image), channel=channel, frame_start=frame_start)
    compat.set_strip_duration(strip, frames)
    return strip


def add_frames_strip(scene, name: str, folder: Path, pattern: str, frame_start: int, above_channel: int,
                     alpha_over: bool = False, newer_than: float | None = None):
    """Add (or replace) an image strip showing the frames in `folder` from `frame_start`, on a free channel."""
    files = frame_files(folder, pattern, newer_than)
    if not files:
        raise StripError(f"the engine wrote no frames matching {pattern} in {folder}")
    strips = remove_strip(scene, name)
    channel = first_free_channel(scene, above_channel, frame_start, frame_start + len(files))
    strip = strips.new_image(name=name, filepath=str(files[0]), channel=channel, frame_start=frame_start)
    for f in files[1:]:
        strip.elements.append(f.name)
    compat.set_strip_duration(strip, len(files))
    if alpha_over:
        strip.blend_type = "ALPHA_OVER"
    return strip
