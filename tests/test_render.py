"""Stick figures: colours where limbs are, letterboxing, determinism, ControlNet's look, files and the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import OPENPOSE_FRAMES
from edn_engine.cli import main
from edn_engine.errors import EdnError
from edn_engine.pose.openpose_json import import_openpose
from edn_engine.pose.skeleton import B, FACE_SPARSE_8, mirror_pose
from edn_engine.render import BODY_25_COLORS, COCO_18_COLORS, HAND_COLORS, draw_pose, render_frame, render_track
from synthetic_pose import person, track_from_frames


def bgr(rgb):
    return tuple(int(v) for v in rgb[::-1])


def mid(body, a, b):
    x, y = (body[B[a], :2] + body[B[b], :2]) / 2
    return int(round(y)), int(round(x))


@pytest.fixture(scope="module")
def standing():
    return person(400, 256, 470)  # in a 512x512 frame


@pytest.fixture(scope="module")
def real_track():
    return import_openpose(OPENPOSE_FRAMES / "openpose", (1920, 1080))


def test_edn_limbs_have_openpose_colours(standing):
    body, hands, face = standing
    img = draw_pose(body, hands, face, (512, 512))
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    # A limb takes its end joint's colour (OpenPose's renderer): spine Neck->MidHip is MidHip's red, the right
    # upper arm RShoulder->RElbow is RElbow's orange, the left shin LKnee->LAnkle is LAnkle's blue.
    for a, b in (("Neck", "MidHip"), ("RShoulder", "RElbow"), ("LKnee", "LAnkle"), ("RHip", "RKnee")):
        assert tuple(img[mid(body, a, b)]) == bgr(BODY_25_COLORS[B[b]]), (a, b)
    x, y = body[B["LElbow"], :2]  # a joint disc (wrists are under the hands' own wrist points)
    assert tuple(img[int(round(y)), int(round(x))]) == bgr(BODY_25_COLORS[B["LElbow"]])
    assert tuple(img[5, 5]) == (0, 0, 0)


def test_hands_and_face_are_drawn(standing):
    body, hands, face = standing
    img = draw_pose(body, hands, face, (512, 512))
    tip = hands[1, 4, :2]  # right thumb tip, in OpenPose's hand colour
    assert tuple(img[int(round(tip[1])), int(round(tip[0]))]) == bgr(HAND_COLORS[4])
    tip = hands[0, 4, :2]  # the left hand: red and blue exchanged
    assert tuple(img[int(round(tip[1])), int(round(tip[0]))]) == tuple(HAND_COLORS[4])
    chin = face[8, :2]
    assert 8 in FACE_SPARSE_8 and tuple(img[int(round(chin[1])), int(round(chin[0]))]) == (255, 255, 255)
    bare = draw_pose(body, np.zeros_like(hands), np.zeros_like(face), (512, 512))
    assert (img != bare).any(axis=2).sum() > 50
    full = draw_pose(body, hands, face, (512, 512), face_mode="full")
    assert ((full == 255).all(axis=2).sum()) > ((img == 255).all(axis=2).sum())


def test_missing_and_unconfident_points_are_not_drawn(standing):
    body, hands, face = (p.copy() for p in standing)
    body[B["RElbow"], 2] = 0
    body[B["LElbow"], 2] = 0.04  # under OpenPose's body render threshold (0.05)
    hands[:] = 0
    face[:] = 0
    img = draw_pose(body, hands, face, (512, 512))
    for a, b in (("RShoulder", "RElbow"), ("LShoulder", "LElbow")):
        assert tuple(img[mid(body, a, b)]) == (0, 0, 0)


def test_rendering_is_deterministic_and_anti_aliased(real_track):
    a = render_frame(real_track, 2, (512, 256))
    b = render_frame(real_track, 2, (512, 256))
    assert a.tobytes() == b.tobytes()
    levels = np.unique(a.reshape(-1, 3), axis=0)
    assert len(levels) > 50  # blended edge pixels, not just the flat palette


def test_letterbox_keeps_aspect(standing):
    body, hands, face = standing
    track = track_from_frames([standing], 1000, 500)  # 2:1 source into a square output
    img = render_frame(track, 0, (400, 400))
    ys, xs = np.nonzero(img.any(axis=2))
    # scale 0.4, padded 100 px top and bottom
    assert ys.min() >= 100 - 1 and ys.max() <= 300 + 1
    x, y = body[B["Neck"], :2] * 0.4 + (0, 100)
    np.testing.assert_array_equal(img[int(round(y)), int(round(x))], bgr(BODY_25_COLORS[B["Neck"]]))
    # the same figure drawn directly at the source size, shrunk, has the same extent
    direct = draw_pose(body, hands, face, (1000, 500))
    dy, dx = np.nonzero(direct.any(axis=2))
    assert (xs.max() - xs.min()) / (ys.max() - ys.min()) == pytest.approx(
        (dx.max() - dx.min()) / (dy.max() - dy.min()), rel=0.08)


def test_controlnet_style(standing, real_track):
    body, hands, face = standing
    img = draw_pose(body, hands, face, (512, 512), style="controlnet")
    assert (img[:20] == 0).all() and (img[:, :20] == 0).all()  # black background
    assert (img.any(axis=2)).mean() < 0.2
    # COCO-18 limbs at 60%: neck->right shoulder is limb 0 (red), neck->right hip is limb 6 (green).
    assert tuple(img[mid(body, "Neck", "RShoulder")]) == bgr([int(v * 0.6) for v in COCO_18_COLORS[0]])
    assert tuple(img[mid(body, "Neck", "RHip")]) == bgr([int(v * 0.6) for v in COCO_18_COLORS[6]])
    # no BODY_25-only parts: no spine to the mid-hip, no feet
    assert tuple(img[mid(body, "MidHip", "MidHip")]) == (0, 0, 0)
    toe = body[B["LBigToe"], :2]
    assert tuple(img[int(round(toe[1])) + 3, int(round(toe[0]))]) == (0, 0, 0)
    assert not np.array_equal(img, draw_pose(body, hands, face, (512, 512)))
    real = render_frame(real_track, 0, (512, 256), style="controlnet")
    assert tuple(real[0, 0]) == (0, 0, 0) and real.any()


def test_bad_style_is_an_error(standing):
    with pytest.raises(EdnError, match="style"):
        draw_pose(*standing, (64, 64), style="blender")
    with pytest.raises(EdnError, match="face"):
        draw_pose(*standing, (64, 64), face_mode="none")


def test_render_track_writes_numbered_pngs_and_video(real_track, odd_dir):
    track = real_track.slice(1, 4)  # source frames 101..103
    out = odd_dir / "figuren"
    summary = render_track(track, out, (256, 128), video=odd_dir / "fig ü.mp4")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["figure_000101.png", "figure_000102.png", "figure_000103.png"]
    img = cv2.imdecode(np.fromfile(out / names[0], np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(img, render_frame(real_track, 1, (256, 128)))
    assert summary["frames"] == 3 and summary["size"] == [256, 128]
    cap = cv2.VideoCapture(str(odd_dir / "fig ü.mp4"))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    finally:
        cap.release()


def test_cli_render(real_track, odd_dir, capsys):
    path = real_track.save(odd_dir / "spur 舞.npz")
    out = odd_dir / "out dir"
    assert main(["render", str(path), "-o", str(out), "--size", "320x180", "--style", "controlnet",
                 "--face", "full", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] in ("preview", "progress") and events[-1]["event"] == "done"
    assert events[-1]["frames"] == 5 and events[-1]["style"] == "controlnet"
    assert any(e["event"] == "preview" for e in events)
    assert len(list(out.glob("figure_*.png"))) == 5


def test_cli_render_bad_track_exits_2(tmp_path, capsys):
    bad = tmp_path / "nope.npz"
    assert main(["render", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_render_unwritable_output(real_track, tmp_path, capsys):
    path = real_track.save(tmp_path / "t.npz")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["render", str(path), "-o", str(blocker)]) == 2
    assert "folder" in capsys.readouterr().err


def test_a_mirrored_pose_is_the_mirror_image_with_each_side_in_its_own_colour(standing):
    body, hands, face = standing
    body = body.copy()
    body[B["RElbow"], 0] -= 40  # the right arm bent out: the pose is no longer its own mirror image
    m_body, m_hands, m_face = mirror_pose(body, hands, face, 512)
    # the right elbow is where the left one's mirror image lies, and drawn in the right elbow's colour
    assert m_body[B["RElbow"], 0] == pytest.approx(512 - body[B["LElbow"], 0])
    assert m_body[B["LElbow"], 0] == pytest.approx(512 - body[B["RElbow"], 0])
    np.testing.assert_array_equal(m_hands[0, :, 1], hands[1, :, 1])  # the hands exchange sides too
    assert m_face[45, 0] == pytest.approx(512 - face[36, 0])  # an eye's outer corner is the other's
    img = draw_pose(m_body, m_hands, m_face, (512, 512))
    for a, b in (("RShoulder", "RElbow"), ("LKnee", "LAnkle")):
        assert tuple(img[mid(m_body, a, b)]) == bgr(BODY_25_COLORS[B[b]]), (a, b)
    # the same pixels lit as the flipped figure (the colours differ: each side keeps its own), one pixel to the
    # right: OpenCV puts a pixel's centre at its index, the keypoints at index + 0.5, so every figure is drawn half
    # a pixel left of its frame's picture, and the flipped one half a pixel right of the flipped picture
    lit = draw_pose(body, hands, face, (512, 512)).max(axis=2) > 0
    assert (lit[:, ::-1][:, :-1] ^ (img.max(axis=2) > 0)[:, 1:]).sum() <= 0.001 * lit.sum()
    # twice is the pose itself; missing points stay missing where they were
    again = mirror_pose(*mirror_pose(body, hands, face, 512), 512)
    for part, back in zip((body, hands, face), again):
        np.testing.assert_allclose(back, part, atol=1e-3)
    gone = body.copy()
    gone[B["LWrist"]] = 0
    assert (mirror_pose(gone, hands, face, 512)[0][B["RWrist"]] == 0).all()
