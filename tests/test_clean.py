"""Cleaning: gap filling up to N frames and no further, smoothing that removes spikes and never invents points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import OPENPOSE_FRAMES
from edn_engine.cli import main
from edn_engine.errors import EdnError
from edn_engine.pose.clean import METHODS, clean_track
from edn_engine.pose.openpose_json import import_openpose
from edn_engine.pose.track import PoseTrack


def _line_track(frames: int = 60) -> tuple[PoseTrack, np.ndarray]:
    """Nose moving at constant speed, confidence 0.9; returns the track and the true x per frame."""
    track = PoseTrack.empty(frames, 640, 480)
    x = np.linspace(100, 400, frames, dtype=np.float32)
    track.body[:, 0] = np.stack([x, np.full(frames, 200, np.float32), np.full(frames, 0.9, np.float32)], 1)
    return track, x


def _drop(track: PoseTrack, rows) -> None:
    track.body[rows, 0] = 0


def test_gaps_up_to_max_gap_are_filled_and_longer_ones_stay_missing():
    track, x = _line_track(80)
    track.body[20, 0, 2] = 0.5  # a weaker detection bounding the first gap
    gaps = {21: 1, 25: 2, 30: 3, 36: 4, 43: 5, 52: 6}  # start -> length
    for start, length in gaps.items():
        _drop(track, slice(start, start + length))
    _drop(track, slice(0, 5))  # before the first detection
    _drop(track, slice(75, 80))  # after the last
    cleaned = clean_track(track, median=1, max_gap=4)
    conf = cleaned.body[:, 0, 2]
    for start, length in gaps.items():
        rows = slice(start, start + length)
        if length <= 4:
            assert (conf[rows] > 0).all(), (start, length)
            np.testing.assert_allclose(cleaned.body[rows, 0, 0], x[rows], atol=1e-3)
            np.testing.assert_allclose(cleaned.body[rows, 0, 1], 200, atol=1e-4)
        else:
            assert (conf[rows] == 0).all(), (start, length)
    assert conf[21] == pytest.approx(0.5)  # the weaker of the two detections it bridges
    assert conf[25] == pytest.approx(0.9)
    assert (conf[:5] == 0).all() and (conf[75:] == 0).all()  # nothing before the first / after the last
    untouched = track.body[:, 0, 2] > 0
    np.testing.assert_array_equal(cleaned.body[untouched], track.body[untouched])


def test_max_gap_zero_fills_nothing():
    track, _ = _line_track(30)
    _drop(track, [10])
    assert clean_track(track, median=1, max_gap=0).body[10, 0, 2] == 0


def test_median_removes_a_spike_and_keeps_linear_motion():
    track, x = _line_track(60)
    track.body[30, 0, 1] = 450  # one-frame detector glitch
    track.body[31, 0, 0] += 80
    cleaned = clean_track(track, median=7, max_gap=0)
    np.testing.assert_allclose(cleaned.body[:, 0, 1], 200, atol=1e-4)
    step = x[1] - x[0]
    # The glitch is gone; the median of a ramp with one outlier lands at most one sample away from the truth.
    assert abs(cleaned.body[31, 0, 0] - x[31]) <= step + 1e-3
    np.testing.assert_allclose(cleaned.body[:, 0, 0], x, atol=step + 1e-3)
    far = np.r_[0:27, 35:60]  # frames whose window does not see the glitch: exact, ends included
    np.testing.assert_allclose(cleaned.body[far, 0, 0], x[far], atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_smoothing_reduces_jitter_and_never_invents_points(method):
    rng = np.random.default_rng(3)
    frames = 120
    track = PoseTrack.empty(frames, 640, 480)
    t = np.arange(frames)
    truth = 300 + 80 * np.sin(t / 15)
    track.body[:, 4, 0] = truth + rng.normal(0, 3, frames)
    track.body[:, 4, 1] = 240
    track.body[:, 4, 2] = 0.8
    _drop(track, slice(0, 4))
    track.body[50:60, 4] = 0  # a long gap: stays a gap
    cleaned = clean_track(track, method=method, median=7, max_gap=3)
    present = track.body[:, 4, 2] > 0
    np.testing.assert_array_equal(cleaned.body[:, 4, 2] > 0, present)
    raw_err = np.abs(track.body[present, 4, 0] - truth[present]).mean()
    new_err = np.abs(cleaned.body[present, 4, 0] - truth[present]).mean()
    assert new_err < 0.8 * raw_err, (method, raw_err, new_err)
    assert (cleaned.body[~present] == 0).all()


def test_only_the_chosen_parts_change():
    rng = np.random.default_rng(0)
    track = PoseTrack.empty(20, 640, 480)
    for part in ("body", "hands", "face"):
        arr = getattr(track, part)
        arr[..., :2] = rng.random(arr[..., :2].shape) * 400
        arr[..., 2] = 0.7
    cleaned = clean_track(track, parts=("body",))
    assert not np.array_equal(cleaned.body, track.body)
    np.testing.assert_array_equal(cleaned.hands, track.hands)
    np.testing.assert_array_equal(cleaned.face, track.face)


def test_real_track_moves_little_and_keeps_its_points(data_dir):
    track = import_openpose(OPENPOSE_FRAMES / "openpose", (1920, 1080))
    cleaned = clean_track(track, max_gap=0)
    for part in ("body", "hands", "face"):
        before, after = getattr(track, part), getattr(cleaned, part)
        np.testing.assert_array_equal(after[..., 2] > 0, before[..., 2] > 0)
    moved = np.abs(cleaned.body[..., :2] - track.body[..., :2])[track.body[..., 2] > 0]
    assert np.median(moved) < 5 and moved.max() < 60  # 5 consecutive frames of a slow dance


@pytest.mark.parametrize("kwargs, words", [
    ({"median": 6}, "odd"), ({"method": "kalman"}, "unknown smoothing"), ({"max_gap": -1}, "0 or more"),
    ({"parts": ("torso",)}, "unknown part"), ({"method": "savgol", "median": 1}, "longer than its order"),
])
def test_bad_options_are_clear_errors(kwargs, words):
    track, _ = _line_track(10)
    with pytest.raises(EdnError, match=words):
        clean_track(track, **kwargs)


def test_cli_clean(odd_dir, capsys):
    track, x = _line_track(40)
    _drop(track, slice(10, 12))
    src = track.save(odd_dir / "roh ü.npz")
    out = odd_dir / "sauber.npz"
    assert main(["pose", "clean", str(src), "-o", str(out), "--median", "5", "--max-gap", "3",
                 "--method", "savgol"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["points_filled"]["body"] == 2 and summary["method"] == "savgol"
    cleaned = PoseTrack.load(out)
    np.testing.assert_allclose(cleaned.body[:, 0, 0], x, atol=1e-2)


def test_cli_clean_bad_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip")
    assert main(["pose", "clean", str(bad), "-o", str(tmp_path / "o.npz")]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()
