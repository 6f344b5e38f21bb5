"""Following one person: the follower on synthetic detections, and `extract_pose` on a real two-person clip."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from conftest import VIDEO
from edn_engine.pose.follow import (Candidate, Follower, FollowConfig, FollowState, Status, appearance_distance,
                                    blank_outside, candidate, continues, follow, frame_ranges, warnings_for)
from edn_engine.pose.skeleton import B

W, H = 640, 360
RED, BLUE, GREEN = (200, 30, 30), (30, 40, 200), (40, 170, 60)


def person(image: np.ndarray, x: float, colour: tuple[int, int, int], torso: float = 60.0) -> np.ndarray:
    """Draw a standing person's torso (in `colour`, RGB) centred at x on `image`; return their BODY_25 row."""
    body = np.zeros((25, 3), np.float32)
    top, half = 120.0, torso / 3
    joints = {"Neck": (x, top), "MidHip": (x, top + torso), "RShoulder": (x - half, top),
              "LShoulder": (x + half, top), "RHip": (x - half * 0.7, top + torso),
              "LHip": (x + half * 0.7, top + torso), "Nose": (x, top - 25), "RKnee": (x - 10, top + 1.5 * torso),
              "LKnee": (x + 10, top + 1.5 * torso), "RAnkle": (x - 10, top + 2 * torso),
              "LAnkle": (x + 10, top + 2 * torso)}
    for name, (px, py) in joints.items():
        body[B[name]] = (px, py, 0.9)
    cv2.rectangle(image, (int(x - half), int(top)), (int(x + half), int(top + torso)), colour, -1)
    return body


def frame_of(*people: tuple[float, tuple[int, int, int]], order: list[int] | None = None) -> list[Candidate]:
    """One frame's candidates: each (x, colour) drawn on a shared grey image, the last drawn in front; listed in
    `order` (indices into `people`; default: as drawn)."""
    image = np.full((H, W, 3), 128, np.uint8)
    bodies = [person(image, x, colour) for x, colour in people]
    return [candidate(bodies[i], image) for i in (order if order is not None else range(len(people)))]


# -- candidates and colours ------------------------------------------------------------------------------------------
def test_candidate_measures_position_size_and_torso_colours():
    red, blue = frame_of((200, RED), (450, BLUE))
    assert red.centre[0] == pytest.approx(200, abs=1) and red.size == pytest.approx(60, rel=0.05)
    assert red.box[0] < 200 < red.box[2]
    assert appearance_distance(red.appearance, frame_of((320, RED))[0].appearance) < 0.1
    assert appearance_distance(red.appearance, blue.appearance) > 0.8
    assert candidate(np.zeros((25, 3), np.float32)) is None  # nobody
    assert appearance_distance(None, red.appearance) is None


# -- the follower ----------------------------------------------------------------------------------------------------
def run(frames: list[list[Candidate]], **config) -> tuple[list[Status], list[int | None], FollowState]:
    return follow(list(range(len(frames))), frames, FollowConfig(**config))


def test_a_swap_to_another_person_is_dropped_and_the_person_taken_back():
    frames = [frame_of((150 + i, RED)) for i in range(10)]
    frames += [frame_of((480, BLUE)) for _ in range(5)]  # the detector jumped to someone else
    frames += [frame_of((162 + i, RED)) for i in range(5)]
    statuses, chosen, _ = run(frames)
    assert statuses == [Status.FOLLOWED] * 10 + [Status.OTHER] * 5 + [Status.FOLLOWED] * 5
    assert chosen[:10] == [0] * 10 and chosen[10:15] == [None] * 5


def test_a_jump_without_another_colour_is_dropped_too():
    """Same colours, but the body is suddenly half a frame away: not a motion the person can make in one frame."""
    frames = [frame_of((150, RED))] * 5 + [frame_of((450, RED))] + [frame_of((152, RED))] * 3
    statuses, _, _ = run(frames)
    assert statuses[5] == Status.OTHER and statuses[6:] == [Status.FOLLOWED] * 3


def test_following_can_be_turned_off():
    frames = [frame_of((150, RED))] * 3 + [frame_of((480, BLUE))] * 2
    statuses, _, _ = run(frames, enabled=False)
    assert statuses == [Status.FOLLOWED] * 5
    follower = Follower(FollowConfig(enabled=False))
    follower.step(0, frame_of((150, RED)))
    assert follower.view(1, W, H) == (None, [])


def test_exit_and_reentry_anywhere_by_colour_but_not_someone_else():
    frames = [frame_of((150, RED))] * 10 + [[]] * 30  # leaves
    frames += [frame_of((300, BLUE))] * 10  # someone else walks in where nobody is
    frames += [frame_of((520, RED))] * 5  # the person comes back, far from where they left
    statuses, _, state = run(frames)
    assert statuses[10:40] == [Status.NOBODY] * 30
    assert statuses[40:50] == [Status.OTHER] * 10
    assert statuses[50:] == [Status.FOLLOWED] * 5 and state.last.centre[0] == pytest.approx(520, abs=1)


def test_crossing_keeps_the_person_whichever_order_the_detections_come_in():
    frames, truth = [], []
    for i in range(30):  # the person (red, drawn last: in front) walks right, the other one left, through them
        order = [0, 1] if i % 3 == 1 else [1, 0]  # the first frame lists the person first: they are followed
        frames.append(frame_of((540 - 15 * i, GREEN), (100 + 15 * i, RED), order=order))
        truth.append(order.index(1))
    statuses, chosen, state = run(frames)
    assert statuses == [Status.FOLLOWED] * 30 and chosen == truth
    assert state.last.centre[0] == pytest.approx(100 + 15 * 29, abs=1)


def test_crossing_when_only_the_other_person_is_detected():
    """Where the two overlap the detector may see only the one in front: that frame is dropped, not joined."""
    frames = [frame_of((200 + 5 * i, RED)) for i in range(10)]
    frames += [frame_of((250, GREEN))] * 3  # in front of the person, at their place
    frames += [frame_of((255 + 5 * i, RED)) for i in range(5)]
    statuses, _, _ = run(frames)
    assert statuses[10:13] == [Status.OTHER] * 3 and statuses[13:] == [Status.FOLLOWED] * 5


def test_view_keeps_a_region_round_the_person_and_blanks_a_rejected_one():
    follower = Follower()
    assert follower.view(0, W, H) == (None, [])  # nobody followed yet: the whole frame
    follower.step(0, frame_of((150, RED)))
    keep, blank = follower.view(1, W, H)
    assert keep is not None and keep[0] <= 150 - 20 and 150 + 20 <= keep[2] < 480 and blank == []
    status, _ = follower.step(1, frame_of((480, BLUE)))
    assert status == Status.OTHER
    keep, blank = follower.view(2, W, H)
    assert len(blank) == 1 and blank[0][0] < 480 < blank[0][2]
    # The region grows while the person is unseen; once they have been gone a while, the whole frame is searched.
    wider, _ = follower.view(10, W, H)
    assert wider[2] - wider[0] > keep[2] - keep[0]
    assert follower.view(1 + FollowConfig().search_after + 1, W, H)[0] is None
    assert follower.view(2 + FollowConfig().exclude_for + 1, W, H)[1] == []  # the blanked box expires


def test_view_is_tight_where_holistic_detects_afresh():
    """A new graph (a part's start) or a lost person: Holistic's detector takes anyone in view, so the region is
    tight; while it tracks, it is wide enough that blanking changes nothing it looks at."""
    tracking = Follower()
    tracking.step(0, frame_of((300, RED)))
    wide, _ = tracking.view(1, W, H)
    fresh, _ = Follower(state=tracking.state).view(1, W, H)
    assert fresh[0] > wide[0] and fresh[2] < wide[2] and fresh[0] < 300 - 20 and 300 + 20 < fresh[2]


def test_blank_outside_keeps_only_the_region():
    image = np.full((H, W, 3), 200, np.uint8)
    assert blank_outside(image, None, []) is image  # nothing to blank: no copy
    out = blank_outside(image, (100, 50, 300, 250), [(250, 0, 400, 100)])
    assert out[150, 150].tolist() == [200] * 3 and out[150, 50].tolist() == [0] * 3 and out[300, 150].max() == 0
    assert out[75, 275].max() == 0 and out[75, 240].min() == 200  # the blanked box inside the region
    assert image.min() == 200  # the frame itself is untouched


def test_continues_checks_identity_across_a_boundary():
    _, _, state = run([frame_of((150 + i, RED)) for i in range(10)])
    assert continues(state, 10, frame_of((160, RED))[0])
    assert not continues(state, 10, frame_of((480, RED))[0])  # far away, next frame
    assert not continues(state, 100, frame_of((480, BLUE))[0])  # long after, another person
    assert continues(state, 100, frame_of((480, RED))[0])  # long after, the person elsewhere
    assert continues(FollowState(), 0, frame_of((480, BLUE))[0])  # nobody followed before: anyone starts


def test_warnings_name_the_frames():
    assert frame_ranges([3, 4, 5, 9, 12, 13]) == "3-5, 9, 12-13"
    assert frame_ranges(list(range(0, 40, 2)), limit=3).endswith("... and 17 more frames")
    frames = np.arange(10, 20)
    statuses = np.array([0, 1, 1, 0, 2, 2, 2, 0, 0, 2])
    nobody, other = warnings_for(frames, statuses)
    assert nobody.startswith("2 of 10 frames have nobody") and "frames 11-12" in nobody
    assert other.startswith("4 of 10 frames") and "frames 14-16, 19" in other
    assert warnings_for(frames, np.zeros(10, int)) == []


# -- real footage: two people side by side ---------------------------------------------------------------------------
UBC, ROMP = VIDEO / "ubc_91BjuE6irxS.mp4", VIDEO / "romp_sample2.mp4"
HALF_W, HALF_H = 207, 270  # each side; UBC's 414x540 halved
ENTERS, LEAVES, RETURNS, FRAMES = 30, 55, 65, 90


def named_frames(warnings: list[str]) -> set[int]:
    """Every frame number a warning names in its 'frames 3-5, 9' list."""
    out: set[int] = set()
    for w in warnings:
        for part in re.findall(r"frames ([\d, -]+)", w):
            for item in part.split(","):
                a, _, b = item.strip().partition("-")
                if a:
                    out.update(range(int(a), int(b or a) + 1))
    return out


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> str:
    """UBC's model on the left throughout, except frames LEAVES..RETURNS-1 (she is gone: white); from frame ENTERS
    a second dancer (ROMP's sample, centre crop) on the right. Two workers: the part boundary falls at frame 45,
    where both are in view."""
    if not (UBC.is_file() and ROMP.is_file()):
        pytest.skip(f"test footage not found in {VIDEO}")
    from edn_engine.video import open_source
    from edn_engine.video_out import write_video

    white = np.full((HALF_H, HALF_W, 3), 255, np.uint8)
    left = [cv2.resize(img, (HALF_W, HALF_H), interpolation=cv2.INTER_AREA)
            for _, img in open_source(UBC, 0, FRAMES - 1)]
    right = [cv2.resize(img[:, 546:1374], (HALF_W, HALF_H), interpolation=cv2.INTER_AREA)
             for _, img in open_source(ROMP, 0, FRAMES - ENTERS - 1)]
    frames = [np.concatenate([white if LEAVES <= i < RETURNS else left[i],
                              right[i - ENTERS] if i >= ENTERS else white], axis=1) for i in range(FRAMES)]
    clip = tmp_path_factory.mktemp("two people") / "two.mp4"
    write_video(clip, frames, fps=30)
    return str(clip)


def test_track_stays_on_the_first_person_and_names_lost_frames(two_people):
    from edn_engine.pose.detect import DetectorConfig, extract_pose

    track, summary = extract_pose(two_people, config=DetectorConfig(workers=2))
    found = track.body[..., 2] > 0.3
    kept = [i for i in range(track.frames) if found[i].any()]
    for i in kept:
        xs = track.body[i, found[i], 0]
        assert xs.mean() < HALF_W, f"frame {i}: the track is on the second person (x {xs.mean():.0f})"
    # She is followed before she leaves (the boundary at 45 included) and taken back soon after she returns.
    assert set(range(LEAVES)) <= set(kept), sorted(set(range(LEAVES)) - set(kept))
    assert set(range(RETURNS + 3, FRAMES)) <= set(kept), sorted(set(range(RETURNS + 3, FRAMES)) - set(kept))
    # Every frame without her is named in a warning; nothing else is.
    missing = set(range(track.frames)) - set(kept)
    assert missing >= set(range(LEAVES + 1, RETURNS)) and named_frames(summary["warnings"]) == missing
    assert summary["detection_rate"]["body"] < 1.0
