"""Mean-field theory: quadrature accuracy, golden numbers from the papers, and agreement with wide random nets.

Golden numbers marked "mpmath" were computed once with mpmath at 30 digits (adaptive quadrature split at the
kinks), independently of theory.py.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_act import activations
from tinygrad_act.lab import stats
from tinygrad_act.lab.theory import mean_field as theory
from tinygrad_act.lab.theory import memo

SELU_ALPHA = 1.6732632423543772
SELU_LAMBDA = 1.0507009873554805


def normal_cdf(t):
    return 0.5 * math.erfc(-t / math.sqrt(2))


def normal_pdf(t):
    return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def exp_below_zero(a, q):
    """E[e^(a x) 1{x < 0}] for x ~ N(0, q): e^(a^2 q / 2) Phi(-a sqrt q)."""
    return math.exp(0.5 * a * a * q) * normal_cdf(-a * math.sqrt(q))


# Test-only copies: registered without declared kinks, so that theory.kinks() must find them itself.
def _elu(x, alpha=0.5):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_derivative(x, alpha=0.5):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))


LOCAL = {
    "selu": (
        lambda x: SELU_LAMBDA * _elu(x, SELU_ALPHA),
        lambda x: SELU_LAMBDA * _elu_derivative(x, SELU_ALPHA),
    ),
    "elu": (_elu, _elu_derivative),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "hard_tanh": (lambda x: np.clip(x, -1.0, 1.0), lambda x: ((x > -1) & (x < 1)).astype(x.dtype)),
    "shifted_relu": (lambda x: np.maximum(x - 0.3, 0.0), lambda x: (x > 0.3).astype(x.dtype)),
}


@pytest.fixture
def local():
    """local(name) registers the test copy as "_test_<name>" and unregisters it when the test ends."""
    made = []

    def make(name):
        forward, derivative = LOCAL[name]
        made.append(activations.register("_test_" + name, forward=forward, derivative=derivative, replace=True))
        return activations.get(made[-1])

    yield make
    for name in made:
        activations.unregister(name)


def local_and_registered(local, name):
    """The test copy, and the laboratory's own activation when it is registered."""
    return [local(name)] + ([activations.get(name)] if activations.exists(name) else [])


# ---- quadrature ------------------------------------------------------------------------------------------
@given(st.floats(1e-8, 1e8))
def test_expectation_reproduces_gaussian_moments_and_relu_closed_forms(q):
    assert theory.expectation(lambda x: x * x, q) == pytest.approx(q, rel=1e-12)
    assert theory.expectation(lambda x: np.maximum(x, 0) ** 2, q, kinks=(0.0,)) == pytest.approx(q / 2, rel=1e-12)
    assert theory.expectation(np.abs, q) == pytest.approx(math.sqrt(2 * q / math.pi), rel=1e-12)
    assert theory.expectation(np.ones_like, q) == pytest.approx(1.0, rel=1e-14)


def test_expectation_of_tanh_derivative_squared_agrees_with_monte_carlo_within_5_standard_errors():
    q, n = 2.0, 400_000
    samples = (1 - np.tanh(math.sqrt(q) * np.random.default_rng(0).standard_normal(n)) ** 2) ** 2
    standard_error = samples.std() / math.sqrt(n)
    assert abs(theory.expectation(lambda x: (1 - np.tanh(x) ** 2) ** 2, q) - samples.mean()) < 5 * standard_error


@pytest.mark.parametrize("q", [0.01, 0.5, 1.0, 2.0, 30.0])
def test_kinked_activations_match_closed_forms_to_1e_10(local, q):
    s = math.sqrt(q)
    elu, selu, hard_tanh, shifted = local("elu"), local("selu"), local("hard_tanh"), local("shifted_relu")
    elu_second = q / 2 + 0.25 * (exp_below_zero(2, q) - 2 * exp_below_zero(1, q) + 0.5)
    c = 1 / s
    a = 0.3 / s
    expected = {
        (elu, "f2"): elu_second,
        (elu, "d2"): 0.5 + 0.25 * exp_below_zero(2, q),
        (selu, "f2"): SELU_LAMBDA**2
        * (q / 2 + SELU_ALPHA**2 * (exp_below_zero(2, q) - 2 * exp_below_zero(1, q) + 0.5)),
        (selu, "d2"): SELU_LAMBDA**2 * (0.5 + SELU_ALPHA**2 * exp_below_zero(2, q)),
        (hard_tanh, "f2"): q * (2 * normal_cdf(c) - 1 - 2 * c * normal_pdf(c)) + 2 * (1 - normal_cdf(c)),
        (hard_tanh, "d2"): 2 * normal_cdf(c) - 1,
        (shifted, "f2"): q * ((1 + a * a) * (1 - normal_cdf(a)) - a * normal_pdf(a)),
        (shifted, "d2"): 1 - normal_cdf(a),
    }
    for (act, kind), value in expected.items():
        f = (lambda x, act=act: act.forward(x) ** 2) if kind == "f2" else (lambda x, act=act: act.derivative(x) ** 2)
        got = theory.expectation(f, q, theory.kinks(act))
        assert got == pytest.approx(value, rel=1e-10, abs=1e-300), (act.name, kind)


def test_softsign_moments_match_mpmath(local):
    golden = {1.0: (0.1830140212665474991, 0.2276713404221824997), 2.5: (0.2718961021213901014, 0.1546054571929349068)}
    for act in local_and_registered(local, "softsign"):
        for q, (second, chi) in golden.items():
            assert theory.variance_map(act, q, 1.0) == pytest.approx(second, rel=1e-12)
            assert theory.chi1(act, q, 1.0) == pytest.approx(chi, rel=1e-12)


def test_kinks_are_found_where_the_first_or_second_derivative_jumps(local):
    assert theory.kinks(local("shifted_relu")) == pytest.approx((0.3,), abs=1e-9)
    assert theory.kinks(local("hard_tanh")) == (-1.0, 1.0)
    assert theory.kinks(local("softsign")) == (0.0,)  # only phi'' jumps there
    assert theory.kinks(local("selu")) == (0.0,)
    assert theory.kinks("tanh") == ()
    assert theory.kinks("sigmoid") == ()


@pytest.mark.parametrize("name", activations.names())
def test_quadrature_is_converged_for_every_registered_activation(name):
    act = activations.get(name)
    for q in (0.01, 0.8, 25.0):
        finer = (*theory.kinks(act), *(math.sqrt(q) * np.linspace(-10, 10, 401)))  # panels 20x narrower
        for f in (lambda x: act.forward(x) ** 2, lambda x: act.derivative(x) ** 2):
            coarse = theory.expectation(f, q, theory.kinks(act))
            assert coarse == pytest.approx(theory.expectation(f, q, finer), rel=1e-11, abs=1e-15)


def test_expectation_at_q_zero_is_the_limit_from_above():
    assert theory.chi1("relu", 0.0, 2.0) == 1.0  # (relu'(0-)^2 + relu'(0+)^2) / 2, not relu'(0) = 0
    assert theory.variance_map("sigmoid", 0.0, 1.0, 0.1) == pytest.approx(0.35)
    assert theory.chi1("relu", 0.0, 2.0) == pytest.approx(theory.chi1("relu", 1e-30, 2.0))


# ---- golden numbers --------------------------------------------------------------------------------------
def test_sigmoid_with_unit_weight_variance_has_q_star_0_2647_and_chi1_0_0557():
    fixed = theory.fixed_point("sigmoid", 1.0, 0.0)
    assert fixed.drift == "fixed" and fixed.converged
    assert fixed.q_star == pytest.approx(0.2646868751818924843, abs=1e-12)  # mpmath
    assert theory.chi1("sigmoid", fixed.q_star, 1.0) == pytest.approx(0.05572070676970179381, abs=1e-12)  # mpmath


@settings(max_examples=40)
@given(st.floats(1e-6, 1e6), st.floats(0.01, 10.0))
def test_relu_chi1_is_half_sigma_w2_for_every_q(q, sigma_w2):
    assert theory.chi1("relu", q, sigma_w2) == pytest.approx(sigma_w2 / 2, rel=1e-12)
    assert theory.variance_map("relu", q, sigma_w2, 0.1) == pytest.approx(sigma_w2 * q / 2 + 0.1, rel=1e-12)


def test_selu_with_unit_weight_variance_has_fixed_point_one_and_mean_zero(local):
    for act in local_and_registered(local, "selu"):
        for q_start in (0.3, 3.0):
            fixed = theory.fixed_point(act, 1.0, 0.0, q_start=q_start)
            assert fixed.drift == "fixed" and fixed.q_star == pytest.approx(1.0, abs=1e-9), act.name
        assert abs(theory.mean_activation(act, 1.0)) < 1e-12
        assert theory.chi1(act, 1.0, 1.0) == pytest.approx(1.0715749924557992183, rel=1e-12)  # mpmath, closed form


def test_tanh_critical_sigma_w2_for_bias_variance_0_05_is_1_761():
    sigma_w2 = theory.critical_sigma_w2("tanh", 0.05)
    assert sigma_w2 == pytest.approx(1.7609546396067391, abs=1e-9)  # mpmath
    fixed = theory.fixed_point("tanh", sigma_w2, 0.05)
    assert fixed.q_star == pytest.approx(0.57004788164076415, abs=1e-9)  # mpmath
    assert theory.chi1("tanh", fixed.q_star, sigma_w2) == pytest.approx(1.0, abs=1e-9)
    assert theory.phase(theory.chi1("tanh", fixed.q_star, sigma_w2)) == "critical"


def test_critical_sigma_w2_without_bias_is_where_q_star_zero_loses_stability():
    assert theory.critical_sigma_w2("tanh") == 1.0
    assert theory.critical_sigma_w2("relu") == 2.0
    assert theory.critical_sigma_w2(activations.get("leaky_relu", alpha=0.2)) == pytest.approx(2 / 1.04, rel=1e-14)
    assert theory.critical_sigma_w2("relu", 0.05) is None  # chi1 = 1 only as q* -> infinity


# ---- fixed point and phases ------------------------------------------------------------------------------
def test_fixed_point_reports_drift_to_zero_and_to_infinity():
    assert theory.fixed_point("relu", 2.5).drift == "to_infinity"
    assert theory.fixed_point("relu", 2.0, 0.1).drift == "to_infinity"  # q grows by sigma_b2 each layer
    assert theory.fixed_point("relu", 1.5) == theory.FixedPoint(
        0.0, True, "to_zero", theory.fixed_point("relu", 1.5).iterations
    )
    assert theory.fixed_point("relu", 2.0, q_start=0.7).q_star == pytest.approx(0.7, rel=1e-14)  # every q is fixed
    assert theory.fixed_point("tanh", 0.9).drift == "to_zero"
    assert theory.fixed_point("tanh", 1.0).drift == "to_zero"  # converges like 1/l: the bracketing path


@settings(max_examples=25)
@given(
    st.sampled_from(["tanh", "sigmoid", "selu", "softsign", "gelu", "hard_tanh"]),
    st.floats(0.3, 4.0),
    st.floats(0.0, 0.5),
)
def test_fixed_point_is_a_fixed_point_of_the_variance_map(name, sigma_w2, sigma_b2):
    fixed = theory.fixed_point(name, sigma_w2, sigma_b2)
    if fixed.drift == "fixed":
        q = fixed.q_star
        assert theory.variance_map(name, q, sigma_w2, sigma_b2) == pytest.approx(q, rel=1e-9)
    elif fixed.drift == "to_zero":
        assert sigma_b2 < theory.Q_ZERO  # q* ~ sigma_b2 / (1 - slope): numerically zero
    else:  # to_infinity: far out, the map still grows (SELU with sigma_w2 lambda^2 / 2 > 1)
        assert fixed.drift == "to_infinity"
        assert theory.variance_map(name, 1e6, sigma_w2, sigma_b2) > 1e6


def test_depth_scale_and_phase_follow_chi1():
    assert theory.depth_scale(0.0557207067697) == pytest.approx(-1 / math.log(0.0557207067697))
    assert theory.depth_scale(math.e**-0.5) == pytest.approx(2.0)
    assert theory.depth_scale(1.0) == math.inf
    assert theory.depth_scale(math.e**0.25) == pytest.approx(4.0)  # chaotic: growth by e every 4 layers
    assert [theory.phase(c) for c in (0.5, 1.0, 1.5)] == ["ordered", "critical", "chaotic"]
    assert [theory.verdict(r) for r in (1e-3, 1.0, 1e3, math.inf)] == ["vanishing", "healthy", "exploding", "exploding"]


# ---- predictions -----------------------------------------------------------------------------------------
def test_predicted_ratio_multiplies_sqrt_chi_over_the_depth_minus_one_transitions():
    sigma_w2 = [100.0, 1.0, 2.0, 3.0, 4.0]  # the first layer's weights never enter the backward chain
    prediction = theory.predict("relu", 5, sigma_w2, q0=1.0)
    assert prediction.ratio_first_last == pytest.approx(math.sqrt(1 / 2 * 2 / 2 * 3 / 2 * 4 / 2), rel=1e-12)
    assert prediction.q == pytest.approx((100.0, 50.0, 50.0, 75.0, 150.0), rel=1e-12)
    assert prediction.chi == pytest.approx((0.5, 1.0, 1.5, 2.0), rel=1e-12)
    assert prediction.delta_ratios[-1] == 1.0 and prediction.delta_ratios[0] == prediction.ratio_first_last
    assert prediction.per_layer_factor == pytest.approx(prediction.ratio_first_last**0.25)


def test_sigmoid_started_at_its_fixed_point_vanishes_by_sqrt_chi1_per_layer():
    q_star, chi = 0.2646868751818924843, 0.05572070676970179381
    prediction = theory.predict("sigmoid", 20, 1.0, q0=q_star)  # q^1 = sigma_w2 q0 = q*
    assert prediction.q == pytest.approx((q_star,) * 20, rel=1e-10)
    assert prediction.ratio_first_last == pytest.approx(chi**9.5, rel=1e-9)
    assert prediction.per_layer_factor == pytest.approx(0.236052, abs=1e-6)
    assert prediction.depth_scale == pytest.approx(0.346332, abs=1e-6)
    assert (prediction.phase, prediction.verdict) == ("ordered", "vanishing")


def test_prediction_of_a_single_hidden_layer_is_ratio_one_and_serializes_to_json():
    single = theory.predict(activations.get("tanh"), 1, 1.0, 0.0, q0=0.5)
    assert (single.ratio_first_last, single.per_layer_factor, single.chi, single.q) == (1.0, 1.0, (), (0.5,))
    record = json.loads(json.dumps(theory.predict("relu", 6, 2.5).to_dict()))
    assert record["fixed_point"]["drift"] == "to_infinity" and record["verdict"] == "healthy"
    assert len(record["q"]) == 6 and len(record["chi"]) == 5


def test_predict_remembers_its_latest_answers_for_built_in_activations_and_computes_a_users_each_time(
    local, monkeypatch
):
    computed, compute = [], theory._predict
    monkeypatch.setattr(theory, "_predict", lambda *args: (computed.append(args), compute(*args))[1])
    monkeypatch.setattr(theory, "_predicted", memo.Remembered(2))
    for sigma_w2 in (1.0, 1.5, 1.0, 2.0, 1.5):  # 1.0 asked again is the newest: 1.5 goes first
        theory.predict("tanh", 3, [0.7, sigma_w2, sigma_w2], q0=0.5)
    assert [args[2][-1] for args in computed] == [1.0, 1.5, 2.0, 1.5] and len(theory._predicted) == 2
    again = theory.predict("tanh", 3, [0.7, 1.5, 1.5], q0=0.5)
    assert again == compute(activations.get("tanh"), 3, [0.7, 1.5, 1.5], 0.0, 0.5) and len(computed) == 4
    assert theory.predict("tanh", 3, [0.7, 1.5, 1.5], q0=0.25) != again and len(computed) == 5  # every input counts
    users = local("softsign")  # a user's activation may change under its name: never remembered
    theory.predict(users, 3, 1.0)
    theory.predict(users, 3, 1.0)
    assert len(computed) == 7


def test_predict_rejects_bad_arguments_with_their_values():
    with pytest.raises(ValueError, match="depth"):
        theory.predict("tanh", 0, 1.0)
    with pytest.raises(ValueError, match="one value per hidden layer"):
        theory.predict("tanh", 3, [1.0, 1.0])
    with pytest.raises(ValueError, match="sigma_w2"):
        theory.predict("tanh", 3, -1.0)
    with pytest.raises(ValueError, match="expected 3 hidden-layer delta norms"):
        theory.compare(theory.predict("tanh", 3, 1.0), [1.0, 2.0, 3.0, 4.0])


def test_sigma_w2_of_init_follows_the_initializer_formulas():
    assert theory.sigma_w2_of_init("xavier_normal", "tanh", 64, 64) == pytest.approx(1.0)
    assert theory.sigma_w2_of_init("glorot_uniform", "tanh", 100, 300) == pytest.approx(0.5)
    assert theory.sigma_w2_of_init("xavier_normal:gain=2", "tanh", 100, 300) == pytest.approx(2.0)
    assert theory.sigma_w2_of_init("he_normal", "tanh", 100, 300) == pytest.approx(2.0)
    assert theory.sigma_w2_of_init("he_normal:mode=fan_out", "relu", 100, 300) == pytest.approx(2 / 3)
    assert theory.sigma_w2_of_init("kaiming_uniform:activation=tanh", "relu", 10, 10) == pytest.approx(25 / 9)
    assert theory.sigma_w2_of_init("lecun_normal", "selu", 100, 300) == 1.0
    assert theory.sigma_w2_of_init("standard", "tanh", 100, 300) == pytest.approx(1 / 3)
    assert theory.sigma_w2_of_init("normal:std=0.1", "tanh", 100, 300) == pytest.approx(1.0)
    assert theory.sigma_w2_of_init("uniform:a=0.3", "tanh", 100, 300) == pytest.approx(3.0)
    assert theory.sigma_w2_of_init("orthogonal", "tanh", 100, 300) == pytest.approx(1 / 3)
    assert theory.sigma_w2_of_init("auto", "relu", 100, 300) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "spec", ["xavier_normal", "xavier_uniform", "he_normal", "he_uniform:mode=fan_out", "lecun_uniform",
             "orthogonal:gain=1.5", "standard", "normal:std=0.02", "uniform:a=0.1", "auto"],
)  # fmt: skip
def test_sigma_w2_of_init_matches_weights_drawn_by_init_py(spec):
    from tinygrad_act import init

    act = activations.get("tanh")
    for fan_in, fan_out in ((200, 150), (150, 200)):
        weight = init.for_activation(spec, act.spec)(fan_in, fan_out, np.random.default_rng(1))
        # 30000 entries: the second moment is estimated to ~0.8% (normal) or better; 4% is 5 standard errors.
        assert theory.sigma_w2_of_weights(weight) == pytest.approx(
            theory.sigma_w2_of_init(spec, act, fan_in, fan_out), rel=0.04
        )


def test_sigma_w2_of_init_asks_the_initializer_so_a_new_one_needs_no_entry_in_the_theory():
    from tinygrad_act import init

    def factory(scale=2.0):
        def draw(fan_in, fan_out, rng):
            return rng.normal(0.0, math.sqrt(scale / fan_in), size=(fan_in, fan_out))

        draw.variance = lambda fan_in, fan_out: scale / fan_in
        return draw

    init.register("test_scaled_normal", factory)
    try:
        assert theory.sigma_w2_of_init("test_scaled_normal:scale=3", "tanh", 50, 70) == pytest.approx(3.0)
    finally:
        init._REGISTRY.unregister("test_scaled_normal")


def test_delta_gain_is_the_square_root_of_chi():
    assert theory.delta_gain("tanh", 0.7, 1.3) == pytest.approx(math.sqrt(theory.chi1("tanh", 0.7, 1.3)), rel=1e-15)
    assert not hasattr(theory, "per_layer_factor") or theory.per_layer_factor is stats.per_layer_factor


def test_sigma_w2_of_init_names_unknown_initializers():
    with pytest.raises(ValueError, match="unknown initializer"):
        theory.sigma_w2_of_init("no_such_init", "tanh", 3, 3)


# ---- a direct simulation of wide random nets -------------------------------------------------------------
def simulate(act, weights, sigma_b2, batch, rng, q0=1.0):
    """Forward a Gaussian batch through plain numpy layers, backpropagate a random delta from the top.

    Returns the measured per-layer q^l = mean(h^2) and ||delta^l|| / ||delta^L||.
    """
    x = rng.standard_normal((batch, weights[0].shape[0])) * math.sqrt(q0)
    pre = []
    for w in weights:
        h = x @ w + rng.standard_normal(w.shape[1]) * math.sqrt(sigma_b2)
        pre.append(h)
        x = act.forward(h)
    delta = rng.standard_normal(pre[-1].shape)
    norms = [np.linalg.norm(delta)]
    for layer in range(len(weights) - 2, -1, -1):
        delta = (delta @ weights[layer + 1].T) * act.derivative(pre[layer])
        norms.append(np.linalg.norm(delta))
    norms = np.array(norms[::-1])  # input side first
    return np.array([np.mean(h * h) for h in pre]), norms / norms[-1]


def gaussian_weights(widths, sigma_w2, rng):
    return [rng.standard_normal((a, b)) * math.sqrt(sigma_w2 / a) for a, b in zip(widths[:-1], widths[1:])]


WIDTH, BATCH, DEPTH = 1000, 100, 10


def delta_tolerance(width, depth):
    # Per transition ||delta||^2 of one sample fluctuates by sqrt(2 / width) (a chi-square over the units); over
    # depth - 1 transitions log ||delta^1|| / ||delta^L|| has sd <= sqrt((depth - 1) / (2 width)) = 0.067 here,
    # before the batch averages it further (measured sd over 12 seeds: 0.006 to 0.033). Tolerance: 3 x that bound.
    return 3 * math.sqrt((depth - 1) / (2 * width))


@pytest.mark.parametrize(
    "name, sigma_w2, sigma_b2",
    [("sigmoid", 1.0, 0.0), ("tanh", 1.7609546396067391, 0.05), ("_test_selu", 1.0, 0.0), ("relu", 2.5, 0.0)],
)
def test_wide_random_net_matches_predicted_variances_and_delta_norms(local, name, sigma_w2, sigma_b2):
    act = local("selu") if name == "_test_selu" else activations.get(name)
    prediction = theory.predict(act, DEPTH, sigma_w2, sigma_b2, q0=1.0)
    rng = np.random.default_rng(7)
    q, ratios = simulate(act, gaussian_weights([WIDTH] * (DEPTH + 1), sigma_w2, rng), sigma_b2, BATCH, rng)

    layers = np.arange(1, DEPTH + 1)
    if name == "relu":
        # ReLU's map has slope 1: errors pile up as a random walk, Var log q^l ~= 5 l / width (Hanin & Rolnick 2018).
        q_tolerance = 4 * np.sqrt(5 * layers / WIDTH)
    else:
        # mean(h^2) over `width` units fluctuates by sqrt(2 / width) per layer (the batch shares W, so it does not
        # average this away); these maps contract, so errors do not pile up. 6 standard deviations.
        q_tolerance = 6 * math.sqrt(2 / WIDTH) * np.ones(DEPTH)
    assert np.all(np.abs(np.log(q / np.array(prediction.q))) < q_tolerance), (q, prediction.q)
    errors = np.abs(np.log(ratios / np.array(prediction.delta_ratios)))
    assert np.all(errors < delta_tolerance(WIDTH, DEPTH)), (ratios, prediction.delta_ratios)


def test_unequal_widths_follow_the_per_layer_sigma_w2_of_xavier_init():
    from tinygrad_act import init

    widths = [WIDTH] + [1500, 500] * (DEPTH // 2)
    rng = np.random.default_rng(3)
    xavier = init.get("xavier_normal")
    weights = [xavier(a, b, rng) for a, b in zip(widths[:-1], widths[1:])]
    prediction = theory.predict_for_init("sigmoid", "xavier_normal", widths[0], widths[1:], q0=1.0)
    assert prediction.sigma_w2[1:3] == pytest.approx((1.5, 0.5))  # 2 fan_in / (fan_in + fan_out)
    q, ratios = simulate(activations.get("sigmoid"), weights, 0.0, BATCH, rng)
    assert np.all(np.abs(np.log(q / np.array(prediction.q))) < 6 * math.sqrt(2 / 500))
    errors = np.abs(np.log(ratios / np.array(prediction.delta_ratios)))
    assert np.all(errors < delta_tolerance(500, DEPTH)), (ratios, prediction.delta_ratios)
    comparison = theory.compare(prediction, ratios)
    assert abs(comparison["log10_error"]) < delta_tolerance(500, DEPTH) / math.log(10)
    assert comparison["verdict_measured"] == comparison["verdict_predicted"] == "vanishing"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: theory.predict("tanh", 3, math.inf), "sigma_w2 must be a positive finite number"),
        (lambda: theory.predict("tanh", 2.5, 1.0), "depth must be a positive integer"),
        (lambda: theory.fixed_point("tanh", 1.0, q_start=-1.0), "q_start must be a non-negative finite number"),
        (lambda: theory.sigma_w2_of_init("he_normal", "relu", 0, 3), "fan_in must be a positive integer"),
    ],
)
def test_bad_arguments_are_usage_errors_from_the_one_set_of_checks(call, message):
    from tinygrad_act.common.errors import UsageError

    with pytest.raises(UsageError, match=message):
        call()
