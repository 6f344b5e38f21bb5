"""Keeping processes in step: the data order, several processes under torchrun, deterministic kernels, and
stopping on a signal. Everything here exists so that a resumed run, or one on N processes, trains exactly what
one uninterrupted process would.

Exact resume: the data order (`StepSampler`), the learning rate and every random draw are functions of the
step, the seed and the restored RNG states, and checkpoints are written only between steps, so killing a run and
resuming it gives the same weights as never stopping (on CPU, where the kernels are deterministic).

Several processes (`torchrun --nproc_per_node N -m edn_engine train ...`): each takes its own share of every
step's samples, and the trained networks are wrapped in DistributedDataParallel, which copies rank 0's weights
to every process at the start and averages the gradients across processes in each backward. Running G twice
before one backward, and D twice (fake, real) in its own update, needs no extra DDP flags (checked on torch 2.13
with gloo: gradients equal to a hand all-reduce). Not `static_graph=True`: with D's frozen pass going through
DDP, it silently averaged wrong D gradients in that check. With one process there is no wrapper at all.
Checkpoints hold the bare modules' weights, so a run trained in several processes resumes in one and the other
way round. Rank 0 alone writes checkpoints, previews and logs; every process reads the checkpoint on --resume,
so across several machines RUN_DIR must be on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import os
import signal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


# -- the data order ---------------------------------------------------------------------------------------------
class StepSampler:
    """The samples of each step as a pure function of (step, rank): the role of a DistributedSampler, but
    resumable at any step. The stream of samples is a sequence of seeded permutations (one per epoch); step s
    takes `batch * world` consecutive samples of it and rank r its own `batch` of those.

    Not torch's DistributedSampler with set_epoch: it shards per epoch, so resuming mid-epoch would need the
    DataLoader fast-forwarded through the batches already trained, and it pads or drops samples to make the
    epoch divide by the number of processes, so the data order would depend on the world size. Here the
    stream is the same for any number of processes (N processes at batch b see what one process at batch N*b
    sees), which is what lets a checkpoint move between one and several processes."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int):
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self._perm: tuple[int, list[int]] | None = None

    def _at(self, pos: int) -> int:
        epoch, k = divmod(pos, self.n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g).tolist())
        return self._perm[1][k]

    def _places(self, step: int) -> range:
        """This rank's places in the stream at step `step`."""
        first = step * self.batch * self.world + self.rank * self.batch
        return range(first, first + self.batch)

    def indices(self, step: int) -> list[int]:
        return [self._at(p) for p in self._places(step)]

    def mirrored(self, step: int, chance: float) -> list[bool]:
        """Which of this rank's samples of step `step` are mirrored (`PairDataset.mirrored`), each with probability
        `chance`: a pure function of the sample's place in the stream, like the samples themselves."""
        if chance <= 0:
            return [False] * self.batch
        seed = self.seed % 2**64  # numpy's seeds are not negative; torch's may be
        return [bool(np.random.default_rng([seed, p]).random() < chance) for p in self._places(step)]

    def batches(self, start: int):
        """The batches of steps start, start + 1, ... without end: the loop decides when to stop (a --minutes
        run does not know its length in advance). A DataLoader's `batch_sampler`."""
        sampler = self

        class _Batches:
            def __iter__(self):
                return (sampler.indices(s) for s in itertools.count(start))

        return _Batches()


# -- several processes ------------------------------------------------------------------------------------------
def init_distributed(dev: torch.device) -> tuple[torch.device, int, int]:
    """(device, rank, world size) from torchrun's environment; NCCL between GPUs, gloo between CPU processes.
    With several GPUs each process takes the one of its LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return dev, 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" and dist.is_nccl_available() else "gloo")
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    return dev, dist.get_rank(), dist.get_world_size()


class FaceRefine(nn.Module):
    """The face generator's `refine` as a module's forward: DDP syncs only what runs through `forward`."""

    def __init__(self, face_generator: nn.Module):
        super().__init__()
        self.fg = face_generator

    def forward(self, label_crop: torch.Tensor, face_crop: torch.Tensor) -> torch.Tensor:
        return self.fg.refine(label_crop, face_crop)


def wrap_for_training(nets: dict[str, nn.Module], world: int, dev: torch.device) -> dict[str, nn.Module]:
    """The modules the steps call, from the networks {"G", "D", ["FG", "FD",] ["HG", "HD"]}: the networks
    themselves in one process (no wrapper, no overhead); in several, each in DistributedDataParallel, whose
    constructor broadcasts rank 0's weights (so every process starts from the same ones, also after --resume) and
    whose backward averages the gradients."""
    out = {"G": nets["G"], "D": nets["D"]}
    if nets.get("FG") is not None:
        out.update(FG=FaceRefine(nets["FG"]), FD=nets["FD"])
    if nets.get("HG") is not None:
        out.update(HG=nets["HG"], HD=nets["HD"])
    if world > 1:
        ids = [dev.index] if dev.type == "cuda" else None
        out = {k: DistributedDataParallel(m, device_ids=ids) for k, m in out.items()}
    return out


def bare(net: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (or the network itself)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def gather_digests(G: nn.Module, world: int) -> list[str]:
    """SHA-256 of the generator's weights on each process: equal digests prove the processes stayed in step."""
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()
    if world <= 1:
        return [digest]
    out: list = [None] * world
    dist.all_gather_object(out, digest)
    return out


def finish_distributed(trained: dict, world: int) -> None:
    """Leave the process group cleanly. The DDP wrappers go first: a minimal gloo script that kept them aborted
    at exit in 3 of 6 runs ("terminate called without an active exception", torch 2.13), 0 of 6 without."""
    if world <= 1:
        return
    trained.clear()
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


# -- determinism and stopping -------------------------------------------------------------------------------------
@contextlib.contextmanager
def deterministic(dev: torch.device):
    """Deterministic kernels on CPU (exact resume); cuDNN autotuning on CUDA (speed first there).
    Deterministic mode would also fill each tensor allocated uninitialised with NaN (a check for kernels that read
    memory they never wrote; resume stays bit-identical without it, as tests/test_train.py checks): ~2,000 fills,
    about 30 ms of a cpu-profile step on a 2-core CPU, so it is off. The process-wide switches are put back
    afterwards, for callers that train in-process."""
    fill = torch.utils.deterministic
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, fill.fill_uninitialized_memory)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        fill.fill_uninitialized_memory = False
    elif dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        fill.fill_uninitialized_memory = before[3]


class StopFlag:
    """SIGTERM (the Blender add-on's cancel) and Ctrl-C finish the current step, save, and exit cleanly."""

    def __enter__(self) -> "StopFlag":
        self.raised = False
        self._old = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. called from a worker thread): no handlers
            pass
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def agreed(self, world: int, dev: torch.device, out_of_time: bool = False) -> str | None:
        """Why to stop before the next step, the same on every process: "signal" if any was signalled, else
        "time" if any would overrun the budget (their clocks differ a little), else None. A process that stopped
        alone would leave the others waiting in the next gradient sync."""
        code = 2 if self.raised else (1 if out_of_time else 0)
        if world > 1:
            t = torch.tensor([float(code)], device=dev)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            code = int(t.item())
        return {0: None, 1: "time", 2: "signal"}[code]


def agree_steps(steps: int | None, body_steps: int | None, world: int,
                dev: torch.device) -> tuple[int | None, int | None]:
    """Rank 0's plan (steps, body steps) on every process: each times its own steps, and plans that differ by one
    step would end with one process waiting for the others forever."""
    if world <= 1:
        return steps, body_steps
    t = torch.tensor([-1 if steps is None else steps, -1 if body_steps is None else body_steps], device=dev)
    dist.broadcast(t, 0)
    a, b = (int(v) for v in t.tolist())
    return (None if a < 0 else a), (None if b < 0 else b)
