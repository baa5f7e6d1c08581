"""gradcheck itself: it passes correct gradients, reports wrong ones (and where), guards float32, and leaves
its inputs untouched."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tinygrad_act import Tensor, Value, no_grad
from tinygrad_act.engine.gradcheck import GradcheckResult, gradcheck
from tinygrad_act.engine.graph import Op
from tinygrad_act.engine.tensor import _record


class Elementwise:
    """A stand-in activation (the protocol Tensor.apply and Value.apply use) with a chosen derivative."""

    trusted = False  # not a built-in: the engine must not reuse its derivative's array
    can_die = False  # no flat region where a zero derivative would mask inf and nan
    in_place = False  # its derivative takes no out= array

    def __init__(self, forward, derivative):
        self.forward, self.derivative = forward, derivative
        self.kernel = forward

    def scalar_forward(self, x):
        return float(self.forward(np.float64(x)))

    def scalar_derivative(self, x):
        return float(self.derivative(np.float64(x)))


SIN = Elementwise(np.sin, np.cos)
SIN_WRONG = Elementwise(np.sin, lambda x: 1.01 * np.cos(x))


def t(array):
    return Tensor(np.array(array, dtype=np.float64), requires_grad=True)


def test_passes_a_correct_tensor_function_and_reports_its_error_size():
    rng = np.random.default_rng(0)
    result = gradcheck(lambda a, b: (a @ b).tanh(), [t(rng.standard_normal((3, 4))), t(rng.standard_normal(4))])
    assert isinstance(result, GradcheckResult)
    assert result.ok and bool(result)
    assert result.checked == 16
    assert 0 <= result.max_abs_error < 1e-8 and 0 <= result.max_rel_error < 1e-6


def test_passes_a_correct_value_function():
    result = gradcheck(lambda a, b: (a * b + a.tanh()) ** 2 / b.exp(), [Value(2.0), Value(-3.0)])
    assert result.ok and result.checked == 2
    assert result.worst.element_index == ()


def test_accepts_a_single_input_without_a_list():
    assert gradcheck(lambda v: v.exp(), Value(0.3)).ok
    assert gradcheck(lambda x: x.exp(), t([0.3, 0.1])).ok


@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4), elements=st.floats(-3, 3)))
def test_correct_backward_passes_and_a_wrong_derivative_fails(x):
    assert gradcheck(lambda u: u.apply(SIN), t(x)).ok
    # The 1% error is above the tolerance (atol 1e-5 + rtol 1e-3 |cos x|) wherever |cos x| > 1e-2.
    if np.any(np.abs(np.cos(x)) > 1e-2):
        assert not gradcheck(lambda u: u.apply(SIN_WRONG).sum(), t(x)).ok


@given(x=st.floats(-3, 3).filter(lambda x: abs(np.cos(x)) > 1e-2))
def test_wrong_value_derivative_is_reported(x):
    assert gradcheck(lambda v: v.apply(SIN), Value(x)).ok
    result = gradcheck(lambda v: v.apply(SIN_WRONG), Value(x))
    assert not result.ok
    assert result.worst.analytic == pytest.approx(1.01 * np.cos(x))
    assert result.worst.numeric == pytest.approx(np.cos(x), rel=1e-6)


def reverse_with_wrong_backward(x):
    """y = 2 x elementwise whose backward sends each gradient to the mirrored element (right numbers, wrong
    places)."""
    return _record(Op("mirrored double", lambda ctx, a: a * 2.0, lambda node, g: (2.0 * g[::-1],)), (x,))


def test_gradient_sent_to_the_wrong_elements_is_caught_by_the_random_projection():
    x = t([0.5, -1.0, 2.0, 3.0])
    # With a plain sum the upstream gradient is all ones and the mirror is invisible; the projection is not.
    plain = x.data * 0 + 1.0
    y = reverse_with_wrong_backward(x)
    y.backward(plain)
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0, 2.0])
    assert not gradcheck(reverse_with_wrong_backward, t([0.5, -1.0, 2.0, 3.0])).ok


def test_result_names_the_worst_input_and_element():
    wrong_at = (1, 2)

    def wrong_in_one_place(x, y):
        def backward(node, g):
            bad = g.copy()
            bad[wrong_at] += 0.5
            return g * y.data, bad * x.data

        return _record(Op("mul, wrong in one place", lambda ctx, a, b: a * b, backward), (x, y))

    rng = np.random.default_rng(1)
    x, y = rng.uniform(1, 2, (2, 3)), rng.standard_normal((2, 3))
    result = gradcheck(wrong_in_one_place, [t(x), t(y)])
    assert not result.ok
    assert result.worst.input_index == 1 and result.worst.element_index == wrong_at
    assert result.worst.numeric == pytest.approx(
        x[wrong_at] * np.random.default_rng(0).standard_normal((2, 3))[wrong_at]
    )
    assert result.max_abs_error == pytest.approx(0.5 * x[wrong_at], rel=1e-6)
    text = repr(result)
    assert "FAILED" in text and "input 1" in text and "(1, 2)" in text and "analytic" in text


def test_repr_of_a_passing_check_says_ok():
    text = repr(gradcheck(lambda v: v * v, Value(3.0)))
    assert text.startswith("GradcheckResult(ok") and "max_abs_error" in text


def test_non_finite_analytic_gradient_is_a_failure_not_a_warning():
    nan_derivative = Elementwise(np.sin, lambda x: np.full_like(x, np.nan))
    result = gradcheck(lambda u: u.apply(nan_derivative), t([0.1, 0.2]))
    assert not result.ok and result.max_abs_error == np.inf


def test_float32_inputs_are_refused_unless_allowed():
    x32 = Tensor(np.array([0.1, 0.2], dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float32.*allow_float32"):
        gradcheck(lambda u: u.tanh(), x32)
    result = gradcheck(lambda u: u.tanh(), x32, allow_float32=True, atol=1e-3, rtol=1e-2)
    assert result.ok


def test_float32_analytic_gradient_is_taken_in_float32_and_compared_with_float64_differences():
    x32 = Tensor(np.array([0.1, 0.2, 0.3], dtype=np.float32), requires_grad=True)
    result = gradcheck(lambda u: u.exp().sum(), x32, allow_float32=True, atol=1e-3)
    assert result.ok
    assert result.analytic[0] == pytest.approx(np.exp(np.float32([0.1, 0.2, 0.3])), rel=1e-6)


def test_inputs_are_left_untouched():
    x = t([1.0, 2.0])
    x.grad = np.array([5.0, 5.0])
    before = x.data.copy()
    assert gradcheck(lambda u: (u * u).sum(), x).ok
    np.testing.assert_array_equal(x.data, before)
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])
    v = Value(1.5)
    assert gradcheck(lambda u: u * u, v).ok
    assert v.data == 1.5 and v.grad == 0.0


def test_inputs_that_do_not_require_grad_are_constants_of_the_check():
    a = t([1.0, 2.0])
    c = Tensor(np.array([3.0, 4.0]))
    result = gradcheck(lambda x, k: (x * k).sum(), [a, c])
    assert result.ok and result.checked == 2
    assert result.analytic[1] is None and result.numeric[1] is None
    np.testing.assert_allclose(result.analytic[0], [3.0, 4.0])


def test_function_that_ignores_its_input_has_zero_gradient():
    result = gradcheck(lambda x: Tensor(np.array(1.0)), t([1.0, 2.0]))
    assert result.ok
    np.testing.assert_array_equal(result.analytic[0], [0.0, 0.0])


def test_bad_arguments_are_refused_with_clear_errors():
    with pytest.raises(TypeError, match="all Values or all Tensors"):
        gradcheck(lambda a, b: a, [Value(1.0), t([1.0])])
    with pytest.raises(TypeError, match="Value, a Tensor or a sequence"):
        gradcheck(lambda a: a, 3.0)
    with pytest.raises(ValueError, match="at least one input"):
        gradcheck(lambda: Value(1.0), [])
    with pytest.raises(ValueError, match="eps > 0"):
        gradcheck(lambda v: v, Value(1.0), eps=0.0)
    with pytest.raises(TypeError, match="must return a Value or a Tensor"):
        gradcheck(lambda v: 3.0, Value(1.0))
    with no_grad(), pytest.raises(RuntimeError, match="no_grad"):
        gradcheck(lambda v: v * v, Value(1.0))


def test_gradient_of_the_wrong_shape_is_refused():
    def squeezed_gradient(x):
        return _record(Op("sum, squeezed", lambda ctx, a: a.sum(), lambda node, g: (np.ones(3),)), (x,))

    with pytest.raises(ValueError, match="shape"):
        gradcheck(squeezed_gradient, t([[1.0, 2.0]]))
