"""The registry of activations: each defined once, used by Value, Tensor, the tests, the probes and the theory.

Built in: ``names()``; nn/builtin_activations.py lists each with its formula, paper and parameters.

Parameters are set by name in code, ``get("leaky_relu", alpha=0.2)``, or in a spec string as on the command line,
``ACT=leaky_relu:alpha=0.2`` (``name:param=value,param=value``). Unknown names and parameters are errors listing
the valid ones.

Conventions (the laboratory's metadata on every activation):

- Kinks (``.kinks``): the points where f' or f'' jumps, so that finite differences are only trusted away
  from them. At a jump of f', f' is the value PyTorch uses: relu'(0) = 0, leaky_relu'(0) = alpha,
  elu'(0) = alpha, selu'(0) = lambda alpha, hard_tanh' = 0 at its bounds, hard_sigmoid' = 0 at +-3.
- ``gain`` (recommended init gain): PyTorch's ``calculate_gain`` where it defines one (identity and sigmoid 1,
  tanh 5/3, relu sqrt 2, leaky_relu sqrt(2 / (1 + alpha^2)), selu 3/4); otherwise He et al.'s second-moment rule
  gain = 1 / sqrt(E[f(z)^2]), z ~ N(0, 1), which keeps E[pre-activation^2] = 1 through the layers (it gives
  sqrt 2 for relu and the leaky_relu formula exactly).
- Saturation: a unit is *saturated* where |f'(x)| is below 5% of the largest |f'| (``saturation_threshold``)
  and stays below it from x outward to -inf or +inf: the flat tails. For a monotone f this is just
  |f'| < 5% of its maximum (sigmoid: |x| > 4.36, tanh: |x| > 2.18, relu: x <= 0); the tail condition keeps
  the isolated zeros of f' of gelu (x = -0.75), swish (-1.28) and mish (-1.19) from counting as flat.
- ``can_die``: f' is exactly 0 on a half-line, so a unit pushed there gets no gradient (relu, hard_tanh, ...).

Register your own::

    import numpy as np
    from tinygrad_act import activations

    # a forward/derivative pair of numpy functions; keyword parameters become settable parameters
    activations.register("sine", forward=lambda x, omega=1.0: np.sin(omega * x),
                         derivative=lambda x, omega=1.0: omega * np.cos(omega * x))

    # a composition of engine operations (autograd derives it)
    activations.register("pswish", compose=lambda x, beta=1.0: x * (x * beta).sigmoid())
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers

import numpy as np

from ..common.errors import UsageError
from ..common.registry import Registry, keyword_defaults
from ..engine import extension
from ..engine.graph import Node, enable_grad
from ..engine.kernels import erf, erfc, floating  # noqa: F401 - erf and erfc are part of this module's public surface
from ..engine.tensor import Tensor
from .builtin_activations import REGISTRATIONS, SELU_ALPHA, SELU_SCALE  # noqa: F401 - SELU_*: public here too

SATURATION_FRACTION = 0.05

# Where the largest |f'| and the saturated tails are searched for: wide enough for every built-in bump.
_SUP_GRID = np.linspace(-20.0, 20.0, 40001)
# Quadrature grid for E[f(z)^2], z ~ N(0, 1): the trapezoid rule, error O(h^2) at kinks, plenty for a gain.
_Z_GRID = np.linspace(-12.0, 12.0, 4801)
_Z_WEIGHTS = np.exp(-0.5 * _Z_GRID**2) / math.sqrt(2 * math.pi) * (_Z_GRID[1] - _Z_GRID[0])


def _conform(name: str, what: str, out, x: np.ndarray) -> np.ndarray:
    """A user function's result in the input's dtype (dtype in = dtype out); one line naming the activation if it
    is not one real number per input (a result of another shape is never broadcast: that would train silently)."""
    try:
        out = np.asarray(out)
    except Exception as error:  # a ragged list ...
        reason = f"{type(error).__name__}: {error}"
        raise UsageError(f"activation {name!r}: its {what} returned no array ({reason})") from None
    if out.dtype.kind not in "biuf":
        raise UsageError(f"activation {name!r}: its {what} returned {out.dtype} values; it must return real numbers")
    if out.shape != x.shape:
        raise UsageError(f"activation {name!r}: its {what} returned shape {out.shape} for input shape {x.shape}; it "
                         "must return one value per input, of the input's shape")  # fmt: skip
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _evaluate(value, params):
    return value(**params) if callable(value) else value


class Activation:
    """A registered activation with bound parameters; callable on Value, Tensor or numpy arrays.

    On Value and Tensor it is one node (``x.apply``), whose backward multiplies by the analytic derivative. The
    engine's own activations (sigmoid, tanh, relu) are applied as the engine's records (``engine``), so
    ``activations.get("relu")(x)`` and ``x.relu()`` are one function; every other activation is its own record:
    ``kernel``, ``derivative``, ``scalar_forward``, ``scalar_derivative``, ``can_die``, ``trusted``, ``in_place``
    (kernels.Elementwise's fields, which the engines read).
    """

    in_place = False  # derivative(x) takes no out= array (the engine's records may)

    def __init__(self, name: str, definition: dict, params: dict):
        self.name = name
        self.params = params
        self._definition = definition
        self._forward = definition["forward"]
        self._derivative = definition["derivative"]
        self._compose = definition["compose"]
        self.engine = definition["engine"]  # a kernels.Elementwise of the engine's, or None
        # The engines' fast path: a built-in (not redefined) keeps shape and dtype and returns fresh arrays, so
        # Tensor.apply may call its forward directly and multiply gradients into its derivative in place.
        self.trusted = _BUILTINS.get(name) is definition and self._compose is None
        if self.trusted:
            self.kernel = functools.partial(self._forward, **params) if params else self._forward
        else:
            self.kernel = self.forward
        self.can_die = bool(_evaluate(definition["can_die"], params))
        self.kinks = tuple(float(k) for k in _evaluate(definition["kinks"], params))
        self.description = definition["description"]

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Activation({self.name}{', ' + params if params else ''})"

    def __reduce__(self):  # pickled by name, so runs in worker processes can receive activations
        return (get, (self.spec,))

    @property
    def spec(self) -> str:
        """The spec string that ``get`` turns back into this activation, e.g. ``"leaky_relu:alpha=0.2"``."""
        params = ",".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}:{params}" if params else self.name

    # ---- numpy view --------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """f(x) elementwise, dtype preserved."""
        x = floating(x)
        if self._compose is not None:
            return self._through_tensor(x)[0]
        out = self._forward(x, **self.params) if self.trusted else self._user_code("forward", self._forward, x)
        return _conform(self.name, "forward", out, x)

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """f'(x) elementwise (analytic, or by autograd for compositions), dtype preserved."""
        x = floating(x)
        if self._compose is not None:
            return self._through_tensor(x)[1]
        out = self._derivative(x, **self.params) if self.trusted else self._user_code("derivative", self._derivative, x)
        return _conform(self.name, "derivative", out, x)

    def _user_code(self, what: str, function, x):
        """A plug-in's function on ``x``: its failure is one line naming the activation."""
        try:
            return function(x, **self.params)
        except UsageError:
            raise
        except Exception as error:
            raise UsageError(f"activation {self.name!r}: its {what} failed: {type(error).__name__}: {error}") from None

    def _composed(self, x):
        """The composition on an engine node ``x``: a node of the same kind and shape, else one line."""
        y = self._user_code("compose", self._compose, x)
        if not isinstance(y, type(x)) or getattr(y, "shape", None) != getattr(x, "shape", None):
            got = f"shape {y.shape}" if isinstance(y, type(x)) else f"a {type(y).__name__}"
            shape = getattr(x, "shape", ())
            raise UsageError(f"activation {self.name!r}: compose returned {got} for a {type(x).__name__} of shape "
                             f"{shape}; it must return engine operations on x, of x's shape")  # fmt: skip
        return y

    def check_results(self) -> None:
        """Try the activation once on a small batch of each dtype before a run uses it: a result of another shape
        or type, or a failure, is one line (UsageError) naming the activation, before anything is written."""
        probe = np.linspace(-3.0, 3.0, 12).reshape(3, 4)
        for dtype in (np.float64, np.float32):
            self.forward(probe.astype(dtype))
            self.derivative(probe.astype(dtype))

    def scalar_forward(self, x: float) -> float:
        """f(x) for a Python float (used by Value.apply)."""
        if self.engine is not None:
            return self.engine.scalar_forward(x)
        return float(self.forward(np.float64(x)))

    def scalar_derivative(self, x: float) -> float:
        """f'(x) for a Python float (used by Value's backward)."""
        if self.engine is not None:
            return self.engine.scalar_derivative(x)
        return float(self.derivative(np.float64(x)))

    def _through_tensor(self, x):
        with enable_grad():  # the derivative is needed even under no_grad()
            t = Tensor(x, requires_grad=True)
            y = self._composed(t)
            y.backward(np.ones_like(y.data))
        return _conform(self.name, "compose", y.data, x), _conform(self.name, "compose", t.grad, x)

    # ---- the laboratory's view (computed once per name and parameters) -----------------------------------
    def _cached(self, key, compute):
        cache = self._definition["cache"]
        key = (key, tuple(sorted(self.params.items())))
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @property
    def gain(self) -> float:
        """The recommended init gain: PyTorch's calculate_gain, else 1 / sqrt(E[f(z)^2]) for z ~ N(0, 1)."""
        given = self._definition["gain"]
        if given is not None:
            return float(_evaluate(given, self.params))
        return self._cached("gain", lambda: float(1 / math.sqrt(np.sum(self.forward(_Z_GRID) ** 2 * _Z_WEIGHTS))))

    @property
    def derivative_sup(self) -> float:
        """The largest |f'(x)|, searched on a fine grid over [-20, 20]."""
        return self._cached("sup", lambda: float(np.max(np.abs(self.derivative(_SUP_GRID)))))

    @property
    def saturation_threshold(self) -> float:
        """|f'(x)| below this counts as flat: 5% of the largest |f'|."""
        return SATURATION_FRACTION * self.derivative_sup

    @property
    def saturation_bounds(self) -> tuple[float, float]:
        """(low, high): the flat tails are x < low and x > high (to the grid's resolution, 0.001)."""

        def bounds():
            active = np.flatnonzero(np.abs(self.derivative(_SUP_GRID)) >= self.saturation_threshold)
            if active.size == 0:
                return (math.inf, -math.inf)
            return (float(_SUP_GRID[active[0]]), float(_SUP_GRID[active[-1]]))

        return self._cached("bounds", bounds)

    def saturated(self, x: np.ndarray, derivative: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask: where the activation is in a flat tail (see the module docstring).

        ``derivative``: f'(x) when the caller has it already (the probes do), to save computing it twice.
        """
        x = floating(x)
        rule = self.__dict__.get("_saturation_rule")
        if rule is None:  # the probe calls this for every layer of every measured step: work the rule out once
            low, high = self.saturation_bounds
            threshold = self.saturation_threshold
            inside = (_SUP_GRID >= low) & (_SUP_GRID <= high)
            # Only where |f'| also dips below the threshold between the tails (gelu, swish, mish) do the tails'
            # bounds have to be checked; elsewhere "|f'| < threshold" alone is the same rule, and exact.
            dips = bool(np.any(np.abs(self.derivative(_SUP_GRID[inside])) < threshold))
            rule = self._saturation_rule = (low, high, threshold, dips)
        low, high, threshold, dips = rule
        slope = self.derivative(x) if derivative is None else derivative
        flat = np.abs(slope) < threshold
        return flat & ((x < low) | (x > high)) if dips else flat

    # ---- engines -----------------------------------------------------------------------------------------
    def __call__(self, x):
        if isinstance(x, Node):  # Value or Tensor: differentiable
            if self._compose is not None:
                return self._composed(x)  # its result's type and shape checked (one line, never broadcast)
            return x.apply(self if self.engine is None else self.engine)
        return self.forward(x if isinstance(x, np.ndarray) else np.asarray(x))


_REGISTRY = Registry("activation")
_BUILTINS: dict[str, dict] = {}  # name -> definition of the built-in activations (filled at the end)


def register(
    name: str,
    forward=None,
    derivative=None,
    *,
    compose=None,
    engine=None,
    gain=None,
    can_die=False,
    kinks=(),
    check=None,
    description: str = "",
    aliases: tuple = (),
    replace: bool = False,
) -> str:
    """Add an activation: give ``forward`` and ``derivative`` (numpy), or ``compose`` (engine operations), or
    ``engine`` (a kernels.Elementwise without parameters: the engine's own function, applied as it is).

    Keyword parameters of the functions beyond ``x`` (with defaults) become the activation's parameters,
    settable with ``get(name, param=value)`` and on the command line as ``name:param=value``.
    ``gain``, ``can_die`` and ``kinks`` are values or functions of the parameters; ``gain=None`` means
    1 / sqrt(E[f(z)^2]). ``check(**params)`` may raise ValueError for parameter values that make no sense.
    """
    if engine is not None:
        forward, derivative, can_die = engine.kernel, engine.derivative, engine.can_die
    if (compose is None) == (forward is None or derivative is None):
        raise ValueError("register() takes either forward= and derivative=, or compose=")
    defining = compose if compose is not None else forward
    definition = {
        "forward": forward,
        "derivative": derivative,
        "compose": compose,
        "engine": engine,
        "gain": gain,
        "can_die": can_die,
        "kinks": kinks,
        "check": check,
        "description": description or (inspect.getdoc(defining) or "").split("\n")[0],
        "cache": {},
    }
    _REGISTRY.register(
        name,
        definition,
        defaults=keyword_defaults(defining),
        aliases=aliases,
        description=definition["description"],
        replace=replace,
    )
    for method_name in (name, *aliases):
        extension.add_method(method_name, _method(method_name))
    return name


def exists(name: str) -> bool:
    """True if ``name`` is a registered activation or alias."""
    return name in _REGISTRY


def unregister(name: str) -> None:
    """Remove a registered activation (and its aliases)."""
    entry = _REGISTRY.entry(name)
    _REGISTRY.unregister(name)
    for method_name in (entry.name, *entry.aliases):
        extension.remove_method(method_name)


def names() -> list[str]:
    """Every registered activation name (aliases excluded), sorted."""
    return _REGISTRY.names()


def describe() -> dict[str, str]:
    """Each registered name with its one-line description (for ``python -m tinygrad_act list``)."""
    return {name: _REGISTRY.entry(name).description for name in names()}


def get(name, **params) -> Activation:
    """The activation ``name`` with ``params`` bound; ``name`` may also be ``"leaky_relu:alpha=0.2"``."""
    if isinstance(name, Activation):
        return name if not params else get(name.name, **{**name.params, **params})
    entry, bound = _REGISTRY.resolve(name, **params)
    for key, default in entry.defaults.items():
        value = bound[key]
        if isinstance(default, numbers.Real) and not isinstance(default, bool):
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                raise UsageError(f"activation {entry.name!r}: {key} must be a finite number, got {value!r}")
            bound[key] = float(value) if isinstance(default, float) else value
    if entry.obj["check"] is not None:
        entry.obj["check"](**bound)
    return Activation(entry.name, entry.obj, bound)


def _method(name: str):
    """``node.name(**params)`` = ``get(name, **params)(node)``: every activation is a method of Value and Tensor,
    installed through the engine's extension point (engine/extension.py), which never imports this registry."""

    def method(self, **params):
        return get(name, **params)(self)

    method.__doc__ = f"activations.get({name!r}, **params)(self)"
    return method


for _args, _keywords in REGISTRATIONS:
    register(*_args, **_keywords)
_BUILTINS.update({name: _REGISTRY.entry(name).obj for name in names()})
