"""The one folder layout of an EDN project, shared by `edn transfer`, `edn demo` and the Blender add-on.

Pure paths (no numpy, no torch): the add-on imports this module from the engine copy it bundles, so both sides
always agree where a stage's output lives.

    ROOT/target/track.npz      the target's pose track (source pixels)
    ROOT/target/mattes/        the target's person mattes, matte_NNNNNN.png
    ROOT/dataset/              the training dataset (`edn dataset build`)
    ROOT/run/                  the training run (`edn train`)
    ROOT/source/track.npz      the source motion's pose track (when the source is a clip)
    ROOT/driving.npz           the source motion cleaned and normalized to the target (`edn pose drive`)
    ROOT/figures/              stick figures of the driving track (`edn render`)
    ROOT/frames/               the generated RGBA frames (`edn generate`)
    ROOT/preview.mp4           source | stick figure | result
    ROOT/.stages/              what each finished stage was made from (`stages.Stages`)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# What a person-over-plate run keeps beside its checkpoints (`runs.keep_plate`): the dataset's background plate, so
# the run generates, and the add-on lays its result over the plate, even after the dataset is gone.
RUN_PLATE, RUN_PLATE_MASK = "plate.png", "plate_mask.png"
RUN_HAND_BANK = "hand_bank.npz"  # the training hands generation lays over the refined ones (`hand_bank`)
# How generation draws the hands of a run with a hand refiner (`edn generate --hands`, the add-on's Hands): the
# person's training hands over the refined ones (the default), the refiner's own, or the body generator's alone
# (its blurred hands, and the refiner's cost saved: 1.3x the frames a second, `benchmarks/bench_generate_epyc.json`).
HANDS = ("training", "refined", "body")


@dataclasses.dataclass(frozen=True)
class ProjectLayout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def target_track(self) -> Path:
        return self.root / "target" / "track.npz"

    @property
    def target_mattes(self) -> Path:
        return self.root / "target" / "mattes"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def source_track(self) -> Path:
        return self.root / "source" / "track.npz"

    @property
    def driving(self) -> Path:
        return self.root / "driving.npz"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def preview(self) -> Path:
        return self.root / "preview.mp4"

    @property
    def stages(self) -> Path:
        return self.root / ".stages"
