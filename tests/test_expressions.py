"""One table of expressions run through Python floats, Value and Tensor alike: the values agree, and the
gradients of Value and Tensor agree with each other and with central differences of the float version."""

import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tinygrad_act import Tensor, Value


class FloatOps:
    """The functions of the table on Python floats."""

    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    tanh = staticmethod(math.tanh)
    relu = staticmethod(lambda x: max(x, 0.0))

    @staticmethod
    def sigmoid(x):
        return 0.5 * (1.0 + math.tanh(0.5 * x))


class NodeOps:
    """The same functions as methods, shared by Value and Tensor."""

    exp = staticmethod(lambda v: v.exp())
    log = staticmethod(lambda v: v.log())
    tanh = staticmethod(lambda v: v.tanh())
    relu = staticmethod(lambda v: v.relu())
    sigmoid = staticmethod(lambda v: v.sigmoid())


def floats(low=-2.0, high=2.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from_zero(margin=0.3, high=2.0):
    return st.one_of(floats(-high, -margin), floats(margin, high))


def reused_product(x, y, f):
    h = x * y  # one node, used three times
    return h * h + f.tanh(h) - h


def chain_of_activations(x, y, f):
    return f.sigmoid(f.tanh(f.exp(x * 0.5) - y)) * f.relu(y) + f.relu(-y) * 2.0


# name: (expression of x, y and an op namespace f; domain of x; domain of y)
EXPRESSIONS = {
    "product plus": (lambda x, y, f: x * y + x, floats(), floats()),
    "readme": (lambda x, y, f: (x * y + f.tanh(x)) ** 2 / f.exp(y), floats(), floats()),
    "ratios": (lambda x, y, f: x / y - y / x, away_from_zero(), away_from_zero()),
    "reflected numbers": (lambda x, y, f: 2.5 - x + 3 / y - (1 - y) * 4 + 2 * x / 5, floats(), away_from_zero()),
    "negations": (lambda x, y, f: -(x**2) + (-y) * 3 - -x, floats(), floats()),
    "powers": (lambda x, y, f: 2**x + x**3 - y**-2 + f.exp(y) ** 1.5, floats(), away_from_zero()),
    "log norm": (lambda x, y, f: f.log(x * x + y * y) * 0.5, away_from_zero(), floats()),
    "sigmoid of product": (lambda x, y, f: f.sigmoid(x * y) * f.log(1 + x * x), floats(), floats()),
    "nested tanh": (lambda x, y, f: f.tanh(f.tanh(f.tanh(x * y + 0.5))), floats(), floats()),
    "relu gates": (lambda x, y, f: f.relu(x) * y + f.relu(-y) * x, away_from_zero(0.05), away_from_zero(0.05)),
    "difference of squares": (lambda x, y, f: (x + y) * (x - y) / (1 + x**2), floats(), floats()),
    "sigmoid identity": (lambda x, y, f: 1 / (1 + f.exp(-x)) - f.sigmoid(x) + y, floats(), floats()),
    "reused product": (reused_product, floats(), floats()),
    "chain of activations": (chain_of_activations, floats(), away_from_zero(0.05)),
}


def central_difference(function, x, y, eps=1e-6):
    return (
        (function(x + eps, y) - function(x - eps, y)) / (2 * eps),
        (function(x, y + eps) - function(x, y - eps)) / (2 * eps),
    )


@pytest.mark.parametrize("name", EXPRESSIONS)
@given(data=st.data(), count=st.integers(1, 4))
def test_expression_agrees_across_floats_values_and_tensors(name, data, count):
    expression, domain_x, domain_y = EXPRESSIONS[name]
    xs = [data.draw(domain_x) for _ in range(count)]
    ys = [data.draw(domain_y) for _ in range(count)]
    on_floats = lambda x, y: expression(x, y, FloatOps)  # noqa: E731

    value_grads = []
    for x, y in zip(xs, ys):
        expected = on_floats(x, y)
        numeric = central_difference(on_floats, x, y)

        vx, vy = Value(x), Value(y)
        out = expression(vx, vy, NodeOps)
        out.backward()
        assert out.data == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert (vx.grad, vy.grad) == pytest.approx(numeric, rel=1e-5, abs=1e-6)
        value_grads.append((vx.grad, vy.grad))

        tx, ty = Tensor(x, requires_grad=True), Tensor(y, requires_grad=True)  # 0-d tensors
        out = expression(tx, ty, NodeOps)
        out.backward()
        assert out.shape == () and out.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert (tx.grad.item(), ty.grad.item()) == pytest.approx((vx.grad, vy.grad), rel=1e-12, abs=1e-12)

    # All points at once: the expression is elementwise, so the gradient of the sum is each point's gradient.
    tx, ty = Tensor(np.array(xs), requires_grad=True), Tensor(np.array(ys), requires_grad=True)
    out = expression(tx, ty, NodeOps)
    np.testing.assert_allclose(out.data, [on_floats(x, y) for x, y in zip(xs, ys)], rtol=1e-12, atol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(np.stack([tx.grad, ty.grad], axis=1), value_grads, rtol=1e-12, atol=1e-12)
