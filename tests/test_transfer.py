"""`edn transfer` end to end on two short real clips, at a tiny size and step count; a re-run reuses every stage."""

from __future__ import annotations

import json
import subprocess

import pytest

cv2 = pytest.importorskip("cv2")  # the engine's Python; the Blender 4.2 test venv has only bpy and numpy

from conftest import ENGINE_PYTHON, REPO, VIDEO  # noqa: E402
from edn_engine.video import open_source  # noqa: E402
from edn_engine.video_out import write_video  # noqa: E402

pytestmark = pytest.mark.slow


def clip(src, out, frames):
    """The first `frames` frames of a real clip, as a short mp4 (tests stay fast; footage stays unchanged)."""
    s = open_source(src, 0, frames - 1)
    write_video(out, (img for _, img in s), fps=s.fps)
    return out


def edn(*args):
    proc = subprocess.run([ENGINE_PYTHON, "-m", "edn_engine", *map(str, args), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is one JSON event
    assert proc.returncode == 0, (proc.stderr[-3000:], events[-3:])
    return events


def test_transfer_produces_frames_and_preview_and_reuses_every_stage(odd_dir):
    target = clip(VIDEO / "ubc_91BjuE6irxS.mp4", odd_dir / "target clip.mp4", 16)
    source = clip(VIDEO / "stgcn_ta_chi.mp4", odd_dir / "source.mp4", 7)
    out = odd_dir / "transfer out"
    args = ("transfer", "--target", target, "--source", source, "-o", out, "--size", "64x64", "--steps", "3",
            "--perceptual", "none")
    done = edn(*args)[-1]
    assert done["event"] == "done"
    assert set(done["stages"].values()) == {"ran"} and len(done["stages"]) == 7
    frames = sorted((out / "frames").glob("frame_*.png"))
    assert [f.name for f in frames] == [f"frame_{n:06d}.png" for n in range(7)]
    rgba = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (540, 414, 4)  # trained on the whole frame at 64x64, written at the clip's resolution
    cap = cv2.VideoCapture(str(out / "preview.mp4"))
    ok, first = cap.read()
    # source (340x256) | stick figure | result (both at the target's 414x540), each 64 high
    assert ok and first.shape[0] == 64 and abs(first.shape[1] - (85 + 2 * 49)) <= 2
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    cap.release()
    mtimes = {p: p.stat().st_mtime_ns for p in [*frames, out / "preview.mp4", out / "run" / "run.json"]}

    again = edn(*args)
    assert again[-1]["stages"] == {k: "reused" for k in done["stages"]}
    assert not any(e["event"] == "progress" for e in again), "a reused stage does no work"
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())

    # A changed input redoes its stage and those after it, and nothing before it.
    source2 = clip(VIDEO / "stgcn_ta_chi.mp4", odd_dir / "source.mp4", 5)
    third = edn(*args)[-1]["stages"]
    assert source2 == source
    assert [k for k, v in third.items() if v == "ran"] == ["source_pose", "drive", "generate", "preview"]
    assert len(list((out / "frames").glob("frame_*.png"))) == 5
