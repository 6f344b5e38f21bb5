"""The `edn` command line: one verb per stage, each defined in `edn_engine/commands/<verb>.py`.

Every command module exposes `register(subparsers)`, which adds its parser and sets `func(args, reporter)`.
Errors become one line naming the file and frame (or an `error` event with `--json`) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
import traceback

from . import threads
from .child import PARENT_PID
from .errors import EdnError
from .events import Reporter

# Verb modules, in the order `edn --help` lists them.
COMMAND_MODULES = ("pose", "plate", "render", "dataset", "train", "generate", "eval", "transfer", "demo", "info")


class ArgumentProblem(Exception):
    """An argument error, raised instead of argparse's exit so `main` reports it like every other error."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser, self.message = parser, message


class Parser(argparse.ArgumentParser):
    """argparse (its sub-parsers are of this class too), with errors raised to `main`: an argument error in a
    `--json` run must still end with an `error` event on stdout, the only stream the add-on reads."""

    def error(self, message: str):
        raise ArgumentProblem(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="edn", description="Everybody Dance Now: pose-guided motion transfer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    threads.apply_policy(command=_threading_command(argv))  # before torch and numpy load: each reads it once
    try:
        args = build_parser().parse_args(argv)
    except ArgumentProblem as exc:
        exc.parser.print_usage(sys.stderr)
        Reporter(json_mode="--json" in argv).error(f"{exc.parser.prog}: {exc.message}")
        return 2
    reporter = Reporter(json_mode=getattr(args, "json", False))
    previous = _stop_on_sigterm()
    if previous is not None:  # on the main thread, whose SIGTERM handler stops the verb cleanly
        _stop_with_parent()
    try:
        args.func(args, reporter)
        return 0
    except EdnError as exc:
        reporter.error(exc.message)
        return 2
    except KeyboardInterrupt:
        reporter.error("interrupted")
        return 130
    except Exception as exc:  # an engine bug: keep the traceback, but still speak the event protocol
        traceback.print_exc(file=sys.stderr)
        reporter.error(f"internal error: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _threading_command(argv: list[str]) -> str | None:
    """The command whose threading policy this call gets (`threads.SPIN_COUNTS`), read from the words as given:
    parsing imports the verbs' modules, and numpy's OpenBLAS reads the thread count when it loads. `edn transfer
    --run RUN`, the add-on's Transfer, trains nothing: it generates (an abbreviated `--ru` gets training's)."""
    if argv[:1] == ["transfer"] and any(a == "--run" or a.startswith("--run=") for a in argv[1:]):
        return "generate"
    return argv[0] if argv else None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm():
    """SIGTERM (the add-on's cancel) stops a verb as Ctrl-C does, instead of ending the process mid-write: staged
    outputs are removed, or kept for --resume, and generation's writer processes are stopped (killed outright, they
    left multiprocessing's resource tracker complaining of leaked semaphores). Training installs its own handler
    while it runs: it finishes the step and saves. Returns the handler to restore (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def _stop_with_parent() -> None:
    """A verb that another engine process runs (`child.run_module`) stops as on Ctrl-C soon after that process
    ends, even killed outright and while this one is silent: its own events would tell it only at the next one,
    and until it ends, it and its writers hold the pipe that the add-on waits on. It sends itself SIGTERM, the
    add-on's cancel, rather than `_thread.interrupt_main()`: that does nothing where SIGINT is ignored, as it is in
    every process started in the background by a shell without job control (and in their children)."""
    parent = os.environ.pop(PARENT_PID, "")
    if not parent.isdigit() or os.name != "posix":  # an orphan is handed to another parent on POSIX only
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="edn-parent-watch").start()


if __name__ == "__main__":
    sys.exit(main())
