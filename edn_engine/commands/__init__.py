"""The verbs of `edn`, one module each: `register(subparsers)` adds the verb's parser and sets
`func(args, reporter)`. `edn_engine.cli` imports these modules; they never import it back."""

from __future__ import annotations

import argparse


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON event per line (for the Blender add-on)")


def add_hands_flag(parser: argparse.ArgumentParser) -> None:
    from ..layout import HANDS

    parser.add_argument("--hands", choices=HANDS, default=HANDS[0],
                        help="with a hand refiner: training (the person's own training hands laid over the refined "
                             "ones; default), refined (the refiner's alone) or body (the body generator's: fastest)")
