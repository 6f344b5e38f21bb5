"""The background plate (`edn_engine.plate`, `edn plate`): synthetic clips with exact mattes, then real footage.

Real clips are read as small image folders (a few dozen frames, downscaled) so detection stays cheap.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VIDEO
from edn_engine.cli import main
from edn_engine.errors import EdnError
from edn_engine.plate import Plate, PlateConfig, estimate_plate, load_plate, mask_path
from edn_engine.video import open_source, write_image

H, W = 72, 96
PERSON = (0, 0, 255)


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A background with edges everywhere (blurred noise), so any misplacement shows."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (3, 3), 0)


def write_clip(folder: Path, frames: list[np.ndarray], mattes: list[np.ndarray]) -> tuple[Path, Path]:
    """frames/f_NNNN.png and mattes/matte_NNNNNN.png, numbered 0, 1, 2..."""
    (folder / "frames").mkdir(parents=True)
    (folder / "mattes").mkdir()
    for i, (f, m) in enumerate(zip(frames, mattes)):
        write_image(folder / "frames" / f"f_{i:04d}.png", f)
        write_image(folder / "mattes" / f"matte_{i:06d}.png", m)
    return folder / "frames", folder / "mattes"


def moving_box(bg: np.ndarray, xs: list[int], w: int = 30) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A red box "person" at column x of each frame, rows 16..56, with its exact matte."""
    frames, mattes = [], []
    for x in xs:
        f, m = bg.copy(), np.zeros(bg.shape[:2], np.uint8)
        f[16:56, x:x + w] = PERSON
        m[16:56, x:x + w] = 255
        frames.append(f)
        mattes.append(m)
    return frames, mattes


# -- synthetic clips -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("matte_format", ["grey", "rgba"])
def test_plate_is_the_background_and_masks_what_is_never_uncovered(tmp_path, matte_format):
    bg = texture(H, W)
    xs = list(range(10, 30))  # box 30 wide: columns 29..39 are covered in every frame
    frames, mattes = moving_box(bg, xs)
    if matte_format == "rgba":  # the matte in the alpha, colour channels saying nothing
        mattes = [np.dstack([np.full_like(m, 255)] * 3 + [m]) for m in mattes]
    clip, mdir = write_clip(tmp_path, frames, mattes)
    config = PlateConfig(margin=0.03)  # 2 px at 72 rows
    plate = estimate_plate(clip, mdir, config=config)

    assert plate.image.shape == (H, W, 3) and plate.mask.shape == (H, W) and plate.frames == list(range(20))
    seen = plate.mask == 0
    assert np.abs(plate.image.astype(int) - bg)[seen].max() <= 1
    always = np.zeros((H, W), bool)
    always[16:56, 29:40] = True
    assert (plate.mask[always] == 255).all()
    near = cv2.dilate(always.view(np.uint8), np.ones((9, 9), np.uint8)) > 0  # margin + min_share's 2 frames
    assert not (plate.mask > 0)[~near].any()
    assert plate.static and plate.usable and plate.reason == "" and plate.residual <= 1
    assert 1 - near.mean() <= plate.uncovered <= 1 - always.mean()


def test_median_ignores_frames_whose_matte_missed_the_person(tmp_path):
    bg = texture(H, W, seed=1)
    xs = list(range(0, 60, 3))
    frames, mattes = moving_box(bg, xs, w=20)
    for i in (3, 9, 15):  # the detector missed the person: empty mattes, the red box counted as background
        mattes[i][:] = 0
    clip, mdir = write_clip(tmp_path, frames, mattes)
    plate = estimate_plate(clip, mdir, config=PlateConfig(margin=0.0))
    covered = np.zeros((H, W), int)
    for x in xs:
        covered[16:56, x:x + 20] += 1
    good = (len(xs) - covered) >= 7  # true background in more frames than twice the 3 bad ones
    assert good.sum() > 0.8 * H * W
    assert np.abs(plate.image.astype(int) - bg)[good].max() <= 1


def test_panning_camera_is_not_static(tmp_path):
    wide = texture(H, W + 40, seed=2)
    frames = [wide[:, 2 * i:2 * i + W].copy() for i in range(20)]  # 2 px per frame to the left
    mattes = [np.zeros((H, W), np.uint8) for _ in frames]
    for i, (f, m) in enumerate(zip(frames, mattes)):
        f[20:50, 3 * i:3 * i + 12] = PERSON
        m[20:50, 3 * i:3 * i + 12] = 255
    clip, mdir = write_clip(tmp_path / "pan clip", frames, mattes)
    plate = estimate_plate(clip, mdir)
    assert not plate.static and not plate.usable
    assert plate.residual > PlateConfig().static_threshold
    assert "camera" in plate.reason and len(plate.warnings) == 1
    assert str(clip) in plate.warnings[0] and f"{plate.residual:.1f}" in plate.warnings[0]


def test_person_who_never_moves_gives_no_usable_plate(tmp_path):
    frames, mattes = moving_box(texture(H, W, seed=3), [40] * 12)
    clip, mdir = write_clip(tmp_path, frames, mattes)
    plate = estimate_plate(clip, mdir)
    assert plate.static and not plate.usable and "hardly moves" in plate.reason
    box = np.zeros((H, W), bool)
    box[16:56, 40:70] = True
    assert (plate.mask[box] == 255).all()
    huge, huge_mattes = moving_box(texture(H, W, seed=3), list(range(0, 10)), w=80)  # 80 of 96 columns, always
    clip2, mdir2 = write_clip(tmp_path / "huge", huge, huge_mattes)
    big = estimate_plate(clip2, mdir2)
    assert not big.usable and "never uncovers" in big.reason and big.uncovered < 0.75


def test_range_sampling_and_save_load(tmp_path):
    bg = texture(H, W, seed=4)
    frames, mattes = moving_box(bg, list(range(0, 60, 2)))
    clip, mdir = write_clip(tmp_path, frames, mattes)
    plate = estimate_plate(clip, mdir, start=4, end=25, config=PlateConfig(max_frames=8))
    assert len(plate.frames) == 8 and plate.frames[0] == 4 and plate.frames[-1] == 25
    png = tmp_path / "out" / "plate.png"
    written = plate.save(png)
    assert written == (png, tmp_path / "out" / "plate_mask.png") == (png, mask_path(png))
    back = load_plate(png, summary=json.loads(json.dumps(plate.summary())))
    assert np.array_equal(back.image, plate.image) and np.array_equal(back.mask, plate.mask)
    assert (back.residual, back.static, back.usable, back.frames) == (plate.residual, True, True, plate.frames)
    assert back.uncovered == pytest.approx(plate.uncovered)


def test_bad_mattes_are_named(tmp_path):
    frames, mattes = moving_box(texture(H, W), list(range(0, 20, 2)))
    clip, mdir = write_clip(tmp_path, frames, mattes)
    with pytest.raises(EdnError, match="mattes folder not found"):
        estimate_plate(clip, tmp_path / "nope")
    for i in range(5, 10):
        (mdir / f"matte_{i:06d}.png").unlink()
    with pytest.raises(EdnError, match=r"mattes: no matte_NNNNNN.png for frames 5..9 of "):
        estimate_plate(clip, mdir, start=5)
    write_image(mdir / "matte_000004.png", np.zeros((H // 2, W // 2), np.uint8))
    with pytest.raises(EdnError, match=r"matte_000004.png, frame 4: the matte is 48x36 but the footage is 96x72"):
        estimate_plate(clip, mdir)


# -- the command line ----------------------------------------------------------------------------------------------
def test_cli_writes_plate_and_mask(tmp_path, odd_dir, capsys):
    frames, mattes = moving_box(texture(H, W, seed=5), list(range(0, 60, 3)))
    clip, mdir = write_clip(tmp_path, frames, mattes)
    out = odd_dir / "plate ü.png"
    assert main(["plate", str(clip), "-o", str(out), "--mattes", str(mdir), "--json"]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "done" and done["static"] is True and done["usable"] is True
    assert done["mask"] == str(odd_dir / "plate ü_mask.png") and done["frames"] == 20
    assert load_plate(out).image.shape == (H, W, 3)
    assert sorted(p.name for p in odd_dir.iterdir()) == ["plate ü.png", "plate ü_mask.png"]  # no temporary left


def test_cli_refuses_unwritable_or_misplaced_outputs_before_work(tmp_path, capsys):
    frames, mattes = moving_box(texture(H, W), list(range(0, 20, 2)))
    clip, mdir = write_clip(tmp_path, frames, mattes)
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    assert main(["plate", str(clip), "-o", str(blocker / "plate.png"), "--mattes", str(mdir)]) == 2
    assert "a file, not a folder" in capsys.readouterr().err
    assert main(["plate", str(clip), "-o", str(tmp_path / "plate.jpg"), "--mattes", str(mdir)]) == 2
    assert "must be a .png file" in capsys.readouterr().err
    assert main(["plate", str(clip), "-o", str(clip / "plate.png"), "--mattes", str(mdir)]) == 2
    assert "input" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "frames", "mattes"]


def test_cli_refuses_a_missing_or_undecodable_input_before_detecting(tmp_path, capsys):
    """Without --mattes the command detects the person first (minutes): a bad input is said before that."""
    assert main(["plate", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert "missing.mp4: input not found" in err and "detecting" not in err
    (tmp_path / "notes.mp4").write_text("not a video")
    assert main(["plate", str(tmp_path / "notes.mp4"), "-o", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert "not a video file" in err and "detecting" not in err


# -- real footage --------------------------------------------------------------------------------------------------
def small_copy(video: Path, folder: Path, step: int, count: int, width: int) -> Path:
    """Every `step`-th frame of `video` (up to `count`), downscaled to `width`, as an image folder."""
    folder.mkdir(parents=True)
    kept = 0
    for n, img in open_source(video):
        if n % step == 0:
            h = round(img.shape[0] * width / img.shape[1] / 2) * 2
            write_image(folder / f"f_{kept:04d}.png", cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA))
            kept += 1
            if kept == count:
                break
    return folder


def real_plate(tmp_path: Path, name: str, step: int, width: int) -> tuple[Plate, Path, Path]:
    from edn_engine.pose.detect import extract_pose

    clip = small_copy(VIDEO / name, tmp_path / "frames", step, 40, width)
    extract_pose(clip, mattes_dir=tmp_path / "mattes")
    return estimate_plate(clip, tmp_path / "mattes"), clip, tmp_path / "mattes"


def test_real_static_clip_gives_a_clean_plate(data_dir, tmp_path):
    plate, clip, mattes = real_plate(tmp_path, "romp_sample2.mp4", 4, 480)  # white studio, tripod
    assert plate.static and plate.usable, plate.reason
    assert plate.residual <= 3 and plate.uncovered > 0.9  # 2.0 measured; the threshold is 6
    frame = cv2.imread(str(clip / "f_0010.png"))
    person = cv2.imread(str(mattes / "matte_000010.png"), 0) > 127
    # Where the person stands in that frame, the plate shows the bright studio, not her (dark trousers, skin).
    assert plate.image[person].mean() > frame[person].mean() + 40 and plate.image[person].mean() > 180


def test_real_textured_static_clip_is_static_and_a_shaken_copy_is_not(data_dir, tmp_path):
    # musev's background does not move (under 0.2 px over the clip, measured by phase correlation), though its
    # street scene has edges everywhere: the edge residual must stay low. Shaking the same frames by up to 1% of
    # the height, as a handheld camera does, must be caught.
    plate, clip, mattes = real_plate(tmp_path, "musev_dance_boy.mp4", 4, 294)
    assert plate.static and plate.edge_residual is not None and plate.edge_residual < 4, plate.reason
    rng = np.random.default_rng(0)
    shaken = tmp_path / "shaken"
    for sub in ("frames", "mattes"):
        (shaken / sub).mkdir(parents=True)
    for i, f in enumerate(sorted(clip.iterdir())):
        img, m = cv2.imread(str(f)), cv2.imread(str(mattes / f"matte_{i:06d}.png"), 0)
        shift = np.float32([[1, 0, rng.uniform(-5, 5)], [0, 1, rng.uniform(-5, 5)]])
        warp = lambda a: cv2.warpAffine(a, shift, a.shape[1::-1], borderMode=cv2.BORDER_REFLECT)  # noqa: E731
        write_image(shaken / "frames" / f.name, warp(img))
        write_image(shaken / "mattes" / f"matte_{i:06d}.png", warp(m))
    moved = estimate_plate(shaken / "frames", shaken / "mattes")
    assert not moved.static and not moved.usable and moved.edge_residual > PlateConfig().edge_threshold
    assert moved.residual < PlateConfig().static_threshold  # the flat parts alone would not tell


def test_real_drifting_camera_is_not_static(data_dir, tmp_path):
    # hybrik_taiji's camera creeps by about 2% of the height over the clip (door frames doubled when frame 0
    # and frame 340 are overlaid): its plate is blurred and must be refused.
    plate, _, _ = real_plate(tmp_path, "hybrik_taiji.mp4", 10, 640)
    assert not plate.static and not plate.usable and "camera" in plate.reason
    assert plate.edge_residual > PlateConfig().edge_threshold and plate.residual <= 6


def test_cli_detects_mattes_itself_and_cleans_up(data_dir, tmp_path, monkeypatch, capsys):
    clip = small_copy(VIDEO / "ubc_91BjuE6irxS.mp4", tmp_path / "ubc", 8, 16, 208)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "out" / "plate.png"
    assert main(["plate", str(clip), "-o", str(out), "--json"]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "done" and done["static"] is True and done["residual"] <= 2
    assert out.is_file() and (tmp_path / "out" / "plate_mask.png").is_file()
    assert list(scratch.iterdir()) == []
