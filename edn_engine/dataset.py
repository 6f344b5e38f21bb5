"""A training dataset: the target's frames mapped to the training size, their mattes, face centres and the track.

How frames map to the training size is the dataset's `FramePlan` (`pose.window`). Person over plate (`window`,
the default whenever the camera is static): each frame is the person-centred window, cropped from the full
frame, and the background plate (`plate.py`) is stored at full resolution; the network learns the person's
colour and alpha, judged as a composite over the plate crop. Whole frame (`letterbox` or `crop`, and the
fallback when the camera moves or no plate can be made): one framing for every frame, as before.

Layout of DATASET_DIR (built beside it and swapped in when finished; see `outputs.py`):

    manifest.json        schema version, training size, the frame plan ("framing"), and per frame: its split,
                         its window (x0, y0, width, height in source pixels; window plans only), the face centre
                         (the nose) and face box (`face_size` square, 128 px at 1024x512 scaled with the height,
                         shifted inside the frame), all in training pixels
    frames/frame_NNNNNN.png (or .jpg)   target frame NNNNNN (source numbering) at the training size
    mattes/matte_NNNNNN.png             the person's matte at the training size (absent with no mattes)
    plate.png, plate_mask.png           the background plate at the clip's resolution, and where it was
                                        inpainted (window plans only); plate crops are cut from it per frame
    hands/hand_NNNNNN_0.png, _1.png     each hand's real crop at the source's resolution, and its box in the
                                        manifest (window plans whose window is smaller than the source; `hand_data`)
    track.npz            the pose track in training-frame pixels (what the stick figures are drawn from)
    track_source.npz     the same track in source pixels, as extracted or given

Stick figures are not stored: drawing one is faster than decoding a PNG of it (0.65 ms against 1.7 ms at
256x256, measured on the 2-core dev machine), and generation draws them the same way, so training and generation
cannot disagree about how a pose looks.
The last `holdout` fraction of kept frames is held out for evaluation and previews and never trained on.
Frames where nobody was detected are left out and counted. Frames stream through one at a time, so memory
stays flat in the clip's length, during the build and during training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_json
from .dataset_store import (FORMAT_NAME, MANIFEST, SCHEMA_VERSION, FrameStore, PairDataset,  # noqa: F401 (re-exported)
                            consecutive_pairs, load_manifest, read_matte, training_pairs)
from .errors import EdnError
from .events import Reporter
from .hand_data import FOLDER as HANDS, crop_size, write_hands
from .pose.face import face_box, face_centre
from .pose.follow import frame_ranges
from .pose.skeleton import in_frame
from .pose.window import FramePlan, WindowConfig, frame_track
from .pose.track import PoseTrack

FRAMINGS = ("auto", "window", "full", "letterbox", "crop")  # auto: window when a plate can be made, else full


# ---------------------------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------------------------
def build_dataset(
    source: str | Path,
    output: str | Path,
    size: tuple[int, int],
    *,
    track: str | Path | PoseTrack | None = None,
    mattes: str | Path | None = None,
    holdout: float = 0.2,
    framing: str = "auto",
    image_format: str = "png",
    start: int | None = None,
    end: int | None = None,
    profile: str | None = "cpu",
    reporter: Reporter | None = None,
) -> dict:
    """Build DATASET_DIR from a target clip or image folder; returns the summary printed by `edn dataset build`.

    Mattes: from `mattes` (a folder of matte_NNNNNN.png in source pixels) when given; otherwise, with no
    `track`, the pose detector writes them while it extracts the track; with a `track` (from Blender, say) but no
    mattes, the detector still runs, for its mattes only, because the alpha head needs them. Pass
    mattes="none" to build without mattes: the run then trains no alpha and generates opaque frames.
    `profile`: refuse at once a size that this network profile cannot train (None: no check).
    """
    from .outputs import DATASET, check_output_folder, staged_folder
    from .video import open_source

    # -- every argument and input is checked before anything is touched ---------------------------------------
    source, output = Path(source), Path(output)
    if not 0.0 <= holdout < 1.0:
        raise EdnError(f"--holdout must be in [0, 1), not {holdout}")
    if image_format not in ("png", "jpg"):
        raise EdnError(f"frame format must be png or jpg, not {image_format!r}")
    if framing not in FRAMINGS:
        raise EdnError(f"--framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
    framing = "letterbox" if framing == "full" else framing
    if profile is not None:
        from .models.config import check_trainable_size

        check_trainable_size(profile, tuple(size))
    no_mattes = mattes is not None and str(mattes).lower() == "none"
    mattes_dir = None if (mattes is None or no_mattes) else Path(mattes)
    if framing == "window" and no_mattes:
        raise EdnError("--framing window needs the person's mattes (to make the background plate): drop "
                       "--mattes none, or use --framing full")
    if mattes_dir is not None and not mattes_dir.is_dir():
        raise EdnError("mattes folder not found", path=mattes_dir)
    clip = open_source(source, start, end)  # checks the input, --start and --end, and gives the footage size
    track_path = Path(track) if isinstance(track, (str, Path)) else None
    if track_path is not None:
        track = PoseTrack.load(track_path)
    if track is not None and (track.width, track.height) != (clip.width, clip.height):
        raise EdnError(f"the track is {track.width}x{track.height} but the footage is {clip.width}x{clip.height}; "
                       "give the track extracted from this footage", path=track_path or source)
    check_output_folder(output, DATASET, "dataset folder", inputs=(source, track_path, mattes_dir))
    reporter = reporter or Reporter(False)

    # -- built beside the old dataset and swapped in only when finished ---------------------------------------
    with staged_folder(output) as build:
        summary = _build(clip, source, build, size, track, track_path, mattes_dir, no_mattes, holdout, framing,
                         image_format, start, end, reporter)
    return {**summary, "output": str(output)}


def _on_footage(body: np.ndarray, plan: FramePlan) -> bool:
    """Whether any joint of `body` (25, 3) that places a window lies on the footage: a joint as confident as the
    plan's own window rule asks (`FramePlan.window_config`), the rule that framed this dataset's windows."""
    found = body[:, 2] >= plan.window_config.min_confidence
    return bool((found & in_frame(body[:, :2], *plan.src_size)).any())


def _build(clip, source: Path, output: Path, size: tuple[int, int], track: PoseTrack | None, track_path: Path | None,
           mattes_dir: Path | None, no_mattes: bool, holdout: float, framing: str, image_format: str,
           start: int | None, end: int | None, reporter: Reporter) -> dict:
    """The build itself, into the (empty) folder `output`. `track_path`: the track file given, named by the errors
    about the track (else the input, whose track the detector made)."""
    from .video import write_image

    if track is None or (mattes_dir is None and not no_mattes):
        from .pose.detect import extract_pose

        scratch = output / ".build"  # source-size mattes from the detector, removed when done
        reporter.log("detecting poses" + (" (for the mattes only)" if track is not None else "") + f" in {source}")
        detected, _ = extract_pose(source, start=start, end=end, mattes_dir=scratch, reporter=reporter)
        mattes_dir = scratch
        if track is None:
            track = detected

    plan = _plan(framing, source, mattes_dir, (clip.width, clip.height), tuple(size), start, end, output, reporter)
    framings = plan.framings(track, track_path or source)
    ext = ".jpg" if image_format == "jpg" else ".png"
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    from .models.config import default_face_size

    face_side = default_face_size(*size)
    (output / "frames").mkdir()
    if mattes_dir is not None:
        (output / "mattes").mkdir()
    hand_size = None
    if plan.windowed:  # the hand refiner's crops, at the source's resolution (`hand_data`), where it adds pixels
        hand_size = crop_size(np.array([fr.window[3] for fr in framings]), size[1])
    if hand_size is not None:
        (output / HANDS).mkdir()

    kept: list[dict] = []
    excluded = {"no_person": 0, "outside_track": 0, "no_matte": 0, "off_frame": 0}
    nobody: list[int] = []  # source frames without the followed person: left out, named in a warning
    off: list[int] = []  # and those whose person the track puts wholly outside the footage
    total = getattr(clip, "frame_count", None)
    for done, (n, bgr) in enumerate(clip, start=1):
        i = n - track.frame_start
        if not 0 <= i < track.frames:
            excluded["outside_track"] += 1
            continue
        if not (track.body[i, :, 2] > 0).any():
            excluded["no_person"] += 1
            nobody.append(n)
            continue
        if not _on_footage(track.body[i], plan):
            excluded["off_frame"] += 1
            off.append(n)
            continue
        matte = None
        if mattes_dir is not None:
            matte = read_matte(mattes_dir / f"matte_{n:06d}.png", (clip.width, clip.height))
            if matte is None:
                excluded["no_matte"] += 1
                continue
        fr = framings[i]
        write_image(output / "frames" / f"frame_{n:06d}{ext}", fr.image(bgr), jpeg)
        if matte is not None:
            write_image(output / "mattes" / f"matte_{n:06d}.png", fr.image(matte))
        centre = face_centre(fr.points(track.body[i]), fr.points(track.face[i]))
        box = face_box(centre, face_side, tuple(size))
        entry = {"frame": n, "face_centre": None if centre is None else [round(c, 2) for c in centre],
                 "face_box": None if box is None else list(box)}
        if fr.window is not None:
            entry["window"] = [round(v, 3) for v in fr.window]
        if hand_size is not None:
            entry["hand_boxes"] = write_hands(output / HANDS, n, bgr, matte, track.body[i], track.hands[i],
                                              fr.window[3], hand_size)
        kept.append(entry)
        reporter.progress(done, total, stage="dataset", kept=len(kept))

    if nobody and kept:
        reporter.log(f"warning: {source.name}: left out {len(nobody)} frames without the followed person: frames "
                     f"{frame_ranges(nobody)}")
    if off and kept:
        reporter.log(f"warning: the track puts the person wholly outside the footage in {len(off)} frames, left out: "
                     f"frames {frame_ranges(off)}")
    if not kept:
        if off:
            raise EdnError("no usable frame: the track puts the person outside the footage in every frame it "
                           "covers (is it another clip's track?)", path=source)
        raise EdnError("no usable frame: nobody was detected in any frame of the input"
                       + (" covered by the track" if excluded["outside_track"] else ""), path=source)
    n_hold = int(round(holdout * len(kept)))
    if n_hold >= len(kept) - 1 and holdout > 0:
        n_hold = max(0, len(kept) - 2)  # keep at least one training pair
    for j, entry in enumerate(kept):
        entry["split"] = "holdout" if j >= len(kept) - n_hold else "train"
    pairs = training_pairs(kept, "the track gives" if track_path else "the input gives", track_path or source)

    first = kept[0]["frame"] - track.frame_start
    last = kept[-1]["frame"] - track.frame_start + 1
    src_track = track.slice(first, last)
    src_track.save(output / "track_source.npz")
    frame_track(src_track, framings[first:last]).save(output / "track.npz")
    shutil.rmtree(output / ".build", ignore_errors=True)

    train = [e for e in kept if e["split"] == "train"]
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "source": str(Path(source).absolute()),  # read again by `edn eval`, run from anywhere
        "size": list(size),
        "framing": plan.to_dict(),
        "fps": float(getattr(clip, "fps", track.fps) or track.fps),
        "frame_format": image_format,
        "mattes": mattes_dir is not None,
        "face_size": face_side,
        **({"hand_size": hand_size} if plan.windowed else {}),  # null: no refiner for this clip (`hand_data`)
        "holdout": holdout,
        "frames": kept,
        "excluded": excluded,
    }
    write_json(output / MANIFEST, manifest)
    return {
        "size": list(size),
        "framing": plan.mode,
        "frames": len(kept),
        "train_frames": len(train),
        "train_pairs": len(pairs),
        "holdout_frames": len(kept) - len(train),
        "excluded": excluded,
        "mattes": mattes_dir is not None,
    }


def _plan(framing: str, source: Path, mattes_dir: Path | None, src_size: tuple[int, int],
          size: tuple[int, int], start: int | None, end: int | None, output: Path, reporter: Reporter) -> FramePlan:
    """The frame plan: person over plate when asked for, or by default when a plate can be made (saved into
    `output`); else the whole frame, letterboxed, as before."""
    if framing in ("letterbox", "crop"):
        return FramePlan(src_size, size, framing)
    if mattes_dir is None:
        reporter.log("no mattes: training on the whole frame (person over plate needs mattes)")
        return FramePlan(src_size, size, "letterbox")
    from .plate import estimate_plate

    plate = estimate_plate(source, mattes_dir, start=start, end=end, reporter=reporter)
    if not plate.usable:
        if framing == "window":
            raise EdnError(f"cannot train the person over a plate: {plate.reason}", path=source)
        reporter.log(f"warning: {source}: {plate.reason}; training on the whole frame instead")
        return FramePlan(src_size, size, "letterbox")
    plate.save(output / "plate.png", output / "plate_mask.png")
    return FramePlan(src_size, size, "window", WindowConfig())

