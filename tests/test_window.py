"""The person-centred window: it follows the person's position and scale, maps poses and pixels both ways, and
carries the previous output from one window into the next."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edn_engine.errors import EdnError
from edn_engine.pose.framing import Framing, Mipmap
from edn_engine.pose.window import FramePlan, WindowConfig, frame_track, person_windows, window_framing
from edn_engine.tensors import carry
from synthetic_pose import person, track_from_frames

W, H = 640, 360


def walking_track(statures, xs, ankle_y=330.0):
    return track_from_frames([person(s, x, ankle_y) for s, x in zip(statures, xs)], W, H)


def test_window_centres_on_the_person_and_scales_with_them():
    far = walking_track([100.0] * 12, [200.0] * 12, ankle_y=200)
    near = walking_track([250.0] * 12, [400.0] * 12)
    wf, wn = person_windows(far, (64, 64), WindowConfig()), person_windows(near, (64, 64), WindowConfig())
    # the same person at 2.5x the size gets a window 2.5x as tall, so they fill it the same
    assert wn[5, 3] / wf[5, 3] == pytest.approx(2.5, rel=0.02)
    # and it is centred on them (x on the body's axis, y between head and feet)
    for wins, stature, x, ankle in ((wf, 100, 200, 200), (wn, 250, 400, 330)):
        x0, y0, w, h = wins[5]
        assert x0 + w / 2 == pytest.approx(x, abs=1)
        assert y0 < ankle - stature and y0 + h > ankle  # head and feet inside
        assert w == pytest.approx(h)  # the training size's aspect


def test_window_glides_and_fills_gaps():
    xs = [100.0 + 10 * i for i in range(20)]
    xs[7] = 500.0  # one-frame detector glitch
    track = walking_track([150.0] * 20, xs)
    track.body[12:15] = 0  # nobody in three frames
    wins = person_windows(track, (64, 128), WindowConfig())
    cx = wins[:, 0] + wins[:, 2] / 2
    assert abs(cx[7] - 170) < 40  # the glitch is smoothed away
    assert np.all(np.isfinite(wins)) and 200 < cx[13] < 300  # the gap takes its neighbours' window
    assert wins[0, 2] / wins[0, 3] == pytest.approx(0.5)  # aspect 64x128


def test_no_person_at_all_is_a_clear_error():
    track = walking_track([150.0] * 3, [100.0] * 3)
    track.body[:] = 0
    with pytest.raises(EdnError, match="no frame of the track shows enough of a person"):
        person_windows(track, (64, 64))
    track = walking_track([150.0] * 3, [100.0] * 3)
    track.body[1, :, :2] = 500.0  # a broken frame: every joint at one point, a person of no size
    assert np.all(np.isfinite(person_windows(track, (64, 64))))  # framed as its neighbours
    track.body[:, :, :2] = 500.0  # every frame so
    with pytest.raises(EdnError, match="no frame of the track shows enough of a person"):
        person_windows(track, (64, 64))


def test_a_track_no_window_can_be_placed_on_is_named_by_its_file_not_its_source_video():
    track = walking_track([150.0] * 3, [100.0] * 3).replace(source="/footage/dance.mp4")
    track.body[:, 1:] = 0  # a nose alone in every frame
    plan = FramePlan((W, H), (64, 64), "window", WindowConfig(min_confidence=0.25))
    with pytest.raises(EdnError, match="place a window on .* at confidence 0.25 or more") as err:
        plan.framings(track, "nose only.npz")
    assert err.value.path == "nose only.npz" and "dance.mp4" not in str(err.value)


def test_window_framing_maps_points_and_pixels_and_back():
    fr = window_framing((W, H), (64, 64), (100.0, -20.0, 200.0, 200.0))  # partly above the frame: padded
    pts = np.array([[100.0, -20.0, 1.0], [300.0, 180.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    assert np.allclose(fr.points(pts)[:, :2], [[0, 0], [64, 64], [0, 0]], atol=1e-4)
    img = np.zeros((H, W, 3), np.uint8)
    img[100:150, 150:250] = 255
    crop = fr.image(img)
    assert crop.shape == (64, 64, 3) and crop[:6].max() == 0  # above the frame: black padding
    back = fr.back(crop, border_value=0)
    assert back.shape == img.shape and back[:, :90].max() == 0  # nothing outside the window
    inner = (slice(105, 145), slice(155, 245))
    assert back[inner].mean() > 200  # the bright block comes back where it was
    assert Framing.from_dict(fr.to_dict()) == fr


def test_window_crop_shrinks_only_its_part_of_the_frame_and_matches_the_whole_frame_shrink():
    """`fr.image` area-filters only the pixels the window covers (the cost at 1080p). The picture is the one a
    shrink of the whole frame gives: the same place to a tenth of a pixel, the same grey on average (the
    area filter's cells start at the window, so single pixels may differ by a few levels)."""
    import cv2

    def centroid(a):
        ys, xs = np.mgrid[:a.shape[0], :a.shape[1]]
        return np.array([(a * xs).sum(), (a * ys).sum()]) / a.sum()

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (H, W), dtype=np.uint8), (0, 0), 3)
    block = np.zeros((H, W), np.uint8)
    block[150:170, 300:320] = 255
    fr = window_framing((W, H), (64, 64), (201.3, 40.7, 290.5, 290.5))  # inside the frame, a 4.5x shrink
    for img in (texture, block):
        small = cv2.resize(img, None, fx=fr.scale, fy=fr.scale, interpolation=cv2.INTER_AREA)
        whole = cv2.warpAffine(small, np.array([[1, 0, fr.offset[0]], [0, 1, fr.offset[1]]]), (64, 64),
                               flags=cv2.INTER_LINEAR).astype(float)
        part = fr.image(img).astype(float)
        assert np.abs(part - whole).mean() < 1.5 and abs(part.mean() - whole.mean()) < 0.2
    assert np.abs(centroid(part) - centroid(whole)).max() < 0.1
    for x in (W - 3.0, W + 1.0, -60.0, -80.0):  # a window just off the frame: a sliver of it, or none
        crop = window_framing((W, H), (64, 64), (x, 40.0, 60.0, 60.0)).image(texture)
        assert crop.shape == (64, 64) and crop[:, 8:56].max() == 0


def test_mipmap_frames_a_picture_as_framing_does_from_a_smaller_copy():
    """Generation and training cut the plate into every frame's window from copies shrunk by whole factors
    (`Mipmap`): the same picture as `fr.image` to a grey level, in the same place, and a copy is made once."""
    import cv2

    rng = np.random.default_rng(1)
    odd = (W + 1, H + 1)  # sizes no factor divides: the copies' rounding is undone in the mapping
    texture = cv2.GaussianBlur(rng.integers(0, 256, (odd[1], odd[0], 3), dtype=np.uint8), (0, 0), 3)
    block = np.zeros((odd[1], odd[0]), np.uint8)
    block[60:100, 200:240] = 255  # inside every window from 120 pixels up
    for img in (texture, block):
        mip = Mipmap(img)
        # scales 1.28 and 0.53 (no copy), exactly 1/2 and 1/3 (copies 2 and 3), 0.43, 0.22 and 0.18 (2, 4, 5)
        for side in (50.0, 120.0, 128.0, 192.0, 150.0, 290.5, 350.0):
            fr = window_framing(odd, (64, 64), (180.3, 20.7, side, side))
            exact, fast = fr.image(img).astype(float), mip.image(fr).astype(float)
            assert fast.shape == exact.shape and np.abs(fast - exact).mean() < 1.0
            if img is block and side >= 120:
                ys, xs = np.mgrid[:64, :64]
                where = [np.array([(a * xs).sum(), (a * ys).sum()]) / a.sum() for a in (exact, fast)]
                assert np.abs(where[0] - where[1]).max() < 0.1
        assert sorted(mip._copies) == [2, 3, 4, 5]
        for x in (W - 3.0, -400.0):  # a window just off the frame: a sliver of it (less than a pixel), or none
            crop = mip.image(window_framing(odd, (64, 64), (x, 40.0, 300.0, 300.0)))
            assert crop.shape[:2] == (64, 64) and crop[:, 2:].max() == 0
    with pytest.raises(ValueError, match="a 641x361 picture framed as a 640x360 source"):
        mip.image(window_framing((W, H), (64, 64), (180.0, 20.0, 300.0, 300.0)))


def test_frame_plan_round_trips_and_frames_a_track_row_by_row():
    plan = FramePlan((W, H), (64, 64), "window", WindowConfig(margin=1.5))
    assert FramePlan.from_dict(plan.to_dict()) == plan
    track = walking_track([120.0 + 5 * i for i in range(6)], [150.0 + 20 * i for i in range(6)])
    framed = frame_track(track, plan.framings(track))
    ok = framed.body[..., 2] > 0
    assert (framed.width, framed.height) == (64, 64)
    assert framed.body[ok][:, :2].min() > 0 and framed.body[ok][:, :2].max() < 64  # everyone inside their window
    fixed = FramePlan((W, H), (64, 64), "letterbox")
    assert fixed.framings(track)[0] == Framing((W, H), (64, 64), "letterbox")


def test_carry_moves_the_previous_output_into_the_next_window():
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    same = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    assert torch.allclose(carry(img, same, same), img, atol=1e-5)
    right = torch.tensor([[1.0, 0.0, 4.0, 4.0]])  # the next window sits one source pixel to the right
    out = carry(img, same, right)[0, 0]
    assert torch.allclose(out[:, :3], img[0, 0, :, 1:], atol=1e-5) and out[:, 3].abs().max() == 0
    half = torch.tensor([[0.0, 0.0, 8.0, 8.0]])  # a window twice as large: the old image fills a quarter
    zoomed = carry(img, same, half)[0, 0]
    assert zoomed[2:, 2:].abs().max() == 0 and zoomed[:2, :2].mean() > 0


def test_paste_matches_a_whole_frame_resample_but_touches_only_the_window():
    """paste against a float reference: the whole frame resampled premultiplied (colour times alpha)."""
    from edn_engine.compositing import paste

    yy, xx = np.mgrid[0:64, 0:64]
    win = np.dstack([xx * 4, yy * 4, (xx + yy) * 2, 120 + xx]).astype(np.uint8)  # smooth colour and alpha
    plate = np.full((H, W, 3), 90, np.uint8)
    a = win[..., 3:].astype(np.float32) / 255
    premultiplied = np.dstack([win[..., :3] * a, a]).astype(np.float32)
    for rect in ((100.0, -20.0, 200.0, 200.0), (-50.0, 100.0, 700.0, 700.0), (10.5, 20.25, 33.3, 33.3)):
        fr = window_framing((W, H), (64, 64), rect)
        rgba, comp = paste(fr, win, plate)
        ref = fr.back(premultiplied)
        alpha = ref[..., 3:]
        assert np.abs(rgba[..., 3] - alpha[..., 0] * 255).max() <= 1
        seen = alpha[..., 0] > 0.5  # straight colour is only as precise as alpha allows (uint8 premultiplied)
        straight = ref[..., :3] / np.maximum(alpha, 1e-6)
        assert np.abs(rgba[..., :3][seen] - straight[seen]).max() <= 3
        assert np.abs(comp - (ref[..., :3] + plate * (1 - alpha))).max() <= 2
    fr = window_framing((W, H), (64, 64), (W + 10.0, 0.0, 50.0, 50.0))  # entirely outside the frame
    rgba, comp = paste(fr, win, plate)
    assert rgba.max() == 0 and (comp == plate).all()


def test_paste_clears_the_generators_haze_and_resamples_only_the_person():
    """Alpha below ALPHA_FLOOR (the generator's haze over its whole window) is cleared, and only the rectangle
    holding the person is resampled: beyond it, the whole window's resample is zero anyway."""
    from edn_engine.compositing import ALPHA_FLOOR, paste

    win = np.zeros((64, 64, 4), np.uint8)
    win[..., :3], win[..., 3] = (30, 60, 90), np.arange(64 * 64).reshape(64, 64) % ALPHA_FLOOR  # the haze
    win[20:40, 24:34] = (200, 180, 160, 255)  # the person
    plate = np.full((H, W, 3), 90, np.uint8)
    for rect in ((100.0, 20.0, 256.0, 256.0), (150.3, -40.7, 77.7, 77.7)):  # 4x up; 1.2x up, past the top
        fr = window_framing((W, H), (64, 64), rect)
        rgba, comp = paste(fr, win, plate)
        person = win.copy()
        person[..., 3][person[..., 3] < ALPHA_FLOOR] = 0
        ref = fr.back(np.dstack([person[..., :3] * (person[..., 3:] / 255), person[..., 3:]]).astype(np.float32))
        assert np.abs(rgba[..., 3] - ref[..., 3]).max() <= 1  # the person alone, the haze gone
        assert np.abs(comp - (ref[..., :3] + plate * (1 - ref[..., 3:] / 255))).max() <= 2
        x0, y0, x1, y1 = fr.source_roi((24, 20, 34, 40))
        outside = np.ones((H, W), bool)
        outside[y0:y1, x0:x1] = False
        assert ref[outside].max() == 0 and ref[~outside].max() > 0  # what was left out resamples to nothing


def test_paste_leaves_no_seam_and_no_colour_from_under_alpha_zero():
    """An opaque person reaching the window's edge fades into the plate without a dark line, and the colour the
    generator leaves where alpha is 0 (anything: training never sees it) does not bleed into the person's edge."""
    from edn_engine.compositing import paste

    win = np.zeros((64, 64, 4), np.uint8)
    win[:, :32] = (200, 180, 160, 255)  # the person: the window's left half, reaching its left edge
    win[:, 32:, :3] = (0, 0, 255)  # pure red under alpha 0
    plate = np.full((H, W, 3), 90, np.uint8)
    fr = window_framing((W, H), (64, 64), (100.0, 100.0, 256.0, 256.0))  # 4x up
    rgba, comp = paste(fr, win, plate)
    row = comp[200, 80:400].astype(int)
    person, bg = np.array([200, 180, 160]), np.array([90, 90, 90])
    low, high = np.minimum(person, bg), np.maximum(person, bg)
    assert ((row >= low - 1) & (row <= high + 1)).all()  # every pixel between plate and person: no seam, no red
    # no red at the person's edge: multiplied by alpha again (as a compositor does), within a level of the person
    a = rgba[..., 3].astype(float)
    assert (a[200, 80:400] > 0).sum() > 0 and (rgba[..., 2] * a / 255 <= 160 * a / 255 + 1).all()


@pytest.mark.parametrize("side", [37.0, 120.0, 290.5])  # a 1.7x enlargement, a 1.9x and a 4.5x shrink
def test_pixels_go_where_points_go_and_come_back_where_they_were(side):
    """A pixel's centre is at its index + 0.5, as a keypoint's coordinates are. `image` and `back` move pixels
    as `points` moves keypoints, so a generated window lands on the frame where its pose said (a 4x shrink
    once came back 1.5 source pixels up and left, and a refined hand beside a body it did not quite meet)."""
    def centre(a):  # the intensity-weighted centre, in pixel-centre coordinates
        ys, xs = np.mgrid[:a.shape[0], :a.shape[1]]
        return np.array([(a * xs).sum(), (a * ys).sum()]) / a.sum() + 0.5

    block = np.zeros((H, W), np.float32)
    block[150:170, 300:320] = 1.0  # centre (310, 160)
    fr = window_framing((W, H), (64, 64), (310.0 - side * 0.4, 160.0 - side * 0.55, side, side))
    window = fr.image(block)
    expected = fr.points(np.array([[310.0, 160.0, 1.0]], np.float32))[0, :2]
    assert np.abs(centre(window) - expected).max() < 0.05
    assert np.abs(centre(fr.back(window)) - [310.0, 160.0]).max() < max(0.1, 0.05 / fr.scale)  # source px


@pytest.mark.parametrize("src", [(200, 120), (120, 200), (1000, 600)])  # enlarged (bars either way), shrunk
def test_a_letterbox_keeps_its_edges_and_its_bars_and_comes_back_whole(src):
    """A whole-frame run's training frame is the source letterboxed; scaled back, it is the source. No edge row of
    the picture darkens by blending with the bars, and the bars stay black."""
    fr = Framing(src, (256, 256), "letterbox")
    grey = np.full((src[1], src[0]), 200, np.uint8)
    out = fr.image(grey)
    x0, y0, x1, y1 = fr.content()
    assert abs((x1 - x0) * (y1 - y0) - src[0] * src[1] * fr.scale ** 2) <= 256  # the picture, to a pixel's row
    assert (out[y0:y1, x0:x1] == 200).all() and out.sum() == 200 * (x1 - x0) * (y1 - y0)
    assert (fr.back(out) == 200).all()
    roi = (3, 5, src[0] - 7, src[1] - 2)
    assert np.array_equal(fr.back(out, roi=roi), fr.back(out)[5:src[1] - 2, 3:src[0] - 7])
