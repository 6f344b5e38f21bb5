"""The CPU threading policy, chosen before torch starts: the engine must stay usable when it shares the CPU.

PyTorch's CPU kernels run on an OpenMP pool whose threads, by default, spin while they wait for the next
parallel region (libgomp, the Linux wheels' runtime: 300,000 turns of a pause loop, several milliseconds). On a
shared machine (a compile or a Blender render keeping every core busy) each spinning thread steals a whole time
slice from the thread it waits for. Measured on a 2-core Sapphire Rapids VM with one busy process per core: the
`cpu` generator took 1,678 ms a frame instead of 146, a 4-minute `edn transfer` trained 13 steps instead of ~240
(issue 12). Sleeping at once (OMP_WAIT_POLICY=PASSIVE) cured that, but cost the quiet machine dearly: the face
stage's small kernels wake the pool thousands of times a step. A short spin, then sleep, trains faster than
either, quiet and loaded (`benchmarks/bench_train_threads.json`: in fp32 held to AVX2, the Face GAN's step took
0.049 s quiet against PASSIVE's 0.093, the body's 1.94 s loaded against 2.13 and torch's default 2.46).

`edn generate` spins ten times less: beside its frame-writing process (`frame_writer`) the long spin left the
writer and a loaded machine's other programs without time. 60 frames of romp_sample2 at 1080p, one busy process
per core: 48 s against 25 (fp32 AVX2) and 42 against 24 (bf16); quiet, the same 11-12 s (PASSIVE: 12.7 s in
fp32 AVX2, 9.6 in bf16, 23 and 19 loaded). Training keeps the longer spin: with 10,000 turns its loaded Face GAN
and hand steps took 1.3-1.5x longer. So `edn transfer` and `edn demo`, which train, generate in a child process
under generate's policy (`needs_own_process`, `child`): loaded, their 60 frames took 22-23 s against 35-38 in the
training process; quiet, 10 s either way (`benchmarks/bench_transfer_generate.json`).

The policy (each variable only where the user has not set it; what they set always wins):
  GOMP_SPINCOUNT=100000    libgomp threads spin that many turns (about a millisecond), then sleep;
                           `edn generate`, `edn eval` and `edn transfer --run` 10000;
  KMP_BLOCKTIME=0          Intel/LLVM OpenMP (the Windows and macOS builds) sleep at once; neither is set
                           when the user chose an OMP_WAIT_POLICY, which each would override;
  OMP_NUM_THREADS=N        N = physical cores this process may use (SMT siblings share one core's units),
                           divided among the processes torchrun started on this machine; `edn generate` and
                           `edn eval` leave the frame writers half (`generator_threads`): on 2 cores, one thread.

Why the generator leaves the writers a core: the frame writer (scaling back, blending, PNG encoding; ~45 core-ms a
1080p frame; since `finishing`, the face and hands too) and a two-thread generator took turns on two cores, and each
parallel region waited for the thread the writer had displaced. `edn generate` of romp_sample2 at 1080p on a 2-core
AMD EPYC (Zen 5), one generator thread against two, two rounds in turns (`benchmarks/bench_generate_zen5.json`):
11.6-12.5 frames/s against 9.0-9.2 (int8 held to AVX2), 8.4-8.6 against 7.3-7.9 (fp32 held to AVX2), 10.5-11.6
against 9.3-9.9 (fp32), 11.2-12.8 against 8.3-9.5 (bf16), and 20-35% fewer core-ms a frame; loaded, a busy process
per core, 6.4 against 4.5 (int8) and 4.6 against 3.8 (fp32 held to AVX2; `bench_generate_zen5_loaded.json`).
Since the writers refine the faces and hands too, two of them write beside that one thread (`frame_writers`).

Why Intel/LLVM OpenMP sleeps at once: any wait there made a loaded machine erratic. Measured on Linux with PyPI's
intel-openmp (the runtime torch's Windows wheel bundles) in place of libgomp (`benchmarks/bench_train_intel_openmp*`):
waiting 1 ms (or 100 us), quiet steps were 1.2-2.2x faster (fp32 AVX2: the Face GAN's 0.065 s against 0.125, the
body's 0.78 s against 1.0), but loaded single body steps took 1.3-8.6 s against 1.1-2.6 s (torch's default wait,
200 ms: up to 15 s). A user with a quiet machine can set KMP_BLOCKTIME=1 themselves.

The variables are read once, when torch loads its OpenMP library, so `apply_policy` must run before
`import torch`: `edn_engine.cli.main` calls it first (`python -m edn_engine`, the `edn` entry point, torchrun),
which the add-on's jobs run (`python -m edn_engine`); it leaves the policy to the engine, which knows the command.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, MutableMapping

# What the policy sets, in a fixed order (tests and benchmarks strip these to measure "without the policy").
POLICY_VARS = ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS")
SPIN_COUNT = "100000"  # libgomp's turns of spinning before a thread sleeps (see above)
# the commands that spin less: generate, and eval, whose torch work is generate's (transfer and demo train first,
# and generate in a child; `edn transfer --run` does not train, and `cli` gives it generate's)
SPIN_COUNTS = {"generate": "10000", "eval": "10000"}
WRITING = ("generate", "eval")  # the commands whose frames worker processes write beside the generator
_CHOSEN: dict[str, str] = {}  # what `apply_policy` put into this process's own environment


def physical_cores(sys_root: Path = Path("/sys")) -> int | None:
    """Physical cores this process may run on, or None where that cannot be read (torch then keeps its own
    default, which on MKL builds is the physical core count too).

    Linux: the distinct (package, core) pairs among the CPUs of this process's affinity mask, capped by a cgroup
    CPU quota (a container given 2 CPUs of a 32-core host must not start 32 threads). macOS: sysctl."""
    if sys.platform.startswith("linux"):
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = list(range(os.cpu_count() or 1))
        cores = set()
        for cpu in cpus:
            topo = sys_root / "devices/system/cpu" / f"cpu{cpu}" / "topology"
            try:
                cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
            except OSError:
                cores.add(("cpu", str(cpu)))  # no topology (some VMs): count the CPU itself
        n = len(cores) or None
        quota = cgroup_cpu_limit(sys_root)
        return min(n, quota) if n and quota else n
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True, timeout=5)
            return int(out.stdout.strip()) or None
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
    return None


def cgroup_cpu_limit(sys_root: Path = Path("/sys")) -> int | None:
    """The CPUs a cgroup v2 quota allows (cpu.max "200000 100000" -> 2), or None without a quota."""
    try:
        quota, period = (sys_root / "fs/cgroup/cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def policy_env(environ: Mapping[str, str] | None = None, cores: int | None = None,
               command: str | None = None) -> dict[str, str]:
    """The policy's variables that `environ` (default: os.environ) does not set yet, for the `edn` command
    `command` (None: training's): what to add to it.

    `cores` defaults to `physical_cores()`; under torchrun (LOCAL_WORLD_SIZE > 1) each process gets its share.
    A variable already set, even to a value we would not choose, is left alone (torchrun sets OMP_NUM_THREADS=1
    for several processes; a user may want OMP_WAIT_POLICY=ACTIVE on a machine they own)."""
    env = os.environ if environ is None else environ
    out = {}
    if "GOMP_SPINCOUNT" not in env and "OMP_WAIT_POLICY" not in env:
        out["GOMP_SPINCOUNT"] = SPIN_COUNTS.get(command or "", SPIN_COUNT)
    if "KMP_BLOCKTIME" not in env and "OMP_WAIT_POLICY" not in env:
        out["KMP_BLOCKTIME"] = "0"
    if "OMP_NUM_THREADS" not in env:
        cores = physical_cores() if cores is None else cores
        if cores:
            try:
                local = max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
            except ValueError:
                local = 1
            threads = max(1, cores // local)
            if command in WRITING:
                threads = generator_threads(threads)
            out["OMP_NUM_THREADS"] = str(threads)
    return out


def generator_threads(cores: int) -> int:
    """A CPU generator's threads beside its frame writers: the cores left after the writers' share (half the cores,
    at most 4): on 2 cores, one thread (see above)."""
    return max(1, cores - min(4, cores // 2))


def frame_writers(cores: int, generator_on_cpu: bool = True, threads: int | None = None) -> int:
    """Frame-writing processes (`frame_writer`) for `cores` cores. A CPU's generator shares the cores with them: it
    keeps its `threads` (default: the policy's, `generator_threads`; a user's OMP_NUM_THREADS may differ), the
    writers the rest (at most 4: each holds torch and the refiners, about 250 MB of its own), and one more where the
    generator runs a single thread. The writers also refine each frame's face and hands (`finishing`), so where the
    generator is faster than a writer (int8 with AVX-VNNI: 44 ms a frame against the writer's 65) one writer left it
    waiting; a second fills the gap (on 2 cores, `bench_generate_xeon_writers.json`). A generator of several threads
    gets no extra writer: a team waits for whichever thread an extra process displaced (see above; more than 2 cores
    are unmeasured). A GPU's generator needs none of the cores (its writers hold no torch): all but one core, at
    most 8."""
    if not generator_on_cpu:
        return max(1, min(8, cores - 1))
    threads = generator_threads(cores) if threads is None else threads
    extra = 1 if threads == 1 else 0
    return max(1, min(4, cores - threads + extra))


def settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The threading variables `environ` holds (the policy's and OMP_WAIT_POLICY): what a benchmark records."""
    return {k: environ[k] for k in (*POLICY_VARS, "OMP_WAIT_POLICY") if k in environ}


def apply_policy(environ: MutableMapping[str, str] | None = None, command: str | None = None) -> dict[str, str]:
    """Put the policy for `command` into this process's environment before torch loads; returns what was added.

    If torch is already imported its OpenMP pool has read the environment: the thread count can still be set,
    the wait policy cannot (the caller imported torch too early; the benchmarks' "loaded" cases catch that)."""
    env = os.environ if environ is None else environ
    added = policy_env(env, command=command)
    env.update(added)
    if env is os.environ:
        _CHOSEN.clear()
        _CHOSEN.update(added)
    torch = sys.modules.get("torch")
    if torch is not None and "OMP_NUM_THREADS" in added:
        torch.set_num_threads(int(added["OMP_NUM_THREADS"]))
    return added


def chosen_threads(command: str) -> int | None:
    """The thread count the policy gives `command`, where this process's policy chose its own (for another
    command: `edn transfer` and `edn demo` generate in their own process where no spin count calls for a child);
    None where the user or a caller set it."""
    if "OMP_NUM_THREADS" not in _CHOSEN:
        return None
    return int(policy_env({k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"},
                          command=command)["OMP_NUM_THREADS"])


def child_environ() -> dict[str, str]:
    """This process's environment for a child that runs an `edn` verb: without the policy this process chose for
    its own command, so the child's `cli.main` chooses the child's. What the user set is passed on as it is."""
    return {k: v for k, v in os.environ.items() if _CHOSEN.get(k) != v}


def needs_own_process(command: str) -> bool:
    """Whether `edn command` would run under another spin count than this process's: `edn transfer` and `edn demo`
    train with training's long spin, and generating under it took twice as long on a loaded machine (see above),
    so they generate in a child process. Only libgomp reads the spin count (Linux; Intel/LLVM OpenMP elsewhere
    sleeps at once for every command), and nothing differs where this process chose no policy (tests, scripts)."""
    if not sys.platform.startswith("linux") or "GOMP_SPINCOUNT" not in _CHOSEN:
        return False
    return policy_env(child_environ(), command=command).get("GOMP_SPINCOUNT") != _CHOSEN["GOMP_SPINCOUNT"]
