"""Quality benchmark: training setups at equal wall-clock budget, scored by `edn eval` against retrieval baselines.

    .venv/bin/python scripts/bench_quality.py                      # 20 minutes each -> benchmarks/bench_quality.json
    .venv/bin/python scripts/bench_quality.py --minutes 1 -o /tmp/bq.json   # a quick end-to-end check
    .venv/bin/python scripts/bench_quality.py --work W             # a rerun reuses W's finished stages
    .venv/bin/python scripts/bench_quality.py --setups cpu:window,cpu:full,paper-global:full --no-amp

A setup is PROFILE:FRAMING. `window` is person over plate (the default whenever the camera is static: the person-
centred window, composited over the background plate); `full` is the whole frame, letterboxed (before issue 12,
and the fallback for a moving camera). Each framing gets one dataset from the same clip (the last 20% held out);
every setup trains for the same number of minutes and is scored with `edn eval` on the held-out frames, each
driven by its own pose, next to nearest-pose and absolute-pose retrieval. The stages are the engine's own
pipeline (`edn_engine.pipeline`, the chain `edn transfer` runs). `--no-amp` trains and generates in fp32, and `--avx2`
holds the kernels to AVX2: on a CPU with bf16 (AMX, AVX-512 BF16) the two together stand in for the many CPUs
without it (this CPU's clock and caches, an AVX2 laptop's instructions).

The goals of issue 12 are checked for the first setup and recorded: a person found in >= 95% of frames; body
error <= 0.10 torso lengths and >= 30% below absolute retrieval's; hands found in >= 50% of the frames whose real
frame shows them; person SSIM >= retrieval's; background PSNR >= 30 dB; flicker <= 1.2x the real footage's.
Every setup is scored at the clip's own framing: window setups on their full-resolution composites, whole-frame
setups on their training frame scaled back to the clip (as `edn generate` writes it). Timings on a shared machine
are noisy: the JSON records the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edn_engine import threads  # noqa: E402  (stdlib only: it does not load torch)

threads.apply_policy()  # before torch loads, as `edn` does: the training runs at the speed users get

from edn_engine.atomic import write_json  # noqa: E402

DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "video" / "romp_sample2.mp4"  # static camera, a clean plate


def perceptual_default() -> str:
    from edn_engine.errors import EdnError
    from edn_engine.models.vgg import find_vgg19

    try:
        find_vgg19(allow_download=False)
        return "vgg19"
    except EdnError:
        return "none"


def goals(run: dict) -> dict:
    """Issue 12's goals for one setup, each True/False (False where a figure is missing)."""
    m, r, a = run["model"], run["retrieval"], run.get("retrieval_absolute") or {}

    def ok(expr):
        try:
            return bool(expr())
        except (TypeError, KeyError):  # a None or absent figure
            return False

    return {
        "person_found_95pct": ok(lambda: m["person_found"] >= 0.95),
        "body_error_at_most_0.10": ok(lambda: m["body_error"] <= 0.10),
        "body_error_30pct_below_absolute_retrieval": ok(lambda: m["body_error"] <= 0.7 * a["body_error"]),
        "hands_found_50pct": ok(lambda: m["hands_found"] >= 0.5),
        "ssim_person_at_least_retrieval": ok(lambda: m["ssim_person"] >= r["ssim_person"]),
        "background_psnr_30db": ok(lambda: m["background_psnr"] >= 30),
        "flicker_at_most_1.2x_real": ok(lambda: m["flicker"] <= 1.2),
    }


def cpu_model() -> dict:
    """Which CPU the figures came from, and whether it computes bf16 natively."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"model": fields.get("Model name", "").strip() or platform.processor(),
            "avx2": "avx2" in flags, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--setups", default="cpu:window,cpu:full", help="PROFILE:FRAMING,... (default cpu:window,cpu:full)")
    ap.add_argument("--minutes", type=float, default=20.0, help="training minutes per setup (default 20)")
    ap.add_argument("--no-amp", action="store_true",
                    help="train in fp32, as on a CPU without bf16 (generation is as `edn generate` on this CPU)")
    ap.add_argument("--compare-fp32", action="store_true",
                    help="also score each run generated in fp32, beside its bf16 or int8 generation")
    ap.add_argument("--avx2", action="store_true",
                    help="hold ATen, oneDNN and MKL to AVX2 (with --no-amp: the instructions of a CPU without bf16)")
    ap.add_argument("--perceptual", choices=("vgg19", "none"), default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a model setting over the profile's, as `edn train --set` (repeatable); named in the runs")
    ap.add_argument("--face-fraction", type=float, default=None,
                    help="share of the time for the face stage (Face GAN and hand refiner; default: the trainer's)")
    ap.add_argument("--mirror", type=float, default=None,
                    help="chance that a training pair is mirrored (`edn train --mirror`; default: the trainer's); "
                         "named in the runs")
    ap.add_argument("--eval-frames", type=int, default=None, help="score only the first N held-out frames")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the datasets, runs and reports here; a rerun reuses each finished stage")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "bench_quality.json")
    args = ap.parse_args()
    if args.avx2:  # read when torch first loads (below), so set before any engine import that loads it
        from benchkit import AVX2_ENV

        os.environ.update(AVX2_ENV)

    from edn_engine.commands.train import parse_overrides
    from edn_engine.device import choose_device, inference_precision
    from edn_engine.errors import EdnError
    from edn_engine.models.config import check_setting
    from edn_engine.events import Reporter
    from edn_engine.pipeline import Pipeline, TrainOptions
    from edn_engine.sizes import parse_size

    setups = [tuple(s.split(":")) for s in args.setups.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="edn-bench-quality-"))
    pipe = Pipeline(work, Reporter(False))
    perceptual = args.perceptual or perceptual_default()
    load_before = os.getloadavg()

    print(f"detecting poses in {args.video}", file=sys.stderr)
    track, mattes = pipe.target_pose(args.video)
    runs, datasets = {}, {}
    suffix = "_avx2" if args.avx2 else ""  # a run made with other kernels is another run: never reused for this one
    settings = parse_overrides(args.set)
    face_fraction = {} if args.face_fraction is None else {"face_fraction": args.face_fraction}
    mirror = {} if args.mirror is None else {"mirror": args.mirror}
    if "perceptual" in settings:
        ap.error("give the perceptual loss with --perceptual, not --set")
    try:  # a typo is refused now, not after detecting poses and building datasets
        for key, value in settings.items():
            check_setting(key, value)
    except EdnError as exc:
        ap.error(str(exc))
    suffix += "".join(f"_{k}={v}" for k, v in sorted({**settings, **mirror}.items()))  # so are other settings' runs
    for profile, framing in setups:
        name = f"{profile}_{framing}{suffix}"
        if framing not in datasets:
            print(f"building the {framing} dataset at {args.size}", file=sys.stderr)
            datasets[framing] = pipe.dataset(args.video, parse_size(args.size), 0.2, track, mattes, profile,
                                             framing=framing, out=work / f"dataset_{framing}",
                                             name=f"dataset_{framing}")
        dataset = datasets[framing]
        manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
        print(f"training {name} for {args.minutes:g} min", file=sys.stderr)
        run_dir = pipe.train(dataset, TrainOptions(profile=profile, minutes=args.minutes, perceptual=perceptual,
                                                   amp=not args.no_amp, settings=settings,
                                                   **face_fraction, **mirror),
                             work / f"run_{name}", name=f"train_{name}")
        trained = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        print(f"evaluating {name}", file=sys.stderr)
        report = pipe.evaluate(run_dir, work / f"eval_{name}", args.eval_frames, name=f"eval_{name}")
        runs[name] = {
            "profile": profile, "framing": manifest["framing"]["mode"],
            "train": {k: trained.get(k) for k in ("step", "body_steps", "seconds", "sec_per_step", "face_stage",
                                                  "device", "bf16_autocast")},
            "train_wall_seconds": pipe.stages.seconds.get(f"train_{name}"),
            "eval_wall_seconds": pipe.stages.seconds.get(f"eval_{name}"),
            "frames": report["frames"], "detection": report.get("detection"), "model": report["model"],
            "retrieval": report["retrieval"],
            "retrieval_absolute": report.get("retrieval_absolute"),
            "contact_sheet": str(work / f"eval_{name}" / "contact_sheet.png"),
            "generated_in": inference_precision(choose_device("auto")),
        }
        if args.compare_fp32 and runs[name]["generated_in"] != "fp32":  # the same run, its frames made in fp32
            fp32 = pipe.evaluate(run_dir, work / f"eval_{name}_fp32", args.eval_frames, name=f"eval_{name}_fp32",
                                 amp=False)
            runs[name]["fp32_generation"] = {"model": fp32["model"], "goals": goals({**runs[name], **fp32}),
                                             "contact_sheet": str(work / f"eval_{name}_fp32" / "contact_sheet.png")}

    first = f"{setups[0][0]}_{setups[0][1]}{suffix}"
    result = {
        "benchmark": "quality at equal wall-clock budget (issue 12: person over plate)",
        "video": str(args.video.name), "size": args.size, "minutes_per_setup": args.minutes,
        "amp": not args.no_amp, "avx2_only": args.avx2, "perceptual": perceptual, "settings": settings,
        "threading": threads.settings(os.environ),
        "face_fraction": args.face_fraction,
        "mirror": args.mirror,  # None: the trainer's
        "setups": runs,
        "goals": {first: goals(runs[first])},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu_model(),
                    "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "work": str(work),
    }
    write_json(args.output, result)
    print(json.dumps({"output": str(args.output), "goals": result["goals"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
