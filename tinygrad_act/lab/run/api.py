"""Your script: ``tinygrad_act.run(depth=3, act="relu", data=(x, y))`` -> a ``Run`` to read, tabulate and draw.

    run = tinygrad_act.run(depth=10, width=32, act="tanh", steps=200, data="spirals", out="runs/tanh")
    run.summary["verdict"], run.records[-1]["loss"]
    pd.DataFrame(run.table())          # one row per (step, layer)
    fig = run.figures()[0]             # matplotlib Figures; the caller's backend is left alone
    Run.load("runs/tanh")              # the same object for a run directory already on disk

The keywords are the command line's experiment options (``--batch-size`` is ``batch_size``), plus ``force``
and ``progress``; the run is the one ``python -m tinygrad_act experiment`` makes, files and all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from ...nn import activations
from ...nn import init as initializers
from ..data import userdata
from ..measure.records import layer_name, read_metrics, read_summary
from ..settings import read_config
from ..show import run_figures
from . import experiment
from .config import RUN_OPTIONS, SETTINGS, Config


def options() -> list[str]:
    """Every keyword ``run`` takes: the settings (lab/run/config.py's schema), then ``force`` and ``progress``."""
    return [s.name for s in (*SETTINGS, *RUN_OPTIONS)]


def run(**settings) -> Run:
    unknown = sorted(set(settings) - set(options()))
    if unknown:
        raise UsageError(f"run() has no option {unknown[0]!r}; its options: {', '.join(options())}")
    extra = {o.name: o.check(settings.pop(o.name, o.default)) for o in RUN_OPTIONS}
    settings = {name: _given(name, value) for name, value in settings.items()}
    config = Config(**settings)
    summary = experiment.run(config, force=extra["force"], progress=extra["progress"], command=_command(settings))
    return Run(summary["path"])


def _command(settings: dict) -> str:
    """config.json's ``command``: the call as a script would write it."""
    return "tinygrad_act.run(" + ", ".join(f"{key}={value!r}" for key, value in settings.items()) + ")"


def _given(name: str, value):
    """A keyword as the schema takes it: arrays registered by their sha256, a path as text, an activation or
    initializer object or function as its spec (``spec_of``); a function where none can be registered refused."""
    if name == "data" and value is not None and not isinstance(value, str):
        if callable(value):
            raise UsageError("data takes a dataset's name or spec, a .npz/.csv path, or arrays (x, y); a generator "
                             "function must be registered first: datasets.register(name, generator)")  # fmt: skip
        return str(value) if isinstance(value, os.PathLike) else userdata.register_arrays(value)
    if name == "out" and isinstance(value, os.PathLike):
        return str(value)
    if name in ("act", "init", "output_init"):
        return spec_of(name, value)
    if callable(value) and not isinstance(value, str):
        raise UsageError(f"{name} takes a name or spec such as {getattr(Config, name)!r}, not a function ({value!r})")
    return value


def spec_of(key: str, value):
    """The spec string a Config holds for ``act``/``init``/``output_init`` given as a string, an Activation or
    Initializer object, or a plain function (registered for this process under its own name, see the module
    docstring); any other value is left for Config.validate to name."""
    if isinstance(value, activations.Activation):
        return value.spec
    if isinstance(value, initializers.Initializer):
        params = ",".join(f"{k}={v}" for k, v in value.params.items() if v is not None)
        spec = f"{value.name}:{params}" if params else value.name
        try:
            if initializers.get(spec).params == value.params:
                return spec
        except ValueError:  # a parameter a spec cannot spell (an activation spec with its own commas)
            pass
        value = _drawing_of(value)
    if not callable(value) or isinstance(value, str):
        return value
    name = _function_name(value)
    if key == "act":
        if not activations.exists(name):
            activations.register(name, compose=value)
    elif name not in initializers.names():
        initializers.register(name, lambda: value, description=f"your function {name}")
    return name


def _drawing_of(initializer):
    """A plain function drawing what ``initializer`` draws, registered like any user function."""

    def drawn_by_initializer(fan_in, fan_out, rng):
        return initializer(fan_in, fan_out, rng)

    drawn_by_initializer.__name__ = f"{initializer.name}_{id(initializer):x}"
    return drawn_by_initializer


def _function_name(function) -> str:
    """A registry name for a user's function: its own name when it is one (``my_act``), else ``user_<id>``."""
    name = getattr(function, "__name__", "")
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name != "<lambda>" else f"user_{id(function):x}"


class Run:
    """A run directory read back: ``dir``, ``config``, ``summary``, ``records``, ``table()``, ``figures()``."""

    def __init__(self, path):
        self.dir = Path(path)
        if not self.dir.is_dir() or not os.path.lexists(self.dir / "config.json"):
            raise UsageError(f"{str(self.dir)!r} is not a run directory (no config.json in it)")
        # each file through its schema (lab/settings.py, measure/records.py): a malformed field is one line
        self.config = read_config(self.dir)
        self.summary = read_summary(self.dir) if os.path.lexists(self.dir / "summary.json") else {}
        self.records = read_metrics(self.dir / "metrics.jsonl")

    @classmethod
    def load(cls, path) -> Run:
        """The Run of an existing run directory."""
        return cls(path)

    def __repr__(self):
        return f"Run({str(self.dir)!r}, status={self.summary.get('status')!r}, records={len(self.records)})"

    def table(self) -> list[dict]:
        """One flat row per (step, layer): the step's numbers and the layer's, ready for ``pd.DataFrame``.

        ``layer`` counts layers from 1 (the output layer last); ``layer_name`` names the output layer ``out``.
        """
        rows = []
        for record in self.records:
            step = {key: value for key, value in record.items() if key != "layers"}
            layers = record.get("layers") or []
            for index, layer in enumerate(layers):
                rows.append({**step, **layer, "layer_name": layer_name(index, len(layers))})
        return rows

    def figures(self) -> list:
        """The run's figures as matplotlib Figures (drawn without pyplot: the caller's backend is unchanged)."""
        return [fig for fig, _ in run_figures.drawings(self.dir, self.records, self.summary)]


run.__signature__ = validate.signature(
    (*SETTINGS, *RUN_OPTIONS), returns=Run,
    annotations={"data": str | os.PathLike | tuple[np.ndarray, ...], "out": str | os.PathLike},
)  # fmt: skip
run.__doc__ = validate.docstring(
    "Train one MLP as ``python -m tinygrad_act experiment`` would, with its options as keywords; the Run.",
    (*SETTINGS, *RUN_OPTIONS),
    '``data`` is a dataset spec (``"spirals:n=500"``), a ``.npz``/``.csv`` path, or arrays ``(x, y)`` /\n'
    "``(x, y, x_test, y_test)``, checked like a file and recorded in config.json by shapes and sha256.\n"
    "``act``, ``init`` and ``output_init`` also take an Activation or Initializer object (its spec is recorded) or a\n"
    "plain function (an activation composed of engine operations, ``lambda x: x * x.sigmoid()``; an initializer\n"
    "``draw(fan_in, fan_out, rng) -> W``), registered for this process under the function's name; its results are\n"
    "checked before the run directory exists.",
)
