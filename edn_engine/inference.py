"""Inference: a trained run's networks, loaded from its newest good checkpoint, run one frame at a time.

Used by `edn generate` (every frame of a track) and by training's previews (a few held-out frames), so the
previews show exactly what generation will produce. Sits above `runs` (checkpoints) and below both users.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from . import device as devices
from .errors import EdnError
from .events import Reporter
from .models.config import ModelConfig
from .models.face import build_face_generator, crop_faces, face_origins, paste_faces
from .models.generator import build_generator
from .models import int8
from .models.hand import box_windows, build_hand_refiner
from .pose.window import FramePlan
from .hand_bank import HandBank
from .layout import RUN_HAND_BANK, RUN_PLATE
from .runs import RUN_INFO, load_latest, read_run_info
from .tensors import carry, composite


@dataclasses.dataclass(frozen=True)
class BodyFrame:
    """The body generator's frame (batches of one, on the device): its stick figure, the person's colour and
    alpha, and what the next frame is fed (the composite over the plate, or the colour alone)."""

    label: torch.Tensor
    rgb: torch.Tensor
    alpha: torch.Tensor
    shown: torch.Tensor

    def __reduce__(self):
        """Pickled (to a frame writer: `finishing`) as numpy arrays, where torch would move each tensor to shared
        memory and pass its file descriptor."""
        return _body_frame, tuple(t.detach().cpu().numpy() for t in (self.label, self.rgb, self.alpha, self.shown))


def _body_frame(*arrays) -> BodyFrame:
    return BodyFrame(*(torch.from_numpy(a) for a in arrays))


class Synthesizer:
    """Runs the generator one frame at a time, remembering its previous output for the next frame. Without `G`, it
    only refines frames the generator made elsewhere (`finishing`)."""

    def __init__(self, G, FG, cfg: ModelConfig, dev: torch.device, amp: bool = True, alpha: bool = True,
                 channels_last: bool | None = None, HG=None):
        self.precision = devices.inference_precision(dev, amp)  # "int8": quantized copies of the networks
        G, FG, HG = (None if net is None else int8.quantized(net) if self.precision == "int8" else net.eval()
                     for net in (G, FG, HG))
        self.G, self.FG, self.cfg, self.dev = G, FG, cfg, dev
        self.HG = HG  # the hand refiner (`models.hand`), if the run trained one
        self.amp = amp
        self.alpha = alpha and cfg.alpha  # False: the run had no mattes, frames come out opaque
        if channels_last is None:  # where it was measured to help (on a CPU: bf16 inference only)
            channels_last = devices.use_channels_last(dev, training=False, bf16=self.precision == "bf16")
        self.channels_last = channels_last
        if channels_last and G is not None:
            G.to(memory_format=torch.channels_last)
        self.prev: torch.Tensor | None = None
        self.prev_window: torch.Tensor | None = None

    def reset(self) -> None:
        """Start a new temporal chain (after a gap): the next frame gets zeros as its previous output."""
        self.prev, self.prev_window = None, None

    def set_previous(self, image: torch.Tensor, window: torch.Tensor | None = None) -> None:
        """Continue a chain from a frame already generated: (3, H, W) in [-1, 1], as seen through its `window`
        (the composite over the plate, in person-over-plate runs)."""
        self.prev = image[None].to(self.dev)
        self.prev_window = None if window is None else window.reshape(1, 4).float().to(self.dev)

    def next_frame(self, label: torch.Tensor, centre: torch.Tensor | None = None, plate: torch.Tensor | None = None,
                   window: torch.Tensor | None = None):
        """label (3, H, W) in [-1, 1] -> (rgb (3, H, W) in [-1, 1], alpha (1, H, W) in [0, 1]), on the CPU.

        Person over plate: `plate` is the plate crop (3, H, W) and `window` the frame's window (x0, y0, w, h);
        as in training, the composite is fed to the next frame, carried into its window, and the Face GAN
        refines the composite's face. The colour returned is the person's, to be laid over any plate."""
        return self.refine_face(self.body_frame(label, plate, window), centre)

    @torch.no_grad()
    def body_frame(self, label: torch.Tensor, plate: torch.Tensor | None = None,
                   window: torch.Tensor | None = None) -> BodyFrame:
        """`next_frame`'s first half, the body generator's frame, which the next frame is fed: after it, the face
        (`refine_face`) and the hands (`refine_hands`) of this frame may be refined elsewhere (`finishing`: in the
        frame writer's process) while the next one is made."""
        x = label[None].to(self.dev)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        win = None if window is None else window.reshape(1, 4).float().to(self.dev)
        prev = self.prev
        if prev is not None and win is not None and self.prev_window is not None:
            prev = carry(prev, self.prev_window, win)
        with devices.autocast(self.dev, self.amp):
            rgb, alpha = self.G(x, prev)
        rgb = rgb.float()
        if alpha is None or not self.alpha:
            alpha = torch.ones_like(rgb[:, :1])
        alpha = alpha.float()
        shown = rgb if plate is None else composite(rgb, alpha, plate[None].to(self.dev))
        # G's own output, as in training (the face refinement is not fed back, nor seen by the hand refiner)
        self.prev, self.prev_window = shown, win
        return BodyFrame(x, rgb, alpha, shown)

    @torch.no_grad()
    def refine_face(self, body: BodyFrame, centre: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`next_frame`'s second half: the Face GAN on the face of `body` centred at `centre` (none where None or
        negative) -> (rgb, alpha) as `next_frame` returns them."""
        rgb = body.rgb
        if self.FG is not None and centre is not None and float(centre[0]) >= 0:
            size, (h, w) = self.cfg.face_size, rgb.shape[-2:]
            origins = face_origins(centre.reshape(1, 2).float(), size, h, w)
            shown = crop_faces(body.shown, origins, size)
            with devices.autocast(self.dev, self.amp):
                face = self.FG.refine(crop_faces(body.label, origins, size), shown)
            # the Face GAN refines the composite; the person's colour takes its change, not the composite itself
            # (which would carry the training plate into the RGBA wherever the alpha is partial: a halo)
            rgb = paste_faces(rgb, crop_faces(rgb, origins, size) + (face.float() - shown), origins).clamp(-1, 1)
        return rgb[0].cpu(), body.alpha[0].cpu()

    @torch.no_grad()
    def refine_hands(self, body: BodyFrame, window: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                     plates: torch.Tensor):
        """The hand refiner on the hands of `body`, as in training: it sees that frame's composite and alpha before
        the Face GAN's paste. `window`: the frame's window; `boxes` (n, 3) the hand boxes in source pixels, `labels`
        and `plates` (n, 3, S, S) the hands' stick figures and plate crops.
        -> colour (n, 3, S, S) in [-1, 1] and alpha (n, 1, S, S) in [0, 1], on the CPU."""
        n, size = len(boxes), tuple(labels.shape[-2:])
        picture = torch.cat([body.shown, body.alpha], 1).expand(n, -1, -1, -1)
        windows = window.reshape(1, 4).float().to(self.dev).expand(n, -1)
        crops = carry(picture, windows, box_windows(boxes.float().to(self.dev)), size)
        with devices.autocast(self.dev, self.amp):
            colour, a, _ = self.HG(labels.to(self.dev), crops[:, :3], crops[:, 3:], plates.to(self.dev))
        return colour.float().cpu(), a.float().cpu()


@dataclasses.dataclass
class Run:
    """What generation needs from a run folder: the networks and how frames were framed in training."""

    G: torch.nn.Module
    FG: torch.nn.Module | None
    cfg: ModelConfig
    plan: FramePlan  # how the dataset framed the target's frames: a fixed framing or person-centred windows
    mattes: bool
    step: int
    checkpoint: Path
    device: torch.device
    plate: Path | None = None  # the background plate (person-over-plate runs), kept in the run folder
    HG: torch.nn.Module | None = None  # the hand refiner, if trained
    hand_size: int | None = None  # the side its hand boxes are seen at (the dataset's hand crops')
    hand_bank: HandBank | None = None  # the training hands laid over the refined ones (`hand_bank`), if kept


def load_run(run_dir: str | Path, device: str = "auto", reporter: Reporter | None = None) -> Run:
    """The newest good checkpoint of `run_dir`, its networks built and loaded for inference. The checkpoint holds
    all they need: a damaged run.json (which `edn eval` and `edn transfer` refuse: they need its dataset) is named
    in a warning, and the run is used all the same, so a run whose dataset is gone still generates."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EdnError("run folder not found", path=run_dir)
    found = load_latest(run_dir, reporter)
    if found is None:
        raise EdnError("no checkpoint in this run folder (train first with `edn train`)", path=run_dir)
    if (run_dir / RUN_INFO).is_file():
        try:
            read_run_info(run_dir)
        except EdnError as exc:
            (reporter or Reporter(False)).log(f"warning: {exc}; the checkpoint alone is used")
    state, path = found
    try:
        cfg = ModelConfig.from_dict(state["model"])
        plan = FramePlan.from_dict(state["dataset"]["framing"])
        dev = devices.choose_device(device)
        G = build_generator(cfg)
        G.load_state_dict(state["nets"]["G"])
        body_steps = state["plan"]["body_steps"]  # None: stopped before --minutes planned a face stage
        face_stage_trained = body_steps is not None and int(state["step"]) > int(body_steps)
        FG = HG = bank = None
        if face_stage_trained and "FG" in state["nets"]:
            FG = build_face_generator(cfg)
            FG.load_state_dict(state["nets"]["FG"])
        if face_stage_trained and "HG" in state["nets"]:
            HG = build_hand_refiner(cfg)
            HG.load_state_dict(state["nets"]["HG"])
            if (run_dir / RUN_HAND_BANK).is_file():  # a run trained before the bank: its refined hands alone
                bank = HandBank.load(run_dir / RUN_HAND_BANK)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise EdnError(f"checkpoint does not hold a usable generator ({exc})", path=path) from exc
    for net in (G, FG, HG):
        if net is not None:
            net.to(dev)
    plate = run_dir / RUN_PLATE if plan.windowed else None
    return Run(G, FG, cfg, plan, bool(state["dataset"].get("mattes", True)), int(state["step"]), path, dev, plate,
               HG, state["dataset"].get("hand_size"), bank)
