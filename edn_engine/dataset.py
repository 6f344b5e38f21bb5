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
import torch

from .atomic import read_json, write_json
from .errors import EdnError
from .events import Reporter
from .pose.face import face_box, face_centre
from .pose.follow import frame_ranges
from .pose.hands import hand_mask
from .pose.framing import Framing, Mipmap
from .pose.window import FramePlan, WindowConfig, frame_track, window_framing
from .pose.track import PoseTrack
from .tensors import stick_figure, to_tensor

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FRAMINGS = ("auto", "window", "full", "letterbox", "crop")  # auto: window when a plate can be made, else full
FORMAT_NAME = "edn-dataset"


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
        summary = _build(clip, source, build, size, track, mattes_dir, no_mattes, holdout, framing, image_format,
                         start, end, reporter)
    return {**summary, "output": str(output)}


def _build(clip, source: Path, output: Path, size: tuple[int, int], track: PoseTrack | None,
           mattes_dir: Path | None, no_mattes: bool, holdout: float, framing: str, image_format: str,
           start: int | None, end: int | None, reporter: Reporter) -> dict:
    """The build itself, into the (empty) folder `output`."""
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
    framings = plan.framings(track)
    ext = ".jpg" if image_format == "jpg" else ".png"
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    from .models.config import default_face_size

    face_side = default_face_size(*size)
    (output / "frames").mkdir()
    if mattes_dir is not None:
        (output / "mattes").mkdir()

    kept: list[dict] = []
    excluded = {"no_person": 0, "outside_track": 0, "no_matte": 0}
    nobody: list[int] = []  # source frames without the followed person: left out, named in a warning
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
        matte = None
        if mattes_dir is not None:
            matte = _read_matte(mattes_dir / f"matte_{n:06d}.png", (clip.width, clip.height))
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
        kept.append(entry)
        reporter.progress(done, total, stage="dataset", kept=len(kept))

    if nobody and kept:
        reporter.log(f"warning: {source.name}: left out {len(nobody)} frames without the followed person: frames "
                     f"{frame_ranges(nobody)}")
    if not kept:
        raise EdnError("no usable frame: nobody was detected in any frame of the input"
                       + (" covered by the track" if excluded["outside_track"] else ""), path=source)
    n_hold = int(round(holdout * len(kept)))
    if n_hold >= len(kept) - 1 and holdout > 0:
        n_hold = max(0, len(kept) - 2)  # keep at least one training pair
    for j, entry in enumerate(kept):
        entry["split"] = "holdout" if j >= len(kept) - n_hold else "train"

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
        "source": str(source),
        "size": list(size),
        "framing": plan.to_dict(),
        "fps": float(getattr(clip, "fps", track.fps) or track.fps),
        "frame_format": image_format,
        "mattes": mattes_dir is not None,
        "face_size": face_side,
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
        "train_pairs": len(consecutive_pairs([e["frame"] for e in train])),
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


def _read_matte(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """A matte as uint8 (H, W), None when the file is absent. RGBA files give their alpha channel."""
    from .video import read_image

    if not path.is_file():
        return None
    m = read_image(path, cv2.IMREAD_UNCHANGED)
    if m.dtype != np.uint8:
        m = (m >> 8).astype(np.uint8) if m.dtype == np.uint16 else np.clip(m * 255.0, 0, 255).astype(np.uint8)
    if m.ndim == 3:
        m = m[..., 3] if m.shape[2] == 4 else cv2.cvtColor(m[..., :3], cv2.COLOR_BGR2GRAY)
    if (m.shape[1], m.shape[0]) != size:
        raise EdnError(f"matte is {m.shape[1]}x{m.shape[0]}, the footage {size[0]}x{size[1]}", path=path)
    return m


# ---------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------
def load_manifest(dataset_dir: str | Path) -> dict:
    """The manifest of a finished dataset, or an EdnError saying why the folder is not one."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise EdnError("dataset folder not found", path=dataset_dir)
    path = dataset_dir / MANIFEST
    if not path.is_file():
        raise EdnError("not an EDN dataset (no manifest.json; build one with `edn dataset build`)", path=dataset_dir)
    manifest = read_json(path, "dataset manifest", FORMAT_NAME)
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise EdnError(f"dataset schema {version} is not one this EDN reads ({SCHEMA_VERSION}); update EDN", path=path)
    for key in ("size", "framing", "frames"):
        if key not in manifest:
            raise EdnError(f"dataset manifest lacks '{key}'", path=path)
    if not (dataset_dir / "track.npz").is_file():
        raise EdnError("dataset lacks track.npz", path=dataset_dir)
    for k, entry in enumerate(manifest["frames"] if isinstance(manifest["frames"], list) else [None]):
        if not (isinstance(entry, dict) and isinstance(entry.get("frame"), int)
                and entry.get("split") in ("train", "holdout")):
            raise EdnError(f"dataset manifest entry {k} is damaged (it needs an integer 'frame' and a 'split' of "
                           "train or holdout); rebuild the dataset with `edn dataset build`", path=path)
    return manifest


def consecutive_pairs(frames: list[int]) -> list[tuple[int, int]]:
    """(t, t+1) pairs of source frame numbers that are both present: a gap breaks the temporal chain."""
    present = set(frames)
    return [(n, n + 1) for n in sorted(frames) if n + 1 in present]


class FrameStore:
    """Reads one dataset's frames, mattes and stick figures by source frame number, from disk, on demand."""

    def __init__(self, dataset_dir: str | Path):
        self.dir = Path(dataset_dir)
        self.manifest = load_manifest(self.dir)
        self.size = tuple(self.manifest["size"])
        self.track = PoseTrack.load(self.dir / "track.npz")
        if (self.track.width, self.track.height) != self.size:
            raise EdnError("dataset track.npz does not match the dataset size", path=self.dir / "track.npz")
        self.ext = ".jpg" if self.manifest.get("frame_format") == "jpg" else ".png"
        self.has_mattes = bool(self.manifest.get("mattes"))
        self.entries = {e["frame"]: e for e in self.manifest["frames"]}
        self.plan = FramePlan.from_dict(self.manifest["framing"])
        self.has_plate = self.plan.windowed
        self._plate: Mipmap | None = None  # the full-resolution plate, read on first use

    def framing(self, n: int):
        """How source frame `n` maps to the training size (its window, or the one fixed framing)."""
        entry = self.entries[n]
        if self.plan.windowed:
            return window_framing(self.plan.src_size, self.size, entry["window"])
        return Framing(self.plan.src_size, self.size, self.plan.mode)

    def plate(self, n: int) -> torch.Tensor:
        """The background plate as seen through frame `n`'s window, (3, H, W) in [-1, 1]."""
        if self._plate is None:
            from .video import read_image

            path = self.dir / "plate.png"
            if not path.is_file():
                raise EdnError("dataset plate missing", path=path)
            self._plate = Mipmap(read_image(path))
        return to_tensor(self._plate.image(self.framing(n)))

    def window(self, n: int) -> torch.Tensor:
        """Frame `n`'s window (x0, y0, width, height) in source pixels."""
        return torch.tensor(self.entries[n]["window"], dtype=torch.float32)

    def frames(self, split: str) -> list[int]:
        return [e["frame"] for e in self.manifest["frames"] if e["split"] == split]

    def label(self, n: int) -> torch.Tensor:
        return to_tensor(stick_figure(self.track, n - self.track.frame_start))

    def image(self, n: int) -> torch.Tensor:
        from .video import read_image

        path = self.dir / "frames" / f"frame_{n:06d}{self.ext}"
        if not path.is_file():
            raise EdnError("dataset frame missing", path=path, frame=n)
        return to_tensor(read_image(path))

    def matte(self, n: int) -> torch.Tensor:
        """(1, H, W) in [0, 1]; all ones when the dataset has no mattes (the alpha loss is then off)."""
        if not self.has_mattes:
            return torch.ones(1, self.size[1], self.size[0])
        path = self.dir / "mattes" / f"matte_{n:06d}.png"
        m = _read_matte(path, self.size)
        if m is None:
            raise EdnError("dataset matte missing", path=path, frame=n)
        return torch.from_numpy(m.astype(np.float32) / 255.0)[None]

    def hand_mask(self, n: int) -> torch.Tensor:
        """(1, H, W) uint8 in {0, 1}: frame `n`'s hand regions (`pose.hands`), for the hand-weighted loss."""
        i = n - self.track.frame_start
        return torch.from_numpy(hand_mask(self.track.body[i], self.track.hands[i], self.size))[None]  # uint8

    def face_centre(self, n: int) -> torch.Tensor:
        """(x, y) in training pixels, or (-1, -1) when the face was not found."""
        c = self.entries[n].get("face_centre")
        return torch.tensor(c if c is not None else [-1.0, -1.0], dtype=torch.float32)


class PairDataset(torch.utils.data.Dataset):
    """Consecutive (t, t+1) training pairs, loaded from disk per item: the unit of temporal smoothing."""

    def __init__(self, dataset_dir: str | Path, split: str = "train"):
        self.store = FrameStore(dataset_dir)
        self.pairs = consecutive_pairs(self.store.frames(split))
        if not self.pairs:
            raise EdnError(f"the dataset has no two consecutive '{split}' frames to train on", path=dataset_dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        s = self.store
        pair = self.pairs[k]
        return {
            "frame": torch.tensor(pair),
            "label": torch.stack([s.label(n) for n in pair]),  # (2, 3, H, W)
            "image": torch.stack([s.image(n) for n in pair]),  # (2, 3, H, W)
            "matte": torch.stack([s.matte(n) for n in pair]),  # (2, 1, H, W)
            "face": torch.stack([s.face_centre(n) for n in pair]),  # (2, 2)
            "hands": torch.stack([s.hand_mask(n) for n in pair]),  # (2, 1, H, W)
            **({"plate": torch.stack([s.plate(n) for n in pair]),  # (2, 3, H, W): composites are judged
                "window": torch.stack([s.window(n) for n in pair])}  # (2, 4): to carry frame t into t+1's window
               if s.has_plate else {}),
        }
