"""Argument types shared by the benchmark scripts.

argparse calls them while it parses, so a bad value (``--seeds a``, ``--lams ''``, an unknown
model name) is a usage error naming the option, before any data is loaded or file written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any


def comma_list(
    cast: Callable[[str], Any] = str,
    choices: Sequence[str] | None = None,
    minimum: float | None = None,
) -> Callable[[str], list]:
    """A type for a comma-separated option (``--seeds 0,1``): the list of ``cast`` values,
    each one of ``choices`` / ``>= minimum`` where given, none repeated (a repeated seed or
    model would be fitted twice and counted twice in the means)."""
    kind = {int: "integers", float: "numbers"}.get(cast, "names")

    def parse(text: str) -> list:
        items = [s.strip() for s in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind} without empty items, got {text!r}"
            )
        try:
            values = [cast(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind}, got {text!r}"
            ) from None
        if choices is not None and (bad := [v for v in values if v not in choices]):
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(map(repr, bad))}; choose from {', '.join(choices)}"
            )
        if minimum is not None and (bad := [v for v in values if not v >= minimum]):
            raise argparse.ArgumentTypeError(
                f"every value must be >= {minimum:g}, got {', '.join(map(str, bad))}"
            )
        if cast is float and not all(map(math.isfinite, values)):
            raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
        if len(set(values)) < len(values):
            raise argparse.ArgumentTypeError(f"a value is repeated in {text!r}")
        return values

    return parse


def int_at_least(low: int) -> Callable[[str], int]:
    """A type for an integer option that must be ``>= low`` (``--steps 0`` is refused)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def training_clips(
    parser: argparse.ArgumentParser, option: str, counts: Sequence[int], clips, test_clip: str
) -> list[str]:
    """The clips other than ``test_clip``; a count of training clips above their number is a
    usage error of ``option`` (``order[:n]`` would train on fewer clips than the label)."""
    others = [c for c in clips if c != test_clip]
    if max(counts) > len(others):
        parser.error(
            f"argument {option}: at most {len(others)} (the clips other than {test_clip}),"
            f" got {max(counts)}"
        )
    return others
