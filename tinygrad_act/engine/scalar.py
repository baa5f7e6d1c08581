"""Value: a Python-float node on the shared reverse-mode core (micrograd-sized, for teaching and tiny nets).

Every operation reads aloud: compute the output, remember the parents, right below say how the gradient flows back.
Non-finite results follow IEEE 754 as numpy and Tensor do, never a Python exception: ``x / 0`` is ±inf (0 / 0 is
nan), ``0 ** -1`` is inf, ``log(0)`` is -inf, ``exp`` overflows to inf. A local derivative that is exactly 0
passes exactly 0, even when the incoming gradient is inf or nan (as PyTorch does).
"""

from __future__ import annotations

import math
import numbers

from .graph import Node, make


class Value(Node):
    """A scalar that records the operations applied to it; ``.data`` and ``.grad`` are Python floats."""

    __slots__ = ()
    _empty_grad = 0.0

    def __init__(self, data, requires_grad: bool = True):
        try:
            data = float(data.data if isinstance(data, Value) else data)
        except (TypeError, ValueError):
            raise TypeError(f"Value needs a real number, got {data!r}") from None
        super().__init__(data, bool(requires_grad))

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    def item(self) -> float:
        """The value as a Python float (``.data``)."""
        return self.data

    def _seed_grad(self, grad):
        return 1.0 if grad is None else float(grad)

    def _accumulate_grad(self, grad, shared):
        self.grad += grad

    def _hook_result(self, hook, result, grad):
        if isinstance(result, bool) or not isinstance(result, numbers.Real):
            name = getattr(hook, "__qualname__", repr(hook))
            raise TypeError(f"hook {name} returned {result!r}; a hook on a Value returns None or a real number")
        return float(result)

    def __add__(self, other):
        if other.__class__ is Value:
            return make(Value, self.data + other.data, (self, other), Value._add_backward)
        return make(Value, self.data + _number(other), (self,), Value._add_backward)

    def _add_backward(node, g):  # x + y and x + number: g to each parent (the walk zips them with the parents)
        return g, g

    def __mul__(self, other):
        if other.__class__ is Value:
            return make(Value, self.data * other.data, (self, other), Value._mul_backward)
        other = _number(other)
        return make(Value, self.data * other, (self,), Value._scale_backward, other)

    def _mul_backward(node, g):
        a, b = node._parents
        return g * b.data, g * a.data

    def _scale_backward(node, g):
        return (g * node._ctx,)

    def __truediv__(self, other):
        """True division (not x * y**-1, which rounds twice and overflows); x / 0 is ±inf or nan."""
        if other.__class__ is Value:
            return make(Value, _divide(self.data, other.data), (self, other), Value._divide_backward)
        other = _number(other)
        return make(Value, _divide(self.data, other), (self,), Value._divide_by_number_backward, other)

    def _divide_backward(node, g):
        a, b = node._parents
        # d(a/b)/db = -a/b^2, as -(a/b)/b (PyTorch's form): b^2 would underflow at b = 1e-200
        return _divide(g, b.data), -(g * _divide(node.data, b.data))

    def _divide_by_number_backward(node, g):
        return (_divide(g, node._ctx),)

    def __pow__(self, exponent):
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be a number (use (b * a.log()).exp())")
        exponent = _number(exponent)
        return make(Value, _power(self.data, exponent), (self,), Value._pow_backward, exponent)

    def _pow_backward(node, g):
        p = node._ctx
        if p == 0.0:  # x**0 is constant, also at x = 0 where p * x**(p-1) would be 0 * inf
            return (0.0,)
        return (g * p * _power(node._parents[0].data, p - 1.0),)

    def exp(self):
        """e^x; overflows to inf (not an exception) past x ≈ 709.78."""
        try:
            y = math.exp(self.data)
        except OverflowError:
            y = math.inf
        return make(Value, y, (self,), Value._exp_backward)

    def _exp_backward(node, g):
        return (g * node.data,)

    def log(self):
        """Natural logarithm; log(0) = -inf."""
        x = self.data
        if x < 0 or math.isnan(x):
            raise ValueError(f"log of a negative number: {x!r}")
        return make(Value, math.log(x) if x > 0 else -math.inf, (self,), Value._log_backward)

    def _log_backward(node, g):
        x = node._parents[0].data
        return (g / x if x != 0 else math.copysign(math.inf, g),)

    def apply(self, activation):
        """An elementwise function (kernels.Elementwise, activations.Activation), differentiated analytically."""
        return make(Value, activation.scalar_forward(self.data), (self,), Value._apply_backward, activation)

    def _apply_backward(node, g):
        activation = node._ctx
        slope = activation.scalar_derivative(node._parents[0].data)
        # As PyTorch (and Tensor): where f' is 0 by definition (an activation that can die), 0 even times inf or nan
        return (0.0 if slope == 0.0 and activation.can_die else g * slope,)

    def __sub__(self, other):
        return self + (-other)

    __radd__ = __add__
    __rmul__ = __mul__
    _inline = (_add_backward, _mul_backward)  # graph.backward runs these two inline (the same sums, less work)

    def __rtruediv__(self, other):
        return Value(_number(other), requires_grad=False) / self

    def __rpow__(self, base):
        base = _number(base)
        if base <= 0:
            raise ValueError(f"number ** Value needs a positive base, got {base!r}")
        return (self * math.log(base)).exp()


def _number(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"Value operations take a Value or a real number, got {x!r}") from None


def _power(x: float, p: float) -> float:
    try:
        y = x**p
    except (ZeroDivisionError, OverflowError):  # 0.0 ** negative, or too large
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
