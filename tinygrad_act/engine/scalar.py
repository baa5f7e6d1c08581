"""Value: a Python-float node on the shared reverse-mode core (micrograd-sized, for teaching and tiny nets).

Every operation reads aloud: compute the output, remember the parents and the ``Op``, whose backward (below the
class) says how the gradient flows back. Non-finite results follow IEEE 754 as numpy, Tensor and PyTorch do, never
a Python exception: ``x / 0`` is ±inf (0 / 0 is nan), ``0 ** -1`` is inf, ``(-8) ** (1/3)`` and ``log(-1)`` are
nan, ``log(0)`` is -inf, ``exp`` overflows to inf. A local derivative that is exactly 0 passes exactly 0, even
when the incoming gradient is inf or nan (as PyTorch). Formulas are Tensor's, in its order: both round alike.
"""

from __future__ import annotations

import numbers

from . import scalar_walk
from .graph import Node, Op
from .kernels import divide_scalar as _divide
from .kernels import exp_scalar as _exp
from .kernels import log_scalar as _log
from .kernels import power_scalar as _power
from .scalar_walk import make


class Value(Node):
    """A scalar that records the operations applied to it; ``.data`` and ``.grad`` are Python floats."""

    # parents in two fields, not a tuple: one object per op for the garbage collector to track (scalar_walk.py)
    __slots__ = ("_left", "_right")
    _parents = property(scalar_walk.parents, scalar_walk.set_parents)
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
            return make(Value, self.data + other.data, (self, other), ADD)
        other = _number(other)
        return make(Value, self.data + other, (self,), ADD, other)

    def __mul__(self, other):
        if other.__class__ is Value:
            return make(Value, self.data * other.data, (self, other), MUL)
        other = _number(other)
        return make(Value, self.data * other, (self,), SCALE, other)

    def __truediv__(self, other):
        """True division (not x * y**-1, which rounds twice and overflows); x / 0 is ±inf or nan."""
        if other.__class__ is Value:
            return make(Value, _divide(self.data, other.data), (self, other), DIVIDE)
        other = _number(other)
        return make(Value, _divide(self.data, other), (self,), DIVIDE, other)

    def __pow__(self, exponent):
        if exponent.__class__ is Value:
            return make(Value, _power(self.data, exponent.data), (self, exponent), POWER)
        exponent = _number(exponent)
        return make(Value, _power(self.data, exponent), (self,), POWER, exponent)

    def exp(self):
        """e^x; overflows to inf (not an exception) past x ≈ 709.78."""
        return make(Value, _exp(self.data), (self,), EXP)

    def log(self):
        """Natural logarithm; log(0) = -inf, log(x < 0) = nan."""
        return make(Value, _log(self.data), (self,), LOG)

    def apply(self, activation):
        """An elementwise function (kernels.Elementwise, activations.Activation), differentiated analytically."""
        return make(Value, activation.scalar_forward(self.data), (self,), APPLY, activation)

    def __sub__(self, other):
        return self + (-other)

    __radd__ = __add__
    __rmul__ = __mul__

    def __rtruediv__(self, other):
        return Value(_number(other), requires_grad=False) / self

    def __rpow__(self, base):
        return Value(_number(base), requires_grad=False) ** self


# ---- how the gradient flows back through each operation (node: the output; g: dL/d(output)) ----------------
# x + c, x / c, x ** c with a number c: the op's ctx is c (x * c is SCALE: the inline x * y has two parents)
def _mul_backward(node, g):
    a, b = node._parents
    return g * b.data, g * a.data


def _divide_backward(node, g):
    if node._ctx is not None:
        return (_divide(g, node._ctx),)
    a, b = node._parents
    # d(a/b)/db = -a/b^2, as -(a/b)/b (PyTorch's form): b^2 would underflow at b = 1e-200
    return _divide(g, b.data), -(g * _divide(node.data, b.data))


def _power_backward(node, g):
    p, x = node._ctx, node._parents[0].data
    if p is None:
        return _value_power_backward(node, g)
    if p == 0.0:  # x**0 is constant, also at x = 0 where p * x**(p-1) would be 0 * inf
        return (0.0,)
    if p == -1.0:
        return (-g * (node.data * node.data),)
    return (g * (p * _power(x, p - 1.0)),)


def _value_power_backward(node, g):
    a, b = node._parents
    x, p = a.data, b.data
    # As PyTorch: d/dx is 0 where p = 0 (x**0 is constant); d/dp = x**p ln x, taken as 0 at x = 0 for p >= 0
    # (the limit from the right), nan for x < 0 (ln x is not real)
    gx = 0.0 if p == 0.0 else g * (p * _power(x, p - 1.0))
    return gx, g * (0.0 if x == 0.0 and p >= 0.0 else node.data * _log(x))


def _apply_backward(node, g):
    activation = node._ctx
    slope = activation.scalar_derivative(node._parents[0].data)
    # As PyTorch (and Tensor): where f' is 0 by definition (an activation that can die), 0 even times inf or nan
    return (0.0 if slope == 0.0 and activation.can_die else g * slope,)


ADD = Op("add", lambda c, a, b=None: a + (c if b is None else b), lambda node, g: (g, g))  # g to each parent
MUL = Op("mul", lambda c, a, b: a * b, _mul_backward)
SCALE = Op("scale", lambda c, a: a * c, lambda node, g: (g * node._ctx,))
DIVIDE = Op("divide", lambda c, a, b=None: _divide(a, c if b is None else b), _divide_backward)
POWER = Op("power", lambda c, a, b=None: _power(a, c if b is None else b), _power_backward)
EXP = Op("exp", lambda c, a: _exp(a), lambda node, g: (g * node.data,))
LOG = Op("log", lambda c, a: _log(a), lambda node, g: (_divide(g, node._parents[0].data),))
APPLY = Op("apply", lambda activation, a: activation.scalar_forward(a), _apply_backward)

Value._walk = staticmethod(scalar_walk.inlining(ADD, MUL, SCALE))  # graph.backward's rules, the commonest inline


def _number(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"Value operations take a Value or a real number, got {x!r}") from None
