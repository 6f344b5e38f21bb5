"""Pose detection (MediaPipe Holistic -> OpenPose layout) on real footage, and `edn pose extract` / `info`.

Kept short: every extraction here reads at most ~20 small frames.
"""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest

from conftest import ENGINE_PYTHON, OPENPOSE_FRAMES, REPO, VIDEO
from edn_engine.errors import EdnError
from edn_engine.pose import mediapipe_map as mpm
from edn_engine.pose.detect import DetectorConfig, extract_pose
from edn_engine.pose.skeleton import B
from edn_engine.pose.track import PoseTrack
from edn_engine.video import open_source, read_image, write_image
from edn_engine.video_out import write_video

UBC = VIDEO / "ubc_91BjuE6irxS.mp4"


def edn(*args) -> subprocess.CompletedProcess:
    return subprocess.run([ENGINE_PYTHON, "-m", "edn_engine", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def json_events(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]  # each line must parse on its own


# -- the mapping (numpy only) --------------------------------------------------------------------------------------
def test_mapping_tables_are_well_formed():
    assert len(set(mpm.FACE_68_FROM_MP)) == 68 and max(mpm.FACE_68_FROM_MP) < 468
    assert mpm.FACE_68_FROM_MP[36] == 33 and mpm.FACE_68_FROM_MP[45] == 263  # person's right eye first, as iBUG
    assert mpm.PUPILS_FROM_MP == {68: 468, 69: 473}
    mapped = [i for src in mpm.BODY_25_FROM_MP if src for i in src]
    assert max(mapped) < 33


def test_body_mapping_derives_neck_midhip_and_toes():
    pose = np.zeros((33, 4))
    pose[:, 3] = 0.9
    pose[:, :2] = 0.5
    pose[11, :2], pose[12, :2] = (0.6, 0.3), (0.4, 0.3)  # left shoulder on the image right: facing the camera
    pose[23, :2], pose[24, :2] = (0.55, 0.6), (0.45, 0.6)
    pose[31, :2], pose[29, :2] = (0.56, 0.95), (0.55, 0.9)  # left foot index, heel
    pose[15, :2] = (1.2, 0.5)  # left wrist outside the image: missing
    body = mpm.body_from_mediapipe(pose, 200, 100)
    assert body[B["Neck"], :2] == pytest.approx((100, 30))
    assert body[B["MidHip"], :2] == pytest.approx((100, 60))
    assert body[B["LShoulder"], 0] == pytest.approx(120) and body[B["RShoulder"], 0] == pytest.approx(80)
    assert body[B["LWrist"]].tolist() == [0, 0, 0]
    # Big toe medial of the foot index, small toe lateral (the left foot's lateral side is image right here).
    assert body[B["LBigToe"], 0] < 0.56 * 200 < body[B["LSmallToe"], 0]
    assert body[B["Nose"], 2] == pytest.approx(0.9)


# -- accuracy against OpenPose's own output -------------------------------------------------------------------------
def test_body_agrees_with_openpose_json():
    """Median error <= 0.05 torso lengths and PCK@0.1 >= 0.9 over the joints OpenPose found (5 frames, 1080p)."""
    track, summary = extract_pose(OPENPOSE_FRAMES)
    assert (track.frame_start, track.frames, track.width, track.height) == (100, 5, 1920, 1080)
    errors, face_errors = [], []
    for i in range(track.frames):
        data = json.loads((OPENPOSE_FRAMES / "openpose" / f"frame{100 + i:06d}.json").read_text())
        ref = np.asarray(data["people"][0]["pose_keypoints_2d"], np.float64).reshape(25, 3)
        torso = np.linalg.norm(ref[B["Neck"], :2] - ref[B["MidHip"], :2])
        found = ref[:, 2] > 0
        assert (track.body[i, found, 2] > 0).all(), f"frame {100 + i}: a joint OpenPose found is missing"
        errors.append(np.linalg.norm(track.body[i, found, :2] - ref[found, :2], axis=1) / torso)
        # The 70-point face table: the same landmarks as OpenPose's face (where OpenPose is confident).
        ref_face = np.asarray(data["people"][0]["face_keypoints_2d"], np.float64).reshape(70, 3)
        sure = ref_face[:, 2] > 0.4
        face_errors.append(np.linalg.norm(track.face[i, sure, :2] - ref_face[sure, :2], axis=1) / torso)
    errors, face_errors = np.concatenate(errors), np.concatenate(face_errors)
    median, pck = float(np.median(errors)), float((errors <= 0.1).mean())
    print(f"vs OpenPose: body median {median:.4f} torso lengths, PCK@0.1 {pck:.3f} over {errors.size} joints; "
          f"face median {np.median(face_errors):.4f} over {face_errors.size} points")
    assert median <= 0.05
    assert pck >= 0.9
    assert np.median(face_errors) <= 0.03 and face_errors.size > 200


# -- real clips ------------------------------------------------------------------------------------------------------
def test_extract_range_gives_track_and_mattes_in_two_parts(odd_dir):
    mattes = odd_dir / "mattes"
    track, summary = extract_pose(UBC, start=30, end=45, mattes_dir=mattes, config=DetectorConfig(workers=2))
    assert summary["workers"] == 2
    assert (track.frame_start, track.frames, track.width, track.height) == (30, 16, 414, 540)
    assert track.fps == pytest.approx(29.97, abs=0.01) and track.source == str(UBC)
    rates = track.detection_rates()
    assert rates["body"] == 1.0 and rates["face"] >= 0.9 and rates["left_hand"] >= 0.5 and rates["right_hand"] >= 0.5
    assert summary["frames_without_person"] == 0 and summary["detection_rate"]["body"] == 1.0
    # The two parts join in order: no joint jumps more than a fifth of the torso between consecutive frames.
    torso = np.median(np.linalg.norm(track.body[:, B["Neck"], :2] - track.body[:, B["MidHip"], :2], axis=1))
    core = [B[n] for n in ("Nose", "Neck", "RShoulder", "LShoulder", "MidHip", "RHip", "LHip")]
    assert np.abs(np.diff(track.body[:, core, :2], axis=0)).max() < 0.2 * torso
    # One matte per frame; the person (at the mid-hip) is inside it, the white backdrop corner outside.
    files = sorted(p.name for p in mattes.iterdir())
    assert files == [f"matte_{n:06d}.png" for n in range(30, 46)]
    m = read_image(mattes / "matte_000040.png", cv2.IMREAD_UNCHANGED)
    assert m.dtype == np.uint8 and m.shape == (540, 414)
    x, y = track.body[10, B["MidHip"], :2].round().astype(int)
    assert m[y, x] > 200 and m[:20, :20].max() < 50


def test_frames_without_a_person_are_counted_not_errors(odd_dir):
    rng = np.random.default_rng(0)
    noise = [cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (9, 9), 3) for _ in range(4)]
    grey = [np.full((240, 320, 3), 128, np.uint8)] * 4
    clip = odd_dir / "nobody.mp4"
    write_video(clip, noise + grey, fps=30)
    track, summary = extract_pose(clip)
    assert track.frames == 8 and summary["frames_without_person"] == 8
    assert not track.body[..., 2].any() and not track.hands[..., 2].any() and not track.face[..., 2].any()
    assert summary["detection_rate"]["body"] == 0.0
    assert summary["warnings"] == ["8 of 8 frames have nobody in them (kept, with confidence 0): frames 0-7"]
    # Through the CLI the warning is in the done event and logged once.
    proc = edn("pose", "extract", clip, "-o", odd_dir / "nobody.npz", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = json_events(proc)
    assert events[-1]["event"] == "done" and events[-1]["warnings"] == summary["warnings"]
    logged = [e["message"] for e in events if e["event"] == "log" and "nobody" in e["message"]]
    assert logged == [f"warning: {clip}: {summary['warnings'][0]}"]


def test_several_people_yield_one_valid_track(odd_dir):
    left = [img for _, img in open_source(UBC, 60, 65)]
    right = [img for _, img in open_source(UBC, 200, 205)]
    clip = odd_dir / "two people.mp4"
    write_video(clip, (np.concatenate([a, b], axis=1) for a, b in zip(left, right)), fps=30)
    track, summary = extract_pose(clip)
    assert track.width == 828 and track.detection_rates()["body"] == 1.0 and summary["warnings"] == []
    # Every detected body joint belongs to the person of the first frame (one half of the frame) in every frame.
    left = track.body[0, track.body[0, :, 2] > 0.3, 0].mean() < 414
    for i in range(track.frames):
        xs = track.body[i, track.body[i, :, 2] > 0.3, 0]
        assert (xs < 414).all() if left else (xs >= 414).all(), f"frame {i}: joints from the other person"


def test_image_folder_with_odd_path_through_the_cli(odd_dir):
    seq = odd_dir / "Bilder ü"
    for n, img in open_source(UBC, 120, 125):
        write_image(seq / f"tänzer_{n:04d}.png", img)
    (seq / "notes.txt").write_text("ignored")
    out = odd_dir / "out put" / "track ü.npz"
    proc = edn("pose", "extract", seq, "-o", out, "--start", 121, "--end", 124, "--mattes", odd_dir / "m", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = json_events(proc)
    assert events[-1]["event"] == "done" and any(e["event"] == "progress" for e in events)
    assert events[-1]["frames"] == 4 and events[-1]["frame_start"] == 121
    track = PoseTrack.load(out)
    assert (track.frame_start, track.frames, track.width, track.height) == (121, 4, 414, 540)
    assert len(list((odd_dir / "m").glob("matte_*.png"))) == 4

    info = edn("pose", "info", out)
    assert info.returncode == 0
    summary = json.loads(info.stdout)
    assert summary["frames"] == 4 and summary["frame_start"] == 121 and summary["fps"] == 30.0
    assert summary["detection_rate"]["body"] == 1.0 and summary["source"] == str(seq)


# -- bad input through the CLI: exit code 2 and one line naming the file -------------------------------------------
def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edn: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_bad_inputs(odd_dir):
    out = odd_dir / "t.npz"
    _one_line_error(edn("pose", "extract", odd_dir / "gone.mp4", "-o", out), str(odd_dir / "gone.mp4"), "not found")
    # An output under a regular file cannot be created, even by root (chmod would not stop root).
    blocker = odd_dir / "plain file"
    blocker.write_text("x")
    _one_line_error(edn("pose", "extract", UBC, "-o", blocker / "t.npz", "--end", 2), "plain file")
    assert not out.exists()


def test_bad_inputs_fail_before_any_work(odd_dir):
    fake = odd_dir / "fake.mp4"
    fake.write_text("hello\n")
    with pytest.raises(EdnError, match="not a video") as err:
        extract_pose(fake)
    assert str(fake) in str(err.value)
    empty = odd_dir / "no frames"
    empty.mkdir()
    with pytest.raises(EdnError, match="no images") as err:
        extract_pose(empty)
    assert str(empty) in str(err.value)
    blocker = odd_dir / "f"
    blocker.write_text("x")
    with pytest.raises(EdnError, match="mattes folder is a file"):
        extract_pose(UBC, end=1, mattes_dir=blocker)
    with pytest.raises(EdnError, match="past the last frame"):
        extract_pose(UBC, start=1000)


def test_cli_truncated_video_json_error_names_file_and_frame(odd_dir):
    cut = odd_dir / "cut.mp4"
    data = UBC.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.4)])
    out = odd_dir / "cut.npz"
    proc = edn("pose", "extract", cut, "-o", out, "--start", 200, "--json")
    assert proc.returncode == 2
    events = json_events(proc)
    assert events[-1]["event"] == "error"
    assert str(cut) in events[-1]["message"] and "frame " in events[-1]["message"]
    assert "truncated" in events[-1]["message"] and not out.exists()
