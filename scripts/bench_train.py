"""Benchmark one training step of each model profile: seconds per step and peak memory.

    .venv/bin/python scripts/bench_train.py                                  # -> benchmarks/bench_train.json
    .venv/bin/python scripts/bench_train.py --profiles cpu,paper-global --sizes 256 --steps 2   # a short run

A step is the trainer's real body step (`edn_engine.training.trainer.body_step`): the temporal pair
I0 = G(x_t, 0), I1 = G(x_t+1, I0), the generator update (LSGAN on the multi-scale discriminator, feature
matching, VGG19 or L1, person/limb L1, matte L1) and the discriminator update. The face stage's step
(`face_step`: face generator and face discriminator, body frozen) is timed too, and `mixed_step_s` weighs the
two by the default share of face steps. Each case runs in its own process, so its peak memory (max RSS on CPU,
peak allocated on CUDA) is its own and one case's warm-up does not favour the next.

Inputs are random tensors of the training shapes, and the VGG19 has random weights (the cost of a step does not
depend on either; no weight file or footage is needed). Sizes: "native" is each profile's own training size,
"256" is 256x256 (the issue's comparison: the cpu profile's step must take at most a third of paper-global's).
Precision "auto" is bf16 autocast where the device computes bf16 natively, as the trainer does; "both" also
runs fp32. The shared machine is noisy: the JSON keeps every step's time and the load average around each case;
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OUT = REPO / "benchmarks" / "bench_train.json"


# ------------------------------------------------------------------------------------------------------------
# one case, in its own process
# ------------------------------------------------------------------------------------------------------------
def run_case(case: dict) -> dict:
    import torch

    from edn_engine import device as devices
    from edn_engine.models.config import get_profile
    from edn_engine.models.discriminator import build_discriminator
    from edn_engine.models.face import build_face_discriminator, build_face_generator
    from edn_engine.models.generator import build_generator
    from edn_engine.models.losses import GANLoss, VGGLoss
    from edn_engine.models.vgg import VGG19
    from edn_engine.training.config import TrainConfig
    from edn_engine.training.trainer import FaceRefine, body_step, face_step

    torch.manual_seed(0)
    dev = devices.choose_device(case["device"])
    w, h = case["width"], case["height"]
    cfg = get_profile(case["profile"], width=w, height=h, **({"perceptual": case["perceptual"]}
                                                            if case["perceptual"] else {}))
    G, D = build_generator(cfg).to(dev), build_discriminator(cfg).to(dev)
    FG, FD = build_face_generator(cfg).to(dev), build_face_discriminator(cfg).to(dev)
    if devices.use_channels_last(dev, training=True):
        for net in (G, D, FG, FD):
            net.to(memory_format=torch.channels_last)
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opt = {k: torch.optim.Adam(n.parameters(), **adam) for k, n in (("G", G), ("D", D), ("FG", FG), ("FD", FD))}
    vgg = VGGLoss(VGG19().eval().requires_grad_(False)).to(dev) if cfg.perceptual == "vgg19" else None
    gan = GANLoss()
    bf16 = case["precision"] == "bf16"
    n = case["batch"]
    batch = {"label": torch.rand(n, 2, 3, h, w) * 2 - 1, "image": torch.rand(n, 2, 3, h, w) * 2 - 1,
             "matte": (torch.rand(n, 2, 1, h, w) > 0.5).float(),
             "face": torch.tensor([[w / 2, h / 4]] * 2).expand(n, 2, 2).contiguous()}
    batch = {k: v.to(dev) for k, v in batch.items()}

    def timed(fn) -> list[float]:
        times = []
        for i in range(case["warmup"] + case["steps"]):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= case["warmup"]:
                times.append(round(time.perf_counter() - t0, 4))
        return times

    ctx = lambda: devices.autocast(dev, bf16)  # noqa: E731  (a fresh context per step)
    load_before = os.getloadavg()
    body = timed(lambda: body_step(G, D, opt["G"], opt["D"], batch, cfg, gan, vgg, ctx()))
    refine = FaceRefine(FG)
    face = timed(lambda: face_step(G, refine, FD, opt["FG"], opt["FD"], batch, cfg, gan, vgg, ctx())) \
        if case["face"] and cfg.face else []
    G.eval()
    label = batch["label"][:1, 0].contiguous()  # one frame, as `edn generate` feeds it
    if devices.use_channels_last(dev, training=False):
        G.to(memory_format=torch.channels_last)
        label = label.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fwd = timed(lambda: G(label, label))
    body_s, face_s = min(body), (min(face) if face else None)
    ff = TrainConfig().face_fraction
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        **case, "step_impl": "edn_engine.training.trainer.body_step/face_step",
        "body_step_s": body_s, "body_step_times": body,
        "face_step_s": face_s, "face_step_times": face,
        "mixed_step_s": round((1 - ff) * body_s + ff * face_s, 4) if face_s is not None else body_s,
        "generator_frames_per_s": round(1.0 / min(fwd), 2),
        "peak_memory_mib": round(peak, 1),
        "params_m": {k: round(sum(p.numel() for p in net.parameters()) / 1e6, 3)
                     for k, net in (("G", G), ("D", D), ("FG", FG), ("FD", FD))},
        "model": cfg.to_dict(), "device_info": devices.describe(dev),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# ------------------------------------------------------------------------------------------------------------
# the driver
# ------------------------------------------------------------------------------------------------------------
def cases(args) -> list[dict]:
    from edn_engine import device as devices
    from edn_engine.models.config import get_profile

    dev = devices.choose_device(args.device)
    precisions = {"auto": ["bf16" if devices.bf16_supported(dev) else "fp32"], "fp32": ["fp32"],
                  "bf16": ["bf16"], "both": ["bf16", "fp32"]}[args.precision]
    out = []
    for profile in args.profiles.split(","):
        cfg = get_profile(profile)
        sizes = []
        for s in args.sizes.split(","):
            size = (cfg.width, cfg.height) if s == "native" else (int(s.split("x")[0]), int(s.split("x")[-1]))
            if size not in sizes:
                sizes.append(size)
        for w, h in sizes:
            for prec in precisions:
                out.append({"profile": profile, "width": w, "height": h, "precision": prec, "batch": args.batch,
                            "steps": args.steps, "warmup": args.warmup, "device": args.device,
                            "perceptual": args.perceptual, "face": not args.no_face})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="cpu,paper-global,paper-local")
    ap.add_argument("--sizes", default="native,256", help="comma list of 'native' and WxH or N (NxN)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per case (the minimum is reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (oneDNN builds its kernels)")
    ap.add_argument("--batch", type=int, default=1, help="pairs per step")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16", "both"), default="auto")
    ap.add_argument("--perceptual", choices=("vgg19", "none"), default=None,
                    help="override every profile's perceptual loss (default: each profile's own)")
    ap.add_argument("--no-face", action="store_true", help="skip the face stage's step")
    ap.add_argument("--device", default="auto")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case (JSON) and print its result
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0

    from edn_engine.atomic import write_json
    import torch

    results = []
    for case in cases(args):
        label = f"{case['profile']} {case['width']}x{case['height']} {case['precision']}"
        print(f"timing {label} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
            results.append({**case, "error": tail[0]})
            print(f"  failed: {tail[0]}", file=sys.stderr)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"  body {r['body_step_s']:.3f} s/step, face {r['face_step_s']} s/step, "
              f"G {r['generator_frames_per_s']} frames/s, peak {r['peak_memory_mib']:.0f} MiB", file=sys.stderr)

    summary = {}
    for prec in ("bf16", "fp32"):
        by = {r["profile"]: r for r in results
              if "error" not in r and (r["width"], r["height"]) == (256, 256) and r["precision"] == prec}
        if "cpu" in by and "paper-global" in by:
            ratio = by["cpu"]["mixed_step_s"] / by["paper-global"]["mixed_step_s"]
            summary[f"cpu_over_paper_global_256_{prec}"] = round(ratio, 4)
            summary[f"goal_step_at_most_one_third_{prec}"] = ratio <= 1 / 3
        if "cpu" in by:
            summary[f"cpu_generator_frames_per_s_256_{prec}"] = by["cpu"]["generator_frames_per_s"]
            summary[f"goal_generate_10_fps_{prec}"] = by["cpu"]["generator_frames_per_s"] >= 10
    write_json(args.output, {
        "benchmark": "train_step", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},
        "command": sys.argv[1:], "summary": summary, "cases": results,
    })
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
