"""The Jacobian spectrum at step 0 (lab/measure/jacobian.py) and its free-probability theory (theory/spectrum.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from exact_svd import digits_for, log10_singular_values

from tinygrad_act.lab.measure import jacobian, product_svd
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.run.experiment import run
from tinygrad_act.lab.show.jacobian_figure import jacobian_figure
from tinygrad_act.lab.show.report import jacobian_line
from tinygrad_act.lab.theory import spectrum
from tinygrad_act.makeargs import arguments
from tinygrad_act.nn import activations
from tinygrad_act.nn.modules import MLP


def _model(act="tanh", depth=4, width=6, features=6, **options):
    return MLP(features, [width] * depth, 3, activation=act, init="xavier_normal", seed=3, **options)


def _numpy_stack(model, z1, x, bn_stats=None):
    """z_L from z_1 in plain numpy (an independent forward: layer norm and frozen batch norm written out)."""
    act = model.activation

    def normalize(index, z):
        block = model.blocks[index]
        if block.norm is None:
            return z
        if bn_stats is not None:
            mean, var = bn_stats[index]
        else:
            mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
        return (z - mean) / np.sqrt(var + block.norm.eps) * block.norm.weight.data + block.norm.bias.data

    h = act.forward(normalize(0, z1)) + (x if model.blocks[0].residual else 0)
    z = z1
    for index, block in enumerate(model.blocks[1:], 1):
        z = h @ block.linear.weight.data + block.linear.bias.data
        if index < len(model.blocks) - 1:
            h = act.forward(normalize(index, z)) + (h if block.residual else 0)
    return z


def _finite_differences(model, x, bn_stats=None, eps=1e-6):
    first = model.blocks[0].linear
    z1 = x @ first.weight.data + first.bias.data
    columns = []
    for j in range(z1.size):
        step = np.zeros_like(z1)
        step[j] = eps
        columns.append(_numpy_stack(model, z1 + step, x, bn_stats) - _numpy_stack(model, z1 - step, x, bn_stats))
    return np.array(columns).T / (2 * eps)  # J[i, j] = dz_L[i] / dz_1[j]


@pytest.mark.parametrize("options", [{}, {"residual": True}, {"norm": "layer"}, {"residual": True, "norm": "layer"}])
def test_jacobian_matches_finite_differences(options):
    model = _model(**options)
    x = np.random.default_rng(0).standard_normal(6)
    assert np.allclose(jacobian.jacobian(model, x), _finite_differences(model, x), atol=1e-7, rtol=1e-6)


def test_batch_norm_jacobian_holds_the_first_batch_statistics_fixed():
    model = _model(norm="batch")
    batch = np.random.default_rng(1).standard_normal((16, 6))
    norms = jacobian._norms(model, batch)
    stats, h = [], batch  # the batch's own statistics of each z, computed here in numpy
    for block in model.blocks:
        z = h @ block.linear.weight.data + block.linear.bias.data
        stats.append((z.mean(0), z.var(0)))
        h = model.activation.forward((z - stats[-1][0]) / np.sqrt(stats[-1][1] + block.norm.eps))
    before = [b.norm.running_mean.copy() for b in model.blocks]
    measured = jacobian.jacobian(model, batch[0], norms)
    assert np.allclose(measured, _finite_differences(model, batch[0], stats), atol=1e-7, rtol=1e-6)
    assert all(np.array_equal(b.norm.running_mean, m) for b, m in zip(model.blocks, before))  # untouched


def test_plain_jacobian_is_the_product_of_weights_and_derivatives():
    model = _model(act="sigmoid", depth=5)
    x = np.random.default_rng(2).standard_normal(6)
    h, closed, previous = x, None, None
    for index, block in enumerate(model.blocks):
        z = h @ block.linear.weight.data + block.linear.bias.data
        if index:  # dz_l / dz_(l-1) = W_l^T diag(f'(z_(l-1))) in the row-vector convention
            step = block.linear.weight.data.T * model.activation.derivative(previous)[None, :]
            closed = step if closed is None else step @ closed
        previous, h = z, model.activation.forward(z)
    assert np.allclose(jacobian.jacobian(model, x), closed, atol=1e-12)
    assert not any(p.grad is not None for p in model.parameters())  # the weights entered as constants


@pytest.mark.parametrize(
    "act, init, depth, dtype",
    [("relu", "he_normal", 20, np.float64), ("tanh", "xavier_normal", 60, np.float64),
     ("sigmoid", "xavier_normal", 40, np.float32), ("tanh", "xavier_normal", 50, np.float32)],
)  # fmt: skip
def test_measured_spectrum_matches_mpmath_with_exact_zeros_over_tens_of_decades(act, init, depth, dtype):
    width = 12 if act == "relu" else 8
    model = MLP(6, [width] * depth, 3, activation=act, init=init, seed=3, dtype=dtype)
    batch = np.random.default_rng(0).standard_normal((4, 6)).astype(dtype)
    entry = jacobian.measure(model, batch, examples=2)
    norms, digits = jacobian._norms(model, batch), digits_for(entry["log10_singular_values"]) + 40
    exact = [log10_singular_values(jacobian.factors(model, row, norms), digits) for row in batch[:2]]
    ranks = [int(np.isfinite(values).sum()) for values in exact]
    assert entry["rank"] == ranks and entry["zeros"] == [width - r for r in ranks] and entry["unresolved"] == [0, 0]
    pooled = np.sort(np.concatenate([values[np.isfinite(values)] for values in exact]))[::-1]
    measured = np.array(entry["log10_singular_values"])
    assert np.max(np.abs(np.expm1((measured - pooled) * math.log(10.0)))) <= 1e-6
    assert entry["decades"] == pytest.approx(np.quantile(pooled, 0.95) - np.quantile(pooled, 0.05), abs=1e-9)
    if act == "relu":
        assert sum(entry["zeros"]) > 0 and entry["min"] == pytest.approx(10 ** pooled[-1], rel=1e-9)
    else:
        assert pooled[0] - pooled[-1] > 30  # beyond a dense SVD's ~16 decades


def test_summary_counts_add_up_and_a_layer_norms_null_direction_is_a_bound():
    """Layer norm kills the all-ones direction exactly: per example one value is unresolved, with its bound."""
    model = _model(depth=8, width=8, norm="layer")
    batch = np.random.default_rng(4).standard_normal((4, 6))
    entry = jacobian.measure(model, batch)
    assert entry["unresolved"] == [1] * 4 and len(entry["log10_bounds"]) == 4
    assert [r + z + u for r, z, u in zip(entry["rank"], entry["zeros"], entry["unresolved"])] == [entry["width"]] * 4
    logs = entry["log10_singular_values"]
    assert len(logs) == sum(entry["rank"]) and logs == sorted(logs, reverse=True)
    assert entry["singular_values"] == pytest.approx([10.0**v for v in logs], rel=1e-12)
    assert max(entry["log10_bounds"]) < logs[-1]  # round-off below every measured value, never one of them
    assert entry["mean_s2"] == pytest.approx(np.sum(np.square(entry["singular_values"])) / (4 * 8), rel=1e-9)


def test_values_below_float64s_range_keep_their_digits_in_log10():
    model = MLP(6, [6] * 300, 3, activation="sigmoid", init="xavier_normal", seed=1)
    entry = jacobian.measure(model, np.random.default_rng(0).standard_normal((2, 6)), examples=1)
    logs = entry["log10_singular_values"]
    assert logs[-1] < -308 and entry["rank"] == [6] and entry["min"] is None
    assert len(entry["singular_values"]) == sum(v >= jacobian.LOWEST_LOG10 for v in logs) < len(logs)


def _two_examples() -> dict:
    """A summary entry of two examples of width 6: rank 3 (one value below 1e-308, one unresolved) and 4."""
    spectra = [product_svd.Spectrum(np.array([0.3, -2.0, -400.2]), np.array([-450.0]), 2, 1e-12),
               product_svd.Spectrum(np.array([0.1, -5.0, -9.0, -10.0]), np.zeros(0), 2, 1e-11)]  # fmt: skip
    return {**jacobian.summarize(spectra), "theory": {"applies": False}}


def test_terminal_line_counts_rank_zeros_and_bounds_and_spans_only_the_nonzero_values():
    entry = _two_examples()
    logs = np.array([0.3, 0.1, -2.0, -5.0, -9.0, -10.0, -400.2])
    assert entry["decades"] == pytest.approx(np.quantile(logs, 0.95) - np.quantile(logs, 0.05))
    assert entry["rank"] == [3, 4] and entry["zeros"] == [2, 2] and entry["unresolved"] == [1, 0]
    line = jacobian_line(entry)
    assert "(2 examples): rank 3..4 of 6, 4 exact zeros, 1 unresolved (< 1.0e-450); nonzero s 6.3e-401 .. 2" in line
    assert f"middle 90% over {entry['decades']:.3g} decades" in line and "1e-450" not in line.split(";")[1]


def test_jacobian_figure_counts_zeros_and_bounds_apart_and_marks_a_dense_svds_floor():
    fig, name = jacobian_figure(_two_examples())
    side, main = fig.axes
    assert name == "jacobian.png" and [bar.get_height() for bar in side.patches] == [4, 1]
    assert "< 1.0e-450" in side.get_xticklabels()[1].get_text()
    assert sum(patch.get_height() for patch in main.patches) == 7  # the nonzero values only, -400 among them
    floor = 0.3 + math.log10(np.finfo(np.float64).eps)
    assert any(line.get_xdata()[0] == pytest.approx(floor) for line in main.get_lines())
    narrow = {**_two_examples(), "zeros": [0, 0], "unresolved": [0, 0], "log10_singular_values": [0.1, 0.0]}
    assert len(jacobian_figure(narrow)[0].axes) == 1  # nothing beside the axis: no side panel


def test_an_older_summary_with_plain_singular_values_still_reads():
    old = {"applies": True, "examples": 1, "singular_values": [2.0, 1e-3, 0.0], "mean_s2": 4.0 / 3, "median": 1e-3,
           "decades": 3.2, "theory": {"applies": False}}  # fmt: skip
    assert jacobian_line(old).startswith("Jacobian dz_L/dz_1 at step 0 (1 examples): s 1.0e-03 .. 2 (median")
    assert sum(patch.get_height() for patch in jacobian_figure(old)[0].axes[0].patches) == 2


def test_a_product_beyond_float64s_range_is_measured_in_log10_without_warnings():
    """Every factor finite, their product 1e200 (an exploding net): the values keep their digits in log10."""
    spectra = [product_svd.singular_values([np.full(4, 1e50)] * 4)] * 2
    entry = jacobian.summarize(spectra)
    assert entry["log10_singular_values"] == pytest.approx([200.0] * 8) and entry["decades"] == pytest.approx(0.0)
    assert entry["std_s2"] == 0.0 and entry["log10_mean_s2"] == pytest.approx(400.0) and entry["mean_s2"] == math.inf
    assert entry["max"] == pytest.approx(1e200) and jacobian_line({**entry, "theory": {}}).endswith("mean s^2 1.0e+400")


def test_orthogonal_linear_stack_is_an_isometry_and_its_theory_says_so():
    model = MLP(8, [8] * 6, 2, activation="identity", init="orthogonal", seed=0)
    s = np.array(jacobian.measure(model, np.ones((2, 8)))["singular_values"])
    assert np.allclose(s, 1.0, atol=1e-12)
    moments = spectrum.jacobian_moments("identity", [1.0] * 5, [1.0] * 5, orthogonal=True)
    assert moments["mean_s2"] == pytest.approx(1.0) and moments["var_s2"] == pytest.approx(0.0, abs=1e-12)


def test_gaussian_linear_moments_are_fuss_catalan_and_monte_carlo_agrees():
    factors = 6
    moments = spectrum.jacobian_moments("identity", [1.0] * factors, [1.0] * factors, orthogonal=False)
    second = spectrum.fuss_catalan(factors, 2) / spectrum.fuss_catalan(factors, 1) ** 2
    assert moments["relative_var"] == pytest.approx(second - 1) == pytest.approx(factors)
    rng = np.random.default_rng(0)
    lam = spectrum.simulate("identity", [1.0] * factors, [1.0] * factors, False, 400, rng)
    assert np.mean(lam) == pytest.approx(1.0, rel=0.1)
    assert np.mean(lam**2) == pytest.approx(spectrum.fuss_catalan(factors, 2), rel=0.25)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_free_probability_moments_match_large_random_matrices(orthogonal):
    act, depth, q, sigma_w2 = activations.get("tanh"), 10, 0.5, 1.2
    rng = np.random.default_rng(7)
    lam = np.concatenate([spectrum.simulate(act, [q] * depth, [sigma_w2] * depth, orthogonal, 400, rng)
                          for _ in range(2)])  # fmt: skip
    theory = spectrum.jacobian_moments(act, [q] * depth, [sigma_w2] * depth, orthogonal)
    assert np.mean(lam) == pytest.approx(theory["mean_s2"], rel=0.1)
    assert np.var(lam) / np.mean(lam) ** 2 == pytest.approx(theory["relative_var"], rel=0.2)
    assert theory["relative_var"] > (depth if not orthogonal else 0)  # Gaussian W add 1 per layer, orthogonal 0


def test_run_records_the_spectrum_and_its_theory(tmp_path):
    # the figure of the spectrum and its theory (the run's others: test_run_figures.py)
    options = dict(
        depth=4, width=16, act="tanh", init="orthogonal", steps=2, data="spirals:n=200", figures=["jacobian"]
    )
    config = Config(**options, out=str(tmp_path / "r"))
    summary = run(config, progress=False)
    entry = json.loads((tmp_path / "r" / "summary.json").read_text())["jacobian"]
    assert entry["examples"] == jacobian.EXAMPLES and len(entry["singular_values"]) == 4 * 16
    assert entry["singular_values"] == sorted(entry["singular_values"], reverse=True)
    assert entry["mean_s2"] == pytest.approx(np.mean(np.square(entry["singular_values"])))
    assert entry["theory"]["applies"] and entry["theory"]["weights"] == "orthogonal"
    assert math.isclose(entry["theory"]["mean_s2"], entry["mean_s2"], rel_tol=0.6)
    density = entry["theory"]["density"]  # the free-probability density of s^2, drawn in jacobian.png
    assert density["applies"] and density["mass"] == pytest.approx(1.0, abs=0.02) and min(density["density"]) >= 0
    assert "figures/jacobian.png" in summary["figures"]


def test_jacobian_leaves_training_unchanged_and_obeys_the_switches(tmp_path):
    base = dict(depth=3, width=8, steps=5, norm="batch", data="spirals:n=200", figures=False)
    with_j = run(Config(**base, out=str(tmp_path / "a")), progress=False)
    without = run(Config(**base, jacobian=False, out=str(tmp_path / "b")), progress=False)
    assert with_j["jacobian"]["applies"] and without["jacobian"] == {"applies": False, "reason": "--no-jacobian"}

    def records(name):
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]  # fmt: skip

    assert records("a") == records("b")
    assert not jacobian.wanted(Config(depth=1))
    assert "one hidden layer" in jacobian.not_measured(Config(depth=1))["reason"]
    assert not jacobian.wanted(Config(width=513)) and jacobian.wanted(Config(width=513, jacobian=True))
    assert arguments("experiment", {"JACOBIAN": "0"})[-1] == "--no-jacobian"
    assert arguments("experiment", {"JACOBIAN": "yes"})[-1] == "--jacobian"
