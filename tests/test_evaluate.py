"""Evaluation: the metric functions on arrays, and `edn eval` on a tiny trained run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")  # the engine's Python; the Blender 4.2 test venv has only bpy and numpy
pytest.importorskip("cv2")

from edn_engine import metrics, retrieval  # noqa: E402
from edn_engine.evaluate import FIGURES, Sample, score  # noqa: E402
from edn_engine.pose.skeleton import B  # noqa: E402


def _image(seed: int = 0, size: int = 64, width: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, width or size, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(img[::4, ::4], 4, 0), 4, 1))  # blocky: SSIM sees structure


def test_identical_frames_give_ssim_one_and_a_shift_less():
    a = _image()
    assert metrics.ssim(a, a.copy()) == pytest.approx(1.0)
    assert metrics.psnr(a, a.copy()) == metrics.PSNR_CAP
    shifted = np.roll(a, 3, axis=1)
    assert metrics.ssim(a, shifted) < 0.9
    assert metrics.psnr(a, shifted) < 30
    # a small crop still works (the window shrinks)
    assert metrics.ssim(a[:5, :5], a[:5, :5]) == pytest.approx(1.0)


def test_matte_box_and_flicker():
    m = np.zeros((50, 40), np.uint8)
    m[10:30, 5:15] = 255
    x0, y0, x1, y1 = metrics.matte_box(m, pad=0.0)
    assert (x0, y0, x1, y1) == (5, 10, 15, 30)
    assert metrics.matte_box(np.zeros((5, 5))) is None
    a = _image(1)
    b = _image(2)
    mask = np.ones(a.shape[:2], bool)
    steady = metrics.flicker_ratio([(a, a)], [(a, b)], [mask])
    assert steady == 0.0
    assert metrics.flicker_ratio([(a, b)], [(a, b)], [mask]) == pytest.approx(1.0)


def _pose(scale=100.0, dx=0.0):
    body = np.zeros((25, 3), np.float32)
    pts = {0: (0, -1.3), 1: (0, -1), 2: (-0.4, -1), 3: (-0.6, -0.5), 4: (-0.7, 0), 5: (0.4, -1), 6: (0.6, -0.5),
           7: (0.7, 0), 8: (0, 0), 9: (-0.2, 0), 10: (-0.2, 0.8), 11: (-0.2, 1.6), 12: (0.2, 0), 13: (0.2, 0.8),
           14: (0.2, 1.6)}
    for k, (x, y) in pts.items():
        body[k] = (200 + dx + x * scale, 200 + y * scale, 1.0)
    return body


def test_pose_error_in_torso_lengths_and_missed_rate():
    ref = _pose()[None]
    det = ref.copy()
    det[0, :, 0] += 50.0  # shifted half a torso (torso = 100 px)
    det[0, 14, 2] = 0.0  # one keypoint missed
    err, missed = metrics.pose_errors(det, ref, metrics.robust_torso(ref))
    assert err[0] == pytest.approx(0.5)
    assert missed[0] == pytest.approx(1 / 15)


def test_retrieval_finds_the_same_posture_anywhere_at_any_size():
    lib = np.stack([_pose(), _pose()])
    lib[1, 4, :2] = lib[1, 1, :2] + (-50, -80)  # arm raised
    query = _pose(scale=60, dx=90)
    query[4, :2] = query[1, :2] + (-30, -48)
    assert list(retrieval.nearest_poses(query[None], lib)) == [1]
    assert list(retrieval.nearest_poses(lib, lib)) == [0, 1]


def test_absolute_retrieval_finds_the_posture_where_it_stands():
    lib = np.stack([_pose(dx=0), _pose(dx=300)])  # one posture at two places
    queries = np.stack([_pose(dx=290), _pose(dx=10)])
    assert len(set(retrieval.nearest_poses(queries, lib))) == 1  # the posture alone cannot tell them apart
    assert list(retrieval.nearest_absolute(queries, lib)) == [1, 0]
    assert list(retrieval.nearest_absolute(queries, lib[::-1])) == [0, 1]
    # A pose missing its legs at the very place does not beat a whole one 20 px off (missing joints cost a torso).
    partial = _pose()
    partial[9:15, 2] = 0
    assert list(retrieval.nearest_absolute(_pose()[None], np.stack([partial, _pose(dx=20)]))) == [1]


def test_retrieve_absolute_reads_the_source_track_by_frame_number(tmp_path):
    from types import SimpleNamespace

    from edn_engine.pose.track import PoseTrack

    src = PoseTrack.empty(4, 640, 360, frame_start=10)
    for i, dx in enumerate((0, 100, 200, 300)):
        src.body[i] = _pose(dx=dx)
    src.save(tmp_path / retrieval.SOURCE_TRACK)
    store = SimpleNamespace(dir=tmp_path, frames=lambda split: [10, 11, 12] if split == "train" else [13])
    assert retrieval.retrieve_absolute(store, np.stack([_pose(dx=190), _pose(dx=300)])) == [12, 12]


def _flat(body: np.ndarray, hands: tuple[bool, bool] = (True, True), face: bool = True) -> np.ndarray:
    """(137, 3) keypoints: the body, hands at its wrists and a face at its nose when asked."""
    h = np.zeros((2, 21, 3), np.float32)
    for k, wrist in enumerate((7, 4)):  # left hand first, as OpenPose stores them
        if hands[k]:
            h[k] = (*body[wrist, :2], 1.0)
    f = np.zeros((70, 3), np.float32)
    if face:
        f[:] = (*body[0, :2], 1.0)
    return metrics.flat_pose(body, h, f)


def _clip(frames: int = 3, height: int = 48, width: int = 80) -> list[Sample]:
    """Consecutive frames of an odd size (not square, not 256) with a person-shaped matte in the middle."""
    samples = []
    for n in range(frames):
        matte = np.zeros((height, width), np.uint8)
        matte[8:40, 30:50] = 255
        samples.append(Sample(n, _image(n, height, width), matte, (32, 8, 48, 20)))
    return samples


def test_score_gives_every_figure():
    samples = _clip()
    reals = [s.real for s in samples]
    pose = np.stack([_flat(_pose(20))] * 3)
    perfect = score(samples, reals, pose, pose)
    assert list(perfect) == list(FIGURES)
    assert perfect["ssim_frame"] == pytest.approx(1.0) and perfect["ssim_person"] == pytest.approx(1.0)
    assert perfect["ssim_face"] == pytest.approx(1.0) and perfect["pose_error"] == 0.0
    assert perfect["missed_rate"] == 0.0 and perfect["flicker"] == pytest.approx(1.0)
    assert perfect["person_found"] == 1.0 and perfect["body_error"] == 0.0 and perfect["facing_flipped"] == 0.0
    assert perfect["hands_found"] == 1.0 and perfect["face_found"] == 1.0
    assert perfect["background_psnr"] == metrics.PSNR_CAP
    frozen = score(samples, [reals[0]] * 3, pose, pose)
    assert frozen["flicker"] == 0.0 and frozen["ssim_frame"] < 1.0
    # Nobody on a blank output: nothing found, no body error to speak of, the background lost.
    blank = score(samples, [np.zeros_like(r) for r in reals], np.zeros_like(pose), pose)
    assert blank["person_found"] == 0.0 and blank["body_error"] is None and blank["pose_error"] is None
    assert blank["facing_flipped"] is None
    assert blank["hands_found"] == 0.0 and blank["face_found"] == 0.0 and blank["missed_rate"] == 1.0
    assert blank["background_psnr"] < 15
    # Generators are read one frame at a time and give the same figures; a missing output is an error.
    assert score((s for s in samples), (r for r in reals), pose, pose) == perfect
    with pytest.raises(ValueError):
        score(samples, reals[:2], pose, pose)


def test_body_error_counts_main_joints_on_frames_with_a_person():
    ref = np.stack([_flat(_pose(), hands=(True, True)), _flat(_pose(), hands=(True, False)), _flat(_pose())])
    det = ref.copy()
    det[0, :25, 0] += 50.0  # frame 0: the body half a torso (100 px) off...
    det[0, 8, 0] += 500.0  # ... the mid-hip (not a main joint) far off...
    det[0, 25:, 0] += 400.0  # ... and hands and face far off: in the pose error, not in the body error
    det[1, 25:46, 2] = 0.0  # frame 1: the real frame shows the left hand only, which the output loses
    det[2] = 0.0  # frame 2: nobody found
    figures = score(_clip(), [s.real for s in _clip()], det, ref)
    assert figures["body_error"] == pytest.approx(0.25)  # frames 0 (0.5) and 1 (0); frame 2 has no person
    assert figures["pose_error"] > 1.0
    assert figures["person_found"] == pytest.approx(2 / 3)
    assert figures["hands_found"] == pytest.approx(2 / 5)  # 5 hands shown (2 + 1 + 2), 2 found (frame 0)
    assert figures["face_found"] == pytest.approx(2 / 3)
    no_face = ref.copy()
    no_face[:, 67:, 2] = 0.0
    assert score(_clip(), [s.real for s in _clip()], det, no_face)["face_found"] is None


def _seen_from_behind(body: np.ndarray) -> np.ndarray:
    """A copy of BODY_25 keypoints with every left joint labelled right and the other way round."""
    out = body.copy()
    for name in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"):
        right, left = B["R" + name], B["L" + name]
        out[[right, left]] = body[[left, right]]
    return out


def test_a_pose_read_facing_the_other_way_counts_as_flipped():
    ref = np.stack([_flat(_pose())] * 3)
    det = ref.copy()
    det[0, :25] = _seen_from_behind(ref[0, :25])  # frame 0: left and right labels swapped
    det[1, :25, 0] += 30.0  # frame 1: off by 0.3 torso lengths, but facing the right way
    det[2] = 0.0  # frame 2: nobody found
    torso = np.full(3, 100.0)
    per_frame = metrics.facing_flipped(det, ref, torso)
    assert per_frame[0] == 1.0 and per_frame[1] == 0.0 and np.isnan(per_frame[2])
    assert metrics.body_errors(det, ref, torso)[0] > 0.5  # every limb in place, yet half a torso length off
    side_on = _pose()  # seen side-on: each left joint two pixels from its right twin, so labels swapped put each
    side_on[:15, 0] = 200.0 + np.where(np.arange(15) % 2, 1.0, -1.0)  # a mere two pixels off: no flip worth the name
    assert metrics.facing_flipped(_seen_from_behind(side_on)[None], side_on[None], np.full(1, 100.0))[0] == 0.0
    assert score(_clip(), [s.real for s in _clip()], det, ref)["facing_flipped"] == pytest.approx(0.5)


def test_background_psnr_ignores_the_person_and_the_matte_edge():
    real = _image(5, 48, 80)
    matte = np.zeros((48, 80), np.uint8)
    matte[8:40, 30:50] = 255
    smp = Sample(0, real, matte, None)
    person = real.copy()
    person[8:40, 30:50] = 0  # another person, same background
    near = real.copy()
    near[20, 51] = 255 - near[20, 51]  # one pixel beside the matte: within 3% of the frame (2.4 px)
    far = real.copy()
    far[20, 70] = 255 - far[20, 70]
    assert score([smp], [person], np.zeros((1, 137, 3)), np.zeros((1, 137, 3)))["background_psnr"] == metrics.PSNR_CAP
    assert metrics.masked_psnr(real, near, smp.background) == metrics.PSNR_CAP
    assert metrics.masked_psnr(real, far, smp.background) < 60
    assert metrics.psnr(real, person) < 20  # the frame's PSNR does see the person
    no_matte = score([Sample(0, real, None, None)], [real], np.zeros((1, 137, 3)), np.zeros((1, 137, 3)))
    assert no_matte["background_psnr"] is None


def test_the_matte_handed_to_a_compositor_is_scored_inside_the_person_and_over_the_background():
    real = _image(5, 48, 80)
    matte = np.zeros((48, 80), np.uint8)
    matte[8:40, 30:50] = 255
    smp = Sample(0, real, matte, None)
    alpha = np.where(matte > 0, 222, 3).astype(np.uint8)  # a see-through person (87%) and a faint veil
    alpha[8, 30:50] = 0  # the matte's own edge is not counted
    scorer = metrics.Scorer()
    scorer.add(smp, real, alpha)
    figures = scorer.figures(np.zeros((1, 137, 3)), np.zeros((1, 137, 3)))
    assert figures["alpha_person"] == pytest.approx(222 / 255) and figures["alpha_background"] == pytest.approx(3 / 255)
    no_alpha = score([smp], [real], np.zeros((1, 137, 3)), np.zeros((1, 137, 3)))  # a retrieval makes no matte
    assert no_alpha["alpha_person"] is None and no_alpha["alpha_background"] is None


# -- `edn eval` on a tiny trained run -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import VIDEO
    from test_transfer import clip, edn

    d = tmp_path_factory.mktemp("eval run")
    target = clip(VIDEO / "ubc_91BjuE6irxS.mp4", d / "target.mp4", 14)
    # Whole-frame framing (a 64x64 letterbox of the 414x540 clip), scored at the clip's framing.
    edn("dataset", "build", target, "-o", d / "dataset", "--size", "64x64", "--holdout", "0.3",
        "--framing", "letterbox")
    edn("train", d / "dataset", "-o", d / "run", "--steps", "2", "--perceptual", "none", "--face-fraction", "0")
    return d / "run"


@pytest.mark.slow
def test_each_frame_is_detected_on_its_own_not_through_the_frames_before(tmp_path):
    """`edn eval` scores a frame by what the detector finds on it alone. MediaPipe's tracking carried one frame's
    landmarks into the next: a change to generated frames 274-286 flipped hands found at 289-291, unchanged."""
    import cv2
    from conftest import VIDEO
    from edn_engine.evaluate import detect_folder
    from edn_engine.events import Reporter
    from edn_engine.video import open_source

    real = {n: cv2.resize(img, (480, 270)) for n, img in open_source(VIDEO / "romp_sample2.mp4", 40, 250)
            if n in (40, 120, 200, 247, 248, 249, 250)}
    found = []
    for name, before in (("in order ü", (247, 248, 249)), ("other frames before", (40, 120, 200))):
        folder = tmp_path / name
        folder.mkdir()
        for i, n in enumerate((*before, 250)):
            cv2.imwrite(str(folder / f"frame_{i:06d}.png"), real[n])
        found.append(detect_folder(folder, [0, 1, 2, 3], Reporter(False), name)[3])
    assert (found[0][:, 2] > 0).sum() > 100  # a person, her hands and face, found
    assert np.array_equal(found[0], found[1])  # the same frame, the same keypoints, whatever came before


@pytest.mark.slow
def test_edn_eval_gives_every_figure_for_model_and_retrieval(tiny_run, odd_dir):
    import json

    from test_transfer import edn

    done = edn("eval", tiny_run, "-o", odd_dir / "report")[-1]
    report = json.loads((odd_dir / "report" / "report.json").read_text())
    assert set(report) == {"frames", "detection", "model", "retrieval", "retrieval_absolute"} and report["frames"] == 4
    for method in ("model", "retrieval", "retrieval_absolute"):
        assert set(report[method]) == set(FIGURES)
    # At 64x64 the detector may find no hands or face on the real frames: then those two figures are undefined.
    parts = ("hands_found", "face_found")
    mattes = ("alpha_person", "alpha_background")  # the model's alone: a retrieval hands over no matte
    for method in ("retrieval", "retrieval_absolute"):  # real frames of the same person: always a person
        r = report[method]
        assert all(isinstance(r[k], float) for k in FIGURES if k not in (*parts, *mattes)), r
        assert r["alpha_person"] is None and r["alpha_background"] is None
        assert r["person_found"] == 1.0 and 0 <= r["body_error"] < 1
        assert all(r[k] is None or 0 <= r[k] <= 1 for k in parts)
    model = report["model"]
    # An untrained generator may show no person at all; then the pose errors are undefined and all are missed.
    assert all(isinstance(model[k], float) for k in FIGURES
               if k not in ("pose_error", "body_error", "facing_flipped", *parts))
    assert 0 <= model["alpha_background"] <= 1 and 0 <= model["alpha_person"] <= 1
    assert 0 <= model["person_found"] <= 1 and all(model[k] is None or 0 <= model[k] <= 1 for k in parts)
    assert isinstance(model["body_error"], float) or model["person_found"] == 0.0
    assert (model["facing_flipped"] is None) == (model["body_error"] is None)
    assert model["facing_flipped"] is None or 0 <= model["facing_flipped"] <= 1
    assert isinstance(model["pose_error"], float) or model["missed_rate"] == 1.0
    assert -1 <= model["ssim_person"] < report["retrieval"]["ssim_person"] <= 1
    assert model["background_psnr"] < metrics.PSNR_CAP
    assert (odd_dir / "report" / "contact_sheet.png").is_file() and (odd_dir / "report" / "side_by_side.mp4").is_file()
    assert done["model"] == model and done["retrieval_absolute"] == report["retrieval_absolute"]


@pytest.mark.slow
def test_retrieval_scores_perfectly_on_training_frames(tiny_run, tmp_path):
    from edn_engine.dataset import FrameStore
    from edn_engine.evaluate import evaluate_run, run_dataset_dir

    store = FrameStore(run_dataset_dir(tiny_run))
    frames = store.frames("train")[:5]
    seen, src = store.track, retrieval.source_track(store.dir)
    # Each training pose retrieves its own frame by either rule.
    assert retrieval.retrieve(store, np.stack([seen.body[n - seen.frame_start] for n in frames])) == frames
    assert retrieval.retrieve_absolute(store, np.stack([src.body[n - src.frame_start] for n in frames])) == frames
    result = evaluate_run(tiny_run, tmp_path / "train report", split="train", max_frames=5)
    # Scored at the clip's framing, the detector compares each frame's 64x64 training picture scaled back up with
    # the sharp real frame: the same pose, in every frame, within a few hundredths of a torso (the blur hides
    # most hand and face points, so those figures are not perfect).
    for method in ("retrieval", "retrieval_absolute"):
        r = result[method]
        assert r["person_found"] == 1.0 and r["pose_error"] < 0.08 and r["body_error"] < 0.08, (method, r)
        assert r["ssim_frame"] > result["model"]["ssim_frame"]


@pytest.mark.slow
def test_edn_eval_names_missing_footage_before_generating(tiny_run, tmp_path, monkeypatch):
    """Every run is scored against the clip's own frames: footage moved away, or another clip in its place, is
    named before any generation."""
    from conftest import VIDEO
    from edn_engine import evaluate
    from edn_engine.errors import EdnError
    from edn_engine.evaluate import evaluate_run

    monkeypatch.setattr(evaluate, "_generate", lambda *a: pytest.fail("generated before checking the footage"))
    target, moved = tiny_run.parent / "target.mp4", tiny_run.parent / "target moved.mp4"
    target.rename(moved)
    try:
        with pytest.raises(EdnError, match="target.mp4: input not found"):
            evaluate_run(tiny_run, tmp_path / "report")
        target.symlink_to(VIDEO / "stgcn_ta_chi.mp4")  # another clip in its place
        with pytest.raises(EdnError, match="target.mp4: the footage is 340x256, the dataset was built from"):
            evaluate_run(tiny_run, tmp_path / "report")
    finally:
        target.unlink(missing_ok=True)
        moved.rename(target)
    assert not (tmp_path / "report").exists()


def test_a_retrieved_window_past_the_frames_edge_leaves_no_dark_line_there(tmp_path):
    """The retrieval baselines paste a training frame's window back over the plate. Past the frame's edge that
    window holds black padding, which once came back as a dark line along the frame's edge (the background
    PSNR of the baselines paid for it)."""
    import cv2

    from edn_engine.evaluate import clip_library
    from edn_engine.pose.window import window_framing

    real = np.full((120, 160, 3), 180, np.uint8)
    fr = window_framing((160, 120), (64, 64), (-23.3, -11.6, 151.0, 151.0))  # past the left, top and bottom
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "plate.png"), real)
    cv2.imwrite(str(tmp_path / "frames" / "frame_000000.png"), fr.image(real))

    class Store:
        dir, has_plate, ext = tmp_path, True, ".png"

        def framing(self, n):
            return fr

    shown = clip_library(Store())(0).astype(int)
    assert np.abs(shown - 180).max() <= 2  # the frame's edge rows and columns included
