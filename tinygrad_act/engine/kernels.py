"""Elementwise numerics in plain numpy, each formula written once: the engines and the activations use them.

Every function keeps the input's dtype and is warning-free for every finite input. Derivatives are computed
from the input, never from the output: y (1 - y) and 1 - y^2 are 0 once y rounds to 1, though
sigmoid'(40) = 4.2e-18 and, in float32, tanh'(10) = 8.2e-9. The ``*_scalar`` twins are the same formulas on
one Python float, for Value (numpy on a single number costs a microsecond, math a few tens of nanoseconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.polynomial import chebyshev


def floating(x, dtype=None) -> np.ndarray:
    """``x`` as an array of ``dtype`` (no copy if it is one); without a dtype, floats stay and the rest is float64.

    Complex values are refused (TypeError): every function here, and the engines, are real functions.
    """
    array = np.asarray(x)
    if array.dtype.kind == "c" or (dtype is not None and np.dtype(dtype).kind == "c"):
        raise TypeError(f"complex values are not supported (the engine differentiates real functions): {x!r}")
    if dtype is not None:
        return array.astype(dtype, copy=False)
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def unbroadcast(g, like: np.ndarray) -> np.ndarray:
    """``g`` summed over the axes along which ``like`` was broadcast to g's shape, cast to like's dtype: the
    gradient that belongs to ``like`` (the engine's one place for it, as in HIPS autograd)."""
    shape = like.shape
    if g.__class__ is not np.ndarray:  # numpy returns scalars for products of 0-d arrays
        g = np.asarray(g)
    if g.shape != shape:
        if g.ndim > len(shape):
            g = g.sum(axis=tuple(range(g.ndim - len(shape))))
        if g.shape != shape:  # (the usual bias's gradient is done here: no search for axes)
            axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
            g = g.sum(axis=axes, keepdims=True) if axes else g
    return g if g.dtype == like.dtype else g.astype(like.dtype)


def widens(shape: tuple, dtype, b: np.ndarray) -> bool:
    """True when ``out += b`` would differ from ``out + b`` for an array ``out`` of ``shape`` and ``dtype``: ``b``
    broadcasts it to a larger shape or upcasts it."""
    if b.shape == shape[-1:] and b.dtype == dtype:  # the usual bias of a linear layer: no numpy call
        return False
    return np.broadcast_shapes(shape, b.shape) != shape or np.result_type(dtype, b.dtype) != dtype


# ---- sigmoid, tanh, relu: the engines' built-in activations ------------------------------------------------
def sigmoid(x, out=None):
    """Logistic sigmoid 1 / (1 + e^-x) = (1 if x >= 0 else e^-|x|) / (1 + e^-|x|): e^-|x| never overflows."""
    z = np.abs(x, out=np.empty_like(x))
    np.exp(np.negative(z, out=z), out=z)
    d = np.add(z, 1, out=np.empty_like(z) if out is None else out)
    # the numerator without np.where (twice the cost): max(e^-|x|, 1) = 1 where x >= 0, max(e^-|x|, 0) elsewhere
    return np.divide(np.maximum(z, x >= 0, out=z), d, out=d)


# The two derivatives run in every backward: in place, in arrays of their own (out= needs arrays, also for 0-d
# input), so that Tensor's backward may multiply the gradient into them; a captured step passes its own
# ``out`` and ``scratch`` arrays (x's shape and dtype) and allocates nothing.
# Measured and not taken (issue 20): tanh' = 2 / (1 + cosh 2x) and sigma' = 0.5 / (1 + cosh x), 4 and 3 passes
# with numpy's SIMD cosh (AVX-512 here), are more accurate (2.6 against 3.4-3.6 ulp in float32, 1.6 against
# 2.6-3.8 in float64 on tests/test_activation_tails.py's grid) and 1.2-1.6x faster alone, but made a 20x64 tanh
# or sigmoid training step only 2-6% faster (eager and captured; 0-5% at 20x256): under the 10% that would
# justify changing the last bits of every logged derivative (by up to 5 ulp). 1 / cosh^2 is cheaper still but
# reaches 6 ulp in float32 (cosh's 2 ulp, doubled by the square).
def sigmoid_derivative(x, out=None, scratch=None):
    """sigma(x)(1 - sigma(x)) = e^-|x| / (1 + e^-|x|)^2, exact to the last bit in both tails."""
    z = np.abs(x, out=np.empty_like(x) if out is None else out)
    np.exp(np.negative(z, out=z), out=z)
    d = np.add(z, 1, out=np.empty_like(z) if scratch is None else scratch)
    return np.divide(z, np.multiply(d, d, out=d), out=z)


def sech2(x, out=None, scratch=None):
    """tanh'(x) = 1 - tanh^2 x = 4 e^-2|x| / (1 + e^-2|x|)^2: no cancellation in the tails, no overflow."""
    z = np.abs(x, out=np.empty_like(x) if out is None else out)
    # -2|x| overflows to -inf only for |x| past half the largest float, and e^-inf = 0 as e^(-2|x|) is from
    # |x| = 52 (float32) or 373 (float64) on: ignoring that overflow costs less than clipping |x| (a slow pass)
    with np.errstate(over="ignore"):
        np.exp(np.multiply(z, -2, out=z), out=z)
    d = np.add(z, 1, out=np.empty_like(z) if scratch is None else scratch)
    return np.divide(np.multiply(z, 4, out=z), np.multiply(d, d, out=d), out=z)


def relu(x):
    """Rectified linear unit max(0, x) (Nair & Hinton 2010); f'(0) = 0, as in PyTorch (and relu(nan) = nan)."""
    return np.maximum(x, 0)


def relu_derivative(x):
    """0 where x <= 0 (also at 0), else 1: at nan the gradient passes, as PyTorch's threshold_backward."""
    return np.logical_not(x <= 0).astype(x.dtype)


def sigmoid_scalar(x: float) -> float:
    """``sigmoid`` for one float."""
    z = math.exp(-abs(x))
    return 1.0 / (1.0 + z) if x >= 0 else z / (1.0 + z)


def sigmoid_derivative_scalar(x: float) -> float:
    """``sigmoid_derivative`` for one float."""
    z = math.exp(-abs(x))
    return z / ((1.0 + z) * (1.0 + z))


def sech2_scalar(x: float) -> float:
    """``sech2`` for one float."""
    z = math.exp(-2.0 * abs(x))
    return 4.0 * z / ((1.0 + z) * (1.0 + z))


# ---- IEEE 754 on Python floats, which raise where numpy returns inf or nan (Value's arithmetic) -------------
def _odd_integer(p: float) -> bool:
    return p.is_integer() and p % 2 == 1


def power_scalar(x: float, p: float) -> float:
    """x ** p as numpy computes it: 0 ** -1 = inf (-0.0 ** -1 = -inf), overflow to ±inf, (-8) ** (1/3) = nan."""
    try:
        y = x**p
    except ZeroDivisionError:  # 0 ** negative: inf, with the zero's sign for an odd integer exponent
        return math.copysign(math.inf, x) if _odd_integer(p) else math.inf
    except OverflowError:
        return -math.inf if x < 0 and _odd_integer(p) else math.inf
    return math.nan if isinstance(y, complex) else y  # a negative base, a fractional exponent


def exp_scalar(x: float) -> float:
    """e^x; inf past x = 709.78 (math.exp raises)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def log_scalar(x: float) -> float:
    """ln x; -inf at 0, nan below 0 and at nan (math.log raises)."""
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def divide_scalar(x: float, y: float) -> float:
    """x / y; ±inf or nan at y = 0, the sign of the zero counting, as numpy (Python raises)."""
    try:
        return x / y
    except ZeroDivisionError:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)


class Elementwise(NamedTuple):
    """An elementwise function as ``Tensor.apply`` and ``Value.apply`` take it (activations.Activation has one).

    ``kernel``/``derivative`` work on arrays, ``scalar_*`` on floats; ``can_die``: f' = 0 on a flat region,
    where the gradient is exactly 0 even times inf or nan; ``trusted``: the derivative returns fresh arrays of
    the input's shape and dtype, which the backward may overwrite; ``in_place``: ``kernel(x, out)`` and
    ``derivative(x, out)`` write into the array ``out`` (a captured step's, capture.py; None: a new one).
    """

    kernel: Callable
    derivative: Callable
    scalar_forward: Callable
    scalar_derivative: Callable
    can_die: bool = False
    trusted: bool = True
    in_place: bool = False


def _relu_scalar(x: float) -> float:
    return 0.0 if x <= 0 else x  # nan stays nan


def _relu_derivative_scalar(x: float) -> float:
    return 0.0 if x <= 0 else 1.0  # 1 at nan: the gradient passes


TANH = Elementwise(np.tanh, sech2, math.tanh, sech2_scalar, in_place=True)
SIGMOID = Elementwise(sigmoid, sigmoid_derivative, sigmoid_scalar, sigmoid_derivative_scalar, in_place=True)
RELU = Elementwise(relu, relu_derivative, _relu_scalar, _relu_derivative_scalar, can_die=True)


# ---- the error function: numpy has none, and gelu needs it to full precision in the tails ------------------
# Maclaurin series for |x| < 1: erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)); 19 terms reach 1e-17.
_ERF_SERIES = [2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(19)][::-1]

# For a >= 1, erfc(a) = e^(-a^2) g(1/a) / a, where g(s) = a e^(a^2) erfc(a) is smooth and tends to 1/sqrt(pi).
# g is interpolated at import by degree-16 Chebyshev polynomials on three pieces of s = 1/a in [1/27.5, 1]
# (past a = 27.5, erfc underflows to 0), which reproduces math.erfc to about 1e-15 relative.
_ERFC_EDGES = (1 / 27.5, 0.25, 0.5, 1.0)
_ERFC_DEGREE = 16


def _scaled_erfc_reference(a: float) -> float:
    """a e^(a^2) erfc(a) in float64, for building the table only."""
    if a > 6:  # math.erfc underflows; Laplace's continued fraction converges fast here
        tail = a
        for k in range(120, 0, -1):
            tail = a + (k / 2) / tail
        return a / (math.sqrt(math.pi) * tail)
    hi = math.floor(a * 4096) / 4096  # e^(a^2) = e^(hi^2) e^((a - hi)(a + hi)), hi^2 exact
    return a * math.erfc(a) * math.exp(hi * hi) * math.exp((a - hi) * (a + hi))


def _erfc_table() -> np.ndarray:
    nodes = np.cos(np.pi * (np.arange(_ERFC_DEGREE + 1) + 0.5) / (_ERFC_DEGREE + 1))
    table = []
    for lo, hi in zip(_ERFC_EDGES[:-1], _ERFC_EDGES[1:]):
        values = [_scaled_erfc_reference(1 / (lo + (hi - lo) * (t + 1) / 2)) for t in nodes]
        table.append(chebyshev.chebfit(nodes, values, _ERFC_DEGREE))
    return np.array(table)


_ERFC_TABLE = _erfc_table()


def _erfc_large(a: np.ndarray) -> np.ndarray:
    """erfc(a) for float64 a >= 1 (see the table above)."""
    a = np.minimum(a, 27.5)
    s = 1 / a
    piece = (s >= _ERFC_EDGES[1]).astype(np.intp) + (s >= _ERFC_EDGES[2])
    edges = np.asarray(_ERFC_EDGES)
    lo, hi = edges[piece], edges[piece + 1]
    g = chebyshev.chebval((2 * s - lo - hi) / (hi - lo), _ERFC_TABLE[piece].T, tensor=False)
    # e^(-a^2) with a^2 split so that its rounding error (relative 2 a^2 eps) does not reach the result
    head = np.floor(a * 4096) / 4096
    return np.exp(-head * head) * np.exp(-(a - head) * (a + head)) * g / a


def _erf_small(x: np.ndarray) -> np.ndarray:
    return x * np.polyval(_ERF_SERIES, x * x)


def _pieces(x, small_fn, large_fn) -> np.ndarray:
    x = floating(x)
    flat = x.astype(np.float64).ravel()
    out = np.empty_like(flat)
    small = np.abs(flat) < 1
    out[small] = small_fn(flat[small])
    out[~small] = large_fn(flat[~small])
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def erf(x) -> np.ndarray:
    """The error function erf(x) = 2/sqrt(pi) int_0^x e^(-t^2) dt, numpy-only, ~1e-15 relative; dtype preserved."""
    return _pieces(x, _erf_small, lambda v: np.sign(v) * (1 - _erfc_large(np.abs(v))))


def erfc(x) -> np.ndarray:
    """The complementary error function 1 - erf(x), accurate in the right tail (down to 1e-308)."""
    return _pieces(
        x, lambda v: 1 - _erf_small(v), lambda v: np.where(v > 0, 0, 2) + np.sign(v) * _erfc_large(np.abs(v))
    )


def normal_cdf(x) -> np.ndarray:
    """Phi(x) = erfc(-x / sqrt 2) / 2 in float64: erfc keeps full relative precision in the left tail."""
    return 0.5 * erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2))


def normal_pdf(x) -> np.ndarray:
    """phi(x) = e^(-x^2 / 2) / sqrt(2 pi) in float64, without overflow of x^2."""
    x = np.minimum(np.abs(np.asarray(x, dtype=np.float64)), 40)  # e^(-800) is 0 already
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
