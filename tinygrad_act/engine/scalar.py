"""Value: a Python-float node on the shared reverse-mode core (micrograd-sized, for teaching and tiny nets).

Every operation is three lines you can read aloud: compute the output, remember the parents, say how the
gradient flows back (a module-level ``_*_backward`` function returning one gradient per parent).

Non-finite results follow IEEE 754 as numpy and Tensor do, never a Python exception: ``x / 0`` is ±inf
(0 / 0 is nan), ``0 ** -1`` is inf, ``log(0)`` is -inf, ``exp`` overflows to inf. A local derivative that is
exactly 0 passes exactly 0, even when the incoming gradient is inf or nan (as PyTorch does).
"""

from __future__ import annotations

import math
import numbers

from .graph import Node, _creation_counter, _GradMode, new_seq

_new = object.__new__
_next_seq = _creation_counter.__next__


def _make(data: float, parents: tuple, backward, ctx=None) -> Value:
    """Build an operation's output; record the graph only when some parent requires grad."""
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._seq = _next_seq()
    out._hooks = None
    out._retain = False
    out._pending = None
    out._ctx = ctx
    if _GradMode.enabled and (parents[0].requires_grad or parents[-1].requires_grad):
        out.requires_grad = True
        out._parents = parents
        out._backward = backward
    else:
        out.requires_grad = False
        out._parents = ()
        out._backward = None
    return out


class Value(Node):
    """A scalar that records the operations applied to it; ``.data`` and ``.grad`` are Python floats."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Value):
            data = data.data
        try:
            self.data = float(data)
        except (TypeError, ValueError):
            raise TypeError(f"Value needs a real number, got {data!r}") from None
        self.grad = 0.0
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None
        self._ctx = None
        self._seq = new_seq()
        self._hooks = None
        self._retain = False
        self._pending = None

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    # ---- graph protocol -------------------------------------------------------------------------------
    def _seed_grad(self, grad):
        return 1.0 if grad is None else float(grad)

    def _accumulate_grad(self, grad, shared):
        self.grad += grad

    def _zero_grad_value(self):
        return 0.0

    def _hook_result(self, hook, result, grad):
        """A hook's replacement gradient: a real number, as a float."""
        if isinstance(result, bool) or not isinstance(result, numbers.Real):
            name = getattr(hook, "__qualname__", repr(hook))
            raise TypeError(f"hook {name} returned {result!r}; a hook on a Value returns None or a real number")
        return float(result)

    def detach(self) -> Value:
        """A new leaf with the same data that does not require grad."""
        return Value(self.data, requires_grad=False)

    def item(self) -> float:
        """The value as a Python float (``.data``)."""
        return self.data

    # ---- primitives ------------------------------------------------------------------------------------
    def __add__(self, other):
        if other.__class__ is Value:
            return _make(self.data + other.data, (self, other), _add_backward)
        return _make(self.data + _number(other), (self,), _pass_backward)

    def __mul__(self, other):
        if other.__class__ is Value:
            return _make(self.data * other.data, (self, other), _mul_backward)
        other = _number(other)
        return _make(self.data * other, (self,), _scale_backward, other)

    def __pow__(self, exponent):
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be a number (use (b * a.log()).exp())")
        exponent = _number(exponent)
        return _make(_power(self.data, exponent), (self,), _pow_backward, exponent)

    def exp(self):
        """e^x; overflows to inf (not an exception) past x ≈ 709.78."""
        try:
            y = math.exp(self.data)
        except OverflowError:
            y = math.inf
        return _make(y, (self,), _exp_backward)

    def log(self):
        """Natural logarithm; log(0) = -inf."""
        x = self.data
        if x < 0 or math.isnan(x):
            raise ValueError(f"log of a negative number: {x!r}")
        return _make(math.log(x) if x > 0 else -math.inf, (self,), _log_backward)

    def tanh(self):
        """tanh(x), exact for every finite x (math.tanh saturates to ±1 without overflow)."""
        return _make(math.tanh(self.data), (self,), _tanh_backward)

    def sigmoid(self):
        """1 / (1 + e^-x), computed from e^-|x| so that it never overflows."""
        return _make(_sigmoid(self.data), (self,), _sigmoid_backward)

    def relu(self):
        """max(0, x); the derivative at 0 is taken as 0, as in PyTorch."""
        x = self.data
        return _make(x if x > 0 else 0.0, (self,), _relu_backward)

    def apply(self, activation):
        """Any registered activation (tinygrad_act.activations), differentiated by its analytic derivative."""
        return _make(activation.scalar_forward(self.data), (self,), _apply_backward, activation)

    # ---- composed from the primitives ------------------------------------------------------------------
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __truediv__(self, other):
        """True division (not x * y**-1, which rounds twice and overflows); x / 0 is ±inf or nan."""
        if other.__class__ is Value:
            return _make(_divide(self.data, other.data), (self, other), _divide_backward)
        other = _number(other)
        return _make(_divide(self.data, other), (self,), _divide_by_number_backward, other)

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return (-self) + other

    def __rtruediv__(self, other):
        return Value(_number(other), requires_grad=False) / self

    def __rpow__(self, base):
        base = _number(base)
        if base <= 0:
            raise ValueError(f"number ** Value needs a positive base, got {base!r}")
        return (self * math.log(base)).exp()

    def __getattr__(self, name):
        # Any registered activation is a method: Value(0.3).gelu(), .leaky_relu(alpha=0.2), ...
        from ..nn import activations

        if name.startswith("_") or not activations.exists(name):
            raise AttributeError(f"'Value' object has no attribute {name!r}")
        return lambda **params: activations.get(name, **params)(self)


def _number(x) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"Value operations take a Value or a real number, got {x!r}") from None


def _power(x: float, p: float) -> float:
    try:
        y = x**p
    except ZeroDivisionError:  # 0.0 ** negative
        return math.inf
    except OverflowError:
        return math.inf
    if isinstance(y, complex):
        raise ValueError(f"{x!r} ** {p!r} is not a real number")
    return y


def _divide(x: float, y: float) -> float:
    try:
        return x / y
    except ZeroDivisionError:  # IEEE 754, as numpy: the sign of the zero counts
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


# ---- backward functions: (node, dL/dnode) -> one dL/dparent per parent ------------------------------------
def _add_backward(node, g):
    return g, g


def _pass_backward(node, g):
    return (g,)


def _mul_backward(node, g):
    a, b = node._parents
    return g * b.data, g * a.data


def _scale_backward(node, g):
    return (g * node._ctx,)


def _divide_by_number_backward(node, g):
    return (_divide(g, node._ctx),)


def _divide_backward(node, g):
    a, b = node._parents
    # d(a/b)/db = -a/b^2, as -(a/b)/b (PyTorch's form): b^2 would underflow at b = 1e-200
    return _divide(g, b.data), -(g * _divide(node.data, b.data))


def _pow_backward(node, g):
    p = node._ctx
    if p == 0.0:  # x**0 is constant, also at x = 0 where p * x**(p-1) would be 0 * inf
        return (0.0,)
    return (g * p * _power(node._parents[0].data, p - 1.0),)


def _exp_backward(node, g):
    return (g * node.data,)


def _log_backward(node, g):
    x = node._parents[0].data
    return (g / x if x != 0 else math.copysign(math.inf, g),)


# Activations differentiate from the input: 1 - y^2 and y (1 - y) are 0 once y rounds to 1, though
# sigmoid'(40) = 4.2e-18.
def _tanh_backward(node, g):
    z = math.exp(-2.0 * abs(node._parents[0].data))  # 1 - tanh^2 x = 4 e^-2|x| / (1 + e^-2|x|)^2
    return (g * (4.0 * z / ((1.0 + z) * (1.0 + z))),)


def _sigmoid_backward(node, g):
    z = math.exp(-abs(node._parents[0].data))  # sigma(x)(1 - sigma(x)) = e^-|x| / (1 + e^-|x|)^2
    return (g * (z / ((1.0 + z) * (1.0 + z))),)


def _relu_backward(node, g):
    return (g if node._parents[0].data > 0 else 0.0,)


def _apply_backward(node, g):
    activation = node._ctx
    slope = activation.scalar_derivative(node._parents[0].data)
    # As PyTorch (and Tensor): where f' is 0 by definition (an activation that can die), 0 even times inf or nan
    return (0.0 if slope == 0.0 and activation.can_die else g * slope,)
