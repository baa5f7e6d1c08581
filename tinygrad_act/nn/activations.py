"""The registry of activations: each defined once, used by Value, Tensor, the tests, the probes and the theory.

Built in (``names()``, with the parameters' defaults):

=============  ============================================  ===============================  ======================
name           f(x)                                          source                           parameters
=============  ============================================  ===============================  ======================
identity       x  (alias ``linear``)                         --                               --
sigmoid        1 / (1 + e^-x)                                logistic                         --
tanh           tanh x                                        LeCun et al. 1998                --
relu           max(0, x)                                     Nair & Hinton 2010               --
leaky_relu     x if x > 0 else alpha x                       Maas et al. 2013                 alpha=0.01
elu            x if x > 0 else alpha (e^x - 1)               Clevert et al. 2016              alpha=1
selu           lambda * elu(x; alpha), fixed constants       Klambauer et al. 2017            --
celu           x if x > 0 else alpha (e^(x/alpha) - 1)       Barron 2017                      alpha=1
gelu           x Phi(x) = x (1 + erf(x / sqrt 2)) / 2        Hendrycks & Gimpel 2016          --
gelu_tanh      x sigma(sqrt(8/pi) (x + 0.044715 x^3))        Hendrycks & Gimpel 2016          --
swish          x sigma(beta x)  (alias ``silu``: beta = 1)   Ramachandran et al. 2017         beta=1
softplus       log(1 + e^(beta x)) / beta; x past threshold  Dugas et al. 2001                beta=1, threshold=20
softsign       x / (1 + |x|)                                 Turian et al. 2009               --
hard_tanh      clip(x, min_val, max_val)                     Collobert 2004                   min_val=-1, max_val=1
hard_sigmoid   clip(x / 6 + 1/2, 0, 1)                       Howard et al. 2019 (as PyTorch)  --
mish           x tanh(softplus(x))                           Misra 2019                       --
=============  ============================================  ===============================  ======================

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
from ..engine.graph import Node, enable_grad
from ..engine.kernels import (  # noqa: F401 - erf and erfc are part of this module's public surface
    erf,
    erfc,
    floating,
    normal_cdf,
    normal_pdf,
    relu,
    relu_derivative,
    sech2,
    sigmoid,
    sigmoid_derivative,
)
from ..engine.tensor import Tensor

SATURATION_FRACTION = 0.05
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

# Where the largest |f'| and the saturated tails are searched for: wide enough for every built-in bump.
_SUP_GRID = np.linspace(-20.0, 20.0, 40001)
# Quadrature grid for E[f(z)^2], z ~ N(0, 1): the trapezoid rule, error O(h^2) at kinks, plenty for a gain.
_Z_GRID = np.linspace(-12.0, 12.0, 4801)
_Z_WEIGHTS = np.exp(-0.5 * _Z_GRID**2) / math.sqrt(2 * math.pi) * (_Z_GRID[1] - _Z_GRID[0])


def _conform(out, x: np.ndarray) -> np.ndarray:
    """Give a user function's result the input's dtype and shape (dtype in = dtype out)."""
    out = np.asarray(out)
    if out.shape != x.shape:
        return np.broadcast_to(out, x.shape).astype(x.dtype)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _evaluate(value, params):
    return value(**params) if callable(value) else value


class Activation:
    """A registered activation with bound parameters; callable on Value, Tensor or numpy arrays."""

    def __init__(self, name: str, definition: dict, params: dict):
        self.name = name
        self.params = params
        self._definition = definition
        self._forward = definition["forward"]
        self._derivative = definition["derivative"]
        self._compose = definition["compose"]
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
        return _conform(self._forward(x, **self.params), x)

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """f'(x) elementwise (analytic, or by autograd for compositions), dtype preserved."""
        x = floating(x)
        if self._compose is not None:
            return self._through_tensor(x)[1]
        return _conform(self._derivative(x, **self.params), x)

    def scalar_forward(self, x: float) -> float:
        """f(x) for a Python float (used by Value.apply)."""
        return float(self.forward(np.float64(x)))

    def scalar_derivative(self, x: float) -> float:
        """f'(x) for a Python float (used by Value's backward)."""
        return float(self.derivative(np.float64(x)))

    def _through_tensor(self, x):
        with enable_grad():  # the derivative is needed even under no_grad()
            t = Tensor(x, requires_grad=True)
            y = self._compose(t, **self.params)
            y.backward(np.ones_like(y.data))
        return _conform(y.data, x), _conform(t.grad, x)

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
            return x.apply(self) if self._compose is None else self._compose(x, **self.params)
        return self.forward(x if isinstance(x, np.ndarray) else np.asarray(x))


_REGISTRY = Registry("activation")
_BUILTINS: dict[str, dict] = {}  # name -> definition of the activations this module defines (filled at its end)


def register(
    name: str,
    forward=None,
    derivative=None,
    *,
    compose=None,
    gain=None,
    can_die=False,
    kinks=(),
    check=None,
    description: str = "",
    aliases: tuple = (),
    replace: bool = False,
) -> str:
    """Add an activation: give ``forward`` and ``derivative`` (numpy), or ``compose`` (engine operations).

    Keyword parameters of the functions beyond ``x`` (with defaults) become the activation's parameters,
    settable with ``get(name, param=value)`` and on the command line as ``name:param=value``.
    ``gain``, ``can_die`` and ``kinks`` are values or functions of the parameters; ``gain=None`` means
    1 / sqrt(E[f(z)^2]). ``check(**params)`` may raise ValueError for parameter values that make no sense.
    """
    if (compose is None) == (forward is None or derivative is None):
        raise ValueError("register() takes either forward= and derivative=, or compose=")
    defining = compose if compose is not None else forward
    definition = {
        "forward": forward,
        "derivative": derivative,
        "compose": compose,
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
        _add_method(method_name)
    return name


def exists(name: str) -> bool:
    """True if ``name`` is a registered activation or alias."""
    return name in _REGISTRY


def unregister(name: str) -> None:
    """Remove a registered activation (and its aliases)."""
    entry = _REGISTRY.entry(name)
    _REGISTRY.unregister(name)
    for method_name in (entry.name, *entry.aliases):
        if method_name in _METHODS:
            delattr(Node, method_name)
            _METHODS.discard(method_name)


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


_METHODS: set[str] = set()  # the names _add_method installed on Node


def _add_method(name: str) -> None:
    # Every registered activation is a method of Value and Tensor: Value(0.3).gelu(), Tensor(x).leaky_relu(alpha=0.2).
    # Installed from here, the registry's side, so that the engine never imports the registry; as methods, not as
    # a __getattr__, which slows every attribute access of every node (Value's MLP step by a quarter, Python 3.11).
    if name.startswith("_") or (hasattr(Node, name) and name not in _METHODS):  # never shadow the engine's own
        return

    def method(self, **params):
        return get(name, **params)(self)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"activations.get({name!r}, **params)(self)"
    setattr(Node, name, method)
    _METHODS.add(name)


# ======================================================================================================
# Built-in activations (sigmoid, tanh and relu take the engine's kernels). Every forward and derivative is
# warning-free for all finite inputs in float32/64 (up to |x| of a quarter of the largest float, where no output
# overflows) and keeps the input's dtype.
# ======================================================================================================


def _check_positive(**params):
    for key, value in params.items():
        if not value > 0:
            raise UsageError(f"{key} must be positive, got {value!r}")


register("identity", lambda x: np.positive(x), lambda x: np.ones_like(x), gain=1.0, aliases=("linear",),
         description="f(x) = x (no activation).")  # fmt: skip

register(
    "sigmoid",
    sigmoid,
    sigmoid_derivative,
    gain=1.0,
)


register(
    "tanh",
    np.tanh,
    sech2,
    gain=5.0 / 3.0,
    description="Hyperbolic tangent (LeCun et al. 1998).",
)


register(
    "relu",
    relu,
    relu_derivative,
    gain=math.sqrt(2.0),
    can_die=True,
    kinks=(0.0,),
)


def _leaky_relu(x, alpha=0.01):
    """Leaky ReLU: x for x > 0, alpha x otherwise (Maas et al. 2013); f'(0) = alpha."""
    return np.where(x > 0, x, alpha * np.minimum(x, 0))


register(
    "leaky_relu",
    _leaky_relu,
    lambda x, alpha=0.01: np.where(x > 0, 1, alpha).astype(x.dtype),
    gain=lambda alpha: math.sqrt(2.0 / (1 + alpha**2)),
    can_die=lambda alpha: alpha == 0,
    kinks=(0.0,),
)


def _elu(x, alpha=1.0):
    """Exponential linear unit: x for x > 0, alpha (e^x - 1) otherwise (Clevert et al. 2016)."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


register(
    "elu",
    _elu,
    lambda x, alpha=1.0: np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))),
    can_die=lambda alpha: alpha == 0,
    kinks=(0.0,),  # f' jumps unless alpha = 1; f'' jumps always
)


def _selu(x):
    """Scaled ELU lambda elu(x; alpha), alpha = 1.6733, lambda = 1.0507 (Klambauer et al. 2017)."""
    return SELU_SCALE * _elu(x, SELU_ALPHA)


register(
    "selu",
    _selu,
    lambda x: np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0))),
    gain=0.75,
    kinks=(0.0,),
)


def _celu(x, alpha=1.0):
    """Continuously differentiable ELU: x for x > 0, alpha (e^(x/alpha) - 1) otherwise (Barron 2017)."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha))


register(
    "celu",
    _celu,
    lambda x, alpha=1.0: np.where(x > 0, 1, np.exp(np.minimum(x, 0) / alpha)),
    kinks=(0.0,),  # f'' jumps
    check=_check_positive,
)


def _gelu(x):
    """Gaussian error linear unit x Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016)."""
    return (x * normal_cdf(x)).astype(x.dtype, copy=False)


def _gelu_derivative(x):
    return (normal_cdf(x) + x * normal_pdf(x)).astype(x.dtype, copy=False)


register("gelu", _gelu, _gelu_derivative)

_GELU_TANH_SCALE = math.sqrt(8 / math.pi)  # 1 + tanh(u) = 2 sigma(2u): the sigmoid form has no cancellation


def _gelu_tanh_argument(x):
    x = np.clip(x, -50, 50)  # past |x| = 50 the sigmoid is exactly 0 or 1 already; no x^3 overflow
    return _GELU_TANH_SCALE * (x + 0.044715 * x**3), _GELU_TANH_SCALE * (1 + 3 * 0.044715 * x * x)


def _gelu_tanh(x):
    """GELU's tanh approximation x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (Hendrycks & Gimpel 2016)."""
    return x * sigmoid(_gelu_tanh_argument(x)[0])


def _gelu_tanh_derivative(x):
    u, du = _gelu_tanh_argument(x)
    return sigmoid(u) + x * sigmoid_derivative(u) * du


register("gelu_tanh", _gelu_tanh, _gelu_tanh_derivative)


def _swish(x, beta=1.0):
    """Swish x sigma(beta x) (Ramachandran et al. 2017); beta = 1 is SiLU (Elfwing et al. 2018)."""
    return x * sigmoid(beta * x)


register(
    "swish",
    _swish,
    lambda x, beta=1.0: sigmoid(beta * x) + beta * x * sigmoid_derivative(beta * x),
    aliases=("silu",),
)


def _softplus(x, beta=1.0, threshold=20.0):
    """Softplus log(1 + e^(beta x)) / beta (Dugas et al. 2001); x itself where beta x > threshold, as PyTorch."""
    return np.where(beta * x > threshold, x, np.logaddexp(0, beta * x) / beta)


register(
    "softplus",
    _softplus,
    lambda x, beta=1.0, threshold=20.0: np.where(beta * x > threshold, 1, sigmoid(beta * x)),
    kinks=lambda beta, threshold: (threshold / beta,),
    check=lambda beta, threshold: _check_positive(beta=beta),
)


def _softsign(x):
    """Softsign x / (1 + |x|) (Turian et al. 2009; studied by Glorot & Bengio 2010)."""
    return x / (1 + np.abs(x))


register("softsign", _softsign, lambda x: (1 / (1 + np.abs(x))) ** 2, kinks=(0.0,))  # f'' jumps at 0


def _hard_tanh(x, min_val=-1.0, max_val=1.0):
    """Hard tanh clip(x, min_val, max_val) (Collobert 2004); f' = 0 at the bounds, as PyTorch."""
    return np.clip(x, min_val, max_val)


def _check_hard_tanh(min_val, max_val):
    if not min_val < max_val:
        raise UsageError(f"hard_tanh needs min_val < max_val, got min_val={min_val!r}, max_val={max_val!r}")


register(
    "hard_tanh",
    _hard_tanh,
    lambda x, min_val=-1.0, max_val=1.0: ((x > min_val) & (x < max_val)).astype(x.dtype),
    can_die=True,
    kinks=lambda min_val, max_val: (min_val, max_val),
    check=_check_hard_tanh,
)


def _hard_sigmoid(x):
    """Hard sigmoid clip(x / 6 + 1/2, 0, 1) = relu6(x + 3) / 6 (Howard et al. 2019, as PyTorch); f'(+-3) = 0."""
    return np.clip(x / 6 + 0.5, 0, 1)


register(
    "hard_sigmoid",
    _hard_sigmoid,
    lambda x: ((x > -3) & (x < 3)).astype(x.dtype) / 6,
    can_die=True,
    kinks=(-3.0, 3.0),
)


def _mish(x):
    """Mish x tanh(softplus(x)) (Misra 2019)."""
    return x * np.tanh(np.logaddexp(0, x))


def _mish_derivative(x):
    softplus = np.logaddexp(0, x)
    return np.tanh(softplus) + x * sech2(softplus) * sigmoid(x)


register("mish", _mish, _mish_derivative)


_BUILTINS.update({name: _REGISTRY.entry(name).obj for name in names()})
