"""Bad input to every `edn` verb (issue 9, item 6): each case runs the real command line and checks that

* it exits with code 2 (an input problem), never 1 (an engine bug) or 0;
* stderr ends with one line `edn: error: ...` naming what is wrong (the file, frame, field or argument), and holds
  no traceback;
* nothing is left behind: no new file or folder anywhere under the case's folder or the shared good data (hidden
  `.NAME.partial` staging folders and empty folders included), and every file of earlier good output is
  byte-identical afterwards (a snapshot of SHA-256s before and after);
* with `--json` (a subset, run as a subprocess), the last stdout line is `{"event": "error", "message": ...}`, and
  where the problem is knowable up front, no progress event came before it.

Each case builds its own bad input in a fresh folder (`d`) from shared good data made once per session: a pose
track and mattes of 12 real frames, a 64x64 dataset and a run of the tiny `cpu` profile trained for 2 steps. Every
path has a space and non-ASCII characters, so the good data also proves such paths work. Cases run in this
process through `edn_engine.cli.main` (the same code as the `edn` command, much faster than a fresh interpreter
each); the `--json` subset and a few others run `python -m edn_engine` as a subprocess.

The cases live in one test file per verb (test_bad_input_pose.py, _dataset.py (and render), _train.py and
_generate_eval.py (and transfer, info and the verbs themselves)); the good data in bad_input_workspace.py; the
bad inputs' makers in bad_input_data.py. This module runs a case and checks what it did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path
from typing import Callable

import bad_input_data as bad
import tiny_run
from bad_input_workspace import Workspace


# ---------------------------------------------------------------------------------------------------------------
# running the command line
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


def run_inprocess(argv: list) -> Result:
    from edn_engine import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), tiny_run.one_thread():
        try:
            rc = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # nothing in the engine should exit by itself; report it as it would show
            rc = exc.code if isinstance(exc.code, int) else 1
    return Result(rc, out.getvalue(), err.getvalue())


def run_subprocess(argv: list, cwd: Path | None = None) -> Result:
    p = tiny_run.edn(*argv, timeout=300, cwd=cwd)
    return Result(p.returncode, p.stdout, p.stderr)


def error_line(res: Result) -> str:
    """The one `edn: error: ...` line of a failed run's stderr (asserting there is exactly one, last, and no
    traceback); returns the message after the prefix."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("edn: error: ")]
    assert len(errors) == 1, f"expected one 'edn: error:' line on stderr, got:\n{res.stderr}"
    assert lines[-1] == errors[0], f"the error is not the last line of stderr:\n{res.stderr}"
    message = errors[0][len("edn: error: "):]
    assert message.strip() and "internal error" not in message, message
    return message


def json_error(res: Result) -> tuple[str, list[dict]]:
    """The message of the final `error` event of a --json run (every stdout line must be an event)."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert lines, f"no JSON events on stdout; stderr:\n{res.stderr}"
    events = [json.loads(ln) for ln in lines]
    assert all(isinstance(e, dict) and isinstance(e.get("event"), str) for e in events), res.stdout
    last = events[-1]
    assert last["event"] == "error" and isinstance(last.get("message"), str), last
    assert "internal error" not in last["message"], last["message"]
    return last["message"], events


def assert_names(message: str, needles) -> None:
    low = message.lower()
    for needle in needles:
        assert str(needle).lower() in low, f"the message does not name {str(needle)!r}: {message}"


# ---------------------------------------------------------------------------------------------------------------
# the cases: each builds its bad input in a fresh folder d and returns (argv, what the message must name)
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Workspace, Path], tuple[list, list]]
    upfront: bool = False  # knowable before any work: with --json, no progress event may come before the error


_ALL_IDS: set[str] = set()  # case ids are unique across every file of the battery


class Cases(list):
    """One test file's cases, in the order they were registered with `@CASES.case(id)`."""

    def case(self, id: str, upfront: bool = False):
        def register(make):
            assert id not in _ALL_IDS, f"duplicate case id {id}"
            _ALL_IDS.add(id)
            self.append(Case(id, make, upfront))
            return make
        return register

    def by_id(self, id: str) -> Case:
        return next(c for c in self if c.id == id)


def check_case(w: Workspace, c: Case, mode: str) -> None:
    """Run case `c` "in-process", as "json" (`python -m edn_engine ... --json`, argument errors included: each
    file's JSON_CASES) or as a plain "subprocess" (the real stderr, with whatever OpenCV, MediaPipe and torch print:
    each file's SUBPROCESS_CASES), and check what it did."""
    d = w.case_dir(f"{c.id} ({mode})")
    argv, needles = c.make(w, d)
    if mode == "json":
        argv = [*argv, "--json"]
    before = bad.snapshot(w.good, w.bad, d)
    res = run_inprocess(argv) if mode == "in-process" else run_subprocess(argv, cwd=d)
    after = bad.snapshot(w.good, w.bad, d)
    detail = (f"edn {' '.join(map(str, argv))}\nrc={res.rc}\nstdout:\n{res.stdout[-2000:]}\n"
              f"stderr:\n{res.stderr[-3000:]}")
    assert res.rc == 2, f"exit code {res.rc}, expected 2\n{detail}"
    if mode == "json":
        message, events = json_error(res)
        if c.upfront:
            assert not [e for e in events if e["event"] == "progress"], f"work started before the error\n{detail}"
    else:
        message = error_line(res)
    assert_names(message, needles)
    assert before == after, f"the failed command changed files:\n{bad.describe_changes(before, after)}\n{detail}"


# ---------------------------------------------------------------------------------------------------------------
# a command that must succeed (the cases with a more particular right answer)
# ---------------------------------------------------------------------------------------------------------------
def run_ok(argv: list, subprocess_: bool = False) -> Result:
    res = run_subprocess(argv) if subprocess_ else run_inprocess(argv)
    assert res.rc == 0, f"edn {' '.join(map(str, argv))}\nrc={res.rc}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr
    return res
