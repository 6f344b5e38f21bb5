"""Which PyTorch build set-up installs (Auto, CUDA, ROCm, CPU) and where it comes from; which GPUs the driver sees.

PyPI's torch wheel differs by platform: CPU-only on Windows, CPU + Apple MPS on macOS, and on Linux a CUDA 12
build that pulls about 2.5 GB of NVIDIA libraries. So CUDA and ROCm builds, and Linux's CPU-only build, come from
PyTorch's own wheel index (`https://download.pytorch.org/whl/<tag>`). An artist behind a mirror can set the index
to empty: torch then comes from PyPI as pip is configured. No bpy here.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

PYTORCH_INDEX = "https://download.pytorch.org/whl"
CUDA_TAG, CUDA_TEXT = "cu128", "CUDA 12.8"
ROCM_TAG, ROCM_TEXT = "rocm6.4", "ROCm 6.4"
CHOICES = ("AUTO", "CUDA", "ROCM", "CPU")


class BuildError(Exception):
    """The build asked for cannot work here; `offer_cpu` says whether the CPU build is the way out."""

    def __init__(self, message: str, offer_cpu: bool = False) -> None:
        super().__init__(message)
        self.offer_cpu = offer_cpu


@dataclasses.dataclass(frozen=True)
class TorchBuild:
    kind: str  # CUDA, ROCM, CPU or MPS
    label: str  # for the panel: "CUDA 12.8 (PyTorch's index)"
    index_url: str | None  # None: PyPI, as pip is configured


def nvidia_gpus(timeout: float = 10.0) -> list[str]:
    """The NVIDIA GPUs the driver sees, as "name, memory" lines ([] without a driver). Asks `nvidia-smi`, which
    every NVIDIA driver installs, so this works before PyTorch is installed."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []


def resolve(choice: str, system: str, machine: str, gpus: list[str], index: str = PYTORCH_INDEX) -> TorchBuild:
    """The concrete build for `choice` on this computer (`system`/`machine` as platform.system()/machine() say)."""
    index = index.rstrip("/")
    machine = machine.lower()
    if choice not in CHOICES:
        raise BuildError(f"unknown PyTorch build {choice!r} (choose one of {', '.join(CHOICES)})")
    if choice == "AUTO":
        if gpus and system in ("Linux", "Windows"):
            choice = "CUDA"
        elif system == "Darwin" and machine in ("arm64", "aarch64"):
            return TorchBuild("MPS", "Apple GPU (MPS), PyPI's macOS build", None)
        else:
            choice = "CPU"
    if choice == "CUDA":
        if system == "Darwin":
            raise BuildError("CUDA builds of PyTorch do not exist for macOS: choose Auto (Apple's GPU) or CPU",
                             offer_cpu=True)
        if not gpus:
            raise BuildError("the CUDA build was asked for, but no NVIDIA driver was found (nvidia-smi is missing "
                             "or sees no GPU): install NVIDIA's driver and try again, or set up the CPU build",
                             offer_cpu=True)
        return _from_index("CUDA", CUDA_TEXT, CUDA_TAG, index)
    if choice == "ROCM":
        if system != "Linux":
            raise BuildError("ROCm builds of PyTorch exist only for Linux: choose CUDA or CPU", offer_cpu=True)
        return _from_index("ROCM", ROCM_TEXT, ROCM_TAG, index)
    if system == "Linux":  # PyPI's Linux wheel is a CUDA build: the CPU-only one is 2.5 GB smaller
        return _from_index("CPU", "CPU", "cpu", index)
    return TorchBuild("CPU", "CPU, PyPI's build", None)


def _from_index(kind: str, text: str, tag: str, index: str) -> TorchBuild:
    if not index:
        return TorchBuild(kind, f"{text} requested; PyPI's build as pip is configured", None)
    return TorchBuild(kind, f"{text}, from {index}/{tag}", f"{index}/{tag}")


def gpu_unused_warning(gpus: list[str], engine_device: str, torch_version: str) -> str | None:
    """A warning when the driver sees a GPU but the engine computes on the CPU (a CPU build, or a broken CUDA)."""
    if not gpus or engine_device not in ("cpu", ""):
        return None
    cause = ("its PyTorch is a CPU-only build" if "+cpu" in torch_version or not torch_version
             else f"its PyTorch {torch_version} cannot use it")
    return (f"Warning: an NVIDIA GPU is present ({gpus[0]}) but the engine sees none: {cause}. Run Set up engine "
            f"with the CUDA build (or Auto)")
