"""Every registered activation, built-in or user-defined, against autograd, finite differences and theory."""

import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_act import Tensor, Value, activations, no_grad

# Two user-defined activations, one of each kind, so the parametrized tests below cover registration too.
# replace=True: every pytest-xdist worker imports this module, and re-registering must not fail.
activations.register("test_pswish", compose=lambda x, beta=1.5: x * (x * beta).sigmoid(), replace=True)
activations.register(
    "test_sine",
    forward=lambda x, omega=1.0: np.sin(omega * x),
    derivative=lambda x, omega=1.0: omega * np.cos(omega * x),
    replace=True,
)

NAMES = activations.names()
DTYPES = [np.float32, np.float64]
LAMBDA, ALPHA = 1.0507009873554805, 1.6732632423543772
# Properties checked once per activation: a third of the profile's examples each (still ~20 per activation
# and ~400 per property over all of them), which keeps this file fast.
per_activation = settings(max_examples=max(20, settings.default.max_examples // 3))


def moderate_arrays(bound=12.0):
    return hnp.arrays(np.float64, st.integers(1, 16), elements=st.floats(-bound, bound))


def away_from_kinks(act, x, margin=1e-3):
    keep = np.ones(x.shape, dtype=bool)
    for kink in act.kinks:
        keep &= np.abs(x - kink) > margin
    return keep


@pytest.fixture
def strict_numpy():
    """Overflow, invalid operations and division by zero raise (underflow to 0 is the correct result)."""
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        warnings.simplefilter("error")
        yield


# ---- derivatives: analytic == autograd (both engines) == finite differences -------------------------------
def test_test_registered_activations_are_covered():
    assert {"test_pswish", "test_sine"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@per_activation
@given(x=moderate_arrays())
def test_derivative_matches_central_finite_differences_away_from_kinks(name, x):
    act = activations.get(name)
    h = 1e-5  # truncation error ~h^2 |f'''| / 6 ~ 1e-11, rounding ~eps |f| / h ~ 3e-10
    numeric = (act.forward(x + h) - act.forward(x - h)) / (2 * h)
    keep = away_from_kinks(act, x, margin=10 * h)
    np.testing.assert_allclose(act.derivative(x)[keep], numeric[keep], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
@per_activation
@given(x=moderate_arrays())
def test_tensor_autograd_matches_derivative(name, x):
    act = activations.get(name)
    t = Tensor(x, requires_grad=True)
    y = getattr(t, name)()  # the registry's names are Tensor methods
    y.backward(np.ones_like(x))
    np.testing.assert_allclose(y.data, act.forward(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(t.grad, act.derivative(x), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
@per_activation
@given(x=st.floats(-12, 12))
def test_value_autograd_matches_derivative(name, x):
    act = activations.get(name)
    v = Value(x)
    y = getattr(v, name)()
    y.backward()
    assert y.data == pytest.approx(act.scalar_forward(x), rel=1e-12, abs=1e-300)
    assert v.grad == pytest.approx(float(act.derivative(np.array([x]))[0]), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("name", NAMES)
@per_activation
@given(x=hnp.arrays(np.float32, st.integers(1, 16), elements=st.floats(-12, 12, width=32)))
def test_float32_stays_float32_and_agrees_with_float64(name, x):
    act = activations.get(name)
    wide = x.astype(np.float64)
    for fn in (act.forward, act.derivative):
        narrow = fn(x)
        assert narrow.dtype == np.float32
        np.testing.assert_allclose(narrow, fn(wide), rtol=2e-5, atol=2e-6)
    t = Tensor(x, requires_grad=True)
    y = act(t)
    y.backward(np.ones_like(x))
    assert y.data.dtype == np.float32 and t.grad.dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_compositions_differentiate_inside_no_grad(name):
    act = activations.get(name)
    x = np.linspace(-3, 3, 7)
    outside = act.derivative(x)
    with no_grad():
        np.testing.assert_array_equal(act.derivative(x), outside)


# ---- stability: finite and warning-free for every finite input --------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_extreme_inputs_give_finite_values_and_derivatives_without_warnings(name, dtype, strict_numpy):
    info = np.finfo(dtype)
    x = np.array([0.0, 1e4, info.max / 4, info.tiny, info.smallest_subnormal, 1.0, 30.0, 800.0], dtype=dtype)
    x = np.concatenate([x, -x])
    act = activations.get(name)
    value, slope = act.forward(x), act.derivative(x)
    assert value.dtype == dtype and slope.dtype == dtype
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(slope))
    t = Tensor(x, requires_grad=True)
    act(t).backward(np.ones_like(x))
    assert np.all(np.isfinite(t.grad))
    act.saturated(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
@per_activation
@given(data=st.data())
def test_every_finite_input_gives_finite_values_without_warnings(name, dtype, data):
    # Up to a quarter of the largest float: beyond it an activation with slope > 1 (selu) must overflow.
    bound = float(np.finfo(dtype).max) / 4
    elements = st.floats(-bound, bound, width=np.finfo(dtype).bits)
    x = data.draw(hnp.arrays(dtype, st.integers(1, 8), elements=elements))
    act = activations.get(name)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        warnings.simplefilter("error")
        assert np.all(np.isfinite(act.forward(x))) and np.all(np.isfinite(act.derivative(x)))


def test_extreme_examples_from_the_issue(strict_numpy):
    for dtype in DTYPES:
        big = np.array([1e4], dtype=dtype)
        assert activations.get("sigmoid").forward(-big)[0] == 0
        assert activations.get("softplus").forward(big)[0] == 1e4
        assert activations.get("elu").forward(-big)[0] == -1
        assert activations.get("selu").forward(-big)[0] == pytest.approx(-LAMBDA * ALPHA, rel=1e-6)


# ---- known values ---------------------------------------------------------------------------------------
KNOWN_DERIVATIVES = [
    ("sigmoid", {}, 0.0, 0.25),
    ("tanh", {}, 0.0, 1.0),
    ("gelu", {}, 0.0, 0.5),
    ("gelu_tanh", {}, 0.0, 0.5),
    ("swish", {}, 0.0, 0.5),
    ("silu", {}, 0.0, 0.5),
    ("softplus", {}, 0.0, 0.5),
    ("softsign", {}, 0.0, 1.0),
    ("mish", {}, 0.0, 0.6),  # tanh(log 2) = 3/5
    ("identity", {}, 7.0, 1.0),
    ("selu", {}, -1e-300, LAMBDA * ALPHA),  # selu'(0-)
    ("selu", {}, 1e-300, LAMBDA),
    # at kinks: the value PyTorch uses
    ("relu", {}, 0.0, 0.0),
    ("leaky_relu", {"alpha": 0.2}, 0.0, 0.2),
    ("elu", {"alpha": 2.0}, 0.0, 2.0),
    ("selu", {}, 0.0, LAMBDA * ALPHA),
    ("celu", {"alpha": 2.0}, 0.0, 1.0),
    ("hard_tanh", {}, 1.0, 0.0),
    ("hard_tanh", {}, -1.0, 0.0),
    ("hard_sigmoid", {}, 3.0, 0.0),
    ("hard_sigmoid", {}, 0.0, 1 / 6),
]


@pytest.mark.parametrize(("name", "params", "x", "expected"), KNOWN_DERIVATIVES)
def test_known_derivatives(name, params, x, expected):
    assert activations.get(name, **params).scalar_derivative(x) == pytest.approx(expected, rel=1e-14, abs=1e-300)


def normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


KNOWN_VALUES = [
    ("sigmoid", {}, 0.0, 0.5),
    ("gelu", {}, 1.0, normal_cdf(1.0)),
    ("gelu", {}, -3.0, -3.0 * normal_cdf(-3.0)),
    ("gelu", {}, -30.0, -30.0 * normal_cdf(-30.0)),  # ~1e-197: only a tail-accurate erfc gets this
    ("gelu_tanh", {}, 1.0, 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))),
    ("selu", {}, 1.0, LAMBDA),
    ("selu", {}, -1.0, LAMBDA * ALPHA * math.expm1(-1.0)),
    ("softplus", {}, 0.0, math.log(2)),
    ("softplus", {"beta": 2.0}, 1.0, math.log1p(math.exp(2.0)) / 2),
    ("softplus", {}, 25.0, 25.0),  # past the threshold: x itself, as PyTorch
    ("mish", {}, 1.0, math.tanh(math.log1p(math.e))),
    ("celu", {"alpha": 2.0}, -1.0, 2.0 * math.expm1(-0.5)),
    ("swish", {"beta": 2.0}, 1.0, 1 / (1 + math.exp(-2.0))),
    ("softsign", {}, 1.0, 0.5),
    ("hard_sigmoid", {}, 0.0, 0.5),
    ("hard_tanh", {"min_val": -2.0, "max_val": 3.0}, 5.0, 3.0),
    ("leaky_relu", {}, -1.0, -0.01),
]


@pytest.mark.parametrize(("name", "params", "x", "expected"), KNOWN_VALUES)
def test_known_values(name, params, x, expected):
    assert activations.get(name, **params).scalar_forward(x) == pytest.approx(expected, rel=1e-14, abs=1e-300)


@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_sigmoid_tanh_softsign_stay_in_their_ranges(x):
    # Open intervals while the result is representable below 1; closed for every finite input.
    a = np.array([x])
    for name, open_up_to in (("sigmoid", 30.0), ("tanh", 18.0), ("softsign", 1e15)):
        y = activations.get(name).forward(a)[0]
        low = 0.0 if name == "sigmoid" else -1.0
        assert low <= y <= 1.0
        if abs(x) <= open_up_to:
            assert low < y < 1.0


def test_selu_keeps_zero_mean_and_unit_variance_under_a_standard_normal():
    # Gauss-Legendre on each side of the kink; the integrand is smooth there and negligible past |z| = 40,
    # so the quadrature error is ~1e-15: any bias seen comes from the constants (Klambauer et al. 2017).
    nodes, weights = np.polynomial.legendre.leggauss(200)
    selu = activations.get("selu")
    mean = square = 0.0
    for lo, hi in ((-40.0, 0.0), (0.0, 40.0)):
        z = (hi - lo) / 2 * nodes + (hi + lo) / 2
        w = (hi - lo) / 2 * weights * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        mean += np.sum(w * selu.forward(z))
        square += np.sum(w * selu.forward(z) ** 2)
    assert abs(mean) < 1e-12 and abs(square - 1) < 1e-12


# ---- the numpy error function ---------------------------------------------------------------------------
@given(x=st.floats(-40, 40) | st.floats(-1e-3, 1e-3))
def test_erf_matches_math_erf_to_1e_15_relative(x):
    assert activations.erf(np.array([x]))[0] == pytest.approx(math.erf(x), rel=1e-15, abs=1e-320)


@given(x=st.floats(-10, 26))
def test_erfc_matches_math_erfc_in_the_tail(x):
    # erfc(26) ~ 1e-296 is still a normal float; the relative error stays at a few ulps
    assert activations.erfc(np.array([x]))[0] == pytest.approx(math.erfc(x), rel=3e-15)


def test_erf_keeps_dtype_and_shape():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    assert activations.erf(x).dtype == np.float32 and activations.erf(x).shape == (3, 4)
    assert activations.erf(np.float64(0.5)).shape == ()


# ---- the laboratory's metadata ----------------------------------------------------------------------------
PYTORCH_GAINS = [
    ("identity", {}, 1.0),
    ("sigmoid", {}, 1.0),
    ("tanh", {}, 5 / 3),
    ("relu", {}, math.sqrt(2)),
    ("leaky_relu", {}, math.sqrt(2 / (1 + 0.01**2))),
    ("leaky_relu", {"alpha": 0.2}, math.sqrt(2 / 1.04)),
    ("selu", {}, 0.75),
]


@pytest.mark.parametrize(("name", "params", "gain"), PYTORCH_GAINS)
def test_gain_is_pytorchs_where_pytorch_defines_one(name, params, gain):
    assert activations.get(name, **params).gain == pytest.approx(gain, rel=1e-12)


@pytest.mark.parametrize("name", sorted(set(NAMES) - {name for name, _, _ in PYTORCH_GAINS}))
def test_other_gains_keep_the_second_moment_at_one(name):
    act = activations.get(name)
    z = np.random.default_rng(0).standard_normal(200_000)
    f2 = act.forward(z) ** 2
    # Monte Carlo: five standard errors of the sample mean of f(z)^2
    assert abs(act.gain**2 * f2.mean() - 1) < 5 * act.gain**2 * f2.std() / math.sqrt(z.size)


@pytest.mark.parametrize("name", NAMES)
def test_can_die_means_zero_derivative_on_a_half_line(name):
    act = activations.get(name)
    slope = act.derivative(np.linspace(-10, 10, 2001))
    assert act.can_die == bool(np.all(slope[:501] == 0) or np.all(slope[-501:] == 0))


def test_leaky_relu_can_die_only_without_a_leak():
    assert not activations.get("leaky_relu").can_die and activations.get("leaky_relu", alpha=0.0).can_die


@pytest.mark.parametrize("name", NAMES)
def test_saturation_is_the_flat_tails(name):
    act = activations.get(name)
    x = np.linspace(-20, 20, 4001)
    flat = act.saturated(x)
    assert np.all(np.abs(act.derivative(x[flat])) < act.saturation_threshold)
    left, right = flat[x < 0], flat[x > 0]
    # a tail: once saturated going outward, saturated all the way out
    assert np.all(np.diff(left.astype(int)) <= 0) and np.all(np.diff(right.astype(int)) >= 0)


def test_saturation_examples():
    sigmoid, relu, gelu = (activations.get(n) for n in ("sigmoid", "relu", "gelu"))
    assert sigmoid.saturation_threshold == pytest.approx(0.0125)
    assert list(sigmoid.saturated(np.array([-4.4, -4.3, 0.0, 4.3, 4.4]))) == [True, False, False, False, True]
    assert list(relu.saturated(np.array([-1.0, 0.0, 1e-9]))) == [True, True, False]
    # gelu' vanishes at its minimum x = -0.7518 without being flat there
    assert abs(gelu.scalar_derivative(-0.7518)) < gelu.saturation_threshold
    assert list(gelu.saturated(np.array([-0.7518, -5.0]))) == [False, True]


# ---- the registry ---------------------------------------------------------------------------------------
def test_builtins_are_registered():
    expected = {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh", "swish", "softplus"}
    expected |= {"softsign", "hard_tanh", "hard_sigmoid", "mish", "celu", "identity"}
    assert expected <= set(NAMES)
    assert activations.get("silu").name == "swish" and activations.get("linear").name == "identity"


def test_parameters_set_by_name_or_spec_string():
    assert activations.get("leaky_relu", alpha=0.2).params == {"alpha": 0.2}
    assert activations.get("leaky_relu:alpha=0.2").params == {"alpha": 0.2}
    assert activations.get("softplus:beta=2,threshold=10").params == {"beta": 2.0, "threshold": 10.0}
    assert activations.get("elu:alpha=1").params["alpha"] == 1.0 and activations.get("elu").params == {"alpha": 1.0}


@pytest.mark.parametrize(
    ("spec", "error", "mentions"),
    [
        ("nope", ValueError, ["'nope'", "relu", "tanh"]),
        ("leaky_relu:beta=2", ValueError, ["'beta'", "alpha"]),
        ("tanh:alpha=2", ValueError, ["'alpha'", "none"]),
        ("leaky_relu:alpha=abc", ValueError, ["alpha", "'abc'"]),
        ("celu:alpha=0", ValueError, ["alpha", "0"]),
        ("softplus:beta=-1", ValueError, ["beta", "-1"]),
        ("hard_tanh:min_val=2", ValueError, ["min_val", "max_val"]),
    ],
)
def test_bad_names_and_parameters_are_clear_errors(spec, error, mentions):
    with pytest.raises(error) as caught:
        activations.get(spec)
    message = str(caught.value)
    assert "\n" not in message and all(m in message for m in mentions)


def test_spec_string_and_pickle_round_trip():
    act = activations.get("hard_tanh", min_val=-2.0)
    assert act.spec == "hard_tanh:min_val=-2.0,max_val=1.0"
    for again in (activations.get(act.spec), pickle.loads(pickle.dumps(act))):
        assert again.name == act.name and again.params == act.params
    assert activations.get(act) is act and activations.get(act, max_val=3.0).params["max_val"] == 3.0


def test_register_needs_one_definition_and_a_free_name():
    with pytest.raises(ValueError, match="either"):
        activations.register("test_broken", forward=np.tanh)
    with pytest.raises(ValueError, match="already registered"):
        activations.register("relu", compose=lambda x: x.relu())


def test_user_parameters_reach_both_kinds_of_definition():
    x = np.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(activations.get("test_sine", omega=3.0).forward(x), np.sin(3 * x))
    np.testing.assert_allclose(activations.get("test_pswish", beta=2.0).forward(x), x / (1 + np.exp(-2 * x)))
    assert Value(0.5).test_pswish(beta=2.0).data == pytest.approx(0.5 / (1 + math.exp(-1.0)))


def test_activation_methods_on_both_engines():
    assert Value(0.3).gelu().data == pytest.approx(0.3 * normal_cdf(0.3))
    assert Value(-0.3).leaky_relu(alpha=0.2).data == pytest.approx(-0.06)
    np.testing.assert_allclose(Tensor(np.array([-0.3])).leaky_relu(alpha=0.2).data, [-0.06])
    with pytest.raises(AttributeError, match="no attribute 'gelux'"):
        Tensor(np.zeros(2)).gelux()
