"""Tensor: a numpy-array node on the shared reverse-mode core (graph.py).

Each operation is an ``Op`` below: its forward computes the output with numpy from the parents' data, its
backward ``(node, g)`` returns one gradient per parent (``None`` where a parent does not require grad), possibly
in the broadcast shape: ``_fit_grad`` un-broadcasts and casts them, once, for every operation. Tensor's methods
turn their arguments into parents and a context and record the op (``_record``).

dtype: an operation keeps the dtype of its data (float32 stays float32, and so does its gradient); Python
numbers never upcast; lists become float64. Only floating-point tensors may require grad; complex is refused.
Non-finite values follow numpy (and its RuntimeWarnings, in the forward pass): ``x / 0`` is inf or nan. Backward
passes follow PyTorch's values: a local derivative that is exactly 0 (clip outside its bounds, the losing side
of maximum/minimum/max/min, where's other branch, x**0) passes exactly 0 even when the incoming gradient is inf
or nan; such backwards select, they never multiply by a 0/1 mask.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .fused import LINEAR, always
from .graph import Node, Op, make
from .kernels import floating, unbroadcast

_ndarray = np.ndarray


def _record(op: Op, parents: tuple, ctx=None) -> Tensor:
    """``op`` computed on the parents' data and recorded (graph.make); numpy's scalars for 0-d results become arrays."""
    data = op.forward(ctx, parents[0].data) if len(parents) == 1 else op.forward(ctx, *[p.data for p in parents])
    return make(Tensor, data if data.__class__ is _ndarray else np.asarray(data), parents, op, ctx)


def _as_array(x, dtype=None) -> np.ndarray:
    return floating(x.data if isinstance(x, Tensor) else x, dtype)  # floats stay, the rest float64, complex refused


def _is_number(x) -> bool:
    # numpy scalars are not numbers here: np.float64 (a float subclass) would upcast float32 data (NEP 50);
    # like np.float32 scalars they become constants of the tensor's dtype.
    return isinstance(x, (int, float)) and not isinstance(x, (bool, np.generic))


def _constant(x, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return Tensor(x)
    return Tensor(_as_array(x, like.data.dtype))


# ---- elementwise arithmetic: x + y, x * y, x / y, x ** y; with a Python number c, x + c, x * c, ... (ctx = c) -----
def _mul_backward(node, g):
    if node._ctx is not None:
        return (g * node._ctx,)
    a, b = node._parents
    return (g * b.data if a._requires_grad else None), (g * a.data if b._requires_grad else None)


def _divide_backward(node, g):
    with np.errstate(divide="ignore", invalid="ignore"):  # the forward division already warned
        if node._ctx is not None:
            return (g / node._ctx,)
        a, b = node._parents
        ga = g / b.data if a._requires_grad else None
        # d(a/b)/db = -a/b^2, as -(a/b)/b (PyTorch's form): b^2 would underflow at b = 1e-200
        return ga, -(g * (node.data / b.data)) if b._requires_grad else None


def _power_backward(node, g):
    p, x = node._ctx, node._parents[0].data
    if p is None:
        return _tensor_power_backward(node, g)
    if p == 0:  # d(x^0)/dx = 0 everywhere; the general formula gives 0 * inf = nan (and a warning) at x = 0
        return (np.zeros_like(g),)
    if p == -1:
        return (-g * (node.data * node.data),)
    return (g * (p * x ** (p - 1)),)


def _tensor_power_backward(node, g):
    (a, b), zero = node._parents, np.zeros((), dtype=g.dtype)
    x, p = a.data, b.data
    # As PyTorch: d/dx is 0 where p = 0 (x**0 is constant); d/dp = x**p ln x, taken as 0 at x = 0 for p >= 0
    # (the limit from the right), nan for x < 0 (ln x is not real). Values only: 0 ** -0.5 = inf warns nowhere.
    with np.errstate(divide="ignore", invalid="ignore"):
        ga = np.where(p == 0, zero, g * (p * x ** (p - 1))) if a._requires_grad else None
        gb = g * np.where((x == 0) & (p >= 0), zero, node.data * np.log(x)) if b._requires_grad else None
    return ga, gb


ADD = Op("add", lambda c, a, b=None, out=None: np.add(a, c if b is None else b, out=out), lambda n, g: (g, g), always)
MUL = Op("mul", lambda c, a, b=None: a * (c if b is None else b), _mul_backward)
DIVIDE = Op("divide", lambda c, a, b=None: a / (c if b is None else b), _divide_backward)
POWER = Op("power", lambda c, a, b=None: a ** (c if b is None else b), _power_backward)


# ---- matmul ----------------------------------------------------------------------------------------------
def _matmul_backward(node, g):
    a, b = node._parents
    x, w = a.data, b.data
    # 1-D operands are lifted to matrices as numpy does, then lose the added axis; _fit_grad sums batch axes.
    x2 = x if x.ndim > 1 else x[None, :]
    w2 = w if w.ndim > 1 else w[:, None]
    g2 = g.reshape(np.broadcast_shapes(x2.shape[:-2], w2.shape[:-2]) + (x2.shape[-2], w2.shape[-1]))
    gx = gw = None
    if a._requires_grad:
        gx = g2 @ np.swapaxes(w2, -1, -2)
        gx = gx if x.ndim > 1 else gx[..., 0, :]
    if b._requires_grad:
        gw = np.swapaxes(x2, -1, -2) @ g2
        gw = gw if w.ndim > 1 else gw[..., 0]
    return gx, gw


MATMUL = Op("matmul", lambda ctx, a, b: a @ b, _matmul_backward)


# ---- elementwise functions ---------------------------------------------------------------------------------
def _log_backward(node, g):
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) and log(-1) already warned in the forward
        return (g / node._parents[0].data,)


def _apply_forward(activation, x, out=None):  # an in_place kernel (tanh, sigmoid) writes into out=
    return activation.kernel(x) if out is None or not activation.in_place else activation.kernel(x, out=out)


def _apply_backward(node, g, out=(None,)):
    """g · f'(x); with ``out`` (capture.py, for an ``in_place`` derivative), f' is computed into it."""
    activation, x = node._ctx, node._parents[0].data
    into = out[0] is not None
    slope = activation.derivative(x, out[0]) if into else activation.derivative(x)
    # rare, and checked first so that 0 * inf warns nowhere; g·g (one BLAS pass) < inf only if every g is finite
    if not np.vdot(g, g) < np.inf and not np.isfinite(g).all():
        with np.errstate(invalid="ignore"):
            product = g * slope
        # As PyTorch: where f' is 0 by definition (relu below 0: an activation that can die), exactly 0 even
        # times inf or nan; a 0 that is an underflow of a positive f' (tanh' at 1e4) times inf stays nan.
        return (np.where(slope == 0, 0, product) if activation.can_die else product,)
    fresh = into or activation.trusted and slope.__class__ is _ndarray and slope.shape == g.shape
    if fresh and slope.dtype == g.dtype:  # a trusted derivative is a fresh array: reuse it
        return (np.multiply(slope, g, out=slope),)
    return (g * slope,)


def _clip_backward(node, g):
    (low, high), x = node._ctx, node._parents[0].data
    inside = (True if low is None else x >= low) & (True if high is None else x <= high)
    return (np.where(inside, g, np.zeros((), dtype=g.dtype)),)


def _choose_backward(node, g):
    # As PyTorch: a tie shares the gradient evenly, the loser gets 0; with a NaN neither side loses.
    a, b = node._parents
    loses, zero = node._ctx, np.zeros((), dtype=g.dtype)
    g = np.where(a.data == b.data, g * 0.5, g)
    return (
        np.where(loses(a.data, b.data), zero, g) if a._requires_grad else None,
        np.where(loses(b.data, a.data), zero, g) if b._requires_grad else None,
    )


EXP = Op("exp", lambda ctx, x: np.exp(x), lambda node, g: (g * node.data,))
LOG = Op("log", lambda ctx, x: np.log(x), _log_backward)
SQRT = Op("sqrt", lambda ctx, x: np.sqrt(x), lambda node, g: (g * (0.5 / node.data),))  # from the saved output
ABS = Op("abs", lambda ctx, x: np.abs(x), lambda n, g: (g * np.nan_to_num(np.sign(n._parents[0].data)),))  # as torch
APPLY = Op("apply", _apply_forward, _apply_backward, always, lambda node: node._ctx.in_place)
CLIP = Op("clip", lambda bounds, x: np.clip(x, *bounds), _clip_backward)
MAXIMUM = Op("maximum", lambda loses, a, b: np.maximum(a, b), _choose_backward)  # ctx: np.less, who loses
MINIMUM = Op("minimum", lambda loses, a, b: np.minimum(a, b), _choose_backward)  # ctx: np.greater


# ---- reductions --------------------------------------------------------------------------------------------
def _sum_backward(node, g):
    """Broadcast a reduction's gradient back to the input's shape (a read-only view, no copy)."""
    axis, keepdims = node._ctx
    if not keepdims and axis is not None:
        g = np.expand_dims(g, axis)
    return (np.broadcast_to(g, node._parents[0].data.shape),)


def _extreme_backward(node, g):
    x, (axis, keepdims) = node._parents[0].data, node._ctx
    out = node.data if keepdims or axis is None else np.expand_dims(node.data, axis)
    # The elements equal to the result share its gradient evenly (as PyTorch); a NaN result is NaN's.
    hits = (x == out) | (np.isnan(x) & np.isnan(out))
    count = hits.sum(axis=axis, keepdims=True, dtype=g.dtype)  # >= 1: the result is one of the elements
    return (np.where(hits, _sum_backward(node, g)[0] / count, np.zeros((), dtype=g.dtype)),)


def _log_softmax(axis, x):  # x - logsumexp(x), shifted by the max so that it never overflows
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _softmax(axis, x):  # exp(x) / sum(exp(x)), shifted by the max so that it never overflows
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


SUM = Op("sum", lambda ctx, x: np.sum(x, axis=ctx[0], keepdims=ctx[1]), _sum_backward)
MAX = Op("max", lambda ctx, x: x.max(ctx[0], keepdims=ctx[1]), _extreme_backward)
MIN = Op("min", lambda ctx, x: x.min(ctx[0], keepdims=ctx[1]), _extreme_backward)
LOG_SOFTMAX = Op("log_softmax", _log_softmax, lambda n, g: (g - np.exp(n.data) * g.sum(axis=n._ctx, keepdims=True),))
SOFTMAX = Op("softmax", _softmax, lambda n, g: (n.data * (g - (g * n.data).sum(axis=n._ctx, keepdims=True)),))


# ---- shape -------------------------------------------------------------------------------------------------
def _getitem_backward(node, g):
    index = node._ctx
    full = np.zeros(node._parents[0].data.shape, dtype=g.dtype)
    items = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items):
        full[index] = g  # basic indexing selects each element at most once
    else:
        np.add.at(full, index, g)  # fancy indices may repeat: accumulate
    return (full,)


def _concatenate_backward(node, g):
    sizes = [p.data.shape[node._ctx] for p in node._parents]
    return tuple(np.split(g, np.cumsum(sizes)[:-1], axis=node._ctx))


def _where_backward(node, g):
    (a, b), condition, zero = node._parents, node._ctx, np.zeros((), dtype=g.dtype)
    return (
        np.where(condition, g, zero) if a._requires_grad else None,
        np.where(condition, zero, g) if b._requires_grad else None,
    )


RESHAPE = Op("reshape", lambda shape, x: x.reshape(shape), lambda n, g: (g.reshape(n._parents[0].data.shape),))
# transpose's backward applies the inverse permutation; negative axes first normalised: argsort((1, -1, 0)) is
# not the inverse of the permutation (1, 2, 0)
TRANSPOSE = Op(
    "transpose",
    lambda axes, x: np.transpose(x, axes),
    lambda n, g: (np.transpose(g, None if n._ctx is None else np.argsort(np.asarray(n._ctx) % g.ndim)),),
)
GETITEM = Op("getitem", lambda index, x: x[index], _getitem_backward)
CONCATENATE = Op("concatenate", lambda axis, *xs: np.concatenate(xs, axis=axis), _concatenate_backward)
WHERE = Op("where", lambda condition, a, b: np.where(condition, a, b), _where_backward)


def _binary(op: Op, x: Tensor, other) -> Tensor:
    """``op`` of x and another Tensor, array or number; a Python number stays the op's context (it never upcasts)."""
    return _record(op, (x,), other) if _is_number(other) else _record(op, (x, _constant(other, x)))


def _unary(op: Op, doc: str):
    """The method ``x.name()`` of an elementwise op without arguments."""

    def method(self):
        return _record(op, (self,))

    method.__name__, method.__doc__ = op.name, doc
    return method


class Tensor(Node):
    """An n-dimensional array that records the operations applied to it (see the module docstring)."""

    __slots__ = ()
    __array_ufunc__ = None  # `ndarray op Tensor` defers to Tensor's reflected operators
    _fit_grad = staticmethod(unbroadcast)  # every gradient on its way to a parent: un-broadcast, cast

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        super().__init__(_as_array(data, None if dtype is None else np.dtype(dtype)), bool(requires_grad))
        self._check_requires_grad(self._requires_grad)

    # ---- array-like surface ----------------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.transpose())

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self._requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        """The data (not a copy)."""
        return self.data

    def item(self) -> float:
        """The single element as a Python number."""
        return self.data.item()

    # ---- graph protocol --------------------------------------------------------------------------------
    def _check_requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":  # bool, int: refused, as PyTorch does
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {self.data.dtype}: "
                "pass dtype=np.float64 (or np.float32), or requires_grad=False"
            )

    def _seed_grad(self, grad):
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar Tensor of shape {self.shape} needs an explicit gradient "
                    "of the same shape: tensor.backward(grad)"
                )
            return np.ones_like(self.data)
        grad = _as_array(grad, self.data.dtype)
        if grad.shape != self.data.shape:
            raise ValueError(f"backward(grad): grad has shape {grad.shape}, the tensor has shape {self.shape}")
        return grad

    def _accumulate_grad(self, grad, shared):
        if self.grad is None:
            # .grad is owned by this tensor alone, so later accumulation may be in place.
            self.grad = grad.copy() if shared or not grad.flags.owndata or not grad.flags.writeable else grad
        else:
            self.grad += grad

    def _hook_result(self, hook, result, grad):
        """A hook's replacement gradient, checked against ``grad`` and copied (the hook's caller keeps its array)."""
        expected = f"None or a numpy array of shape {grad.shape} and dtype {grad.dtype}"
        name = getattr(hook, "__qualname__", repr(hook))
        if not isinstance(result, (np.ndarray, np.generic)):
            raise TypeError(f"hook {name} returned a {type(result).__name__}; a hook returns {expected}")
        if result.shape != grad.shape or result.dtype != grad.dtype:
            raise ValueError(
                f"hook {name} returned an array of shape {result.shape} and dtype {result.dtype}; "
                f"a hook returns {expected}"
            )
        return np.array(result)

    # ---- operations: arguments to parents and a context, then the op -------------------------------------
    def __add__(self, other):
        return _binary(ADD, self, other)

    def __mul__(self, other):
        return _binary(MUL, self, other)

    def __truediv__(self, other):
        """True division as numpy does it (x / 0 is inf or nan, with numpy's RuntimeWarning); never x * (1/y)."""
        return _binary(DIVIDE, self, other)

    def __pow__(self, exponent):
        return _binary(POWER, self, exponent)

    def __matmul__(self, other):
        return _record(MATMUL, (self, _constant(other, self)))

    def __sub__(self, other):
        return self + (-other if _is_number(other) else -_constant(other, self))

    __radd__ = __add__
    __rmul__ = __mul__

    def __rtruediv__(self, other):
        return _constant(other, self) / self

    def __rpow__(self, base):
        return _constant(base, self) ** self

    def __rmatmul__(self, other):
        return _constant(other, self) @ self

    exp = _unary(EXP, "e^x elementwise.")
    log = _unary(LOG, "Natural logarithm elementwise.")
    sqrt = _unary(SQRT, "Square root elementwise; the derivative is taken from the saved output.")
    abs = _unary(ABS, "|x|; the derivative at 0 is taken as 0.")

    def apply(self, activation):
        """An elementwise function (kernels.Elementwise, activations.Activation): one node, backward by f'(x)."""
        return _record(APPLY, (self,), activation)

    def clip(self, low=None, high=None):
        """Clip to [low, high]; gradient 1 inside (bounds included), 0 outside."""
        # numpy scalar bounds as Python numbers: np.float64 bounds would upcast float32 data (NEP 50).
        return _record(CLIP, (self,), tuple(b.item() if isinstance(b, np.generic) else b for b in (low, high)))

    def maximum(self, other):
        """Elementwise max; where both are equal the gradient is split evenly (as PyTorch does)."""
        return _record(MAXIMUM, (self, _constant(other, self)), np.less)

    def minimum(self, other):
        """Elementwise min; where both are equal the gradient is split evenly."""
        return _record(MINIMUM, (self, _constant(other, self)), np.greater)

    def sum(self, axis=None, keepdims: bool = False):
        """Sum over ``axis`` (None: all; an int or a tuple), optionally keeping the reduced axes."""
        return _record(SUM, (self,), (axis, keepdims))

    def mean(self, axis=None, keepdims: bool = False):
        """Mean over ``axis``: the sum divided by the count (true division, as numpy and PyTorch round it)."""
        shape = self.data.shape
        axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, (int, np.integer)) else axis
        count = int(np.prod([shape[a] for a in axes]))
        if count == 0:
            raise ValueError(f"mean over an empty axis of a tensor of shape {shape}")
        return self.sum(axis, keepdims) / count

    def max(self, axis=None, keepdims: bool = False):
        """Maximum; ties share the gradient evenly."""
        return _record(MAX, (self,), (axis, keepdims))

    def min(self, axis=None, keepdims: bool = False):
        """Minimum; ties share the gradient evenly."""
        return _record(MIN, (self,), (axis, keepdims))

    def log_softmax(self, axis: int = -1):
        """x - logsumexp(x), shifted by the max so that it never overflows."""
        return _record(LOG_SOFTMAX, (self,), axis)

    def softmax(self, axis: int = -1):
        """exp(x) / sum(exp(x)), shifted by the max so that it never overflows."""
        return _record(SOFTMAX, (self,), axis)

    def reshape(self, *shape):
        """The same data in a new shape (a tuple or separate ints); backward reshapes back."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _record(RESHAPE, (self,), shape)

    def transpose(self, *axes):
        """Permute the axes (reversed by default); backward applies the inverse permutation."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _record(TRANSPOSE, (self,), axes or None)

    def __getitem__(self, index):
        """numpy indexing: basic, integer arrays, boolean masks (an integer Tensor index counts as its array)."""
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return _record(GETITEM, (self,), index)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ W + b, equal to the composed ops in value, shape, dtype and gradients.

    One node when W is a matrix and the bias neither enlarges nor upcasts x @ W (the usual layer): it adds
    the bias in place, so no second output-sized array is kept alive. Otherwise it is the composition.
    """
    x, weight = _constant(x, weight), _constant(weight, weight)
    if weight.data.ndim != 2:
        return x @ weight if bias is None else x @ weight + bias
    if bias is None:
        return _record(LINEAR, (x, weight))
    shape, dtype = x.data.shape[:-1] + weight.data.shape[1:], np.result_type(x.data, weight.data)  # x @ W's
    bias = bias if isinstance(bias, Tensor) else Tensor(_as_array(bias, dtype))  # a number takes the product's dtype
    if kernels.widens(shape, dtype, bias.data):
        return _record(LINEAR, (x, weight)) + bias
    return _record(LINEAR, (x, weight, bias))


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; backward splits the gradient."""
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    return _record(CONCATENATE, tensors, axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors along a new axis (a reshape of each, then concatenate)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    axis = axis + tensors[0].ndim + 1 if axis < 0 else axis
    return concatenate([t.reshape(t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors], axis=axis)


def where(condition, a, b) -> Tensor:
    """Elementwise ``a`` where ``condition`` else ``b``; the condition is a plain (non-differentiable) mask."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else Tensor(np.asarray(a, dtype=float))
    return _record(WHERE, (_constant(a, like), _constant(b, like)), condition)


def maximum(a, b) -> Tensor:
    """Elementwise max of tensors or numbers; ties share the gradient evenly."""
    return (a if isinstance(a, Tensor) else _constant(a, b)).maximum(b)


def minimum(a, b) -> Tensor:
    """Elementwise min of tensors or numbers; ties share the gradient evenly."""
    return (a if isinstance(a, Tensor) else _constant(a, b)).minimum(b)
