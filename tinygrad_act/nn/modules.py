"""Modules, the deep MLP of the laboratory, and losses.

A ``Module`` registers the Tensors (requires_grad) and Modules assigned to its attributes, in assignment
order, so ``named_parameters()`` gives stable names such as ``blocks.3.linear.weight``. Forward hooks
(``register_forward_hook(fn(module, inputs, output))``) let measurement attach from outside: the probes
in probes.py use them, and the training loop never knows.

Every attribute assignment (but a buffer's), and every change to a list of modules (``ModuleList``), tells the
engine that the model's structure changed (grad_mode.structure_changed): a captured step (step.py) then records
its program again instead of replaying one of a model that no longer exists.
"""

from __future__ import annotations

import functools

import numpy as np

from ..common.errors import UsageError
from ..engine import capture
from ..engine.grad_mode import structure_changed
from ..engine.graph import RemovableHandle
from ..engine.tensor import Tensor, linear
from . import activations
from . import init as initializers


class Module:
    """Base class: parameters, sub-modules, train/eval mode and forward hooks."""

    def __init__(self):
        object.__setattr__(self, "_children", {})  # name -> Tensor | Module | list[Module], in assignment order
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        children = self.__dict__.get("_children")
        if children is None:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        is_parameter = isinstance(value, Tensor) and value.requires_grad
        is_module_list = isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value)
        if isinstance(value, list) and is_module_list:
            value = ModuleList(value)
        if is_parameter or isinstance(value, Module) or is_module_list:
            children[name] = value
        else:
            children.pop(name, None)
        object.__setattr__(self, name, value)
        if name not in self.BUFFERS:  # a buffer is state (batch norm's running statistics), not structure
            structure_changed()

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Tensor) for every parameter, in registration order; shared tensors appear once."""
        seen = set()
        for name, child in self._named_children(prefix):
            if isinstance(child, Tensor):
                if child not in seen:
                    seen.add(child)
                    yield name, child
            else:
                for sub_name, parameter in child.named_parameters(name + "."):
                    if parameter not in seen:
                        seen.add(parameter)
                        yield sub_name, parameter

    def _named_children(self, prefix):
        for name, child in self._children.items():
            if isinstance(child, (list, tuple)):
                for i, module in enumerate(child):
                    yield f"{prefix}{name}.{i}", module
            else:
                yield prefix + name, child

    def modules(self, _seen=None):
        """This module and every sub-module once (MLP.layers aliases its Linears), depth first, in order."""
        _seen = set() if _seen is None else _seen
        if id(self) in _seen:
            return
        _seen.add(id(self))
        yield self
        for _, child in self._named_children(""):
            if isinstance(child, Module):
                yield from child.modules(_seen)

    def parameters(self) -> list[Tensor]:
        """Every parameter Tensor, in registration order."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None (the next backward starts afresh)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        """Training mode for this module and every sub-module (batch norm uses batch statistics)."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode (batch norm uses its running statistics)."""
        return self.train(False)

    def register_forward_hook(self, fn):
        """Call ``fn(module, inputs, output)`` after every forward; returns a handle with ``remove()``."""
        self._forward_hooks.append(fn)
        return RemovableHandle(self._forward_hooks, fn)

    def __call__(self, *inputs):
        output = self.forward(*inputs)
        for hook in self._forward_hooks:
            hook(self, inputs, output)
        return output

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def num_parameters(self) -> int:
        """The number of scalar parameters."""
        return sum(p.data.size for p in self.parameters())

    # State that is not a parameter but changes in training (batch norm's running statistics): attribute names.
    BUFFERS: tuple[str, ...] = ()

    def named_buffers(self, prefix: str = ""):
        """(dotted name, array) for every buffer (``BUFFERS`` of each sub-module), in registration order."""
        seen = set()
        for module_prefix, module in self._named_modules(prefix):
            if id(module) not in seen:
                seen.add(id(module))
                for name in module.BUFFERS:
                    yield module_prefix + name, getattr(module, name)

    def _named_modules(self, prefix):
        yield prefix, self
        for name, child in self._named_children(prefix):
            if isinstance(child, Module):
                yield from child._named_modules(name + ".")

    def state_dict(self) -> dict[str, np.ndarray]:
        """{name: copy} of every parameter and buffer: ``blocks.0.linear.weight``, ``blocks.0.norm.running_mean``."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update((name, np.array(value, copy=True)) for name, value in self.named_buffers())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` (from ``state_dict``) in; UsageError naming the first name, shape or dtype that differs."""
        targets = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = {name: (t.data.shape, t.data.dtype) for name, t in targets.items()}
        expected.update((name, (np.shape(b), np.asarray(b).dtype)) for name, b in buffers.items())
        check_state(state, expected, "model")
        for name, tensor in targets.items():
            np.copyto(tensor.data, state[name])
        for module_prefix, module in self._named_modules(""):
            for name in module.BUFFERS:
                if module_prefix + name in state:
                    object.__setattr__(module, name, np.array(state[module_prefix + name], copy=True))


class ModuleList(list):
    """A list of modules held by a module (``MLP.blocks``, ``MLP.layers``): changing it changes the structure."""


def _changes_structure(name: str):
    method = getattr(list, name)

    def changed(self, *args, **kwargs):
        structure_changed()
        return method(self, *args, **kwargs)

    changed.__name__ = name
    return changed


for _name in "append extend insert pop remove clear sort reverse __setitem__ __delitem__ __iadd__ __imul__".split():
    setattr(ModuleList, _name, _changes_structure(_name))


class Linear(Module):
    """y = x @ W + b with W of shape (in_features, out_features)."""

    def __init__(
        self, in_features: int, out_features: int, init="xavier_normal", bias: bool = True, rng=None, dtype=np.float64
    ):
        super().__init__()
        rng = np.random.default_rng() if rng is None else rng
        init_fn = initializers.get(init) if isinstance(init, str) else init
        self.in_features, self.out_features = in_features, out_features
        self.weight = Tensor(np.asarray(init_fn(in_features, out_features, rng), dtype=dtype), requires_grad=True)
        self.bias = Tensor(np.zeros(out_features, dtype=dtype), requires_grad=True) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) · γ + β over the feature axis (Ba et al. 2016)."""

    def __init__(self, features: int, eps: float = 1e-5, dtype=np.float64):
        super().__init__()
        self.eps = eps
        self.weight = Tensor(np.ones(features, dtype=dtype), requires_grad=True)
        self.bias = Tensor(np.zeros(features, dtype=dtype), requires_grad=True)

    def forward(self, x: Tensor) -> Tensor:
        centered = x - x.mean(axis=-1, keepdims=True)
        variance = (centered * centered).mean(axis=-1, keepdims=True)
        return centered * (variance + self.eps) ** -0.5 * self.weight + self.bias


class BatchNorm1d(Module):
    """Batch normalization over the batch axis (Ioffe & Szegedy 2015); running statistics in eval mode."""

    BUFFERS = ("running_mean", "running_var")

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float64):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = Tensor(np.ones(features, dtype=dtype), requires_grad=True)
        self.bias = Tensor(np.zeros(features, dtype=dtype), requires_grad=True)
        self.running_mean = np.zeros(features, dtype=dtype)
        self.running_var = np.ones(features, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            scale = (self.running_var + self.eps) ** -0.5
            return (x - self.running_mean) * (scale * self.weight) + self.bias
        mean = x.mean(axis=0, keepdims=True)
        centered = x - mean
        variance = (centered * centered).mean(axis=0, keepdims=True)
        # An effect (not a plain assignment), so that a captured training step replays it (engine/capture.py).
        capture.effect(functools.partial(self._track, x.shape[0]), mean, variance)
        return centered * (variance + self.eps) ** -0.5 * self.weight + self.bias

    def _track(self, n, mean, variance):
        """Update the running statistics from a batch of ``n`` rows; the variance's is unbiased, as in PyTorch."""
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mean[0]
        self.running_var = (1 - m) * self.running_var + m * variance[0] * (n / max(n - 1, 1))


NORMS = {None: None, "none": None, "batch": BatchNorm1d, "layer": LayerNorm}


class Activate(Module):
    """An activation as a module, so that a forward hook sees its input and output (the probes use this)."""

    def __init__(self, activation):
        super().__init__()
        self.activation = activations.get(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(x)


class Block(Module):
    """One hidden layer: Linear -> [norm] -> activation, with an identity skip when ``residual``."""

    def __init__(self, linear: Linear, norm, activation, residual: bool):
        super().__init__()
        self.linear = linear
        self.norm = norm
        self.act = Activate(activation)
        self.residual = residual

    @property
    def activation(self):
        return self.act.activation

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x)
        if self.norm is not None:
            z = self.norm(z)
        out = self.act(z)
        return x + out if self.residual else out


class MLP(Module):
    """A deep fully-connected net: ``len(hidden)`` hidden blocks and a linear output layer.

    ``residual=True`` adds identity skips around hidden blocks whose input and output widths match;
    ``norm`` is None, "batch" or "layer" (applied to each hidden pre-activation). ``model.layers`` lists the
    Linear layers, input side first (the last one is the output layer). Biases start at zero, or drawn from
    N(0, ``sigma_b2``) in every layer (mean-field theory's sigma_b^2; Schoenholz et al. 2017).
    """

    def __init__(
        self,
        in_features: int,
        hidden,
        out_features: int,
        activation="relu",
        init="auto",
        residual: bool = False,
        norm=None,
        seed: int = 0,
        dtype=np.float64,
        output_init="xavier_normal",
        sigma_b2: float = 0.0,
    ):
        super().__init__()
        if norm not in NORMS:
            raise UsageError(f"unknown norm {norm!r}; choose one of: none, batch, layer")
        self.activation = activations.get(activation)
        init_fn = _resolve_init(init, self.activation)
        self.init = init_fn
        rng = np.random.default_rng(seed)
        widths = [in_features, *hidden]
        blocks = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            linear = Linear(fan_in, fan_out, init=init_fn, rng=rng, dtype=dtype)
            norm_layer = NORMS[norm](fan_out, dtype=dtype) if NORMS[norm] else None
            blocks.append(Block(linear, norm_layer, self.activation, residual and fan_in == fan_out))
        self.blocks = blocks
        output_init = output_initializer(output_init, init_fn)
        self.output = Linear(widths[-1], out_features, init=output_init, rng=rng, dtype=dtype)
        self.layers = [b.linear for b in blocks] + [self.output]
        if sigma_b2:  # an own stream: the weights are the same with and without random biases
            bias_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
            for layer in self.layers:
                layer.bias.data[...] = bias_rng.normal(0.0, np.sqrt(sigma_b2), layer.bias.data.shape)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.output(x)


def output_initializer(spec, hidden_init):
    """The output layer's initializer: ``"same"`` = the hidden layers' (PyTorch's habit of one init for every
    Linear), else an initializer spec for a linear layer (``auto`` -> xavier_normal, Glorot & Bengio 2010)."""
    if isinstance(spec, str) and spec == "same":
        return hidden_init
    return initializers.for_activation(spec, "identity")


def _resolve_init(init, activation):
    if callable(init) and not isinstance(init, (str, initializers.Initializer)):
        return init
    return initializers.for_activation(init, activation.spec)


def check_state(state: dict, expected: dict, what: str) -> None:
    """UsageError naming the first entry of ``state`` missing, unexpected, or of another shape or dtype than in
    ``expected`` ({name: (shape, dtype)}): a checkpoint of another model is refused before anything changes."""
    for name, (shape, dtype) in expected.items():
        if name not in state:
            raise UsageError(f"{what} state lacks {name!r} (expected {len(expected)} entries, got {len(state)})")
        value = np.asarray(state[name])
        if value.shape != tuple(shape) or value.dtype != dtype:
            raise UsageError(f"{what} state {name!r} is {value.dtype}{list(value.shape)}, "
                             f"expected {np.dtype(dtype)}{list(shape)}")  # fmt: skip
    unexpected = [name for name in state if name not in expected]
    if unexpected:
        raise UsageError(f"{what} state has an unexpected entry {unexpected[0]!r}")


def cross_entropy(logits: Tensor, targets) -> Tensor:
    """Mean over the batch of -log softmax(logits)[target]; ``targets`` are integer class labels."""
    return weighted_log_softmax(logits, Tensor(target_weights(logits.shape, logits.dtype, targets)))


def target_weights(shape, dtype, targets, out=None) -> np.ndarray:
    """-1/n at each row's target class, 0 elsewhere (into ``out`` if given): cross_entropy's weights of log p."""
    targets = np.asarray(targets)
    n, classes = shape
    if targets.shape != (n,) or targets.dtype.kind not in "iu":
        raise ValueError(f"targets must be {n} integer labels, got shape {targets.shape} dtype {targets.dtype}")
    if n and (targets.min() < 0 or targets.max() >= classes):  # numpy would wrap -1 to the last class
        raise ValueError(f"targets must be class labels in [0, {classes}), got {targets.min()}..{targets.max()}")
    one_hot = np.zeros((n, classes), dtype=dtype) if out is None else out
    if out is not None:
        out.fill(0)
    one_hot[np.arange(n), targets] = -1.0 / n
    return one_hot


def weighted_log_softmax(logits: Tensor, weights: Tensor) -> Tensor:
    """Σ weights · log_softmax(logits) over rows and classes (cross_entropy with target_weights)."""
    return (logits.log_softmax(axis=1) * weights).sum()


def mse(prediction: Tensor, target) -> Tensor:
    """Mean squared error."""
    diff = prediction - target
    return (diff * diff).mean()


def accuracy(logits, targets) -> float:
    """Fraction of rows whose arg-max equals the target."""
    scores = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(targets)))
