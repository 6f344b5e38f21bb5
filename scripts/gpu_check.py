"""GPU proof: run EDN's CUDA paths end to end on real footage and write what happened to one JSON file.

    bash scripts/gpu_check.sh                          # every GPU -> benchmarks/gpu_check.json
    bash scripts/gpu_check.sh --nproc 2 --steps 200    # two GPUs, shorter
    bash scripts/gpu_check.sh --device cpu             # no GPU: the CPU fallback -> benchmarks/gpu_check_cpu.json

What it runs, each stage an engine command line with --json (`edn ARGS` as `gpu_check.py _engine ARGS`: the
engine's own `cli.main`, then a memory probe; events read with `edn_engine.events.parse_event`), in this order:
  1. `edn pose extract` on the first --frames frames of --clip (MediaPipe, on the CPU), then `edn dataset build`
     at each training size needed (--size, or each profile's own);
  2. for each profile (paper-global, then cpu):
     train-1        a new run, --steps N, on one GPU (CUDA_VISIBLE_DEVICES narrowed to one: a 1-GPU machine);
     train-K        a new run, --steps N, on K GPUs: `python -m torch.distributed.run --nproc_per_node K`
                    (DistributedDataParallel over NCCL);
     resume-K-to-1  train-K's run continued to 2N steps on one GPU;
     resume-1-to-K  train-1's run continued to 2N steps on K GPUs;
     generate       `edn generate` from resume-K-to-1's run (else train-1's) on the clip's own track.
     With one GPU (K = 1) the three K cases are skipped: NCCL refuses two processes on one GPU.
A failing case is recorded with its error line and the others still run (a resume whose source run failed is
recorded as skipped). Exit code 0 when nothing failed, 1 otherwise; the JSON is written either way.

What a case records:
  sec_per_step   median, over the steps this command trained, of losses.csv's sec_per_step (the trainer's mean
                 over the last 20 steps), leaving out the first 20 rows when there are more (warm-up: CUDA context,
                 cuDNN autotuning); the `done` event's mean over all steps is kept beside it (done_sec_per_step);
  peak memory    read inside each engine process as it exits: the command runs through this script's `_engine`
                 entry (the engine's own `cli.main`, then a probe), which records torch.cuda.max_memory_allocated
                 and max_memory_reserved of the process's GPU (nvidia-smi shows about reserved + ~0.5 GB of CUDA
                 context) and the peak RSS; one record per rank (peak_gpu_mb is the largest allocated);
  generate fps   `edn generate`'s frames / seconds between its first and last progress event (model loading left
                 out; stick figures, generator, Face GAN and the PNG writes in), and frames / the command's wall
                 time (whole_command_fps);
  checks         rc 0, a `done` event at the expected step and world size, equal generator digests on every rank,
                 finite losses, losses.csv rows 1..2N after a resume, the resume starting from step N.
The environment (GPU names, memory, compute capability, torch, CUDA, cuDNN and NCCL versions, driver) comes
from a short probe process, so this process never holds a CUDA context itself.

Time on an H200 at the GPU defaults (romp_sample2.mp4, 1920x1080, 200 frames; 300 + 300 steps per case), an
estimate to be confirmed by the first run: about 4 minutes on a 1-GPU machine, about 9 on 8 x H200 (pose
extraction ~40 s on the CPU; paper-global ~0.06 s and cpu ~0.03 s per step; ~15 s to start an engine process and
~30 s a torchrun of 8; ~5 s to write each 2.4 GB paper-global checkpoint; generation writes two 1920x1080 PNGs a
frame, which bounds its frames/s). The work folder needs ~15 GB (the paper-global checkpoints). The CPU fallback
(64x64, the tests' tiny networks, 3 + 3 steps, world sizes 1 and 2 over gloo) takes 1 to 2.5 minutes on 2 shared
cores for both profiles; tests/test_gpu_check.py runs it for paper-global in about a minute.

GPU machines without internet or MediaPipe: extract the pose on any machine (`edn pose extract CLIP -o t.npz
--end 199 --mattes m/`), bring t.npz and m/ along and pass `--track t.npz --mattes m/`; set EDN_ENGINE_PYTHON to
the Python that has the CUDA build of torch.

VGG19: the paper profiles use the perceptual loss when its weights are found (--vgg-weights, or torch hub's cache)
and `--perceptual none` otherwise (GPU machines are often offline); the JSON says which.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video"
BENCH = REPO / "benchmarks"
MARKER = ".edn-gpu-check"  # marks a --work folder as this script's, so a rerun may clear it
PROBE_ENV = "EDN_GPU_CHECK_PROBE"  # folder where each `_engine` process writes its peak memory
PROFILES = ("paper-global", "cpu")
WARMUP_ROWS = 20  # losses.csv rows left out of the median: the first 20 steps' rolling means include step 1

# The tests' tiny networks (tests/tiny_run.py TINY): a CPU step in about a tenth of a second.
TINY = {"ngf": 8, "n_blocks": 1, "max_channels": 64, "ndf": 8, "n_layers_d": 2, "num_d": 2,
        "face_ngf": 8, "face_n_blocks": 1, "face_ndf": 8, "face_n_layers_d": 2}

# Defaults by device: (clip, frames, size, steps)
GPU_DEFAULTS = ("romp_sample2.mp4", 200, "native", 300)
CPU_DEFAULTS = ("ubc_91BjuE6irxS.mp4", 30, "64x64", 3)


# ------------------------------------------------------------------------------------------------------------
# inside the engine's processes: `gpu_check.py _engine ARGS` runs `edn ARGS`, then records its peak memory
# ------------------------------------------------------------------------------------------------------------
def engine_entry(argv: list[str]) -> int:
    """`python -m edn_engine ARGS` (the same `cli.main`), then this process's peak memory into $EDN_GPU_CHECK_PROBE.
    torch is imported only after the engine started (the engine's thread policy must come before it)."""
    sys.path.insert(0, str(REPO))
    from edn_engine.cli import main

    rc = main(argv)
    folder = os.environ.get(PROBE_ENV)
    if folder:
        import resource

        import torch

        rank = int(os.environ.get("RANK", "0"))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        rec = {"rank": rank, "rc": rc, "max_rss_mb": round(rss_mb, 1)}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            dev = torch.cuda.current_device()
            rec.update(gpu=dev, gpu_name=torch.cuda.get_device_name(dev),
                       gpu_max_allocated_mb=round(torch.cuda.max_memory_allocated(dev) / 2**20, 1),
                       gpu_max_reserved_mb=round(torch.cuda.max_memory_reserved(dev) / 2**20, 1))
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(rec))
    return rc


def environment_entry() -> int:
    """`gpu_check.py _env`: what this machine offers, as one JSON line (run in its own process)."""
    import torch
    import torch.distributed as dist

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "nccl_available": dist.is_available() and dist.is_nccl_available(),
            "gloo_available": dist.is_available() and dist.is_gloo_available(),
            "torch_hub_dir": torch.hub.get_dir(), "gpus": []}
    if torch.backends.cudnn.is_available():
        info["cudnn"] = torch.backends.cudnn.version()
    if info["gpu_count"]:
        try:
            v = torch.cuda.nccl.version()
            info["nccl"] = ".".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)
        except Exception as exc:  # a build without NCCL
            info["nccl"] = f"unavailable ({type(exc).__name__}: {exc})"
        info["bf16"] = bool(torch.cuda.is_bf16_supported())
        for i in range(info["gpu_count"]):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                                 "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30)
            info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    print(json.dumps(info))
    return 0


# ------------------------------------------------------------------------------------------------------------
# running one engine command and reading what it said
# ------------------------------------------------------------------------------------------------------------
class Outcome:
    """What one command did: exit code, its events (with the time each arrived), stderr, wall time."""

    def __init__(self, rc: int | None, events: list[tuple[float, dict]], stderr: str, wall_s: float,
                 timed_out: bool, started: float):
        self.rc, self.events, self.stderr, self.wall_s, self.timed_out = rc, events, stderr, wall_s, timed_out
        self.started = started

    def of(self, kind: str) -> list[dict]:
        return [e for _, e in self.events if e["event"] == kind]

    @property
    def done(self) -> dict | None:
        found = self.of("done")
        return found[-1] if found else None


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc; elsewhere none): torchrun starts its workers in sessions of their
    own, so signalling torchrun's process group does not reach them."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def run_command(cmd: list[str], env: dict, timeout: float, log: Path | None = None, grace: float = 30) -> Outcome:
    """Run `cmd` (an argument list), reading its stdout events as they come. After `timeout` seconds it and every
    process below it (torchrun's workers) get SIGTERM (the engine saves and exits), then SIGKILL `grace` seconds
    later. stdout and stderr also go to `log`."""
    from edn_engine.events import parse_event

    err_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True, errors="replace", env=env,
                            start_new_session=True)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        family = [proc.pid, *_descendants(proc.pid)]  # ids of the processes this call started, directly or not
        _signal_all(family, signal.SIGTERM)
        end = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        _signal_all([*family, *_descendants(proc.pid)], signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    events, lines = [], []
    try:
        for line in proc.stdout:
            lines.append(line)
            event = parse_event(line)
            if event is not None:
                events.append((time.monotonic(), event))
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted (Ctrl-C): stop what this call started
            _signal_all([proc.pid, *_descendants(proc.pid)], signal.SIGKILL)
            proc.wait()
    wall = time.monotonic() - t0
    err_file.seek(0)
    stderr = err_file.read()
    err_file.close()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(cmd)}\n--- stdout ---\n{''.join(lines)}--- stderr ---\n{stderr}",
                       encoding="utf-8")
    return Outcome(rc, events, stderr, wall, killed.is_set(), t0)


_BANNER = ("=====", "error_file", "traceback :", "Failures:", "<NO_OTHER_FAILURES>", "Root Cause", "time      :",
           "host      :", "rank      :", "exitcode  :", "To enable traceback")


def error_line(outcome: Outcome, timeout: float | None = None) -> str:
    """The one line that says why a command failed: its `error` event, else the last exception line of stderr
    (torchrun's failure banner left out), else the last line of stderr, else the exit code."""
    if outcome.timed_out:
        return f"timed out after {timeout:.0f} s" if timeout else "timed out"
    errors = outcome.of("error")
    if errors:
        return str(errors[0].get("message", "error"))
    lines = [ln.strip() for ln in outcome.stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not any(ln.startswith(b) or b in ln[:30] for b in _BANNER)]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if ":" in ln and " " not in head and (head.endswith(("Error", "Exception", "Interrupt")) or "Error" in head):
            return ln
    if lines:
        return lines[-1]
    return f"exit code {outcome.rc}"


# ------------------------------------------------------------------------------------------------------------
# reading a run folder
# ------------------------------------------------------------------------------------------------------------
def read_losses(run_dir: Path) -> list[dict]:
    path = run_dir / "losses.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def step_times(rows: list[dict], first_step: int) -> dict:
    """Median sec_per_step of the rows after `first_step` (this command's), leaving out warm-up rows; per stage too."""
    mine = [r for r in rows if int(r["step"]) > first_step]
    skip = min(WARMUP_ROWS, max(len(mine) - 1, 0))
    steady = mine[skip:]
    out = {"sec_per_step": _median([float(r["sec_per_step"]) for r in steady]), "rows": len(mine),
           "warmup_rows_left_out": skip}
    for stage in ("body", "face"):
        vals = [float(r["sec_per_step"]) for r in steady if r["stage"] == stage]
        out[f"{stage}_sec_per_step"] = _median(vals)
    return out


def losses_finite(rows: list[dict]) -> bool:
    values = [v for r in rows for k, v in r.items() if k[:2] in ("G_", "D_", "F_") and v]
    return bool(values) and all(math.isfinite(float(v)) for v in values)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 5) if values else None


def read_probes(folder: Path) -> dict:
    """The `_engine` processes' peak memory records, per rank, and the largest GPU figures among them."""
    recs = sorted((json.loads(p.read_text()) for p in folder.glob("rank*.json")), key=lambda r: r["rank"]) \
        if folder.is_dir() else []
    out: dict = {"per_rank": recs}
    alloc = [r["gpu_max_allocated_mb"] for r in recs if "gpu_max_allocated_mb" in r]
    if alloc:
        out["peak_gpu_mb"] = max(alloc)
        out["peak_gpu_reserved_mb"] = max(r["gpu_max_reserved_mb"] for r in recs)
    if recs:
        out["peak_rss_mb"] = max(r["max_rss_mb"] for r in recs)
    return out


# ------------------------------------------------------------------------------------------------------------
# the check
# ------------------------------------------------------------------------------------------------------------
class Check:
    def __init__(self, args: argparse.Namespace, env_info: dict, work: Path):
        self.a, self.info, self.work = args, env_info, work
        self.cases: list[dict] = []
        self.python = args.python
        self.cuda = args.device == "cuda"
        self.K = args.nproc
        self.base_env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not self.cuda:  # tiny networks on a shared CPU: one thread each (as the tests do)
            self.base_env.setdefault("OMP_NUM_THREADS", "1")
            self.base_env.setdefault("MKL_NUM_THREADS", "1")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.first_gpu = visible.split(",")[0].strip() if visible else "0"

    # -- commands ----------------------------------------------------------------------------------------------
    def engine(self, args: list, procs: int = 1) -> list[str]:
        args = [str(a) for a in args]
        me = str(Path(__file__).resolve())
        if procs > 1:
            return [self.python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                    me, "_engine", *args]
        return [self.python, me, "_engine", *args]

    def env(self, procs: int, probe: Path) -> dict:
        env = dict(self.base_env, **{PROBE_ENV: str(probe)})
        if self.cuda and procs == 1:
            env["CUDA_VISIBLE_DEVICES"] = self.first_gpu  # one GPU, as on a machine that has one
        return env

    def case(self, name: str, kind: str, **fields) -> dict:
        rec = {"name": name, "kind": kind, **fields, "status": "running"}
        self.cases.append(rec)
        say(f"[{len(self.cases)}] {name} ...")
        return rec

    def run(self, rec: dict, args: list, procs: int = 1) -> Outcome:
        probe = self.work / "probe" / rec["name"].replace("/", "_")
        cmd = self.engine(args, procs)
        rec["command"] = cmd
        out = run_command(cmd, self.env(procs, probe), self.a.case_timeout,
                          self.work / "logs" / (rec["name"].replace("/", "_") + ".log"))
        rec["wall_s"] = round(out.wall_s, 2)
        rec["memory"] = read_probes(probe)
        return out

    def finish(self, rec: dict, out: Outcome | None, problems: list[str]) -> bool:
        if out is not None and (out.rc != 0 or out.timed_out):
            problems = [error_line(out, self.a.case_timeout)] + problems
            rec["rc"] = out.rc
        if problems:
            rec.update(status="failed", error=problems[0])
            if len(problems) > 1:
                rec["other_problems"] = problems[1:]
            if out is not None:
                rec["stderr_tail"] = out.stderr.splitlines()[-25:]
        else:
            rec["status"] = "passed"
        figure = (f", {rec['sec_per_step']} s/step" if rec.get("sec_per_step") else
                  f", {rec['fps']} frames/s" if rec.get("fps") else "")
        say(f"    {rec['status']}" + (f": {rec['error']}" if problems else f" in {rec.get('wall_s')} s{figure}"))
        return not problems

    def skip(self, name: str, kind: str, why: str, **fields) -> None:
        self.cases.append({"name": name, "kind": kind, **fields, "status": "skipped", "reason": why})
        say(f"[{len(self.cases)}] {name}: skipped ({why})")

    def guarded(self, rec: dict, fn) -> bool:
        """Run one case's body; an exception in this script is recorded as the case's failure, not raised."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one case's bug must not stop the others
            return self.finish(rec, None, [f"gpu_check: {type(exc).__name__}: {exc}"])

    # -- stages ------------------------------------------------------------------------------------------------
    def pose(self) -> bool:
        if self.a.track is not None:  # extracted elsewhere (e.g. a GPU machine without MediaPipe)
            self.skip("pose", "pose", f"given: --track {self.a.track} --mattes {self.a.mattes}")
            return True
        rec = self.case("pose", "pose", frames=self.a.frames, clip=str(self.a.clip))

        def body() -> bool:
            out = self.run(rec, ["pose", "extract", self.a.clip, "-o", self.track, "--end", self.a.frames - 1,
                                 "--mattes", self.mattes, "--json"])
            done = out.done or {}
            rec.update(frames_per_s=done.get("frames_per_second"), detection_rate=done.get("detection_rate"))
            return self.finish(rec, out, [] if out.rc or self.track.is_file() else ["no track written"])

        return self.guarded(rec, body)

    def dataset(self, size: tuple[int, int], profile: str) -> bool:
        w, h = size
        rec = self.case(f"dataset-{w}x{h}", "dataset", size=[w, h])

        def body() -> bool:
            out = self.run(rec, ["dataset", "build", self.a.clip, "-o", self.datasets[size], "--size", f"{w}x{h}",
                                 "--track", self.track, "--mattes", self.mattes, "--end", self.a.frames - 1,
                                 "--profile", profile, "--json"])
            done = out.done or {}
            rec.update(framing=done.get("framing"), train_frames=done.get("train_frames"))
            return self.finish(rec, out, [])

        return self.guarded(rec, body)

    def train_args(self, profile: str, dataset: Path, run: Path, steps: int) -> list:
        args = ["train", dataset, "-o", run, "--device", self.a.device, "--steps", steps, "--save-every",
                self.a.steps, "--preview-every", self.a.steps, "--json"]
        if self.a.networks == "tiny":
            args += [x for k, v in TINY.items() for x in ("--set", f"{k}={json.dumps(v)}")]
        return args

    def perceptual_args(self, profile: str, resume: bool = False) -> list:
        """The perceptual loss of a new run (a resume keeps the run's own, but needs the weights file again)."""
        if self.a.networks == "tiny":
            return [] if resume else ["--perceptual", "none"]
        if profile == "cpu":  # L1 by design
            return []
        if self.vgg is not None:
            return ["--vgg-weights", self.vgg]
        return [] if resume else ["--perceptual", "none"]

    def train(self, profile: str, procs: int, run: Path) -> bool:
        name = f"{profile}/train-{procs}"
        rec = self.case(name, "train", profile=profile, processes=procs, steps=self.a.steps)

        def body() -> bool:
            args = self.train_args(profile, self.datasets[self.size_of(profile)], run, self.a.steps)
            out = self.run(rec, args + ["--profile", profile, *self.perceptual_args(profile)], procs)
            return self.finish(rec, out, self.check_training(rec, out, run, 0, self.a.steps, procs))

        return self.guarded(rec, body)

    def resume(self, profile: str, source: Path, run: Path, from_procs: int, to_procs: int) -> bool:
        name = f"{profile}/resume-{from_procs}-to-{to_procs}"
        rec = self.case(name, "resume", profile=profile, from_processes=from_procs, processes=to_procs,
                        resumed_from_step=self.a.steps, steps=2 * self.a.steps)

        def body() -> bool:
            shutil.copytree(source, run)  # the source run stays as it was (generate and the other resume read it)
            args = self.train_args(profile, self.datasets[self.size_of(profile)], run, 2 * self.a.steps)
            out = self.run(rec, args + ["--resume", *self.perceptual_args(profile, True)], to_procs)
            problems = self.check_training(rec, out, run, self.a.steps, 2 * self.a.steps, to_procs)
            logs = [e.get("message", "") for e in out.of("log")]
            if out.rc == 0 and not any(f"(step {self.a.steps})" in m for m in logs):
                problems.append(f"no 'resuming from ... (step {self.a.steps})' log event")
            rows = read_losses(run)
            if out.rc == 0 and [int(r["step"]) for r in rows] != list(range(1, 2 * self.a.steps + 1)):
                problems.append("losses.csv does not hold steps 1..%d once each" % (2 * self.a.steps))
            rec["resumed_on_other_process_count"] = not problems and out.rc == 0
            return self.finish(rec, out, problems)

        return self.guarded(rec, body)

    def check_training(self, rec: dict, out: Outcome, run: Path, first: int, last: int, procs: int) -> list[str]:
        done = out.done
        if out.rc != 0:
            return []
        if done is None:
            return ["no done event"]
        rows = read_losses(run)
        rec.update(step_times(rows, first))
        rec.update(done_sec_per_step=done.get("sec_per_step"), train_seconds=done.get("seconds"),
                   device=done.get("device"), face_stage=done.get("face_stage"), losses_finite=losses_finite(rows))
        if rec.get("sec_per_step"):
            rec["pairs_per_s"] = round(procs / rec["sec_per_step"], 3)  # batch 1 per process
        problems = []
        if done.get("step") != last:
            problems.append(f"stopped at step {done.get('step')}, not {last} ({done.get('stopped')})")
        if done.get("world_size") != procs:
            problems.append(f"world size {done.get('world_size')}, not {procs}")
        digests = done.get("generator_sha256") or []
        if len(digests) != procs or len(set(digests)) != 1:
            problems.append(f"generator weights differ between processes: {digests}")
        if not rec["losses_finite"]:
            problems.append("a loss in losses.csv is not finite (or none was logged)")
        if not (run / "checkpoints" / f"step_{last:08d}.pt").is_file():
            problems.append(f"no checkpoint step_{last:08d}.pt")
        return problems

    def generate(self, profile: str, run: Path, source_case: str) -> bool:
        rec = self.case(f"{profile}/generate", "generate", profile=profile, run_from=source_case, processes=1)

        def body() -> bool:
            frames_dir = self.work / "generated" / profile
            out = self.run(rec, ["generate", run, self.track, "-o", frames_dir, "--device", self.a.device, "--json"])
            done, problems = out.done or {}, []
            prog = [(t, e) for t, e in out.events if e["event"] == "progress"]
            if len(prog) >= 2 and prog[-1][0] > prog[0][0]:
                rec["fps"] = round((prog[-1][1]["done"] - prog[0][1]["done"]) / (prog[-1][0] - prog[0][0]), 2)
            if out.rc == 0:
                n = done.get("written", 0) + done.get("empty", 0)
                rec.update(frames=done.get("frames"), written=done.get("written"), face_gan=done.get("face_gan"),
                           size=done.get("size"), framing=done.get("framing"), device=done.get("device"),
                           whole_command_fps=round(n / out.wall_s, 2) if out.wall_s else None)
                files = len(list(frames_dir.glob("frame_*.png"))) if frames_dir.is_dir() else 0
                if not n or n != done.get("frames") or files != n:
                    problems.append(f"{files} frame files and {n} frames generated, not the track's "
                                    f"{done.get('frames')}")
            return self.finish(rec, out, problems)

        return self.guarded(rec, body)

    # -- the whole check ---------------------------------------------------------------------------------------
    def size_of(self, profile: str) -> tuple[int, int]:
        if self.a.size != "native":
            return self.a.size
        from edn_engine.models.config import PROFILES as P

        return (P[profile].width, P[profile].height)

    def all(self) -> None:
        self.track, self.mattes = self.a.track or self.work / "track.npz", self.a.mattes or self.work / "mattes"
        sizes = {}
        for p in self.a.profiles:
            sizes.setdefault(self.size_of(p), p)
        self.datasets = {s: self.work / f"dataset_{s[0]}x{s[1]}" for s in sizes}
        self.vgg = self.a.vgg_weights
        if self.vgg is None:
            hub = Path(self.info.get("torch_hub_dir") or "") / "checkpoints" / "vgg19-dcbb9e9d.pth"
            self.vgg = hub if hub.is_file() else None
        have_pose = self.pose()
        ready = {}
        for s, p in sizes.items():
            if have_pose:
                ready[s] = self.dataset(s, p)
            else:
                self.skip(f"dataset-{s[0]}x{s[1]}", "dataset", "no pose track")
                ready[s] = False
        K = self.K
        for p in self.a.profiles:
            runs = self.work / "runs" / p
            one, many = runs / "train-1", runs / f"train-{K}"
            if not ready[self.size_of(p)]:
                for c in ("train-1", f"train-{K}", f"resume-{K}-to-1", f"resume-1-to-{K}", "generate"):
                    self.skip(f"{p}/{c}", c.split("-")[0], "no dataset", profile=p)
                continue
            ok1 = self.train(p, 1, one)
            why_not_k = None if K > 1 else (
                "one GPU: NCCL cannot run two processes on one GPU" if self.cuda else "--nproc 1")
            okk = False
            if why_not_k:
                self.skip(f"{p}/train-{K}", "train", why_not_k, profile=p)
                self.skip(f"{p}/resume-{K}-to-1", "resume", why_not_k, profile=p)
                self.skip(f"{p}/resume-1-to-{K}", "resume", why_not_k, profile=p)
            else:
                okk = self.train(p, K, many)
                back = runs / f"resume-{K}-to-1"
                if okk:
                    okk = self.resume(p, many, back, K, 1)
                else:
                    self.skip(f"{p}/resume-{K}-to-1", "resume", f"train-{K} failed", profile=p)
                if ok1:
                    self.resume(p, one, runs / f"resume-1-to-{K}", 1, K)
                else:
                    self.skip(f"{p}/resume-1-to-{K}", "resume", "train-1 failed", profile=p)
            if okk:
                self.generate(p, runs / f"resume-{K}-to-1", f"{p}/resume-{K}-to-1")
            elif ok1:
                self.generate(p, one, f"{p}/train-1")
            else:
                self.skip(f"{p}/generate", "generate", "no trained run", profile=p)

    def summary(self) -> dict:
        """Per profile: step times on 1 and K processes, the resumes, generation speed, peak memory."""
        by = {c["name"]: c for c in self.cases}
        out = {}
        for p in self.a.profiles:
            t1, tk = by.get(f"{p}/train-1", {}), by.get(f"{p}/train-{self.K}", {})
            gen = by.get(f"{p}/generate", {})
            peaks = [c["memory"].get("peak_gpu_mb") for c in self.cases if c.get("profile") == p and c.get("memory")]
            peaks = [x for x in peaks if x is not None]
            s = {"sec_per_step_1": t1.get("sec_per_step"), f"sec_per_step_{self.K}": tk.get("sec_per_step"),
                 f"resume_{self.K}_to_1": by.get(f"{p}/resume-{self.K}-to-1", {}).get("status"),
                 f"resume_1_to_{self.K}": by.get(f"{p}/resume-1-to-{self.K}", {}).get("status"),
                 "generate_fps": gen.get("fps"), "generate_whole_command_fps": gen.get("whole_command_fps"),
                 "peak_gpu_mb": max(peaks) if peaks else None}
            if t1.get("pairs_per_s") and tk.get("pairs_per_s"):
                s[f"scaling_{self.K}_over_1"] = round(tk["pairs_per_s"] / t1["pairs_per_s"], 3)
            out[p] = s
        return out


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def size_arg(text: str):
    if text == "native":
        return text
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH or 'native', not {text!r}") from None
    return (w, h)


def probe_environment(python: str) -> dict:
    try:
        res = subprocess.run([python, str(Path(__file__).resolve()), "_env"], capture_output=True, text=True,
                             timeout=300)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode == 0 and line:
            return json.loads(line[-1])
        return {"error": (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]}
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def git_state() -> dict:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return {"commit": head or None, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def prepare_work(path: Path | None) -> tuple[Path, bool]:
    """The work folder (datasets, runs, logs): a new temporary one, or --work, which must be empty, new, or an
    earlier check's (then cleared). Returns (folder, whether to delete it afterwards)."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="edn-gpu-check-")), True
    if path.exists():
        if not path.is_dir():
            sys.exit(f"gpu_check: --work {path} is not a folder")
        if any(path.iterdir()):
            if not (path / MARKER).is_file():
                sys.exit(f"gpu_check: --work {path} holds files this script did not make; choose an empty folder")
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by scripts/gpu_check.py; cleared by its next run\n")
    return path, False


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                    help="auto (default): cuda when a GPU is visible, else the CPU fallback")
    ap.add_argument("--clip", type=Path, default=None,
                    help=f"real footage (default: {VIDEO}/{GPU_DEFAULTS[0]} on GPUs, {CPU_DEFAULTS[0]} on CPU)")
    ap.add_argument("--frames", type=int, default=None, help="frames of the clip (GPU 200, CPU 30)")
    ap.add_argument("--track", type=Path, default=None,
                    help="the clip's pose track from `edn pose extract` (with --mattes): skips extraction, so the "
                         "GPU machine needs no MediaPipe")
    ap.add_argument("--mattes", type=Path, default=None, help="the mattes folder extracted with --track")
    ap.add_argument("--size", type=size_arg, default=None,
                    help="training size WxH, or 'native': each profile's own (GPU native, CPU 64x64)")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps of each new run; each resume adds as many (GPU 300, CPU 3)")
    ap.add_argument("--nproc", type=int, default=None, help="processes of the multi-process cases (GPU: all, CPU 2)")
    ap.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated (default paper-global,cpu)")
    ap.add_argument("--networks", choices=("full", "tiny"), default=None,
                    help="full: the profiles as they are (GPU default); tiny: the tests' tiny networks (CPU default)")
    ap.add_argument("--vgg-weights", type=Path, default=None,
                    help="vgg19-dcbb9e9d.pth for the paper profiles (default: torch hub's cache, else no VGG loss)")
    ap.add_argument("--out", type=Path, default=None,
                    help="the JSON (default benchmarks/gpu_check.json; CPU: benchmarks/gpu_check_cpu.json)")
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for datasets, runs and logs, kept (default: a temporary folder, removed)")
    ap.add_argument("--case-timeout", type=float, default=None, help="seconds per command (GPU 900, CPU 300)")
    ap.add_argument("--python", default=os.environ.get("EDN_ENGINE_PYTHON", sys.executable),
                    help="the Python that runs the engine (default: this one)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_engine"]:
        return engine_entry(argv[1:])
    if argv[:1] == ["_env"]:
        return environment_entry()
    sys.path.insert(0, str(REPO))
    from edn_engine.atomic import write_json
    from edn_engine.models.config import PROFILES as KNOWN

    a = parse_args(argv)
    t_start = time.monotonic()
    say("gpu_check: probing the environment ...")
    info = probe_environment(a.python)
    gpus = int(info.get("gpu_count") or 0)
    if a.device == "auto":
        a.device = "cuda" if gpus else "cpu"
    if a.device == "cuda" and not gpus:
        sys.exit(f"gpu_check: --device cuda, but the engine's torch sees no GPU ({info.get('error') or info})")
    clip, frames, size, steps = GPU_DEFAULTS if a.device == "cuda" else CPU_DEFAULTS
    a.clip = a.clip or VIDEO / clip
    a.frames = a.frames or frames
    a.size = a.size or size_arg(size)
    a.steps = a.steps or steps
    a.nproc = a.nproc or (gpus if a.device == "cuda" else 2)
    a.networks = a.networks or ("full" if a.device == "cuda" else "tiny")
    a.case_timeout = a.case_timeout or (900 if a.device == "cuda" else 300)
    a.profiles = [p.strip() for p in a.profiles.split(",") if p.strip()]
    a.out = a.out or BENCH / ("gpu_check.json" if a.device == "cuda" else "gpu_check_cpu.json")
    bad = [p for p in a.profiles if p not in KNOWN]
    if bad or not a.profiles:
        sys.exit(f"gpu_check: unknown profile(s) {bad}; known: {', '.join(KNOWN)}")
    if not a.clip.is_file():
        sys.exit(f"gpu_check: clip not found: {a.clip}")
    if (a.track is None) != (a.mattes is None):
        sys.exit("gpu_check: --track and --mattes go together")
    if a.track is not None and not (a.track.is_file() and a.mattes.is_dir()):
        sys.exit(f"gpu_check: --track {a.track} or --mattes {a.mattes} not found")
    if a.frames < 4 or a.steps < 1 or a.nproc < 1:
        sys.exit("gpu_check: --frames must be at least 4, --steps and --nproc at least 1")
    if a.device == "cuda" and a.nproc > gpus:
        sys.exit(f"gpu_check: --nproc {a.nproc}, but only {gpus} GPU(s) are visible")

    work, temporary = prepare_work(a.work)
    check = Check(a, info, work)
    try:
        check.all()
    finally:
        cases = check.cases
        failed = [c for c in cases if c["status"] in ("failed", "running")]
        doc = {
            "format": "edn-gpu-check", "version": 1,
            "ok": not failed, "passed": sum(c["status"] == "passed" for c in cases), "failed": len(failed),
            "skipped": sum(c["status"] == "skipped" for c in cases),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(time.monotonic() - t_start, 1), "command": argv, "git": git_state(),
            "environment": info,
            "settings": {"device": a.device, "processes": a.nproc, "steps": a.steps, "resume_to": 2 * a.steps,
                         "frames": a.frames, "clip": str(a.clip), "profiles": a.profiles,
                         "sizes": {p: list(check.size_of(p)) for p in a.profiles}, "networks": a.networks,
                         "vgg19": str(check.vgg) if getattr(check, "vgg", None) else None,
                         "perceptual_paper_profiles": "none (tiny networks)" if a.networks == "tiny" else (
                             "vgg19" if getattr(check, "vgg", None) else "none (no VGG19 weights found)"),
                         "work": str(work) if not temporary else None,
                         "one_process_cases_see": (f"CUDA_VISIBLE_DEVICES={check.first_gpu}" if a.device == "cuda"
                                                   else "the CPU"),
                         "memory": "per process, read at its exit: torch.cuda.max_memory_allocated/_reserved of "
                                   "its GPU, and peak RSS",
                         "sec_per_step": f"median of losses.csv's sec_per_step over the command's steps, the "
                                         f"first {WARMUP_ROWS} rows left out when there are more"},
            "profiles": check.summary(),
            "failures": [{"case": c["name"], "error": c.get("error", "interrupted")} for c in failed],
            "cases": cases,
        }
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(a.out, doc)
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
        say(f"gpu_check: {doc['passed']} passed, {doc['failed']} failed, {doc['skipped']} skipped in "
            f"{doc['seconds']} s -> {a.out}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
