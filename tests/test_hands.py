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
