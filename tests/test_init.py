"""Initializers: the variances their papers give, exact bounds and orthogonality, and reproducible draws."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_act import activations, init
from tinygrad_act.common.errors import UsageError

RELU_GAIN2 = 2.0
LEAKY_GAIN2 = 2.0 / (1 + 0.2**2)

# (spec, params, Var(W) as the papers give it, kurtosis of the distribution: normal 3, uniform 9/5)
VARIANCES = [
    ("xavier_uniform", {}, lambda i, o: 2 / (i + o), 9 / 5),
    ("glorot_normal", {}, lambda i, o: 2 / (i + o), 3),
    ("xavier_normal", {"gain": 5 / 3}, lambda i, o: (5 / 3) ** 2 * 2 / (i + o), 3),
    ("xavier_uniform", {"activation": "tanh"}, lambda i, o: (5 / 3) ** 2 * 2 / (i + o), 9 / 5),
    ("he_normal", {}, lambda i, o: RELU_GAIN2 / i, 3),
    ("kaiming_uniform", {}, lambda i, o: RELU_GAIN2 / i, 9 / 5),
    ("he_normal:mode=fan_out", {}, lambda i, o: RELU_GAIN2 / o, 3),
    ("he_uniform", {"mode": "fan_out"}, lambda i, o: RELU_GAIN2 / o, 9 / 5),
    ("he_normal:activation=leaky_relu:alpha=0.2", {}, lambda i, o: LEAKY_GAIN2 / i, 3),
    ("he_normal", {"activation": "tanh", "gain": 1.0}, lambda i, o: 1 / i, 3),  # an explicit gain wins
    ("lecun_normal", {}, lambda i, o: 1 / i, 3),
    ("lecun_uniform", {}, lambda i, o: 1 / i, 9 / 5),
    ("standard", {}, lambda i, o: 1 / (3 * i), 9 / 5),
    ("normal", {}, lambda i, o: 0.05**2, 3),
    ("normal:std=0.3", {}, lambda i, o: 0.09, 3),
    ("uniform", {"a": 0.2}, lambda i, o: 0.04 / 3, 9 / 5),
    ("auto", {"activation": "relu"}, lambda i, o: RELU_GAIN2 / i, 3),
    ("auto", {"activation": "leaky_relu:alpha=0.2"}, lambda i, o: LEAKY_GAIN2 / i, 3),
    ("auto", {"activation": "selu"}, lambda i, o: 1 / i, 3),
    ("auto", {"activation": "tanh"}, lambda i, o: 2 / (i + o), 3),
]


@pytest.mark.parametrize(("fan_in", "fan_out"), [(400, 300), (150, 800)])
@pytest.mark.parametrize(("spec", "params", "variance", "kurtosis"), VARIANCES)
def test_empirical_variance_matches_the_formula(spec, params, variance, kurtosis, fan_in, fan_out):
    w = init.get(spec, **params)(fan_in, fan_out, np.random.default_rng(1))
    n, expected = w.size, variance(fan_in, fan_out)
    # The mean of n squares of a zero-mean draw has relative standard error sqrt((kurtosis - 1) / n);
    # five standard errors (n = 120000: ~2% for normal, ~1.3% for uniform) fail by chance ~1 in 10^6.
    assert abs(np.mean(w**2) / expected - 1) < 5 * math.sqrt((kurtosis - 1) / n)
    assert abs(np.mean(w)) < 5 * math.sqrt(expected / n)


@pytest.mark.parametrize(("fan_in", "fan_out"), [(400, 300), (150, 800)])
@pytest.mark.parametrize(("spec", "params", "variance", "kurtosis"), VARIANCES)
def test_each_initializer_states_the_variance_it_draws(spec, params, variance, kurtosis, fan_in, fan_out):
    assert init.get(spec, **params).variance(fan_in, fan_out) == pytest.approx(variance(fan_in, fan_out), rel=1e-12)


def test_orthogonal_and_zeros_state_their_variance_too():
    assert init.get("orthogonal", gain=2.0).variance(300, 120) == pytest.approx(4 / 300, rel=1e-12)
    assert init.get("orthogonal").variance(120, 300) == pytest.approx(1 / 300, rel=1e-12)
    assert init.get("zeros").variance(3, 4) == 0.0


def test_an_initializer_that_declares_no_variance_is_named_when_asked_for_it():
    init.register("test_plain_draw", lambda: lambda fan_in, fan_out, rng: rng.normal(size=(fan_in, fan_out)))
    try:
        with pytest.raises(ValueError, match="test_plain_draw"):
            init.get("test_plain_draw").variance(3, 4)
    finally:
        init._REGISTRY.unregister("test_plain_draw")


@pytest.mark.parametrize("gain", [1.0, 0.5, 2.0])
def test_orthogonal_entries_have_variance_gain2_over_the_larger_fan(gain):
    w = init.get("orthogonal", gain=gain)(300, 120, np.random.default_rng(2))
    assert np.mean(w**2) == pytest.approx(gain**2 / 300, rel=1e-12)  # exact: columns have unit norm


UNIFORM_BOUNDS = [
    ("xavier_uniform", lambda i, o: math.sqrt(6 / (i + o))),
    ("he_uniform", lambda i, o: math.sqrt(6 / i)),
    ("he_uniform:mode=fan_out", lambda i, o: math.sqrt(6 / o)),
    ("lecun_uniform", lambda i, o: math.sqrt(3 / i)),
    ("standard", lambda i, o: 1 / math.sqrt(i)),
    ("uniform", lambda i, o: 0.05),
]


@pytest.mark.parametrize(("spec", "bound"), UNIFORM_BOUNDS)
@given(fan_in=st.integers(1, 64), fan_out=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_uniform_bounds_are_never_exceeded(spec, bound, fan_in, fan_out, seed):
    w = init.get(spec)(fan_in, fan_out, np.random.default_rng(seed))
    assert np.all(np.abs(w) <= bound(fan_in, fan_out))


@given(
    fan_in=st.integers(1, 60),
    fan_out=st.integers(1, 60),
    gain=st.floats(0.1, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_orthogonal_is_semi_orthogonal_to_1e_10(fan_in, fan_out, gain, seed):
    w = init.get("orthogonal", gain=gain)(fan_in, fan_out, np.random.default_rng(seed)) / gain
    gram = w.T @ w if fan_in >= fan_out else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(fan_in, fan_out)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", init.names())
def test_shape_dtype_and_same_seed_gives_identical_arrays(name):
    initializer = init.get(name, activation="tanh") if name == "auto" else init.get(name)
    first = initializer(7, 5, np.random.default_rng(123))
    second = initializer(7, 5, np.random.default_rng(123))
    assert first.shape == (7, 5) and first.dtype == np.float64
    np.testing.assert_array_equal(first, second)
    if name not in ("zeros", "identity"):  # the two that draw nothing
        assert not np.array_equal(first, initializer(7, 5, np.random.default_rng(124)))


@pytest.mark.parametrize("name", init.names())
def test_global_random_state_is_never_used(name, monkeypatch):
    before = np.random.get_state()[1].copy()  # noqa: NPY002 - reading the global state to prove it untouched
    for legacy in ("normal", "uniform", "standard_normal", "randn", "rand", "random", "seed"):
        monkeypatch.setattr(np.random, legacy, _forbidden)
    initializer = init.get(name, activation="relu") if name == "auto" else init.get(name)
    initializer(6, 4, np.random.default_rng(0))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def _forbidden(*args, **kwargs):
    raise AssertionError("an initializer used numpy's global random state")


def test_zeros_is_zero():
    assert not np.any(init.get("zeros")(3, 4, np.random.default_rng(0)))


# ---- recommended / auto ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("activation", "expected"),
    [
        ("relu", "he_normal"),
        ("leaky_relu:alpha=0.2", "he_normal"),
        ("elu", "he_normal"),
        ("celu", "he_normal"),
        ("gelu", "he_normal"),
        ("swish", "he_normal"),
        ("mish", "he_normal"),
        ("softplus", "he_normal"),
        ("selu", "lecun_normal"),
        ("tanh", "xavier_normal"),
        ("sigmoid", "xavier_normal"),
        ("softsign", "xavier_normal"),
        ("hard_tanh", "xavier_normal"),
        ("identity", "xavier_normal"),
    ],
)
def test_recommended_initializer_per_activation(activation, expected):
    assert init.recommended(activation) == expected
    assert init.recommended(activations.get(activation)) == expected
    assert init.get("auto", activation=activation).name == expected


def test_auto_takes_the_activation_gain_and_needs_an_activation():
    he = init.get("auto", activation="leaky_relu:alpha=0.2")
    assert he.params["activation"] == "leaky_relu:alpha=0.2"
    assert init.get(f"auto:activation={'elu'}").params["activation"] == "elu"
    with pytest.raises(ValueError, match="activation"):
        init.get("auto")


def test_for_activation_binds_only_auto():
    assert init.for_activation("auto", "selu").name == "lecun_normal"
    assert init.for_activation("auto:activation=tanh", "relu").name == "xavier_normal"
    assert init.for_activation("xavier_normal", "relu").params == {"gain": None, "activation": None}
    he = init.get("he_normal")
    assert init.for_activation(he, "tanh") is he


# ---- the registry ---------------------------------------------------------------------------------------
def test_builtins_and_aliases_are_registered():
    expected = {"xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"}
    expected |= {"orthogonal", "standard", "normal", "uniform", "zeros", "auto"}
    assert expected <= set(init.names())
    for alias, name in [("glorot_uniform", "xavier_uniform"), ("glorot_normal", "xavier_normal")]:
        assert init.get(alias).name == name
    for alias, name in [("kaiming_uniform", "he_uniform"), ("kaiming_normal", "he_normal")]:
        assert init.get(alias).name == name
    assert set(init.describe()) == set(init.names())


def test_readable_repr_and_pickle_round_trip():
    he = init.get("he_normal", mode="fan_out", activation=activations.get("leaky_relu", alpha=0.2))
    assert repr(he) == "Initializer(he_normal, mode='fan_out', gain=None, activation='leaky_relu:alpha=0.2')"
    again = pickle.loads(pickle.dumps(he))
    assert again.name == he.name and again.params == he.params
    rng = np.random.default_rng
    np.testing.assert_array_equal(again(3, 2, rng(0)), he(3, 2, rng(0)))


@pytest.mark.parametrize(
    ("spec", "params", "error", "mentions"),
    [
        ("nope", {}, ValueError, ["'nope'", "he_normal", "xavier_normal"]),
        ("he_normal", {"mode": "fan_avg"}, ValueError, ["'fan_avg'", "fan_in", "fan_out"]),
        ("he_normal", {"std": 1.0}, ValueError, ["'std'", "mode", "gain"]),
        ("xavier_normal", {"gain": -1.0}, ValueError, ["gain", "-1"]),
        ("xavier_normal", {"gain": "big"}, ValueError, ["gain", "'big'"]),
        ("normal", {"std": -0.1}, ValueError, ["std", "-0.1"]),
        ("he_normal", {"activation": "nope"}, ValueError, ["'nope'", "relu"]),
    ],
)
def test_bad_names_and_parameters_are_clear_errors(spec, params, error, mentions):
    with pytest.raises(error) as caught:
        init.get(spec, **params)
    message = str(caught.value)
    assert "\n" not in message and all(m in message for m in mentions)


@pytest.mark.parametrize(
    ("args", "error", "mention"),
    [
        ((3, 4, None), TypeError, "Generator"),
        ((3, 4, np.random.RandomState(0)), TypeError, "Generator"),
        ((3, 4, 0), TypeError, "Generator"),
        ((0, 4, np.random.default_rng(0)), ValueError, "fan_in"),
        ((3, 2.5, np.random.default_rng(0)), ValueError, "fan_out"),
        ((True, 4, np.random.default_rng(0)), ValueError, "fan_in"),
    ],
)
def test_bad_call_arguments_are_clear_errors(args, error, mention):
    with pytest.raises(error, match=mention):
        init.get("he_normal")(*args)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("xavier_normal:gain=inf", ["gain", "inf"]),
        ("he_normal:mode=sideways", ["'sideways'", "fan_in, fan_out"]),
        ("normal:std=-1", ["std", "-1"]),
        ("he_normal:mode=fan_in,mode=fan_out", ["'mode' is given twice"]),
        ("glorot", ["'glorot'", "xavier_normal"]),
    ],
)
def test_bad_initializer_specs_are_usage_errors_naming_the_value(spec, words):
    with pytest.raises(UsageError) as error:
        init.get(spec)
    for word in words:
        assert word in str(error.value)
