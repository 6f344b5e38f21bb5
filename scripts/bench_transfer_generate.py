"""Benchmark: the generate stage of a command that trains (`edn transfer`, `edn demo`), run in the training
process under training's OpenMP spin, or in a child process under generate's own (`edn_engine.child`), quiet
and with one busy process per CPU.

    .venv/bin/python scripts/bench_transfer_generate.py --run RUN --track TRACK [--precision fp32-avx2]
        -> benchmarks/bench_transfer_generate.json

Each case is a fresh process that chooses training's policy (as `cli.main` does for `edn transfer`) and then
runs `pipeline.generate_frames`, the transfer's and the demo's generate stage, timed from the call to the last
frame on disk (the child's start-up included). The two modes take turns; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import benchkit  # noqa: E402

OUT = REPO / "benchmarks" / "bench_transfer_generate.json"
MODES = ("in-process", "child")


def worker(mode: str, run: str, track: str, out: str) -> None:
    """One case: training's policy first, before torch loads, then the generate stage."""
    from edn_engine import threads

    threads.apply_policy(command="train")
    from edn_engine import pipeline
    from edn_engine.events import Reporter

    if mode == "in-process":
        threads.needs_own_process = lambda command: False
    start = time.monotonic()
    with open(Path(out).parent / "events.jsonl", "w", encoding="utf-8") as events:
        pipeline.generate_frames(Path(run), Path(track), Path(out), Reporter(True, events))
    import torch

    print(json.dumps({"seconds": round(time.monotonic() - start, 2),
                      "aten_cpu_capability": torch.backends.cpu.get_cpu_capability()}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a trained run folder")
    ap.add_argument("--track", type=Path, help="a driving track (.npz) in the run's frame size")
    ap.add_argument("--precision", choices=("fp32-avx2", "native"), default="fp32-avx2",
                    help="fp32 held to AVX2 (a CPU without bf16), or this CPU as it is (bf16 where it has it)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    ap.add_argument("--worker", nargs=4, metavar=("MODE", "RUN", "TRACK", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    if args.run is None or args.track is None:
        ap.error("--run and --track are required")

    from edn_engine.pose.track import PoseTrack

    env = benchkit.case_env("none", args.precision)  # no threading setting: each case's process chooses its own
    frames = PoseTrack.load(args.track).frames
    seconds: dict[str, list[float]] = {}
    load: dict[str, list[float]] = {}
    isa: set[str] = set()  # the kernels the timed processes ran (held to AVX2 or not), not this process's
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("quiet", "loaded"):
            load[phase] = benchkit.load_average()
            for _ in range(args.rounds):
                for mode in MODES:
                    out = Path(tmp) / "frames"
                    shutil.rmtree(out, ignore_errors=True)
                    cmd = [sys.executable, __file__, "--worker", mode, str(args.run.absolute()),
                           str(args.track.absolute()), str(out)]
                    if phase == "loaded":
                        with benchkit.busy_load():
                            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    else:
                        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    case = json.loads(done.stdout.strip().splitlines()[-1])
                    s = case["seconds"]
                    seconds.setdefault(f"{phase}/{mode}", []).append(s)
                    isa.add(case["aten_cpu_capability"])
                    print(f"{phase:6} {mode:10} {s:6.2f} s", flush=True)
    result = {
        "benchmark": "the generate stage of a command that trains: in its process or in a child",
        "run": str(args.run), "track": str(args.track), "frames": frames, "precision": args.precision,
        "seconds": seconds, "load_average_before": load,
        "frames_per_second": {k: round(frames / min(v), 2) for k, v in seconds.items()},
        "speedup_child": {phase: round(min(seconds[f"{phase}/in-process"]) / min(seconds[f"{phase}/child"]), 2)
                          for phase in ("quiet", "loaded")},
        "cpu": {**benchkit.cpu_info(), "aten_cpu_capability": sorted(isa)},
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["speedup_child"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
