"""Theory through time (lab/theory/recurrent.py): Pascanu's condition, the linearized profile, the gates' carry."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinygrad_act.optim import SGD

from tinygrad_act import Tensor
from tinygrad_act.lab.measure import time_jacobian
from tinygrad_act.lab.measure.through_time import TimeProbe, summarize
from tinygrad_act.lab.theory import recurrent as theory
from tinygrad_act.nn import RecurrentNet


@given(scale=st.floats(0.1, 3.0), seed=st.integers(0, 2**16))
def test_pascanus_bound_is_an_upper_bound_of_the_largest_singular_value_of_the_state_jacobian(scale, seed):
    rng = np.random.default_rng(seed)
    model = RecurrentNet(2, 4, 1, cell="tanh", seed=seed)
    weight = model.recurrent.weight_hh_l0
    weight.data[...] = scale * rng.standard_normal((4, 4)) / 2
    x = rng.standard_normal((6, 2))
    product = np.linalg.multi_dot(time_jacobian.factors(model.recurrent, x)[::-1])
    condition = theory.pascanu(float(np.linalg.norm(weight.data, 2)), 1.0, 6)
    assert math.log10(np.linalg.norm(product, 2)) <= condition["log10_bound"] + 1e-9
    if condition["condition"] == "vanishing":
        assert np.linalg.norm(product, 2) < 1


def test_pascanus_condition_says_vanishing_below_one_over_gamma_and_exploding_possible_above():
    assert theory.pascanu(0.9, 1.0, 11)["condition"] == "vanishing"
    above = theory.pascanu(1.1, 1.0, 11)
    assert above["condition"] == "exploding possible" and above["log10_bound"] == pytest.approx(10 * math.log10(1.1))
    assert theory.pascanu(3.9, 0.25, 5)["condition"] == "vanishing"  # sigmoid's gamma: the threshold is 4


def test_linearized_profile_multiplies_sqrt_sigma_w2_times_the_gain_of_each_later_step():
    gains = np.array([0.3, 1.0, 0.25, 1.0])  # E[f'(z_t)^2] of steps 1..4; step 1's never enters
    profile = theory.rnn_profile(4.0, gains)
    expected = [2.0 * 1.0 * 2.0, 1.0 * 2.0, 2.0, 1.0]  # sqrt(4 * g_s) for s = t+1..T
    np.testing.assert_allclose(profile, expected, rtol=1e-15)


def test_linearized_profile_predicts_the_measured_gradient_of_a_wide_random_tanh_rnn():
    """Mean field: for i.i.d. W_hh at large H, ||dL/dh_1|| / ||dL/dh_T|| ≈ Π sqrt(σ_w² E[f'²])."""
    model = RecurrentNet(3, 256, 1, cell="tanh", recurrent_init="xavier_normal:gain=1.2", seed=0)
    optimizer = SGD(model.parameters(), lr=1e-9)
    probe = TimeProbe(model, optimizer)
    x = np.random.default_rng(1).standard_normal((16, 12, 3))
    loss = (model(Tensor(x)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    summary = summarize([{"step": 0, **probe.record}], "tanh")
    assert abs(math.log10(summary["ratio_init"] / summary["theory"]["ratio"])) < math.log10(1.5)


def test_carry_profile_of_constant_gates_is_the_gate_to_the_power_of_the_steps_left():
    gates = np.full((5, 3, 2), 0.5)
    np.testing.assert_allclose(theory.carry_profile(gates), [0.5**4, 0.5**3, 0.5**2, 0.5, 1.0], rtol=1e-14)


@given(seed=st.integers(0, 2**16))
def test_carry_profile_is_the_root_mean_square_of_the_products_of_later_gates(seed):
    gates = np.random.default_rng(seed).uniform(0.01, 1.0, size=(6, 2, 3))
    products = [np.prod(gates[t + 1 :], axis=0) for t in range(6)]
    expected = [math.sqrt(np.mean(p**2)) for p in products]
    np.testing.assert_allclose(theory.carry_profile(gates), expected, rtol=1e-12)


def test_carry_profile_keeps_its_digits_where_the_product_underflows_and_a_shut_gate_stops_it():
    gates = np.full((401, 1, 2), 0.1)
    gates[:, 0, 1] = 1.0  # one unit carries everything: the rms is 1/sqrt(2), however small the other
    np.testing.assert_allclose(theory.carry_profile(gates)[0], math.sqrt(0.5), rtol=1e-14)
    shut = np.full((3, 1, 1), 0.5)
    shut[1] = 0.0
    np.testing.assert_array_equal(theory.carry_profile(shut), [0.0, 0.5, 1.0])


def test_prediction_of_a_gated_cell_is_its_carry_and_of_an_rnn_the_linearized_profile_with_pascanu():
    gated = theory.predict("lstm", carry=[0.01, 0.1, 1.0])
    assert (gated["kind"], gated["compares_with"], gated["ratio"], gated["verdict"]) == (
        "carry", "cell", 0.01, "healthy")  # fmt: skip
    assert gated["factor"] == pytest.approx(0.1)
    rnn = theory.predict("tanh", sigma_w2_value=1.0, spectral_norm=0.5, gamma=1.0, step_gains=[1.0] * 4)
    assert rnn["ratio"] == 1.0 and rnn["pascanu"]["condition"] == "vanishing" and rnn["verdict"] == "healthy"
    assert not theory.predict("gru")["applies"]


def test_weight_blocks_split_w_hh_in_pytorchs_gate_order_and_spectral_reads_each():
    weight = np.concatenate([np.eye(2) * k for k in (1.0, 2.0, 3.0)])
    blocks = theory.weight_blocks(weight, ("reset", "update", "candidate"))
    assert theory.spectral(blocks["update"]) == {"spectral_radius": 2.0, "spectral_norm": 2.0}
    assert theory.sigma_w2(blocks["candidate"]) == pytest.approx(2 * 9 / 2)
    with pytest.raises(ValueError, match="does not hold 2 blocks"):
        theory.weight_blocks(weight, ("a", "b"))
