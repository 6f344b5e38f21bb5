"""Generation: a trained run plus a pose track -> RGBA frames of the target person, one PNG per source frame.

The track is in the target's frame size (`edn pose drive` maps another dancer's motion there first); the run's
frame plan (`pose.window.FramePlan`, recorded by its dataset) maps it to the training size as the dataset mapped
the target's frames. The generator runs frame by frame and is fed its own previous output, as in training
(temporal smoothing); the Face GAN, when trained, refines the face crop, and the hand refiner each hand's box at
the clip's resolution (pasted after the window is scaled back), with the person's own training hands laid over
the refined ones (`hand_bank`). `hands` chooses: "training" (both, the default), "refined" (the refiner's own
hands) or "body" (neither: the body generator's blurred hands, and the refiner's cost saved).

Person over plate (a window plan): the window follows the driving pose by the dataset's rule; the window's
person (colour and alpha) is scaled back into the full frame. OUT/frame_NNNNNN.png is the person alone, RGBA at
the clip's full resolution and transparent elsewhere (what the Sequencer strip shows over any plate), and
OUT/composite/frame_NNNNNN.png the same over the run's background plate (previews, evaluation). Whole-frame runs
(a moving camera) write their training frame scaled back to the clip's framing: RGBA at the clip's resolution too,
so the strips of either line up with the footage.

Frames are written atomically as `frame_NNNNNN.png` (source numbering) by worker processes (`frame_writer`:
the scaling back, the plate and the PNG encoding happen there, beside the generator) and never held in memory
together. A frame with no pose is written fully transparent and restarts the temporal chain (the next
frame is generated from zeros, like a first frame). `resume`: frames already on disk are kept, and the last one
is read back as the previous output of the next; being 8-bit (and, for a whole-frame run, scaled up and back
down), that is not bit-identical to an uninterrupted run, but visually the same.
"""

from __future__ import annotations

import collections
import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from . import device as devices
from . import threads
from .allocator import keep_large_blocks
from .errors import EdnError
from .events import Reporter
from .compositing import over
from .frame_writer import FrameJob, FrameWriter
from .inference import BodyFrame, Run, Synthesizer, load_run
from .hand_bank import HandBank
from .hand_data import hand_framing
from .layout import HANDS
from .pose.face import face_centre
from .pose.hands import hand_box
from .pose.follow import frame_ranges
from .pose.framing import Mipmap
from .pose.track import PoseTrack
from .pose.window import frame_track
from .tensors import hand_figure, stick_figure, to_image, to_tensor


def generate(run_dir: str | Path, track_path: str | Path, output: str | Path, *, video: str | Path | None = None,
             resume: bool = False, device: str = "auto", amp: bool = True, hands: str = HANDS[0],
             reporter: Reporter | None = None) -> dict:
    """Write RGBA frames for every row of the track; returns the summary `edn generate` prints."""
    from .outputs import FRAMES, check_output_file, check_output_folder, staged_folder

    reporter = reporter or Reporter(False)
    check_hands(hands)
    track = PoseTrack.load(track_path)
    present = (track.body[..., 2] > 0).any(axis=1)
    if not present.any():
        raise EdnError("the track has no person in any frame: nothing to generate", path=track_path)
    output = check_output_folder(output, FRAMES, "frames folder", inputs=(run_dir, track_path))
    if video is not None:
        check_output_file(video, ".mp4", "preview video")
    run = load_run(run_dir, device, reporter)
    if hands != "training":
        run.hand_bank = None
    if hands == "body":
        run.HG = None
    # Frames go to a folder beside OUT, swapped in when all are written. An interrupted run leaves it for
    # --resume; a run without --resume starts afresh, so no frame of an older, longer track survives.
    with staged_folder(output, keep_on_failure=True, continue_from=resume) as build, _threads(run.device):
        counts = _generate_frames(run, track, present, build, video, resume, amp, reporter)
    return {
        "output": str(output), "frames": track.frames, **counts,
        "size": [track.width, track.height],
        "framing": run.plan.mode,
        "composite": str(output / "composite") if run.plan.windowed else None,
        "first_frame": track.frame_start, "last_frame": track.frame_start + track.frames - 1,
        "checkpoint": str(run.checkpoint), "step": run.step, "face_gan": run.FG is not None,
        "hand_refiner": run.HG is not None and run.plan.windowed,
        "training_hands": run.hand_bank is not None and run.HG is not None and run.plan.windowed,
        "video": str(video) if video is not None else None, "device": devices.describe(run.device),
        "precision": counts.pop("precision"),
    }


@contextlib.contextmanager
def _threads(device: torch.device):
    """Generate's share of the cores (`threads.frame_writers`), where this process's policy chose another's."""
    share = threads.chosen_threads("generate") if device.type == "cpu" else None
    before = torch.get_num_threads()
    if share is not None:
        torch.set_num_threads(share)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_hands(hands: str) -> None:
    """Refuse a `hands` choice generation does not know (`edn transfer` asks before its first stage)."""
    if hands not in HANDS:
        raise EdnError(f"hands must be one of {', '.join(HANDS)}, not {hands!r}")


def _generate_frames(run: Run, track: PoseTrack, present: np.ndarray, output: Path, video: Path | None,
                     resume: bool, amp: bool, reporter: Reporter) -> dict:
    """Generate every row of `track` into `output`; returns the counts of frames written, empty (no pose), kept
    (--resume) and outside (a pose that puts the person wholly off the frame: written, but transparent), and the
    precision the networks ran in."""
    from .video import read_image
    from .video_out import VideoWriter

    keep_large_blocks()  # each frame's maps reuse the last frame's pages (`allocator`)
    plan = run.plan
    if (track.width, track.height) != tuple(plan.src_size):
        reporter.log(f"warning: the track is {track.width}x{track.height}, the training footage was "
                     f"{plan.src_size[0]}x{plan.src_size[1]}; framing the track on its own (drive it to the "
                     "target with `edn pose drive` for the person's scale to match)")
        plan = plan.for_source((track.width, track.height))
    framings = plan.framings(track)
    framed = frame_track(track, framings)
    plate = plate_for(run, (track.width, track.height)) if plan.windowed else None
    plate_mip = Mipmap(plate) if plate is not None else None  # the plate, cut into every frame's window
    synth = Synthesizer(run.G, run.FG, run.cfg, run.device, amp=amp, alpha=run.mattes,
                        HG=run.HG if plate is not None else None)
    w, h = track.width, track.height
    if plate is not None:
        (output / "composite").mkdir(exist_ok=True)

    counts = {"written": 0, "empty": 0, "kept": 0}
    outside: list[int] = []  # frames whose driving pose puts the whole window off the frame: nothing to paste
    writer = VideoWriter(video, track.fps) if video is not None else None
    # The face and hands of a frame are refined on a second thread while the body generator makes the next
    # frame (which is fed only the body's frame): each waits for the other only at the frame after. Not on MPS,
    # whose PyTorch backend must not be used from two threads at once.
    finishing = run.device.type in ("cpu", "cuda")
    with writer if writer is not None else contextlib.nullcontext(), \
            FrameWriter(plate, (w, h), preview=writer.write if writer is not None else None,
                        generator_on_cpu=run.device.type == "cpu") as frames_out, \
            ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),)) as finisher:
        jobs: collections.deque[tuple[int, FrameJob | Future]] = collections.deque()  # (row, job), in frame order

        def hand_over(keep: int) -> None:
            """Give the frame writer all but the last `keep` jobs, in order; progress counts the frames given."""
            while len(jobs) > keep:
                row, job = jobs[0]  # left queued until given: an interrupt here leaves it for the next call
                frames_out.submit(job.result() if isinstance(job, Future) else job)
                jobs.popleft()
                reporter.progress(row + 1, track.frames, stage="generate", frame=track.frame_start + row)

        try:
            for i in range(track.frames):
                n = track.frame_start + i
                path, fr = output / f"frame_{n:06d}.png", framings[i]
                window = torch.tensor(fr.window) if fr.window is not None else None
                if not present[i]:
                    synth.reset()
                    jobs.append((i, FrameJob(path, fr)))
                    counts["empty"] += 1
                elif resume and path.is_file():
                    rgba = read_image(path, cv2.IMREAD_UNCHANGED)
                    if rgba.ndim != 3 or rgba.shape[:2] != (h, w) or rgba.shape[2] != 4:
                        raise EdnError(f"existing frame is not a {w}x{h} RGBA image; remove it or the folder",
                                       path=path, frame=n)
                    shown = fr.image(rgba[..., :3] if plate is None else over(rgba, plate))
                    synth.set_previous(to_tensor(shown), window)
                    jobs.append((i, FrameJob(path, fr, kept=True)))
                    counts["kept"] += 1
                else:
                    plate_crop = to_tensor(plate_mip.image(fr)) if plate is not None else None
                    body = synth.body_frame(to_tensor(stick_figure(framed, i)), plate_crop, window)
                    if plate is not None and fr.source_roi() is None:
                        outside.append(n)
                    args = (synth, body, path, track, framed, i, fr, window, plate_mip, run.hand_size, run.hand_bank)
                    jobs.append((i, finisher.submit(_finish, *args) if finishing else _finish(*args)))
                    counts["written"] += 1
                hand_over(1)  # the frame before this one, finished by now or soon
            hand_over(0)
        except KeyboardInterrupt:  # Ctrl-C or the add-on's cancel: the frames made so far are written, for --resume
            hand_over(0)
            raise
    if outside:
        reporter.log(f"warning: the driving pose puts the person's window wholly outside the frame in {len(outside)} "
                     f"frames, written transparent: frames {frame_ranges(outside)}")
    return {**counts, "outside": len(outside), "precision": synth.precision}


def _finish(synth: Synthesizer, body: BodyFrame, path: Path, track: PoseTrack, framed: PoseTrack, i: int, fr,
            window: torch.Tensor | None, plate: Mipmap | None, hand_size: int, bank: HandBank | None) -> FrameJob:
    """Row `i`'s frame from the body generator's `body`: its face and hands refined, ready for the frame writer."""
    c = face_centre(framed.body[i], framed.face[i])
    rgb, alpha = synth.refine_face(body, torch.tensor(c) if c is not None else None)
    rgba = cv2.merge([to_image(rgb), (alpha[0].clamp(0, 1) * 255).round().byte().numpy()])  # (np.dstack: 5x slower)
    hands, exemplars = (_hand_patches(synth, body, track, i, fr, window, plate, hand_size, bank)
                        if synth.HG is not None else ((), ()))
    return FrameJob(path, fr, rgba, hands=hands, exemplars=exemplars)  # laid over the plate


def _hand_patches(synth: Synthesizer, body: BodyFrame, track: PoseTrack, i: int, fr, window: torch.Tensor,
                  plate: Mipmap, size: int, bank: HandBank | None) -> tuple:
    """Row `i`'s hands for the frame writer, each a (box framing, BGRA patch): as the hand refiner redraws them
    over `body`, and the training hands to lay over those (`hand_bank`; none without a `bank`). The boxes follow the
    driving pose (source pixels) by the dataset's rule, sized by the frame's window."""
    body_points, hands = track.body[i], track.hands[i]
    found = [(side, box) for side in (0, 1) if (box := hand_box(body_points, hands, side, fr.window[3])) is not None]
    if not found:
        return (), ()
    framings = [hand_framing((track.width, track.height), box, size) for _, box in found]
    labels = torch.stack([to_tensor(hand_figure(body_points, hands, side, f)) for (side, _), f in zip(found, framings)])
    plates = torch.stack([to_tensor(plate.image(f)) for f in framings])
    boxes = torch.tensor([box for _, box in found])
    colour, a = synth.refine_hands(body, window, boxes, labels, plates)
    refined = tuple((f, cv2.merge([to_image(c), (h[0] * 255).round().byte().numpy()]))
                    for f, c, h in zip(framings, colour, a))
    exemplars = []  # the nearest training hand of each, moved onto the pose, to lay over the refined one
    for side, box in found if bank is not None else ():
        if (drawn := bank.hand_patch(side, hands[side], box, size)) is not None:
            grown, patch = drawn
            exemplars.append((hand_framing((track.width, track.height), grown, patch.shape[0]), patch))
    return refined, tuple(exemplars)


def plate_for(run: Run, size: tuple[int, int]) -> np.ndarray:
    """The run's background plate at `size` (the driving track's frame size)."""
    from .video import read_image

    if run.plate is None or not run.plate.is_file():
        raise EdnError("this person-over-plate run has no background plate (plate.png): train it again",
                       path=run.checkpoint.parent.parent)
    plate = read_image(run.plate)
    if (plate.shape[1], plate.shape[0]) != tuple(size):
        plate = cv2.resize(plate, tuple(size), interpolation=cv2.INTER_AREA)
    return plate
