"""Every check of a value a user gives, in one place: each raises UsageError naming the value and the valid choices.

The command line, ``Config.validate``, the registries' spec parser, the datasets and the initializers all check
their inputs here, so one kind of value gets one rule and one message, and the command line can tell bad input
(UsageError: one line, exit code 2) from a bug (any other exception: a traceback).

The one schema: a ``Setting`` declares one setting once (name, type, default, range or choices, help, its
command-line option and make variable). Every entrance reads it: the command line's options are made from it and
parse text with ``Setting.parse``; ``run()``'s signature and docstring (``signature``, ``docstring``); Python
keywords, TOML, JSON read back and checkpoints pass ``Setting.check``, which takes exactly the declared type
(``residual="false"`` is an error, not True). ``spell`` names a setting the way the current entrance writes it
(``force=True``, ``--force``, ``FORCE=1``), so a message tells each user what to type.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import inspect
import math
import numbers
import os
import types
import typing

import numpy as np

from .errors import UsageError
from .registry import parse_spec

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


def closest(name: str, known, cutoff: float = 0.7) -> str | None:
    """The name of ``known`` spelled most like ``name`` (``gradient_flw`` -> ``gradient_flow``), or None: the
    did-you-mean of a refusal."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


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


# ---- the schema: one declaration per setting, read by every entrance ------------------------------------------------
_KINDS = {bool: "boolean", int: "integer", float: "number", str: "text", dict: "object", list: "list"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its type (bool, int, float or str), default, range or choices, help, option and make variable."""

    name: str
    kind: type
    default: object
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    spec: bool = False  # a name:param=value spec (lstm:forget_bias=1): choices hold the name, its owner the params
    optional: bool = False  # None is a value of its own (automatic; in a file read back: not measured)
    option: str = ""  # the command line's --option (default: --name-with-dashes)
    make: str = ""  # the make variable (default: NAME)
    finite: bool = True  # False: a measured number, which may be nan or inf
    items: type | None = None  # a list's items are of this type
    switch: bool = False  # a list of names that may also be True (all) or False (none): figures

    def __post_init__(self):
        object.__setattr__(self, "option", self.option or "--" + self.name.replace("_", "-"))
        object.__setattr__(self, "make", self.make or self.name.upper())

    @property
    def annotation(self):
        """The type ``run()``'s signature shows (``bool | None`` for an optional switch, ``bool | list[str]``)."""
        if self.switch:
            return bool | list[self.items]
        return self.kind | None if self.optional else self.kind

    def check(self, value, where: str = ""):
        """``value`` as Python, JSON or TOML give it, of exactly the declared type (numpy scalars and ints for
        floats are taken as the plain Python value); UsageError naming the setting (and ``where``) otherwise."""
        try:
            if value is None and self.optional:
                return None
            if self.switch:
                return self._switch(value)
            if self.kind is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise UsageError(f"{self.name} must be True or False, got {value!r}")
                return bool(value)
            if self.kind is int:
                return integer(self.name, value, self.low, self.high)
            if self.kind is float and not self.finite:
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                    raise UsageError(f"{self.name} must be a number, got {value!r}")
                return float(value)
            if self.kind is float:
                return number(self.name, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open)
            if self.kind in (dict, list):
                if not isinstance(value, self.kind):
                    raise UsageError(f"{self.name} must be {'an object' if self.kind is dict else 'a list'}, got "
                                     f"{value!r}")  # fmt: skip
                if self.items is not None and not all(isinstance(item, self.items) for item in value):
                    raise UsageError(f"{self.name} must be a list of {_KINDS[self.items]}s, got {value!r}")
                return value
            if not isinstance(value, str):
                raise UsageError(f"{self.name} must be a text such as {self.default!r}, got {value!r}")
            if self.choices and self.spec:
                try:
                    name = parse_spec(value)[0]
                except UsageError as error:
                    raise UsageError(f"{self.name} {value!r}: {error}") from None
                choice(self.name, name, self.choices)
            elif self.choices:
                choice(self.name, value, self.choices)
            return value
        except UsageError as error:
            raise UsageError(f"{where}: {error}" if where else str(error)) from None

    def _switch(self, value):
        """True, False, or a non-empty list of names (repeats dropped): the value of a ``switch`` setting."""
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise UsageError(f"{self.name} must be True, False or a list of names, got {value!r}")
        if not value:
            raise UsageError(f"{self.name} [] names none; for none write {spell(self.name, False)}")
        return list(dict.fromkeys(value))

    def parse(self, text: str):
        """``text`` as typed on a command line or in a make variable: 1/0, true/false, yes/no for a switch, and
        for a list of names also the names separated by commas (``gradient_flow,saturation``)."""
        if self.switch:
            word = str(text).strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            return self.check([name.strip() for name in str(text).split(",") if name.strip()])
        if self.kind is bool:
            return boolean(self.name, text)
        if self.kind is int:
            return integer(self.name, text, self.low, self.high, text=True)
        if self.kind is float:
            return number(self.name, text, self.low, self.high, low_open=self.low_open, high_open=self.high_open,
                          text=True)  # fmt: skip
        return self.check(text)

    def describe(self) -> str:
        """``depth : int, default 20`` and the help: one parameter of a docstring."""
        kind = self.kind.__name__ + (" or None" if self.optional else "")
        if self.switch:
            kind = f"bool or list of {self.items.__name__}"
        return f"{self.name} : {kind}, default {self.default!r}\n    {self.help}"


def setting(default, help: str, **limits):
    """A dataclass field declaring a setting: ``depth: int = setting(20, "hidden layers", low=1)``."""
    return dataclasses.field(default=default, metadata={"setting": {"help": help, **limits}})


def settings_of(cls) -> tuple[Setting, ...]:
    """The Settings a dataclass declares with ``setting``, in field order; each field's type is its annotation."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        kind, limits = hints[field.name], dict(field.metadata["setting"])
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kinds = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            if kinds[0] is bool and len(kinds) == 2 and typing.get_origin(kinds[1]) is list:  # bool | list[str]
                (items,) = typing.get_args(kinds[1])
                kind, limits = list, {**limits, "items": items, "switch": True}
            else:
                (kind,) = kinds
                limits["optional"] = True
        found.append(Setting(field.name, kind, field.default, **limits))
    return tuple(found)


def check_all(settings, values: dict, where: str = "") -> dict:
    """Every value of ``values`` through its Setting (``Setting.check``); UsageError for a name that is none."""
    by_name = {s.name: s for s in settings}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise UsageError(f"{where + ': ' if where else ''}unknown setting {unknown[0]!r}; the settings: "
                         f"{', '.join(by_name)}")  # fmt: skip
    return {name: by_name[name].check(value, where) for name, value in values.items()}


def signature(settings, returns=inspect.Signature.empty, annotations: dict | None = None) -> inspect.Signature:
    """A keyword-only signature with one parameter per setting, its default and its type (``annotations`` override)."""
    annotations = annotations or {}
    parameters = [
        inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default,
                          annotation=annotations.get(s.name, s.annotation))
        for s in settings
    ]  # fmt: skip
    return inspect.Signature(parameters, return_annotation=returns)


def docstring(summary: str, settings, notes: str = "") -> str:
    """``summary``, then a Parameters section listing every setting (``Setting.describe``), then ``notes``."""
    parameters = "\n".join(s.describe() for s in settings)
    return f"{summary}\n\nParameters\n----------\n{parameters}\n" + (f"\n{notes}\n" if notes else "")


# Which entrance a message speaks to: "python" (run(), the default), "cli" (--force) or "make" (FORCE=1).
_ENTRANCE = contextvars.ContextVar("entrance", default="python")
_DECLARED: dict[str, Setting] = {}


def declare(*settings: Setting) -> None:
    """Make ``spell`` know these settings' options and make variables."""
    _DECLARED.update((s.name, s) for s in settings)


@contextlib.contextmanager
def entrance(name: str):
    """Within the block, ``spell`` writes settings as the entrance ``name`` does: python, cli or make."""
    token = _ENTRANCE.set(choice("entrance", name, ("python", "cli", "make")))
    try:
        yield
    finally:
        _ENTRANCE.reset(token)


def spell(name: str, value=None) -> str:
    """A setting as the current entrance writes it: ``force=True`` / ``--force`` / ``FORCE=1`` (or without a value,
    ``out`` / ``--out`` / ``OUT``)."""
    setting, where = _DECLARED.get(name), _ENTRANCE.get()
    if setting is None or where == "python":
        return name if value is None else f"{name}={value!r}"
    if isinstance(value, list):  # a list of names is typed with commas: --figures gradient_flow,saturation
        value = ",".join(map(str, value))
    if where == "make":
        shown = {True: "1", False: "0"}.get(value, value) if isinstance(value, bool) else value
        return setting.make if value is None else f"{setting.make}={shown}"
    if value is None or value is True:
        return setting.option
    return setting.option.replace("--", "--no-", 1) if value is False else f"{setting.option} {value}"
