"""Resumable pipeline stages: each records what it was made from, and is redone only when that changed.

`edn transfer` and `edn demo` are chains of long stages (pose, dataset, train, generate). Re-running a command
with the same output folder must reuse every finished stage. A stage's stamp (`OUT/.stages/NAME.json`) holds
the fingerprint of its inputs: option values as they are, and for files and folders their paths, sizes and
modification times. A stage is reused when its stamp matches and its outputs exist; the stamp is written only
after the stage finished, so an interrupted stage is redone (`resumable` tells its work whether the
interrupted attempt had the same inputs, so training can continue from its checkpoint). A redone stage rewrites
its outputs, which changes the fingerprint seen by the stages after it, so they are redone too.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from .atomic import write_json
from .events import Reporter


def fingerprint(value: Any) -> Any:
    """A JSON-able description of an input that changes when the input does."""
    if isinstance(value, Path):
        p = value.absolute()
        if p.is_file():
            st = p.stat()
            return {"file": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if p.is_dir():
            h = hashlib.sha256()
            count = 0
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                st = f.stat()
                h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
                count += 1
            return {"dir": str(p), "files": count, "digest": h.hexdigest()}
        return {"missing": str(p)}
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class Stages:
    """Runs named stages in `out_dir`, skipping those whose inputs are unchanged since they last finished."""

    def __init__(self, out_dir: str | Path, reporter: Reporter | None = None):
        self.dir = Path(out_dir) / ".stages"
        self.reporter = reporter or Reporter(False)
        self.status: dict[str, str] = {}  # stage -> "ran" | "reused"
        self.seconds: dict[str, float] = {}  # stage -> wall-clock seconds it took in this run
        # While a stage's work runs: True when an interrupted attempt with the same inputs came before it, so
        # the work may continue what that attempt left (training resumes from its last checkpoint).
        self.resumable = False

    def run(self, name: str, inputs: dict[str, Any], outputs: list[Path], work: Callable[[], Any]) -> bool:
        """Call `work()` unless the stage finished before from the same inputs and its outputs exist.

        Returns True when the work ran. `inputs` may hold paths (fingerprinted by size and mtime) and options.
        """
        stamp_path = self.dir / f"{name}.json"
        want = fingerprint(inputs)
        if stamp_path.is_file() and all(Path(o).exists() for o in outputs):
            try:
                have = json.loads(stamp_path.read_text(encoding="utf-8")).get("inputs")
            except (OSError, json.JSONDecodeError):
                have = None
            if have == want:
                self.status[name] = "reused"
                self.reporter.log(f"{name}: reused (inputs unchanged)")
                return False
        if stamp_path.exists():
            stamp_path.unlink()  # from here on the old outputs are not to be trusted
        attempt = self.dir / f"{name}.attempt.json"
        try:
            self.resumable = json.loads(attempt.read_text(encoding="utf-8")).get("inputs") == want
        except (OSError, json.JSONDecodeError):
            self.resumable = False
        write_json(attempt, {"stage": name, "inputs": want})
        self.reporter.log(f"{name}: " + ("continuing an interrupted run" if self.resumable else "running"))
        t0 = time.monotonic()
        work()
        self.seconds[name] = round(time.monotonic() - t0, 1)
        write_json(stamp_path, {"stage": name, "inputs": want, "outputs": [str(o) for o in outputs]})
        attempt.unlink(missing_ok=True)
        self.status[name] = "ran"
        return True
