"""Benchmark one training step: each model profile's seconds per step and peak memory, and for the `cpu` profile
the CPU threading policy and fp32 formulations, quiet and under load.

    .venv/bin/python scripts/bench_train.py                                  # -> benchmarks/bench_train.json
    .venv/bin/python scripts/bench_train.py --profiles cpu --sizes 256 --no-load   # a short run
    .venv/bin/python scripts/bench_train.py --profiles "" --compile          # the cpu matrix only, with compile

A step is the trainer's real body step (`edn_engine.training.steps.body_step`): the temporal pair
I0 = G(x_t, 0), I1 = G(x_t+1, I0), the generator update (LSGAN on the multi-scale discriminator, feature
matching, VGG19 or L1, person/limb L1, matte L1) and the discriminator update. The face stage's step
(`face_step`: face generator and face discriminator, body frozen) is timed too, with the frozen body's crops of
the pair already kept (as for every pair but the first time it comes round), and `mixed_step_s` weighs the two
by the default share of face steps. So is the hand refiner's (`hand_step`, "hands": a person-over-plate run's
face stage adds it to each face step), on a 1080p clip's 96-pixel hand crops. Inputs are random tensors of the
training shapes and the VGG19 has random weights (a step's cost depends on neither).

Part 1, "profiles": each profile at each size and precision, alone in its own process with the engine's
threading policy (`edn_engine.threads`), so its peak memory is its own. Sizes: "native" is each profile's own
training size, "256" is 256x256 (the issue's comparison: the cpu profile's step must take at most a third of
paper-global's).

Part 2, "cpu_matrix": the `cpu` profile at 256x256 in every variant at once, taking turns (scripts/benchkit.py),
first quiet, then with one busy process per CPU: precision bf16 / fp32 / fp32-avx2 (fp32 with ATen, oneDNN and
MKL held to AVX2, the no-bf16 laptop's instructions) x threading none / engine / one-thread, and for fp32 the
formulations the engine could choose: channels_last flipped, plain PyTorch layers ("plain-layers": the resize
upsampling unfolded, the output convolution in the default layout; see `models.blocks`), torch.compile (with
--compile; its compile time is the warm-up step's excess). The JSON keeps every time and the load average per
phase; compare ratios within a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchkit  # noqa: E402

OUT = REPO / "benchmarks" / "bench_train.json"


# ------------------------------------------------------------------------------------------------------------
# one case, in its own worker process
# ------------------------------------------------------------------------------------------------------------
def setup(case: dict) -> tuple[benchkit.Units, dict]:
    """The networks, optimizers and a batch of one case; units "body", "face", "hands", "generator" (a no-grad
    frame)."""
    import torch

    from edn_engine import device as devices
    from edn_engine.models.config import get_profile
    from edn_engine.models.discriminator import build_discriminator
    from edn_engine.models.face import build_face_discriminator, build_face_generator
    from edn_engine.models.generator import build_generator
    from edn_engine.models.losses import GANLoss, VGGLoss
    from edn_engine.models.vgg import VGG19
    from edn_engine.training.distributed import FaceRefine, deterministic
    from edn_engine.training.steps import FrozenBody, body_step, face_step

    if case["plain_layers"]:
        benchkit.plain_layers()
    torch.manual_seed(0)
    dev = devices.choose_device(case["device"])
    w, h = case["width"], case["height"]
    cfg = get_profile(case["profile"], width=w, height=h,
                      **({"perceptual": case["perceptual"]} if case["perceptual"] else {}))
    G, D = build_generator(cfg).to(dev), build_discriminator(cfg).to(dev)
    FG, FD = build_face_generator(cfg).to(dev), build_face_discriminator(cfg).to(dev)
    bf16 = case["precision"] == "bf16"
    cl = case["channels_last"]
    if cl is None:  # the trainer's choice for this precision
        cl = devices.use_channels_last(dev, training=True, bf16=bf16)
    if cl:
        for net in (G, D, FG, FD):
            net.to(memory_format=torch.channels_last)
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opt = {k: torch.optim.Adam(n.parameters(), **adam) for k, n in (("G", G), ("D", D), ("FG", FG), ("FD", FD))}
    vgg = VGGLoss(VGG19().eval().requires_grad_(False)).to(dev) if cfg.perceptual == "vgg19" else None
    params = {k: round(sum(p.numel() for p in net.parameters()) / 1e6, 3)
              for k, net in (("G", G), ("D", D), ("FG", FG), ("FD", FD))}
    refine = FaceRefine(FG)
    if case["compile"]:  # dynamic=False: torch 2.13's default (dynamic shapes) fails in inductor on the
        benchkit.cold_compile_cache()  # face discriminator (ValueRangeError: Invalid ranges [0:-1])
        G, D, refine, FD = (torch.compile(m, dynamic=False) for m in (G, D, refine, FD))
    gan = GANLoss()
    n = case["batch"]
    batch = {"label": torch.rand(n, 2, 3, h, w) * 2 - 1, "image": torch.rand(n, 2, 3, h, w) * 2 - 1,
             "matte": (torch.rand(n, 2, 1, h, w) > 0.5).float(),
             "face": torch.tensor([[w / 2, h / 4]] * 2).expand(n, 2, 2).contiguous(),
             "frame": torch.arange(2 * n).reshape(n, 2)}
    batch = {k: v.to(dev) for k, v in batch.items()}
    label = batch["label"][:1, 0].contiguous()  # one frame, as `edn generate` feeds it

    def synced(fn, training: bool = True):
        def run():
            with deterministic(dev) if training else contextlib.nullcontext():  # the trainer's kernel settings
                fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
        return run

    def generator_frame():
        with torch.no_grad(), devices.autocast(dev, bf16):
            G(label, label)

    units = {"body": synced(lambda: body_step(G, D, opt["G"], opt["D"], batch, cfg, gan, vgg,
                                              devices.autocast(dev, bf16)))}
    body = FrozenBody(G)  # one for both refiners, as in the trainer; the warm-up steps make the pair's crops
    if case["face"] and cfg.face:
        units["face"] = synced(lambda: face_step(body, refine, FD, opt["FG"], opt["FD"], batch, cfg, gan, vgg,
                                                 devices.autocast(dev, bf16)))
    if case["face"] and cfg.hands:  # a person-over-plate run's face stage also trains the hand refiner
        units["hands"] = synced(_hand_unit(cfg, batch, body, dev, bf16, cl, gan, vgg))
    units["generator"] = synced(generator_frame, training=False)  # as `edn generate` runs it
    return units, {"threads": torch.get_num_threads(), "channels_last_used": cl, "params_m": params,
                   "model": cfg.to_dict(), "device_info": devices.describe(dev)}


def _hand_unit(cfg, batch: dict, body, dev, bf16: bool, channels_last: bool, gan, vgg):
    """`hand_step` on the two hands of a pair's second frame at HAND_SIZE (a 1080p clip's), the crops kept."""
    import torch

    from edn_engine import device as devices
    from edn_engine.hand_data import HAND_SIZE
    from edn_engine.models.hand import build_hand_discriminator, build_hand_refiner
    from edn_engine.training.steps import hand_step

    HG, HD = build_hand_refiner(cfg).to(dev), build_hand_discriminator(cfg).to(dev)
    if channels_last:
        for net in (HG, HD):
            net.to(memory_format=torch.channels_last)
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=2e-4, betas=(0.5, 0.999)) for n in (HG, HD))
    n, s, (h, w) = len(batch["frame"]), HAND_SIZE, batch["label"].shape[-2:]
    hands = {"hand_label": torch.rand(n, 2, 3, s, s) * 2 - 1, "hand_real": torch.rand(n, 2, 3, s, s) * 2 - 1,
             "hand_matte": (torch.rand(n, 2, 1, s, s) > 0.5).float(), "hand_plate": torch.rand(n, 2, 3, s, s) * 2 - 1,
             "hand_box": torch.tensor([[w * 0.2, h * 0.5, h * 0.1], [w * 0.7, h * 0.5, h * 0.1]]).expand(n, 2, 3),
             "window": torch.tensor([0.0, 0.0, w, h]).expand(n, 2, 4), "plate": torch.zeros(n, 2, 3, h, w)}
    full = {**batch, **{k: v.contiguous().to(dev) for k, v in hands.items()}}
    return lambda: hand_step(body, HG, HD, opt_g, opt_d, full, cfg, gan, vgg, devices.autocast(dev, bf16))


# ------------------------------------------------------------------------------------------------------------
# the driver
# ------------------------------------------------------------------------------------------------------------
def base_case(args, profile: str, w: int, h: int, precision: str, **kw) -> dict:
    case = {"profile": profile, "width": w, "height": h, "precision": precision, "policy": "engine",
            "channels_last": None, "compile": False, "plain_layers": False, "batch": args.batch, "warmup": args.warmup,
            "device": args.device, "perceptual": args.perceptual, "face": not args.no_face}
    case.update(kw)
    case["label"] = " ".join(str(x) for x in (profile, f"{w}x{h}", case["precision"], case["policy"],
                                              *(["channels_last" if case["channels_last"] else "contiguous"]
                                                if case["channels_last"] is not None else []),
                                              *(["compile"] if case["compile"] else []),
                                              *(["plain-layers"] if case["plain_layers"] else [])))
    return case


def profile_cases(args, precisions: list[str]) -> list[dict]:
    from edn_engine.models.config import get_profile

    out = []
    for profile in [p for p in args.profiles.split(",") if p]:
        cfg = get_profile(profile)
        sizes = []
        for s in args.sizes.split(","):
            size = (cfg.width, cfg.height) if s == "native" else (int(s.split("x")[0]), int(s.split("x")[-1]))
            if size not in sizes:
                sizes.append(size)
        out += [base_case(args, profile, w, h, p) for w, h in sizes for p in precisions]
    return out


def matrix_cases(args, precisions: list[str]) -> list[dict]:
    """The cpu profile at 256x256: every precision x threading policy, and fp32's alternative formulations."""
    from edn_engine import device as devices
    import torch

    out = [base_case(args, "cpu", 256, 256, p, policy=pol) for p in precisions for pol in args.policies.split(",")]
    for p in (p for p in precisions if p != "bf16"):
        default_cl = devices.use_channels_last(torch.device("cpu"), training=True, bf16=False)
        out.append(base_case(args, "cpu", 256, 256, p, channels_last=not default_cl))
        out.append(base_case(args, "cpu", 256, 256, p, plain_layers=True))
        if args.compile:
            out.append(base_case(args, "cpu", 256, 256, p, compile=True))
    return out


def summarize(profiles: list[dict], matrix: list[dict]) -> dict:
    """The figures the README and the engine's defaults cite."""
    from edn_engine.training.config import TrainConfig

    ff = TrainConfig().face_fraction
    summary: dict = {}
    for r in profiles + matrix:
        body, face = benchkit.median(r, "quiet", "body"), benchkit.median(r, "quiet", "face")
        if body is not None:
            r["mixed_step_s"] = round((1 - ff) * body + ff * face, 4) if face is not None else body
        hands = benchkit.median(r, "quiet", "hands")
        if face is not None and hands is not None:  # a person-over-plate run's face-stage step: both refiners
            r["face_stage_step_s"] = round(face + hands, 4)
    for prec in benchkit.PRECISIONS:
        by = {r["profile"]: r for r in profiles
              if "mixed_step_s" in r and (r["width"], r["height"]) == (256, 256) and r["precision"] == prec}
        if "cpu" in by and "paper-global" in by:
            ratio = by["cpu"]["mixed_step_s"] / by["paper-global"]["mixed_step_s"]
            summary[f"cpu_over_paper_global_256_{prec}"] = round(ratio, 4)
            summary[f"goal_step_at_most_one_third_{prec}"] = ratio <= 1 / 3
    table = {}
    for r in matrix:
        if "error" in r:
            continue
        row = table[r["label"]] = {}
        for phase in ("quiet", "loaded"):
            for unit in ("body", "face", "hands", "generator"):
                for stat in ("median_s", "min_s"):
                    if benchkit.median(r, phase, unit, stat) is not None:
                        row[f"{phase}_{unit}_{stat}"] = benchkit.median(r, phase, unit, stat)
        if r["compile"]:
            row["compile_s"] = benchkit.compile_s(r)
    summary["cpu_256"] = table
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="cpu,paper-global,paper-local", help="part 1 (empty: skip it)")
    ap.add_argument("--sizes", default="native,256", help="comma list of 'native' and WxH or N (NxN)")
    ap.add_argument("--steps", type=int, default=3, help="part 1: timed steps per case (the median is reported)")
    ap.add_argument("--rounds", type=int, default=3, help="part 2: rounds of one step per variant and phase")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (oneDNN builds its kernels)")
    ap.add_argument("--batch", type=int, default=1, help="pairs per step")
    ap.add_argument("--precision", choices=("auto", "both", "all"), default="all",
                    help="auto: bf16 where native else fp32; both: + fp32; all: + fp32-avx2 (CPU only)")
    ap.add_argument("--perceptual", choices=("vgg19", "none"), default=None,
                    help="override every profile's perceptual loss (default: each profile's own)")
    ap.add_argument("--no-face", action="store_true", help="skip the face stage's step")
    ap.add_argument("--no-matrix", action="store_true", help="skip part 2")
    ap.add_argument("--no-load", action="store_true", help="part 2 quiet only")
    ap.add_argument("--compile", action="store_true", help="part 2 also times torch.compile (minutes to compile)")
    ap.add_argument("--policies", default=",".join(benchkit.POLICIES), help="part 2: threading variants")
    ap.add_argument("--settle", type=float, default=0,
                    help="part 2: wait up to this many seconds for a load average under half the CPUs first")
    ap.add_argument("--device", default="auto")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: serve one case (JSON)
    args = ap.parse_args()
    if args.worker:
        return benchkit.serve(setup, json.loads(args.worker))

    from edn_engine import device as devices
    from edn_engine.atomic import write_json

    dev = devices.choose_device(args.device)
    native = devices.bf16_supported(dev)
    precisions = {"auto": ["bf16" if native else "fp32"], "both": ["bf16", "fp32"] if native else ["fp32"],
                  "all": (["bf16"] if native else []) + ["fp32"] + (["fp32-avx2"] if dev.type == "cpu" else [])
                  }[args.precision]
    script = Path(__file__).resolve()
    profiles = []
    for case in profile_cases(args, precisions[:2]):  # fp32-avx2 is for the cpu profile's matrix
        profiles += benchkit.in_turns(script, [case], {"body": args.steps, "face": args.steps, "hands": args.steps,
                                                       "generator": args.steps}, rounds=1, loaded=False)
    matrix = [] if args.no_matrix else benchkit.in_turns(
        script, matrix_cases(args, precisions), {"body": 1, "face": 1, "hands": 1, "generator": 3},
        rounds=args.rounds, loaded=not args.no_load, settle_s=args.settle)
    summary = summarize(profiles, matrix)
    write_json(args.output, {
        "benchmark": "train_step", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": benchkit.cpu_info(), "command": sys.argv[1:],
        **benchkit.VARIANTS,
        "summary": summary, "profiles": profiles, "cpu_matrix": matrix,
    })
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
