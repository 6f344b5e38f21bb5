"""The Face GAN alone, retrained over a finished demo's frozen body: how the demo's figures move with the face
stage's steps and learning rate, without training the body again for each setting.

    .venv/bin/python scripts/bench_face_stage.py DEMO_OUT --steps 800 --lr-scales 1,4 --seeds 0,1
        -> benchmarks/bench_face_stage.json

DEMO_OUT is a finished `edn demo` output folder (its dataset, run and second motion). For each setting the face
generator and discriminator start from fresh weights and take `steps` face steps as the trainer takes them
(`face_step` over the run's body through `FrozenBody`, the trainer's sampler and learning-rate schedule, the
profile's face_lr replaced by the setting's scale). The run's checkpoint with that face generator in place of its
own then generates the second motion, and the demo's evaluation scores it against ground truth. The run as
trained and the run without its Face GAN are scored too. Precision: the engine's choice (bf16 where the CPU has
it; hold ATen, oneDNN and MKL to AVX2 to measure a CPU without it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchkit  # noqa: E402
import torch  # noqa: E402

from edn_engine import device as devices  # noqa: E402
from edn_engine.atomic import write_json  # noqa: E402
from edn_engine.dataset import PairDataset  # noqa: E402
from edn_engine.demo import evaluate_demo  # noqa: E402
from edn_engine.events import Reporter  # noqa: E402
from edn_engine.generate import generate  # noqa: E402
from edn_engine.models.config import ModelConfig  # noqa: E402
from edn_engine.models.face import build_face_discriminator, build_face_generator  # noqa: E402
from edn_engine.models.generator import build_generator  # noqa: E402
from edn_engine.models.losses import GANLoss  # noqa: E402
from edn_engine.runs import keep_plate, load_latest, save_checkpoint  # noqa: E402
from edn_engine.training.config import TrainConfig, lr_at  # noqa: E402
from edn_engine.training.distributed import StepSampler  # noqa: E402
from edn_engine.training.steps import FrozenBody, face_step  # noqa: E402

FIGURES = ("pose_error", "body_error", "facing_flipped", "ssim_person", "ssim_face")


def train_face(body: FrozenBody, data: PairDataset, cfg: ModelConfig, steps: int, lr_scale: float, seed: int,
               dev: torch.device) -> tuple[dict, float]:
    """A fresh Face GAN trained `steps` face steps; returns its generator's weights and the seconds it took."""
    torch.manual_seed(seed)
    FG, FD = build_face_generator(cfg).to(dev), build_face_discriminator(cfg).to(dev)
    tcfg = TrainConfig(seed=seed)
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=tcfg.lr, betas=tcfg.betas) for n in (FG, FD))
    sampler, gan = StepSampler(len(data), 1, 0, 1, seed), GANLoss()
    t0 = time.monotonic()
    for step in range(steps):
        batch = {k: v[None].to(dev) for k, v in data[sampler.indices(step)[0]].items()}
        for o in (opt_g, opt_d):
            for group in o.param_groups:
                group["lr"] = lr_at(step, 0, steps, tcfg) * lr_scale
        face_step(body, FG.refine, FD, opt_g, opt_d, batch, cfg, gan, None, devices.autocast(dev, True))
    return FG.state_dict(), time.monotonic() - t0


def score(demo: Path, state: dict, face: dict | None, work: Path) -> dict:
    """The demo's figures for the run's checkpoint with the face generator `face` (None: no Face GAN)."""
    if work.exists():
        shutil.rmtree(work)
    nets = {k: v for k, v in state["nets"].items() if k != "FG"}
    if face is not None:
        nets["FG"] = face
    save_checkpoint(work / "run", {**state, "nets": nets}, int(state["step"]))
    keep_plate(work / "run", demo / "dataset")
    generate(work / "run", demo / "scene_transfer" / "track.npz", work / "generated", device="cpu")
    report = evaluate_demo(work, demo / "dataset", demo / "scene_transfer", work / "generated", Reporter(False))
    return {m: {k: report[m][k] for k in FIGURES} for m in ("model", "retrieval", "retrieval_absolute")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("demo", type=Path, help="a finished `edn demo` output folder")
    ap.add_argument("--steps", default="800", help="face steps, comma-separated")
    ap.add_argument("--lr-scales", default="1,4", help="face-stage learning rates as multiples of 2e-4")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "bench_face_stage.json")
    args = ap.parse_args()

    dev = torch.device("cpu")
    state, checkpoint = load_latest(args.demo / "run")
    cfg = ModelConfig.from_dict(state["model"])
    G = build_generator(cfg).to(dev)
    G.load_state_dict(state["nets"]["G"])
    body, data = FrozenBody(G), PairDataset(args.demo / "dataset")
    body_steps = state["plan"]["body_steps"]
    result = {"demo": str(args.demo), "checkpoint": checkpoint.name, "cpu": benchkit.cpu_info(),
              "bf16_autocast": devices.bf16_supported(dev),
              "isa_limits": {k: os.environ[k] for k in benchkit.AVX2_ENV if k in os.environ},
              "body_steps": body_steps, "face_steps_trained": int(state["step"]) - body_steps, "runs": []}
    with tempfile.TemporaryDirectory(prefix="edn_face_stage_") as tmp:
        work = Path(tmp)
        result["as_trained"] = score(args.demo, state, state["nets"].get("FG"), work / "score")
        result["no_face_gan"] = score(args.demo, state, None, work / "score")
        for steps in (int(s) for s in args.steps.split(",")):
            for scale in (float(s) for s in args.lr_scales.split(",")):
                for seed in (int(s) for s in args.seeds.split(",")):
                    face, seconds = train_face(body, data, cfg, steps, scale, seed, dev)
                    row = {"steps": steps, "lr_scale": scale, "seed": seed, "train_seconds": round(seconds, 1),
                           **score(args.demo, state, face, work / "score")["model"]}
                    print(row, flush=True)
                    result["runs"].append(row)
                    write_json(args.out, result)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
