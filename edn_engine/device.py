"""Where the networks run: CUDA, Apple MPS or CPU, and whether bf16 autocast and channels_last pay off there.

bf16 autocast is only used where the hardware computes in bf16 natively: on a CPU without AMX or AVX512-BF16
it is emulated and slower than fp32, so "supported" is decided by capability, never assumed.
channels_last: measured on CPU, it speeds up bf16 generator inference but slows CPU training, so it is a
separate switch for inference and training.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path

import torch

from .errors import EdnError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def choose_device(name: str = "auto") -> torch.device:
    """The device for `name` ('auto' picks CUDA, then MPS, then CPU). A device that is absent is an error."""
    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise EdnError(f"unknown device '{name}' (choose from {', '.join(DEVICE_CHOICES)})")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdnError("--device cuda was asked for, but no CUDA GPU is available to PyTorch")
    if name == "mps" and not _mps_available():
        raise EdnError("--device mps was asked for, but Apple MPS is not available")
    return torch.device(name)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16: with one, bf16 would be emulated.
NO_BF16_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (Intel AMX or AVX512-BF16; Arm BF16 also counts), and nobody
    held oneDNN below those instructions (`ONEDNN_MAX_CPU_ISA=AVX2` makes this CPU act as one without bf16)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in NO_BF16_ISAS:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
        if any(f in flags for f in ("amx_bf16", "avx512_bf16", "bf16")):
            return True
    except OSError:
        pass
    # Without /proc/cpuinfo (macOS, Windows) trust oneDNN's own check when this torch build exposes it.
    mkldnn = getattr(torch.backends, "mkldnn", None)
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    if mkldnn is not None and check is not None:
        with contextlib.suppress(Exception):
            return bool(check())
    return False


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False  # MPS: bf16 autocast is partial on older macOS; fp32 is the safe choice


def inference_precision(device: torch.device, amp: bool = True) -> str:
    """How the generators compute on `device`: "bf16" (autocast) where it runs bf16 natively; "int8" on an x86 CPU
    without it, whose AVX2 multiplies 8-bit integers several times faster than fp32 (`models.int8`); else, or with
    `amp` off, "fp32"."""
    if not amp:
        return "fp32"
    if bf16_supported(device):
        return "bf16"
    if device.type == "cpu" and int8_supported():
        return "int8"
    return "fp32"


@functools.lru_cache(maxsize=1)
def int8_supported() -> bool:
    """An x86 CPU, and a PyTorch with oneDNN's int8 convolutions (`models.int8`)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return x86 and torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def autocast(device: torch.device, enabled: bool = True):
    """A bf16 autocast context where the device runs bf16 natively, otherwise a no-op."""
    if enabled and bf16_supported(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(device: torch.device, training: bool, bf16: bool | None = None) -> bool:
    """channels_last where it was measured to help: GPUs always, CPU only for bf16 inference.
    `bf16`: whether the caller computes in bf16 (default: whether the device can)."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        bf16 = cpu_has_native_bf16() if bf16 is None else bf16
        return (not training) and bf16
    return False


def describe(device: torch.device) -> dict:
    """What a summary or benchmark records about the device."""
    info = {"device": str(device), "bf16": bf16_supported(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    return info
