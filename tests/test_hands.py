"""The hand mask behind the hand-weighted loss (discs on the hand keypoints found, the wrist for a missed hand), and
the hand refiner's parts: its boxes, stick figures, paste and training step (end to end: test_plate_pipeline)."""

import numpy as np
import pytest
import torch

from edn_engine import device as devices
from edn_engine.compositing import blend_patch, over
from edn_engine.hand_data import hand_framing
from edn_engine.models.config import get_profile
from edn_engine.models.generator import build_generator
from edn_engine.models.hand import build_hand_discriminator, build_hand_refiner
from edn_engine.models.losses import GANLoss
from edn_engine.pose.hands import hand_box, hand_mask, hand_radius
from edn_engine.pose.skeleton import B
from edn_engine.tensors import hand_figure
from edn_engine.training.steps import FrozenBody, generate_pair, hand_step


def _pose():
    body = np.zeros((25, 3), np.float32)
    hands = np.zeros((2, 21, 3), np.float32)
    return body, hands


def test_discs_cover_the_found_hand_points_only():
    body, hands = _pose()
    hands[1, :, :2] = [100.0, 150.0]
    hands[1, :, 2] = 0.9
    hands[1, 8, :] = [120.0, 160.0, 0.9]  # one fingertip further out
    hands[1, 9, :] = [10.0, 10.0, 0.1]  # below the confidence threshold: not drawn
    mask = hand_mask(body, hands, (256, 256))
    r = hand_radius(256)
    assert mask.dtype == np.uint8 and mask.shape == (256, 256) and set(np.unique(mask)) == {0, 1}
    assert mask[150, 100] == 1 and mask[160, 120] == 1 and mask[150, 100 + r + 2] == 0
    assert mask[10, 10] == 0
    assert mask.sum() < 0.02 * mask.size  # a hand is a small part of the frame: that is why it needs the term


def test_a_missed_hand_falls_back_to_a_wider_disc_on_the_wrist():
    body, hands = _pose()
    body[B["LWrist"]] = [50.0, 60.0, 0.8]
    body[B["RWrist"]] = [200.0, 60.0, 0.8]
    hands[1, :, :] = [200.0, 60.0, 0.9]  # the right hand was found: its own points, not the wrist's disc
    mask = hand_mask(body, hands, (256, 128))
    r = hand_radius(128)
    assert mask[60, 50 + 2 * r] == 1  # the left wrist's disc is 3r wide
    assert mask[60, 200 + 2 * r] == 0
    assert hand_mask(*_pose(), (64, 64)).sum() == 0  # nobody: no hands, an empty mask (the term is then 0)


def test_training_pairs_carry_each_frames_hand_mask_in_training_pixels(dataset):
    """The mask a pair carries is drawn from the dataset's own track (training pixels), frame by frame."""
    import torch

    from edn_engine.dataset import PairDataset

    pairs = PairDataset(dataset)
    store = pairs.store
    found = 0
    for k in range(0, len(pairs), max(1, len(pairs) // 8)):
        item = pairs[k]
        masks = item["hands"]
        assert masks.dtype == torch.uint8 and masks.shape == (2, 1, store.size[1], store.size[0])
        for j, n in enumerate(item["frame"].tolist()):
            points = store.track.hands[n - store.track.frame_start].reshape(-1, 3)
            for x, y, c in points[points[:, 2] > 0.2]:
                xi, yi = int(round(x)), int(round(y))
                if 0 <= xi < store.size[0] and 0 <= yi < store.size[1]:
                    assert masks[j, 0, yi, xi] == 1
                    found += 1
    assert found > 0  # the clip shows hands: the check above ran


# -- the hand refiner's boxes, stick figures, paste and training step ---------------------------------------------

def test_a_hand_box_is_centred_on_the_hand_or_past_the_wrist_and_sized_by_the_person():
    body, hands = _pose()
    hands[0, :5] = [[100, 100, 0.9], [120, 100, 0.9], [120, 140, 0.9], [100, 140, 0.9], [110, 120, 0.9]]
    assert hand_box(body, hands, 0, 1000.0) == pytest.approx((60.0, 70.0, 100.0))  # 0.10 of the window
    assert hand_box(body, hands, 1, 1000.0) is None  # no right hand, no right wrist
    body[B["RElbow"]] = [300.0, 300.0, 0.9]
    body[B["RWrist"]] = [300.0, 400.0, 0.9]  # a missed hand: 0.35 of the forearm beyond the wrist
    assert hand_box(body, hands, 1, 500.0) == pytest.approx((275.0, 410.0, 50.0))


def test_a_hand_figure_draws_only_that_hand_and_its_forearm_in_the_box():
    body, hands = _pose()
    body[B["LElbow"]], body[B["LWrist"]] = [0.0, 50.0, 0.9], [40.0, 50.0, 0.9]
    body[B["RWrist"]] = [45.0, 50.0, 0.9]  # the other arm: left out
    hands[0, :, :] = [50.0, 50.0, 0.9]
    hands[0, 5:9] = [[52.0, 50.0, 0.9], [54.0, 50.0, 0.9], [56.0, 50.0, 0.9], [58.0, 50.0, 0.9]]  # a finger
    box = hand_framing((100, 100), (20.0, 30.0, 40.0), 96)  # box 20..60 x 30..70 at 96 px
    img = hand_figure(body, hands, 0, box)
    assert img.shape == (96, 96, 3) and img[48, 48].any()  # the wrist at the centre
    assert img[48, 84].any() and not img[10].any()  # the finger, 2.4x as long as in the frame; nothing else
    ys, xs = np.nonzero(hand_figure(body, hands, 1, box).any(axis=2))
    assert abs(ys - 48).max() <= 4 and abs(xs - 60).max() <= 4  # the right side: its wrist alone, no left hand


def test_a_pasted_patch_replaces_the_middle_fades_at_its_edge_and_keeps_the_composite_true():
    plate = np.full((100, 120, 3), 200, np.uint8)
    rgba = np.zeros((100, 120, 4), np.uint8)
    rgba[:, :60] = [10, 20, 30, 255]  # the person's left half
    comp = over(rgba, plate)
    patch = np.zeros((32, 32, 4), np.uint8)
    patch[...] = [0, 0, 250, 255]  # an opaque red hand over the whole box
    fr = hand_framing((120, 100), (40.0, 30.0, 32.0), 32)
    blend_patch(rgba, comp, plate, fr, patch)
    assert list(rgba[46, 50]) == [0, 0, 250, 255] and list(rgba[46, 64]) == [0, 0, 250, 255]  # its middle
    assert list(rgba[5, 5]) == [10, 20, 30, 255] and list(rgba[46, 100]) == [0, 0, 0, 0]  # outside: untouched
    assert 0 < rgba[46, 41, 3] < 255 or rgba[46, 41, 2] < 250  # its edge fades into what was there
    assert np.abs(comp.astype(int) - over(rgba, plate).astype(int)).max() <= 2  # still the RGBA over the plate


def test_a_refined_hand_replaces_the_frame_only_on_the_hand():
    """Over the body (a hand across the chest) the refiner's box holds more than the hand: only the hull of the
    hand's keypoints counts, the body's frame is kept around it; a box placed along the forearm counts whole."""
    from edn_engine.finishing import _on_the_hand

    plate = np.full((100, 120, 3), 200, np.uint8)
    body = np.zeros((100, 120, 4), np.uint8)
    body[...] = [10, 20, 30, 255]  # the person's chest behind the whole box
    patch = np.zeros((32, 32, 4), np.uint8)
    patch[...] = [0, 0, 250, 255]  # the refiner's colour all over its box
    fr = hand_framing((120, 100), (40.0, 30.0, 32.0), 32)  # box 40..72 x 30..62, 1:1
    hand = np.zeros((21, 3), np.float32)
    hand[:6] = [[50, 40, 0.9], [54, 40, 0.9], [50, 44, 0.9], [54, 44, 0.9], [52, 42, 0.9], [52, 38, 0.9]]
    rgba, comp = body.copy(), over(body, plate)
    blend_patch(rgba, comp, plate, fr, patch, weights=_on_the_hand(fr, hand, 32))
    assert list(rgba[42, 52]) == [0, 0, 250, 255]  # on the hand
    assert list(rgba[56, 66]) == [10, 20, 30, 255]  # in the box, away from the hand: the body's
    # where the refiner sees no person, it clears the body's blur (thin alpha), never its solid body
    patch[16:, 16:, 3] = 0
    rgba = body.copy()
    rgba[46:, 56:, 3] = 60  # a blur beside the chest
    rgba[46:, 66:, 3] = 255
    blend_patch(rgba, over(rgba, plate), plate, fr, patch, weights=_on_the_hand(fr, hand, 32), clears=True)
    assert rgba[52, 60, 3] == 0 and rgba[52, 68, 3] == 255
    patch[16:, 16:, 3] = 255
    rgba, comp = body.copy(), over(body, plate)
    hand[4:, 2] = 0.0  # four keypoints: too few to go by
    blend_patch(rgba, comp, plate, fr, patch, weights=_on_the_hand(fr, hand, 32))
    assert list(rgba[56, 66]) == [0, 0, 250, 255]  # all of the box but its feathered edge


def test_the_hand_step_trains_on_the_hands_found_and_shares_the_bodys_generation_with_the_face_step():
    cfg = get_profile("cpu", width=64, height=64, face_size=32, face_ngf=8, face_n_blocks=1, face_ndf=8)
    torch.manual_seed(0)
    G = build_generator(cfg)
    calls = []
    G.register_forward_hook(lambda *_: calls.append(1))
    s = 32
    batch = {"label": torch.rand(1, 2, 3, 64, 64) * 2 - 1, "frame": torch.tensor([[3, 4]]),
             "plate": torch.zeros(1, 2, 3, 64, 64), "window": torch.tensor([[[4.0, 2, 64, 64], [0.0, 0, 64, 64]]]),
             "face": torch.tensor([[[20.0, 20.0], [30.0, 30.0]]]),
             "image": torch.rand(1, 2, 3, 64, 64) * 2 - 1,
             "hand_label": torch.rand(1, 2, 3, s, s), "hand_real": torch.rand(1, 2, 3, s, s),
             "hand_matte": torch.rand(1, 2, 1, s, s), "hand_plate": torch.zeros(1, 2, 3, s, s),
             "hand_box": torch.tensor([[[16.0, 8.0, 32.0], [0.0, 0.0, 0.0]]])}  # the second frame's: left found
    amp = devices.autocast(torch.device("cpu"), False)
    body = FrozenBody(G)
    face = body.face_crops(batch, torch.tensor([[0, 0]]), 32, amp)
    crops = body.hand_crops(batch, s, amp)
    assert len(calls) == 2 and crops.shape == (1, 2, 4, s, s)  # one generation of the pair for both
    with torch.no_grad():
        fake0, fake1, _, alpha1 = generate_pair(G, batch["label"][:, 0], batch["label"][:, 1], batch, amp)
    assert torch.allclose(face, torch.cat([fake1, alpha1], 1)[..., :32, :32], atol=1e-2)  # the face's, with alpha
    expected = torch.cat([fake1, alpha1], 1)[0, :, 8:40, 16:48]  # the box, at one source pixel a window pixel
    assert torch.allclose(crops[0, 0], expected, atol=1e-2)  # the second frame's, generated from the first
    assert not torch.allclose(crops[0, 0, :3], fake0[0, :, 8:40, 16:48], atol=1e-2)  # not the first frame's

    HG, HD = build_hand_refiner(cfg), build_hand_discriminator(cfg)
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=1e-3) for n in (HG, HD))
    before = [p.clone() for p in HG.parameters()]
    losses = hand_step(body, HG, HD, opt_g, opt_d, batch, cfg, GANLoss(), None, amp)
    assert {"H_gan", "H_l1", "H_alpha", "HD_real"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, HG.parameters()))
    none = {**batch, "hand_box": torch.zeros(1, 2, 3), "frame": torch.tensor([[5, 6]])}
    before = [p.clone() for p in HG.parameters()]
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=1e-3) for n in (HG, HD))  # no momentum carried over
    hand_step(body, HG, HD, opt_g, opt_d, none, cfg, GANLoss(), None, amp)  # no hand: a step at weight 0
    assert all(torch.equal(a, b) for a, b in zip(before, HG.parameters()))


def test_hand_crops_are_kept_only_where_the_window_loses_the_sources_pixels():
    from edn_engine.hand_data import crop_size

    assert crop_size(np.array([233.0, 244.0]), 256) is None  # the demo's renders: the window holds every pixel
    assert crop_size(np.array([1005.0, 1100.0, 1231.0]), 256) == 96  # romp_sample2 at 1080p: boxes of 110 px
    assert crop_size(np.array([640.0]), 256) == 64 and crop_size(np.array([390.0]), 256) == 40  # 720p and less


def test_the_face_step_trains_on_each_pairs_second_frame():
    """A pair whose second frame shows no face is a step at weight 0, whatever its first frame shows."""
    from edn_engine.models.face import build_face_discriminator, build_face_generator
    from edn_engine.training.distributed import FaceRefine
    from edn_engine.training.steps import face_step

    cfg = get_profile("cpu", width=64, height=64, face_size=32, face_ngf=8, face_n_blocks=1, face_ndf=8)
    torch.manual_seed(0)
    FG, FD = build_face_generator(cfg), build_face_discriminator(cfg)
    batch = {"label": torch.rand(1, 2, 3, 64, 64) * 2 - 1, "image": torch.rand(1, 2, 3, 64, 64) * 2 - 1,
             "frame": torch.tensor([[3, 4]]), "plate": torch.zeros(1, 2, 3, 64, 64),
             "window": torch.tensor([[[0.0, 0, 64, 64]] * 2])}
    amp = devices.autocast(torch.device("cpu"), False)
    for centres, moves in (([[30.0, 30.0], [-1.0, -1.0]], False), ([[-1.0, -1.0], [30.0, 30.0]], True)):
        opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=1e-3) for n in (FG, FD))
        before = [p.clone() for p in FG.parameters()]
        face_step(FrozenBody(build_generator(cfg)), FaceRefine(FG), FD, opt_g, opt_d,
                  {**batch, "face": torch.tensor([centres])}, cfg, GANLoss(), None, amp)
        assert any(not torch.equal(a, b) for a, b in zip(before, FG.parameters())) == moves
