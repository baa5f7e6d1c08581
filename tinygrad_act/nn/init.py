"""The registry of weight initializers: ``get(name, **params)(fan_in, fan_out, rng) -> W`` of shape (fan_in, fan_out).

A layer computes ``x @ W + b``, so W's rows are its inputs. Initializers draw only from the
``numpy.random.Generator`` they are given and return float64 arrays (the layer casts to its dtype).

Built in (aliases in parentheses):

- ``xavier_uniform`` (``glorot_uniform``): U[-a, a], a = gain sqrt(6 / (fan_in + fan_out)); Glorot & Bengio 2010
- ``xavier_normal`` (``glorot_normal``): N(0, gain^2 2 / (fan_in + fan_out)); Glorot & Bengio 2010
- ``he_uniform`` (``kaiming_uniform``): U[-a, a], a = gain sqrt(3 / fan); He et al. 2015
- ``he_normal`` (``kaiming_normal``): N(0, gain^2 / fan); He et al. 2015
- ``lecun_uniform``: U[-a, a], a = sqrt(3 / fan_in); LeCun et al. 1998
- ``lecun_normal``: N(0, 1 / fan_in); LeCun et al. 1998, with SELU Klambauer et al. 2017
- ``orthogonal``: gain Q, Q Haar-random with orthonormal columns (rows if fan_in < fan_out); Saxe et al. 2014
- ``standard``: U[-1/sqrt(fan_in), 1/sqrt(fan_in)]; the baseline of Glorot & Bengio 2010, eq. (1)
- ``normal``: N(0, std^2), std = 0.05; ``uniform``: U[-a, a], a = 0.05 (small random weights, Keras' defaults)
- ``zeros``: all zeros (for biases)
- ``identity``: gain I (the identity; ones on the main diagonal when not square); Le, Jaitly & Hinton 2015 (IRNN)
- ``auto``: the initializer ``recommended`` for the ``activation`` parameter (He / LeCun / Xavier)

Every variance has the form Var(W) = gain^2 / fan, fan being fan_in, fan_out or their mean (Xavier);
uniform draws use a = sqrt(3 Var). The gain-using initializers
(xavier_*, he_*, orthogonal) take ``gain`` (a number) or ``activation`` (a name or spec such as
``"leaky_relu:alpha=0.2"``, whose ``.gain`` is used); ``gain`` wins if both are given. Without either,
xavier and orthogonal use gain 1 and he uses ReLU's sqrt 2 (``activation="relu"``). he_* take
``mode="fan_in"`` (preserves the forward signal) or ``"fan_out"`` (preserves the backward gradient).

From the command line: ``INIT=he_normal:mode=fan_out``, ``INIT=xavier_normal:gain=1.5``,
``INIT=he_normal:activation=leaky_relu:alpha=0.2`` (one activation parameter there: commas separate
initializer parameters).
"""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from ..common import validate
from ..common.errors import UsageError
from ..common.registry import Registry, keyword_defaults, parse_spec
from . import activations


class Initializer:
    """A registered initializer with bound parameters: ``init(fan_in, fan_out, rng) -> np.ndarray``.

    ``init.variance(fan_in, fan_out)`` is the variance of the entries it draws (the mean-field theory asks it).
    """

    def __init__(self, name: str, params: dict, draw, trusted: bool = False):
        self.name = name
        self.params = params
        self._draw = draw
        self.trusted = trusted  # a built-in: its matrix is right by construction, not checked on every call

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Initializer({self.name}{', ' + params if params else ''})"

    def __reduce__(self):  # pickled by name and parameters, like activations
        return (_rebuild, (self.name, self.params))

    @property
    def spec(self) -> str:
        """The spec string ``get`` turns back into this initializer: ``he_normal:mode=fan_out`` (defaults left out)."""
        defaults = _REGISTRY.entry(self.name).defaults
        changed = [f"{k}={v}" for k, v in self.params.items() if defaults.get(k, v) != v or k not in defaults]
        return f"{self.name}:{','.join(changed)}" if changed else self.name

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"initializers need rng=numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}")
        fan_in, fan_out = validate.integer("fan_in", fan_in, 1), validate.integer("fan_out", fan_out, 1)
        if self.trusted:
            return self._draw(fan_in, fan_out, rng)
        return _checked(self.name, _user_code(self.name, self._draw, fan_in, fan_out, rng), (fan_in, fan_out))

    def variance(self, fan_in: int, fan_out: int) -> float:
        """Var(W) of the entries this initializer draws for a (fan_in, fan_out) matrix (its second moment).

        Known when the factory's ``draw`` declares it (``draw.variance``, as every built-in does); ValueError
        otherwise, naming the initializer.
        """
        variance = getattr(self._draw, "variance", None)
        if variance is None:
            raise ValueError(f"initializer {self.name!r} does not declare the variance of its weights (draw.variance)")
        return float(variance(int(fan_in), int(fan_out)))


def _rebuild(name, params):
    return get(name, **params)


def _user_code(name: str, function, *args, **kwargs):
    """``function(*args, **kwargs)`` of a registered plug-in: its failure is one line naming the initializer."""
    try:
        return function(*args, **kwargs)
    except UsageError:
        raise
    except Exception as error:
        raise UsageError(f"initializer {name!r} failed: {type(error).__name__}: {error}") from None


def _checked(name: str, weights, shape: tuple) -> np.ndarray:
    """A plug-in's matrix as a float array of ``shape`` (fan_in, fan_out) with finite entries, or one line."""
    try:
        array = np.asarray(weights)
    except Exception as error:  # a ragged list ...
        raise UsageError(f"initializer {name!r} returned no matrix ({type(error).__name__}: {error})") from None
    if array.dtype.kind not in "biuf":
        raise UsageError(f"initializer {name!r} returned {array.dtype} values for a {shape[0]} x {shape[1]} matrix; "
                         "it must return real numbers")  # fmt: skip
    if array.shape != shape:
        raise UsageError(f"initializer {name!r} returned shape {array.shape} for fan_in {shape[0]}, fan_out "
                         f"{shape[1]}; it must return (fan_in, fan_out) = {shape}")  # fmt: skip
    if not np.all(np.isfinite(array)):
        raise UsageError(f"initializer {name!r} returned a matrix with non-finite entries")
    return array.astype(np.float64, copy=False)


_REGISTRY = Registry("initializer")


def register(name: str, factory, *, aliases: tuple = (), description: str = "", replace: bool = False) -> str:
    """Add an initializer, in either of two ways (as activations register):

    - a draw function ``draw(fan_in, fan_out, rng, **params) -> W`` of shape (fan_in, fan_out), its keyword
      parameters (with defaults) settable as ``name:param=value``;
    - a factory ``factory(**params)`` returning ``draw(fan_in, fan_out, rng)``; it may raise UsageError (see
      common/validate.py) for parameters that make no sense, and a ``draw.variance(fan_in, fan_out)`` attribute
      (see ``_drawing``) tells ``Initializer.variance``, hence the theory, what Var(W) it draws.

    What a plug-in's draw returns is checked on every call: a matrix of real, finite numbers of shape
    (fan_in, fan_out), else one line naming the initializer.
    """
    doc = description or (factory.__doc__ or "").strip().split("\n")[0]
    if _draws(factory):
        defaults = keyword_defaults(factory, skip=3)
        factory = _draw_factory(factory)
    else:
        defaults = keyword_defaults(factory, skip=0)
    _REGISTRY.register(name, factory, defaults=defaults, aliases=aliases, description=doc,
                       replace=replace)  # fmt: skip
    return name


def _draws(function) -> bool:
    """Whether ``function`` is a draw function (fan_in, fan_out, rng, ...) rather than a factory of one."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty]
    return len(required) >= 3


def _draw_factory(draw):
    """The factory of a draw function: parameters -> ``draw`` with them bound."""

    def factory(**params):
        return functools.partial(draw, **params) if params else draw

    return factory


def names() -> list[str]:
    """Every registered initializer name (aliases excluded), sorted."""
    return _REGISTRY.names()


def describe() -> dict[str, str]:
    """Each registered name with its one-line description (for ``python -m tinygrad_act list``)."""
    return {name: _REGISTRY.entry(name).description for name in names()}


def get(name, **params) -> Initializer:
    """The initializer ``name`` with ``params`` bound; ``name`` may be a spec such as ``"he_normal:mode=fan_out"``.

    ``get("auto", activation=...)`` returns the initializer ``recommended(activation)``.
    """
    if isinstance(name, Initializer):
        return name if not params else get(name.name, **{**name.params, **params})
    entry, bound = _REGISTRY.resolve(name, **params)
    if isinstance(bound.get("activation"), activations.Activation):
        bound["activation"] = bound["activation"].spec  # a plain string: readable, JSON-friendly
    if entry.name == "auto":
        if bound["activation"] is None:
            raise ValueError("initializer 'auto' needs an activation, e.g. init.get('auto', activation='relu')")
        chosen = recommended(bound["activation"])
        return get(chosen, **({"activation": bound["activation"]} if chosen == "he_normal" else {}))
    if _BUILTINS.get(entry.name) is entry.obj:
        return Initializer(entry.name, bound, entry.obj(**bound), trusted=True)
    return Initializer(entry.name, bound, _user_code(entry.name, entry.obj, **bound))


def for_activation(spec, activation) -> Initializer:
    """``get(spec)``, with ``activation`` bound when ``spec`` is ``"auto"`` without an activation of its own."""
    if isinstance(spec, Initializer):
        return spec
    name, inline = parse_spec(spec)
    if _REGISTRY.canonical(name) == "auto" and inline.get("activation") is None:
        inline["activation"] = activation
    return get(name, **inline)


def recommended(activation) -> str:
    """The initializer name recommended for ``activation`` (a name, spec or Activation).

    selu -> lecun_normal (Klambauer et al. 2017: self-normalization needs Var(W) = 1 / fan_in);
    rectifier-like -> he_normal (He et al. 2015), used with the activation's gain by ``get("auto")``;
    anything else (tanh, sigmoid, softsign, hard_tanh, identity, ...) -> xavier_normal with gain 1
    (Glorot & Bengio 2010). Rectifier-like means growing on the right at least half as fast as x and on the
    left at most half as fast: f(20) >= 10 and f(-20) >= -10 (relu, leaky_relu, elu, celu, gelu, swish,
    softplus, mish).
    """
    act = activations.get(activation)
    if act.name == "selu":
        return "lecun_normal"
    left, right = act.forward(np.array([-20.0, 20.0]))
    return "he_normal" if right >= 10 and left >= -10 else "xavier_normal"


# ---- parameter checks (UsageError from common/validate.py: they are values a user writes in INIT=...) --
def _gain(gain, activation) -> float:
    if gain is not None:
        return validate.number("gain", gain, 0, low_open=True)
    return 1.0 if activation is None else activations.get(activation).gain


def _fan(mode):
    fans = {"fan_in": lambda fan_in, fan_out: fan_in, "fan_out": lambda fan_in, fan_out: fan_out}
    return fans[validate.choice("mode", mode, tuple(fans))]


def _drawing(draw, variance):
    """``draw`` with its variance attached: ``draw.variance(fan_in, fan_out) = Var(W)``."""
    draw.variance = variance
    return draw


def _uniform_with_variance(variance):
    """U[-a, a] with a = sqrt(3 Var), given Var as a function of (fan_in, fan_out)."""

    def draw(fan_in, fan_out, rng):
        a = math.sqrt(3.0 * variance(fan_in, fan_out))
        return rng.uniform(-a, a, size=(fan_in, fan_out))

    return _drawing(draw, variance)


def _normal_with_variance(variance):
    """N(0, Var), given Var as a function of (fan_in, fan_out)."""

    def draw(fan_in, fan_out, rng):
        return rng.normal(0.0, math.sqrt(variance(fan_in, fan_out)), size=(fan_in, fan_out))

    return _drawing(draw, variance)


# ---- built-ins (factories: parameters -> draw) --------------------------------------------------------
def _xavier_uniform(gain=None, activation=None):
    """Xavier/Glorot uniform U[-a, a], a = gain sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    g2 = _gain(gain, activation) ** 2
    return _uniform_with_variance(lambda fan_in, fan_out: g2 * 2.0 / (fan_in + fan_out))


def _xavier_normal(gain=None, activation=None):
    """Xavier/Glorot normal N(0, gain^2 2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    g2 = _gain(gain, activation) ** 2
    return _normal_with_variance(lambda fan_in, fan_out: g2 * 2.0 / (fan_in + fan_out))


def _he_uniform(mode="fan_in", gain=None, activation="relu"):
    """He/Kaiming uniform U[-a, a], a = gain sqrt(3 / fan), Var = gain^2 / fan (He et al. 2015)."""
    g2, fan = _gain(gain, activation) ** 2, _fan(mode)
    return _uniform_with_variance(lambda fan_in, fan_out: g2 / fan(fan_in, fan_out))


def _he_normal(mode="fan_in", gain=None, activation="relu"):
    """He/Kaiming normal N(0, gain^2 / fan); relu's gain sqrt 2 gives Var = 2 / fan_in (He et al. 2015)."""
    g2, fan = _gain(gain, activation) ** 2, _fan(mode)
    return _normal_with_variance(lambda fan_in, fan_out: g2 / fan(fan_in, fan_out))


def _lecun_uniform():
    """LeCun uniform U[-a, a], a = sqrt(3 / fan_in), Var = 1 / fan_in (LeCun et al. 1998)."""
    return _uniform_with_variance(lambda fan_in, fan_out: 1.0 / fan_in)


def _lecun_normal():
    """LeCun normal N(0, 1 / fan_in) (LeCun et al. 1998; with SELU: Klambauer et al. 2017)."""
    return _normal_with_variance(lambda fan_in, fan_out: 1.0 / fan_in)


def _orthogonal(gain=None, activation=None):
    """Orthogonal gain Q with Q^T Q = I (or Q Q^T = I when fan_in < fan_out), Haar-random (Saxe et al. 2014)."""
    g = _gain(gain, activation)

    def draw(fan_in, fan_out, rng):
        q, r = np.linalg.qr(rng.standard_normal((max(fan_in, fan_out), min(fan_in, fan_out))))
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # fixes QR's sign choice so Q is uniform (Mezzadri 2007)
        return g * (q if fan_in >= fan_out else q.T)

    # Orthonormal columns (fan_in >= fan_out) have entries of variance 1 / fan_in, orthonormal rows 1 / fan_out.
    return _drawing(draw, lambda fan_in, fan_out: g * g / max(fan_in, fan_out))


def _standard():
    """Glorot & Bengio 2010's baseline ("standard") U[-1/sqrt(fan_in), 1/sqrt(fan_in)], Var = 1 / (3 fan_in)."""
    return _uniform_with_variance(lambda fan_in, fan_out: 1.0 / (3.0 * fan_in))


def _normal(std=0.05):
    """Small random weights N(0, std^2) (std = 0.05, Keras' default), independent of the fans."""
    std = validate.number("std", std, 0)
    return _drawing(lambda fan_in, fan_out, rng: rng.normal(0.0, std, size=(fan_in, fan_out)), lambda *fans: std**2)


def _uniform(a=0.05):
    """Small random weights U[-a, a] (a = 0.05, Keras' default), independent of the fans."""
    a = validate.number("a", a, 0)
    return _drawing(lambda fan_in, fan_out, rng: rng.uniform(-a, a, size=(fan_in, fan_out)), lambda *fans: a**2 / 3)


def _zeros():
    """All zeros (for biases; as weights every unit would stay identical)."""
    return _drawing(lambda fan_in, fan_out, rng: np.zeros((fan_in, fan_out)), lambda *fans: 0.0)


def _identity(gain=1.0):
    """Identity gain I (ones on the main diagonal when not square): IRNN's W_hh (Le, Jaitly & Hinton 2015)."""
    g = validate.number("gain", gain)

    def draw(fan_in, fan_out, rng):
        return g * np.eye(fan_in, fan_out)

    # min(fan_in, fan_out) entries equal to gain: their second moment over the whole matrix
    return _drawing(draw, lambda fan_in, fan_out: g * g * min(fan_in, fan_out) / (fan_in * fan_out))


register("xavier_uniform", _xavier_uniform, aliases=("glorot_uniform",))
register("xavier_normal", _xavier_normal, aliases=("glorot_normal",))
register("he_uniform", _he_uniform, aliases=("kaiming_uniform",))
register("he_normal", _he_normal, aliases=("kaiming_normal",))
register("lecun_uniform", _lecun_uniform)
register("lecun_normal", _lecun_normal)
register("orthogonal", _orthogonal)
register("standard", _standard)
register("normal", _normal)
register("uniform", _uniform)
register("zeros", _zeros)
register("identity", _identity)
# get() resolves "auto" to the recommended initializer before any factory is called: it only needs its parameter.
_AUTO = "The initializer recommended for the activation: He (ReLU family), LeCun (SELU), else Xavier."
_REGISTRY.register("auto", None, defaults={"activation": None}, description=_AUTO)
_BUILTINS = {name: _REGISTRY.entry(name).obj for name in names()}
