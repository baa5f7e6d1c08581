"""Tensor: a numpy-array node on the shared reverse-mode core (graph.py).

Each operation computes its output with numpy and records its parents; right below it, its backward
``_*_backward(node, g)`` returns one gradient per parent (``None`` where a parent does not require grad),
possibly in the broadcast shape: ``_fit_grad`` un-broadcasts and casts them, once, for every operation.

dtype: an operation keeps the dtype of its data (float32 stays float32, and so does its gradient); Python
numbers never upcast; data from Python lists is float64. Only floating-point tensors may require grad.

Non-finite values follow numpy (and numpy's RuntimeWarnings): ``x / 0`` is inf or nan. A local derivative
that is exactly 0 (clip outside its bounds, the losing side of maximum/minimum/max/min, where's other
branch) passes exactly 0 even when the incoming gradient is inf or nan, as in PyTorch: such backwards
select, they never multiply by a 0/1 mask.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .graph import Node, make

_ndarray = np.ndarray


def _make(data, parents: tuple, backward, ctx=None) -> Tensor:
    """An operation's output (graph.make), with numpy's scalars for 0-d results turned into arrays."""
    return make(Tensor, data if data.__class__ is _ndarray else np.asarray(data), parents, backward, ctx)


def _fit_grad(g, parent):
    """The one place where gradients are un-broadcast (summed over broadcast axes) and cast to the parent's dtype."""
    shape = parent.data.shape
    if g.__class__ is not _ndarray:  # numpy returns scalars for products of 0-d arrays
        g = np.asarray(g)
    if g.shape != shape:
        if g.ndim > len(shape):
            g = g.sum(axis=tuple(range(g.ndim - len(shape))))
        axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
        g = g.sum(axis=axes, keepdims=True) if axes else g
    return g if g.dtype == parent.data.dtype else g.astype(parent.data.dtype)


def _as_array(x, dtype=None) -> np.ndarray:
    """``x`` as an array of ``dtype`` (no copy if it is one); without a dtype, floats stay and the rest is float64."""
    array = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=dtype)
    return array if dtype is not None or array.dtype.kind == "f" else array.astype(np.float64)


def _is_number(x) -> bool:
    # numpy scalars are not numbers here: np.float64 (a float subclass) would upcast float32 data (NEP 50);
    # like np.float32 scalars they become constants of the tensor's dtype.
    return isinstance(x, (int, float)) and not isinstance(x, (bool, np.generic))


def _constant(x, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return Tensor(x)
    return Tensor(np.asarray(x, dtype=like.data.dtype))


class Tensor(Node):
    """An n-dimensional array that records the operations applied to it (see the module docstring)."""

    __slots__ = ()
    __array_ufunc__ = None  # `ndarray op Tensor` defers to Tensor's reflected operators
    _fit_grad = staticmethod(_fit_grad)

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        data = _as_array(data, None if dtype is None else np.dtype(dtype))
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {data.dtype}: "
                "pass dtype=np.float64 (or np.float32), or requires_grad=False"
            )
        super().__init__(data, bool(requires_grad))

    # ---- array-like surface ----------------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.transpose())

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        """The data (not a copy)."""
        return self.data

    def item(self) -> float:
        """The single element as a Python number."""
        return self.data.item()

    # ---- graph protocol --------------------------------------------------------------------------------
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

    # ---- elementwise arithmetic ------------------------------------------------------------------------
    def __add__(self, other):
        if _is_number(other):
            return _make(self.data + other, (self,), Tensor._add_backward, other)
        other = _constant(other, self)
        return _make(self.data + other.data, (self, other), Tensor._add_backward)

    def _add_backward(node, g):  # x + y and x + number: g to each parent (the walk zips them with the parents)
        return g, g

    def __mul__(self, other):
        if _is_number(other):
            return _make(self.data * other, (self,), Tensor._scale_backward, other)
        other = _constant(other, self)
        return _make(self.data * other.data, (self, other), Tensor._mul_backward)

    def _mul_backward(node, g):
        a, b = node._parents
        return (g * b.data if a.requires_grad else None), (g * a.data if b.requires_grad else None)

    def _scale_backward(node, g):
        return (g * node._ctx,)

    def __truediv__(self, other):
        """True division as numpy does it (x / 0 is inf or nan, with numpy's RuntimeWarning); never x * (1/y)."""
        if _is_number(other):
            return _make(self.data / other, (self,), Tensor._divide_by_number_backward, other)
        other = _constant(other, self)
        return _make(self.data / other.data, (self, other), Tensor._divide_backward)

    def _divide_by_number_backward(node, g):
        with np.errstate(divide="ignore", invalid="ignore"):  # the forward division already warned
            return (g / node._ctx,)

    def _divide_backward(node, g):
        a, b = node._parents
        with np.errstate(divide="ignore", invalid="ignore"):  # the forward division already warned
            ga = g / b.data if a.requires_grad else None
            # d(a/b)/db = -a/b^2, as -(a/b)/b (PyTorch's form): b^2 would underflow at b = 1e-200
            gb = -(g * (node.data / b.data)) if b.requires_grad else None
        return ga, gb

    def __pow__(self, exponent):
        if _is_number(exponent):
            return _make(self.data**exponent, (self,), Tensor._pow_backward, exponent)
        exponent = _constant(exponent, self)
        return _make(self.data**exponent.data, (self, exponent), Tensor._tensor_pow_backward)

    def _pow_backward(node, g):
        p, x = node._ctx, node._parents[0].data
        if p == 0:  # d(x^0)/dx = 0 everywhere; the general formula gives 0 * inf = nan (and a warning) at x = 0
            return (np.zeros_like(g),)
        if p == -1:
            return (-g * (node.data * node.data),)
        return (g * (p * x ** (p - 1)),)

    def _tensor_pow_backward(node, g):
        a, b = node._parents
        ga = g * (b.data * a.data ** (b.data - 1)) if a.requires_grad else None
        gb = None
        if b.requires_grad:  # d(a^b)/db = a^b ln a, defined for a > 0; taken as 0 elsewhere
            positive = a.data > 0
            gb = g * np.where(positive, node.data * np.log(np.where(positive, a.data, 1)), 0)
        return ga, gb

    def __matmul__(self, other):
        other = _constant(other, self)
        return _make(self.data @ other.data, (self, other), Tensor._matmul_backward)

    def _matmul_backward(node, g):
        a, b = node._parents
        x, w = a.data, b.data
        # 1-D operands are lifted to matrices as numpy does, then lose the added axis; _fit_grad sums batch axes.
        x2 = x if x.ndim > 1 else x[None, :]
        w2 = w if w.ndim > 1 else w[:, None]
        g2 = g.reshape(np.broadcast_shapes(x2.shape[:-2], w2.shape[:-2]) + (x2.shape[-2], w2.shape[-1]))
        gx = gw = None
        if a.requires_grad:
            gx = g2 @ np.swapaxes(w2, -1, -2)
            gx = gx if x.ndim > 1 else gx[..., 0, :]
        if b.requires_grad:
            gw = np.swapaxes(x2, -1, -2) @ g2
            gw = gw if w.ndim > 1 else gw[..., 0]
        return gx, gw

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

    # ---- elementwise functions -------------------------------------------------------------------------
    def exp(self):
        """e^x elementwise."""
        return _make(np.exp(self.data), (self,), Tensor._exp_backward)

    def _exp_backward(node, g):
        return (g * node.data,)

    def log(self):
        """Natural logarithm elementwise."""
        return _make(np.log(self.data), (self,), Tensor._log_backward)

    def _log_backward(node, g):
        return (g / node._parents[0].data,)

    def sqrt(self):
        """Square root elementwise; the derivative is taken from the saved output."""
        return _make(np.sqrt(self.data), (self,), Tensor._sqrt_backward)

    def _sqrt_backward(node, g):
        return (g * (0.5 / node.data),)

    def abs(self):
        """|x|; the derivative at 0 is taken as 0."""
        return _make(np.abs(self.data), (self,), Tensor._abs_backward)

    def _abs_backward(node, g):
        return (g * np.sign(node._parents[0].data),)

    def apply(self, activation):
        """An elementwise function (kernels.Elementwise, activations.Activation): one node, backward by f'(x)."""
        return _make(activation.kernel(self.data), (self,), Tensor._apply_backward, activation)

    def _apply_backward(node, g):
        activation = node._ctx
        slope = activation.derivative(node._parents[0].data)
        if not np.isfinite(g).all():  # rare, and checked first so that 0 * inf warns nowhere
            with np.errstate(invalid="ignore"):
                product = g * slope
            # As PyTorch: where f' is 0 by definition (relu below 0: an activation that can die), exactly 0 even
            # times inf or nan; a 0 that is an underflow of a positive f' (tanh' at 1e4) times inf stays nan.
            return (np.where(slope == 0, 0, product) if activation.can_die else product,)
        if activation.trusted and slope.__class__ is _ndarray and slope.shape == g.shape and slope.dtype == g.dtype:
            return (np.multiply(slope, g, out=slope),)  # a trusted derivative is a fresh array: reuse it
        return (g * slope,)

    def clip(self, low=None, high=None):
        """Clip to [low, high]; gradient 1 inside (bounds included), 0 outside."""
        # numpy scalar bounds as Python numbers: np.float64 bounds would upcast float32 data (NEP 50).
        low, high = (b.item() if isinstance(b, np.generic) else b for b in (low, high))
        return _make(np.clip(self.data, low, high), (self,), Tensor._clip_backward, (low, high))

    def _clip_backward(node, g):
        (low, high), x = node._ctx, node._parents[0].data
        inside = (True if low is None else x >= low) & (True if high is None else x <= high)
        return (np.where(inside, g, np.zeros((), dtype=g.dtype)),)

    def maximum(self, other):
        """Elementwise max; where both are equal the gradient is split evenly (as PyTorch does)."""
        other = _constant(other, self)
        return _make(np.maximum(self.data, other.data), (self, other), Tensor._choose_backward, np.less)

    def minimum(self, other):
        """Elementwise min; where both are equal the gradient is split evenly."""
        other = _constant(other, self)
        return _make(np.minimum(self.data, other.data), (self, other), Tensor._choose_backward, np.greater)

    def _choose_backward(node, g):
        # As PyTorch: a tie shares the gradient evenly, the loser gets 0; with a NaN neither side loses.
        a, b = node._parents
        loses, zero = node._ctx, np.zeros((), dtype=g.dtype)
        g = np.where(a.data == b.data, g * 0.5, g)
        return (
            np.where(loses(a.data, b.data), zero, g) if a.requires_grad else None,
            np.where(loses(b.data, a.data), zero, g) if b.requires_grad else None,
        )

    # ---- reductions ------------------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False):
        """Sum over ``axis`` (None: all; an int or a tuple), optionally keeping the reduced axes."""
        return _make(np.sum(self.data, axis=axis, keepdims=keepdims), (self,), Tensor._sum_backward, (axis, keepdims))

    def _sum_backward(node, g):
        """Broadcast a reduction's gradient back to the input's shape (a read-only view, no copy)."""
        axis, keepdims = node._ctx
        if not keepdims and axis is not None:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g, node._parents[0].data.shape),)

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
        return _make(self.data.max(axis, keepdims=keepdims), (self,), Tensor._extreme_backward, (axis, keepdims))

    def min(self, axis=None, keepdims: bool = False):
        """Minimum; ties share the gradient evenly."""
        return _make(self.data.min(axis, keepdims=keepdims), (self,), Tensor._extreme_backward, (axis, keepdims))

    def _extreme_backward(node, g):
        x, (axis, keepdims) = node._parents[0].data, node._ctx
        out = node.data if keepdims or axis is None else np.expand_dims(node.data, axis)
        # The elements equal to the result share its gradient evenly (as PyTorch); a NaN result is NaN's.
        hits = (x == out) | (np.isnan(x) & np.isnan(out))
        count = hits.sum(axis=axis, keepdims=True, dtype=g.dtype)  # >= 1: the result is one of the elements
        return (np.where(hits, Tensor._sum_backward(node, g)[0] / count, np.zeros((), dtype=g.dtype)),)

    def log_softmax(self, axis: int = -1):
        """x - logsumexp(x), shifted by the max so that it never overflows."""
        shifted = self.data - self.data.max(axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return _make(out, (self,), Tensor._log_softmax_backward, axis)

    def _log_softmax_backward(node, g):
        return (g - np.exp(node.data) * g.sum(axis=node._ctx, keepdims=True),)

    def softmax(self, axis: int = -1):
        """exp(x) / sum(exp(x)), shifted by the max so that it never overflows."""
        e = np.exp(self.data - self.data.max(axis=axis, keepdims=True))
        return _make(e / e.sum(axis=axis, keepdims=True), (self,), Tensor._softmax_backward, axis)

    def _softmax_backward(node, g):
        s = node.data
        return (s * (g - (g * s).sum(axis=node._ctx, keepdims=True)),)

    # ---- shape -----------------------------------------------------------------------------------------
    def reshape(self, *shape):
        """The same data in a new shape (a tuple or separate ints); backward reshapes back."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _make(self.data.reshape(shape), (self,), Tensor._reshape_backward)

    def _reshape_backward(node, g):
        return (g.reshape(node._parents[0].data.shape),)

    def transpose(self, *axes):
        """Permute the axes (reversed by default); backward applies the inverse permutation."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _make(np.transpose(self.data, axes or None), (self,), Tensor._transpose_backward, axes or None)

    def _transpose_backward(node, g):
        axes = node._ctx
        # Normalise negative axes first: argsort((1, -1, 0)) is not the inverse of the permutation (1, 2, 0).
        return (np.transpose(g, None if axes is None else np.argsort(np.asarray(axes) % g.ndim)),)

    def __getitem__(self, index):
        """numpy indexing: basic, integer arrays, boolean masks (an integer Tensor index counts as its array)."""
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return _make(self.data[index], (self,), Tensor._getitem_backward, index)

    def _getitem_backward(node, g):
        index = node._ctx
        full = np.zeros(node._parents[0].data.shape, dtype=g.dtype)
        items = index if isinstance(index, tuple) else (index,)
        if all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items):
            full[index] = g  # basic indexing selects each element at most once
        else:
            np.add.at(full, index, g)  # fancy indices may repeat: accumulate
        return (full,)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ W + b, equal to the composed ops in value, shape, dtype and gradients.

    One node when W is a matrix and the bias neither enlarges nor upcasts x @ W (the usual layer): it adds
    the bias in place, so no second output-sized array is kept alive. Otherwise it is the composition.
    """
    x, weight = _constant(x, weight), _constant(weight, weight)
    if weight.data.ndim != 2:
        return x @ weight if bias is None else x @ weight + bias
    out = x.data @ weight.data
    if bias is None:
        return _make(out, (x, weight), _linear_backward)
    bias = bias if isinstance(bias, Tensor) else _constant(bias, Tensor(out))  # a number takes the product's dtype
    if kernels.widens(out, bias.data):
        return _make(out, (x, weight), _linear_backward) + bias
    out += bias.data  # out is fresh from the matmul
    return _make(out, (x, weight, bias), _linear_backward)


def _linear_backward(node, g):
    x, weight = node._parents[0], node._parents[1]
    gx = g @ weight.data.T if x.requires_grad else None
    # Every leading axis of x is a batch axis (reshaping a 2-d array to its own shape is a free view).
    gw = x.data.reshape(-1, x.data.shape[-1]).T @ g.reshape(-1, g.shape[-1]) if weight.requires_grad else None
    return gx, gw, g  # the bias's: _fit_grad sums it over the axes the bias was broadcast along


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; backward splits the gradient."""
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    return _make(np.concatenate([t.data for t in tensors], axis=axis), tensors, _concatenate_backward, axis)


def _concatenate_backward(node, g):
    sizes = [p.data.shape[node._ctx] for p in node._parents]
    return tuple(np.split(g, np.cumsum(sizes)[:-1], axis=node._ctx))


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
    a, b = _constant(a, like), _constant(b, like)
    return _make(np.where(condition, a.data, b.data), (a, b), _where_backward, condition)


def _where_backward(node, g):
    (a, b), condition, zero = node._parents, node._ctx, np.zeros((), dtype=g.dtype)
    return (
        np.where(condition, g, zero) if a.requires_grad else None,
        np.where(condition, zero, g) if b.requires_grad else None,
    )


def maximum(a, b) -> Tensor:
    """Elementwise max of tensors or numbers; ties share the gradient evenly."""
    return (a if isinstance(a, Tensor) else _constant(a, b)).maximum(b)


def minimum(a, b) -> Tensor:
    """Elementwise min of tensors or numbers; ties share the gradient evenly."""
    return (a if isinstance(a, Tensor) else _constant(a, b)).minimum(b)
