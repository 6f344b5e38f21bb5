"""The one parser of WIDTHxHEIGHT sizes, for every verb that takes one (--size)."""

from __future__ import annotations

import argparse
import re

from .errors import EdnError

MIN_SIDE, MAX_SIDE = 16, 8192  # 8192x8192 RGB is 200 MB: the most one frame may cost


def parse_size(text: str) -> tuple[int, int]:
    """'256x256' -> (256, 256); an EdnError naming the text when it is not a size in range."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise EdnError(f"size must look like WIDTHxHEIGHT (e.g. 256x256), not {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise EdnError(f"size {w}x{h} is out of range ({MIN_SIDE} to {MAX_SIDE} pixels a side)")
    return w, h


def size_arg(text: str) -> tuple[int, int]:
    """`parse_size` as an argparse type: a bad size is an argument error (exit 2, an error event with --json)."""
    try:
        return parse_size(text)
    except EdnError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
