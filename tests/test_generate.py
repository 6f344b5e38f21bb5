"""`edn generate` with the shared tiny run (whole frame, letterboxed): RGBA frames named by source frame at the
clip's resolution, alpha that follows the matte there, transparent frames where there is no pose, resume, the mp4
preview, JSON events and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import cv2
import numpy as np
import pytest
import torch

import tiny_run
from edn_engine.dataset import load_manifest
from edn_engine.device import inference_precision
from edn_engine.errors import EdnError
from edn_engine.generate import generate
from edn_engine.outputs import partial_path
from edn_engine.pose.track import PoseTrack


@pytest.fixture(scope="session")
def run(root):  # the run folder only (conftest's `run` is the folder and the training summary)
    return tiny_run.trained_run(root)[0]


def _holdout_track(dataset, tmp_path, blank: int | None = None):
    """The held-out frames' own poses, in source pixels (the target's frame size), one row optionally blanked."""
    m = load_manifest(dataset)
    hold = [e["frame"] for e in m["frames"] if e["split"] == "holdout"]
    src = PoseTrack.load(dataset / "track_source.npz")
    track = src.slice(hold[0] - src.frame_start, hold[-1] - src.frame_start + 1).copy()
    if blank is not None:
        for part in (track.body, track.hands, track.face):
            part[blank] = 0
    path = tmp_path / "drive.npz"
    track.save(path)
    return path, hold


def test_generate_writes_rgba_frames_whose_alpha_follows_the_matte(run, dataset, root, tmp_path, odd_dir):
    track, hold = _holdout_track(dataset, tmp_path, blank=2)
    out, video = odd_dir / "frames", odd_dir / "preview.mp4"
    res = tiny_run.edn("generate", run, track, "-o", out, "--video", video, "--device", "cpu", "--json")
    assert res.returncode == 0, res.stderr
    events = tiny_run.json_events(res.stdout)
    done = events[-1]
    assert done["event"] == "done" and done["written"] == len(hold) - 1 and done["empty"] == 1
    assert done["face_gan"] is True and done["step"] == tiny_run.TRAIN_STEPS
    frames = [p.name for p in sorted(out.iterdir()) if p.name != ".source.json"]  # what they were made from
    assert frames == [f"frame_{n:06d}.png" for n in hold]
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(hold)
    cap.release()

    clip = (PoseTrack.load(track).height, PoseTrack.load(track).width)  # 540x414: trained 64x64, letterboxed
    blank = cv2.imread(str(out / f"frame_{hold[2]:06d}.png"), cv2.IMREAD_UNCHANGED)
    assert blank.shape == (*clip, 4) and blank.max() == 0  # no pose: fully transparent
    inside, outside = [], []
    source_mattes = tiny_run.source_pose(root)[1]
    for k, n in enumerate(hold):
        if k == 2:
            continue
        rgba = cv2.imread(str(out / f"frame_{n:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (*clip, 4) and rgba.dtype == np.uint8  # the clip's resolution: lines up with it
        matte = cv2.imread(str(source_mattes / f"matte_{n:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        alpha = rgba[..., 3].astype(float) / 255
        inside.append(alpha[matte].mean())
        outside.append(alpha[~matte].mean())
    # never trained on these frames: the predicted matte still covers the person more than the background
    assert np.mean(inside) > np.mean(outside) + 0.15, (np.mean(inside), np.mean(outside))


def test_resume_keeps_written_frames_and_continues(run, dataset, tmp_path):
    track, hold = _holdout_track(dataset, tmp_path)
    out = tmp_path / "frames"
    with tiny_run.one_thread():
        first = generate(run, track, out, device="cpu")
    assert first["written"] == len(hold)
    reference = cv2.imread(str(out / f"frame_{hold[-1]:06d}.png"), cv2.IMREAD_UNCHANGED)
    for n in hold[-2:]:
        (out / f"frame_{n:06d}.png").unlink()
    with tiny_run.one_thread():
        again = generate(run, track, out, device="cpu", resume=True)
    assert again["kept"] == len(hold) - 2 and again["written"] == 2
    redone = cv2.imread(str(out / f"frame_{hold[-1]:06d}.png"), cv2.IMREAD_UNCHANGED)
    # fed back from the 8-bit frame on disk instead of the float one: the same picture within rounding
    assert np.abs(redone.astype(int) - reference.astype(int)).mean() < 2.0
    # resumed with another track (or run, or --hands), the folder would mix two results: refused, nothing touched
    other = PoseTrack.load(track)
    other.replace(body=other.body * np.array([1.01, 1.0, 1.0], np.float32)).save(tmp_path / "other.npz")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(EdnError, match="generated from another track: generate without --resume"):
        generate(run, tmp_path / "other.npz", out, device="cpu", resume=True)
    if inference_precision(torch.device("cpu"), True) != "fp32":  # bf16 or int8 here: --no-amp draws otherwise
        with pytest.raises(EdnError, match="another precision"):
            generate(run, track, out, device="cpu", resume=True, amp=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before and not partial_path(out).exists()


def test_bad_input(run, dataset, tmp_path):
    track, _ = _holdout_track(dataset, tmp_path)
    nobody = PoseTrack.load(track)
    nobody = nobody.replace(body=np.zeros_like(nobody.body))
    nobody.save(tmp_path / "nobody.npz")
    with pytest.raises(EdnError, match="no person in any frame"):
        generate(run, tmp_path / "nobody.npz", tmp_path / "out")
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    with pytest.raises(EdnError, match="is a file"):
        generate(run, track, blocker / "frames")
    (tmp_path / "empty run").mkdir()
    with pytest.raises(EdnError, match="no checkpoint"):
        generate(tmp_path / "empty run", track, tmp_path / "out")
    res = tiny_run.edn("generate", tmp_path / "empty run", track, "-o", tmp_path / "out", "--json")
    assert res.returncode == 2 and tiny_run.json_events(res.stdout)[-1]["event"] == "error"


def test_a_dataset_without_mattes_trains_no_alpha_and_generates_opaque_frames(root, tmp_path):
    from edn_engine.dataset import build_dataset
    from edn_engine.training import TrainConfig, train

    track, _ = tiny_run.source_pose(root)
    summary = build_dataset(tiny_run.CLIP, tmp_path / "ds", (32, 32), track=track, mattes="none", holdout=0.0,
                            end=5)
    assert summary["mattes"] is False and not (tmp_path / "ds" / "mattes").exists()
    with tiny_run.one_thread():
        train(tmp_path / "ds", tmp_path / "run", TrainConfig(steps=2, face_fraction=0, device="cpu"),
              overrides=dict(tiny_run.TINY))
        out = generate(tmp_path / "run", track, tmp_path / "frames", device="cpu")
    assert out["written"] == tiny_run.FRAMES
    rgba = cv2.imread(str(tmp_path / "frames" / "frame_000003.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (540, 414, 4) and rgba[..., 3].min() == 255


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is the add-on's cancel on POSIX")
def test_sigterm_stops_generation_cleanly_and_resume_finishes_it(run, dataset, tmp_path):
    """The add-on cancels with SIGTERM: the engine stops as on Ctrl-C (exit 130, an `error` event), its writer
    processes end with it without multiprocessing's leaked-semaphore complaint, and the frames written so far are
    kept for --resume."""
    track_path, _ = _holdout_track(dataset, tmp_path)
    long = tiny_run.long_track(track_path, 400, tmp_path / "long.npz")
    out = tmp_path / "frames"
    cmd = [tiny_run.ENGINE_PYTHON, "-m", "edn_engine", "generate", str(run), str(tmp_path / "long.npz"), "-o",
           str(out), "--device", "cpu", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tiny_run.engine_env())
    for line in proc.stdout:
        if json.loads(line).get("done", 0) >= 20:
            break
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert json.loads(rest.splitlines()[-1]) == {"event": "error", "message": "interrupted"}
    assert "leaked" not in err and "Traceback" not in err, err[-2000:]
    kept = len(list(partial_path(out).glob("frame_*.png")))
    assert 20 <= kept < long.frames
    res = tiny_run.edn("generate", run, tmp_path / "long.npz", "-o", out, "--device", "cpu", "--resume", "--json")
    done = tiny_run.json_events(res.stdout)[-1]
    assert done["event"] == "done" and done["kept"] >= kept - 4 and done["kept"] + done["written"] == long.frames
