"""Finite-difference checking of the autograd gradients of ``Value`` and ``Tensor`` functions.

``gradcheck(fn, inputs)`` compares, for every input that requires grad and every element of it, the
gradient that ``backward()`` computes with the central difference

    (f(x + eps) - f(x - eps)) / (2 eps)

evaluated in float64 on a copy of the inputs. The pair (analytic a, numeric n) agrees when
``|a - n| <= atol + rtol * |n|`` (as ``numpy.isclose``).

A function that returns a non-scalar Tensor is reduced to the scalar ``sum(out * P)``, where ``P`` is a fixed
standard-normal array drawn from ``numpy.random.default_rng(seed)``: a random projection, unlike a plain sum,
also catches a backward that sends the right numbers to the wrong elements (a permuted or transposed gradient).

``fn`` must be a pure function of its inputs: it is called once with fresh leaf copies to take the analytic
gradient (the inputs' own ``.grad`` is left untouched) and twice per checked element, under ``no_grad()``, with
perturbed float64 copies. Tensors that ``fn`` reaches through a closure are constants of the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .graph import is_grad_enabled, no_grad
from .scalar import Value
from .tensor import Tensor


@dataclass(frozen=True)
class GradcheckWorst:
    """The element where the analytic and numeric gradients disagree most, relative to the tolerance."""

    input_index: int  # position in ``inputs``
    element_index: tuple  # numpy index into that input (``()`` for a Value or a 0-d Tensor)
    analytic: float
    numeric: float


@dataclass(frozen=True, eq=False)
class GradcheckResult:
    """Outcome of ``gradcheck``; true in a boolean context when every checked element agrees."""

    ok: bool
    max_abs_error: float  # max |analytic - numeric|
    max_rel_error: float  # max |analytic - numeric| / max(|analytic|, |numeric|)  (0 where both are 0)
    worst: GradcheckWorst | None  # None when no input requires grad
    checked: int  # number of elements compared
    analytic: list = field(repr=False)  # one float64 array per input (None where it does not require grad)
    numeric: list = field(repr=False)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        text = (
            f"GradcheckResult({verdict}: {self.checked} elements, max_abs_error={self.max_abs_error:.3g}, "
            f"max_rel_error={self.max_rel_error:.3g}"
        )
        if self.worst is not None:
            w = self.worst
            text += (
                f"; worst at input {w.input_index} element {w.element_index}: "
                f"analytic={w.analytic!r}, numeric={w.numeric!r}"
            )
        return text + ")"


def gradcheck(
    fn,
    inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    allow_float32: bool = False,
    seed: int = 0,
) -> GradcheckResult:
    """Compare the autograd gradient of ``fn(*inputs)`` with central finite differences in float64.

    ``inputs`` is a Value, a Tensor, or a sequence of them (all of one kind). Tensors that are not float64
    raise TypeError, since finite differences are meaningless at float32 precision; with
    ``allow_float32=True`` the analytic gradient is taken in the inputs' own dtype and compared with float64
    finite differences (pass tolerances that suit float32, e.g. ``atol=1e-3, rtol=1e-2``).
    A wrong gradient is reported in the result (``ok`` False); one of the wrong shape raises ValueError.
    """
    inputs = _as_input_tuple(inputs)
    if not is_grad_enabled():
        raise RuntimeError("gradcheck needs gradients: do not call it inside no_grad()")
    if eps <= 0 or atol < 0 or rtol < 0:
        raise ValueError(f"gradcheck needs eps > 0, atol >= 0, rtol >= 0; got eps={eps}, atol={atol}, rtol={rtol}")
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.dtype != np.float64 and not allow_float32:
            raise TypeError(
                f"gradcheck input {i} has dtype {x.dtype}; finite differences need float64 "
                "(convert the input, or pass allow_float32=True and looser tolerances)"
            )

    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    analytic, weights = _analytic_gradients(fn, inputs, seed)
    numeric = [None] * len(inputs)
    with no_grad():
        for i in checked:
            numeric[i] = _numeric_gradient(fn, inputs, i, eps, weights)
    return _compare(analytic, numeric, checked, atol, rtol)


def _as_input_tuple(inputs) -> tuple:
    if isinstance(inputs, (Value, Tensor)):
        inputs = (inputs,)
    try:
        inputs = tuple(inputs)
    except TypeError:
        raise TypeError(f"gradcheck inputs must be a Value, a Tensor or a sequence of them, got {inputs!r}") from None
    if not inputs:
        raise ValueError("gradcheck needs at least one input")
    kinds = {type(x) for x in inputs}
    if not kinds <= {Value, Tensor} or len(kinds) != 1:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise TypeError(f"gradcheck inputs must be all Values or all Tensors, got: {names}")
    return inputs


def _output(out):
    if not isinstance(out, (Value, Tensor)):
        raise TypeError(f"gradcheck: fn must return a Value or a Tensor, got {type(out).__name__}")
    return out


def _project(out, weights):
    """The scalar whose gradient is checked: ``out`` itself, or ``sum(out * P)`` for a non-scalar Tensor."""
    if weights is None:
        return out
    if out.shape != weights.shape:
        raise ValueError(f"gradcheck: fn returned shape {out.shape} on one call and {weights.shape} on another")
    return (out * Tensor(weights.astype(out.dtype, copy=False))).sum()


def _analytic_gradients(fn, inputs, seed) -> tuple[list, np.ndarray | None]:
    leaves = [_copy(x, x.data if isinstance(x, Value) else x.data.copy()) for x in inputs]
    out = _output(fn(*leaves))
    weights = None  # the projection P, drawn once so that every evaluation uses the same one
    if isinstance(out, Tensor) and out.data.size != 1:
        weights = np.random.default_rng(seed).standard_normal(out.shape)
    scalar = _project(out, weights)
    if scalar.requires_grad:  # otherwise fn ignored every input that requires grad: all gradients are 0
        scalar.backward()
    grads = []
    for i, (x, leaf) in enumerate(zip(inputs, leaves)):
        if not x.requires_grad:
            grads.append(None)
            continue
        grad = np.zeros(np.shape(x.data)) if leaf.grad is None else np.asarray(leaf.grad, dtype=np.float64)
        if grad.shape != np.shape(x.data):
            raise ValueError(
                f"gradcheck: the autograd gradient of input {i} has shape {grad.shape}, the input has shape "
                f"{np.shape(x.data)}"
            )
        grads.append(grad)
    return grads, weights


def _numeric_gradient(fn, inputs, i, eps, weights) -> np.ndarray:
    base = [np.array(x.data, dtype=np.float64) for x in inputs]
    point = base[i]
    grad = np.zeros(point.shape)

    def evaluate():
        args = [_copy(x, data.item() if isinstance(x, Value) else data.copy()) for x, data in zip(inputs, base)]
        return float(np.ravel(_project(_output(fn(*args)), weights).data)[0])

    for index in np.ndindex(point.shape):
        center = point[index]
        point[index] = center + eps
        upper = evaluate()
        point[index] = center - eps
        lower = evaluate()
        point[index] = center
        grad[index] = (upper - lower) / (2 * eps)
    return grad


def _copy(x, data):
    """A fresh leaf holding ``data`` with the requires_grad flag of ``x``."""
    if isinstance(x, Value):
        return Value(data, requires_grad=x.requires_grad)
    return Tensor(data, requires_grad=x.requires_grad)


def _compare(analytic, numeric, checked, atol, rtol) -> GradcheckResult:
    ok, max_abs, max_rel, worst, worst_excess, count = True, 0.0, 0.0, None, -1.0, 0
    for i in checked:
        a, n = analytic[i], numeric[i]
        # A non-finite gradient on either side is a failure (error inf), never a RuntimeWarning.
        finite = np.isfinite(a) & np.isfinite(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where(finite, np.abs(a - n), np.inf)
            relative = np.where(error == 0, 0.0, error / np.maximum(np.abs(a), np.abs(n)))
            relative = np.where(finite, relative, np.inf)
            excess = np.where(error == 0, 0.0, error / (atol + rtol * np.where(finite, np.abs(n), 0.0)))
        count += a.size
        if a.size == 0:
            continue
        ok = ok and bool(np.all(excess <= 1.0))
        max_abs = max(max_abs, float(error.max()))
        max_rel = max(max_rel, float(relative.max()))
        flat = int(np.argmax(excess))
        if excess.flat[flat] > worst_excess:
            worst_excess = float(excess.flat[flat])
            index = tuple(int(k) for k in np.unravel_index(flat, a.shape))
            worst = GradcheckWorst(i, index, float(a[index]), float(n[index]))
    return GradcheckResult(ok, max_abs, max_rel, worst, count, list(analytic), list(numeric))
