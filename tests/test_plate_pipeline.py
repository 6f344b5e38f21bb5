"""Person over plate end to end on a real static-camera clip: the dataset holds person-centred windows and a
plate, training judges composites, generation hands back full-resolution RGBA plus composites over the plate,
and `edn eval` scores those at the clip's own framing. Tiny sizes; the real clip is cut short and shrunk."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")  # the engine's Python; the Blender test venvs have only bpy and numpy

import torch  # noqa: E402

import tiny_run  # noqa: E402
from conftest import VIDEO  # noqa: E402
from edn_engine.dataset import FrameStore, build_dataset  # noqa: E402
from edn_engine.errors import EdnError  # noqa: E402
from edn_engine.events import Reporter  # noqa: E402
from edn_engine.compositing import over  # noqa: E402
from edn_engine import generate as generate_module  # noqa: E402
from edn_engine.generate import generate  # noqa: E402
from edn_engine.hand_data import crop_size, hand_framing  # noqa: E402
from edn_engine.pose.hands import HAND_BOX, hand_box  # noqa: E402
from edn_engine.pose.window import FramePlan  # noqa: E402
from edn_engine.pose.track import PoseTrack  # noqa: E402
from edn_engine.training import TrainConfig, train  # noqa: E402
from edn_engine.video import open_source  # noqa: E402
from edn_engine.video_out import write_video  # noqa: E402

pytestmark = pytest.mark.slow
SRC = (480, 270)  # romp_sample2 (1920x1080, a static studio camera) shrunk 4x: fast detection


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """48 frames of a woman doing aerobics in a white studio; she moves enough to uncover the background."""
    root = tmp_path_factory.mktemp("plate clip ü")
    frames = (cv2.resize(img, SRC, interpolation=cv2.INTER_AREA) for _, img in
              open_source(VIDEO / "romp_sample2.mp4", 0, 143) if _ % 3 == 0)
    write_video(root / "romp.mp4", frames, fps=10)
    return root / "romp.mp4"


@pytest.fixture(scope="module")
def dataset(clip):
    out = clip.parent / "dataset"
    summary = build_dataset(clip, out, (64, 64), holdout=0.15, framing="window")
    assert summary["framing"] == "window"
    return out


@pytest.fixture(scope="module")
def run(dataset):
    out = dataset.parent / "run"
    tcfg = TrainConfig(steps=4, save_every=2, preview_every=2, face_fraction=0.0, device="cpu")
    with tiny_run.one_thread():
        train(dataset, out, tcfg, profile="cpu", overrides=dict(tiny_run.TINY))
    return out


def test_dataset_holds_windows_that_follow_the_person_and_a_plate(dataset):
    m = json.loads((dataset / "manifest.json").read_text())
    assert m["framing"]["mode"] == "window" and (dataset / "plate.png").is_file()
    plate = cv2.imread(str(dataset / "plate.png"))
    assert plate.shape[:2] == (SRC[1], SRC[0])
    src = PoseTrack.load(dataset / "track_source.npz")
    covered, letterboxed = [], []
    fit = min(64 / SRC[0], 64 / SRC[1])  # the whole frame letterboxed into 64x64
    for e in m["frames"]:
        x0, y0, w, h = e["window"]
        body = src.body[e["frame"] - src.frame_start]
        seen = body[body[:, 2] > 0.3, :2]
        # every confident joint inside the window, and the person fills a good part of it
        assert (seen[:, 0] > x0).all() and (seen[:, 0] < x0 + w).all()
        assert (seen[:, 1] > y0).all() and (seen[:, 1] < y0 + h).all()
        matte = cv2.imread(str(dataset / "mattes" / f"matte_{e['frame']:06d}.png"), cv2.IMREAD_GRAYSCALE)
        covered.append((matte > 128).mean())
        letterboxed.append(covered[-1] * w * h * fit * fit / (64 * 64))  # the same person, whole frame
    # the window gives her over three times the pixels the whole frame would (about 10% against 2-3%)
    assert np.mean(covered) > 3 * np.mean(letterboxed)
    store = FrameStore(dataset)
    n = m["frames"][0]["frame"]
    assert store.plate(n).shape == (3, 64, 64) and store.window(n).shape == (4,)


def test_training_on_composites_and_full_resolution_rgba_out(run, dataset, tmp_path):
    assert (run / "plate.png").is_file()  # the run generates even if the dataset is deleted
    track = dataset / "track_source.npz"
    out = tmp_path / "frames"
    with tiny_run.one_thread():
        summary = generate(run, track, out, device="cpu")
    assert summary["framing"] == "window" and summary["size"] == list(SRC)
    n = PoseTrack.load(track).frame_start
    rgba = cv2.imread(str(out / f"frame_{n:06d}.png"), cv2.IMREAD_UNCHANGED)
    comp = cv2.imread(str(out / "composite" / f"frame_{n:06d}.png"))
    plate = cv2.imread(str(run / "plate.png"))
    assert rgba.shape == (SRC[1], SRC[0], 4) and comp.shape == (SRC[1], SRC[0], 3)
    window = json.loads((dataset / "manifest.json").read_text())["frames"][0]["window"]
    x1 = int(window[0] + window[2]) + 2
    if x1 < SRC[0]:  # right of the window: transparent, and the composite there is the plate itself
        assert rgba[:, x1:, 3].max() == 0
        assert np.abs(comp[:, x1:].astype(int) - plate[:, x1:].astype(int)).max() <= 1


def test_a_pose_that_puts_the_person_wholly_off_the_frame_is_transparent_and_named(run, dataset, tmp_path):
    track = PoseTrack.load(dataset / "track_source.npz").slice(0, 3)
    for part in (track.body, track.hands, track.face):
        part[..., 0] += np.where(part[..., 2] > 0, 10 * SRC[0], 0)  # ten frame widths to the right
    track.save(tmp_path / "away.npz")
    log = io.StringIO()
    with tiny_run.one_thread():
        summary = generate(run, tmp_path / "away.npz", tmp_path / "frames", device="cpu", reporter=Reporter(False, log))
    assert summary["outside"] == 3 and summary["written"] == 3 and summary["empty"] == 0
    n = track.frame_start
    assert f"window wholly outside the frame in 3 frames, written transparent: frames {n}-{n + 2}" in log.getvalue()
    rgba = cv2.imread(str(tmp_path / "frames" / f"frame_{n:06d}.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (SRC[1], SRC[0], 4) and rgba[..., 3].max() == 0
    # half off the frame: generated and pasted as far as the frame goes, not counted
    track = PoseTrack.load(dataset / "track_source.npz").slice(0, 3)
    for part in (track.body, track.hands, track.face):
        part[..., 0] += np.where(part[..., 2] > 0, SRC[0] - np.median(track.body[:, 1, 0]), 0)  # neck on the edge
    track.save(tmp_path / "edge.npz")
    with tiny_run.one_thread():
        summary = generate(run, tmp_path / "edge.npz", tmp_path / "edge", device="cpu")
    assert summary["outside"] == 0 and summary["written"] == 3


def test_the_dataset_keeps_each_hands_crop_at_the_source_resolution(dataset, clip):
    m = json.loads((dataset / "manifest.json").read_text())
    size, boxes = m["hand_size"], [(e, side, box) for e in m["frames"] for side, box in enumerate(e["hand_boxes"])
                                   if box is not None]
    assert size == crop_size(np.array([e["window"][3] for e in m["frames"]]), 64)  # the boxes' own pixels
    assert len(boxes) > len(m["frames"])  # most frames show both hands
    frames = dict(open_source(clip, 0, 5))
    for entry, side, box in boxes:
        assert box[2] == pytest.approx(HAND_BOX * entry["window"][3], abs=1e-2)  # sized by the person
        crop = cv2.imread(str(dataset / "hands" / f"hand_{entry['frame']:06d}_{side}.png"), cv2.IMREAD_UNCHANGED)
        assert crop.shape == (size, size, 4)
        if entry["frame"] in frames:  # the real frame's pixels there, scaled to the crop
            expected = hand_framing(SRC, box, size).image(frames[entry["frame"]])
            assert np.abs(crop[..., :3].astype(int) - expected.astype(int)).mean() < 1


@pytest.fixture(scope="module")
def hand_run(dataset):
    out = dataset.parent / "hand run"
    tcfg = TrainConfig(steps=4, save_every=4, preview_every=4, face_fraction=0.5, device="cpu")
    with tiny_run.one_thread():
        summary = train(dataset, out, tcfg, profile="cpu", overrides=dict(tiny_run.TINY))
    assert summary["hand_refiner"] and summary["face_stage"]
    return out


def test_the_hand_refiner_trains_in_the_face_stage_and_redraws_each_hand_in_the_full_frame(hand_run, dataset,
                                                                                         tmp_path, monkeypatch):
    rows = (hand_run / "losses.csv").read_text().splitlines()
    assert "H_alpha" in rows[0] and rows[-1].split(",")[1] == "face"
    from edn_engine.hand_bank import HandBank
    from edn_engine.inference import Synthesizer, load_run

    assert len(load_run(hand_run, "cpu").hand_bank.frame) > 0  # the training hands, kept in the run

    def green(self, body, window, boxes, labels, plates):  # the refiner's output made unmistakable
        colour = torch.tensor([-1.0, 1.0, -1.0])[None, :, None, None].expand(len(boxes), 3, *labels.shape[-2:])
        return colour, torch.ones(len(boxes), 1, *labels.shape[-2:])

    def blue(self, side, points, box, size):  # a training hand, half opaque over its grown box
        x0, y0, s = box
        return (x0 - s / 4, y0 - s / 4, 1.5 * s), np.tile(np.uint8([250, 0, 0, 128]), (size * 3 // 2, size * 3 // 2, 1))

    monkeypatch.setattr(Synthesizer, "refine_hands", green)
    monkeypatch.setattr(HandBank, "hand_patch", blue)
    monkeypatch.setattr(generate_module, "_finishes_in_writer", lambda device: False)  # here, where they are patched
    track = PoseTrack.load(dataset / "track_source.npz").slice(0, 3)
    track.save(tmp_path / "three.npz")
    plate = cv2.imread(str(hand_run / "plate.png"))
    plan = FramePlan.from_dict(json.loads((hand_run / "run.json").read_text())["framing"])
    # where the driving pose put a hand: the training hand half over the refined one; the refined one alone; or,
    # the refiner not run, the body's own pixels (neither green nor the training hand's blue)
    for hands, drawn in (("training", [125, 128, 0]), ("refined", [0, 255, 0]), ("body", None)):
        with tiny_run.one_thread():
            summary = generate(hand_run, tmp_path / "three.npz", tmp_path / hands, device="cpu", hands=hands)
        assert (summary["hand_refiner"], summary["training_hands"]) == (hands != "body", hands == "training")
        hands_seen = 0
        for i, fr in enumerate(plan.framings(track)):
            n = track.frame_start + i
            rgba = cv2.imread(str(tmp_path / hands / f"frame_{n:06d}.png"), cv2.IMREAD_UNCHANGED)
            comp = cv2.imread(str(tmp_path / hands / "composite" / f"frame_{n:06d}.png"))
            assert np.abs(comp.astype(int) - over(rgba, plate).astype(int)).max() <= 2  # the RGBA over the plate
            for side in (0, 1):
                box = hand_box(track.body[i], track.hands[i], side, fr.window[3])
                if box is not None and 0 <= box[0] + box[2] / 2 < SRC[0] and 0 <= box[1] + box[2] / 2 < SRC[1]:
                    x, y = int(box[0] + box[2] / 2), int(box[1] + box[2] / 2)
                    if drawn is not None:
                        assert np.abs(rgba[y, x].astype(int) - [*drawn, 255]).max() <= 2, (hands, n, side)
                    else:
                        assert all(np.abs(rgba[y, x, :3].astype(int) - c).max() > 40
                                   for c in ([125, 128, 0], [0, 255, 0])), (n, side)
                    hands_seen += 1
        assert hands_seen >= 3
    with pytest.raises(EdnError, match="hands must be one of training, refined, body, not 'none'"):
        generate(hand_run, tmp_path / "three.npz", tmp_path / "none", device="cpu", hands="none")


def test_frames_finished_in_the_frame_writer_are_those_finished_here(hand_run, dataset, tmp_path, monkeypatch):
    """On a CPU the face and hands are refined in the frame writer's process (`finishing`), from the body frames
    pickled to it: the same frames, to the bit, as finishing them in the generating process."""
    track = PoseTrack.load(dataset / "track_source.npz").slice(0, 6)
    track.save(tmp_path / "six.npz")
    with tiny_run.one_thread():
        summary = generate(hand_run, tmp_path / "six.npz", tmp_path / "writer", device="cpu")
        monkeypatch.setattr(generate_module, "_finishes_in_writer", lambda device: False)
        generate(hand_run, tmp_path / "six.npz", tmp_path / "here", device="cpu")
    assert summary["face_gan"] and summary["hand_refiner"] and summary["training_hands"]
    names = [p.relative_to(tmp_path / "here") for p in sorted((tmp_path / "here").rglob("*.png"))]
    assert len(names) == 12
    for name in names:
        a, b = (cv2.imread(str(tmp_path / side / name), cv2.IMREAD_UNCHANGED) for side in ("writer", "here"))
        assert a.shape == b.shape and (a == b).all(), name


def test_a_hand_run_whose_training_hands_are_lost_says_so_and_draws_the_refiners(hand_run, dataset, tmp_path):
    run = tiny_run.copy_run(hand_run, tmp_path / "run")
    (run / "hand_bank.npz").unlink()
    PoseTrack.load(dataset / "track_source.npz").slice(0, 2).save(tmp_path / "two.npz")
    log = io.StringIO()
    with tiny_run.one_thread():
        summary = generate(run, tmp_path / "two.npz", tmp_path / "out", device="cpu", reporter=Reporter(False, log))
    assert summary["hand_refiner"] and not summary["training_hands"]
    assert f"{run / 'hand_bank.npz'} is missing" in log.getvalue()
    shutil.copy(hand_run / "hand_bank.npz", run)  # written again (`edn train --resume`): other hands would be drawn
    with pytest.raises(EdnError, match="another way of drawing the hands"):
        generate(run, tmp_path / "two.npz", tmp_path / "out", device="cpu", resume=True)


def test_a_run_plate_of_another_size_is_named_not_stretched(run, dataset, tmp_path):
    copy = tiny_run.copy_run(run, tmp_path / "run")
    cv2.imwrite(str(copy / "plate.png"), np.zeros((100, 100, 3), np.uint8))
    PoseTrack.load(dataset / "track_source.npz").slice(0, 2).save(tmp_path / "two.npz")
    with pytest.raises(EdnError, match="plate.png: the run's plate is 100x100, its footage"):
        generate(copy, tmp_path / "two.npz", tmp_path / "out", device="cpu")
    assert not list(tmp_path.glob("*out*"))  # refused before the frames folder (or its .out.partial) was made


def test_body_and_hand_steps_train_on_mirrored_pairs_the_face_gan_on_the_pairs_as_they_are(
        dataset, tmp_path, monkeypatch):
    from edn_engine.dataset import PairDataset

    seen, mirrored, hand_batch = [], PairDataset.mirrored, PairDataset.hand_batch

    def spy(self, batch, which):
        seen.append(("body", list(which)))
        return mirrored(self, batch, which)

    def hand_spy(self, frames, which=None):
        seen.append(("hands", list(which)))
        return hand_batch(self, frames, which)

    monkeypatch.setattr(PairDataset, "mirrored", spy)
    monkeypatch.setattr(PairDataset, "hand_batch", hand_spy)
    tcfg = TrainConfig(steps=4, save_every=4, preview_every=4, face_fraction=0.5, mirror=1.0, device="cpu")
    with tiny_run.one_thread():
        train(dataset, tmp_path / "run", tcfg, profile="cpu", overrides=dict(tiny_run.TINY))
    # two body steps, then two face-stage steps: the hands mirrored, the body's frames as they are (its crops are
    # kept per pair, and the Face GAN's crops are cut from them)
    assert seen == [("body", [True]), ("body", [True]), ("hands", [True]), ("hands", [True])]
    assert TrainConfig().mirror == 0.0  # unless asked for


def test_the_face_stage_reads_the_hands_of_each_pairs_second_frame(dataset):
    """The hand refiner trains on the frame the body generates from its previous output, as every frame is in use."""
    from edn_engine.dataset import PairDataset

    data = PairDataset(dataset)
    first, second = data.pairs[3]
    batch = data.hand_batch(torch.tensor([[first, second]]))
    own = data.store.hands(second)
    assert all(torch.equal(batch[f"hand_{k}"][0], own[k]) for k in own)
    assert not torch.equal(batch["hand_box"][0], data.store.hands(first)["box"])


def test_a_mirrored_pairs_hands_are_flipped_and_drawn_as_the_other_hand(dataset):
    from edn_engine.dataset import PairDataset

    data = PairDataset(dataset)
    pairs = torch.tensor([data.pairs[3]])
    plain, mirrored = data.hand_batch(pairs), data.hand_batch(pairs, [True])
    assert not plain["hand_mirrored"].any() and mirrored["hand_mirrored"].all()
    assert torch.equal(mirrored["hand_box"], plain["hand_box"])  # where the frozen body's crops are cut
    for key in ("real", "matte", "plate"):
        assert torch.equal(mirrored[f"hand_{key}"], plain[f"hand_{key}"].flip(-1)), key
    for side in (0, 1):
        if plain["hand_box"][0, side, 2] > 0:
            before, after = plain["hand_label"][0, side], mirrored["hand_label"][0, side]
            lit = lambda t: (t > -1).any(0)  # noqa: E731
            # the same lines, one pixel over (see test_render's mirrored pose), in the other hand's colours
            assert (lit(before).flip(-1)[:, :-1] ^ lit(after)[:, 1:]).float().mean() < 0.01
            assert not torch.equal(before.flip(-1)[:, :, :-1], after[:, :, 1:])


def test_a_dataset_with_hand_crops_can_be_built_again_in_its_own_folder(dataset):
    """The hand crops are the dataset's own files: rebuilding over it (a changed input, `edn transfer`) goes ahead."""
    from edn_engine.outputs import DATASET, check_output_folder

    assert (dataset / "hands").is_dir()
    check_output_folder(dataset, DATASET, "dataset folder")  # raised "holds files EDN did not make (hands)" before


def test_the_hand_bank_names_a_missing_crop_rather_than_keep_fewer_hands(dataset, tmp_path):
    """A resumed run writes its bank again: a crop gone from the dataset must not quietly shrink it (the crops of
    hands the bank leaves out are never read)."""
    import shutil

    from edn_engine.dataset import PairDataset

    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    bank = PairDataset(copy).store.hand_crops().bank()
    name = f"hand_{int(bank.frame[0]):06d}_{int(bank.side[0])}.png"  # a hand the bank keeps
    (copy / "hands" / name).unlink()
    with pytest.raises(EdnError, match="dataset hand crop missing") as err:
        PairDataset(copy).store.hand_crops().bank()
    assert name in str(err.value)
    cv2.imwrite(str(copy / "hands" / name), np.zeros((8, 8, 3), np.uint8))  # re-saved without its matte, resized
    with pytest.raises(EdnError, match=f"{name}.*hand crop is not .* 8-bit BGRA"):
        PairDataset(copy).store.hand_crops().bank()


def test_a_hand_run_resumed_on_a_dataset_without_hand_crops_is_refused_by_name(hand_run, dataset, tmp_path):
    import shutil

    old = tmp_path / "old dataset"
    shutil.copytree(dataset, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest.pop("hand_size")  # as a dataset built before the hand refiner
    (old / "manifest.json").write_text(json.dumps(manifest))
    shutil.copytree(hand_run, tmp_path / "run")
    with pytest.raises(EdnError, match="trains the hand refiner but the dataset holds no hand crops"):
        train(old, tmp_path / "run", TrainConfig(steps=6, device="cpu"), resume=True)


def test_eval_scores_composites_at_the_clip_framing(run, tmp_path):
    res = tiny_run.edn("eval", run, "-o", tmp_path / "report", "--max-frames", "3", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["frames"] == 3
    for method in ("model", "retrieval", "retrieval_absolute"):
        assert {"person_found", "body_error", "background_psnr", "ssim_person"} <= set(report[method])
    # the baselines are real frames over the plate: a person is found and the background matches well
    assert report["retrieval_absolute"]["person_found"] == 1.0
    assert report["retrieval_absolute"]["background_psnr"] > 25


def test_without_a_usable_plate_the_whole_frame_is_used(tmp_path):
    """A clip whose person covers everything (mattes all white): no plate can be made. `auto` warns and falls
    back to the whole frame; `window` refuses with the reason."""
    frames, mattes = tmp_path / "frames", tmp_path / "mattes"
    frames.mkdir()
    mattes.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(frames / f"f_{i:06d}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
        cv2.imwrite(str(mattes / f"matte_{i:06d}.png"), np.full((96, 128), 255, np.uint8))
    from synthetic_pose import person, track_from_frames

    track = track_from_frames([person(70.0, 64.0, 90.0)] * 6, 128, 96)
    track.save(tmp_path / "track.npz")
    log = []

    class Log(Reporter):
        def log(self, message):
            log.append(message)

    summary = build_dataset(frames, tmp_path / "ds", (64, 64), track=tmp_path / "track.npz", mattes=mattes,
                            holdout=0.0, reporter=Log(False))
    assert summary["framing"] == "letterbox" and any("whole frame" in line for line in log)
    with pytest.raises(EdnError, match="cannot train the person over a plate"):
        build_dataset(frames, tmp_path / "ds2", (64, 64), track=tmp_path / "track.npz", mattes=mattes,
                      framing="window")
    assert not (tmp_path / "ds2").exists()
    with pytest.raises(EdnError, match="needs the person's mattes"):
        build_dataset(frames, tmp_path / "ds3", (64, 64), track=tmp_path / "track.npz", mattes="none",
                      framing="window")
