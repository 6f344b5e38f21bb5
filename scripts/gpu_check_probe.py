"""scripts/gpu_check.py's probes: what runs inside the engine's processes (`gpu_check.py _engine ARGS`: the
engine's own `cli.main`, then its peak memory into $EDN_GPU_CHECK_PROBE) and the environment probe
(`gpu_check.py _env`, in a process of its own so the check never holds a CUDA context), and reading them back."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = Path(__file__).resolve().with_name("gpu_check.py")  # the script whose `_engine` and `_env` run the entries
PROBE_ENV = "EDN_GPU_CHECK_PROBE"  # folder where each `_engine` process writes its peak memory


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


def probe_environment(python: str) -> dict:
    try:
        res = subprocess.run([python, str(ENTRY), "_env"], capture_output=True, text=True, timeout=300)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode == 0 and line:
            return json.loads(line[-1])
        return {"error": (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]}
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
