"""Benchmark generation: frames per second of the generator (temporal feedback included) per profile, and of the
whole `edn generate` pipeline (stick figure, generator, RGBA PNG written atomically) for the cpu profile.

    .venv/bin/python scripts/bench_generate.py                          # -> benchmarks/bench_generate.json
    .venv/bin/python scripts/bench_generate.py --quick                  # cpu profile at 256x256 only, few frames
    .venv/bin/python scripts/bench_generate.py --profiles cpu,paper-global --frames 20 --threads 2

The issue's goal: the `cpu` profile generates at least 10 frames per second at 256x256 on a 2-core machine.
Weights are random (the cost of a frame does not depend on them), the motion is a synthetic dancer waving its
arms, so neither footage nor a trained run is needed. "auto" precision is what `edn generate` uses: bf16
autocast where the device computes bf16 natively (with channels_last on a CPU), else fp32; "fp32" is recorded
beside it. The machine may be shared: the JSON keeps the load average around each case, and the lead re-runs
this on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edn_engine import device as devices  # noqa: E402
from edn_engine.atomic import write_json  # noqa: E402
from edn_engine.dataset import stick_figure, to_tensor  # noqa: E402
from edn_engine.generate import Synthesizer, generate  # noqa: E402
from edn_engine.models.config import get_profile  # noqa: E402
from edn_engine.models.face import build_face_generator  # noqa: E402
from edn_engine.models.generator import build_generator  # noqa: E402
from edn_engine.pose.framing import Framing  # noqa: E402
from edn_engine.pose.skeleton import B  # noqa: E402
from edn_engine.pose.track import PoseTrack  # noqa: E402
from edn_engine.training.checkpoint import save_checkpoint  # noqa: E402

OUT = REPO / "benchmarks" / "bench_generate.json"

# A standing person in unit coordinates (x right, y down, 0..1 of the frame height), arms from the shoulders.
_BODY = {"Nose": (0.0, 0.12), "Neck": (0.0, 0.22), "RShoulder": (-0.09, 0.23), "LShoulder": (0.09, 0.23),
         "MidHip": (0.0, 0.52), "RHip": (-0.05, 0.52), "LHip": (0.05, 0.52), "RKnee": (-0.06, 0.72),
         "LKnee": (0.06, 0.72), "RAnkle": (-0.06, 0.92), "LAnkle": (0.06, 0.92), "REye": (-0.02, 0.10),
         "LEye": (0.02, 0.10), "REar": (-0.04, 0.11), "LEar": (0.04, 0.11)}


def dancer(frames: int, width: int, height: int) -> PoseTrack:
    """A synthetic track: the body above, elbows and wrists swinging, in a width x height source frame."""
    track = PoseTrack.empty(frames, width, height, fps=30.0, source="bench_generate synthetic dancer")
    cx = width / 2
    for t in range(frames):
        phase = 2 * math.pi * t / 30
        pts = dict(_BODY)
        for side, sx in (("R", -1), ("L", 1)):
            ang = 0.6 + 0.5 * math.sin(phase + (0 if sx < 0 else math.pi))
            sh = pts[f"{side}Shoulder"]
            el = (sh[0] + sx * 0.13 * math.sin(ang), sh[1] + 0.13 * math.cos(ang))
            pts[f"{side}Elbow"] = el
            pts[f"{side}Wrist"] = (el[0] + sx * 0.12 * math.sin(2 * ang), el[1] + 0.12 * math.cos(2 * ang))
        for name, (x, y) in pts.items():
            track.body[t, B[name]] = (cx + x * height, y * height, 0.9)
    return track


def bench_network(profile: str, size: tuple[int, int], precision: str, frames: int, warmup: int,
                  dev: torch.device) -> dict:
    """Generator (and Face GAN) frames/s through `Synthesizer`, the code `edn generate` runs per frame."""
    w, h = size
    cfg = get_profile(profile, width=w, height=h)
    torch.manual_seed(0)
    G, FG = build_generator(cfg).to(dev), build_face_generator(cfg).to(dev)
    amp = precision == "auto"
    synth = Synthesizer(G, FG, cfg, dev, amp=amp)
    track = dancer(warmup + frames, w, h)
    labels = [to_tensor(stick_figure(track, i)) for i in range(track.frames)]
    centre = torch.tensor([track.body[0, B["Nose"], 0], track.body[0, B["Nose"], 1]])
    load_before = os.getloadavg()
    times = []
    for i, label in enumerate(labels):
        t0 = time.perf_counter()
        synth.next_frame(label, centre)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "profile": profile, "size": [w, h], "precision": precision,
        "bf16": amp and devices.bf16_supported(dev), "channels_last": synth.channels_last, "face_gan": True,
        "frames": frames, "frames_per_s": round(frames / sum(times), 2),
        "median_ms_per_frame": round(1000 * float(np.median(times)), 2),
        "params_m": round(sum(p.numel() for p in G.parameters()) / 1e6, 3),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def bench_pipeline(size: tuple[int, int], frames: int, dev: torch.device) -> dict:
    """`edn generate` end to end for the cpu profile: a run folder with one checkpoint, a track, PNGs out."""
    w, h = size
    cfg = get_profile("cpu", width=w, height=h)
    torch.manual_seed(0)
    G, FG = build_generator(cfg), build_face_generator(cfg)
    with tempfile.TemporaryDirectory(prefix="edn-bench-") as tmp:
        tmp = Path(tmp)
        save_checkpoint(tmp / "run", {
            "model": cfg.to_dict(), "train": {}, "plan": {"steps": 2, "body_steps": 1},
            "nets": {"G": G.state_dict(), "FG": FG.state_dict()}, "optim": {}, "rng": {},
            "dataset": {"size": [w, h], "framing": Framing((w, h), (w, h)).to_dict(), "mattes": True}}, 2)
        dancer(frames, w, h).save(tmp / "track.npz")
        dancer(3, w, h).save(tmp / "warmup.npz")
        generate(tmp / "run", tmp / "warmup.npz", tmp / "warmup", device=str(dev))  # oneDNN picks its kernels
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        summary = generate(tmp / "run", tmp / "track.npz", tmp / "frames", device=str(dev))
        seconds = time.perf_counter() - t0
    return {
        "what": "edn generate after a 3-frame warm-up: load run, stick figures, generator + Face GAN, "
                "RGBA PNG per frame (atomic, on a writer thread)",
        "profile": "cpu", "size": [w, h], "frames": summary["written"], "seconds": round(seconds, 3),
        "frames_per_s": round(summary["written"] / seconds, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", default="cpu,paper-global,paper-local",
                    help="profiles to time at their own size (the cpu profile is always timed at 256x256)")
    ap.add_argument("--frames", type=int, default=40, help="timed frames per case (large profiles use fewer)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="cpu profile at 256x256 only, 10 frames")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = devices.choose_device(args.device)
    frames = 10 if args.quick else args.frames
    profiles = ["cpu"] if args.quick else [p.strip() for p in args.profiles.split(",") if p.strip()]

    results = []
    precisions = ["auto"] + (["fp32"] if devices.bf16_supported(dev) else [])
    for profile in profiles:
        cfg = get_profile(profile)
        sizes = [(256, 256)] if profile == "cpu" else [(cfg.width, cfg.height)]
        for size in sizes:
            # Big profiles on a CPU take seconds per frame: time fewer frames there.
            n = frames if dev.type != "cpu" or size[0] * size[1] <= 256 * 256 else max(3, frames // 8)
            for precision in precisions:
                r = bench_network(profile, size, precision, n, args.warmup, dev)
                print(f"{profile:>12} {size[0]}x{size[1]} {precision:>4}: {r['frames_per_s']:8.2f} frames/s",
                      flush=True)
                results.append(r)
    pipeline = bench_pipeline((256, 256), frames, dev)
    print(f"pipeline (edn generate, cpu profile, 256x256): {pipeline['frames_per_s']:.2f} frames/s", flush=True)

    cpu256 = next(r for r in results if r["profile"] == "cpu" and r["precision"] == "auto")
    report = {
        "benchmark": "bench_generate",
        "goal": "cpu profile >= 10 generated frames/s at 256x256 on a 2-core machine",
        "goal_met": cpu256["frames_per_s"] >= 10,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, **devices.describe(dev)},
        "network": results,
        "pipeline": pipeline,
        "command": " ".join(sys.argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(args.output, report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
