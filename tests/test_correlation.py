"""The correlation map and its depth scale xi_c (lab/theory/correlation.py) against independent references: the critical
point of Schoenholz et al. 2017's figure (sigma_w^2 = 1.76 at sigma_b^2 = 0.05 for tanh), Monte-Carlo sampling
of the 2-D Gaussian expectations, and two inputs sent through a wide random tanh network."""

import math

import numpy as np
import pytest

from tinygrad_act.lab.theory import correlation
from tinygrad_act.lab.theory import mean_field as theory

SIGMA_B2 = 0.05


def test_the_critical_point_is_the_papers_and_chi_c_reaches_1_there_from_both_sides():
    critical = theory.critical_sigma_w2("tanh", SIGMA_B2)
    assert critical == pytest.approx(1.76, abs=0.005)  # Schoenholz et al. 2017, figures 1 and 5
    below, above = (
        correlation.chi_c("tanh", critical - 0.01, SIGMA_B2),
        correlation.chi_c("tanh", critical + 0.01, SIGMA_B2),
    )
    assert 0.99 < below < 1 and 0.99 < above < 1
    assert correlation.correlation_depth_scale("tanh", critical - 0.01, SIGMA_B2) > 100
    assert correlation.correlation_depth_scale("tanh", 4.0, SIGMA_B2) < 10


def test_ordered_phase_c_star_is_1_and_chi_c_is_chi_1():
    q = theory.fixed_point("tanh", 1.2, SIGMA_B2).q_star
    assert correlation.correlation_fixed_point("tanh", 1.2, SIGMA_B2) == 1.0
    assert correlation.chi_c("tanh", 1.2, SIGMA_B2) == theory.chi1("tanh", q, 1.2)
    assert correlation.chi_c("tanh", 0.5, 0.0) == pytest.approx(0.5)  # q* = 0: chi_1 = sigma_w2 tanh'(0)^2
    assert correlation.correlation_fixed_point("tanh", 3.0, 0.0) == pytest.approx(0.0, abs=1e-9)  # odd phi, no bias


def pair_samples(q, c, n=2_000_000, seed=0):
    rng = np.random.default_rng(seed)
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    return math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)


@pytest.mark.parametrize("sigma_w2", [2.0, 4.0])
def test_the_map_its_fixed_point_and_chi_c_agree_with_monte_carlo_sampling(sigma_w2):
    q = theory.fixed_point("tanh", sigma_w2, SIGMA_B2).q_star
    for c in (0.1, 0.6, 0.95):
        u1, u2 = pair_samples(q, c)
        sampled = (sigma_w2 * np.mean(np.tanh(u1) * np.tanh(u2)) + SIGMA_B2) / q
        assert correlation.correlation_map("tanh", c, sigma_w2, SIGMA_B2) == pytest.approx(sampled, abs=3e-3)
    c_star = correlation.correlation_fixed_point("tanh", sigma_w2, SIGMA_B2)
    assert 0 < c_star < 1
    assert correlation.correlation_map("tanh", c_star, sigma_w2, SIGMA_B2) == pytest.approx(c_star, abs=1e-9)
    u1, u2 = pair_samples(q, c_star, seed=1)
    sampled_chi = sigma_w2 * np.mean((1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2))
    assert correlation.chi_c("tanh", sigma_w2, SIGMA_B2) == pytest.approx(sampled_chi, abs=3e-3)


def net_correlation(seed, c0, sigma_w2, width=600, depth=60, settle=25):
    """Two inputs of correlation c0 through one random tanh net: their pre-activations' correlation, averaged
    over the layers after ``settle`` (finite width makes it fluctuate by ~0.1 from layer to layer)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, width))
    x[1] = c0 * x[0] + math.sqrt(1 - c0 * c0) * x[1]
    measured = []
    for _ in range(depth):
        h = x @ (rng.standard_normal((width, width)) * math.sqrt(sigma_w2 / width))
        h += rng.standard_normal(width) * math.sqrt(SIGMA_B2)  # the same biases for both inputs
        measured.append(np.dot(h[0], h[1]) / math.sqrt(np.dot(h[0], h[0]) * np.dot(h[1], h[1])))
        x = np.tanh(h)
    return float(np.mean(measured[settle:]))


def test_two_inputs_through_wide_random_tanh_nets_reach_the_predicted_correlation_from_above_and_below():
    sigma_w2 = 2.5
    predicted = correlation.correlation_fixed_point("tanh", sigma_w2, SIGMA_B2)
    assert 0.4 < predicted < 0.5  # chaotic: far from the ordered phase's c* = 1 and from sigma_b2 = 0's c* = 0
    measured = [net_correlation(seed, c0, sigma_w2) for seed, c0 in enumerate((0.95, 0.95, 0.05, 0.05))]
    assert np.mean(measured) == pytest.approx(predicted, abs=0.06)


def test_a_variance_map_without_finite_fixed_point_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="relu.*grows without bound"):
        correlation.chi_c("relu", 3.0, SIGMA_B2)
