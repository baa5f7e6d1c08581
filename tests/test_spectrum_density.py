"""The free-probability density of the eigenvalues of JJ^T (lab/theory/spectrum_density.py) against exact cases and
large random matrices."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_act.lab.theory import memo, spectrum, spectrum_density
from tinygrad_act.nn import activations


def _density(act, depth, q, sigma_w2, orthogonal):
    moments = spectrum.jacobian_moments(act, [q] * depth, [sigma_w2] * depth, orthogonal)
    found = spectrum_density.density(act, [q] * depth, [sigma_w2] * depth, orthogonal, moments["mean_s2"],
                                     moments["relative_var"])  # fmt: skip
    assert found is not None and found["applies"]
    return moments, found


def test_one_gaussian_layer_is_marchenko_pastur():
    _, found = _density("identity", 1, 1.0, 1.0, orthogonal=False)
    x, rho = np.array(found["s2"]), np.array(found["density"])
    exact = np.sqrt(np.clip(4 * x - x * x, 0, None)) / (2 * np.pi * x)  # square Wishart, variance 1/N
    inside = (x > 0.2) & (x < 3.5)
    assert np.allclose(rho[inside], exact[inside], rtol=0.01)
    assert np.all(rho[x > 4.2] < 0.02) and found["mass"] == pytest.approx(1.0, abs=0.015)


def test_gaussian_linear_stack_has_fuss_catalan_moments():
    factors = 3
    _, found = _density("identity", factors, 1.0, 1.0, orthogonal=False)
    x, rho = np.array(found["s2"]), np.array(found["density"])
    for k in (1, 2):
        moment = np.sum(0.5 * (x[1:] ** k * rho[1:] + x[:-1] ** k * rho[:-1]) * np.diff(x))
        assert moment == pytest.approx(spectrum.fuss_catalan(factors, k), rel=0.03)


def test_orthogonal_linear_stack_solves_to_a_point_mass_at_one():
    atoms, count, log_sigma = spectrum_density._layers(activations.get("identity"), [1.0] * 5, [1.0] * 5)
    x = np.array([3.0 + 0.2j, 1.2 + 0.05j, 0.5 + 0.01j])  # a point mass at 1: psi(1/x) = 1 / (x - 1)
    guess = 1.01 / (x - 1.0)
    model = spectrum_density._model(atoms, log_sigma, count, False)
    psi, _ = spectrum_density._solve(x, guess, (guess / (1 + guess))[:, None], model)
    assert np.allclose(psi, 1.0 / (x - 1.0), rtol=1e-8)
    _, found = _density("identity", 5, 1.0, 1.0, orthogonal=True)
    x, rho = np.array(found["s2"]), np.array(found["density"])
    assert abs(x[np.argmax(rho)] - 1.0) < 1e-3  # the peak sits at 1 (its mass is not resolved by the grid)


@pytest.mark.parametrize(("act", "sigma_w2", "orthogonal"),
                         [("tanh", 1.2, True), ("tanh", 1.2, False), ("relu", 2.0, False)])  # fmt: skip
def test_density_matches_large_random_matrices(act, sigma_w2, orthogonal):
    depth, q = 8, 0.5
    moments, found = _density(activations.get(act), depth, q, sigma_w2, orthogonal)
    rng = np.random.default_rng(5)
    lam = np.sort(np.concatenate([spectrum.simulate(act, [q] * depth, [sigma_w2] * depth, orthogonal, 400, rng)
                                  for _ in range(2)]))  # fmt: skip
    empirical = np.arange(1, lam.size + 1) / lam.size
    below = 1.0 - found["mass"]  # mass under the grid (ReLU's zero eigenvalues, or under 1e-16 of the mean)
    seen = lam > 1e-8 * moments["mean_s2"]  # finite width does not reach the far tail of the wide limit
    distance = np.max(np.abs(below + spectrum_density.cdf(found, lam[seen]) - empirical[seen]))
    assert distance < 0.05  # Kolmogorov distance of the CDFs
    if orthogonal:
        assert found["mass"] == pytest.approx(1.0, abs=0.01)  # the density integrates to 1
    elif act == "tanh":  # Gaussian W: a few percent lie under 1e-16 of the mean (lambda^(-L/(L+1)) near 0)
        assert 0.9 < found["mass"] < 1.005
    else:
        assert found["mass"] == pytest.approx(0.5, abs=0.02)  # ReLU: half the eigenvalues are 0 (free projections)


def test_isometry_figure_draws_the_theory_as_a_distribution_in_log10_s():
    from tinygrad_act.findings import isometry

    moments, found = _density("identity", 1, 1.0, 1.0, orthogonal=False)
    predicted = {"mean_s2": moments["mean_s2"], "density": found}
    below, above = isometry.theory_cdf(predicted, np.array([-20.0, 2.0]))
    assert below == pytest.approx(1.0 - found["mass"], abs=1e-9) and above == pytest.approx(1.0, abs=1e-9)
    low, high = isometry.theory_cdf(predicted, np.array([-0.5, 0.0]))  # lambda in [0.1, 1] of Marchenko-Pastur
    x = np.linspace(0.1, 1.0, 20001)
    exact = np.sum(np.sqrt(4 * x - x * x) / (2 * np.pi * x)) * (x[1] - x[0])
    assert high - low == pytest.approx(exact, rel=0.02)
    assert isometry.theory_cdf({}, np.array([0.0])) is None


@pytest.fixture
def computed(monkeypatch):
    """The inputs density computed for (rather than remembered), from an empty memory."""
    calls, compute = [], spectrum_density._density
    monkeypatch.setattr(spectrum_density, "_remembered", memo.Remembered(32))
    monkeypatch.setattr(spectrum_density, "_density", lambda act, *args: calls.append(args) or compute(act, *args))
    return calls


def _ask(act, depth=2, sigma_w2=1.0, moments_of=None):
    """density of ``depth`` i.i.d. layers at q = 1, placed by the moments of ``moments_of`` (default ``act``)."""
    moments = spectrum.jacobian_moments(moments_of or act, [1.0] * depth, [sigma_w2] * depth, False)
    return spectrum_density.density(act, [1.0] * depth, [sigma_w2] * depth, False, moments["mean_s2"],
                                    moments["relative_var"])  # fmt: skip


def test_a_built_in_activations_density_is_remembered_and_each_caller_gets_its_own_equal_copy(computed):
    first = _ask("tanh")
    second = _ask(activations.get("tanh"))  # the same spec, asked by name or as an Activation
    assert len(computed) == 1 and second == first
    assert second is not first and second["s2"] is not first["s2"] and second["density"] is not first["density"]
    expected = {**first, "s2": list(first["s2"]), "density": list(first["density"])}
    first["s2"].clear(), first["density"].append(1.0), first.update(mass=-1.0)  # a caller changes its own copy
    assert _ask("tanh") == expected and len(computed) == 1
    assert _ask("tanh", sigma_w2=1.5) != expected and len(computed) == 2  # other inputs: computed


def test_a_users_activation_is_computed_each_time_as_it_may_be_replaced_under_its_name(computed):
    activations.register("test_density_user", forward=np.tanh, derivative=lambda x: 1.0 - np.tanh(x) ** 2,
                         replace=True)  # fmt: skip
    try:
        before = _ask("test_density_user", moments_of="tanh")
        activations.register("test_density_user", forward=np.tanh, derivative=lambda x: 0.9 * (1.0 - np.tanh(x) ** 2),
                             replace=True)  # fmt: skip
        after = _ask("test_density_user", moments_of="tanh")  # all inputs as before: only the activation changed
    finally:
        activations.unregister("test_density_user")
    assert len(computed) == 2 and before["density"] != after["density"]


def test_density_remembers_at_most_remembered_answers_dropping_the_oldest(computed, monkeypatch):
    monkeypatch.setattr(spectrum_density, "_remembered", memo.Remembered(2))
    for sigma_w2 in (1.0, 1.5, 1.0, 2.0, 1.5):  # 1.0 asked again is the newest: 1.5 goes first
        _ask("identity", depth=1, sigma_w2=sigma_w2)
    assert [args[1][0] for args in computed] == [1.0, 1.5, 2.0, 1.5]
    assert len(spectrum_density._remembered) == 2
