"""What determines a run: ``Config`` (its settings, their validation, the memory they need, the run's name).

``Config.validate`` checks every setting and resolves every name (activation, initializer, optimizer,
dataset) without allocating anything, so a sweep can check all its runs before the first one starts.
"""

from __future__ import annotations

import dataclasses
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
from . import recurrent, tensorboard

MODELS = ("mlp", "rnn")


@dataclasses.dataclass
class Config:
    """Everything that determines a run. Defaults make ``DEPTH=20 ACT=sigmoid`` a clear demonstration."""

    depth: int = 20
    width: int = 64
    act: str = "sigmoid"
    init: str = "auto"
    output_init: str = "xavier_normal"  # the output layer's; "same" = init; xavier_normal kept the numbers
    sigma_b2: float = 0.0  # variance of the initial biases, N(0, sigma_b2) (mean-field theory's sigma_b^2)
    optimizer: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    batch_size: int = 64
    steps: int = 1000
    data: str = "mnist1d"
    seed: int = 0
    dtype: str = "float64"
    residual: bool = False
    norm: str = "none"
    clip: float = 0.0
    log_every: int = 10
    eval_every: int = 100
    hist_every: int = 10  # TensorBoard histograms at measured steps, at most one every hist_every steps
    figures: bool = True
    tensorboard: bool = False  # also write TensorBoard event files (optional extra: tensorboardX)
    capture: bool = True  # replay a captured step on unmeasured steps (nn/step.py): faster, the same numbers
    jacobian: bool | None = None  # singular values of dz_L/dz_1 at step 0; None = auto (lab/jacobian.py)
    model: str = "mlp"  # or "rnn": a recurrent layer of ``cell`` reading a sequence task (run/recurrent.py)
    cell: str = "tanh"  # a recurrent run's cell: tanh, relu (Elman RNNs), lstm (lstm:forget_bias=1), gru
    seq_len: int | None = None  # T of a sequence dataset (None: the dataset's own)
    out: str = ""

    def validate(self) -> Config:
        """Resolve names and check values without allocating anything; UsageError names the bad value.

        Checks every dataset parameter (without generating the data), the batch size against the training
        split, and the memory the run would need (``memory_estimate``) against ``validate.memory_limit()``.
        """
        for name in ("depth", "width", "batch_size", "steps", "log_every", "eval_every", "hist_every"):
            validate.integer(name, getattr(self, name), 1)
        validate.integer("seed", self.seed, 0)
        validate.number("lr", self.lr, 0, low_open=True)
        validate.number("momentum", self.momentum, 0, 1, high_open=True)
        validate.number("clip", self.clip, 0)
        validate.number("sigma_b2", self.sigma_b2, 0, 1e6)
        validate.choice("dtype", self.dtype, ("float32", "float64"))
        validate.choice("norm", self.norm, ("none", "batch", "layer"))
        validate.boolean("residual", self.residual)
        validate.boolean("figures", self.figures)
        validate.boolean("tensorboard", self.tensorboard)
        validate.boolean("capture", self.capture)
        if self.jacobian is not None:
            validate.boolean("jacobian", self.jacobian)
        validate.choice("model", self.model, MODELS)
        recurrent.cell_spec(self.cell)
        if self.seq_len is not None:
            validate.integer("seq_len", self.seq_len, 1)
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
        init = _resolved("initializer", self.init, lambda: initializers.for_activation(self.init, self.act))
        name = self.init if init.name == self.init else f"{self.init} ({init.name} for {self.act})"
        _resolved("initializer", name, lambda: init(4, 4, np.random.default_rng(0)))
        output = _resolved("output initializer", self.output_init, lambda: output_initializer(self.output_init, init))
        _resolved("output initializer", self.output_init, lambda: output(4, 4, np.random.default_rng(0)))
        probe = [Tensor(np.zeros(1), requires_grad=True)]
        _resolved("optimizer", self.optimizer, lambda: optim.get(self.optimizer, probe, **self.optimizer_options()))
        shape = _resolved("dataset", self.data, lambda: data.check(self.data, **recurrent.data_params(self)))
        recurrent.check(self, Config(), shape)
        if shape is not None and self.batch_size > shape.n_train:
            raise UsageError(
                f"batch_size {self.batch_size} is larger than the training split of {self.data!r} "
                f"({shape.n_train} examples); use at most {shape.n_train} (full batch)"
            )
        estimate, parts = self.memory_estimate(shape)
        validate.memory("this run", estimate, parts)
        return self

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
        }
        if self.model == "rnn":
            parts = [spec(part) for part in recurrent.default_name(self)]
        else:
            parts = [spec(self.act), spec(self.init), f"d{self.depth}"]
        parts += [tag for key, tag in tags.items() if getattr(self, key) != getattr(default, key)]
        return "-".join([*parts, f"s{self.seed}"])


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
