"""Derivatives in the saturated tails and the zero-derivative mask, in both engines and in the probes.

A derivative must be right wherever its true value is a normal float: relative 1e-6 in float64, 1e-3 in float32,
for |x| up to 1e4. The reference is an independent formula for each built-in, evaluated in long double (80-bit
on x86-64: e^-10000 is representable there), so that it keeps the tails float64 rounds to zero or to 1.
"""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from probing import measured_step
from tinygrad_act.activations import SELU_ALPHA, SELU_SCALE

from tinygrad_act import Tensor, Value, activations
from tinygrad_act.engine import capture
from tinygrad_act.nn import MLP

LONG = np.longdouble


def _sigmoid(t):
    return 1 / (1 + np.exp(-t))


def _sigmoid_slope(t):
    return 1 / (4 * np.cosh(t / 2) ** 2)  # sigma'(t) = sech^2(t / 2) / 4: not the library's e^-|t| form


def _sech2(t):
    return 1 / np.cosh(t) ** 2


def _normal_cdf(x):
    # math.erfc keeps full relative precision in the left tail, as far as Phi is a normal float64
    return np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in x.ravel()], dtype=LONG).reshape(x.shape)


def _gelu_tanh_slope(x):
    c = np.sqrt(LONG(8) / LONG(np.pi))
    u = c * (x + LONG(0.044715) * x**3)
    return _sigmoid(u) + x * _sigmoid_slope(u) * c * (1 + 3 * LONG(0.044715) * x * x)


def _mish_slope(x):
    softplus = np.log1p(np.exp(x))
    return np.tanh(softplus) + x * _sech2(softplus) * _sigmoid(x)


# f'(x) for every built-in, from its textbook definition (the module docstring of nn/builtin_activations.py)
REFERENCE = {
    "identity": lambda x: np.ones_like(x),
    "sigmoid": _sigmoid_slope,
    "tanh": _sech2,
    "relu": lambda x: (x > 0).astype(LONG),
    "leaky_relu": lambda x, alpha: np.where(x > 0, 1, LONG(alpha)),
    "elu": lambda x, alpha: np.where(x > 0, 1, alpha * np.exp(x)),
    "selu": lambda x: np.where(x > 0, LONG(SELU_SCALE), LONG(SELU_SCALE) * LONG(SELU_ALPHA) * np.exp(x)),
    "celu": lambda x, alpha: np.where(x > 0, 1, np.exp(x / alpha)),
    "gelu": lambda x: _normal_cdf(x) + x * np.exp(-x * x / 2) / np.sqrt(2 * LONG(np.pi)),
    "gelu_tanh": _gelu_tanh_slope,
    "swish": lambda x, beta: _sigmoid(beta * x) + beta * x * _sigmoid_slope(beta * x),
    "softplus": lambda x, beta, threshold: np.where(beta * x > threshold, 1, _sigmoid(beta * x)),
    "softsign": lambda x: 1 / (1 + np.abs(x)) ** 2,
    "hard_tanh": lambda x, min_val, max_val: ((x > min_val) & (x < max_val)).astype(LONG),
    "hard_sigmoid": lambda x: ((x > -3) & (x < 3)).astype(LONG) / 6,
    "mish": _mish_slope,
}
BUILTINS = [name for name in activations.names() if activations.get(name).trusted]
# every built-in with its defaults, and the parameters that move a tail (alpha scales elu's, beta swish's...)
SPECS = BUILTINS + [
    "leaky_relu:alpha=0.2",
    "elu:alpha=0.5",
    "elu:alpha=2",
    "celu:alpha=0.5",
    "celu:alpha=3",
    "swish:beta=0.5",
    "swish:beta=2",
    "softplus:beta=2",
    "softplus:threshold=10",
    "hard_tanh:min_val=-2,max_val=3",
]
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-6, np.float32: 1e-3}
# The grid test below covers every tail systematically; the random tests add a few draws per (spec, dtype).
few = settings(max_examples=max(5, settings.default.max_examples // 6))


def reference(act, x: np.ndarray) -> np.ndarray:
    """The true f'(x) in long double (overflow inside cosh means a derivative that underflows: 0)."""
    with np.errstate(all="ignore"):
        return REFERENCE[act.name](x.astype(LONG), **act.params)


def checked(act, x: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Where the requirement applies: a normal (or zero) true value, away from the kinks where f' jumps."""
    info = np.finfo(x.dtype)
    keep = (np.abs(true) >= info.tiny) | (true == 0)
    for kink in act.kinks:
        keep &= np.abs(x - kink) > 1e-3 * max(1.0, abs(kink))
    return keep


def assert_slopes(act, x, got, true, what):
    """rtol in the tails; near the zeros of f' (gelu, swish, mish at -0.75...-2.6) a few ulps absolute."""
    keep = checked(act, x, true)
    eps = float(np.finfo(x.dtype).eps)
    allowed = RTOL[x.dtype.type] * np.abs(true) + np.where(np.abs(x) < 4, 16 * eps, 0)
    error = np.abs(got.astype(LONG) - true)
    bad = keep & ~(error <= allowed)
    assert not bad.any(), f"{what} {act.spec} {x.dtype}: x={x[bad][:4]} got={got[bad][:4]} true={true[bad][:4]}"


def engine_slopes(act, x: np.ndarray) -> np.ndarray:
    """dL/dx from the Tensor engine, through the method of that name (Tensor.sigmoid, .gelu(beta=...), ...)."""
    t = Tensor(x, requires_grad=True)
    y = getattr(t, act.name)(**act.params)
    y.backward(np.ones_like(x))
    assert t.grad.dtype == x.dtype
    return t.grad


def value_slopes(act, x: np.ndarray) -> np.ndarray:
    """dL/dx from the Value engine, element by element (Value.sigmoid, .tanh, .relu have backwards of their own)."""
    out = []
    for element in x.ravel().tolist():
        v = Value(element)
        getattr(v, act.name)(**act.params).backward()
        out.append(v.grad)
    return np.array(out).reshape(x.shape)


def tail_grid(dtype) -> np.ndarray:
    """Both signs of |x| from 1e-3 to 1e4, 400 points per decade: every tail down to the last normal float."""
    magnitudes = np.logspace(-3, 4, 2801)
    return np.concatenate([-magnitudes[::-1], [0.0], magnitudes]).astype(dtype)


def test_every_builtin_has_a_reference():
    assert set(REFERENCE) == set(BUILTINS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SPECS)
def test_derivative_is_right_wherever_its_true_value_is_a_normal_float(spec, dtype):
    act = activations.get(spec)
    x = tail_grid(dtype)
    true = reference(act, x)
    assert_slopes(act, x, act.derivative(x), true, "analytic")
    assert_slopes(act, x, engine_slopes(act, x), true, "Tensor")
    if dtype is np.float64:
        assert_slopes(act, x[::7], value_slopes(act, x[::7]), true[::7], "Value")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SPECS)
@few
@given(data=st.data())
def test_engine_gradients_match_the_reference_for_any_input_up_to_1e4(spec, dtype, data):
    act = activations.get(spec)
    elements = st.floats(-1e4, 1e4, width=np.finfo(dtype).bits)
    x = data.draw(hnp.arrays(dtype, st.integers(1, 12), elements=elements))
    true = reference(act, x)
    assert_slopes(act, x, engine_slopes(act, x), true, "Tensor")
    if dtype is np.float64:
        assert_slopes(act, x, value_slopes(act, x), true, "Value")


def test_the_issues_examples_sigmoid_at_40_and_float32_tanh_at_10():
    x64, x32 = np.array([40.0]), np.array([10.0], dtype=np.float32)
    sigmoid, tanh = activations.get("sigmoid"), activations.get("tanh")
    assert engine_slopes(sigmoid, x64)[0] == pytest.approx(4.248354255291589e-18, rel=1e-12)
    assert engine_slopes(tanh, x32)[0] == pytest.approx(8.244614e-9, rel=1e-6)
    assert value_slopes(sigmoid, x64)[0] == pytest.approx(4.248354255291589e-18, rel=1e-12)
    assert value_slopes(tanh, np.array([20.0]))[0] == pytest.approx(4 * math.exp(-40), rel=1e-12)


# ---- the mask: where f' is 0 by definition, the gradient is exactly 0 even times inf or nan (as PyTorch) ----
def test_relu_of_minus_one_to_the_minus_one_has_gradient_zero_in_both_engines():
    with np.errstate(divide="ignore"):  # 0 ** -1 = inf is numpy's division by zero, not the point here
        x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
        (x.relu() ** -1).sum().backward()
    assert x.grad.tolist() == [0.0, -0.25]
    v = Value(-1.0)
    (v.relu() ** -1).backward()
    assert v.grad == 0.0


FLAT = [("relu", -1.0), ("hard_tanh", 2.0), ("hard_sigmoid", -4.0), ("leaky_relu:alpha=0", -1.0), ("elu:alpha=0", -1.0)]


@pytest.mark.parametrize(("spec", "x"), FLAT)
@pytest.mark.parametrize("g", [math.inf, -math.inf, math.nan])
def test_a_zero_derivative_blocks_inf_and_nan_gradients_without_warnings(spec, x, g):
    act = activations.get(spec)
    assert act.can_die and act.scalar_derivative(x) == 0.0  # the fixture: f'(x) is 0 by definition there
    t = Tensor(np.array([x, 0.5]), requires_grad=True)
    act(t).backward(np.array([g, g]))
    assert t.grad[0] == 0.0 and not math.isfinite(t.grad[1])  # f'(0.5) > 0: inf and nan pass through
    v = Value(x)
    getattr(v, act.name)(**act.params).backward(g)
    assert v.grad == 0.0


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_a_derivative_that_underflows_to_zero_is_no_mask_inf_and_nan_stay_non_finite_without_warnings(name):
    # tanh'(1e4) = 4 e^-20000 is positive: inf times it is not 0 (PyTorch gives nan too). Masking it would
    # turn a diverged run's gradients into zeros that read as vanished ones.
    act = activations.get(name)
    for g in (math.inf, math.nan):
        t = Tensor(np.array([1e4, -1e4]), requires_grad=True)
        act(t).backward(np.array([g, g]))
        assert np.isnan(t.grad).all()
        v = Value(1e4)
        getattr(v, name)().backward(g)
        assert math.isnan(v.grad)


@pytest.mark.parametrize("spec", SPECS)
@few
@given(data=st.data())
def test_backward_is_the_masked_product_of_the_gradient_and_the_derivative(spec, data):
    act = activations.get(spec)
    x = data.draw(hnp.arrays(np.float64, st.integers(1, 10), elements=st.floats(-50, 50)))
    g = data.draw(hnp.arrays(np.float64, x.shape, elements=st.sampled_from([1.0, -2.5, math.inf, -math.inf, math.nan])))
    t = Tensor(x, requires_grad=True)
    act(t).backward(g)
    slope = act.derivative(x)
    with np.errstate(invalid="ignore"):
        expected = np.where((slope == 0) & act.can_die, 0.0, g * slope)
    np.testing.assert_array_equal(t.grad, expected)


# ---- the probes: saturated is not dead ----------------------------------------------------------------------
def _one_hidden_layer(act, dtype, bias):
    """A 2-3-2 MLP whose hidden pre-activations are z = x @ W + bias with small W: z stays near ``bias``."""
    model = MLP(2, [3], 2, activation=act, seed=0, dtype=dtype)
    model.layers[0].weight.data = np.full((2, 3), 0.1, dtype=dtype)
    model.layers[0].bias.data = np.asarray(bias, dtype=dtype)
    return model


def _probe_first_step(model, x, y):
    return measured_step(model, x, y)["layers"][0]


X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.0], [2.0, 1.0]], dtype=np.float32)
Y = np.array([0, 1, 1, 0])


def test_a_float32_tanh_layer_at_z_of_9_and_more_is_saturated_not_dead():
    bias = [10.0, -12.0, 30.0]
    z = X @ np.full((2, 3), 0.1, dtype=np.float32) + np.float32(bias)
    assert np.abs(z).min() >= 9  # the fixture: every unit deep in a tail, where float32 1 - y^2 is 0
    hidden = _probe_first_step(_one_hidden_layer("tanh", np.float32, bias), X, Y)
    assert hidden["dead_fraction"] == 0.0
    assert hidden["saturation"] == 1.0
    assert hidden["weight_grad_norm"] > 0  # and the gradient it passes is really there


def test_a_relu_layer_with_every_pre_activation_negative_is_dead():
    hidden = _probe_first_step(_one_hidden_layer("relu", np.float64, [-5.0, -1.0, -30.0]), X.astype(np.float64), Y)
    assert hidden["dead_fraction"] == 1.0
    assert hidden["saturation"] == 1.0
    assert hidden["weight_grad_norm"] == 0.0


# ---- the bound, measured against mpmath: a few ulp of the true derivative, in both engines, eager and replayed ----
ULP = 5  # the promise: every built-in derivative within a few ulp of its true value wherever that is a normal float
MPMATH_SLOPE = {"tanh": lambda t: 1 / mpmath.cosh(t) ** 2, "sigmoid": lambda t: 1 / (4 * mpmath.cosh(t / 2) ** 2)}
OUTPUT_SLOPE = {"tanh": lambda y: (1 - y) * (1 + y), "sigmoid": lambda y: y * (1 - y)}  # from the output


def ulp_grid(name, dtype) -> np.ndarray:
    """Every 1/100 on [-3, 3], then both tails out to where f' leaves the normal floats (200 points a decade)."""
    info = np.finfo(dtype)
    last = -math.log(float(info.tiny) / 4) / (2 if name == "tanh" else 1)  # f'(x) ~ 4 e^-2|x| (tanh), e^-|x|
    tails = np.logspace(math.log10(3), math.log10(last * 0.999), 400)
    return np.unique(np.concatenate([np.linspace(-3, 3, 601), tails, -tails]).astype(dtype))


def ulps(name, x: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|got - f'(x)| in units in the last place of f'(x) in x's dtype, f'(x) from mpmath at 40 digits."""
    with mpmath.workdps(40):
        true = [MPMATH_SLOPE[name](mpmath.mpf(float(t))) for t in x]
        error = np.array([float(abs(mpmath.mpf(float(g)) - v)) for g, v in zip(got.ravel(), true)])
    spacing = np.spacing(np.array([float(v) for v in true]).astype(x.dtype)).astype(np.float64)
    return error / spacing


def replayed_slopes(name, x: np.ndarray) -> np.ndarray:
    """dL/dx from a captured program (capture.Program) recorded on zeros, then replayed on x."""
    inputs, shift = Tensor(np.zeros_like(x)), Tensor(np.zeros_like(x), requires_grad=True)  # x + 0 is x
    root = getattr(inputs + shift, name)().sum()
    program = capture.Program(root, (inputs,))
    root.backward()
    program.restore()
    np.copyto(inputs.data, x)
    gradient = {shift: np.empty_like(x)}
    program.replay_forward()
    program.replay_backward(gradient)
    return gradient[shift]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_tanh_and_sigmoid_derivatives_are_within_a_few_ulp_of_mpmath_eager_replayed_and_scalar(name, dtype):
    act = activations.get(name)
    x = ulp_grid(name, dtype)
    slopes = {"analytic": act.derivative(x), "Tensor": engine_slopes(act, x), "replayed": replayed_slopes(name, x)}
    for what, got in slopes.items():
        error = ulps(name, x, got)
        assert error.max() <= ULP, f"{what} {name} {dtype.__name__}: {error.max():.1f} ulp at x={x[error.argmax()]}"
    if dtype is np.float64:
        assert ulps(name, x, value_slopes(act, x)).max() <= ULP


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_the_output_formulas_hold_the_bound_only_away_from_the_tails(name, dtype):
    # why the backward reads the input: 1 - y^2 and y (1 - y) amplify y's rounding y / (1 - y) times. Measured:
    # within the bound while |y| <= 3/4, past it beyond 7/8, and 0 where the true value is still a normal float.
    x = ulp_grid(name, dtype)
    y = activations.get(name)(x)
    error = ulps(name, x, OUTPUT_SLOPE[name](y))
    assert error[np.abs(y) <= 0.75].max() <= ULP
    assert error[np.abs(y) > 0.875].max() > 10 * ULP
