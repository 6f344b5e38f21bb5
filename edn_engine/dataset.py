"""A training dataset: the target's frames mapped to the training size, their mattes, face centres and the track.

Layout of DATASET_DIR (everything written atomically; `manifest.json` last, so a folder without it is unfinished):

    manifest.json        schema version, training size, the one `Framing` used, and per frame: its split, the
                         face centre (the nose) and face box (`face_size` square, 128 px at 1024x512 scaled
                         with the height, shifted inside the frame)
    frames/frame_NNNNNN.png (or .jpg)   target frame NNNNNN (source numbering) at the training size
    mattes/matte_NNNNNN.png             the person's matte at the training size (absent with no mattes)
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

import json
import shutil
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from .atomic import ensure_dir, write_json
from .errors import EdnError
from .events import Reporter
from .pose.framing import Framing
from .pose.skeleton import B
from .pose.track import PoseTrack

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FORMAT_NAME = "edn-dataset"


# ---------------------------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """'256x256' -> (256, 256)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise EdnError(f"size must look like WIDTHxHEIGHT (e.g. 256x256), not {text!r}") from None
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise EdnError(f"size {w}x{h} is out of range (16 to 8192 pixels a side)")
    return w, h


def face_centre(body: np.ndarray, face: np.ndarray) -> tuple[float, float] | None:
    """Where the face crop is centred: the nose (as in the paper), else the mean of the face points found."""
    if body[B["Nose"], 2] > 0:
        return float(body[B["Nose"], 0]), float(body[B["Nose"], 1])
    present = face[:, 2] > 0
    if present.any():
        return float(face[present, 0].mean()), float(face[present, 1].mean())
    return None


def face_box(centre: tuple[float, float] | None, side: int, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of a `side` square centred on `centre`, shifted to lie inside the frame."""
    if centre is None:
        return None
    w, h = size
    side = min(side, w, h)
    x0 = int(round(centre[0] - side / 2))
    y0 = int(round(centre[1] - side / 2))
    x0 = min(max(x0, 0), w - side)
    y0 = min(max(y0, 0), h - side)
    return x0, y0, x0 + side, y0 + side


def build_dataset(
    source: str | Path,
    output: str | Path,
    size: tuple[int, int],
    *,
    track: str | Path | PoseTrack | None = None,
    mattes: str | Path | None = None,
    holdout: float = 0.2,
    framing: str = "letterbox",
    image_format: str = "png",
    start: int | None = None,
    end: int | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Build DATASET_DIR from a target clip or image folder; returns the summary printed by `edn dataset build`.

    Mattes: from `mattes` (a folder of matte_NNNNNN.png in source pixels) when given; otherwise, with no
    `track`, the pose detector writes them while it extracts the track; with a `track` (from Blender, say) but no
    mattes, the detector still runs, for its mattes only, because the alpha head needs them. Pass
    mattes="none" to build without mattes: the run then trains no alpha and generates opaque frames.
    """
    from .video import open_source, write_image

    source, output = Path(source), Path(output)
    if not 0.0 <= holdout < 1.0:
        raise EdnError(f"--holdout must be in [0, 1), not {holdout}")
    if image_format not in ("png", "jpg"):
        raise EdnError(f"frame format must be png or jpg, not {image_format!r}")
    if not source.exists():
        raise EdnError("input not found", path=source)
    _prepare_output(output)
    reporter = reporter or Reporter(False)

    no_mattes = mattes is not None and str(mattes).lower() == "none"
    mattes_dir = None if (mattes is None or no_mattes) else Path(mattes)
    if mattes_dir is not None and not mattes_dir.is_dir():
        raise EdnError("mattes folder not found", path=mattes_dir)
    scratch = output / ".build"  # source-size mattes from the detector, removed when done
    if scratch.exists():
        shutil.rmtree(scratch)

    if isinstance(track, (str, Path)):
        track = PoseTrack.load(track)
    if track is None or (mattes_dir is None and not no_mattes):
        from .pose.detect import extract_pose

        reporter.log("detecting poses" + (" (for the mattes only)" if track is not None else "") + f" in {source}")
        detected, _ = extract_pose(source, start=start, end=end, mattes_dir=scratch, reporter=reporter)
        mattes_dir = scratch
        if track is None:
            track = detected

    clip = open_source(source, start, end)
    if (track.width, track.height) != (clip.width, clip.height):
        raise EdnError(f"the track is {track.width}x{track.height} but the footage is {clip.width}x{clip.height}; "
                       "give the track extracted from this footage", path=source)
    fr = Framing((clip.width, clip.height), tuple(size), framing)
    ext = ".jpg" if image_format == "jpg" else ".png"
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    from .models.config import default_face_size

    face_side = default_face_size(*size)
    (output / "frames").mkdir(exist_ok=True)
    if mattes_dir is not None:
        (output / "mattes").mkdir(exist_ok=True)

    kept: list[dict] = []
    excluded = {"no_person": 0, "outside_track": 0, "no_matte": 0}
    total = getattr(clip, "frame_count", None)
    for done, (n, bgr) in enumerate(clip, start=1):
        i = n - track.frame_start
        if not 0 <= i < track.frames:
            excluded["outside_track"] += 1
            continue
        if not (track.body[i, :, 2] > 0).any():
            excluded["no_person"] += 1
            continue
        matte = None
        if mattes_dir is not None:
            matte = _read_matte(mattes_dir / f"matte_{n:06d}.png", (clip.width, clip.height))
            if matte is None:
                excluded["no_matte"] += 1
                continue
        frame = fr.image(bgr)
        write_image(output / "frames" / f"frame_{n:06d}{ext}", frame, jpeg)
        if matte is not None:
            write_image(output / "mattes" / f"matte_{n:06d}.png", fr.image(matte))
        centre = face_centre(fr.points(track.body[i]), fr.points(track.face[i]))
        box = face_box(centre, face_side, tuple(size))
        kept.append({"frame": n, "face_centre": None if centre is None else [round(c, 2) for c in centre],
                     "face_box": None if box is None else list(box)})
        reporter.progress(done, total, stage="dataset", kept=len(kept))

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
    framed = src_track.replace(body=fr.points(src_track.body), hands=fr.points(src_track.hands),
                               face=fr.points(src_track.face), width=size[0], height=size[1])
    framed.save(output / "track.npz")
    if scratch.exists():
        shutil.rmtree(scratch, ignore_errors=True)

    train = [e for e in kept if e["split"] == "train"]
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "source": str(source),
        "size": list(size),
        "framing": fr.to_dict(),
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
        "output": str(output),
        "size": list(size),
        "framing": framing,
        "frames": len(kept),
        "train_frames": len(train),
        "train_pairs": len(consecutive_pairs([e["frame"] for e in train])),
        "holdout_frames": len(kept) - len(train),
        "excluded": excluded,
        "mattes": mattes_dir is not None,
    }


def _prepare_output(output: Path) -> None:
    ensure_dir(output, "dataset folder")
    if (output / MANIFEST).exists() or (output / "frames").exists():
        # Rebuilding over an old dataset: drop it so no stale frame survives with a new framing.
        if (output / MANIFEST).exists():
            (output / MANIFEST).unlink()
        for sub in ("frames", "mattes"):
            shutil.rmtree(output / sub, ignore_errors=True)


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
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdnError(f"unreadable dataset manifest ({exc})", path=path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise EdnError("not an EDN dataset manifest", path=path)
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise EdnError(f"dataset schema {version} is not one this EDN reads ({SCHEMA_VERSION}); update EDN", path=path)
    for key in ("size", "framing", "frames"):
        if key not in manifest:
            raise EdnError(f"dataset manifest lacks '{key}'", path=path)
    if not (dataset_dir / "track.npz").is_file():
        raise EdnError("dataset lacks track.npz", path=dataset_dir)
    return manifest


def consecutive_pairs(frames: list[int]) -> list[tuple[int, int]]:
    """(t, t+1) pairs of source frame numbers that are both present: a gap breaks the temporal chain."""
    present = set(frames)
    return [(n, n + 1) for n in sorted(frames) if n + 1 in present]


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 (H, W, 3) -> RGB float (3, H, W) in [-1, 1]."""
    rgb = np.ascontiguousarray(bgr[..., ::-1], dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1).div_(127.5).sub_(1.0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """RGB float (3, H, W) in [-1, 1] -> BGR uint8 (H, W, 3)."""
    rgb = ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def stick_figure(track: PoseTrack, i: int) -> np.ndarray:
    """The stick figure of row `i`, drawn in the track's own pixel frame (BGR uint8)."""
    from .render import draw_pose

    return draw_pose(track.body[i], track.hands[i], track.face[i], size=(track.width, track.height))


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
        }


def iter_frames(store: FrameStore, frames: list[int]) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(n, label, image) for previews and evaluation, one at a time."""
    for n in frames:
        yield n, store.label(n), store.image(n)
