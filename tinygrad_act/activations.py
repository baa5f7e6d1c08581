"""The registry of activations: each defined once, used by Value, Tensor, the tests, the probes and the theory.

An activation is either
- a pair of numpy functions ``forward(x, **params)`` and ``derivative(x, **params)`` (the engines apply it
  as one node whose backward multiplies by the analytic derivative), or
- a composition of engine operations ``compose(x, **params)`` on a Value or Tensor (its derivative comes
  from autograd; its numpy forward and derivative are computed through a Tensor).

Register your own::

    import numpy as np
    from tinygrad_act import activations

    # a forward/derivative pair of numpy functions
    activations.register("cube", forward=lambda x: x**3, derivative=lambda x: 3 * x**2)

    # a composition of engine operations (autograd derives it)
    activations.register("mish2", compose=lambda x: x * x.softplus().tanh())

Saturation (used by the runner's probe): a unit is *saturated* where |f'(x)| is below 5% of the largest
|f'| the activation attains (``saturation_threshold``). For sigmoid that is |x| > 4.36; for ReLU x < 0.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from .registry import Registry, keyword_defaults

SATURATION_FRACTION = 0.05

# Where the largest |f'| is searched for (derivative_sup): wide enough for every built-in kink and bump.
_SUP_GRID = np.linspace(-20.0, 20.0, 40001)


class Activation:
    """A registered activation with bound parameters; callable on Value, Tensor or numpy arrays."""

    def __init__(self, name: str, spec: dict, params: dict):
        self.name = name
        self.params = params
        self._spec = spec
        self._forward = spec["forward"]
        self._derivative = spec["derivative"]
        self._compose = spec["compose"]
        from_output = spec["derivative_from_output"]
        self.derivative_from_output = None if from_output is None else (lambda y: from_output(y, **params))
        gain = spec["gain"]
        self.gain = float(gain(**params) if callable(gain) else gain)
        self.can_die = bool(spec["can_die"])
        self.description = spec["description"]
        self._sup = None

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Activation({self.name}{', ' + params if params else ''})"

    # ---- numpy view --------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """f(x) elementwise, dtype preserved."""
        if self._compose is not None:
            return self._through_tensor(x)[0]
        return self._forward(x, **self.params)

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """f'(x) elementwise (analytic, or by autograd for compositions), dtype preserved."""
        if self._compose is not None:
            return self._through_tensor(x)[1]
        return self._derivative(x, **self.params)

    def scalar_forward(self, x: float) -> float:
        return float(self.forward(np.float64(x)))

    def scalar_derivative(self, x: float) -> float:
        return float(self.derivative(np.float64(x)))

    def _through_tensor(self, x):
        from .tensor import Tensor

        x = np.asarray(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        t = Tensor(x.astype(dtype, copy=False), requires_grad=True)
        y = self._compose(t, **self.params)
        y.backward(np.ones_like(y.data))
        return y.data, t.grad

    # ---- the laboratory's view ---------------------------------------------------------------------------
    @property
    def derivative_sup(self) -> float:
        """The largest |f'(x)|, searched on a fine grid over [-20, 20]."""
        if self._sup is None:
            self._sup = float(np.max(np.abs(self.derivative(_SUP_GRID))))
        return self._sup

    @property
    def saturation_threshold(self) -> float:
        """|f'(x)| below this counts as saturated: 5% of the largest |f'|."""
        return SATURATION_FRACTION * self.derivative_sup

    def saturated(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask: where the activation is in its flat region (see the module docstring)."""
        return np.abs(self.derivative(x)) < self.saturation_threshold

    # ---- engines -----------------------------------------------------------------------------------------
    def __call__(self, x):
        if isinstance(x, np.ndarray) or np.isscalar(x):
            return self.forward(np.asarray(x))
        if self._compose is not None:
            return self._compose(x, **self.params)
        return x.apply(self)


_REGISTRY = Registry("activation")


def register(
    name: str,
    forward=None,
    derivative=None,
    *,
    compose=None,
    derivative_from_output=None,
    gain=1.0,
    can_die: bool = False,
    description: str = "",
    aliases: tuple = (),
    replace: bool = False,
) -> str:
    """Add an activation: give ``forward`` and ``derivative`` (numpy), or ``compose`` (engine operations).

    Keyword parameters of the functions beyond ``x`` (with defaults) become the activation's parameters,
    settable with ``get(name, param=value)`` and on the command line as ``name:param=value``.
    ``gain`` is a number or a function of the parameters (the recommended init gain).
    """
    if (compose is None) == (forward is None or derivative is None):
        raise ValueError("register() takes either forward= and derivative=, or compose=")
    defining = compose if compose is not None else forward
    spec = {
        "forward": forward,
        "derivative": derivative,
        "compose": compose,
        "derivative_from_output": derivative_from_output,
        "gain": gain,
        "can_die": can_die,
        "description": description or (inspect.getdoc(defining) or "").split("\n")[0],
    }
    _REGISTRY.register(
        name,
        spec,
        defaults=keyword_defaults(defining),
        aliases=aliases,
        description=spec["description"],
        replace=replace,
    )
    return name


def names() -> list[str]:
    """Every registered activation name (aliases excluded), sorted."""
    return _REGISTRY.names()


def get(name, **params) -> Activation:
    """The activation ``name`` with ``params`` bound; ``name`` may also be ``"leaky_relu:alpha=0.2"``."""
    if isinstance(name, Activation):
        return name if not params else get(name.name, **{**name.params, **params})
    entry, bound = _REGISTRY.resolve(name, **params)
    return Activation(entry.name, entry.obj, bound)


# ======================================================================================================
# Built-in activations. Every forward is stable and warning-free for all finite inputs in float32/64.
# ======================================================================================================


def _sigmoid(x):
    """Logistic sigmoid 1 / (1 + e^-x), computed from e^-|x| so that it never overflows."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


register(
    "sigmoid",
    _sigmoid,
    lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
    derivative_from_output=lambda y: y * (1 - y),
    gain=1.0,
)

register(
    "tanh",
    np.tanh,
    lambda x: 1 - np.tanh(x) ** 2,
    derivative_from_output=lambda y: 1 - y * y,
    gain=5.0 / 3.0,
    description="Hyperbolic tangent.",
)


def _relu(x):
    """Rectified linear unit max(0, x); f'(0) is taken as 0, as in PyTorch."""
    return np.maximum(x, 0)


register("relu", _relu, lambda x: (x > 0).astype(x.dtype), gain=math.sqrt(2.0), can_die=True)
