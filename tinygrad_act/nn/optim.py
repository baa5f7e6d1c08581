"""Optimizers (SGD with momentum, Adam) and global-norm gradient clipping.

Each optimizer's rule is one array-level ``update(data, grad, state)``, run once per parameter, or once over
all parameters' flat arrays after a captured step (nn/flat.py): elementwise, so both give the same bits.
Updates change ``param.data`` in place under no graph. Step hooks
(``register_step_pre_hook`` / ``register_step_post_hook``, as in PyTorch) let probes measure each update
from outside the training loop.
"""

from __future__ import annotations

import math

import numpy as np

from ..common import validate
from ..common.errors import UsageError
from ..common.registry import Registry, keyword_defaults
from .modules import check_state


class Optimizer:
    """Holds the parameters and per-parameter state; subclasses define ``update`` (and name their ``STATE``)."""

    def __init__(self, params, lr: float):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = validate.number("lr", lr, 0, low_open=True)
        self.state: list[dict] = [{} for _ in self.params]
        self.steps = 0
        self._pre_hooks, self._post_hooks = [], []

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None."""
        for p in self.params:
            p.grad = None

    def register_step_pre_hook(self, fn):
        """Call ``fn(optimizer)`` before every step."""
        self._pre_hooks.append(fn)
        return fn

    def register_step_post_hook(self, fn):
        """Call ``fn(optimizer)`` after every step."""
        self._post_hooks.append(fn)
        return fn

    def step(self, flat=None):
        """Apply one update to every parameter that has a gradient (pre and post hooks around it).

        ``flat`` (nn.flat.FlatParameters of ``self.params``, every gradient in ``flat.grad``): ``update`` once over
        all parameters' flat arrays, bit-identical to the loop, unless their states differ (then the loop).
        """
        for hook in self._pre_hooks:
            hook(self)
        self.steps += 1
        state = None if flat is None else flat.state(self.state, self.STATE)
        if state is not None:
            self.update(flat.data, flat.grad, state, flat.scratch)
            flat.scatter(self.state, state)
        else:
            for p, state in zip(self.params, self.state):
                if p.grad is not None:
                    self.update(p.data, p.grad, state)
        for hook in self._post_hooks:
            hook(self)

    def update(self, data: np.ndarray, grad: np.ndarray, state: dict, scratch: np.ndarray | None = None) -> None:
        """Change ``data`` in place given its gradient and its state dict (created on the first update): one
        parameter's arrays, or every parameter's at once; ``scratch``, if given, an array like ``data`` to reuse."""
        raise NotImplementedError

    # Subclasses name their hyperparameters (attributes) and their per-parameter state: {key: True if it has the
    # parameter's shape, False if it is a scalar step count}.
    HYPERPARAMETERS: tuple[str, ...] = ("lr",)
    STATE: dict[str, bool] = {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """{name: array}: ``steps``, the hyperparameters, and ``state.<i>.<key>`` per parameter (in parameter order)."""
        state = {"steps": np.array(self.steps, dtype=np.int64)}
        state.update((name, np.array(getattr(self, name))) for name in self.HYPERPARAMETERS)
        for i, entries in enumerate(self.state):
            state.update((f"state.{i}.{key}", np.array(value, copy=True)) for key, value in entries.items())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` (from ``state_dict``) in; UsageError naming the first entry that differs in name or shape."""
        expected = {"steps": ((), np.dtype(np.int64))}
        expected.update((name, ((), np.array(getattr(self, name)).dtype)) for name in self.HYPERPARAMETERS)
        for i, p in enumerate(self.params):  # per-parameter state exists only once a parameter got a gradient
            for key, shaped in self.STATE.items():
                if f"state.{i}.{key}" in state:
                    expected[f"state.{i}.{key}"] = (p.data.shape, p.data.dtype) if shaped else ((), np.dtype(np.int64))
        check_state(state, expected, "optimizer")
        self.steps = int(state["steps"])
        for name in self.HYPERPARAMETERS:
            setattr(self, name, state[name].item())
        self.state = [{} for _ in self.params]
        for i in range(len(self.params)):
            for key, shaped in self.STATE.items():
                if f"state.{i}.{key}" in state:
                    value = state[f"state.{i}.{key}"]
                    self.state[i][key] = np.array(value, copy=True) if shaped else int(value)


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay, as PyTorch defines it."""

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False, weight_decay=0.0):
        super().__init__(params, lr)
        validate.number("momentum", momentum, 0, 1)
        validate.number("weight_decay", weight_decay, 0)
        if nesterov and momentum == 0:
            raise UsageError("nesterov=True needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    HYPERPARAMETERS = ("lr", "momentum", "nesterov", "weight_decay")
    STATE = {"momentum": True}

    def update(self, data, grad, state, scratch=None):
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if self.momentum:
            buffer = state.get("momentum")
            if buffer is None:
                buffer = state["momentum"] = grad.copy()
            else:
                buffer *= self.momentum
                buffer += grad
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        if scratch is not None and self.lr.__class__ is float and grad.dtype == data.dtype:
            data -= np.multiply(self.lr, grad, out=scratch)  # lr * grad (data's dtype, NEP 50), into scratch
        else:  # e.g. a numpy float64 lr on float32 data: the product is float64
            data -= self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; weight_decay is L2 added to the gradient."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise UsageError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        beta1, beta2 = betas
        validate.number("beta1", beta1, 0, 1, high_open=True)
        validate.number("beta2", beta2, 0, 1, high_open=True)
        validate.number("eps", eps, 0, low_open=True)
        validate.number("weight_decay", weight_decay, 0)
        self.beta1, self.beta2, self.eps, self.weight_decay = (
            float(beta1),
            float(beta2),
            float(eps),
            float(weight_decay),
        )

    HYPERPARAMETERS = ("lr", "beta1", "beta2", "eps", "weight_decay")
    STATE = {"m": True, "v": True, "step": False}

    def update(self, data, grad, state, scratch=None):
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if "m" not in state:
            state["m"] = np.zeros_like(data)
            state["v"] = np.zeros_like(data)
        m, v = state["m"], state["v"]
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * (grad * grad)
        state["step"] = t = state.get("step", 0) + 1  # per parameter, as PyTorch: some may skip steps
        step_size = self.lr * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        eps = self.eps * math.sqrt(1 - self.beta2**t)  # eps on the bias-corrected v, as in the paper
        data -= step_size * m / (np.sqrt(v) + eps)


def clip_grad_norm(params, max_norm: float, flat=None) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; return the norm before.

    ``flat``: one array every gradient is a view of (nn.flat), scaled in place at once, with the same result.
    """
    validate.number("max_norm", max_norm, 0, low_open=True)
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    total = global_grad_norm(grads)
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        if flat is not None:
            flat *= scale
            return total
        for p in params:
            if p.grad is not None:
                # Replaced, not scaled in place: whoever kept the unclipped gradient (a probe) still has it.
                p.grad = p.grad * scale
    return total


def squared_norm(a: np.ndarray) -> float:
    """Σ a², accumulated in float64 (float32 squares cannot overflow there; an overflow in float64 is inf).

    Callers that may see exploding values hold np.errstate(over="ignore"): the probes do it once per step.
    """
    flat = a.ravel()
    if flat.dtype != np.float64:
        flat = flat.astype(np.float64)
    return float(np.dot(flat, flat))


def global_grad_norm(grads) -> float:
    """sqrt(Σ ||g||²) over the given arrays, computed in float64."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum of squares means an infinite norm
        total = sum(squared_norm(g) for g in grads)
    return math.sqrt(total) if total >= 0 else math.nan


_REGISTRY = Registry("optimizer")
_REGISTRY.register("sgd", SGD, defaults=keyword_defaults(SGD.__init__, skip=2), description="SGD with momentum")
_REGISTRY.register("adam", Adam, defaults=keyword_defaults(Adam.__init__, skip=2), description="Adam")


def names() -> list[str]:
    """Registered optimizer names."""
    return _REGISTRY.names()


def get(name: str, params, **options) -> Optimizer:
    """Build the optimizer ``name`` (``"sgd"``, ``"adam"``, or ``"sgd:momentum=0.9"``) over ``params``."""
    entry, bound = _REGISTRY.resolve(name, **options)
    return entry.obj(params, **bound)
