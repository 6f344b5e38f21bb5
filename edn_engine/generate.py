"""Generation: a trained run plus a pose track -> RGBA frames of the target person, one PNG per source frame.

The track is in the target's frame size (`edn pose drive` maps another dancer's motion there first); the run's
frame plan (`pose.window.FramePlan`, recorded by its dataset) maps it to the training size as the dataset mapped
the target's frames. The generator runs frame by frame and is fed its own previous output, as in training
(temporal smoothing); the Face GAN, when trained, refines the face crop.

Person over plate (a window plan): the window follows the driving pose by the dataset's rule; the window's
person (colour and alpha) is scaled back into the full frame. OUT/frame_NNNNNN.png is the person alone, RGBA at
the clip's full resolution and transparent elsewhere (what the Sequencer strip shows over any plate), and
OUT/composite/frame_NNNNNN.png the same over the run's background plate (previews, evaluation). Whole-frame runs
(a moving camera) write their training frame scaled back to the clip's framing: RGBA at the clip's resolution too,
so the strips of either line up with the footage.

Frames are written atomically as `frame_NNNNNN.png` (source numbering) by background threads and never held in
memory together. A frame with no pose is written fully transparent and restarts the temporal chain (the next
frame is generated from zeros, like a first frame). `resume`: frames already on disk are kept, and the last one
is read back as the previous output of the next; being 8-bit (and, for a whole-frame run, scaled up and back
down), that is not bit-identical to an uninterrupted run, but visually the same.
"""

from __future__ import annotations

import collections
import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from . import device as devices
from .errors import EdnError
from .events import Reporter
from .inference import Run, Synthesizer, load_run
from .pose.face import face_centre
from .pose.follow import frame_ranges
from .pose.framing import Mipmap
from .pose.track import PoseTrack
from .pose.window import frame_track
from .tensors import stick_figure, to_image, to_tensor


def generate(run_dir: str | Path, track_path: str | Path, output: str | Path, *, video: str | Path | None = None,
             resume: bool = False, device: str = "auto", amp: bool = True,
             reporter: Reporter | None = None) -> dict:
    """Write RGBA frames for every row of the track; returns the summary `edn generate` prints."""
    from .outputs import FRAMES, check_output_file, check_output_folder, staged_folder

    reporter = reporter or Reporter(False)
    track = PoseTrack.load(track_path)
    present = (track.body[..., 2] > 0).any(axis=1)
    if not present.any():
        raise EdnError("the track has no person in any frame: nothing to generate", path=track_path)
    output = check_output_folder(output, FRAMES, "frames folder", inputs=(run_dir, track_path))
    if video is not None:
        check_output_file(video, ".mp4", "preview video")
    run = load_run(run_dir, device, reporter)
    # Frames go to a folder beside OUT, swapped in when all are written. An interrupted run leaves it for
    # --resume; a run without --resume starts afresh, so no frame of an older, longer track survives.
    with staged_folder(output, keep_on_failure=True, continue_from=resume) as build:
        counts = _generate_frames(run, track, present, build, video, resume, amp, reporter)
    return {
        "output": str(output), "frames": track.frames, **counts,
        "size": [track.width, track.height],
        "framing": run.plan.mode,
        "composite": str(output / "composite") if run.plan.windowed else None,
        "first_frame": track.frame_start, "last_frame": track.frame_start + track.frames - 1,
        "checkpoint": str(run.checkpoint), "step": run.step, "face_gan": run.FG is not None,
        "video": str(video) if video is not None else None, "device": devices.describe(run.device),
    }


def _generate_frames(run: Run, track: PoseTrack, present: np.ndarray, output: Path, video: Path | None,
                     resume: bool, amp: bool, reporter: Reporter) -> dict:
    """Generate every row of `track` into `output`; returns the counts of frames written, empty (no pose), kept
    (--resume) and outside (a pose that puts the person wholly off the frame: written, but transparent)."""
    from .video import read_image
    from .video_out import VideoWriter

    plan = run.plan
    if (track.width, track.height) != tuple(plan.src_size):
        reporter.log(f"warning: the track is {track.width}x{track.height}, the training footage was "
                     f"{plan.src_size[0]}x{plan.src_size[1]}; framing the track on its own (drive it to the "
                     "target with `edn pose drive` for the person's scale to match)")
        plan = plan.for_source((track.width, track.height))
    framings = plan.framings(track)
    framed = frame_track(track, framings)
    plate = _plate_for(run, (track.width, track.height)) if plan.windowed else None
    plate_mip = Mipmap(plate) if plate is not None else None  # the plate, cut into every frame's window
    synth = Synthesizer(run.G, run.FG, run.cfg, run.device, amp=amp, alpha=run.mattes)
    w, h = track.width, track.height
    if plate is not None:
        (output / "composite").mkdir(exist_ok=True)

    counts = {"written": 0, "empty": 0, "kept": 0}
    outside: list[int] = []  # frames whose driving pose puts the whole window off the frame: nothing to paste
    writer = VideoWriter(video, track.fps) if video is not None else None
    with writer if writer is not None else contextlib.nullcontext(), _BackgroundWrites() as frames_out:
        for i in range(track.frames):
            n = track.frame_start + i
            path, fr = output / f"frame_{n:06d}.png", framings[i]
            window = torch.tensor(fr.window) if fr.window is not None else None
            comp = None
            if not present[i]:
                rgba, comp = np.zeros((h, w, 4), np.uint8), plate
                synth.reset()
                counts["empty"] += 1
            elif resume and path.is_file():
                rgba = read_image(path, cv2.IMREAD_UNCHANGED)
                if rgba.ndim != 3 or rgba.shape[:2] != (h, w) or rgba.shape[2] != 4:
                    raise EdnError(f"existing frame is not a {w}x{h} RGBA image; remove it or the folder",
                                   path=path, frame=n)
                shown = fr.image(rgba[..., :3] if plate is None else over(rgba, plate))
                synth.set_previous(to_tensor(shown), window)
                counts["kept"] += 1
                rgba = None  # kept as it is on disk
            else:
                c = face_centre(framed.body[i], framed.face[i])
                plate_crop = to_tensor(plate_mip.image(fr)) if plate is not None else None
                rgb, alpha = synth.next_frame(to_tensor(stick_figure(framed, i)),
                                              torch.tensor(c) if c is not None else None, plate_crop, window)
                rgba = np.dstack([to_image(rgb), (alpha[0].clamp(0, 1) * 255).round().byte().numpy()])
                counts["written"] += 1
                if plate is None:
                    rgba = fr.back(rgba)  # the whole training frame, back at the clip's framing
                else:  # the window's person, back in the full frame
                    if fr.source_roi() is None:
                        outside.append(n)
                    rgba, comp = paste(fr, rgba, plate)
            if rgba is not None:
                frames_out.write(path, rgba)
                if comp is not None:
                    frames_out.write(output / "composite" / path.name, comp)
            if writer is not None:
                if rgba is None:  # kept from an earlier run
                    comp = read_image(output / "composite" / path.name) if plate is not None else None
                    rgba = read_image(path, cv2.IMREAD_UNCHANGED) if plate is None else None
                writer.write(comp if plate is not None else rgba[..., :3])
            reporter.progress(i + 1, track.frames, stage="generate", frame=n)
    if outside:
        reporter.log(f"warning: the driving pose puts the person's window wholly outside the frame in {len(outside)} "
                     f"frames, written transparent: frames {frame_ranges(outside)}")
    return {**counts, "outside": len(outside)}


def paste(fr, window_rgba: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The window's RGBA back in the full frame (transparent elsewhere), and that over the plate. Only the
    rectangle the window covers is resampled and blended: the rest is zeros, and the plate as it is.

    The window is resampled premultiplied (colour times alpha), as compositors do. Resampled straight, the
    person's edge took colour from the pixels beside it that alpha hides (the generator's colour there is
    whatever it learned nowhere to fix), and the window's own edge faded to black: a dark seam where the
    person, or an opaque retrieved frame, reaches it. The premultiplied colour is 8-bit, so the straight colour
    written where alpha is small is coarse (at alpha 8 of 255, within about 16 levels); multiplied by alpha
    again, as any compositor does, it is within a level."""
    h, w = plate.shape[:2]
    rgba, comp = np.zeros((h, w, 4), np.uint8), plate.copy()
    roi = fr.source_roi()
    if roi is not None:
        x0, y0, x1, y1 = roi
        a = window_rgba[..., 3:].astype(np.uint16)
        premultiplied = np.dstack([(window_rgba[..., :3] * a + 127) // 255, a]).astype(np.uint8)
        back = fr.back(premultiplied, cv2.INTER_LINEAR, roi=roi)
        # OpenCV on whole contiguous images: numpy's strided channel slices of a 1000-pixel window cost more
        colour, alpha = cv2.cvtColor(back, cv2.COLOR_BGRA2BGR), cv2.extractChannel(back, 3)
        alpha3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
        straight = cv2.divide(colour, alpha3, scale=255)  # 0 where alpha is 0
        rgba[y0:y1, x0:x1] = cv2.merge([*cv2.split(straight), alpha])
        comp[y0:y1, x0:x1] = cv2.add(colour, cv2.multiply(plate[y0:y1, x0:x1], 255 - alpha3, scale=1 / 255))
    return rgba, comp


def over(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """A BGRA uint8 image over a BGR background of the same size (straight alpha). OpenCV's blend, rounded:
    on a 1100x1100 window 6 ms, against 46 ms for the same sum in numpy."""
    a = rgba[..., 3].astype(np.float32) * (1.0 / 255.0)
    return cv2.blendLinear(cv2.cvtColor(rgba, cv2.COLOR_BGRA2BGR), background, a, 1.0 - a)


def _plate_for(run: Run, size: tuple[int, int]) -> np.ndarray:
    """The run's background plate at `size` (the driving track's frame size)."""
    from .video import read_image

    if run.plate is None or not run.plate.is_file():
        raise EdnError("this person-over-plate run has no background plate (plate.png): train it again",
                       path=run.checkpoint.parent.parent)
    plate = read_image(run.plate)
    if (plate.shape[1], plate.shape[0]) != tuple(size):
        plate = cv2.resize(plate, tuple(size), interpolation=cv2.INTER_AREA)
    return plate


class _BackgroundWrites:
    """Encodes and writes PNGs on two worker threads while the generator computes the next frame. fpng holds the
    GIL while it encodes (16 ms a 1080p frame), so the threads mostly overlap the file writes and torch's kernels,
    which release it. At most `depth` images wait, so memory stays flat; a write error is raised here."""

    def __init__(self, depth: int = 4):
        self.depth = depth
        self.pending: collections.deque = collections.deque()

    def __enter__(self) -> "_BackgroundWrites":
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="edn-write")
        return self

    def write(self, path: Path, img: np.ndarray) -> None:
        from .video import write_png_fast

        self.pending.append(self.pool.submit(write_png_fast, path, img))
        while len(self.pending) > self.depth:
            self.pending.popleft().result()

    def __exit__(self, *exc) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True)


