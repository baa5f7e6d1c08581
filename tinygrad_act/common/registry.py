"""One registry pattern for activations, initializers, datasets and optimizers.

Entries are looked up by name (or alias) with keyword parameters, given in code or in a spec string
``"name:param=value,param=value"`` as on the command line. Unknown names and parameters are errors that
name the bad value and list the valid choices.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from .errors import UsageError


@dataclass
class Entry:
    """A registered object with its parameters' defaults, aliases and a one-line description."""

    name: str
    obj: object
    defaults: dict = field(default_factory=dict)
    aliases: tuple = ()
    description: str = ""


def parse_value(text: str):
    """``"3"`` -> 3, ``"0.2"`` -> 0.2, ``"true"`` -> True, anything else stays a string."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:  # not this kind of number: try the next, else keep the text
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"leaky_relu:alpha=0.2"`` -> ``("leaky_relu", {"alpha": 0.2})``."""
    if not isinstance(spec, str):
        raise TypeError(f"expected a name such as 'relu' or 'leaky_relu:alpha=0.2', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"bad parameter {item!r} in {spec!r}; write name:param=value[,param=value]")
        if key.strip() in params:  # which one was meant is a guess: refuse rather than pick one
            raise UsageError(f"parameter {key.strip()!r} is given twice in {spec!r}; give it once")
        params[key.strip()] = parse_value(value)
    return name.strip(), params


def keyword_defaults(fn, skip: int = 1) -> dict:
    """The parameters of ``fn`` after the first ``skip`` positional ones that have defaults."""
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):  # builtins such as numpy ufuncs take none
        return {}
    parameters = list(inspect.signature(fn).parameters.values())[skip:]
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


class Registry:
    """Named entries of one kind (e.g. ``Registry("activation")``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, obj, *, defaults=None, aliases=(), description="", replace=False) -> Entry:
        """Add ``obj`` under ``name`` (and ``aliases``); refuses to overwrite unless ``replace``."""
        taken = [n for n in (name, *aliases) if n in self._entries or n in self._aliases]
        if taken and not replace:
            raise ValueError(f"{self.kind} {taken[0]!r} is already registered (pass replace=True to redefine it)")
        entry = Entry(name, obj, dict(defaults or {}), tuple(aliases), description)
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry and its aliases (for user code and tests that register temporary entries)."""
        entry = self._entries.pop(self.canonical(name))
        for alias in entry.aliases:
            self._aliases.pop(alias, None)

    def names(self) -> list[str]:
        """Registered names (aliases excluded), sorted."""
        return sorted(self._entries)

    def describe(self, defaults: dict | None = None, column: int = 40) -> list[str]:
        """One line per entry for ``list -v``: ``name:param=default,...``, the description from column ``column``
        (on the next line, indented to it, when the spec is longer), and the aliases.

        ``defaults`` ({name: {param: value}}) shows other defaults than the registered ones (the experiment's
        lr and momentum for the optimizers); docstring markup (````code````) is dropped."""
        lines = []
        for name in self.names():
            entry = self._entries[name]
            values = {**entry.defaults, **(defaults or {}).get(name, {})}
            spec = name + (":" + ",".join(f"{k}={v}" for k, v in values.items()) if values else "")
            aliases = f"  (also: {', '.join(entry.aliases)})" if entry.aliases else ""
            text = entry.description.replace("``", "") + aliases
            if len(spec) <= column - 2:  # at least two spaces before the description
                lines.append(f"{spec:<{column}}{text}".rstrip())
            else:
                lines += [spec, f"{'':<{column}}{text}".rstrip()]
        return lines

    def __contains__(self, name) -> bool:
        return name in self._entries or name in self._aliases

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; UsageError listing the choices."""
        name = self._aliases.get(name, name)
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return name

    def entry(self, name: str) -> Entry:
        """The Entry registered under ``name`` (or an alias)."""
        return self._entries[self.canonical(name)]

    def resolve(self, spec: str, **params) -> tuple[Entry, dict]:
        """Look up ``spec`` (``"name"`` or ``"name:k=v,..."``); return the entry and its bound parameters."""
        name, inline = parse_spec(spec)
        entry = self.entry(name)
        params = {**inline, **params}
        unknown = sorted(set(params) - set(entry.defaults))
        if unknown:
            valid = ", ".join(entry.defaults) or "none"
            raise UsageError(f"{self.kind} {entry.name!r} has no parameter {unknown[0]!r}; its parameters: {valid}")
        return entry, {**entry.defaults, **params}
