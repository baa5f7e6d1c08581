"""The built-in activations, as data: activations.py registers every entry of ``REGISTRATIONS`` when imported.

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

Every forward and derivative here is warning-free for all finite inputs in float32/64 (up to |x| of a quarter of
the largest float, where no output overflows) and keeps the input's dtype; sigmoid, tanh and relu take the
engine's kernels. The conventions (kinks, gain, saturation, can_die) are those of activations.py.
"""

from __future__ import annotations

import math

import numpy as np

from ..common.errors import UsageError
from ..engine.kernels import RELU, SIGMOID, TANH, normal_cdf, normal_pdf, sech2, sigmoid, sigmoid_derivative

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

# The arguments of activations.register(...) for each built-in, in order. Recorded here rather than registered,
# so that this table imports nothing from the registry and the registry imports it: one direction.
REGISTRATIONS: list[tuple[tuple, dict]] = []


def _register(*args, **keywords):
    REGISTRATIONS.append((args, keywords))


def _check_positive(**params):
    for key, value in params.items():
        if not value > 0:
            raise UsageError(f"{key} must be positive, got {value!r}")


_register(
    "identity",
    lambda x: np.positive(x),
    lambda x: np.ones_like(x),
    gain=1.0,
    aliases=("linear",),
    description="f(x) = x (no activation).",
)

# The engine's own three (engine/kernels.py): one definition each, for Node.tanh() and the registry alike.
_register("sigmoid", engine=SIGMOID, gain=1.0)
_register("tanh", engine=TANH, gain=5.0 / 3.0, description="Hyperbolic tangent (LeCun et al. 1998).")
_register("relu", engine=RELU, gain=math.sqrt(2.0), kinks=(0.0,))


def _leaky_relu(x, alpha=0.01):
    """Leaky ReLU: x for x > 0, alpha x otherwise (Maas et al. 2013); f'(0) = alpha."""
    return np.where(x > 0, x, alpha * np.minimum(x, 0))


_register(
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


_register(
    "elu",
    _elu,
    lambda x, alpha=1.0: np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))),
    can_die=lambda alpha: alpha == 0,
    kinks=(0.0,),  # f' jumps unless alpha = 1; f'' jumps always
)


def _selu(x):
    """Scaled ELU lambda elu(x; alpha), alpha = 1.6733, lambda = 1.0507 (Klambauer et al. 2017)."""
    return SELU_SCALE * _elu(x, SELU_ALPHA)


_register(
    "selu",
    _selu,
    lambda x: np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0))),
    gain=0.75,
    kinks=(0.0,),
)


def _celu(x, alpha=1.0):
    """Continuously differentiable ELU: x for x > 0, alpha (e^(x/alpha) - 1) otherwise (Barron 2017)."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha))


_register(
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


_register("gelu", _gelu, _gelu_derivative)

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


_register("gelu_tanh", _gelu_tanh, _gelu_tanh_derivative)


def _swish(x, beta=1.0):
    """Swish x sigma(beta x) (Ramachandran et al. 2017); beta = 1 is SiLU (Elfwing et al. 2018)."""
    return x * sigmoid(beta * x)


_register(
    "swish",
    _swish,
    lambda x, beta=1.0: sigmoid(beta * x) + beta * x * sigmoid_derivative(beta * x),
    aliases=("silu",),
)


def _softplus(x, beta=1.0, threshold=20.0):
    """Softplus log(1 + e^(beta x)) / beta (Dugas et al. 2001); x itself where beta x > threshold, as PyTorch."""
    return np.where(beta * x > threshold, x, np.logaddexp(0, beta * x) / beta)


_register(
    "softplus",
    _softplus,
    lambda x, beta=1.0, threshold=20.0: np.where(beta * x > threshold, 1, sigmoid(beta * x)),
    kinks=lambda beta, threshold: (threshold / beta,),
    check=lambda beta, threshold: _check_positive(beta=beta),
)


def _softsign(x):
    """Softsign x / (1 + |x|) (Turian et al. 2009; studied by Glorot & Bengio 2010)."""
    return x / (1 + np.abs(x))


_register("softsign", _softsign, lambda x: (1 / (1 + np.abs(x))) ** 2, kinks=(0.0,))  # f'' jumps at 0


def _hard_tanh(x, min_val=-1.0, max_val=1.0):
    """Hard tanh clip(x, min_val, max_val) (Collobert 2004); f' = 0 at the bounds, as PyTorch."""
    return np.clip(x, min_val, max_val)


def _check_hard_tanh(min_val, max_val):
    if not min_val < max_val:
        raise UsageError(f"hard_tanh needs min_val < max_val, got min_val={min_val!r}, max_val={max_val!r}")


_register(
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


_register(
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


_register("mish", _mish, _mish_derivative)
