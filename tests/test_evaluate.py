"""Evaluation: the metric functions on arrays, and `edn eval` on a tiny trained run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")  # the engine's Python; the Blender 4.2 test venv has only bpy and numpy
pytest.importorskip("cv2")

from edn_engine import metrics  # noqa: E402
from edn_engine.evaluate import FIGURES, Sample, score  # noqa: E402


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
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
    assert list(metrics.nearest_poses(query[None], lib)) == [1]
    assert list(metrics.nearest_poses(lib, lib)) == [0, 1]


def test_score_gives_every_figure():
    reals = [_image(s) for s in range(3)]
    mattes = [np.full((64, 64), 255, np.uint8) for _ in range(3)]
    samples = [Sample(n, r, m, (8, 8, 40, 40)) for n, (r, m) in enumerate(zip(reals, mattes))]
    pose = np.stack([metrics.flat_pose(_pose(20), np.zeros((2, 21, 3)), np.zeros((70, 3)))] * 3)
    perfect = score(samples, reals, pose, pose)
    assert perfect["ssim_frame"] == pytest.approx(1.0) and perfect["ssim_person"] == pytest.approx(1.0)
    assert perfect["ssim_face"] == pytest.approx(1.0) and perfect["pose_error"] == 0.0
    assert perfect["missed_rate"] == 0.0 and perfect["flicker"] == pytest.approx(1.0)
    frozen = score(samples, [reals[0]] * 3, pose, pose)
    assert frozen["flicker"] == 0.0 and frozen["ssim_frame"] < 1.0


# -- `edn eval` on a tiny trained run -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import VIDEO
    from test_transfer import clip, edn

    d = tmp_path_factory.mktemp("eval run")
    target = clip(VIDEO / "ubc_91BjuE6irxS.mp4", d / "target.mp4", 14)
    edn("dataset", "build", target, "-o", d / "dataset", "--size", "64x64", "--holdout", "0.3")
    edn("train", d / "dataset", "-o", d / "run", "--steps", "2", "--perceptual", "none", "--face-fraction", "0")
    return d / "run"


@pytest.mark.slow
def test_edn_eval_gives_every_figure_for_model_and_retrieval(tiny_run, odd_dir):
    import json

    from test_transfer import edn

    done = edn("eval", tiny_run, "-o", odd_dir / "report")[-1]
    report = json.loads((odd_dir / "report" / "report.json").read_text())
    assert set(report) == {"frames", "model", "retrieval"} and report["frames"] == 4
    for method in ("model", "retrieval"):
        assert set(report[method]) == set(FIGURES)
    assert all(isinstance(v, float) for v in report["retrieval"].values())
    model = report["model"]
    assert all(isinstance(model[k], float) for k in FIGURES if k != "pose_error")
    # An untrained generator may show no person at all; then the pose error is undefined and all are missed.
    assert isinstance(model["pose_error"], float) or model["missed_rate"] == 1.0
    assert -1 <= model["ssim_person"] < report["retrieval"]["ssim_person"] <= 1
    assert (odd_dir / "report" / "contact_sheet.png").is_file() and (odd_dir / "report" / "side_by_side.mp4").is_file()
    assert done["model"] == model


@pytest.mark.slow
def test_retrieval_scores_perfectly_on_training_frames(tiny_run, tmp_path):
    from edn_engine.evaluate import evaluate_run

    result = evaluate_run(tiny_run, tmp_path / "train report", split="train", max_frames=5)
    r = result["retrieval"]
    # Each training pose retrieves its own frame: the detector sees the same image, so the metric must give 0.
    assert r["pose_error"] == 0.0 and r["missed_rate"] == 0.0
    assert r["ssim_frame"] == pytest.approx(1.0) and r["psnr_frame"] == metrics.PSNR_CAP
    assert r["flicker"] == pytest.approx(1.0)
