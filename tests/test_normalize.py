"""Global pose normalization on synthetic dancers whose right answer is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edn_engine.cli import main
from edn_engine.errors import EdnError
from edn_engine.pose.normalize import NormalizeConfig, normalize_track
from edn_engine.pose.skeleton import B
from edn_engine.pose.track import PoseTrack
from synthetic_pose import NOSE_HEIGHT, person, track_from_frames


def dancer(frames: int, near: float, far: float, horizon: float, k: float, center_x: float, sway: float,
           phase: float, laps: float, size: tuple[int, int]) -> tuple[PoseTrack, np.ndarray, np.ndarray]:
    """A person walking between ankle rows `far` and `near` of a pinhole camera over a flat floor: stature is
    k * (ankle_y - horizon). Every 23rd frame crouches and every 41st jumps (both distort the height measure).
    Returns the track, the floor ankle row per frame, and which frames are crouches or jumps."""
    t = np.arange(frames)
    ankle = far + (near - far) * (0.5 - 0.5 * np.cos(2 * np.pi * laps * t / frames + phase))
    x = center_x + sway * np.sin(2 * np.pi * 3.1 * t / frames + phase)
    special = np.zeros(frames, bool)
    rows = []
    for i in range(frames):
        stature = k * (ankle[i] - horizon)
        crouch = 0.25 if i % 23 == 7 else 0.0
        body, hands, face = person(stature, x[i], ankle[i], arm_swing=0.05 * np.sin(i / 5), crouch=crouch)
        if i % 41 == 3:  # a jump: the whole body leaves the floor
            for part in (body, hands, face):
                part[..., 1] -= 0.15 * stature
        special[i] = crouch > 0 or i % 41 == 3
        rows.append((body, hands, face))
    return track_from_frames(rows, *size), ankle, special


def nose_height(track: PoseTrack) -> np.ndarray:
    feet = (track.body[:, B["RAnkle"], :2] + track.body[:, B["LAnkle"], :2]) / 2
    return np.linalg.norm(track.body[:, B["Nose"], :2] - feet, axis=1)


def ankle_row(track: PoseTrack) -> np.ndarray:
    return np.maximum(track.body[:, B["RAnkle"], 1], track.body[:, B["LAnkle"], 1])


def transformed(track: PoseTrack, scale: float, dx: float, dy: float, size: tuple[int, int]) -> PoseTrack:
    parts = {}
    for part in ("body", "hands", "face"):
        arr = getattr(track, part).copy()
        arr[..., 0] = arr[..., 0] * scale + dx
        arr[..., 1] = arr[..., 1] * scale + dy
        parts[part] = arr
    return track.replace(width=size[0], height=size[1], **parts)


@pytest.mark.parametrize("interpolation", ["linear", "height"])
def test_target_that_is_the_source_scaled_and_shifted_is_recovered(interpolation):
    source, _, _ = dancer(300, near=1000, far=700, horizon=350, k=0.9, center_x=960, sway=200, phase=0.3,
                          laps=2.3, size=(1920, 1080))
    target = transformed(source, 0.5, 150, 120, (1280, 720))
    out, params = normalize_track(source, target, NormalizeConfig(interpolation=interpolation))
    assert (out.width, out.height) == (1280, 720)
    assert params.scale_close == pytest.approx(0.5, rel=0.02) and params.scale_far == pytest.approx(0.5, rel=0.02)
    np.testing.assert_allclose(nose_height(out), nose_height(target), rtol=0.02)
    for part in ("body", "hands", "face"):
        err = np.abs(getattr(out, part)[..., :2] - getattr(target, part)[..., :2])
        assert err.max() < 0.02 * target.width, part


@pytest.mark.parametrize("interpolation", ["linear", "height"])
def test_walking_toward_the_camera_keeps_the_targets_perspective(interpolation):
    # Source: 1920x1080, floor rows 650..1050, stature 0.9 * (y - 350). Target: another camera and person,
    # 1280x720, floor rows 500..700, stature 1.2 * (y - 250): its people shrink faster with distance.
    source, _, special = dancer(300, near=1050, far=650, horizon=350, k=0.9, center_x=960, sway=250, phase=0.3,
                                laps=2.3, size=(1920, 1080))
    target, _, _ = dancer(400, near=700, far=500, horizon=250, k=1.2, center_x=640, sway=150, phase=1.1,
                          laps=1.7, size=(1280, 720))
    out, params = normalize_track(source, target, NormalizeConfig(interpolation=interpolation))
    assert not params.range_narrowed
    rows, heights = ankle_row(out)[~special], nose_height(out)[~special]
    target_law = NOSE_HEIGHT * 1.2 * (rows - 250)  # the height the target would have at that floor row

    # The near ends of the two floors meet; the far side follows the anchors (their place depends on how each
    # dancer spread their time over the floor, as in the paper), within the target's floor.
    assert rows.max() == pytest.approx(700, abs=0.02 * 720)
    assert rows.min() > 500 - 0.02 * 720
    # Heights follow the target's perspective: exactly (2%) with the height-ratio rule; with the paper's linear
    # scale rule at the two anchors, and everywhere in the same direction and roughly.
    p = (ankle_row(source)[~special] - params.source.far) / (params.source.close - params.source.far)
    at_close, at_far = np.abs(p - 1) < 0.05, np.abs(p) < 0.05
    assert at_close.sum() >= 5 and at_far.sum() >= 5
    if interpolation == "height":
        np.testing.assert_allclose(heights, target_law, rtol=0.02)
    else:
        np.testing.assert_allclose(heights[at_close | at_far], target_law[at_close | at_far], rtol=0.02)
        np.testing.assert_allclose(heights, target_law, rtol=0.10)
    # The near/far size relation is the target's (1.2 * (y - 250)), not the source's (0.9 * (y - 350)).
    ratio = heights[at_close].mean() / heights[at_far].mean()
    assert ratio == pytest.approx(target_law[at_close].mean() / target_law[at_far].mean(), rel=0.02)
    source_rows = ankle_row(source)[~special]
    source_ratio = (source_rows[at_close] - 350).mean() / (source_rows[at_far] - 350).mean()
    assert abs(ratio - source_ratio) > 0.1  # the test can tell the two perspectives apart
    # Sideways: the source's sway about its mean lands about the target's mean, scaled.
    assert np.mean(out.body[:, B["MidHip"], 0]) == pytest.approx(640, abs=0.02 * 1280)


def test_a_source_dancing_on_one_spot_lands_mid_floor_at_the_targets_size_there():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(120):  # stays at row 900 (+-2 px of detector noise), stature 500
        rows.append(person(500, 900 + 40 * np.sin(i / 9), 900 + rng.normal(0, 2), arm_swing=0.06 * np.sin(i / 4)))
    source = track_from_frames(rows, 1920, 1080)
    target, _, _ = dancer(400, near=700, far=500, horizon=250, k=1.2, center_x=640, sway=150, phase=1.1,
                          laps=1.7, size=(1280, 720))
    out, params = normalize_track(source, target)
    assert params.range_narrowed
    mid = (params.target.close + params.target.far) / 2
    assert np.median(ankle_row(out)) == pytest.approx(mid, abs=0.01 * 720)
    assert np.ptp(ankle_row(out)) < 0.02 * 720  # noise is not stretched over the target's floor
    np.testing.assert_allclose(np.median(nose_height(out)), NOSE_HEIGHT * 1.2 * (mid - 250), rtol=0.02)


def test_missing_points_stay_missing_and_frames_without_ankles_follow_their_neighbours():
    source, _, _ = dancer(120, near=1000, far=700, horizon=350, k=0.9, center_x=960, sway=200, phase=0.3,
                          laps=1.0, size=(1920, 1080))
    source.body[10] = 0  # nobody
    source.body[20, [B["RAnkle"], B["LAnkle"]]] = 0  # ankles hidden
    source.hands[30, 0] = 0
    target = transformed(source, 0.5, 100, 50, (1280, 720))
    target.body[20] = target.body[19]  # (the target only needs full-body frames somewhere)
    out, params = normalize_track(source, target)
    assert not out.body[10, :, 2].any() and not out.hands[30, 0, :, 2].any()
    assert (out.body[10] == 0).all()
    assert params.ankle[20] == pytest.approx((params.ankle[19] + params.ankle[21]) / 2)
    assert len(params.to_dict()["per_frame"]["scale"]) == 120


def test_a_target_without_full_body_frames_is_a_clear_error():
    source, _, _ = dancer(50, near=1000, far=700, horizon=350, k=0.9, center_x=960, sway=200, phase=0.3,
                          laps=1.0, size=(1920, 1080))
    target = source.copy()
    target.body[:, [B["RAnkle"], B["LAnkle"]]] = 0  # an upper-body video
    with pytest.raises(EdnError, match="head and both ankles") as info:
        normalize_track(source, target, target_name="upper.npz")
    assert "upper.npz" in str(info.value)


def test_cli_normalize_writes_track_and_params(odd_dir, capsys):
    source, _, _ = dancer(90, near=1000, far=700, horizon=350, k=0.9, center_x=960, sway=200, phase=0.3,
                          laps=1.0, size=(1920, 1080))
    target = transformed(source, 0.5, 150, 120, (1280, 720))
    s, t = source.save(odd_dir / "quelle ü.npz"), target.save(odd_dir / "ziel 舞.npz")
    out, params_path = odd_dir / "norm.npz", odd_dir / "params.json"
    assert main(["pose", "normalize", "--source", str(s), "--target", str(t), "-o", str(out),
                 "--params", str(params_path), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["width"] == 1280
    params = json.loads(params_path.read_text())
    assert params["scale_close"] == pytest.approx(0.5, rel=0.02)
    assert len(params["per_frame"]["offset_x"]) == 90
    np.testing.assert_allclose(PoseTrack.load(out).body[..., :2], target.body[..., :2], atol=0.02 * 1280)


def test_cli_normalize_bad_target_exits_2_naming_it(tmp_path, capsys):
    source, _, _ = dancer(30, near=1000, far=700, horizon=350, k=0.9, center_x=960, sway=200, phase=0.3,
                          laps=1.0, size=(1920, 1080))
    s = source.save(tmp_path / "s.npz")
    bad = tmp_path / "t.npz"
    bad.write_text("garbage")
    assert main(["pose", "normalize", "--source", str(s), "--target", str(bad), "-o", str(tmp_path / "o.npz")]) == 2
    assert str(bad) in capsys.readouterr().err
