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
from ..cli import add_json_flag
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
        mediapipe=_version("mediapipe"),
        opencv=_version("opencv-python-headless") or _version("opencv-python"),
    )


def _device_name(device, torch) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (platform.processor() or platform.machine()) if device.type == "cpu" else device.type


def _free_memory(device, torch) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
