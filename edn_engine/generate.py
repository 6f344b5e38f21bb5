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

Frames are written atomically as `frame_NNNNNN.png` (source numbering) by worker processes (`frame_writer`: the
scaling back, the plate and the PNG encoding happen there, beside the generator, and on a CPU the face and hands are
refined there too: `finishing`) and never held in memory together. A frame with no pose is written fully transparent
and restarts the temporal chain (the next frame is generated from zeros, like a first frame). `resume`: frames
already on disk are kept (only those generated from the same track, checkpoint, hands and precision:
`.source.json`), and the last one is read back as the previous output of the next; being 8-bit (and, for a
whole-frame run, scaled up and back down), that is not bit-identical to an uninterrupted run, but visually the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from . import device as devices
from . import threads
from .allocator import keep_large_blocks
from .atomic import write_json
from .errors import EdnError
from .events import Reporter
from .compositing import over
from .finishing import Finisher, Unfinished
from .frame_writer import FrameJob, FrameWriter
from .inference import Run, Synthesizer, load_run
from .layout import HANDS, RUN_HAND_BANK
from .pose.face import face_centre
from .pose.follow import frame_ranges
from .pose.framing import Mipmap
from .pose.track import PoseTrack
from .pose.window import FramePlan, frame_track
from .tensors import stick_figure, to_tensor

SOURCE_RECORD = ".source.json"  # in the frames folder (hidden: not a frame), what they were generated from


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
    drawn = _drawn_hands(run, run_dir)
    if hands == "training" and drawn == "refined":
        reporter.log(f"warning: {Path(run_dir) / RUN_HAND_BANK} is missing (a run trained before it, or the file "
                     "lost): the refiner's hands are drawn alone (`edn train --resume` writes it again)")
    # Frames go to a folder beside OUT, swapped in when all are written. An interrupted run leaves it for
    # --resume; a run without --resume starts afresh, so no frame of an older, longer track survives.
    source = {"track_sha256": _sha256(track_path), "checkpoint": run.checkpoint.name, "step": run.step,
              "hands": drawn, "precision": devices.inference_precision(run.device, amp)}
    if resume:
        _check_same_source(output, source)
    # what can refuse the run or the track is settled before the frames folder is made, so it leaves nothing behind
    plan, framings = _framings(run, track, track_path, reporter)
    plate = plate_for(run, (track.width, track.height)) if plan.windowed else None
    with staged_folder(output, keep_on_failure=True, continue_from=resume) as build, _threads(run.device):
        write_json(build / SOURCE_RECORD, source)
        counts = _generate_frames(run, plan, framings, plate, track, present, build, video, resume, amp, reporter)
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
    """Generate's share of the cores (`threads.generator_threads`), where this process's policy chose another's."""
    share = threads.chosen_threads("generate") if device.type == "cpu" else None
    before = torch.get_num_threads()
    if share is not None:
        torch.set_num_threads(share)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_same_source(output: Path, source: dict) -> None:
    """--resume continues frames (an interrupted run's, else the finished folder's) only where they were generated
    from the same track, checkpoint, hands and precision (their SOURCE_RECORD): else the folder would mix two results.
    Frames without a record (an older engine's) are continued as before."""
    from .outputs import partial_path

    partial = partial_path(output)
    record = (partial if partial.is_dir() else output) / SOURCE_RECORD
    if not record.is_file():
        return
    try:
        before = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        before = None
    changed = [k for k in source if not isinstance(before, dict) or before.get(k) != source[k]]
    if changed:
        raise EdnError(f"the frames here were generated from another {' and '.join(_WHAT[k] for k in changed)}: "
                       "generate without --resume to start afresh", path=output)


_WHAT = {"track_sha256": "track", "checkpoint": "checkpoint", "step": "training step",
         "hands": "way of drawing the hands (--hands, or the run's training hands)",
         "precision": "precision (--no-amp)"}


def _drawn_hands(run: Run, run_dir: str | Path) -> str:
    """How the frames' hands are drawn, as the run and `--hands` make it: "body", "refined", or "training" with the
    training hands' digest (rewritten by `edn train --resume`, they draw other hands)."""
    if run.HG is None or not run.plan.windowed:
        return "body"
    if run.hand_bank is None:
        return "refined"
    return f"training {_sha256(Path(run_dir) / RUN_HAND_BANK)}"


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hands(hands: str) -> None:
    """Refuse a `hands` choice generation does not know (`edn transfer` asks before its first stage)."""
    if hands not in HANDS:
        raise EdnError(f"hands must be one of {', '.join(HANDS)}, not {hands!r}")


def _framings(run: Run, track: PoseTrack, track_path: str | Path, reporter: Reporter) -> tuple[FramePlan, list]:
    """The run's frame plan for this track, and each row's framing; a track no window can be placed on (a nose
    alone) is named as the file given."""
    plan = run.plan
    if (track.width, track.height) != tuple(plan.src_size):
        reporter.log(f"warning: the track is {track.width}x{track.height}, the training footage was "
                     f"{plan.src_size[0]}x{plan.src_size[1]}; framing the track on its own (drive it to the "
                     "target with `edn pose drive` for the person's scale to match)")
        plan = plan.for_source((track.width, track.height))
    return plan, plan.framings(track, track_path)


def _generate_frames(run: Run, plan: FramePlan, framings: list, plate: np.ndarray | None, track: PoseTrack,
                     present: np.ndarray, output: Path, video: Path | None, resume: bool, amp: bool,
                     reporter: Reporter) -> dict:
    """Generate every row of `track` into `output`, framed by `plan` (`_framings`) over `plate` (`plate_for`; None
    for a whole-frame run); returns the counts of frames written, empty (no pose), kept (--resume) and outside (a
    pose that puts the person wholly off the frame: written, but transparent), and the precision the networks ran
    in."""
    from .video import read_image
    from .video_out import VideoWriter

    keep_large_blocks()  # each frame's maps reuse the last frame's pages (`allocator`)
    framed = frame_track(track, framings)
    plate_mip = Mipmap(plate) if plate is not None else None  # the plate, cut into every frame's window
    synth = Synthesizer(run.G, None, run.cfg, run.device, amp=amp, alpha=run.mattes)  # the body generator
    w, h = track.width, track.height
    if plate is not None:
        (output / "composite").mkdir(exist_ok=True)

    counts = {"written": 0, "empty": 0, "kept": 0}
    outside: list[int] = []  # frames whose driving pose puts the whole window off the frame: nothing to paste
    writer = VideoWriter(video, track.fps) if video is not None else None
    # Each frame's face and hands are refined (`finishing`) in the frame writer's process where the generator runs
    # on the CPU, so that it keeps a core to itself; elsewhere here, between frames (on a GPU that no longer overlaps
    # the next frame, as a thread did: unmeasured, no GPU was at hand).
    finisher = Finisher(run, amp, (w, h), windowed=plate is not None)
    in_writer = _finishes_in_writer(run.device)
    with writer if writer is not None else contextlib.nullcontext(), \
            FrameWriter(plate, (w, h), preview=writer.write if writer is not None else None,
                        generator_on_cpu=run.device.type == "cpu", generator_threads=torch.get_num_threads(),
                        finisher=finisher if in_writer else None) as frames_out:
        if not in_writer:
            finisher.start(plate)
        for i in range(track.frames):
            n = track.frame_start + i
            path, fr = output / f"frame_{n:06d}.png", framings[i]
            window = torch.tensor(fr.window) if fr.window is not None else None
            if not present[i]:
                synth.reset()
                job = FrameJob(path, fr)
                counts["empty"] += 1
            elif resume and path.is_file():
                rgba = read_image(path, cv2.IMREAD_UNCHANGED)
                if rgba.ndim != 3 or rgba.shape[:2] != (h, w) or rgba.shape[2] != 4:
                    raise EdnError(f"existing frame is not a {w}x{h} RGBA image; remove it or the folder",
                                   path=path, frame=n)
                shown = fr.image(rgba[..., :3] if plate is None else over(rgba, plate))
                synth.set_previous(to_tensor(shown), window)
                job = FrameJob(path, fr, kept=True)
                counts["kept"] += 1
            else:
                plate_crop = to_tensor(plate_mip.image(fr)) if plate is not None else None
                body = synth.body_frame(to_tensor(stick_figure(framed, i)), plate_crop, window)
                if plate is not None and fr.source_roi() is None:
                    outside.append(n)
                job = FrameJob(path, fr, unfinished=Unfinished(body, face_centre(framed.body[i], framed.face[i]),
                                                               track.body[i], track.hands[i]))
                job = job if in_writer else finisher(job)
                counts["written"] += 1
            # an interrupt (Ctrl-C, the add-on's cancel) leaves the frames given so far to be written, for --resume
            frames_out.submit(job)
            reporter.progress(i + 1, track.frames, stage="generate", frame=n)
    if outside:
        reporter.log(f"warning: the driving pose puts the person's window wholly outside the frame in {len(outside)} "
                     f"frames, written transparent: frames {frame_ranges(outside)}")
    return {**counts, "outside": len(outside), "precision": synth.precision}


def _finishes_in_writer(device: torch.device) -> bool:
    """Whether frames are finished in the frame writer's process (the generator on the CPU: see `finishing`)."""
    return device.type == "cpu"


def plate_for(run: Run, size: tuple[int, int]) -> np.ndarray:
    """The run's background plate at `size` (the driving track's frame size)."""
    from .video import read_image

    if run.plate is None or not run.plate.is_file():
        raise EdnError("this person-over-plate run has no background plate (plate.png): train it again",
                       path=run.checkpoint.parent.parent)
    plate = read_image(run.plate)
    (w, h), (sw, sh) = (plate.shape[1], plate.shape[0]), run.plan.src_size
    if (w, h) != (sw, sh):  # it is the footage's: another picture was put in its place
        raise EdnError(f"the run's plate is {w}x{h}, its footage {sw}x{sh}: copy the dataset's plate.png back",
                       path=run.plate)
    if (w, h) != tuple(size):
        plate = cv2.resize(plate, tuple(size), interpolation=cv2.INTER_AREA)
    return plate
