"""Benchmark generation: ms per frame of the generator (temporal feedback and Face GAN included) per profile, of
the whole `edn generate` pipeline, and for the `cpu` profile the threading policy and fp32 formulations, quiet and
under load.

    .venv/bin/python scripts/bench_generate.py                          # -> benchmarks/bench_generate.json
    .venv/bin/python scripts/bench_generate.py --quick                  # the cpu matrix only, quiet, few frames
    .venv/bin/python scripts/bench_generate.py --profiles "" --compile    # part 2 only, + torch.compile
    .venv/bin/python scripts/bench_generate.py --profiles "" --no-matrix --run RUN --track TRACK   # part 3 only

The issue's goal: the `cpu` profile generates at least 10 frames per second at 256x256 on a 2-core machine.
Weights are random (a frame's cost does not depend on them) and the motion is a synthetic dancer waving its
arms, so neither footage nor a trained run is needed. A frame is `Synthesizer.next_frame`, the code
`edn generate` runs per frame; "pipeline" is `edn_engine.generate.generate` end to end (stick figures, generator,
Face GAN, RGBA PNGs written atomically).

Part 1, "profiles": each profile at its own size (the cpu profile at 256x256), bf16 where native, fp32, and int8
where a CPU without bf16 generates in it (`edn_engine.models.int8`), alone with the engine's threading policy
(`edn_engine.threads`). Part 2, "cpu_matrix": the `cpu` profile at 256x256 in every variant at once, taking turns
(scripts/benchkit.py), quiet and then with one busy process per CPU: precision bf16 / fp32 / int8 / fp32-avx2 /
int8-avx2 (held to AVX2, the no-bf16 laptop's instructions, on a CPU with AVX-512) / int8-avxvnni (AVX2 with
AVX-VNNI, Intel's laptops since Alder Lake; on a CPU with it) x threading none / engine /
one-thread, and for fp32 channels_last flipped, plain PyTorch layers ("plain-layers": see
`models.blocks`) and torch.compile (--compile). The JSON keeps every time and the load average per phase: the
machine may be shared, so compare ratios within one run.

Part 3, "real_run" (with --run and --track): `edn generate` as a user runs it, on a trained run and a driving
track at the footage's resolution (person over plate: a full-resolution RGBA and a composite PNG per frame), for
two clip lengths, per precision and `--hands` choice (`--hands training,body`), quiet and loaded. Steady frames/s
is the extra frames over the extra seconds (the start-up, torch's import and the model's load, cancels out); peak
memory must not grow with the clip (issue 12's goal: 15 frames/s with the PNGs, memory flat). Each run's CPU time
(the generating process's and its frame writers') gives the core-ms a frame costs, and the frame rate that would be
with every core busy: a ceiling that no better overlap of the generator and the writers can pass. Parts 1 and 2
record the networks' GFLOP a frame (and, quiet, the GFLOP/s reached), counted as each formulation computes them:
the folded upsampling (`models.blocks`) does fewer multiplications than plain layers. Run alone, part 3 is merged
into the existing JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchkit  # noqa: E402

OUT = REPO / "benchmarks" / "bench_generate.json"

# A standing person in unit coordinates (x right, y down, 0..1 of the frame height), arms from the shoulders.
_BODY = {"Nose": (0.0, 0.12), "Neck": (0.0, 0.22), "RShoulder": (-0.09, 0.23), "LShoulder": (0.09, 0.23),
         "MidHip": (0.0, 0.52), "RHip": (-0.05, 0.52), "LHip": (0.05, 0.52), "RKnee": (-0.06, 0.72),
         "LKnee": (0.06, 0.72), "RAnkle": (-0.06, 0.92), "LAnkle": (0.06, 0.92), "REye": (-0.02, 0.10),
         "LEye": (0.02, 0.10), "REar": (-0.04, 0.11), "LEar": (0.04, 0.11)}


def dancer(frames: int, width: int, height: int):
    """A synthetic track: the body above, elbows and wrists swinging, in a width x height source frame."""
    from edn_engine.pose.skeleton import B
    from edn_engine.pose.track import PoseTrack

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


# ------------------------------------------------------------------------------------------------------------
# part 3: `edn generate` on a real run, as a user runs it
# ------------------------------------------------------------------------------------------------------------
def real_run(run: Path, track: Path, lengths: tuple[int, int], precisions: list[str], loaded: bool,
             hands: list[str], policies: list[str], rounds: int = 1) -> list[dict]:
    """Per precision, `--hands` choice, threading policy and phase: wall seconds and peak memory of `edn generate`
    for each clip length; `rounds` times over, in turns."""
    import os
    import subprocess

    from edn_engine import threads
    from edn_engine.pose.track import PoseTrack

    src = PoseTrack.load(track)
    results = []
    with tempfile.TemporaryDirectory(prefix="edn-bench-run-") as tmp:
        tracks = {}
        for n in lengths:
            tracks[n] = Path(tmp) / f"track_{n}.npz"
            src.slice(0, min(n, src.frames)).save(tracks[n])
        for phase in ("quiet", "loaded") if loaded else ("quiet",):
            with benchkit.busy_load() if phase == "loaded" else contextlib.nullcontext():
                for r, prec, hand, pol in ((r, p, h, q) for r in range(rounds) for p in precisions for h in hands
                                           for q in policies):
                    env = benchkit.case_env(pol, prec, "generate")
                    row = {"precision": prec, "hands": hand, "policy": pol, "phase": phase, "round": r,
                           "load_average": benchkit.load_average(), "runs": [], "threading": threads.settings(env)}
                    for n in lengths:
                        out = Path(tmp) / f"out_{prec}_{hand}_{pol.replace(':', '_')}_{phase}_{r}_{n}"
                        cmd = [sys.executable, "-m", "edn_engine", "generate", str(run), str(tracks[n]), "-o",
                               str(out), "--hands", hand, *(["--no-amp"] if prec.startswith("fp32") else []), "--json"]
                        with open(Path(tmp) / "log.txt", "w") as log:
                            t0 = time.perf_counter()
                            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
                            _, status, usage = os.wait4(proc.pid, 0)
                            wall = time.perf_counter() - t0
                        if status != 0:
                            raise SystemExit(f"edn generate failed: {(Path(tmp) / 'log.txt').read_text()[-2000:]}")
                        ran = _done_event(Path(tmp) / "log.txt").get("precision")
                        if ran != benchkit.base_precision(prec):  # "int8" asked of a bf16 CPU would run bf16
                            raise SystemExit(f"{prec}: edn generate ran in {ran} on this CPU")
                        # CPU time: the generating process's and its frame writers' (reaped by it), all cores
                        row["runs"].append({"frames": min(n, src.frames), "seconds": round(wall, 2),
                                            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                                            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)})
                    (a, b) = row["runs"]
                    frames = b["frames"] - a["frames"]
                    row["steady_frames_per_s"] = round(frames / (b["seconds"] - a["seconds"]), 2)
                    # what a frame costs in CPU time, and the rate that would give if every core were kept busy
                    core_ms = 1000 * (b["cpu_seconds"] - a["cpu_seconds"]) / frames
                    row["steady_core_ms_per_frame"] = round(core_ms, 1)
                    row["frames_per_s_all_cores_busy"] = round(1000 * (os.cpu_count() or 1) / core_ms, 2)
                    row["peak_rss_growth_mib"] = round(b["peak_rss_mib"] - a["peak_rss_mib"], 1)
                    print(json.dumps(row), file=sys.stderr)
                    results.append(row)
    return results


def _done_event(log: Path) -> dict:
    """The `done` event of an `edn ... --json` run's output (`events.parse_event`, the protocol's one reader)."""
    from edn_engine.events import parse_event

    events = (parse_event(line) for line in log.read_text(encoding="utf-8", errors="replace").splitlines())
    return next((e for e in events if e is not None and e["event"] == "done"), {})


# ------------------------------------------------------------------------------------------------------------
# one case, in its own worker process
# ------------------------------------------------------------------------------------------------------------
def setup(case: dict) -> tuple[benchkit.Units, dict]:
    """Units "frame" (one `Synthesizer.next_frame`) and, if the case asks, "pipeline" (`edn generate` of
    `pipeline_frames` frames from a saved run, in a temporary folder kept until the worker ends)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edn_engine import device as devices
    from edn_engine.generate import generate
    from edn_engine.inference import Synthesizer
    from edn_engine.models.config import get_profile
    from edn_engine.models.face import build_face_generator
    from edn_engine.models.generator import build_generator
    from edn_engine.pose.framing import Framing
    from edn_engine.pose.skeleton import B
    from edn_engine.runs import save_checkpoint
    from edn_engine.tensors import stick_figure, to_tensor

    if case["plain_layers"]:
        benchkit.plain_layers()
    dev = devices.choose_device(case["device"])
    w, h = case["width"], case["height"]
    cfg = get_profile(case["profile"], width=w, height=h)
    torch.manual_seed(0)
    G, FG = build_generator(cfg).to(dev), build_face_generator(cfg).to(dev)
    bf16 = case["precision"] == "bf16"
    amp = not case["precision"].startswith("fp32")  # bf16, or int8 where there is no bf16 (as `edn generate`)
    cl = case["channels_last"]
    if cl is None:  # what `edn generate` chooses for this precision
        cl = devices.use_channels_last(dev, training=False, bf16=bf16)
    synth = Synthesizer(G, FG, cfg, dev, amp=amp, channels_last=cl)
    if synth.precision != benchkit.base_precision(case["precision"]):
        raise SystemExit(f"{case['label']}: this CPU generates in {synth.precision}")
    track = dancer(30, w, h)
    labels = [to_tensor(stick_figure(track, i)) for i in range(track.frames)]
    centre = torch.tensor([track.body[0, B["Nose"], 0], track.body[0, B["Nose"], 1]])
    at = [0]

    def frame():
        synth.next_frame(labels[at[0] % len(labels)], centre)
        at[0] += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()

    units = {"frame": frame}
    if case.get("pipeline_frames"):
        tmp = Path(tempfile.mkdtemp(prefix="edn-bench-"))
        save_checkpoint(tmp / "run", {
            "model": cfg.to_dict(), "train": {}, "plan": {"steps": 2, "body_steps": 1},
            "nets": {"G": G.state_dict(), "FG": FG.state_dict()}, "optim": {}, "rng": {},
            "dataset": {"size": [w, h], "framing": Framing((w, h), (w, h)).to_dict(), "mattes": True}}, 2)
        dancer(case["pipeline_frames"], w, h).save(tmp / "track.npz")
        runs = iter(range(10**6))
        units["pipeline"] = lambda: generate(tmp / "run", tmp / "track.npz", tmp / f"frames{next(runs)}",
                                             device=str(dev), amp=amp)
    with FlopCounterMode(display=False) as flops:  # one frame's arithmetic as this formulation does it (G and FG)
        frame()
    if case["compile"]:
        benchkit.cold_compile_cache()
        synth.G = torch.compile(synth.G, dynamic=False)
    return units, {"threads": torch.get_num_threads(), "channels_last_used": cl,
                   "params_m": round(sum(p.numel() for p in G.parameters()) / 1e6, 3),
                   # int8 convolutions are not counted: None, not a third of a figure
                   "gflop_per_frame": None if amp and not bf16 else round(flops.get_total_flops() / 1e9, 3),
                   "device_info": devices.describe(dev)}


# ------------------------------------------------------------------------------------------------------------
# the driver
# ------------------------------------------------------------------------------------------------------------
def case(args, profile: str, size: tuple[int, int], precision: str, **kw) -> dict:
    c = {"profile": profile, "width": size[0], "height": size[1], "precision": precision, "policy": "engine",
         "channels_last": None, "compile": False, "plain_layers": False, "warmup": args.warmup,
         "device": args.device, "pipeline_frames": 0, "command": "generate"}  # "engine": edn generate's policy
    c.update(kw)
    c["label"] = " ".join(str(x) for x in (profile, f"{size[0]}x{size[1]}", c["precision"], c["policy"],
                                           *(["channels_last" if c["channels_last"] else "contiguous"]
                                             if c["channels_last"] is not None else []),
                                           *(["compile"] if c["compile"] else []),
                                           *(["plain-layers"] if c["plain_layers"] else [])))
    return c


def ms_per_frame(r: dict, phase: str, unit: str = "frame", stat: str = "median_s") -> float | None:
    s = benchkit.median(r, phase, unit, stat)
    if s is None:
        return None
    return round(1000 * s / (r["pipeline_frames"] if unit == "pipeline" else 1), 1)


def rows(results: list[dict]) -> dict[str, dict]:
    """label -> median and fastest ms per frame of each phase and unit (and the compile time)."""
    out = {}
    for r in results:
        if "error" in r:
            continue
        row = out[r["label"]] = {}
        for phase in ("quiet", "loaded"):
            for unit, key in (("frame", "ms_per_frame"), ("pipeline", "pipeline_ms_per_frame")):
                for stat, name in (("median_s", ""), ("min_s", "_min")):
                    v = ms_per_frame(r, phase, unit, stat)
                    if v is not None:
                        row[f"{phase}_{key}{name}"] = v
        if r.get("gflop_per_frame") and "quiet_ms_per_frame" in row:  # how near the CPU's peak the frame runs
            row["quiet_gflop_per_s"] = round(r["gflop_per_frame"] / row["quiet_ms_per_frame"] * 1000, 1)
        if r["compile"]:
            row["compile_s"] = benchkit.compile_s(r)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="cpu,paper-global,paper-local",
                    help="part 1: profiles at their own size (cpu at 256x256); empty: skip part 1")
    ap.add_argument("--frames", type=int, default=40, help="part 1: timed frames per case (big profiles: 1/8)")
    ap.add_argument("--rounds", type=int, default=None, help="part 2: rounds per phase (default 4, quick 2)")
    ap.add_argument("--per-round", type=int, default=5, help="part 2: frames per variant per round")
    ap.add_argument("--pipeline-frames", type=int, default=40, help="frames of one timed `edn generate`")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="part 2 only, quiet, 2 rounds")
    ap.add_argument("--no-matrix", action="store_true", help="skip part 2")
    ap.add_argument("--no-load", action="store_true", help="part 2 quiet only")
    ap.add_argument("--compile", action="store_true", help="part 2 also times torch.compile")
    ap.add_argument("--policies", default=",".join(benchkit.POLICIES), help="part 2: threading variants")
    ap.add_argument("--settle", type=float, default=0,
                    help="part 2: wait up to this many seconds for a load average under half the CPUs first")
    ap.add_argument("--run", type=Path, help="part 3: a trained run (person over plate) to time `edn generate` on")
    ap.add_argument("--track", type=Path, help="part 3: its driving track, at the footage's size")
    ap.add_argument("--clip-frames", default="60,240", help="part 3: the two clip lengths (default 60,240)")
    ap.add_argument("--hands", default="training", help="part 3: `edn generate --hands` choices to time, a,b,...")
    ap.add_argument("--run-policies", default="engine",
                    help="part 3: threading policies to time, a,b,... (engine, threads:N, one-thread, none)")
    ap.add_argument("--precisions", default=None, help="part 3: precisions to time (default: all this CPU has)")
    ap.add_argument("--run-rounds", type=int, default=1, help="part 3: rounds, the variants in turns")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: serve one case (JSON)
    args = ap.parse_args()
    if args.worker:
        return benchkit.serve(setup, json.loads(args.worker))

    from edn_engine import device as devices
    from edn_engine.atomic import write_json
    from edn_engine.models.config import get_profile
    import torch

    dev = devices.choose_device(args.device)
    native = devices.bf16_supported(dev)
    int8 = dev.type == "cpu" and devices.int8_supported()
    two = (["bf16"] if native else []) + ["fp32"] + (["int8"] if int8 and not native else [])
    # fp32 (and int8) held to AVX2 stand in for a CPU without AVX-512; on such a CPU they are plain fp32 again
    avx2 = ["fp32-avx2", *(["int8-avx2"] if int8 else [])] \
        if dev.type == "cpu" and "AVX512" in torch.backends.cpu.get_cpu_capability() else []
    avx2 += ["int8-avxvnni"] if avx2 and int8 and "avx_vnni" in benchkit.cpu_info()["flags"] else []
    script = Path(__file__).resolve()
    profiles = []
    for profile in [] if args.quick else [p.strip() for p in args.profiles.split(",") if p.strip()]:
        cfg = get_profile(profile)
        size = (256, 256) if profile == "cpu" else (cfg.width, cfg.height)
        n = args.frames if dev.type != "cpu" or size[0] * size[1] <= 256 * 256 else max(3, args.frames // 8)
        for p in two:
            profiles += benchkit.in_turns(script, [case(args, profile, size, p, pipeline_frames=(
                args.pipeline_frames if profile == "cpu" else 0))], {"frame": n, "pipeline": 2}, 1, False)

    matrix = []
    if not args.no_matrix:
        precisions = two + avx2
        cases = [case(args, "cpu", (256, 256), p, policy=pol,
                      pipeline_frames=args.pipeline_frames if p == two[0] and pol != "one-thread" else 0)
                 for p in precisions for pol in args.policies.split(",")]
        for p in (p for p in precisions if p.startswith("fp32")):
            cases.append(case(args, "cpu", (256, 256), p,
                              channels_last=not devices.use_channels_last(torch.device("cpu"), False, bf16=False)))
            cases.append(case(args, "cpu", (256, 256), p, plain_layers=True))
            if args.compile:
                cases.append(case(args, "cpu", (256, 256), p, compile=True))
        matrix = benchkit.in_turns(script, cases, {"frame": args.per_round, "pipeline": 1},
                                   rounds=args.rounds or (2 if args.quick else 4),
                                   loaded=not (args.quick or args.no_load), settle_s=args.settle)

    real = []
    if args.run is not None:
        lengths = tuple(int(v) for v in args.clip_frames.split(","))
        precisions = args.precisions.split(",") if args.precisions else two + avx2
        real = real_run(args.run, args.track, lengths, precisions, loaded=not args.no_load,
                        hands=[h.strip() for h in args.hands.split(",") if h.strip()],
                        policies=[p.strip() for p in args.run_policies.split(",") if p.strip()],
                        rounds=args.run_rounds)
    if args.run is not None and not profiles and not matrix and args.output.is_file():  # part 3 alone: merge
        report = json.loads(args.output.read_text(encoding="utf-8"))
        report["real_run"] = {"run": str(args.run), "track": str(args.track), "cpu": benchkit.cpu_info(),
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": real}
        write_json(args.output, report)
        print(json.dumps(real, indent=1))
        return 0

    summary = {"profiles": rows(profiles), "cpu_matrix": rows(matrix)}
    cpu_default = next((summary["profiles"][r["label"]] for r in profiles if r["profile"] == "cpu"), None)
    report = {
        "benchmark": "bench_generate",
        "goal": "cpu profile >= 10 generated frames/s at 256x256 on a 2-core machine",
        "goal_met": None if cpu_default is None else 1000 / cpu_default["quiet_ms_per_frame"] >= 10,
        "cpu": benchkit.cpu_info(), "command": sys.argv[1:],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **benchkit.VARIANTS,
        "summary_ms_per_frame": summary, "profiles": profiles, "cpu_matrix": matrix,
        **({"real_run": {"run": str(args.run), "track": str(args.track), "results": real}} if real else {}),
    }
    write_json(args.output, report)
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
