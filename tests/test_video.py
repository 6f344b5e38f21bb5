"""Frame sources and writers (`edn_engine.video`) on real footage: ranges, image folders, bad input, atomic output."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VIDEO
from edn_engine.errors import EdnError
from edn_engine.video import natural_key, open_source, prefetch, read_image, write_image, write_png_fast
from edn_engine.video_out import VideoWriter, write_video

UBC = VIDEO / "ubc_91BjuE6irxS.mp4"  # 345 frames, 414x540, moov atom at the front (a cut copy still opens)


def real_frames(n: int, start: int = 0) -> list[np.ndarray]:
    return [img for _, img in open_source(UBC, start, start + n - 1)]


def image_folder(folder: Path, names: list[str], frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, frames):
        write_image(folder / name, img)
    return folder


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.is_file()]


# -- videos ------------------------------------------------------------------------------------------------------
def test_video_range_numbers_frames_from_the_source():
    src = open_source(UBC, start=100, end=104)
    assert (src.width, src.height) == (414, 540)
    assert src.fps == pytest.approx(29.97, abs=0.01)
    assert (src.first_frame, src.last_frame, src.frame_count) == (100, 104, 5)
    got = list(src)
    assert [n for n, _ in got] == [100, 101, 102, 103, 104]
    assert all(img.dtype == np.uint8 and img.shape == (540, 414, 3) for _, img in got)
    # The frames are the ones a full decode gives at those positions (seeking is exact).
    full = [img for n, img in open_source(UBC, end=104) if n >= 100]
    assert all(np.array_equal(a, b) for (_, a), b in zip(got, full))


def test_end_past_the_last_frame_is_clamped_and_bad_ranges_are_errors():
    src = open_source(UBC, start=340, end=10_000)
    assert src.frame_count == 5 and [n for n, _ in src] == [340, 341, 342, 343, 344]
    with pytest.raises(EdnError, match="past the last frame"):
        open_source(UBC, start=345)
    with pytest.raises(EdnError, match="before --start"):
        open_source(UBC, start=10, end=5)
    with pytest.raises(EdnError, match="0 or more"):
        open_source(UBC, start=-1)


def test_missing_input_names_the_path(odd_dir):
    missing = odd_dir / "nope.mp4"
    with pytest.raises(EdnError) as err:
        open_source(missing)
    assert str(missing) in str(err.value) and "not found" in str(err.value)


def test_a_text_file_named_mp4_is_not_a_video(odd_dir):
    fake = odd_dir / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(EdnError) as err:
        open_source(fake)
    assert str(fake) in str(err.value) and "not a video" in str(err.value)


def test_a_video_without_frames_is_an_error(odd_dir):
    empty = odd_dir / "empty.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48)).release()  # header, no frames
    assert empty.is_file()
    with pytest.raises(EdnError) as err:
        open_source(empty)
    assert str(empty) in str(err.value)


def test_truncated_mp4_reports_the_last_good_frame(odd_dir):
    cut = odd_dir / "cut clip.mp4"
    data = UBC.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.4)])
    src = open_source(cut)
    assert src.frame_count == 345  # the container still declares the whole clip
    seen = []
    with pytest.raises(EdnError) as err:
        for n, _ in src:
            seen.append(n)
    bad = err.value.frame
    assert 0 < bad < 345 and seen[-1] == bad - 1
    assert str(cut) in str(err.value) and "truncated" in str(err.value) and f"--end {bad - 1}" in str(err.value)
    # The workaround the message gives works: the good part reads cleanly.
    assert [n for n, _ in open_source(cut, end=bad - 1)][-1] == bad - 1
    # Starting past the damage fails at once, with the same diagnosis.
    with pytest.raises(EdnError, match="truncated"):
        list(open_source(cut, start=bad + 20))


def test_write_video_round_trip_and_atomicity(odd_dir):
    frames = real_frames(6)
    out = odd_dir / "clip ü.mp4"
    assert write_video(out, frames, fps=25) == 6
    back = open_source(out)
    assert (back.width, back.height, back.frame_count) == (414, 540, 6) and back.fps == pytest.approx(25)
    decoded = [img for _, img in back]
    assert len(decoded) == 6
    assert np.abs(decoded[3].astype(int) - frames[3].astype(int)).mean() < 8  # lossy codec, same picture
    assert no_temp_files(odd_dir)

    # A failure half-way leaves neither the target nor a temporary file.
    broken = odd_dir / "broken.mp4"

    def frames_then_fail():
        yield frames[0]
        yield frames[1]
        raise EdnError("renderer failed", frame=2)

    with pytest.raises(EdnError, match="renderer failed"):
        write_video(broken, frames_then_fail(), fps=25)
    assert not broken.exists() and no_temp_files(odd_dir)

    # A frame of another size is refused, naming the frame.
    with pytest.raises(EdnError, match="frame 1 is 207x270"):
        with VideoWriter(odd_dir / "sizes.mp4", fps=30) as w:
            w.write(frames[0])
            w.write(cv2.resize(frames[1], (207, 270)))
    assert not (odd_dir / "sizes.mp4").exists()


# -- images and image folders ------------------------------------------------------------------------------------
def test_read_and_write_images_on_non_ascii_paths(odd_dir):
    img = real_frames(1)[0]
    path = write_image(odd_dir / "Bild ü 舞.png", img)
    assert np.array_equal(read_image(path), img)
    grey = read_image(path, cv2.IMREAD_GRAYSCALE)
    assert grey.shape == img.shape[:2]
    assert no_temp_files(odd_dir)


def test_fast_png_is_lossless_in_every_channel_layout(odd_dir):
    """Generated frames go through fpng: BGR and BGRA come back exact (alpha kept, channels in order), and a
    one-channel image still writes, through OpenCV."""
    bgr = real_frames(1)[0]
    alpha = np.zeros(bgr.shape[:2], np.uint8)
    alpha[10:60, 20:90] = 255
    alpha[30:40] = 128
    for img in (bgr, np.dstack([bgr, alpha]), alpha):
        path = write_png_fast(odd_dir / f"frame ü {img.ndim}{img.shape[-1]}.png", img)
        assert np.array_equal(read_image(path, cv2.IMREAD_UNCHANGED), img)
    assert no_temp_files(odd_dir)


def test_natural_order_and_trailing_frame_numbers(odd_dir):
    assert sorted(["frame10.png", "frame2.png", "frame1.png"], key=natural_key) == \
        ["frame1.png", "frame2.png", "frame10.png"]
    frames = real_frames(4, start=50)
    names = ["shot_9.png", "shot_10.png", "shot_11.png", "shot_12.png"]
    folder = image_folder(odd_dir / "seq", names, frames)
    src = open_source(folder, fps=24)
    assert (src.first_frame, src.frame_count, src.fps, src.width, src.height) == (9, 4, 24.0, 414, 540)
    got = list(src)
    assert [n for n, _ in got] == [9, 10, 11, 12]
    assert all(np.array_equal(a, b) for (_, a), b in zip(got, frames))  # PNG is lossless
    assert [n for n, _ in open_source(folder, start=10, end=11)] == [10, 11]
    with pytest.raises(EdnError, match="no image has a frame number"):
        open_source(folder, start=100)


def test_names_without_usable_numbers_are_numbered_by_position(odd_dir):
    frames = real_frames(3)
    folder = image_folder(odd_dir / "named", ["a.png", "b.png", "c.jpg"], frames)
    assert [n for n, _ in open_source(folder)] == [0, 1, 2]
    # Numbers far apart (timestamps) are not frame numbers either.
    folder2 = image_folder(odd_dir / "stamps", ["img_20240101.png", "img_20240305.png"], frames[:2])
    assert [n for n, _ in open_source(folder2)] == [0, 1]


def test_image_sequences_of_other_depths_become_bgr8(odd_dir):
    img = real_frames(1)[0]
    folder = odd_dir / "depths"
    write_image(folder / "f_0.png", (img.astype(np.uint16) * 257))  # 16-bit
    write_image(folder / "f_1.png", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))  # grey
    write_image(folder / "f_2.png", cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))  # with alpha
    got = [im for _, im in open_source(folder)]
    assert all(g.dtype == np.uint8 and g.shape == img.shape for g in got)
    assert np.array_equal(got[0], img) and np.array_equal(got[2], img)


def test_empty_image_folder_is_an_error(odd_dir):
    (odd_dir / "empty").mkdir()
    (odd_dir / "empty" / "readme.txt").write_text("no frames here")
    with pytest.raises(EdnError) as err:
        open_source(odd_dir / "empty")
    assert "no images" in str(err.value) and str(odd_dir / "empty") in str(err.value)


def test_mixed_image_sizes_name_the_first_odd_file(odd_dir):
    frames = real_frames(3)
    frames[2] = cv2.resize(frames[2], (200, 260))
    folder = image_folder(odd_dir / "mixed", ["f_001.png", "f_002.png", "f_003.png"], frames)
    with pytest.raises(EdnError) as err:
        list(open_source(folder))
    msg = str(err.value)
    assert "f_003.png" in msg and "200x260" in msg and "frame 3" in msg and err.value.frame == 3


def test_unreadable_image_names_file_and_frame(odd_dir):
    folder = image_folder(odd_dir / "bad", ["f_1.png", "f_2.png"], real_frames(2))
    (folder / "f_2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    with pytest.raises(EdnError) as err:
        list(open_source(folder))
    assert "f_2.png" in str(err.value) and err.value.frame == 2 and "not a readable image" in str(err.value)


def test_prefetch_keeps_order_and_passes_errors_on():
    src = open_source(UBC, end=9)
    assert [n for n, _ in prefetch(src, depth=2)] == list(range(10))

    def failing():
        yield 1
        raise EdnError("decoder broke", frame=2)

    got = []
    with pytest.raises(EdnError, match="decoder broke"):
        for x in prefetch(failing()):
            got.append(x)
    assert got == [1]


def test_a_damaged_video_is_one_line_without_opencv_or_ffmpeg_noise(tmp_path):
    """OpenCV and FFmpeg's own warnings ("[ WARN:0] ...", "moov atom not found") are silenced in every command (the
    package sets their levels before any module loads cv2); EDN_DEBUG shows them."""
    import subprocess

    from conftest import ENGINE_PYTHON

    bad = tmp_path / "bad vidéo.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    cmd = [ENGINE_PYTHON, "-m", "edn_engine", "pose", "extract", str(bad), "-o", str(tmp_path / "t.npz")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_") and k != "EDN_DEBUG"}
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode != 0 and quiet.stderr.splitlines() == [
        f"edn: error: {bad}: not a video file OpenCV can decode (unknown format, or the file is damaged)"]
    loud = subprocess.run(cmd, capture_output=True, text=True, env={**env, "EDN_DEBUG": "1"}, timeout=120)
    assert len(loud.stderr.splitlines()) > 1
