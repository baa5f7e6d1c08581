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

import dataclasses
from pathlib import Path

from ...common import files
from ...common.errors import UsageError
from ..data import userdata
from ..measure.records import layer_name
from ..show import run_figures
from . import experiment
from .config import Config

_RUN_OPTIONS = {"force": False, "progress": True}


def options() -> list[str]:
    """Every keyword ``run`` takes."""
    return [f.name for f in dataclasses.fields(Config)] + list(_RUN_OPTIONS)


def run(**settings) -> Run:
    """Train one MLP as ``python -m tinygrad_act experiment`` would, with its options as keywords; the Run.

    ``data`` is a dataset spec (``"spirals:n=500"``), a ``.npz``/``.csv`` path, or arrays ``(x, y)`` /
    ``(x, y, x_test, y_test)``, checked like a file and recorded in config.json by shapes and sha256.
    """
    unknown = sorted(set(settings) - set(options()))
    if unknown:
        raise UsageError(f"run() has no option {unknown[0]!r}; its options: {', '.join(options())}")
    extra = {key: settings.pop(key, default) for key, default in _RUN_OPTIONS.items()}
    data = settings.get("data")
    if data is not None and not isinstance(data, str):
        settings["data"] = str(data) if isinstance(data, Path) else userdata.register_arrays(data)
    config = Config(**settings)
    summary = experiment.run(config, force=extra["force"], progress=extra["progress"], command=_command(settings))
    return Run(summary["path"])


def _command(settings: dict) -> str:
    """config.json's ``command``: the call as a script would write it."""
    return "tinygrad_act.run(" + ", ".join(f"{key}={value!r}" for key, value in settings.items()) + ")"


class Run:
    """A run directory read back: ``dir``, ``config``, ``summary``, ``records``, ``table()``, ``figures()``."""

    def __init__(self, path):
        self.dir = Path(path)
        self.config = files.read_json(self.dir / "config.json")
        if not self.dir.is_dir() or self.config is None:
            raise UsageError(f"{str(self.dir)!r} is not a run directory (no readable config.json in it)")
        self.summary = files.read_json(self.dir / "summary.json") or {}
        self.records = files.read_records(self.dir / "metrics.jsonl")

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
