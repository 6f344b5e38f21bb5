"""Generation: a trained run plus a pose track -> RGBA frames of the target person, one PNG per source frame.

The track is in the target's frame size (`edn pose normalize` maps another dancer's motion there first); the
run's recorded `Framing` maps it to the training size exactly as the dataset mapped the target's frames. The
generator runs frame by frame and is fed its own previous output, as in training (temporal smoothing); the Face
GAN, when trained, refines the face crop. Frames are written atomically as `frame_NNNNNN.png` (source numbering)
and never held in memory together. A frame with no pose is written fully transparent and restarts the temporal
chain (the next frame is generated from zeros, like a first frame).

`resume`: frames already on disk are kept, and the last one is read back as the previous output of the next;
being 8-bit, that is not bit-identical to an uninterrupted run, but visually the same.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from . import device as devices
from .atomic import ensure_dir
from .dataset import face_centre, stick_figure, to_image, to_tensor
from .errors import EdnError
from .events import Reporter
from .models.config import ModelConfig
from .models.face import build_face_generator, crop_faces, face_origins, paste_faces
from .models.generator import build_generator
from .pose.framing import Framing
from .pose.track import PoseTrack


class Synthesizer:
    """Runs the generator one frame at a time, remembering its previous output for the next frame."""

    def __init__(self, G, FG, cfg: ModelConfig, dev: torch.device, amp: bool = True, alpha: bool = True,
                 channels_last: bool | None = None):
        self.G, self.FG, self.cfg, self.dev = G.eval(), (FG.eval() if FG is not None else None), cfg, dev
        self.amp = amp
        self.alpha = alpha and cfg.alpha  # False: the run had no mattes, frames come out opaque
        if channels_last is None:  # where it was measured to help (on a CPU: bf16 inference only)
            channels_last = devices.use_channels_last(dev, training=False) and (dev.type != "cpu" or amp)
        self.channels_last = channels_last
        if channels_last:
            G.to(memory_format=torch.channels_last)
        self.prev: torch.Tensor | None = None

    def reset(self) -> None:
        """Start a new temporal chain (after a gap): the next frame gets zeros as its previous output."""
        self.prev = None

    def set_previous(self, rgb: torch.Tensor) -> None:
        """Continue a chain from a frame already generated (3, H, W) in [-1, 1]."""
        self.prev = rgb[None].to(self.dev)

    @torch.no_grad()
    def next_frame(self, label: torch.Tensor, centre: torch.Tensor | None = None):
        """label (3, H, W) in [-1, 1] -> (rgb (3, H, W) in [-1, 1], alpha (1, H, W) in [0, 1]), on the CPU."""
        x = label[None].to(self.dev)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with devices.autocast(self.dev, self.amp):
            rgb, alpha = self.G(x, self.prev)
        rgb = rgb.float()
        self.prev = rgb  # the body generator's own output, as in training (the face refinement is not fed back)
        if self.FG is not None and centre is not None and float(centre[0]) >= 0:
            size, (h, w) = self.cfg.face_size, rgb.shape[-2:]
            origins = face_origins(centre.reshape(1, 2).float(), size, h, w)
            with devices.autocast(self.dev, self.amp):
                face = self.FG.refine(crop_faces(x, origins, size), crop_faces(rgb, origins, size))
            rgb = paste_faces(rgb, face.float(), origins)
        if alpha is None or not self.alpha:
            alpha = torch.ones_like(rgb[:, :1])
        return rgb[0].cpu(), alpha[0].float().cpu()


@dataclasses.dataclass
class Run:
    """What generation needs from a run folder: the networks and how frames were framed in training."""

    G: torch.nn.Module
    FG: torch.nn.Module | None
    cfg: ModelConfig
    framing: Framing
    mattes: bool
    step: int
    checkpoint: Path
    device: torch.device


def load_run(run_dir: str | Path, device: str = "auto", reporter: Reporter | None = None) -> Run:
    """The newest good checkpoint of `run_dir`, its networks built and loaded for inference."""
    from .training.checkpoint import load_latest

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EdnError("run folder not found", path=run_dir)
    found = load_latest(run_dir, reporter)
    if found is None:
        raise EdnError("no checkpoint in this run folder (train first with `edn train`)", path=run_dir)
    state, path = found
    try:
        cfg = ModelConfig.from_dict(state["model"])
        framing = Framing.from_dict(state["dataset"]["framing"])
        dev = devices.choose_device(device)
        G = build_generator(cfg)
        G.load_state_dict(state["nets"]["G"])
        face_trained = "FG" in state["nets"] and int(state["step"]) > int(state["plan"]["body_steps"])
        FG = None
        if face_trained:
            FG = build_face_generator(cfg)
            FG.load_state_dict(state["nets"]["FG"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise EdnError(f"checkpoint does not hold a usable generator ({exc})", path=path) from exc
    G.to(dev)
    if FG is not None:
        FG.to(dev)
    return Run(G, FG, cfg, framing, bool(state["dataset"].get("mattes", True)), int(state["step"]), path, dev)


def generate(run_dir: str | Path, track_path: str | Path, output: str | Path, *, video: str | Path | None = None,
             resume: bool = False, device: str = "auto", amp: bool = True,
             reporter: Reporter | None = None) -> dict:
    """Write RGBA frames for every row of the track; returns the summary `edn generate` prints."""
    from .video import VideoWriter, read_image

    output = Path(output)
    reporter = reporter or Reporter(False)
    track = PoseTrack.load(track_path)
    present = (track.body[..., 2] > 0).any(axis=1)
    if not present.any():
        raise EdnError("the track has no person in any frame: nothing to generate", path=track_path)
    ensure_dir(output)
    if video is not None and Path(video).suffix.lower() != ".mp4":
        raise EdnError("the preview video must be an .mp4 file", path=video)
    run = load_run(run_dir, device, reporter)
    w, h = run.cfg.width, run.cfg.height
    fr = run.framing
    if (track.width, track.height) != tuple(fr.src_size):
        reporter.log(f"warning: the track is {track.width}x{track.height}, the training footage was "
                     f"{fr.src_size[0]}x{fr.src_size[1]}; framing the track on its own (normalize it to the "
                     "target with `edn pose normalize` for the person's scale to match)")
        fr = Framing((track.width, track.height), (w, h), fr.mode)
    framed = track.replace(body=fr.points(track.body), hands=fr.points(track.hands), face=fr.points(track.face),
                           width=w, height=h)
    synth = Synthesizer(run.G, run.FG, run.cfg, run.device, amp=amp, alpha=run.mattes)

    counts = {"written": 0, "empty": 0, "kept": 0}
    writer = VideoWriter(video, track.fps) if video is not None else None
    with writer if writer is not None else contextlib.nullcontext(), _BackgroundWrites() as frames_out:
        for i in range(track.frames):
            n = track.frame_start + i
            path = output / f"frame_{n:06d}.png"
            if not present[i]:
                rgba = np.zeros((h, w, 4), np.uint8)
                frames_out.write(path, rgba)
                synth.reset()
                counts["empty"] += 1
            elif resume and path.is_file():
                rgba = read_image(path, -1)  # IMREAD_UNCHANGED
                if rgba.ndim != 3 or rgba.shape[:2] != (h, w) or rgba.shape[2] != 4:
                    raise EdnError(f"existing frame is not a {w}x{h} RGBA image; remove it or the folder",
                                   path=path, frame=n)
                synth.set_previous(to_tensor(rgba[..., :3]))
                counts["kept"] += 1
            else:
                label = to_tensor(stick_figure(framed, i))
                c = face_centre(framed.body[i], framed.face[i])
                rgb, alpha = synth.next_frame(label, torch.tensor(c) if c is not None else None)
                a = (alpha[0].clamp(0, 1) * 255).round().byte().numpy()
                rgba = np.dstack([to_image(rgb), a])
                frames_out.write(path, rgba)
                counts["written"] += 1
            if writer is not None:
                writer.write(rgba[..., :3])
            reporter.progress(i + 1, track.frames, stage="generate", frame=n)
    return {
        "output": str(output), "frames": track.frames, **counts, "size": [w, h],
        "first_frame": track.frame_start, "last_frame": track.frame_start + track.frames - 1,
        "checkpoint": str(run.checkpoint), "step": run.step, "face_gan": run.FG is not None,
        "video": str(video) if video is not None else None, "device": devices.describe(run.device),
    }


class _BackgroundWrites:
    """Encodes and writes PNGs on one worker thread while the generator computes the next frame (OpenCV's
    encoder releases the GIL). At most two frames wait, so memory stays flat; a write error is raised here."""

    def __init__(self, depth: int = 2):
        self.depth = depth
        self.pending: collections.deque = collections.deque()

    def __enter__(self) -> "_BackgroundWrites":
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edn-write")
        return self

    def write(self, path: Path, img: np.ndarray) -> None:
        from .video import write_image

        self.pending.append(self.pool.submit(write_image, path, img))
        while len(self.pending) > self.depth:
            self.pending.popleft().result()

    def __exit__(self, *exc) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True)


