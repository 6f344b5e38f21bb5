"""The frame writer's worker processes: what they write is `paste`'s output, previews come back in frame order,
a worker's error (a clear one, pickled across) reaches the caller, and workers load no torch and do not outlive
their parent or an error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edn_engine.errors import EdnError
from edn_engine.compositing import paste
from edn_engine.frame_writer import FrameJob, FrameWriter
from edn_engine.pose.window import window_framing
from edn_engine.video import read_image

REPO = Path(__file__).resolve().parents[1]
W, H = 160, 120


def _window(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    win = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    win[..., 3] = np.where(rng.random((32, 32)) < 0.5, 255, 0)
    return win


def test_frames_match_paste_and_previews_come_back_in_order(tmp_path):
    out = tmp_path / "frames ü"  # a space and a non-ASCII character
    (out / "composite").mkdir(parents=True)
    plate = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    frs = [window_framing((W, H), (32, 32), (10.0 * k, 5.0 * k, 64.0, 64.0)) for k in range(7)]
    frs[5] = window_framing((W, H), (32, 32), (W + 10.0, 0.0, 64.0, 64.0))  # wholly outside the frame
    windows = [_window(k) if k != 3 else None for k in range(7)]  # frame 3 has no person
    shown: list[np.ndarray] = []
    with FrameWriter(plate, (W, H), preview=shown.append, depth=2) as writer:
        for k, (fr, win) in enumerate(zip(frs, windows)):
            writer.submit(FrameJob(out / f"frame_{k:06d}.png", fr, win))
    assert len(shown) == 7
    for k, (fr, win) in enumerate(zip(frs, windows)):
        rgba = read_image(out / f"frame_{k:06d}.png", cv2.IMREAD_UNCHANGED)
        comp = read_image(out / "composite" / f"frame_{k:06d}.png")
        want_rgba, want_comp = paste(fr, win, plate) if win is not None else (np.zeros((H, W, 4), np.uint8), plate)
        assert (rgba == want_rgba).all() and (comp == want_comp).all(), k
        assert (shown[k] == want_comp).all(), k  # the preview is this frame's composite, in order

    shown.clear()  # kept frames (--resume) are only read back for the preview, never rewritten
    files = [out / "frame_000001.png", out / "composite" / "frame_000001.png"]
    before = [(f.read_bytes(), f.stat().st_mtime_ns) for f in files]
    with FrameWriter(plate, (W, H), preview=shown.append) as writer:
        writer.submit(FrameJob(files[0], frs[1], kept=True))
    assert (shown[0] == read_image(files[1])).all()
    assert [(f.read_bytes(), f.stat().st_mtime_ns) for f in files] == before


def test_a_whole_frame_writer_scales_the_frame_back_and_writes_no_composite(tmp_path):
    from edn_engine.pose.framing import Framing

    fr = Framing((W, H), (32, 32), "letterbox")
    win = _window(1)
    shown: list[np.ndarray] = []
    with FrameWriter(None, (W, H), preview=shown.append) as writer:
        writer.submit(FrameJob(tmp_path / "frame_000000.png", fr, win))
    rgba = read_image(tmp_path / "frame_000000.png", cv2.IMREAD_UNCHANGED)
    assert (rgba == fr.back(win)).all() and (shown[0] == rgba[..., :3]).all()
    assert not (tmp_path / "composite").exists()


def test_a_worker_error_reaches_the_caller(tmp_path):
    fr = window_framing((W, H), (32, 32), (0.0, 0.0, 64.0, 64.0))
    (tmp_path / "a file").write_text("not a folder")
    with pytest.raises(EdnError, match="a file, not a folder"):
        with FrameWriter(np.zeros((H, W, 3), np.uint8), (W, H)) as writer:
            writer.submit(FrameJob(tmp_path / "a file" / "frame_000000.png", fr, _window(2)))


def test_an_error_in_the_caller_stops_the_workers_without_waiting_for_the_queue(tmp_path):
    fr = window_framing((W, H), (32, 32), (0.0, 0.0, 64.0, 64.0))
    with pytest.raises(KeyboardInterrupt):
        with FrameWriter(np.zeros((H, W, 3), np.uint8), (W, H)) as writer:
            writer.submit(FrameJob(tmp_path / "frame_000000.png", fr, _window(3)))
            workers = list(writer.pool._processes.values())
            raise KeyboardInterrupt
    assert workers and not any(p.is_alive() for p in workers)


@pytest.mark.parametrize("noticed", [False, True])
def test_a_worker_that_dies_is_a_clear_error_naming_the_frame(tmp_path, noticed):
    """Whether the pool has noticed the death before the next frame is submitted (then its submit refuses) or
    only when a frame's result is taken (CI once hit the first)."""
    fr = window_framing((W, H), (32, 32), (0.0, 0.0, 64.0, 64.0))
    with pytest.raises(EdnError, match="frame_00000[0-9].png: a frame-writing process ended abruptly"):
        with FrameWriter(np.zeros((H, W, 3), np.uint8), (W, H), workers=1, depth=1) as writer:
            writer.submit(FrameJob(tmp_path / "frame_000000.png", fr, _window(4)))
            writer.pending[0][1].result()
            os.kill(next(iter(writer.pool._processes)), signal.SIGKILL)
            deadline = time.monotonic() + 30
            while noticed and not writer.pool._broken and time.monotonic() < deadline:
                time.sleep(0.01)
            for k in range(1, 4):
                writer.submit(FrameJob(tmp_path / f"frame_{k:06d}.png", fr, _window(4)))


class _Unstartable:
    """A finisher whose networks cannot be made ready (pickled to the worker by reference to this module)."""

    def start(self, plate, threads=None):
        raise RuntimeError("the refiners cannot be quantized here")


def test_a_finisher_that_cannot_start_is_its_own_error_not_a_dead_worker(tmp_path):
    fr = window_framing((W, H), (32, 32), (0.0, 0.0, 64.0, 64.0))
    with pytest.raises(RuntimeError, match="the refiners cannot be quantized here"):
        with FrameWriter(np.zeros((H, W, 3), np.uint8), (W, H), workers=1, finisher=_Unstartable()) as writer:
            writer.submit(FrameJob(tmp_path / "frame_000000.png", fr, unfinished="a body frame"))
    assert not (tmp_path / "frame_000000.png").exists()


_KILLED_PARENT = """
import os, signal, sys
import numpy as np
from edn_engine.frame_writer import FrameJob, FrameWriter
from edn_engine.pose.window import window_framing

def torch_loaded():
    return "torch" in sys.modules

if __name__ == "__main__":
    out = sys.argv[1]
    fr = window_framing((64, 48), (16, 16), (0.0, 0.0, 32.0, 32.0))
    writer = FrameWriter(np.zeros((48, 64, 3), np.uint8), (64, 48), workers=2).__enter__()
    writer.submit(FrameJob(__import__("pathlib").Path(out) / "frame_000000.png", fr, np.zeros((16, 16, 4), np.uint8)))
    writer.pending[0][1].result()
    print(writer.pool.submit(torch_loaded).result(), *writer.pool._processes, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and /proc")
def test_workers_load_no_torch_and_exit_when_their_parent_is_killed(tmp_path):
    (tmp_path / "composite").mkdir()
    script = tmp_path / "parent.py"
    script.write_text(_KILLED_PARENT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    loaded, *pids = proc.stdout.split()
    assert loaded == "False" and pids
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(int(p)) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(int(p)) for p in pids)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_the_writer_count_follows_the_generators_own_threads(monkeypatch):
    """On 2 cores a one-thread generator gets two writers beside it; one the user gave two threads
    (OMP_NUM_THREADS=2) gets one, which would otherwise displace a thread of its team."""
    from edn_engine import frame_writer

    monkeypatch.setattr(frame_writer, "physical_cores", lambda: 2)
    assert FrameWriter(None, (W, H), generator_threads=1).workers == 2
    assert FrameWriter(None, (W, H), generator_threads=2).workers == 1
    assert FrameWriter(None, (W, H), generator_on_cpu=False).workers == 1
