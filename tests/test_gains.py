"""The verdict says why: stats.layer_gains (geometric means of the weights' and the activation's gains over the
layers r spans) against the measured r, the layers it takes, and the why clause in the terminal and summary."""

import json
import math

import numpy as np
import pytest
from probing import measured_step

from tinygrad_act import cli
from tinygrad_act.lab import stats
from tinygrad_act.lab.show import run_figures
from tinygrad_act.lab.show.format import fmt
from tinygrad_act.lab.show.report import verdict_line, why_clause
from tinygrad_act.nn import MLP


def _first_record(act, depth=10, width=64, batch=64, seed=0):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(batch, width)), rng.integers(0, 10, size=batch)
    return measured_step(MLP(width, [width] * depth, 10, activation=act, seed=seed), x, y, lr=0.01)


@pytest.mark.parametrize("act, product", [("sigmoid", (0.05, 0.06)), ("tanh", (0.7, 0.8)), ("relu", (0.9, 1.1))])
def test_the_gains_product_to_the_power_half_l_minus_1_is_the_measured_r(act, product):
    # mean field at width 64: r = product^((L-1)/2) within finite-width fluctuations (measured: 0.96, 0.92, 1.21)
    record = _first_record(act)
    gains = stats.layer_gains(record)
    ratio = stats.first_last_ratio(record)
    assert product[0] < gains["product"] < product[1]
    assert gains["product"] == pytest.approx(gains["weight"] * gains["activation"], rel=1e-15)
    assert abs(math.log(gains["ratio"] / ratio)) < math.log(1.4)
    assert math.sqrt(gains["product"]) == pytest.approx(stats.per_layer_factor(ratio, 10), rel=0.04)


def _record(weight_gains, activation_gains, ratio=1.0):
    """A record whose measured r (delta of layer 1 / delta of the last hidden layer) is ``ratio``."""
    pairs = zip(weight_gains, activation_gains)
    layers = [{"weight_gain": w, "activation_gain": a, "delta_norm": 1.0} for w, a in pairs]
    layers[0]["delta_norm"] = ratio
    return {"layers": layers}


def test_gains_average_the_weights_of_layers_2_to_l_and_the_activations_of_layers_1_to_l_minus_1():
    # layer 1's weights and layer L's activation do not act between delta_1 and delta_L: 100 there is ignored
    record = _record([100.0, 4.0, 1.0, 7.0], [0.25, 1.0, 100.0, None])
    gains = stats.layer_gains(record)
    assert gains["weight"] == pytest.approx(2.0) and gains["activation"] == pytest.approx(0.5)
    assert gains["product"] == pytest.approx(1.0) and gains["ratio"] == pytest.approx(1.0)
    assert gains["layers"] == "weights 2..3, activations 1..2" and gains["explains_ratio"] is True


def test_a_layer_with_no_active_unit_makes_the_product_zero_and_one_hidden_layer_has_no_gains():
    dead = stats.layer_gains(_record([1.0, 2.0, 2.0], [0.0, 0.5, None], ratio=0.0))
    assert dead["ratio"] == 0.0 and dead["explains_ratio"] is True  # r underflowed to 0: the gains say why
    assert stats.layer_gains(_record([1.0, 1.0], [0.5, None])) is None
    assert stats.layer_gains(_record([1.0, 2.0, 2.0], [None, 0.5, None])) is None  # a record without gains


def test_the_why_clause_states_the_gains_and_for_residual_or_norm_that_they_do_not_explain_r():
    record = _record([1.0, 0.98, 0.98, 1.0], [0.055, 0.055, 0.9, None], ratio=0.06)
    gains = stats.layer_gains(record)
    line = verdict_line("vanishing", 2.9e-3, 0.054, 3, gains=gains)
    assert "why: weights' gain 0.980 x activation's gain 0.055 = 0.054 per layer on delta², x0.232 on delta" in line
    assert "weights 2..3, activations 1..2" in line
    for residual, norm, said in ((True, "none", "skip connections"), (False, "batch", "batch norm")):
        other = stats.layer_gains(record, residual, norm)
        assert other["explains_ratio"] is False
        clause = why_clause(other)
        assert "why:" not in clause and said in clause and "do not explain r" in clause
    assert why_clause(None) == ""
    assert verdict_line("healthy", 0.5, 0.9, 3) == verdict_line("healthy", 0.5, 0.9, 3, "float64", None)


def test_a_run_says_why_in_the_terminal_the_summary_and_report_html(tmp_path, capsys):
    out = tmp_path / "run"
    arguments = ["experiment", "--depth", "4", "--width", "8", "--steps", "3", "--act", "sigmoid", "--data",
                 "spirals:n=200", "--no-figures", "--no-progress", "--out", str(out)]  # fmt: skip
    assert cli.main(arguments) == 0  # in-process: the page and the terminal need no figures
    shown = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for key, record in (("init", records[0]), ("final", records[-1])):
        assert summary[f"gain_{key}"] == pytest.approx(stats.layer_gains(record))
    assert summary["gain_init"]["explains_ratio"] is True
    why = why_clause(summary["gain_init"])
    unwrapped = " ".join(shown.split())  # the terminal wraps long lines at word boundaries
    assert why.startswith(" — why: weights' gain") and " ".join(why.split()) in unwrapped
    assert " ".join(why_clause(summary["gain_final"]).split()) in unwrapped
    assert why.replace("'", "&#x27;") in (out / "report.html").read_text()


def test_gains_that_imply_another_r_do_not_explain_it_and_say_so():
    # depth 20, product 0.64 per layer: r = 0.64^9.5 = 0.014 implied, but 2.6 measured (a trained ReLU net)
    record = _record([2.0] * 21, [0.32] * 20 + [None], ratio=2.6)
    gains = stats.layer_gains(record)
    assert gains["ratio"] == pytest.approx(0.64**9.5) and gains["explains_ratio"] is False
    assert "why:" not in why_clause(gains) and "(x0.800 per layer) do not explain r" in why_clause(gains)
    # within 10% per layer (here x0.8 against x0.8 * 1.09) the gains explain r
    close = stats.layer_gains(_record([2.0] * 21, [0.32] * 20 + [None], ratio=0.64**9.5 * 1.09**19))
    assert close["explains_ratio"] is True


def test_saturation_figure_states_the_verdicts_mean_product():
    record = {"step": 0, **_first_record("sigmoid", depth=4, width=16, batch=32)}
    fig, _ = run_figures.why_per_layer([record])
    product = stats.layer_gains(record)["product"]
    assert f"mean product {fmt(product, 3)}," in fig.axes[0].get_title()
