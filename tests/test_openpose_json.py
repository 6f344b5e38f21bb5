"""OpenPose JSON interop: the real OpenPose output in ../shared/data, exact round trips, crowds, COCO-18, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import OPENPOSE_FRAMES
from edn_engine.cli import main
from edn_engine.errors import EdnError
from edn_engine.pose.openpose_json import export_openpose, import_openpose, import_openpose_with_stats
from edn_engine.pose.skeleton import B, COCO_18
from edn_engine.pose.track import PoseTrack

OPENPOSE_JSON = OPENPOSE_FRAMES / "openpose"


def _person(body, face=(), left=(), right=()):
    return {"person_id": [-1], "pose_keypoints_2d": list(body), "face_keypoints_2d": list(face),
            "hand_left_keypoints_2d": list(left), "hand_right_keypoints_2d": list(right)}


def _write(folder: Path, name: str, people: list, version=1.3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"version": version, "people": people}))
    return path


def _standing_body(x0: float, y0: float, scale: float) -> list[float]:
    """A flat BODY_25 list: a vertical stick person whose box is about (0.3 * scale) x scale."""
    out = []
    for j in range(25):
        out += [x0 + (j % 5 - 2) * 0.07 * scale, y0 + j / 24 * scale, 0.8]
    return out


def test_import_real_openpose_json_keeps_its_values(data_dir):
    track = import_openpose(OPENPOSE_JSON, (1920, 1080), fps=25.0)
    files = sorted(OPENPOSE_JSON.glob("*.json"))
    assert track.frames == len(files) == 5
    assert track.frame_start == 100  # frame000100.json
    assert (track.width, track.height, track.fps) == (1920, 1080, 25.0)
    for i, path in enumerate(files):
        person = json.loads(path.read_text())["people"][0]
        np.testing.assert_array_equal(track.body[i].ravel(), np.float32(person["pose_keypoints_2d"]))
        np.testing.assert_array_equal(track.face[i].ravel(), np.float32(person["face_keypoints_2d"]))
        np.testing.assert_array_equal(track.hands[i, 0].ravel(), np.float32(person["hand_left_keypoints_2d"]))
        np.testing.assert_array_equal(track.hands[i, 1].ravel(), np.float32(person["hand_right_keypoints_2d"]))
    # OpenPose found the body and face in every frame; LEar (18) is missing in frame 100.
    assert track.detection_rates()["body"] == 1.0 and track.detection_rates()["face"] == 1.0
    assert track.body[0, B["LEar"], 2] == 0


def test_round_trip_of_real_json_is_exact(data_dir, odd_dir):
    track = import_openpose(OPENPOSE_JSON, (1920, 1080))
    files = export_openpose(track, odd_dir / "out json", stem="dancer")
    assert [f.name for f in files][:2] == ["dancer_000000000100_keypoints.json", "dancer_000000000101_keypoints.json"]
    doc = json.loads(files[0].read_text())
    assert doc["version"] == 1.3 and len(doc["people"]) == 1
    assert len(doc["people"][0]["pose_keypoints_2d"]) == 75
    back = import_openpose(odd_dir / "out json", (1920, 1080))
    for part in ("body", "hands", "face"):
        np.testing.assert_array_equal(getattr(back, part), getattr(track, part))
    assert back.frame_start == track.frame_start


def test_round_trip_keeps_every_float32_exactly(tmp_path):
    rng = np.random.default_rng(7)
    track = PoseTrack.empty(6, 640, 360, frame_start=7, source="/some/clip.mp4")
    for part in ("body", "hands", "face"):
        arr = getattr(track, part)
        arr[..., :2] = (rng.standard_normal(arr[..., :2].shape) * 10.0 ** rng.integers(-3, 4, arr[..., :2].shape))
        arr[..., 2] = rng.random(arr[..., 2].shape).astype(np.float32)
    track.body[2] = track.hands[2] = track.face[2] = 0  # a frame with nobody
    track.hands[3, 0] = 0  # a hand not found
    files = export_openpose(track, tmp_path)
    assert files[0].name == "clip_000000000007_keypoints.json"
    assert json.loads(files[2].read_text())["people"] == []
    assert json.loads(files[3].read_text())["people"][0]["hand_left_keypoints_2d"] == [0] * 63
    back = import_openpose(tmp_path, (640, 360))
    assert back.frame_start == 7 and back.frames == 6
    for part in ("body", "hands", "face"):
        np.testing.assert_array_equal(getattr(back, part), getattr(track, part))


def test_largest_person_is_kept_and_counted(tmp_path):
    small = _standing_body(200, 100, 120)  # far behind
    big = _standing_body(600, 50, 400)
    face = [700.0, 80.0, 0.9] * 70
    _write(tmp_path, "f_000000000000_keypoints.json", [_person(small), _person(big, face=face)])
    _write(tmp_path, "f_000000000001_keypoints.json", [_person(big, face=face), _person(small)])
    _write(tmp_path, "f_000000000002_keypoints.json", [])
    track, stats = import_openpose_with_stats(tmp_path, (1280, 720))
    for i in (0, 1):
        np.testing.assert_array_equal(track.body[i].ravel(), np.float32(big))
        assert track.face[i, 0, 0] == 700.0
    assert not track.body[2, :, 2].any()
    assert stats["frames_with_several_people"] == 2 and stats["frames_with_nobody"] == 1


def test_coco18_maps_to_body25_with_midhip_derived(tmp_path):
    coco = np.zeros((18, 3), np.float32)
    for i, name in enumerate(COCO_18):
        coco[i] = (100 + 10 * i, 50 + 20 * i, 0.5 + 0.02 * i)
    _write(tmp_path, "pose_7.json", [_person(coco.ravel().tolist())], version=1.0)
    track = import_openpose(tmp_path, (640, 480))
    assert track.frame_start == 7
    body = track.body[0]
    for i, name in enumerate(COCO_18):
        np.testing.assert_array_equal(body[B[name]], coco[i])
    r, l = coco[COCO_18.index("RHip")], coco[COCO_18.index("LHip")]
    np.testing.assert_allclose(body[B["MidHip"]], [(r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2])])
    for name in ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"):
        assert body[B[name], 2] == 0


def test_gaps_in_file_numbers_become_empty_frames(tmp_path):
    _write(tmp_path, "a_000000000010_keypoints.json", [_person(_standing_body(300, 50, 300))])
    _write(tmp_path, "a_000000000013_keypoints.json", [_person(_standing_body(320, 50, 300))])
    (tmp_path / "notes.txt").write_text("not a keypoint file")
    track = import_openpose(tmp_path, (640, 480))
    assert track.frames == 4 and track.frame_start == 10
    assert track.body[0, 0, 2] > 0 and track.body[3, 0, 2] > 0
    assert not track.body[1:3, :, 2].any()


@pytest.mark.parametrize("text, words", [
    ('{"version": 1.3, "people": [ {"pose_keypoints_2d": [1, 2, ', "malformed JSON"),
    ('{"version": 1.3}', "no 'people' list"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 0.5, 3]}]}', "not a flat list"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 0.5, 3, 4, 0.5]}]}', "BODY_25 (25) and COCO-18 (18)"),
    ('{"people": [{"pose_keypoints_2d": [], "face_keypoints_2d": [1, 2, 0.5]}]}', "expected 70"),
    ('{"people": [{"pose_keypoints_2d": ["a", 2, 0.5]}]}', "other than numbers"),
])
def test_bad_json_is_an_error_naming_the_file(tmp_path, text, words):
    _write(tmp_path, "ok_000000000000_keypoints.json", [_person(_standing_body(300, 50, 300))])
    bad = tmp_path / "ok_000000000001_keypoints.json"
    bad.write_text(text)
    with pytest.raises(EdnError) as info:
        import_openpose(tmp_path, (640, 480))
    assert str(bad) in str(info.value) and words in str(info.value)


def test_missing_or_empty_folder_is_an_error(tmp_path):
    with pytest.raises(EdnError, match="not found"):
        import_openpose(tmp_path / "nope", (640, 480))
    with pytest.raises(EdnError, match="no OpenPose JSON"):
        import_openpose(tmp_path, (640, 480))


def test_cli_import_export_round_trip(data_dir, odd_dir, capsys):
    track_path = odd_dir / "tänzer track.npz"
    assert main(["pose", "import-openpose", str(OPENPOSE_JSON), "-o", str(track_path), "--size", "1920x1080",
                 "--fps", "29.97"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 5 and summary["frame_start"] == 100 and summary["openpose"]["files"] == 5
    assert main(["pose", "export-openpose", str(track_path), "-o", str(odd_dir / "json out"), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["files"] == 5
    assert any(e["event"] == "progress" for e in events)
    back = import_openpose(odd_dir / "json out", (1920, 1080))
    np.testing.assert_array_equal(back.body, PoseTrack.load(track_path).body)


def test_cli_bad_json_exits_nonzero_naming_the_file(tmp_path, capsys):
    bad = _write(tmp_path / "in", "x_000000000000_keypoints.json", [])
    bad.write_text("{nope")
    out = tmp_path / "t.npz"
    assert main(["pose", "import-openpose", str(tmp_path / "in"), "-o", str(out), "--size", "640x480"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "malformed JSON" in err
    assert not out.exists()
