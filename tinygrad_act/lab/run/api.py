"""Your script: ``tinygrad_act.run(depth=3, act="relu", data=(x, y))`` -> a ``Run`` to read, predict with and draw.

    run = tinygrad_act.run(depth=10, width=32, act="tanh", steps=200, data="spirals", out="runs/tanh")
    run.summary["verdict"], run.records[-1]["loss"]
    run.figures["gradient_flow"]       # name -> the PNG's path
    run.predict(x), run.evaluate(x, y) # with the trained model (run.model), on inputs in your data's units
    run                                # in a notebook: the verdict, the layer table and the gradient flow
    pd.DataFrame(run.table())          # one row per (step, layer); run.time_table(): per (step, t) through time
    Run.load("runs/tanh")              # the same object for a run directory already on disk

The keywords are the command line's experiment options (``--batch-size`` is ``batch_size``), plus ``force``
and ``progress``; the run is the one ``python -m tinygrad_act experiment`` makes, files and all. ``act`` and
``init`` also take an Activation or Initializer object (``activations.get("leaky_relu", alpha=0.2)``) or a plain
function (an activation composed of engine operations, ``lambda x: x * x.sigmoid()``; an initializer
``draw(fan_in, fan_out, rng) -> W``), registered for this process under the function's name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from ...engine.graph import no_grad
from ...engine.tensor import Tensor
from ...nn import activations
from ...nn import init as initializers
from ..data import userdata
from ..measure.records import layer_name, read_metrics, read_summary
from ..settings import read_config
from ..show import html, run_figures
from . import checkpoint, experiment
from .config import RUN_OPTIONS, SETTINGS, Config

_EVALUATION_BATCH = 1000  # rows per forward pass in predict and evaluate


def options() -> list[str]:
    """Every keyword ``run`` takes: the settings (lab/settings.py's schema), then ``force`` and ``progress``."""
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
    """A run directory read back: ``dir``, ``config``, ``summary``, ``records``, ``figures`` (name -> PNG path),
    ``table()``, ``draw()``, and the trained ``model`` with ``predict(x)`` and ``evaluate(x, y)``."""

    def __init__(self, path):
        self.dir = Path(path)
        if not self.dir.is_dir() or not os.path.lexists(self.dir / "config.json"):
            raise UsageError(f"{str(self.dir)!r} is not a run directory (no config.json in it)")
        # each file through its schema (lab/settings.py, measure/records.py): a malformed field is one line
        self.config = read_config(self.dir)
        self.summary = read_summary(self.dir) if os.path.lexists(self.dir / "summary.json") else {}
        self.records = read_metrics(self.dir / "metrics.jsonl")
        self._model = None

    @classmethod
    def load(cls, path) -> Run:
        """The Run of an existing run directory."""
        return cls(path)

    def __repr__(self):
        return f"Run({str(self.dir)!r}, status={self.summary.get('status')!r}, records={len(self.records)})"

    def _repr_html_(self) -> str:
        """In a notebook: what the run was, its verdict and why, the layer table and the gradient-flow figure."""
        return html.run_fragment(self.dir, self.config, self.records, self.summary)

    @property
    def figures(self) -> dict[str, Path]:
        """The figures the run drew, name -> PNG path: ``run.figures["gradient_flow"]`` (empty without figures)."""
        listed = self.summary.get("figures") or sorted(
            f"figures/{p.name}" for p in (self.dir / "figures").glob("*.png")
        )
        return {Path(name).stem: self.dir / name for name in listed if (self.dir / name).is_file()}

    def table(self) -> list[dict]:
        """One flat row per (step, layer): the step's numbers and the layer's, ready for ``pd.DataFrame``.

        ``layer`` counts layers from 1 (the output layer last); ``layer_name`` names the output layer ``out``.
        """
        rows = []
        for record in self.records:
            step = {key: value for key, value in record.items() if key not in ("layers", "through_time")}
            layers = record.get("layers") or []
            for index, layer in enumerate(layers):
                rows.append({**step, **layer, "layer_name": layer_name(index, len(layers))})
        return rows

    def time_table(self) -> list[dict]:
        """A recurrent run's flat rows per (step, time step t): the step's numbers and that time step's (``t``
        from 1, ``delta_norm`` = ||dL/dh_t||, the gates ...), ready for ``pd.DataFrame``; [] for an MLP run."""
        rows = []
        for record in self.records:
            step = {key: value for key, value in record.items() if key not in ("layers", "through_time")}
            rows += [{**step, **entry} for entry in record.get("through_time") or []]
        return rows

    def draw(self) -> dict:
        """The run's figures drawn afresh as matplotlib Figures, name -> Figure (no pyplot: the caller's backend
        is unchanged): those its figures setting names, every one if it names none (True, or False)."""
        return {Path(name).stem: fig for fig, name in run_figures.drawings(self.dir, self.records, self.summary)}

    @property
    def model(self):
        """The trained MLP: the run's architecture with the weights of its checkpoint.npz (the end of training
        for a completed run), in eval mode. Its inputs are standardized (see ``predict``)."""
        if self._model is None:
            config, data = Config.read(self.dir), self._data()
            outputs = data["outputs"] or data["classes"]  # a recurrent run's: 1 for a regression
            model = experiment.make_model(config, data["features"], outputs, readout_steps=data["readout_steps"])
            # the checkpoint read as a resume reads it: typed entries, these settings, the data config.json records
            state = checkpoint.load(self.dir, config, data["sha256"])
            checkpoint.restore(state, model)
            model.eval()
            self._model = model
        return self._model

    def predict(self, x) -> np.ndarray:
        """The predicted class of each row of ``x``, in the labels of the run's data.

        ``x`` is in the units of the data the run was given: your raw arrays or file (standardized here with the
        train split's statistics, as in training), or a built-in dataset's inputs as ``lab.data.load`` returns them.
        """
        logits = self._logits(self._inputs(x))
        data = self._data()
        if data["task"] == "regression":  # a recurrent run on the adding problem: the predicted values
            return logits[:, 0]
        labels = data["labels"]
        index = np.argmax(logits, axis=1)
        if data["task"] == "per_step":  # one label per read-out step
            return index.reshape(-1, data["readout_steps"])
        return np.asarray(labels)[index] if labels is not None else index

    def evaluate(self, x, y) -> dict[str, float]:
        """``{"loss": mean cross-entropy, "accuracy": fraction correct}`` of the trained model on ``(x, y)``,
        ``x`` as for ``predict`` and ``y`` in the labels of the run's data."""
        x, task = self._inputs(x), self._data()["task"]
        targets = self._classes(y, len(x)) if task == "classification" else np.asarray(y)
        loss, accuracy = experiment.evaluate(self.model, x, targets, _EVALUATION_BATCH, task)
        self.model.eval()  # evaluate puts a model back in training mode
        return {"loss": loss, "accuracy": accuracy}

    def _data(self) -> dict:
        """What config.json recorded of the data, checked (userdata.recorded): features, classes, labels,
        standardization, and a sequence task's T, task, labelled steps and outputs."""
        return userdata.recorded(self.config.get("dataset"), str(self.dir / "config.json"))

    def _inputs(self, x) -> np.ndarray:
        """``x`` as the model takes it: 2-D, the run's features, standardized if the run's data was, its dtype."""
        x = np.asarray(x, dtype=np.float64)
        data = self._data()
        features = data["features"]
        if data["seq_len"]:  # a recurrent run: sequences (n, T, features)
            x = x[None] if x.ndim == 2 and x.shape[1] == features else x
            if x.ndim != 3 or x.shape[2] != features:
                raise UsageError(f"x has shape {x.shape}; this run's model takes sequences of (steps, {features})")
            return x.astype(self.config.get("dtype", "float64"))
        if x.ndim == 1 and x.size == features:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != features:
            raise UsageError(f"x has shape {x.shape}; this run's model takes rows of {features} features")
        scale = data["standardization"]
        if scale:
            x = (x - np.asarray(scale["mean"])) / np.asarray(scale["std"])
        return x.astype(self.config.get("dtype", "float64"))

    def _classes(self, y, rows: int) -> np.ndarray:
        """Labels ``y`` as the class indices 0..C-1 the model predicts; UsageError for a label the run never saw."""
        y = np.asarray(y).reshape(-1)
        if len(y) != rows:
            raise UsageError(f"y has {len(y)} labels for {rows} rows of x")
        data = self._data()
        known = np.asarray(data["labels"]) if data["labels"] is not None else np.arange(data["classes"])
        position = np.searchsorted(known, y)
        found = (position < len(known)) & (known[np.minimum(position, len(known) - 1)] == y)
        if not found.all():
            raise UsageError(f"label {y[~found].tolist()[0]!r} is not one of this run's classes: {known.tolist()}")
        return position.astype(np.int64)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        with no_grad():
            parts = [self.model(Tensor(x[i : i + _EVALUATION_BATCH])).data for i in range(0, len(x), _EVALUATION_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, self._data()["classes"]))


_INIT = str | initializers.Initializer | Callable  # a spec, an Initializer, or draw(fan_in, fan_out, rng) -> W
run.__signature__ = validate.signature(
    (*SETTINGS, *RUN_OPTIONS), returns=Run,
    annotations={"data": str | os.PathLike | tuple[np.ndarray, ...], "out": str | os.PathLike,
                 "act": str | activations.Activation | Callable, "init": _INIT, "output_init": _INIT},
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
