"""Benchmark the instance norm's formulation: PyTorch's instance norm against the same statistics computed as a
group norm of one channel a group (`models.blocks.InstanceNorm2d`, the engine's choice on a CPU).

    .venv/bin/python scripts/bench_norm.py --avx2        # fp32 held to AVX2 -> benchmarks/bench_norm.json
    .venv/bin/python scripts/bench_norm.py --bf16 -o benchmarks/bench_norm_bf16.json

Two parts, in one process, the two formulations taking turns (each first in every other round) so a shared
machine's drift falls on both: "layers", each norm of the `cpu` profile's networks at its own shape (forward
alone, and forward and backward at the training batch); "networks", the units of `scripts/bench_train.py` for the
`cpu` profile at 256x256 (the body's training step, the face stage's face and hand steps, a generator frame as
`edn generate` runs it), random weights and inputs (a step's cost depends on neither). The JSON keeps every time,
the medians, and the median over rounds of each round's ratio (the machine's drift within a round cancels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import benchkit  # noqa: E402

OUT = REPO / "benchmarks" / "bench_norm.json"
# (channels, side) of the cpu profile's norms: the body generator's levels, the face's and the hand refiner's maps
SHAPES = ((16, 256), (32, 128), (64, 64), (128, 32), (256, 16), (64, 48), (8, 96))


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def layer_units(bf16: bool, batch: int) -> dict:
    """Per shape: the forward on one frame, and forward and backward on a training batch (two frames a pair)."""
    import torch

    from edn_engine.models.blocks import norm_layer

    units = {}
    for c, s in SHAPES:
        x1, xb = torch.randn(1, c, s, s), torch.randn(2 * batch, c, s, s)
        grad = torch.randn_like(xb)
        norm = norm_layer(c)

        def forward(x=x1, norm=norm):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                norm(x.to(torch.bfloat16) if bf16 else x)

        def backward(x=xb, g=grad, norm=norm):
            x = x.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = norm(x.to(torch.bfloat16) if bf16 else x)
            y.backward(g.to(y.dtype))

        units[f"{c}x{s}x{s} forward"] = forward
        units[f"{c}x{s}x{s} forward+backward"] = backward
    return units


def network_units(args) -> dict:
    import bench_train

    case = {"profile": "cpu", "width": 256, "height": 256, "precision": "bf16" if args.bf16 else "fp32",
            "policy": "engine", "channels_last": None, "compile": False, "plain_layers": False, "batch": args.batch,
            "warmup": 1, "device": "cpu", "perceptual": "none", "face": True}
    units, _ = bench_train.setup(case)
    return units


def _round_ratio(times: dict, unit: str, reps: int) -> float:
    """The median over rounds of (instance norm's round median / group norm's), each round's `reps` samples."""
    def per_round(t):
        return [sorted(t[i:i + reps])[reps // 2] for i in range(0, len(t), reps)]

    rounds = zip(per_round(times["instance_norm"][unit]), per_round(times["group_norm"][unit]))
    ratios = sorted(a / b for a, b in rounds)
    return ratios[len(ratios) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--avx2", action="store_true", help="hold ATen, oneDNN and MKL to AVX2 (fp32, as without bf16)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (a CPU with AVX-512 BF16 or AMX)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layer-reps", type=int, default=20, help="timed calls per layer unit and round")
    ap.add_argument("--batch", type=int, default=1, help="pairs per training step")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args()
    if args.avx2:
        os.environ.update(benchkit.AVX2_ENV)
    from edn_engine import threads

    threads.apply_policy()  # before torch loads: training's policy, as `edn train` runs
    from torch import nn

    from edn_engine.atomic import write_json
    from edn_engine.models.blocks import InstanceNorm2d

    group = InstanceNorm2d.forward
    variants = {"group_norm": group, "instance_norm": nn.InstanceNorm2d.forward}
    parts = {"layers": (layer_units(args.bf16, args.batch), args.layer_reps), "networks": (network_units(args), 1)}
    times = {part: {v: {u: [] for u in units} for v in variants} for part, (units, _) in parts.items()}
    load = [benchkit.load_average()]
    for part, (units, reps) in parts.items():
        for name, fn in units.items():  # warm-up: oneDNN builds its kernels, the frozen body keeps its crops
            for forward in variants.values():
                InstanceNorm2d.forward = forward
                fn()
        for r in range(args.rounds):
            for v, forward in list(variants.items())[:: 1 if r % 2 == 0 else -1]:  # each goes first in turn
                InstanceNorm2d.forward = forward
                for name, fn in units.items():
                    times[part][v][name] += timed(fn, reps)
            print(f"{part}: round {r + 1} of {args.rounds}", file=sys.stderr)
        load.append(benchkit.load_average())
    InstanceNorm2d.forward = group

    median = {part: {v: {u: round(1e3 * sorted(t)[len(t) // 2], 4) for u, t in by_unit.items()}
                     for v, by_unit in by_v.items()} for part, by_v in times.items()}
    speedup = {part: {u: round(m["instance_norm"][u] / m["group_norm"][u], 3) for u in m["group_norm"]}
               for part, m in median.items()}
    paired = {part: {u: round(_round_ratio(times[part], u, reps), 3) for u in units}
              for part, (units, reps) in parts.items()}
    write_json(args.output, {
        "benchmark": "bench_norm", "what": __doc__.split("\n\n")[0],
        "machine": benchkit.cpu_info(), "precision": "bf16" if args.bf16 else "fp32",
        "avx2_only": args.avx2, "threads": threads.settings(os.environ), "load_average": load,
        "median_ms": median, "speedup_instance_over_group": speedup, "paired_round_ratio": paired,
        "times_s": times})
    for part in speedup:
        for u, x in speedup[part].items():
            print(f"{part:8s} {u:32s} instance {median[part]['instance_norm'][u]:9.3f} ms  "
                  f"group {median[part]['group_norm'][u]:9.3f} ms  x{x} (paired x{paired[part][u]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
