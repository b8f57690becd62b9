"""Subcommands of `unmask`: each module defines `register(subparsers)` (see unmask.cli).

Also the argparse types of every command's numeric flags, so that a value which means nothing
stops at the door as one argparse line (exit code 2) naming the flag and the range:

    unmask finetune ner: error: argument --batch-size: 0 is out of range: give an integer >= 1

Integers are capped at 2**63 - 1 (what torch and numpy index with) unless a flag says less, so a
40-digit value is refused here, not by an OverflowError deep inside; reals must be finite. This
module imports only the standard library: it runs whenever the parser is built.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

INT_MAX = 2**63 - 1


def _shown(text: str) -> str:
    """`text` as a message quotes it: repr, cut to 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool,
           integers: bool) -> str:
    """The allowed range in words: 'an integer >= 1', 'a number in (0, 1)', ..."""
    what = "an integer" if integers else "a number"
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{what} {'<' if high_open else '<='} {high:g}"
    return what if integers else "a finite number"


def _number(integers: bool, low: float | None, high: float | None, low_open: bool = False,
            high_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: an int (integers) or a finite float between low and high."""
    allowed = _range(low, high, low_open, high_open, integers)

    def parse(text: str):
        try:
            value = int(text) if integers else float(text)
        except ValueError:  # also what int() says past 4300 digits
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is not {'an integer' if integers else 'a number'}") from None
        if integers and value > INT_MAX:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is too large: give {allowed}, "
                                             "at most 2**63 - 1")
        if not integers and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not a finite number: give "
                                             f"{allowed}")
        if ((low is not None and (value <= low if low_open else value < low))
                or (high is not None and (value >= high if high_open else value > high))):
            raise argparse.ArgumentTypeError(f"{_shown(text)} is out of range: give {allowed}")
        return value

    parse.__name__ = "int" if integers else "float"  # argparse names the type in its messages
    return parse


def integer(low: int | None = None, high: int = INT_MAX) -> Callable[[str], int]:
    """An argparse type: an int in [low, high] (low None: no lower bound)."""
    return _number(True, low, None if high == INT_MAX else high)


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float between low and high (open ends with *_open)."""
    return _number(False, low, high, low_open, high_open)


positive_int = integer(1)
non_negative_int = integer(0)
finite_float = real()


def fraction_or_count(text: str) -> float | int:
    """An argparse type: a fraction in [0, 1) (a float) or a whole count >= 1 (an int), as
    unmask prepare's --validation: `0.02` is 2% of the documents, `500` is 500 of them."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if 0 <= value < 1:
        return value
    if not (1 <= value <= INT_MAX and value.is_integer()):
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is neither a fraction in [0, 1) nor a whole count >= 1")
    return int(value)


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """--revision and --allow-pickle: which copy of a --model hub id to use, and whether a
    checkpoint with only pytorch_model.bin may be read (as tensors only, never code)."""
    p.add_argument("--revision", help="branch, tag or commit of a hub id (default: main)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="permit a checkpoint with only pytorch_model.bin (read as tensors only)")


__all__ = ["INT_MAX", "add_source_arguments", "finite_float", "fraction_or_count", "integer",
           "non_negative_int", "positive_int", "real"]
