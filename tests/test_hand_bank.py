"""Hand exemplars (`hand_bank`): the training hand nearest in pose, looked up in box units on the same side, moved
onto the driving pose's keypoints and drawn only on the hand; and the frame writer's way of laying it over."""

import numpy as np
import pytest

from edn_engine.compositing import BACKGROUND, blend_patch, over, pull_from_plate
from edn_engine.errors import EdnError
from edn_engine.hand_bank import MARGIN, HandBank
from edn_engine.hand_data import hand_framing

S = 32  # crop side
BOX = (100.0, 50.0, 40.0)  # x0, y0, side in source pixels


def _hand(offset: float = 0.0, found: int = 21, box=BOX) -> np.ndarray:
    """(21, 3) keypoints in source pixels of a hand in `box`: a fan of points `offset` box units right of the one
    at 0; the first `found` of them found."""
    x0, y0, side = box
    t = np.linspace(0, 1, 21)
    points = np.zeros((21, 3), np.float32)
    points[:, 0] = x0 + side * (0.3 + 0.4 * t + offset)
    points[:, 1] = y0 + side * (0.2 + 0.6 * t ** 2)
    points[:found, 2] = 0.9
    return points


def _crop(value: int) -> np.ndarray:
    crop = np.full((S, S, 4), value, np.uint8)
    crop[..., 3] = 255
    return crop


def _read(frame: int, side: int) -> np.ndarray:
    """A crop that tells which training hand it is: frame + side."""
    return _crop(frame + side)


def _bank() -> HandBank:
    return HandBank.from_crops([(0, 0, _hand(), BOX), (50, 0, _hand(0.2), BOX), (20, 1, _hand(), BOX),
                                (60, 0, _hand(found=4), BOX)], _read, S)


def test_a_hand_is_looked_up_by_its_keypoints_in_its_box_and_on_its_own_side():
    bank = _bank()
    assert list(bank.frame) == [0, 50, 20]  # a hand with too few keypoints is no exemplar
    far = (400.0, 300.0, 80.0)  # the same hand twice the size elsewhere in the frame: the same in box units
    assert bank.frame[bank.nearest(0, _hand(0.05, box=far), far)] == 0
    assert bank.frame[bank.nearest(0, _hand(0.15), BOX)] == 50
    assert bank.frame[bank.nearest(1, _hand(0.2), BOX)] == 20  # the only right hand
    assert bank.nearest(0, _hand(found=4), BOX) is None  # too few keypoints to look up by
    assert HandBank.from_crops([], _read, S).nearest(0, _hand(), BOX) is None  # an empty bank


def test_a_long_clip_keeps_at_most_limit_hands_a_side_spread_over_the_poses_and_reads_only_their_crops():
    read = []

    def counted(frame: int, side: int) -> np.ndarray:
        read.append((frame, side))
        return _read(frame, side)

    # 300 frames of a left hand that mostly holds one pose (near-copies), every 50th frame another one; one right hand
    entries = [(n, 0, _hand(0.1 * (n // 50 + 1) if n % 50 == 0 else 0.001 * (n % 7)), BOX) for n in range(300)]
    bank = HandBank.from_crops(entries + [(7, 1, _hand(), BOX)], counted, S, limit=10)
    assert list(bank.side).count(0) == 10 and list(bank.side).count(1) == 1
    assert sorted(read) == sorted(zip(bank.frame.tolist(), bank.side.tolist()))  # no other crop was read
    assert all(n in bank.frame for n in range(0, 300, 50))  # every rare pose kept, near-copies of the other dropped
    assert list(bank.frame[bank.side == 0]) == sorted(bank.frame[bank.side == 0])  # in the clip's order
    assert (bank.crops[:, 0, 0, 0] == bank.frame + bank.side).all()  # each crop its own hand's
    # hands that share too few keypoints to be compared are unlike, not alike: many showing their first ten
    # keypoints, near-copies, and one showing only its last ten
    tips = _hand(0.001)
    tips[:11, 2] = 0
    first_ten = [(n, 0, _hand(0.001 * (n % 7), found=10), BOX) for n in range(50)]
    bank = HandBank.from_crops(first_ten + [(99, 0, tips, BOX)], _read, S, limit=2)
    assert 99 in bank.frame


def test_an_exemplar_is_moved_onto_the_pose_and_drawn_only_on_its_hand():
    crop = np.zeros((S, S, 4), np.uint8)
    crop[..., :3], crop[..., 3] = 200, 255  # a crop that is all person
    bank = HandBank.from_crops([(0, 1, _hand(), BOX)], lambda n, side: crop, S)
    target = (300.0, 200.0, 60.0)  # the driving pose's box: the same hand, half as large again, 0.1 to the right
    grown, patch = bank.hand_patch(1, _hand(0.1, box=target), target, 48)
    assert grown == pytest.approx((300 - MARGIN * 60, 200 - MARGIN * 60, (1 + 2 * MARGIN) * 60))
    assert patch.shape == (72, 72, 4)  # 48 pixels a box, grown by MARGIN each way
    # where the driving pose puts its keypoints, the hand is opaque; far from them, nothing is drawn
    fr = hand_framing((1000, 1000), grown, 72)
    for x, y in fr.points(_hand(0.1, box=target))[:, :2][::5]:
        assert patch[int(y), int(x), 3] > 200
    assert patch[2, 2, 3] == 0 and patch[-3, -3, 3] == 0
    assert bank.hand_patch(0, _hand(), BOX, 48) is None  # no left hand in the bank


def test_the_exemplars_kept_for_drawing_stay_few_and_draw_as_fresh_ones(monkeypatch):
    """`HandBank._layer` keeps each exemplar it has drawn, at most LAYERS_KEPT (then starts again): a kept one, or one
    drawn again after the clear, is the same patch a fresh bank draws."""
    import edn_engine.hand_bank as hand_bank

    monkeypatch.setattr(hand_bank, "LAYERS_KEPT", 2)
    bank = _bank()
    poses = [(0, _hand(0.05)), (0, _hand(0.15)), (1, _hand(0.2)), (0, _hand(0.05))]  # exemplars 0, 1, 2, then 0 again
    for side, points in poses:
        grown, patch = bank.hand_patch(side, points, BOX, 48)
        assert len(bank._layers) <= 2
        fresh_grown, fresh = _bank().hand_patch(side, points, BOX, 48)
        assert grown == fresh_grown and np.array_equal(patch, fresh)
    assert sorted(bank._layers) == [0, 2]  # cleared when the third came, then the first drawn again


def test_an_exemplar_is_moved_from_pixel_centre_to_pixel_centre():
    crop = np.zeros((S, S, 4), np.uint8)
    crop[..., 3], crop[:, 10, :3] = 255, 200  # one column of the crop lit
    bank = HandBank.from_crops([(0, 1, _hand(), BOX)], lambda n, side: crop, S)
    _, patch = bank.hand_patch(1, _hand(), BOX, 2 * S)  # drawn twice as large: x -> 2 x + 16 (the margin)
    # premultiplied, as it was moved (the column lies in the hull's soft edge, its alpha low there): the column's
    # centre, 10.5, lands at 37: between the patch's pixels 36 and 37, lit alike
    row = patch[S + S // 2, :, 0] * (patch[S + S // 2, :, 3] / 255.0)
    assert abs(row[36] - row[37]) < 0.5 and row[36] > 5 and abs(row[35] - row[38]) < 0.5 and row[34] == row[39] == 0


def test_an_exemplar_that_would_be_shrunk_or_swollen_onto_the_pose_is_not_drawn():
    """The nearest exemplar may still be a poor match: one whose hand must be scaled by more than SCALES allows to
    land on the pose is left out, and the refined hand stays as it is."""
    bank = HandBank.from_crops([(0, 1, _hand(), BOX)], lambda n, side: _crop(200), S)
    small = _hand()
    small[:, :2] = (small[:, :2] - small[:1, :2]) * 0.3 + small[:1, :2]  # the same fan at 0.3 its size
    for size in (48, 96):  # the move's scale is the hand's, whatever the crop and output sizes
        assert bank.hand_patch(1, _hand(), BOX, size) is not None
        assert bank.hand_patch(1, small, BOX, size) is None


def test_an_exemplar_is_laid_over_the_frame_and_a_refined_hand_in_its_place():
    plate = np.full((60, 60, 3), 200, np.uint8)
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[:, :30] = [10, 20, 30, 255]  # the person's left half
    comp = over(rgba, plate)
    patch = np.zeros((40, 40, 4), np.uint8)
    patch[10:30, 10:30] = [0, 0, 250, 128]  # a half-opaque hand in the middle; transparent around it
    fr = hand_framing((60, 60), (10.0, 10.0, 40.0), 40)
    blend_patch(rgba, comp, plate, fr, patch, over=True)
    assert list(rgba[20, 5]) == [10, 20, 30, 255] and list(rgba[12, 25]) == [10, 20, 30, 255]  # untouched
    assert list(rgba[30, 35]) == [0, 0, 250, 128]  # over nothing: the hand as it is
    k = 128 / 255
    expected = [10 * (1 - k), 20 * (1 - k), 250 * k + 30 * (1 - k), 255]  # over the person: half of each, opaque
    assert np.abs(rgba[30, 25].astype(float) - expected).max() <= 1
    assert np.abs(comp.astype(int) - over(rgba, plate).astype(int)).max() <= 2  # still the RGBA over the plate


def test_a_training_hand_is_pulled_off_the_wall_its_coarse_matte_kept():
    """The matte holds the wall around a hand; pulled off the plate, the wall is clear and the hand opaque in its own
    colour, laid over anything else no wall comes with it, and over its own plate it looks as before."""
    wall, skin = np.array([235, 225, 235], np.float32), np.array([150, 170, 210], np.float32)
    yy, xx = np.mgrid[:64, :64]
    cover = np.clip(20.5 - np.hypot(xx - 32, yy - 32), 0, 1)[..., None]  # a hand: a disc, its edge blurred
    image = (cover * skin + (1 - cover) * wall).round()
    matte = np.where(np.hypot(xx - 32, yy - 32) < 28, 255, 0)  # coarse: wider than the hand
    plate = np.broadcast_to(wall, image.shape).astype(np.uint8)
    crop = np.dstack([image, matte]).astype(np.uint8)
    pulled = pull_from_plate(crop, plate)
    assert list(pulled[32, 32]) == [150, 170, 210, 255] and pulled[32, 56, 3] == 0  # the hand; the wall in the matte
    a = pulled[..., 3:].astype(np.float32) / 255
    assert (pulled[..., :3] * a)[cover[..., 0] == 0].max() == 0  # over black: nothing of the wall
    again = pulled[..., :3] * a + plate * (1 - a)
    assert np.abs(again - image).max() <= BACKGROUND + 1  # nearer the wall than that: the wall


def test_a_bank_is_saved_and_read_back_and_a_bad_file_is_named(tmp_path):
    bank = _bank()
    bank.save(tmp_path / "bank ü.npz")
    back = HandBank.load(tmp_path / "bank ü.npz")
    assert all(np.array_equal(getattr(bank, k), getattr(back, k)) for k in ("side", "frame", "points", "found",
                                                                             "crops"))
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(EdnError, match=r"hand exemplars: the file is not an \.npz archive: train the run again") as err:
        HandBank.load(tmp_path / "bad.npz")  # not numpy's "Cannot load file containing pickled data"
    assert "bad.npz" in str(err.value)
    whole = (tmp_path / "bank ü.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    with pytest.raises(EdnError, match="hand exemplars"):
        HandBank.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", side=bank.side, frame=bank.frame, points=bank.points[:1], found=bank.found,
             crops=bank.crops)  # arrays that disagree
    with pytest.raises(EdnError, match="not a hand bank"):
        HandBank.load(tmp_path / "other.npz")
    np.savez(tmp_path / "scalar.npz", side=np.int64(0), frame=bank.frame, points=bank.points, found=bank.found,
             crops=bank.crops)
    with pytest.raises(EdnError, match="not a hand bank"):
        HandBank.load(tmp_path / "scalar.npz")
    np.savez(tmp_path / "track.npz", body=np.zeros((1, 25, 3), np.float32))  # an .npz, but not a bank's
    with pytest.raises(EdnError, match="hand exemplars lack side, frame, points, found, crops: train the run again"):
        HandBank.load(tmp_path / "track.npz")
