"""Value: every operation's gradient matches central finite differences and its closed-form derivative;
data and gradients are Python floats; extreme inputs neither overflow nor warn."""

import gc
import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tinygrad_act import Value, activations
from tinygrad_act.engine import graph, scalar_walk
from tinygrad_act.engine.gradcheck import gradcheck


def floats(low=-3.0, high=3.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from_zero(margin=0.05, high=3.0):
    return st.one_of(floats(-high, -margin), floats(margin, high))


def sigmoid(x):
    return 0.5 * (1.0 + math.tanh(0.5 * x))


# name: (operation on Values, the same on floats, closed-form partial derivatives, domain of each argument)
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: (1.0, 1.0), floats(), floats()),
    "sub": (lambda a, b: a - b, lambda a, b: (1.0, -1.0), floats(), floats()),
    "mul": (lambda a, b: a * b, lambda a, b: (b, a), floats(), floats()),
    "div": (lambda a, b: a / b, lambda a, b: (1 / b, -a / b**2), floats(), away_from_zero(0.3)),
    "pow": (lambda a, b: a**b, lambda a, b: (b * a ** (b - 1), a**b * math.log(a)), floats(0.2, 3.0), floats()),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_op_matches_float_arithmetic_closed_form_and_finite_differences(name, data):
    op, partials, domain_a, domain_b = BINARY[name]
    x, y = data.draw(domain_a), data.draw(domain_b)
    a, b = Value(x), Value(y)
    out = op(a, b)
    out.backward()
    assert out.data == pytest.approx(op(x, y), rel=1e-12, abs=1e-300)
    da, db = partials(x, y)
    assert a.grad == pytest.approx(da, rel=1e-12) and b.grad == pytest.approx(db, rel=1e-12)
    result = gradcheck(op, [Value(x), Value(y)])
    assert result.ok, result


# name: (operation of a Value and a Python number c, closed-form d/dx, domain of x, domain of c)
WITH_NUMBER = {
    "value + number": (lambda x, c: x + c, lambda x, c: 1.0, floats(), floats()),
    "number + value": (lambda x, c: c + x, lambda x, c: 1.0, floats(), floats()),
    "value - number": (lambda x, c: x - c, lambda x, c: 1.0, floats(), floats()),
    "number - value": (lambda x, c: c - x, lambda x, c: -1.0, floats(), floats()),
    "value * number": (lambda x, c: x * c, lambda x, c: c, floats(), floats()),
    "number * value": (lambda x, c: c * x, lambda x, c: c, floats(), floats()),
    "value / number": (lambda x, c: x / c, lambda x, c: 1 / c, floats(), away_from_zero(0.3)),
    "number / value": (lambda x, c: c / x, lambda x, c: -c / x**2, away_from_zero(0.3), floats()),
    "value ** number": (lambda x, c: x**c, lambda x, c: c * x ** (c - 1), floats(0.2, 3.0), floats(-3.0, 3.0)),
    "number ** value": (lambda x, c: c**x, lambda x, c: c**x * math.log(c), floats(), floats(0.2, 3.0)),
}


@pytest.mark.parametrize("name", WITH_NUMBER)
@given(data=st.data())
def test_op_with_python_number_on_either_side_matches_closed_form_and_finite_differences(name, data):
    op, derivative, domain_x, domain_c = WITH_NUMBER[name]
    x, c = data.draw(domain_x), data.draw(domain_c)
    v = Value(x)
    out = op(v, c)
    out.backward()
    assert out.data == pytest.approx(op(x, c), rel=1e-12, abs=1e-300)
    assert v.grad == pytest.approx(derivative(x, c), rel=1e-9, abs=1e-300)
    result = gradcheck(lambda u: op(u, c), Value(x))
    assert result.ok, result


@given(x=away_from_zero(0.3, 2.0), exponent=st.integers(-3, 4))
def test_integer_power_of_a_negative_or_positive_base_matches_closed_form(x, exponent):
    v = Value(x)
    out = v**exponent
    out.backward()
    assert out.data == pytest.approx(x**exponent, rel=1e-12)
    assert v.grad == pytest.approx(exponent * x ** (exponent - 1), rel=1e-12, abs=1e-300)
    assert gradcheck(lambda u: u**exponent, Value(x)).ok


def test_power_zero_has_zero_gradient_everywhere_including_at_zero():
    for x in (0.0, -1.5, 2.0):
        v = Value(x)
        out = v**0
        out.backward()
        assert out.data == 1.0
        assert v.grad == 0.0, f"d(x**0)/dx at x={x} is 0, got {v.grad}"


# name: (method call, float function, closed-form derivative, domain)
UNARY = {
    "neg": (lambda v: -v, lambda x: -x, lambda x: -1.0, floats()),
    "exp": (lambda v: v.exp(), math.exp, math.exp, floats()),
    "log": (lambda v: v.log(), math.log, lambda x: 1 / x, floats(0.05, 10.0)),
    "tanh": (lambda v: v.tanh(), math.tanh, lambda x: 1 - math.tanh(x) ** 2, floats(-5.0, 5.0)),
    "sigmoid": (lambda v: v.sigmoid(), sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x)), floats(-8.0, 8.0)),
    "relu": (lambda v: v.relu(), lambda x: max(x, 0.0), lambda x: float(x > 0), away_from_zero()),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_op_matches_closed_form_and_finite_differences(name, data):
    op, function, derivative, domain = UNARY[name]
    x = data.draw(domain)
    v = Value(x)
    out = op(v)
    out.backward()
    assert out.data == pytest.approx(function(x), rel=1e-12, abs=1e-15)
    assert v.grad == pytest.approx(derivative(x), rel=1e-9, abs=1e-15)
    result = gradcheck(op, Value(x))
    assert result.ok, result


@pytest.mark.parametrize("name", activations.names())
@given(x=floats(-4.0, 4.0))
def test_every_registered_activation_on_value_matches_its_numpy_forward_and_derivative(name, x):
    activation = activations.get(name)
    by_method = getattr(Value(x), name)(**activation.params)  # parameters pass by keyword
    v = Value(x)
    applied = activation(v)
    applied.backward()
    assert isinstance(applied, Value) and isinstance(by_method, Value)
    expected = float(activation.forward(np.array(x)))
    assert applied.data == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert by_method.data == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert v.grad == pytest.approx(float(activation.derivative(np.array(x))), rel=1e-9, abs=1e-12)


def test_activation_parameters_reach_the_value_method():
    v = Value(-2.0)
    out = v.leaky_relu(alpha=0.2)
    out.backward()
    assert out.data == pytest.approx(-0.4) and v.grad == pytest.approx(0.2)


def test_unknown_attributes_are_attribute_errors():
    with pytest.raises(AttributeError, match="no_such_activation"):
        Value(1.0).no_such_activation()


EXTREME = [1000.0, -1000.0, 1e300, -1e300, 710.0, -745.5]


@pytest.mark.parametrize("x", EXTREME)
def test_tanh_and_sigmoid_of_extreme_inputs_are_exact_and_raise_no_overflow(x):
    t, s = Value(x), Value(x)
    tanh, sig = t.tanh(), s.sigmoid()
    tanh.backward()
    sig.backward()
    assert tanh.data == math.copysign(1.0, x)
    assert sig.data == (1.0 if x > 0 else 0.0)
    # the derivatives' true values, e^-|x| (subnormal at 710 and -745.5) and 4 e^-2|x| (0 in float64), not
    # the 0 that y (1 - y) and 1 - y^2 give once y rounds to 1
    assert t.grad == 0.0 and s.grad == math.exp(-abs(x))


def test_value_1000_tanh_and_minus_1000_sigmoid_do_not_overflow():
    assert Value(1000.0).tanh().data == 1.0
    assert Value(-1000.0).sigmoid().data == 0.0


@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_tanh_and_sigmoid_are_finite_and_bounded_for_every_finite_input(x):
    t, s = Value(x), Value(x)
    (t.tanh() + s.sigmoid()).backward()
    y = Value(x).sigmoid().data
    assert 0.0 <= y <= 1.0 and -1.0 <= Value(x).tanh().data <= 1.0
    assert math.isfinite(t.grad) and math.isfinite(s.grad)


def test_exp_overflows_to_inf_without_raising():
    v = Value(1000.0)
    assert v.exp().data == math.inf


def test_data_and_grad_are_python_floats_after_every_operation():
    a, b = Value(2), Value(np.float64(-3.0))
    outs = [a + b, a - 1, 2 - a, a * b, a / b, 1 / a, a**2, 2**a, -a, a.exp(), a.log(), a.tanh(), a.sigmoid(), b.relu()]
    total = sum(outs)
    total.backward()
    for v in [a, b, *outs, total]:
        assert type(v.data) is float and type(v.grad) is float


def test_value_rejects_what_is_not_a_real_number_with_a_clear_error():
    with pytest.raises(TypeError, match="real number"):
        Value("abc")
    with pytest.raises(TypeError, match="Value or a real number"):
        Value(1.0) + "abc"
    with pytest.raises(TypeError, match="Value or a real number"):
        Value(2.0) ** "three"


@pytest.mark.parametrize(
    "compute, expected",
    [
        (lambda: Value(-1.0).log(), math.nan),
        (lambda: Value(math.nan).log(), math.nan),
        (lambda: Value(0.0).log(), -math.inf),
        (lambda: Value(-8.0) ** (1 / 3), math.nan),
        (lambda: Value(-8.0) ** Value(1 / 3), math.nan),
        (lambda: (-2.0) ** Value(0.5), math.nan),
        (lambda: Value(-0.0) ** -1, -math.inf),
        (lambda: Value(-10.0) ** 401, -math.inf),
        (lambda: Value(10.0) ** 400, math.inf),
        (lambda: Value(1000.0).exp(), math.inf),
    ],
    ids=[
        "log(-1)",
        "log(nan)",
        "log(0)",
        "(-8)**(1/3)",
        "(-8)**Value(1/3)",
        "(-2)**Value(0.5)",
        "(-0)**-1",
        "(-10)**401",
        "10**400",
        "exp(1000)",
    ],  # fmt: skip
)
def test_value_returns_what_numpy_returns_where_python_floats_would_raise(compute, expected):
    with np.errstate(all="ignore"):  # numpy warns where Value stays silent, as Python floats do
        assert np.array_equal(compute().data, expected, equal_nan=True)


def test_value_leaves_require_grad_by_default_and_detach_does_not():
    v = Value(1.5)
    assert v.requires_grad and v.is_leaf
    d = v.detach()
    assert d.data == 1.5 and not d.requires_grad
    out = v * d
    out.backward()
    assert v.grad == 1.5 and d.grad == 0.0


def test_item_returns_the_float():
    assert Value(2.5).item() == 2.5


# ---- division: true division, IEEE 754 at zero ----------------------------------------------------------
def test_value_division_is_true_division_bit_for_bit_like_python_floats():
    assert (Value(0.7) / Value(0.1)).data == 0.7 / 0.1 == 6.999999999999999
    assert (Value(0.7) / 0.1).data == 0.7 / 0.1
    assert (0.7 / Value(0.1)).data == 0.7 / 0.1


def test_value_division_gradient_of_tiny_operands_is_finite():
    x, y = Value(1e-200), Value(1e-200)
    (x / y).backward()
    assert x.grad == 1e200 and y.grad == -1e200  # -x/y^2 written as -(x/y)/y: y^2 underflows


@pytest.mark.parametrize("x, y", [(1.0, 0.0), (-1.0, 0.0), (1.0, -0.0), (0.0, 0.0), (math.nan, 0.0), (math.inf, 0.0)])
def test_value_division_by_zero_is_inf_or_nan_as_numpy_never_an_exception(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = float(np.divide(x, y))
    for out in (Value(x) / Value(y), Value(x) / y, x / Value(y)):
        assert out.data == expected or (math.isnan(out.data) and math.isnan(expected))
    a, b = Value(x), Value(y)
    (a / b).backward()  # no exception in the backward either
    assert a.grad == math.copysign(math.inf, y)


@pytest.mark.parametrize("incoming", [math.inf, -math.inf, math.nan], ids=repr)
def test_value_zero_local_derivative_passes_exactly_zero_even_for_an_inf_or_nan_gradient(incoming):
    for x, activation in [(-1.0, "relu"), (2.0, "hard_tanh"), (-5.0, "hard_sigmoid")]:
        v = Value(x)
        getattr(v, activation)().backward(incoming)
        assert v.grad == 0.0, (activation, x, v.grad)


def test_value_reciprocal_of_relu_below_zero_has_gradient_zero_as_in_pytorch():
    v = Value(-1.0)
    (v.relu() ** -1).backward()  # 1/0 = inf; its gradient -inf reaches relu, whose derivative is 0 there
    assert v.grad == 0.0


def test_values_own_walk_gives_the_bits_of_the_shared_walk():
    """scalar_walk sends x + y and x * y gradients inline; graph.backward calls their ops: the same bits."""

    def gradients(walk):
        rng = np.random.default_rng(3)
        leaves = [Value(x) for x in rng.standard_normal(6)]
        frozen = Value(0.7, requires_grad=False)
        out = Value(0.0)
        for i in range(40):  # reused leaves: many sums arrive at each, in an order that rounding reveals
            a, b = leaves[i % 6], leaves[(3 * i + 1) % 6]
            out = out + (a * b).tanh() * frozen + a * 0.3 - b / 1.5 + (a * a) ** 0.5 + 1.5
        walk(out, 1.0)
        return [v.grad for v in leaves], frozen.grad

    assert Value._walk is not graph.backward
    assert gradients(Value._walk) == gradients(graph.backward)


def _mixed_graph():
    rng = np.random.default_rng(5)
    leaves = [Value(x) for x in rng.standard_normal(5)]
    out = Value(0.0)
    for i in range(30):
        a, b = leaves[i % 5], leaves[(2 * i + 1) % 5]
        out = out + (a * b).sigmoid() * 0.5 - b / 1.5 + a**2.0 + (a + b).exp() / (1.0 + b * b)
    return out


def test_values_own_order_lists_the_nodes_of_the_shared_order_in_the_same_order():
    """scalar_walk.topological_order reads a Value's two parent fields; graph.topological_order its _parents."""
    root = _mixed_graph()
    mark = object()
    own = scalar_walk.topological_order(root, mark)
    graph._clear(own)
    assert [id(node) for node in own] == [id(node) for node in graph.topological_order(root)]
    assert all(node._pending is None for node in own)


def test_a_value_operation_leaves_one_object_for_the_garbage_collector_not_two():
    """Parents in two fields, not a tuple: each recorded op is one tracked object (the collector's work halves)."""
    x, chain = Value(1.0), []
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(1000):
        x = x * 1.5 + x
        chain.append(x)
    assert len(gc.get_objects()) - before < 2000 * 1.05  # two ops per step, one object each (a tuple made it 4000)
    scaled, previous = chain[-1]._parents
    assert previous is chain[-2] and scaled._parents == (chain[-2],)


def test_value_parents_read_and_write_as_the_tuple_graph_keeps():
    a, b = Value(2.0), Value(3.0)
    assert (a * b)._parents == (a, b) and (a * 2.0)._parents == (a,) and a._parents == ()
    y = a * b
    y.backward()
    assert y._parents == () and y._left is None and y._right is None
