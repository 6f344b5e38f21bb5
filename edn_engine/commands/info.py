"""`edn info`: what the engine sees (Python, torch, device, free memory), for the add-on's check button.

It answers before anything heavy is needed, so a Python without torch gets a clear message, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import sys

from .. import __version__
from . import add_json_flag
from ..errors import EdnError
from ..events import Reporter


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="report the Python, PyTorch version, device and free memory the engine sees")
    p.add_argument("--device", default=os.environ.get("EDN_DEVICE", "auto").lower(),
                   help="device to check: auto, cpu, cuda, mps (default: $EDN_DEVICE or auto)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    if importlib.util.find_spec("torch") is None:
        raise EdnError(f"PyTorch is not installed in this Python ({sys.executable}); "
                       "run 'Set up engine' or choose a Python with requirements/engine.txt installed")
    import torch

    from ..device import bf16_supported, choose_device

    device = choose_device(args.device)
    reporter.done(
        engine=__version__,
        python=sys.executable,
        python_version=platform.python_version(),
        torch=torch.__version__,
        device=device.type,
        device_name=_device_name(device, torch),
        bf16=bf16_supported(device),
        free_memory_gb=round(_free_memory(device, torch) / 2**30, 2),
        total_memory_gb=round(_total_memory(device, torch) / 2**30, 2),
        torch_cuda=torch.version.cuda,
        torch_hip=getattr(torch.version, "hip", None),
        mediapipe=_version("mediapipe"),
        opencv=_version("opencv-python-headless") or _version("opencv-python"),
    )


def _device_name(device, torch) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    return _meminfo_like("/proc/cpuinfo", "model name", str) or platform.processor() or platform.machine()


def _total_memory(device, torch) -> int:
    """What the device has in all: the GPU's memory, MPS's recommended maximum, or the machine's RAM."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    kb = _meminfo_like("/proc/meminfo", "MemTotal", lambda v: int(v.split()[0]))
    if kb:
        return kb * 1024
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _meminfo_like(path: str, key: str, parse):
    """The value of `key: value` in a /proc file (Linux), parsed; None where there is no such file or line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                name, sep, value = line.partition(":")
                if sep and name.strip() == key:
                    return parse(value.strip())
    except OSError:
        pass
    return None


def _free_memory(device, torch) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    kb = _meminfo_like("/proc/meminfo", "MemAvailable", lambda v: int(v.split()[0]))
    if kb:
        return kb * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
