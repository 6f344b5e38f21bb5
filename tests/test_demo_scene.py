"""The demo's Blender side (edn_demo): Blender renders a mannequin, the armature's projected pose lies on it, and
the demo's .blend is assembled from rendered frames.

The package runs as `edn demo` runs it: `python -m edn_demo...` with bpy, from the installed packages (cwd and
PYTHONPATH outside the checkout), so a pip-installed engine finds it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")  # the engine's Python; the Blender 4.2 test venv has only bpy and numpy
pytest.importorskip("bpy")

from edn_engine.pose.skeleton import B  # noqa: E402
from edn_engine.pose.track import PoseTrack  # noqa: E402
pytestmark = pytest.mark.slow


def _env() -> dict:
    """The environment without PYTHONPATH: the packages are found installed, as a user's are."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _run(module, *args):
    env = _env()
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return events[-1]


def _scene(out, *extra):
    return _run("edn_demo.scene", "--out", out, *extra)


def test_mannequin_render_and_ground_truth_track_agree(odd_dir):
    out = odd_dir / "scene"
    done = _scene(out, "--frames", "3", "--size", "96", "--samples", "2", "--blend", out / "scene.blend")
    assert done["event"] == "done" and done["frames"] == 3 and (out / "scene.blend").is_file()
    track = PoseTrack.load(out / "track.npz")
    assert (track.frames, track.width, track.height) == (3, 96, 96)
    for i in range(3):
        img = cv2.imread(str(out / "frames" / f"frame_{i:06d}.png"))
        matte = cv2.imread(str(out / "mattes" / f"matte_{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (96, 96, 3) and matte.shape == (96, 96)
        person = matte > 127
        assert 0.03 < person.mean() < 0.5, "the mannequin fills a sensible part of the frame"
        # Clothing reads as distinct colours: a blue shirt (B > R) and red trousers (R > B) inside the matte.
        b, r = img[..., 0].astype(int), img[..., 2].astype(int)
        assert ((b - r > 40) & person).sum() > 20 and ((r - b > 40) & person).sum() > 20
        # The projected pose lies on the mannequin: head, neck, hips, wrists, ankles, hands, face.
        near = cv2.dilate(person.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0

        def on(points):
            pts = points[points[:, 2] > 0]
            xy = np.round(pts[:, :2]).astype(int)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < 96) & (xy[:, 1] >= 0) & (xy[:, 1] < 96)
            return inside.all() and near[xy[:, 1], xy[:, 0]].mean()

        joints = [B[n] for n in ("Nose", "Neck", "MidHip", "RWrist", "LWrist", "RAnkle", "LAnkle")]
        assert on(track.body[i, joints]) == 1.0
        assert on(track.hands[i].reshape(-1, 3)) > 0.9
        assert on(track.face[i]) > 0.85
    # The dance moves: the wrists travel between frames.
    assert np.abs(np.diff(track.body[:, B["RWrist"], :2], axis=0)).max() > 1.0


def test_transfer_motion_differs_from_the_dance(tmp_path):
    _scene(tmp_path / "a", "--frames", "8", "--size", "64", "--no-render")
    _scene(tmp_path / "b", "--frames", "8", "--size", "64", "--no-render", "--motion", "transfer")
    a, b = PoseTrack.load(tmp_path / "a" / "track.npz"), PoseTrack.load(tmp_path / "b" / "track.npz")
    assert np.abs(a.body[1:, :15, :2] - b.body[1:, :15, :2]).mean() > 1.0


def test_demo_blend_holds_the_strips_and_no_backup(odd_dir):
    """The .blend `edn demo` ends with: the frames as strips, paths relative, saved atomically with no leftovers."""
    out = odd_dir / "scene"
    _scene(out, "--frames", "2", "--size", "32", "--samples", "1", "--blend", out / "scene.blend")
    alpha = odd_dir / "result"
    alpha.mkdir()
    for i in range(2):
        cv2.imwrite(str(alpha / f"frame_{i:06d}.png"), np.full((32, 32, 4), 200, np.uint8))
    blend = odd_dir / "edn_demo.blend"
    for _ in range(2):  # a re-run replaces the .blend; each run saves twice (paths made relative in between)
        done = _run("edn_demo.blend", "--scene", out / "scene.blend", "--out", blend,
                    "--strip", f"Source render={out / 'frames'}", "--strip", f"EDN result={alpha}:alpha")
        assert [(s["name"], s["channel"], s["frames"]) for s in done["strips"]] == [
            ("Source render", 1, 2), ("EDN result", 2, 2)]
    assert sorted(p.name for p in odd_dir.iterdir()) == ["edn_demo.blend", "result", "scene"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    check = ("import bpy, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
             "sed = bpy.context.scene.sequence_editor; "
             "strips = sed.strips_all if hasattr(sed, 'strips_all') else sed.sequences_all; "
             "print(sorted((s.name, s.directory, s.blend_type) for s in strips))")
    shown = subprocess.run([sys.executable, "-c", check, str(blend)], capture_output=True, text=True, timeout=120)
    assert "('EDN result', '//result" in shown.stdout and "ALPHA_OVER" in shown.stdout, shown.stderr[-2000:]


def test_whole_demo_at_a_tiny_size_puts_the_person_over_a_plate(odd_dir):
    """`edn demo` end to end, tiny: the static render is learnt over its plate, scored on the composites against
    ground truth beside both retrievals, and the .blend shows the result over the plate and alone (RGBA)."""
    out = odd_dir / "demo"
    # -o relative to the caller's folder: the Blender and generate children run elsewhere and must write there too
    proc = subprocess.run([sys.executable, "-m", "edn_engine", "demo", "-o", "demo", "--minutes", "0.2",
                           "--frames", "16", "--test-frames", "4", "--size", "128", "--samples", "1", "--json"],
                          cwd=odd_dir, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert done["event"] == "done", done
    manifest = json.loads((out / "dataset" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["framing"]["mode"] == "window" and (out / "dataset" / "plate.png").is_file()
    for name in ("model", "retrieval", "retrieval_absolute"):
        assert done[name]["person_found"] is not None and 0 <= done[name]["ssim_person"] <= 1
    person = cv2.imread(str(out / "generated" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    over = cv2.imread(str(out / "generated" / "composite" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    assert person.shape == (128, 128, 4) and over.shape == (128, 128, 3)
    assert person[..., 3].min() < 128 < person[..., 3].max()  # the person alone: transparent around them
    shown = subprocess.run([sys.executable, "-c", "import bpy, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
                            "sed = bpy.context.scene.sequence_editor; "
                            "strips = sed.strips_all if hasattr(sed, 'strips_all') else sed.sequences_all; "
                            "print(sorted(s.name for s in strips))", done["blend"]],
                           env=_env(), capture_output=True, text=True, timeout=120)
    assert "'EDN over plate'" in shown.stdout and "'EDN person'" in shown.stdout, shown.stderr[-2000:]
