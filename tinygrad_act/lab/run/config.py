"""What determines a run: ``Config`` (its settings, their validation, the memory they need, the run's name).

Each setting is declared once, in lab/settings.py, with its type, default, range or choices and help;
``SETTINGS`` is that schema, and every entrance reads it: the command line's options, the make variables,
``tinygrad_act.run``'s signature, sweep TOML, config.json and checkpoints read back (``Config.read``).

``Config.resolve`` checks every setting and resolves every name (activation, initializer, output initializer,
optimizer, dataset shape) once, without allocating anything, into a ``Resolved`` that ``build`` and the theory use,
so a sweep can check all its runs before the first one starts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from ...common.registry import parse_spec
from ...engine.tensor import Tensor
from ...nn import activations, optim
from ...nn import init as initializers
from ...nn.modules import output_initializer
from .. import data
from ..data import userdata
from ..settings import RUN_OPTIONS, SETTINGS, Settings, read_config
from ..show import run_figures
from . import engines, recurrent, tensorboard

__all__ = ["Config", "Resolved", "RUN_OPTIONS", "SETTINGS"]


@dataclasses.dataclass
class Config(Settings):
    """Everything that determines a run (its settings: lab/settings.py), and what a run does with them."""

    def check(self, where: str = "") -> Config:
        """Every setting through its declaration (exact types, finite numbers in range); values made plain Python
        (numpy scalars, an int for a float); UsageError naming the setting (and ``where``) otherwise."""
        for name, value in validate.check_all(SETTINGS, dataclasses.asdict(self), where).items():
            setattr(self, name, value)
        return self

    def resolve(self, data_spec: str | None = None) -> Resolved:
        """Check every setting and resolve every name once, without allocating anything; the Resolved.

        Checks every dataset parameter (without generating the data; ``data_spec`` reads another spec than
        ``data``, such as the absolute path a resumed run recorded), the batch size against the training split, and
        the memory the run would need (``memory_estimate``) against ``validate.memory_limit()``.
        """
        self.check()
        if self.tensorboard:
            tensorboard.require()  # before anything is written: one line saying how to install it
        activation = _resolved("activation", self.act, lambda: activations.get(self.act))
        try:
            with np.errstate(all="ignore"):
                gain = activation.gain
        except ArithmeticError:
            gain = math.inf
        if not (math.isfinite(gain) and gain > 0):  # before the initializer, which would be blamed for it
            raise UsageError(f"activation {self.act!r} has no usable gain ({gain}): its output overflows or "
                             f"vanishes for unit-variance inputs; choose other parameters")  # fmt: skip
        with np.errstate(all="ignore"):  # its results' shapes and types are checked here, not their values
            _resolved("activation", self.act, activation.check_results)
        init = _resolved("initializer", self.init, lambda: initializers.for_activation(self.init, activation.spec))
        name = self.init if init.name == self.init else f"{self.init} ({init.name} for {self.act})"
        _resolved("initializer", name, lambda: init(5, 3, np.random.default_rng(0)))  # its matrix is checked there
        output = _resolved("output initializer", self.output_init, lambda: output_initializer(self.output_init, init))
        _resolved("output initializer", self.output_init, lambda: output(5, 3, np.random.default_rng(0)))
        optimizer = _resolved("optimizer", self.optimizer, self._optimizer)
        spec = self.data if data_spec is None else data_spec
        shape = _resolved("dataset", spec, lambda: data.check(spec, **recurrent.data_params(self)))
        recurrent.check(self, Config(), shape)
        run_figures.check(self.figures, self.model, recurrent.cell_spec(self.cell)[0] if self.model == "rnn" else None)
        if shape is not None and self.batch_size > shape.n_train:
            raise UsageError(
                f"batch_size {self.batch_size} is larger than the training split of {self.data!r} "
                f"({shape.n_train} examples); use at most {shape.n_train} (full batch)"
            )
        estimate, parts = self.memory_estimate(shape)
        validate.memory("this run", estimate, parts)
        engine = engines.get(self, optimizer.func)  # torch, cuda: installed and present, or one line here
        return Resolved(activation, init, output, optimizer, shape, engine)

    def validate(self) -> Config:
        """``resolve``, keeping the Config: UsageError names the first bad value."""
        self.resolve()
        return self

    def _optimizer(self):
        """The optimizer's class with its parameters bound, tried once on a probe parameter."""
        entry, bound = optim._REGISTRY.resolve(self.optimizer, **self.optimizer_options())
        make = functools.partial(entry.obj, **bound)
        make([Tensor(np.zeros(1), requires_grad=True)])  # the class's own checks of its parameters
        return make

    @classmethod
    def read(cls, path) -> Config:
        """The Config a run directory was made with, from its config.json through the schema: UsageError in one
        line naming the file and the setting if it is not readable or holds a value of another type."""
        recorded = read_config(path)
        return cls(**{k: v for k, v in recorded.items() if k in _NAMES and k != "out"}, out=str(path))

    def memory_estimate(self, shape=None) -> tuple[int, dict]:
        """Bytes the run needs at its peak, roughly, and the parts: parameters, activations, data.

        Parameters with their gradients, optimizer state and probe copies (about 5 copies); per hidden layer
        and example about 6 values (pre-activation, activation, their gradients, norm statistics) for the
        larger of a training batch and an evaluation chunk (1000); the dataset while generated (float64) and
        as held (float64 cache plus the run's dtype). ``shape`` is ``data.check(self.data)`` (None: unknown).
        """
        itemsize = np.dtype(self.dtype).itemsize
        features, classes, n = (shape.features, shape.classes, shape.n_train + shape.n_test) if shape else (1, 1, 0)
        steps = max(shape.seq_len, 1) if shape else 1
        depth, width = self.depth, self.width
        weights = (features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * classes
        rows = max(self.batch_size, min(1000, n))
        layers = depth
        if self.model == "rnn":  # one recurrent layer of G gate blocks, its values kept for every step
            gates = {"lstm": 4, "gru": 3}.get(recurrent.cell_spec(self.cell)[0], 1)
            weights = gates * width * (features + width + 2) + (width + 1) * max(classes, 1)
            layers = steps * (gates + 2)
        parts = {
            "parameters": 5 * weights * itemsize,
            "activations": 6 * rows * layers * width * itemsize,
            "data": max(8 * shape.peak_values, n * steps * features * (8 + itemsize)) if shape else 0,
        }
        return sum(parts.values()), parts

    def optimizer_options(self) -> dict:
        """lr (and momentum for SGD) from the config, unless the optimizer spec sets them itself."""
        name, inline = parse_spec(self.optimizer)
        options = {"lr": self.lr, "momentum": self.momentum} if name == "sgd" else {"lr": self.lr}
        return {k: v for k, v in options.items() if k not in inline}

    def default_name(self) -> str:
        """The run directory's name under runs/: activation, init, depth, every other setting that differs from
        the default, then the seed (``relu-he_normal-d80-float32-lr0.1-s0``): a listing says what each run was."""
        default = Config()

        def spec(text):  # leaky_relu:alpha=0.2 -> leaky_relu_alpha0.2
            return text.replace(":", "_").replace("=", "").replace(",", "_").replace("/", "_")

        tags = {
            "width": f"w{self.width}",
            "data": spec(os.path.basename(self.data) if userdata.is_user_spec(self.data) else self.data),
            "dtype": self.dtype,
            "optimizer": spec(self.optimizer),
            "lr": f"lr{self.lr:g}",
            "momentum": f"mom{self.momentum:g}",
            "batch_size": f"b{self.batch_size}",
            "steps": f"steps{self.steps}",
            "clip": f"clip{self.clip:g}",
            "output_init": f"out_{spec(self.output_init)}",
            "sigma_b2": f"sb{self.sigma_b2:g}",
            "residual": "res",
            "norm": f"{self.norm}norm",
            "engine": self.engine,
            "device": self.device,
        }
        if self.model == "rnn":
            parts = [spec(part) for part in recurrent.default_name(self)]
        else:
            parts = [spec(self.act), spec(self.init), f"d{self.depth}"]
        parts += [tag for key, tag in tags.items() if getattr(self, key) != getattr(default, key)]
        return "-".join([*parts, f"s{self.seed}"])


_NAMES = {s.name for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What ``Config.resolve`` found the names to be: build() and the theory use these, never the names again."""

    activation: activations.Activation
    init: initializers.Initializer
    output_init: initializers.Initializer
    optimizer: functools.partial  # optimizer(parameters) -> Optimizer
    shape: data.Shape | None  # the dataset's, if its generator declares one
    engine: object = None  # lab/run/engines.py's: what trains the MLP


def _resolved(what: str, spec: str, resolve):
    """``resolve()``; its ValueError (a component's own parameter check) or overflow becomes a UsageError that
    names the component: ``activation 'softplus:beta=0': beta must be positive``."""
    try:
        return resolve()
    except (ValueError, ArithmeticError) as error:
        message = str(error)
        if not message.startswith((what, f"unknown {what}")):
            message = f"{what} {spec!r}: {message}"
        raise UsageError(message) from None
