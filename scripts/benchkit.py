"""Shared by bench_train.py and bench_generate.py: what CPU this is, worker processes timed in turns, a busy load.

Why workers timed in turns: the threading policy is read when torch loads, so every variant (with or without
`edn_engine.threads`' policy, fp32 or bf16, ...) needs its own process; and this machine is shared, so timing
the variants one after another would compare different background loads. Each variant's process builds and warms
its networks once, then the driver asks each in turn for a few timed repetitions, round after round: every
variant sees the same mix of quiet and busy moments, and the ratios between them are fair.

Why a busy load: a user's CPU is often shared (a compile, Blender rendering). `busy_load` starts one process per
CPU spinning in Python, each ending itself after `max_s` even if this script dies, and kills them on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edn_engine import threads  # noqa: E402  (stdlib only: importing it does not load torch)

# CPU flags that decide the fast paths: bf16 in hardware (AVX512-BF16, AMX), 8-bit dot products (VNNI) or AVX2 alone.
ISA_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
# "fp32-avx2": fp32 with ATen, oneDNN and MKL held to AVX2, the instruction set of the laptops without bf16.
# It is this CPU's clock, caches and memory with an AVX2 laptop's instructions: closer than AVX-512 fp32, not equal.
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# "-avxvnni": AVX2 plus AVX-VNNI's 8-bit dot products, the instructions of Intel's laptops since Alder Lake (12th
# generation, Core Ultra: no AVX-512, no bf16), for int8 generation; on a CPU with the avx_vnni flag.
ISA_HOLDS = {"-avx2": AVX2_ENV, "-avxvnni": {**AVX2_ENV, "ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"}}
PRECISIONS = ("bf16", "fp32", "fp32-avx2")  # training's; generation adds "int8", "int8-avx2" and "int8-avxvnni"
# Threading variants: "none" = torch's defaults (long-spinning OpenMP threads, one per core), "engine" = what
# `edn_engine.threads.apply_policy` sets, "one-thread" = OMP_NUM_THREADS=1 alone (the other workaround).
# Any of them prefixed "intel:" runs on Intel's OpenMP instead of libgomp (see `intel_openmp`).
POLICIES = ("none", "engine", "one-thread")
VARIANTS = {  # what the JSON says the variants' names mean
    "precisions": {"bf16": "bf16 autocast (AMX on this CPU)", "fp32": "fp32 with this CPU's AVX-512 (not AVX2)",
                   "fp32-avx2": "fp32 with ATen/oneDNN/MKL held to AVX2: "
                                + ", ".join(f"{k}={v}" for k, v in AVX2_ENV.items()),
                   "int8": "int8 convolutions (`edn_engine.models.int8`), what a CPU without bf16 generates in",
                   "int8-avx2": "int8 convolutions held to AVX2 as fp32-avx2 is",
                   "int8-avxvnni": "int8 convolutions held to AVX2 with AVX-VNNI (ONEDNN_MAX_CPU_ISA=AVX2_VNNI): "
                                   "Intel's laptops since Alder Lake"},
    "policies": {"none": "torch's defaults (OpenMP threads spin while they wait)",
                 "engine": "edn_engine.threads.policy_env", "one-thread": "OMP_NUM_THREADS=1",
                 "threads:N": "the engine's policy with OMP_NUM_THREADS=N",
                 "spin:N": "GOMP_SPINCOUNT=N: libgomp spins N times, then sleeps",
                 "blocktime:T": "KMP_BLOCKTIME=T: Intel/LLVM OpenMP threads wait T ms (or with a unit: 100us), "
                                "then sleep",
                 "intel:P": "policy P on Intel's OpenMP (libiomp5 from PyPI's intel-openmp, preloaded in place of "
                            "libgomp): the runtime of torch's Windows wheels; macOS's libomp is LLVM's, the same code"},
    "phases": {"quiet": "no load of ours (others' programs may run: see load_average)",
               "loaded": "one busy Python process per CPU beside the benchmark"},
}


def cpu_info() -> dict:
    """The CPU model, the flags above that it has, its logical CPUs and physical cores, the torch build."""
    fields, flags = {"model name": platform.processor() or platform.machine()}, set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model"):
                fields[key.strip()] = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    import torch

    return {"model": fields["model name"], "family_model": f"{fields.get('cpu family')}/{fields.get('model')}",
            "flags": [f for f in ISA_FLAGS if f in flags], "hypervisor": "hypervisor" in flags,
            "logical_cpus": os.cpu_count(),
            "physical_cores": threads.physical_cores(), "platform": platform.platform(), "torch": torch.__version__,
            "aten_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def commit() -> str | None:
    """This checkout's short commit (None outside git), recorded in a benchmark's JSON: the code it measured."""
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False).stdout.strip()
    return out or None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def intel_openmp() -> Path:
    """Intel's OpenMP runtime from PyPI's `intel-openmp` (`pip install intel-openmp` into this environment: a
    benchmark's tool, not the engine's dependency). Preloaded, it serves torch's OpenMP calls in place of the
    Linux wheels' libgomp: how this Linux machine measures the runtime that Windows and macOS users get."""
    lib = Path(sys.prefix) / "lib" / "libiomp5.so"
    if not lib.is_file():
        raise SystemExit(f"the intel: policies need Intel's OpenMP: {sys.executable} -m pip install intel-openmp")
    return lib


def openmp_runtime() -> str:
    """The OpenMP library this process has loaded (call after torch's import): libgomp, libiomp5 or libomp."""
    with contextlib.suppress(OSError):
        maps = Path("/proc/self/maps").read_text(errors="replace")
        for name in ("libiomp5", "libomp", "libgomp"):  # a preloaded runtime first: libgomp may sit there unused
            if name in maps:
                return name
    return "unknown"


def case_env(policy: str, precision: str, command: str | None = None) -> dict[str, str]:
    """The environment of one variant's process: ours without any threading or ISA setting, then the variant's
    (`command`: the `edn` command whose policy "engine" means; None: training's)."""
    env = {k: v for k, v in os.environ.items() if k not in threads.POLICY_VARS and k not in AVX2_ENV}
    for k in ("MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        env.pop(k, None)
    if policy.startswith("intel:"):  # in front of what the user preloads (an allocator, say)
        policy = policy.removeprefix("intel:")
        env["LD_PRELOAD"] = " ".join([str(intel_openmp()), *env.get("LD_PRELOAD", "").split()])
    if policy == "engine":
        env.update(threads.policy_env(env, command=command))
    elif policy == "one-thread":
        env["OMP_NUM_THREADS"] = "1"
    elif policy.startswith("threads:"):  # the engine's policy with another thread count
        env.update(threads.policy_env(env, command=command))
        env["OMP_NUM_THREADS"] = policy.split(":")[1]
    elif policy.startswith("spin:"):  # libgomp spins this many times before it sleeps (its default: 300000)
        env["GOMP_SPINCOUNT"] = policy.split(":")[1]
    elif policy.startswith("blocktime:") and policy.split(":")[1]:  # Intel/LLVM OpenMP's wait (default 200 ms)
        env["KMP_BLOCKTIME"] = policy.split(":")[1]
    elif policy != "none":
        raise ValueError(f"unknown threading policy {policy!r}")
    hold = precision.partition("-")[2]  # "fp32" -> "": none
    if hold and "-" + hold not in ISA_HOLDS:  # a misspelt hold would time this CPU's own instructions unseen
        raise ValueError(f"unknown instruction set {hold!r} in precision {precision!r}")
    env.update(ISA_HOLDS.get("-" + hold, {}))
    return env


def base_precision(precision: str) -> str:
    """What a variant computes in, whatever instructions it is held to: "int8-avx2" -> "int8"."""
    return precision.partition("-")[0]


@contextlib.contextmanager
def busy_load(n: int | None = None, max_s: float = 1200.0) -> Iterator[list[subprocess.Popen]]:
    """n processes (default: one per CPU) each keeping a core busy, for at most max_s seconds."""
    code = f"import time\nend = time.monotonic() + {max_s}\nwhile time.monotonic() < end: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n or os.cpu_count() or 1)]
    try:
        time.sleep(1.0)  # let the scheduler see them
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


# ------------------------------------------------------------------------------------------------------------
# worker processes
# ------------------------------------------------------------------------------------------------------------
Units = dict[str, Callable[[], None]]


def serve(setup: Callable[[dict], tuple[Units, dict]], case: dict) -> int:
    """A worker's main: build the case's units (named callables, one timed repetition each), warm them up, then
    answer "UNIT N" lines on stdin with N timings, until "quit" (answered with the peak memory)."""
    t0 = time.perf_counter()
    units, info = setup(case)
    warmup = {}  # the first calls: oneDNN picks its kernels, torch.compile compiles (its cost is the difference)
    for name, fn in units.items():
        warmup[name] = []
        for _ in range(case.get("warmup", 1)):
            t = time.perf_counter()
            fn()
            warmup[name].append(round(time.perf_counter() - t, 3))
    env = {**threads.settings(os.environ), **{k: os.environ[k] for k in (*AVX2_ENV, "LD_PRELOAD") if k in os.environ}}
    info = {**info, "openmp": openmp_runtime()}
    print(json.dumps({"ready": True, "setup_s": round(time.perf_counter() - t0, 2), "warmup_s": warmup,
                      "units": list(units), "env": env, **info}), flush=True)
    for line in sys.stdin:
        name, _, n = line.strip().partition(" ")
        if name == "quit":
            break
        times = []
        for _ in range(int(n)):
            t = time.perf_counter()
            units[name]()
            times.append(round(time.perf_counter() - t, 4))
        print(json.dumps(times), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_memory_mib": round(peak, 1)}), flush=True)
    return 0


class Worker:
    """One variant's process (`script --worker CASE`), asked for timings over a pipe."""

    def __init__(self, script: Path, case: dict, env: dict[str, str]):
        self.case = case
        self.proc = subprocess.Popen([sys.executable, str(script), "--worker", json.dumps(case)], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker for {self.case} ended (exit {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def ask(self, unit: str, n: int) -> list[float]:
        self.proc.stdin.write(f"{unit} {n}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        with contextlib.suppress(Exception):
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            out = self._read()
            self.proc.wait(timeout=60)
            return out
        self.proc.kill()
        return {}


def wait_quiet(max_s: float, below: float | None = None) -> float:
    """Wait (at most max_s) for other programs to calm down: the 1-minute load average under `below` (default
    half the CPUs). Returns the seconds waited. On a shared machine "quiet" is a moment, not a guarantee."""
    below = (os.cpu_count() or 1) / 2 if below is None else below
    t0 = time.monotonic()
    while os.getloadavg()[0] >= below and time.monotonic() - t0 < max_s:
        time.sleep(10)
    return round(time.monotonic() - t0, 1)


def in_turns(script: Path, cases: list[dict], units: dict[str, int], rounds: int, loaded: bool,
             settle_s: float = 0, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
             ) -> list[dict]:
    """Time every case's units, quiet and (if `loaded`) under `busy_load`, the cases taking turns each round.

    `units` maps a unit's name to the repetitions per round; `settle_s`: wait up to that long for a quiet
    machine before the quiet phase. A case whose worker fails is reported with its error and skipped. Each
    result: the case, its worker's info, and per phase and unit every time, the median and the minimum."""
    workers, results = [], []
    for case in cases:
        log(f"starting {case['label']} ...")
        try:
            workers.append(Worker(script, case, case_env(case["policy"], case["precision"], case.get("command"))))
        except (RuntimeError, json.JSONDecodeError) as exc:
            results.append({**case, "error": str(exc)})
    phases = ["quiet"] + (["loaded"] if loaded else [])
    times = {(id(w), p, u): [] for w in workers for p in phases for u in units}
    load = {}
    try:
        for phase in phases:
            waited = wait_quiet(settle_s) if phase == "quiet" and settle_s else 0.0
            with busy_load() if phase == "loaded" else contextlib.nullcontext():
                load[phase] = {"before": load_average(), "waited_for_quiet_s": waited}
                for r in range(rounds):
                    k = r % max(1, len(workers))  # each round starts with the next case: no case always goes first
                    for w in workers[k:] + workers[:k]:
                        for unit, n in units.items():
                            if unit in w.info["units"]:
                                times[(id(w), phase, unit)] += w.ask(unit, n)
                    log(f"  {phase} round {r + 1}/{rounds} done, load {load_average()[0]}")
                load[phase]["after"] = load_average()
    finally:
        closing = [(w, w.close()) for w in workers]
    for w, end in closing:
        out = {**w.case, **{k: v for k, v in w.info.items() if k not in ("ready", "units")}, **end}
        for phase in phases:
            out[phase] = {"load_average": load[phase]}
            for unit in units:
                ts = times[(id(w), phase, unit)]
                if ts:
                    out[phase][unit] = {"median_s": round(statistics.median(ts), 4), "min_s": min(ts), "times": ts}
        results.append(out)
    return results


def median(result: dict, phase: str, unit: str, stat: str = "median_s") -> float | None:
    """A unit's median time in a phase (stat "min_s": its fastest, the least disturbed by other programs)."""
    return result.get(phase, {}).get(unit, {}).get(stat)


def compile_s(result: dict) -> float:
    """What compiling cost: the warm-up calls' excess over as many quiet median calls, over all units."""
    return round(sum(sum(ts) - len(ts) * result["quiet"][u]["median_s"]
                     for u, ts in result["warmup_s"].items() if u in result.get("quiet", {})), 1)


def cold_compile_cache() -> None:
    """Give torch.compile an empty cache, so its measured compile time is a first run's (a user's first)."""
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="edn-inductor-")


def plain_layers() -> None:
    """Give the generators' own layers (`models.blocks`) plain PyTorch's formulation in this worker: the resize
    upsampling computed on the upsampled map (nn.Upsample + nn.Conv2d, not folded into 2x2 kernels), the output
    convolution in the default layout (not channels-last). The same weights and results, so the two time the
    same network."""
    from torch import nn

    from edn_engine.models.blocks import ChannelsLastConv2d, UpsampleConv

    UpsampleConv.forward = UpsampleConv.upsampled
    ChannelsLastConv2d.forward = nn.Conv2d.forward
