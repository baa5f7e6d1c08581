"""Every check of a value a user gives, in one place: each raises UsageError naming the value and the valid choices.

The command line, ``Config.validate``, the registries' spec parser, the datasets and the initializers all check
their inputs here, so one kind of value gets one rule and one message, and the command line can tell bad input
(UsageError: one line, exit code 2) from a bug (any other exception: a traceback).
"""

from __future__ import annotations

import math
import numbers
import os

from .errors import UsageError

MEMORY_ENV = "TINYGRAD_ACT_MEMORY_LIMIT"
MEMORY_FRACTION = 0.5  # of physical memory: a sweep runs a few runs side by side, and the machine has other work
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _interval(low, high, low_open=False, high_open=False) -> str:
    if high is None:
        return f"> {low}" if low_open else f">= {low}"
    if low is None:
        return f"< {high}" if high_open else f"<= {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def _inside(value, low, high, low_open, high_open) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def _kind(noun: str, low, high, low_open=False, high_open=False) -> str:
    """'a positive integer', 'a non-negative finite number', 'a finite number in [0, 1]' ..."""
    if low == 0 and high is None:
        return f"a {'positive' if low_open else 'non-negative'} {noun}"
    if low == 1 and high is None and noun == "integer":
        return "a positive integer"
    bounds = "" if low is None and high is None else " " + _interval(low, high, low_open, high_open)
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}{bounds}"


def integer(name: str, value, low=None, high=None, *, text=False) -> int:
    """``value`` as an int in [low, high]; with ``text=True`` also its decimal text (``"20"``, from a command line).

    Floats, and texts such as ``"1e20"`` or ``"2.0"``, are refused: a size or a count is written as an integer.
    """
    number = value
    if text and isinstance(value, str):
        try:
            number = int(value.strip(), 10)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, numbers.Integral) or not _inside(number, low, high, 0, 0):
        raise UsageError(f"{name} must be {_kind('integer', low, high)}, got {value!r}")
    return int(number)


def number(name: str, value, low=None, high=None, *, low_open=False, high_open=False, text=False) -> float:
    """``value`` as a finite float in the interval given by low and high; with ``text=True`` also its text."""
    result = value
    if text and isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            result = None
    if (
        isinstance(result, bool)
        or not isinstance(result, numbers.Real)
        or not math.isfinite(result)
        or not _inside(result, low, high, low_open, high_open)
    ):
        raise UsageError(f"{name} must be {_kind('finite number', low, high, low_open, high_open)}, got {value!r}")
    return float(result)


def boolean(name: str, value) -> bool:
    """A switch: True/False, or the text 1/0, true/false, yes/no in any case; anything else is refused."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UsageError(f"{name} must be one of 1, 0, true, false, yes, no (any case), got {value!r}")


def choice(name: str, value, choices) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise UsageError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return value


def _size(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1000000"`` -> bytes."""
    text = text.strip().lower().removesuffix("b")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    return round(number(MEMORY_ENV, text[: len(text) - len(unit)], 0, low_open=True, text=True) * _UNITS[unit])


def memory_limit() -> tuple[int, str]:
    """The most memory one run may plan to use, in bytes, and where that limit comes from."""
    if os.environ.get(MEMORY_ENV):
        return _size(os.environ[MEMORY_ENV]), f"${MEMORY_ENV}"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): 16 GiB, a common machine
        physical = 16 * 2**30
    return int(physical * MEMORY_FRACTION), f"half the physical memory; {MEMORY_ENV}=64G raises it"


def human_bytes(size) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(min(size, 10**300))  # a size computed from absurd settings may exceed any float
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} PiB"


def memory(what: str, estimate: int, parts: dict) -> None:
    """Refuse a plan whose estimated memory exceeds ``memory_limit()``, naming the estimate and its parts."""
    limit, source = memory_limit()
    if estimate > limit:
        detail = ", ".join(f"{key} {human_bytes(value)}" for key, value in parts.items() if value)
        raise UsageError(
            f"{what} needs about {human_bytes(estimate)} of memory ({detail}), more than the limit of "
            f"{human_bytes(limit)} ({source}); choose smaller sizes"
        )
