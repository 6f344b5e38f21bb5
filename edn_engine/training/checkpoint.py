"""Checkpoints: one `torch.save` file per save, written atomically, read back with `weights_only=True`.

A checkpoint holds everything a run needs to continue exactly where it stopped: the networks, the optimizers
(Adam moments and step counts), the step (which also fixes the learning-rate schedule and the data order),
both configs and the RNG states. Only tensors and plain Python values go in, so the safe loader reads them and a
pickle carrying code is refused. The last `keep` checkpoints stay on disk: if the newest is truncated or
foreign, it is reported and the one before is used.
"""

from __future__ import annotations

import errno
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import EdnError
from ..events import Reporter

FORMAT_NAME = "edn-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.match(p.name)), key=lambda p: p.name)


def save_checkpoint(run_dir: str | Path, state: dict, step: int, keep: int = 2) -> Path:
    """Write `state` as checkpoints/step_NNNNNNNN.pt atomically, then drop all but the newest `keep`.

    A failed write (full disk, read-only folder) raises EdnError and leaves the previous checkpoints untouched.
    """
    folder = checkpoint_dir(run_dir)
    target = folder / f"step_{step:08d}.pt"
    state = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "step": step, **state}
    try:
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
    except OSError as exc:
        why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise EdnError(f"could not write the checkpoint ({why}); the previous checkpoint is kept", path=target) from exc
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return target


def read_checkpoint(path: str | Path) -> dict:
    """Load one checkpoint safely; EdnError when it is truncated, foreign or carries code."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise EdnError(f"refused: not a plain-data checkpoint ({str(exc).splitlines()[0][:200]})", path=path) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError) as exc:
        raise EdnError(f"unreadable checkpoint, truncated or damaged ({str(exc).splitlines()[0][:200]})",
                       path=path) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise EdnError("not an EDN checkpoint", path=path)
    if state.get("version", 0) > FORMAT_VERSION:
        raise EdnError(f"checkpoint format {state.get('version')} is newer than this EDN reads", path=path)
    return state


def load_latest(run_dir: str | Path, reporter: Reporter | None = None) -> tuple[dict, Path] | None:
    """The newest readable checkpoint of a run (None when there is none yet).

    Unreadable ones are reported and skipped; if every checkpoint is bad that is an error, not a fresh start,
    so hours of training are never silently thrown away.
    """
    found = list_checkpoints(run_dir)
    problems = []
    for path in reversed(found):
        try:
            return read_checkpoint(path), path
        except EdnError as exc:
            problems.append(exc.message)
            if reporter is not None:
                reporter.log(f"warning: {exc.message}; trying the previous checkpoint")
    if found:
        raise EdnError("no usable checkpoint: " + "; ".join(problems), path=checkpoint_dir(run_dir))
    return None


# -- RNG states as plain tensors and ints (the safe loader refuses numpy objects) -------------------------
def rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]),
                   "gauss": py_state[2] if py_state[2] is None else float(py_state[2])},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
