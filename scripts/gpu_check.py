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
     With one GPU (K = 1) the K cases are skipped (NCCL refuses two processes on one GPU), and train-1's run
     resumes on one GPU instead (resume-1-to-1), which generate then uses.
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

Time on one H200 at the GPU defaults (romp_sample2.mp4, 1920x1080, 200 frames; 300 + 300 steps per case), measured
once (benchmarks/gpu_check.json, 16 CPU cores): 6.3 minutes, the pose given with --track. Each dataset build took
20 s, each train command about 15 s outside its loop (start, last checkpoint), paper-global 0.117 s a step and cpu
0.107 s (about the same, though paper-global computes far more: at batch 1 the CPU's kernel launches and data
loading bound the step, as the README says), generation 11-13 frames/s (two 1920x1080 PNGs a frame). Peak GPU
memory 4.4 GB (paper-global, without VGG19: no weights there) and 0.34 GB (cpu). The CPU fallback (64x64, the
tests' tiny networks, 3 + 3 steps, world sizes 1 and 2 over gloo) takes 1 to 2.5 minutes on 2 shared cores for
both profiles; tests/test_gpu_check.py runs it for paper-global in about a minute.

GPU machines without internet or MediaPipe: extract the pose on any machine (`edn pose extract CLIP -o t.npz
--end 199 --mattes m/`), bring t.npz and m/ along and pass `--track t.npz --mattes m/`; set EDN_ENGINE_PYTHON to
the Python that has the CUDA build of torch.

VGG19: the paper profiles use the perceptual loss when its weights are found (--vgg-weights, or torch hub's cache)
and `--perceptual none` otherwise (GPU machines are often offline); the JSON says which.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# its parts, beside it in scripts/: the cases, the commands they run, and the probes in the engine's processes
from gpu_check_cases import WARMUP_ROWS, Check, say
from gpu_check_probe import engine_entry, environment_entry, probe_environment

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video"
BENCH = REPO / "benchmarks"
MARKER = ".edn-gpu-check"  # marks a --work folder as this script's, so a rerun may clear it
PROFILES = ("paper-global", "cpu")

# Defaults by device: (clip, frames, size, steps)
GPU_DEFAULTS = ("romp_sample2.mp4", 200, "native", 300)
CPU_DEFAULTS = ("ubc_91BjuE6irxS.mp4", 30, "64x64", 3)


def size_arg(text: str):
    if text == "native":
        return text
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH or 'native', not {text!r}") from None
    return (w, h)


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
