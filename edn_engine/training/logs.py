"""What rank 0 shows of a run while it trains: losses.csv (one row per step), loss_curve.png and preview PNGs.

The CSV is cut back to the step resumed from (`trim_csv`), so after a resume it reads as one uninterrupted run.
Previews run the generator through `inference.Synthesizer`, the code `edn generate` runs, so they show what
generation will produce in the window (the hand refiner, which works at the source's resolution, is not shown).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..inference import Synthesizer
from ..models.config import ModelConfig
from ..tensors import composite, to_image

LOSS_COLUMNS = ("G_gan", "G_feat", "G_vgg", "G_l1", "G_person", "G_limb", "G_hand", "G_alpha", "D_real", "D_fake",
                "F_gan", "F_feat", "F_vgg", "F_l1", "FD_real", "FD_fake",
                "H_gan", "H_feat", "H_vgg", "H_l1", "H_alpha", "HD_real", "HD_fake")
HEADER = ("step", "stage", "lr", "sec_per_step", *LOSS_COLUMNS)


def trim_csv(path: Path, step: int) -> None:
    """Drop rows after the step being resumed from: they will be trained again. The rows kept are rewritten under
    today's header, by column name, so a run begun by an engine that logged other losses stays one table."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (r.get("step") or "").isdigit() and int(r["step"]) <= step]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows([[r.get(c) or "" for c in HEADER] for r in rows])


def append_csv(path: Path, step: int, stage: str, lr: float, sec: float, losses: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(HEADER)
        w.writerow([step, stage, f"{lr:.6g}", f"{sec:.4f}",
                    *(f"{losses[c]:.6g}" if c in losses else "" for c in LOSS_COLUMNS)])


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """The loss curves so far, one line per loss, as a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    colours = plt.get_cmap("tab20").colors
    for k, col in enumerate(LOSS_COLUMNS):
        pts = [(int(r["step"]), float(r[col])) for r in rows if r.get(col)]
        if pts and all(math.isfinite(v) for _, v in pts) and any(v != 0 for _, v in pts):  # skip terms that are off
            ax.plot(*zip(*pts), label=col, linewidth=1, color=colours[k % len(colours)],
                    linestyle={"F": "--", "H": ":"}.get(col[0], "-"))  # face stage: Face GAN dashed, hands dotted
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def preview_frames(store, k: int) -> list[int]:
    """The first `k` held-out frames (consecutive, so the temporal feedback shows); training frames if none."""
    frames = store.frames("holdout") or store.frames("train")
    return frames[:k]


def write_preview(run_dir: Path, step: int, G, FG, store, frames: list[int], cfg: ModelConfig,
                  dev: torch.device) -> Path:
    """previews/preview_NNNNNNNN.png: one row per frame, stick figure | generated | real."""
    from ..video import write_image

    synth = Synthesizer(G, FG, cfg, dev, channels_last=False)  # G keeps its training memory format
    rows = []
    for n in frames:
        label = store.label(n)
        if store.has_plate:  # the person over the plate, as the discriminator judges it
            plate = store.plate(n)
            rgb, alpha = synth.next_frame(label, store.face_centre(n), plate, store.window(n))
            rgb = composite(rgb, alpha, plate)
        else:
            rgb, alpha = synth.next_frame(label, store.face_centre(n))
        rows.append(np.concatenate([to_image(label), to_image(rgb), to_image(store.image(n))], axis=1))
    G.train()
    if FG is not None:
        FG.train()
    path = run_dir / "previews" / f"preview_{step:08d}.png"
    write_image(path, np.concatenate(rows, axis=0))
    return path
