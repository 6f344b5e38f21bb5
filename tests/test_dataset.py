"""`edn dataset build` on real footage: framing, split, exclusions, mattes, face centres, the pair loader, and
bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import tiny_run
from edn_engine.dataset import PairDataset, build_dataset, consecutive_pairs, load_manifest
from edn_engine.sizes import parse_size
from edn_engine.errors import EdnError
from edn_engine.events import Reporter
from edn_engine.pose.framing import Framing
from edn_engine.pose.skeleton import B, mirror_pose
from edn_engine.pose.track import PoseTrack
from edn_engine.render import draw_pose
from edn_engine.tensors import to_image, to_tensor


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    return tiny_run.dataset(tmp_path_factory.getbasetemp() / "edn_shared")


def test_manifest_framing_split_and_files(shared):
    m = load_manifest(shared)
    assert m["schema_version"] == 1 and m["size"] == [64, 64]
    fr = Framing.from_dict(m["framing"])
    assert fr == Framing((414, 540), (64, 64), "letterbox")
    frames = [e["frame"] for e in m["frames"]]
    assert frames == sorted(frames) and len(frames) == tiny_run.FRAMES - sum(m["excluded"].values())
    splits = [e["split"] for e in m["frames"]]
    n_hold = splits.count("holdout")
    assert n_hold == round(0.2 * len(frames))
    assert splits == ["train"] * (len(frames) - n_hold) + ["holdout"] * n_hold  # the LAST fraction is held out
    for n in frames[:: 7]:
        img = cv2.imread(str(shared / "frames" / f"frame_{n:06d}.png"))
        matte = cv2.imread(str(shared / "mattes" / f"matte_{n:06d}.png"), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (64, 64, 3) and matte.shape == (64, 64)
        # letterboxed 414x540 -> 64x64: the padding columns are black in the frame and empty in the matte
        pad = int(fr.offset[0]) - 1
        assert img[:, :pad].max() == 0 and matte[:, :pad].max() == 0
        assert matte.mean() > 10  # the person is there
        # the white studio background is bright, the person in the matte is darker on average
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(float)
        inside, outside = grey[matte > 127].mean(), grey[(matte < 128) & (grey > 0)].mean()
        assert inside < outside - 40


def test_tracks_and_face_centres_follow_the_framing(shared):
    m = load_manifest(shared)
    fr = Framing.from_dict(m["framing"])
    src = PoseTrack.load(shared / "track_source.npz")
    framed = PoseTrack.load(shared / "track.npz")
    assert (src.width, src.height) == (414, 540) and (framed.width, framed.height) == (64, 64)
    np.testing.assert_allclose(framed.body, fr.points(src.body), atol=1e-4)
    entry = m["frames"][0]
    i = entry["frame"] - framed.frame_start
    nose = framed.body[i, B["Nose"]]
    assert nose[2] > 0
    assert entry["face_centre"] == pytest.approx([nose[0], nose[1]], abs=0.01)
    assert m["face_size"] == 32  # 128 px at 1024x512, scaled with the height, at least 32
    x0, y0, x1, y1 = entry["face_box"]
    assert x1 - x0 == y1 - y0 == 32 and 0 <= x0 and 0 <= y0 and x1 <= 64 and y1 <= 64
    assert x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1


def test_pair_loader_reads_consecutive_training_frames_from_disk(shared):
    data = PairDataset(shared)
    m = load_manifest(shared)
    train = [e["frame"] for e in m["frames"] if e["split"] == "train"]
    holdout = {e["frame"] for e in m["frames"] if e["split"] == "holdout"}
    assert data.pairs == consecutive_pairs(train) and len(data) == len(train) - 1
    assert not holdout & {n for p in data.pairs for n in p}  # never trained on
    item = data[3]
    assert item["label"].shape == (2, 3, 64, 64) and item["image"].shape == (2, 3, 64, 64)
    assert item["matte"].shape == (2, 1, 64, 64) and item["face"].shape == (2, 2)
    assert item["image"].min() >= -1 and item["image"].max() <= 1 and item["label"].max() > 0
    assert 0 <= item["matte"].min() and item["matte"].max() <= 1
    a, b = item["frame"].tolist()
    assert b == a + 1
    ref = cv2.imread(str(shared / "frames" / f"frame_{a:06d}.png"))[..., ::-1].astype(np.float32) / 127.5 - 1
    assert torch.allclose(item["image"][0].permute(1, 2, 0), torch.from_numpy(ref.copy()))


def test_frames_whose_track_puts_the_person_off_the_footage_are_left_out_and_named(tmp_path, shared):
    """Another clip's track (or a broken one) puts the person outside the footage: those frames would train on
    an empty window. Left out and named; where every frame is so, refused."""
    track_path, mattes = tiny_run.source_pose(shared.parent)
    track = PoseTrack.load(track_path)
    track.body[[2, 3], :, :2] += 5000.0
    track.save(tmp_path / "t.npz")
    log = io.StringIO()
    summary = build_dataset(tiny_run.CLIP, tmp_path / "ds", (32, 32), track=tmp_path / "t.npz", mattes=mattes,
                            holdout=0.0, end=tiny_run.FRAMES - 1, reporter=Reporter(False, log))
    assert summary["excluded"]["off_frame"] == 2 and "outside the footage in 2 frames" in log.getvalue()
    track.body[..., :2] += 5000.0
    track.save(tmp_path / "t.npz")
    with pytest.raises(EdnError, match="outside the footage in every frame"):
        build_dataset(tiny_run.CLIP, tmp_path / "ds2", (32, 32), track=tmp_path / "t.npz", mattes=mattes,
                      end=tiny_run.FRAMES - 1)
    assert not (tmp_path / "ds2").exists()


def test_off_the_footage_is_judged_by_the_window_rule_in_force(tmp_path, shared, monkeypatch):
    """A joint keeps a frame on the footage only if it is as confident as the dataset's own window rule asks (the
    plan's WindowConfig), not the default rule: else a frame whose window is placed off the footage is trained."""
    import dataclasses

    from edn_engine import dataset
    from edn_engine.pose.window import WindowConfig

    planned = dataset._plan
    monkeypatch.setattr(dataset, "_plan", lambda *a: dataclasses.replace(planned(*a),
                                                                         window=WindowConfig(min_confidence=0.6)))
    track_path, mattes = tiny_run.source_pose(shared.parent)
    track = PoseTrack.load(track_path)
    track.body[[2, 3], :, :2] += 5000.0
    track.body[[2, 3], B["Nose"]] = (200.0, 100.0, 0.5)  # on the footage, but below the rule's 0.6 (default 0.3)
    track.save(tmp_path / "t.npz")
    summary = build_dataset(tiny_run.CLIP, tmp_path / "ds", (32, 32), track=tmp_path / "t.npz", mattes=mattes,
                            holdout=0.0, end=tiny_run.FRAMES - 1)
    assert summary["excluded"]["off_frame"] == 2
    assert {2, 3}.isdisjoint(e["frame"] for e in load_manifest(tmp_path / "ds")["frames"])


def test_frames_without_a_person_are_excluded_and_counted(tmp_path, shared):
    track_path, mattes = tiny_run.source_pose(shared.parent)
    track = PoseTrack.load(track_path)
    track.body[[4, 5, 12]] = 0  # nobody in three frames
    track.hands[[4, 5, 12]] = 0
    track.face[[4, 5, 12]] = 0
    track.save(tmp_path / "t.npz")
    log = io.StringIO()
    summary = build_dataset(tiny_run.CLIP, tmp_path / "ds", (48, 32), track=tmp_path / "t.npz", mattes=mattes,
                            holdout=0.0, framing="crop", end=tiny_run.FRAMES - 1, reporter=Reporter(False, log))
    assert summary["excluded"]["no_person"] == 3 and summary["frames"] == tiny_run.FRAMES - 3
    assert "left out 3 frames without the followed person: frames 4-5, 12" in log.getvalue()  # named, not only counted
    m = load_manifest(tmp_path / "ds")
    assert {4, 5, 12}.isdisjoint(e["frame"] for e in m["frames"])
    assert m["framing"]["mode"] == "crop" and all(e["split"] == "train" for e in m["frames"])
    # gaps break the temporal chain: no pair spans a missing frame
    pairs = PairDataset(tmp_path / "ds").pairs
    assert (3, 4) not in pairs and (5, 6) not in pairs and (6, 7) in pairs and (11, 12) not in pairs
    assert len(pairs) == tiny_run.FRAMES - 3 - 3
    assert cv2.imread(str(tmp_path / "ds" / "frames" / "frame_000000.png")).shape == (32, 48, 3)


def test_cli_build_with_detection_and_json_events(tmp_path, odd_dir):
    out = odd_dir / "data set"
    res = tiny_run.edn("dataset", "build", tiny_run.CLIP, "-o", out, "--size", "32x32", "--start", "100",
                       "--end", "107", "--holdout", "0.25", "--format", "jpg", "--json")
    assert res.returncode == 0, res.stderr
    events = tiny_run.json_events(res.stdout)
    assert events[-1]["event"] == "done" and events[-1]["frames"] == 8
    assert events[-1]["holdout_frames"] == 2 and events[-1]["train_pairs"] == 5
    assert any(e["event"] == "progress" for e in events)
    assert sorted(p.name for p in (out / "frames").iterdir())[0] == "frame_000100.jpg"
    assert len(list((out / "mattes").iterdir())) == 8 and not (out / ".build").exists()


def test_bad_input(tmp_path, shared):
    with pytest.raises(EdnError, match="no manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(EdnError, match="not an EDN dataset"):
        load_manifest(tmp_path)
    with pytest.raises(EdnError, match="WIDTHxHEIGHT"):
        parse_size("64")
    track_path, mattes = tiny_run.source_pose(shared.parent)
    nobody = PoseTrack.load(track_path)
    nobody = nobody.replace(body=np.zeros_like(nobody.body))
    nobody.save(tmp_path / "nobody.npz")
    with pytest.raises(EdnError, match="nobody was detected"):
        build_dataset(tiny_run.CLIP, tmp_path / "ds", (32, 32), track=tmp_path / "nobody.npz", mattes=mattes,
                      end=tiny_run.FRAMES - 1)
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    with pytest.raises(EdnError, match="is a file"):
        build_dataset(tiny_run.CLIP, blocker / "ds", (32, 32), track=track_path, mattes=mattes)
    other = PoseTrack.load(track_path).replace(width=640, height=480)
    other.save(tmp_path / "other.npz")
    with pytest.raises(EdnError, match="footage is 414x540"):
        build_dataset(tiny_run.CLIP, tmp_path / "ds2", (32, 32), track=tmp_path / "other.npz", mattes=mattes)
    res = tiny_run.edn("dataset", "build", tiny_run.CLIP, "-o", tmp_path / "x", "--size", "32x32", "--holdout",
                       "1.5", "--json")
    assert res.returncode == 2 and json.loads(res.stdout.splitlines()[-1])["event"] == "error"


def test_a_mirrored_pair_is_flipped_with_its_poses_faces_and_windows(shared):
    data = PairDataset(shared)
    item = data[3]
    batch = {k: torch.stack([v, v]) for k, v in item.items()}  # two pairs: the first mirrored, the second kept
    batch["window"] = torch.tensor([[[10.0, 0.0, 100.0, 100.0], [12.0, 0.0, 96.0, 96.0]]] * 2)
    out = data.mirrored(batch, [True, False])
    for key in ("image", "matte", "hands", "window", "face", "label"):
        assert torch.equal(out[key][1], batch[key][1]), key
    for key in ("image", "matte", "hands"):
        assert torch.equal(out[key][0], batch[key][0].flip(-1)), key
    assert out["window"][0].tolist() == [[414 - 110, 0, 100, 100], [414 - 108, 0, 96, 96]]  # in the source's pixels
    x = batch["face"][0, :, 0]
    assert (x > 0).all() and torch.allclose(out["face"][0, :, 0], 64 - x)
    track = PoseTrack.load(shared / "track.npz")
    for k, n in enumerate(batch["frame"][0].tolist()):
        i = n - track.frame_start
        drawn = draw_pose(*mirror_pose(track.body[i], track.hands[i], track.face[i], 64), size=(64, 64))
        assert torch.equal(out["label"][0, k], to_tensor(drawn))
    assert data.mirrored(batch, [False, False]) is batch


def test_to_image_inverts_to_tensor_and_clamps_both_ways():
    """A picture survives to_tensor and back exactly; values past [-1, 1] saturate (none folds back from below -1,
    as OpenCV's absolute value would have it), and a channels-last or non-contiguous tensor reads the same."""
    bgr = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    t = to_tensor(bgr)
    assert np.array_equal(to_image(t), bgr)
    assert np.array_equal(to_image(t[None].contiguous(memory_format=torch.channels_last)[0]), bgr)
    assert np.array_equal(to_image(t.transpose(1, 2).contiguous().transpose(1, 2)), bgr)  # strided
    wild = torch.tensor([-3.0, -1.2, 1.3, 0.0]).view(1, 1, 4).expand(3, 2, 4)
    assert to_image(wild)[0, :, 0].tolist() == [0, 0, 255, 128]  # -1.2 must not become 25 (|-25.5|)
