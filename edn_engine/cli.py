"""The `edn` command line: one verb per stage, each defined in `edn_engine/commands/<verb>.py`.

Every command module exposes `register(subparsers)`, which adds its parser and sets `func(args, reporter)`.
Errors become one line naming the file and frame (or an `error` event with `--json`) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from .errors import EdnError
from .events import Reporter

# Verb modules, in the order `edn --help` lists them. A module that is missing (work in progress) is skipped.
COMMAND_MODULES = ("pose", "render", "dataset", "train", "generate", "eval", "transfer", "demo", "info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edn", description="Everybody Dance Now: pose-guided motion transfer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON event per line (for the Blender add-on)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    reporter = Reporter(json_mode=getattr(args, "json", False))
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
        if os.environ.get("EDN_DEBUG"):
            traceback.print_exc()
        else:
            traceback.print_exc(file=sys.stderr)
        reporter.error(f"internal error: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
