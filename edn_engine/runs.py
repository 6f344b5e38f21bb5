"""A run folder on disk: its checkpoints and its run.json. Training writes them, generation and evaluation read
them; both sit above this module, so neither has to import the other.

A checkpoint is one `torch.save` file per save, written atomically and read back with `weights_only=True`. It
holds everything a run needs to continue exactly where it stopped: the networks, the optimizers (Adam moments and
step counts), the step (which also fixes the learning-rate schedule and the data order), both configs and the
RNG states. Only tensors and plain Python values go in, so the safe loader reads them and a pickle carrying code
is refused. Each file also carries a SHA-256 of its contents, checked on load: torch's reader does not notice
damaged tensor bytes, so without it a bit flipped on disk would resume silently with wrong weights. The last
`keep` checkpoints stay on disk: if the newest is truncated, damaged or foreign, the warning names it and the one
before is used.

run.json describes the run for people and for the other verbs (dataset, size, framing, profile, configs).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import pickle
import random
import re
import shutil
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .atomic import atomic_path, ensure_dir, read_json, write_bytes, write_json
from .errors import EdnError
from .events import Reporter
from .layout import RUN_HAND_BANK, RUN_PLATE, RUN_PLATE_MASK

FORMAT_NAME = "edn-checkpoint"
FORMAT_VERSION = 2  # 2: with the "sha256" checksum (version 1 files, written before it, are read unchecked)
RUN_INFO = "run.json"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


# -- checkpoints -----------------------------------------------------------------------------------------------
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

    The checkpoints folder is made here, on the first save, so a run that fails before one leaves none behind.
    A failed write (full disk, read-only folder) raises EdnError and leaves the previous checkpoints untouched.
    """
    target = checkpoint_dir(run_dir) / f"step_{step:08d}.pt"
    state = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "step": step, **state}
    state["sha256"] = state_digest(state)
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
    """Load one checkpoint safely; EdnError when it is truncated, damaged, foreign or carries code."""
    path = Path(path)
    state, problem, cause = _read(path)
    if problem is not None:
        raise EdnError(f"checkpoint {problem}", path=path) from cause
    return state


def load_latest(run_dir: str | Path, reporter: Reporter | None = None) -> tuple[dict, Path] | None:
    """The newest good checkpoint of a run (None when there is none yet).

    Bad ones are skipped, each with a warning naming it and the checkpoint used instead; if every checkpoint is
    bad that is an error, not a fresh start, so hours of training are never silently thrown away.
    """
    found = list_checkpoints(run_dir)
    skipped: list[tuple[Path, str]] = []
    for path in reversed(found):
        state, problem, _ = _read(path)
        if problem is not None:
            skipped.append((path, problem))
            continue
        if reporter is not None:
            for bad, why in skipped:
                reporter.log(f"warning: checkpoint {bad} {why}; using {path.name} (step {state['step']}) instead.")
        return state, path
    if found:
        raise EdnError("no usable checkpoint: " + "; ".join(f"{p.name} {why}" for p, why in skipped),
                       path=checkpoint_dir(run_dir))
    return None


def _read(path: Path) -> tuple[dict | None, str | None, BaseException | None]:
    """(state, None, None), or (None, what is wrong with the file as a phrase, the exception behind it)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # the safe loader met a reference to code, not damaged bytes
            return None, "was refused: it is not plain data (loading it would run code)", exc
        return None, "is truncated or damaged: torch cannot read it", exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, AttributeError) as exc:
        return None, "is truncated or damaged: torch cannot read it", exc
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})", exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        return None, "is not an EDN checkpoint", None
    version = state.get("version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        return None, f"has format {version}, newer than this EDN reads (update EDN)", None
    stored = state.pop("sha256", None)
    if version >= 2 and stored is None:
        return None, "is damaged: it lacks its checksum", None
    if stored is not None:
        try:
            actual = state_digest(state)
        except TypeError as exc:
            return None, "is damaged: it holds values a checkpoint never holds", exc
        if actual != stored:
            return None, "is damaged: its contents do not match the SHA-256 checksum saved with it", None
    return state, None, None


def state_digest(state: dict) -> str:
    """SHA-256 over every tensor's dtype, shape and bytes and every plain value, keys in sorted order."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(value.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value).encode()
        h.update(f"{type(value).__name__}{len(text)}:".encode() + text)
    else:
        raise TypeError(f"a checkpoint holds only tensors and plain values, not {type(value).__name__}")


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
        # One state per GPU the saving process saw; a resume may see fewer (K GPUs -> 1): restore those it has.
        for i, gpu_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(gpu_state, i)
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


# -- the run folder and run.json ---------------------------------------------------------------------------------
# What a training session writes into its run folder besides checkpoints (see `training.logs`).
RUN_FILES = (RUN_INFO, RUN_PLATE, RUN_PLATE_MASK, RUN_HAND_BANK, "losses.csv", "loss_curve.png")


@contextlib.contextmanager
def run_folder(run_dir: str | Path) -> Iterator[Path]:
    """Check, before any long work, that the run folder is a folder and can be written (creating it). If the
    block fails before any checkpoint exists, remove what it wrote (run.json, the plate, the logs and previews:
    a run that never saved has nothing to resume) and what it left empty: the checkpoints folder, and the run
    folder when this made it. Files that were there before are kept."""
    run_dir = Path(run_dir)
    existed = run_dir.exists()
    ensure_dir(run_dir, "run folder")
    before = {p.name for p in run_dir.iterdir()}
    try:
        yield run_dir
    except BaseException:
        if not list_checkpoints(run_dir):
            for name in (*RUN_FILES, "previews"):
                path = run_dir / name
                if name not in before and path.exists():
                    with contextlib.suppress(OSError):
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
        for folder in (checkpoint_dir(run_dir), *(() if existed else (run_dir,))):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        raise


def write_run_info(run_dir: str | Path, info: dict) -> None:
    write_json(Path(run_dir) / RUN_INFO, {"format": "edn-run", **info})


def keep_plate(run_dir: str | Path, dataset_dir: str | Path) -> None:
    """Copy the dataset's background plate into the run, so the run generates even after its dataset is gone."""
    for name in (RUN_PLATE, RUN_PLATE_MASK):
        src = Path(dataset_dir) / name
        if src.is_file():
            write_bytes(Path(run_dir) / name, src.read_bytes())


def read_run_info(run_dir: str | Path) -> dict:
    """run.json of a run folder; EdnError naming the file when it is missing or unreadable (`edn generate`, which
    needs only the checkpoint, warns instead: `inference.load_run`)."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        raise EdnError("not a training run (no run.json; train one with `edn train`)", path=run_dir)
    return read_json(path, "run.json", "edn-run", hint="`edn train DATASET -o RUN --resume` writes it again")
