"""The face stage (Face GAN and hand refiner) trained again over a finished `bench_quality.py` run's frozen body, once
per variant of the model's face settings, each scored by `edn eval` on the run's held-out frames.

    .venv/bin/python scripts/bench_face_refit.py WORK --variants "as_trained;face_lr=1" --avx2
        -> benchmarks/bench_face_refit.json

WORK is a `bench_quality.py --work` folder (its window dataset and a run on it). Each variant starts from the run's body
checkpoint at the end of its body stage, with the face networks' initial weights made as the trainer makes them (the
run's seed), and takes the run's face steps (the stage's length as planned, a fixed count, so the figures do not
depend on the machine's load) through the trainer's own resume. Its body, data order and seed are the run's, so a
variant differs from another only by its settings: a single run's hands move by up to 14 points from run to run
(benchmarks/README.md), most of it the body's. A variant is `as_trained` (the run's settings) or KEY=VALUE,... over
them. Training is fp32 (`--avx2` holds it to AVX2, as bench_quality's `--no-amp --avx2` runs); generation is as
`edn eval` on this CPU. Run from another checkout, the script measures that checkout's code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edn_engine import threads  # noqa: E402  (stdlib only: it does not load torch)

threads.apply_policy()

if TYPE_CHECKING:
    from edn_engine.training.config import TrainConfig

FIGURES = ("person_found", "body_error", "hands_found", "face_found", "ssim_person", "ssim_face", "background_psnr",
           "flicker")
RUN_FILES = ("run.json", "plate.png", "plate_mask.png", "hand_bank.npz", "losses.csv")


def body_checkpoint(source: Path, run: Path, changes: dict) -> tuple[int, TrainConfig]:
    """Write into `run` the source run at the end of its body stage, with fresh face networks and `changes` to its
    model settings; returns its body steps and the trainer's config for the rest of its planned steps."""
    import torch

    from edn_engine.models.config import ModelConfig
    from edn_engine.pipeline import TrainOptions, train_config
    from edn_engine.runs import load_latest, save_checkpoint
    from edn_engine.training.trainer import Networks

    run.mkdir(parents=True)
    for name in RUN_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, run / name)
    state, _ = load_latest(source)
    body_steps, steps = int(state["plan"]["body_steps"]), int(state["plan"]["steps"])
    cfg = ModelConfig.from_dict({**state["model"], **changes})
    tcfg = train_config(TrainOptions(steps=steps, amp=False))
    torch.manual_seed(tcfg.seed)  # built as the trainer builds them: the seed fixes every initial weight
    fresh = Networks.build(cfg, "FG" in state["nets"], "HG" in state["nets"], tcfg, torch.device("cpu"))
    nets, optim = dict(state["nets"]), dict(state["optim"])
    for name in ("FG", "FD", "HG", "HD"):
        if name in nets:
            nets[name], optim[name] = getattr(fresh, name).state_dict(), fresh.opt[name].state_dict()
    save_checkpoint(run, {**state, "nets": nets, "optim": optim, "step": body_steps, "model": cfg.to_dict(),
                          "sampler": {"step": body_steps}}, body_steps)
    return body_steps, tcfg


def refit(work: Path, source: Path, variant: str, out: Path) -> dict:
    """Train the face stage of `variant` over `source`'s body into out/run and score it into out/eval."""
    from edn_engine.commands.train import parse_overrides
    from edn_engine.evaluate import evaluate_run
    from edn_engine.events import Reporter
    from edn_engine.training import train

    changes = {} if variant == "as_trained" else parse_overrides(variant.split(","))
    if out.exists():
        shutil.rmtree(out)
    body_steps, tcfg = body_checkpoint(source, out / "run", changes)
    summary = train(work / "dataset_window", out / "run", tcfg, resume=True, reporter=Reporter(False))
    report = evaluate_run(out / "run", out / "eval", reporter=Reporter(False))
    return {"variant": variant, "changes": changes, "body_steps": body_steps, "face_steps": tcfg.steps - body_steps,
            "train_seconds": summary.get("seconds"), **{k: report["model"].get(k) for k in FIGURES},
            "eval": str(out / "eval")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="a finished `bench_quality.py --work` folder")
    ap.add_argument("--run", default=None, help="the run in WORK (default: its first person-over-plate run)")
    ap.add_argument("--variants", default="as_trained", help="';'-separated: as_trained, or KEY=VALUE,...")
    ap.add_argument("--avx2", action="store_true", help="hold ATen, oneDNN and MKL to AVX2")
    ap.add_argument("--tag", default="", help="names this call's folders in WORK (face_refit[TAG]_N)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "bench_face_refit.json")
    args = ap.parse_args()
    if args.avx2:  # read when torch first loads, so set before any engine import that loads it
        from benchkit import AVX2_ENV

        os.environ.update(AVX2_ENV)
    import benchkit

    from edn_engine.atomic import write_json

    result = {"benchmark": "bench_face_refit", "work": str(args.work), "code": str(REPO), "commit": benchkit.commit(),
              "machine": benchkit.cpu_info(), "avx2_only": args.avx2, "variants": []}
    source = args.work / args.run if args.run else sorted(args.work.glob("run_*_window*"))[0]
    result["run"] = source.name
    for i, variant in enumerate(args.variants.split(";")):
        row = refit(args.work, source, variant, args.work / f"face_refit{args.tag}_{i}")
        print(json.dumps(row), flush=True)
        result["variants"].append(row)
        write_json(args.out, result)


if __name__ == "__main__":
    main()
