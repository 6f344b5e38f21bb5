"""Reading a built dataset (see `dataset` for its layout): the manifest, the frames by source number, and the
consecutive pairs training steps on. Frames are read from disk on demand, so memory stays flat in clip length."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .atomic import read_json
from .errors import EdnError
from .pose.follow import frame_ranges
from .pose.framing import Framing, Mipmap
from .pose.hands import hand_mask
from .pose.track import PoseTrack
from .pose.window import FramePlan, window_framing
from .tensors import stick_figure, to_tensor

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FORMAT_NAME = "edn-dataset"


def read_matte(path: Path, size: tuple[int, int]) -> np.ndarray | None:
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


def training_pairs(entries: list[dict], whose: str, path: str | Path) -> list[tuple[int, int]]:
    """The consecutive pairs of the 'train' frames among manifest `entries`: what training steps on (frame t and t+1,
    for temporal smoothing). EdnError naming `path` when there is none, so that dataset build and training refuse
    by this one rule; `whose` says where the frames came from ("the track gives")."""
    pairs = consecutive_pairs([e["frame"] for e in entries if e["split"] == "train"])
    if not pairs:
        frames = [e["frame"] for e in entries]
        held = sum(e["split"] != "train" for e in entries)
        listed = f"frame {frames[0]}" if len(frames) == 1 else f"frames {frame_ranges(frames)}"
        count = f"{len(frames)} usable frame{'' if len(frames) == 1 else 's'}"
        held_out = f"; {held} held out by --holdout" if held else ""
        raise EdnError(f"{whose} {count} ({listed}{held_out}), so no two consecutive frames are left to train on: "
                       "training steps on pairs of frames t and t+1 (temporal smoothing)", path=path)
    return pairs


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
        self._hands = None  # the hand refiner's crops (`hand_data.HandCrops`), opened on first use
        self.has_hands = self.manifest.get("hand_size") is not None  # see `hand_data.crop_size`

    def framing(self, n: int):
        """How source frame `n` maps to the training size (its window, or the one fixed framing)."""
        entry = self.entries[n]
        if self.plan.windowed:
            return window_framing(self.plan.src_size, self.size, entry["window"])
        return Framing(self.plan.src_size, self.size, self.plan.mode)

    def plate_mipmap(self) -> Mipmap:
        """The full-resolution background plate, read once."""
        if self._plate is None:
            from .video import read_image

            path = self.dir / "plate.png"
            if not path.is_file():
                raise EdnError("dataset plate missing", path=path)
            self._plate = Mipmap(read_image(path))
        return self._plate

    def plate(self, n: int) -> torch.Tensor:
        """The background plate as seen through frame `n`'s window, (3, H, W) in [-1, 1]."""
        return to_tensor(self.plate_mipmap().image(self.framing(n)))

    def hand_crops(self):
        """The hand refiner's crops (`hand_data.HandCrops`), opened once."""
        if self._hands is None:
            from .hand_data import HandCrops

            self._hands = HandCrops(self.dir, self.manifest, self.plate_mipmap())
        return self._hands

    def hands(self, n: int, mirror: bool = False) -> dict[str, torch.Tensor]:
        """Frame `n`'s two hands for the hand refiner, mirrored or not (see `hand_data.HandCrops.frame`)."""
        return self.hand_crops().frame(n, mirror)

    def window(self, n: int) -> torch.Tensor:
        """Frame `n`'s window (x0, y0, width, height) in source pixels."""
        return torch.tensor(self.entries[n]["window"], dtype=torch.float32)

    def frames(self, split: str) -> list[int]:
        return [e["frame"] for e in self.manifest["frames"] if e["split"] == split]

    def label(self, n: int, mirror: bool = False) -> torch.Tensor:
        """Frame `n`'s stick figure, (3, H, W) in [-1, 1]; `mirror`: as the mirrored frame shows it."""
        return to_tensor(stick_figure(self.track, n - self.track.frame_start, mirror))

    def image(self, n: int) -> torch.Tensor:
        from .video import read_image

        path = self.dir / "frames" / f"frame_{n:06d}{self.ext}"
        if not path.is_file():
            raise EdnError("dataset frame missing", path=path, frame=n)
        img = read_image(path)
        if (img.shape[1], img.shape[0]) != self.size:
            raise EdnError(f"dataset frame is {img.shape[1]}x{img.shape[0]}, the dataset {self.size[0]}x{self.size[1]}",
                           path=path, frame=n)
        return to_tensor(img)

    def matte(self, n: int) -> torch.Tensor:
        """(1, H, W) in [0, 1]; all ones when the dataset has no mattes (the alpha loss is then off)."""
        if not self.has_mattes:
            return torch.ones(1, self.size[1], self.size[0])
        path = self.dir / "mattes" / f"matte_{n:06d}.png"
        m = read_matte(path, self.size)
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
    """Consecutive (t, t+1) training pairs (`training_pairs`), loaded from disk per item: the unit of temporal
    smoothing."""

    def __init__(self, dataset_dir: str | Path):
        self.store = FrameStore(dataset_dir)
        self.pairs = training_pairs(self.store.manifest["frames"], "the dataset has", dataset_dir)

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

    def mirrored(self, batch: dict[str, torch.Tensor], which: list[bool]) -> dict[str, torch.Tensor]:
        """`batch` with the pairs `which` marks mirrored left to right: the frames, mattes, hand masks and plate
        crops flipped, the stick figures drawn from the mirrored poses, the face centres and the windows (in the
        mirrored source frame) moved with them. pix2pixHD flips its training pictures too; here a pose's sides
        must follow, or a mirrored front view would be drawn as a back view. It shows the generator each view
        from the other side: a clip where the person turns only one way still teaches the other."""
        if not any(which):
            return batch
        out = {k: v.clone() for k, v in batch.items()}
        w, src_w = self.store.size[0], self.store.plan.src_size[0]
        for b in (b for b, m in enumerate(which) if m):
            for key in ("image", "matte", "hands", "plate"):
                if key in out:
                    out[key][b] = out[key][b].flip(-1)
            out["label"][b] = torch.stack([self.store.label(n, mirror=True) for n in out["frame"][b].tolist()])
            x = out["face"][b, :, 0]
            out["face"][b, :, 0] = torch.where(x >= 0, w - x, x)
            if "window" in out:  # x0 in the mirrored source frame
                out["window"][b, :, 0] = src_w - out["window"][b, :, 0] - out["window"][b, :, 2]
        return out

    def hand_batch(self, frames: torch.Tensor, which: list[bool] | None = None) -> dict[str, torch.Tensor]:
        """The hand refiner's data for a batch's pairs (`frames`: (B, 2) source numbers), loaded only when the face
        stage wants it (a body step would read and drop them), of each pair's second frame (see `hand_step`):
        hand_label, hand_real, hand_matte, hand_plate (B, 2 hands, C, S, S), hand_box (B, 2, 3) and hand_mirrored
        (B,): the pairs `which` marks, mirrored (`HandCrops.frame`)."""
        which = which or [False] * len(frames)
        hands = [self.store.hands(pair[1], m) for pair, m in zip(frames.tolist(), which)]
        return {**{f"hand_{k}": torch.stack([h[k] for h in hands]) for k in hands[0]},
                "hand_mirrored": torch.tensor(which)}
