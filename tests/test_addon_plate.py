"""Where the result lands in the Sequencer: the person (RGBA) above a plate, the run's own or the artist's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender
bpy = pytest.importorskip("bpy")
from addon_fixtures import _compat, _movie_strip, _span, _strips, addon, scene  # noqa: E402,F401


def _write_png(path: Path, channels: int) -> None:
    img = bpy.data.images.new(path.stem, 8, 8, alpha=channels == 4)
    img.pixels[:] = np.full(8 * 8 * 4, 0.5, np.float32)
    img.filepath_raw, img.file_format = str(path), "PNG"
    img.save()
    bpy.data.images.remove(img)


def _run_and_frames(tmp_path: Path, plate: bool) -> tuple[Path, Path]:
    run, out = tmp_path / "run ü", tmp_path / "frames"
    run.mkdir()
    out.mkdir()
    if plate:
        _write_png(run / "plate.png", 3)
    for n in range(4):
        _write_png(out / f"frame_{n:06d}.png", 4)
    return run, out


def test_the_person_lands_above_the_runs_plate_over_the_source(addon, scene, tmp_path):
    strip = _movie_strip(scene)
    scene.edn.source_kind, scene.edn.source_strip = "STRIP", strip.name
    run, out = _run_and_frames(tmp_path, plate=True)
    addon.ops_generate.add_result(scene, out, run, None)
    plate, result = _strips(scene)["EDN Plate"], _strips(scene)["EDN Result"]
    assert plate.channel == strip.channel + 1 and result.channel == plate.channel + 1
    assert _span(plate) == _span(result) == _span(strip) and result.blend_type == "ALPHA_OVER"
    assert Path(bpy.path.abspath(plate.directory)) / plate.elements[0].filename == run / "plate.png"
    addon.ops_generate.add_result(scene, out, run, None)  # a rerun replaces both, stacking nothing
    assert sorted(s.name for s in _strips(scene)) == ["EDN Plate", "EDN Result", "dancer"]


def test_the_artists_own_plate_replaces_the_runs(addon, scene, tmp_path):
    strip = _movie_strip(scene)
    scene.edn.source_kind, scene.edn.source_strip = "STRIP", strip.name
    run, out = _run_and_frames(tmp_path, plate=True)
    addon.ops_generate.add_result(scene, out, run, None)
    own = _compat().top_strips(scene.sequence_editor).new_image(name="clean plate", filepath=str(run / "plate.png"),
                                                                 channel=6, frame_start=1)
    _compat().set_strip_duration(own, 40)
    scene.edn.plate_strip = own.name
    addon.ops_generate.add_result(scene, out, run, None)
    assert "EDN Plate" not in _strips(scene) and _strips(scene)["EDN Result"].channel == 7


def test_a_whole_frame_run_has_no_plate_strip(addon, scene, tmp_path):
    strip = _movie_strip(scene)
    scene.edn.source_kind, scene.edn.source_strip = "STRIP", strip.name
    run, out = _run_and_frames(tmp_path, plate=False)
    addon.ops_generate.add_result(scene, out, run, None)
    assert "EDN Plate" not in _strips(scene) and _strips(scene)["EDN Result"].channel == strip.channel + 1


def test_picking_edns_own_plate_as_the_plate_keeps_it_edns(addon, scene, tmp_path):
    """Choosing the 'EDN Plate' strip in the Plate field is not the artist's own plate: it is replaced as usual."""
    strip = _movie_strip(scene)
    scene.edn.source_kind, scene.edn.source_strip = "STRIP", strip.name
    run, out = _run_and_frames(tmp_path, plate=True)
    addon.ops_generate.add_result(scene, out, run, None)
    scene.edn.plate_strip = "EDN Plate"
    addon.ops_generate.add_result(scene, out, run, None)
    plate, result = _strips(scene)["EDN Plate"], _strips(scene)["EDN Result"]
    assert result.channel == plate.channel + 1


def test_a_plate_below_the_source_strip_is_reported_as_hidden(addon, scene, tmp_path):
    """The source strip (another dancer's footage) is opaque: a plate under it would never be seen."""
    strip = _movie_strip(scene, channel=3)
    scene.edn.source_kind, scene.edn.source_strip = "STRIP", strip.name
    run, _ = _run_and_frames(tmp_path, plate=True)
    own = _compat().top_strips(scene.sequence_editor).new_image(name="clean plate", filepath=str(run / "plate.png"),
                                                                channel=1, frame_start=1)
    scene.edn.plate_strip = own.name
    warning = addon.ops_generate.hidden_plate(scene)
    assert "'clean plate' (channel 1)" in warning and "'dancer' (channel 3)" in warning
    strip.mute = True  # the artist muted the source: the plate shows
    assert addon.ops_generate.hidden_plate(scene) is None
    strip.mute, own.channel = False, 5  # above the source: nothing hidden
    assert addon.ops_generate.hidden_plate(scene) is None
    scene.edn.plate_strip = ""
    assert addon.ops_generate.hidden_plate(scene) is None


@pytest.mark.parametrize("content", [b"hello", b"\x93NUMPY\x01\x00v\x00"])  # a text file; an .npy renamed .npz
def test_a_source_track_that_is_no_track_is_named_not_a_traceback(addon, scene, tmp_path, content):
    """Results go where the source track starts; a file that is no track there is named as the engine names it (a
    StripError, which the operators report), where numpy's ValueError or TypeError reached the user as a traceback."""
    import sys

    from addon_fixtures import ADDON

    sequencer = sys.modules[f"{ADDON}.sequencer"]
    track = tmp_path / "not a track ü.npz"
    track.write_bytes(content)
    scene.edn.source_kind, scene.edn.source_track = "ARMATURE", str(track)
    with pytest.raises(sequencer.StripError, match="the source track: .*not a track ü.npz: not a readable pose track"):
        sequencer.source_placement(scene)
