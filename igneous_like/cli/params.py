"""Option types that check while parsing, before a command does anything: numbers that refuse NaN
and infinity (NaN passes every comparison silently, so a NaN threshold selects nothing with no
error; infinity is no real size or threshold), and places to write. A light module, for areas
that import little."""
import math
import numbers
from typing import Optional

import click

from igneous_like.writable import check_writable


def finite(text) -> Optional[float]:
    """The number `text` spells if it is finite, else None."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Finite(click.FloatRange):
    """A finite real number, optionally within a range."""

    name = "NUMBER"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if finite(number) is None:
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def numberify(value):
    """An int where `value` is one or spells one (exact, for 64-bit labels), else a float (numpy's
    numbers too); None stays None. Igneous's CLI has this function by this name; ValueError for text
    that is no number."""
    if value is None or isinstance(value, numbers.Integral):
        return value if value is None else int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return int(value)
    except ValueError:
        return float(value)


class Number(click.ParamType):
    """An integer (kept exact, for 64-bit labels) or a finite real number, e.g. 128 or 0.5."""

    name = "NUMBER"

    def convert(self, value, param, ctx):
        try:
            number = numberify(value)
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)
        if finite(number) is None:
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class FiniteList(click.ParamType):
    """Comma-separated finite real numbers, e.g. 1e6,1e8."""

    name = "NUMBER,NUMBER,..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        numbers = [finite(part) for part in str(value).split(",") if part.strip()]
        if None in numbers:
            self.fail(f"{value!r} is not comma-separated finite numbers", param, ctx)
        return numbers


class Writable(click.ParamType):
    """A path or URL to write, checked while parsing where it is local: a file in the way (of a
    layer's folder) or a folder without write permission stops the command before it writes
    anything; a `file` output replaces the file at its path."""

    name = "PATH"

    def __init__(self, file: bool = False):
        self.file = file

    def convert(self, value, param, ctx):
        check_writable(value, self.file)
        return value


class IntList(click.ParamType):
    """Comma-separated integers of any count from 0 to 2^64-1, e.g. label ids 12,345,6789."""

    name = "INT,INT,..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a list of comma-separated integers", param, ctx)
        if not all(0 <= number < 2**64 for number in numbers):
            self.fail(f"{value!r} holds numbers outside 0 to 2^64-1 (64-bit labels)", param, ctx)
        return numbers


FLOAT = Finite()
TREES = click.IntRange(1, 10_000)  # every tree of a forest stays in memory: 10^9 of them fill any machine
SEED = click.IntRange(0, 2**32 - 1)  # what numpy and scikit-learn take
NUMBER = Number()
FLOATS = FiniteList()
OUTPUT = Writable()
OUTPUT_FILE = Writable(file=True)
INT_LIST = IntList()
