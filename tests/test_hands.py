"""The hand mask behind the hand-weighted loss: discs on the hand keypoints found, the wrist for a missed hand."""

import numpy as np

from edn_engine.pose.hands import hand_mask, hand_radius
from edn_engine.pose.skeleton import B


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
    """The mask and the hand centres a pair carries come from the dataset's own track (training pixels), frame by
    frame."""
    import torch

    from edn_engine.dataset import PairDataset
    from edn_engine.pose.hands import hand_centres

    pairs = PairDataset(dataset)
    store = pairs.store
    found = 0
    for k in range(0, len(pairs), max(1, len(pairs) // 8)):
        item = pairs[k]
        masks = item["hands"]
        assert masks.dtype == torch.uint8 and masks.shape == (2, 1, store.size[1], store.size[0])
        for j, n in enumerate(item["frame"].tolist()):
            i = n - store.track.frame_start
            assert torch.equal(item["hand_centres"][j], torch.from_numpy(hand_centres(store.track.body[i],
                                                                                      store.track.hands[i])))
            points = store.track.hands[i].reshape(-1, 3)
            for x, y, c in points[points[:, 2] > 0.2]:
                xi, yi = int(round(x)), int(round(y))
                if 0 <= xi < store.size[0] and 0 <= yi < store.size[1]:
                    assert masks[j, 0, yi, xi] == 1
                    found += 1
    assert found > 0  # the clip shows hands: the check above ran


def test_each_hands_centre_is_its_found_points_else_the_wrist():
    from edn_engine.pose.hands import hand_centres

    body, hands = _pose()
    hands[0, :, :] = [40.0, 50.0, 0.9]
    hands[0, 3, :] = [60.0, 70.0, 0.9]  # one point elsewhere moves the mean
    hands[0, 4, :] = [500.0, 500.0, 0.1]  # too unsure: ignored
    body[B["RWrist"]] = [200.0, 60.0, 0.8]  # the right hand was missed: its wrist stands in
    c = hand_centres(body, hands)
    assert c.dtype == np.float32 and c.shape == (2, 2)
    np.testing.assert_allclose(c[0], [40 + 20 / 20, 50 + 20 / 20], rtol=1e-5)
    np.testing.assert_allclose(c[1], [200, 60])
    np.testing.assert_array_equal(hand_centres(*_pose()), -1)  # nobody: no centres


def _hand_batch(centres):
    """A 1-pair batch at 64x64 whose fake and real frames differ in a few pixels, with the given hand centres."""
    import torch

    batch = {"label": torch.full((1, 2, 3, 64, 64), -1.0), "image": torch.zeros(1, 2, 3, 64, 64),
             "matte": torch.ones(1, 2, 1, 64, 64), "hands": torch.zeros(1, 2, 1, 64, 64, dtype=torch.uint8),
             "face": torch.full((1, 2, 2), -1.0), "hand_centres": torch.tensor(centres, dtype=torch.float32)}
    return batch


def test_hand_crops_are_squares_around_each_hand_seen():
    import torch

    from edn_engine.training.steps import hand_crops

    batch = _hand_batch([[[[20.0, 30.0], [-1, -1]], [[50.0, 40.0], [-1, -1]]]])  # left hand in both frames
    fakes = [torch.zeros(1, 3, 64, 64) for _ in range(2)]
    fakes[0][..., 30, 20] = 1.0  # the left hand's centre, frame t
    fakes[1][..., 40, 50] = 2.0  # frame t+1
    labels, reals = [torch.zeros(1, 3, 64, 64)] * 2, [torch.zeros(1, 3, 64, 64)] * 2
    lab, fake, real, weight = hand_crops(batch, labels, fakes, reals, 16)
    assert weight == 1.0 and fake.shape == lab.shape == real.shape == (2, 3, 16, 16)  # the two right hands dropped
    assert fake[0, 0, 8, 8] == 1.0 and fake[1, 0, 8, 8] == 2.0
    *_, weight = hand_crops(_hand_batch([[[[-1, -1]] * 2] * 2]), labels, fakes, reals, 16)
    assert weight == 0.0  # no hand anywhere: judged at weight 0, so every process still steps
    # a raised hand above the frame, or one beyond its right edge, is not seen: never a crop of the wrong place
    fakes[1][..., 30, 20] = 3.0
    _, fake, _, weight = hand_crops(_hand_batch([[[[30.0, -5.0], [70.0, 20.0]], [[20.0, 30.0], [-1, -1]]]]),
                                    labels, fakes, reals, 16)
    assert weight == 1.0 and len(fake) == 1 and fake[0, 0, 8, 8] == 3.0  # only frame t+1's left hand


def test_the_hand_discriminator_learns_only_from_hands_seen():
    """A body step with `hand_gan` updates the hand discriminator and adds its terms to the generator's loss; a
    pair with no hand gives it no gradient (Adam's momentum alone may still move it, as for any zero gradient)."""
    import torch

    from edn_engine.models.config import get_profile
    from edn_engine.models.discriminator import build_discriminator, build_hand_discriminator
    from edn_engine.models.generator import build_generator
    from edn_engine.models.losses import GANLoss
    from edn_engine.training.steps import body_step

    cfg = get_profile("cpu", width=64, height=64, ngf=4, max_channels=8, n_blocks=1, ndf=4, hand_ndf=4)
    assert cfg.hand_gan and cfg.hand_size == 16
    assert not get_profile("paper-global").hand_gan  # the paper's profiles keep the paper's networks
    torch.manual_seed(0)
    G, D, HD = build_generator(cfg), build_discriminator(cfg), build_hand_discriminator(cfg)
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in (G, D, HD)]
    before = [p.detach().clone() for p in HD.parameters()]
    step = lambda centres: body_step(G, D, opts[0], opts[1], _hand_batch(centres), cfg, GANLoss(), None,  # noqa: E731
                                     torch.autocast("cpu", enabled=False), hand=(HD, opts[2]))
    out = step([[[[-1, -1]] * 2] * 2])
    assert out["G_hand_gan"] == 0 and out["G_hand_feat"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, HD.parameters()))  # a fresh Adam: nothing moved
    out = step([[[[20.0, 30.0], [40.0, 30.0]]] * 2])
    assert out["G_hand_gan"] > 0 and out["HD_real"] > 0 and out["HD_fake"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, HD.parameters()))
    step([[[[-1, -1]] * 2] * 2])
    assert all(not p.grad.any() for p in HD.parameters())  # after hands were seen: still no gradient


def test_a_run_saved_before_the_hand_discriminator_resumes_without_one():
    """Checkpoints of earlier `cpu` runs have no hand_* settings: they load as trained, with no hand discriminator
    (the checkpoint has none to restore)."""
    import torch

    from edn_engine.models.config import ModelConfig, get_profile
    from edn_engine.training import TrainConfig
    from edn_engine.training.trainer import Networks

    old = {k: v for k, v in get_profile("cpu", width=64, height=64).to_dict().items() if not k.startswith("hand_")
           and k not in ("lambda_hand_gan", "lambda_hand_feat")}
    cfg = ModelConfig.from_dict(old)
    assert not cfg.hand_gan
    nets = Networks.build(cfg, False, TrainConfig(), torch.device("cpu"))
    assert nets.HD is None and set(nets.modules()) == {"G", "D"} and set(nets.opt) == {"G", "D"}
