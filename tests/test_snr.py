"""grad_snr (per layer: ||mean g||² / mean ||g_i - mean g||² over the batch's examples) against a brute-force
computation with one backward pass per example; its conventions for a batch of one, a zero gradient and
examples that all agree."""

import math

import numpy as np
import pytest
from probing import measured_step
from tinygrad_act.optim import SGD

from tinygrad_act import Tensor
from tinygrad_act.lab.measure.gradient_noise import gradient_snr, noise_floor
from tinygrad_act.lab.measure.probes import LayerProbe
from tinygrad_act.lab.show import run_figures
from tinygrad_act.lab.show.report import layer_table
from tinygrad_act.nn import MLP, cross_entropy

RNG = np.random.default_rng(3)
X, Y = RNG.normal(size=(12, 5)), RNG.integers(0, 3, size=12)


def _model(act, dtype, **kwargs):
    return MLP(5, [7, 7, 7], 3, activation=act, seed=2, dtype=dtype, **kwargs)


def _measured(model, x, y):
    return [layer["grad_snr"] for layer in measured_step(model, x, y)["layers"]]


def _brute_force(model, x, y):
    """One backward pass per example: g_i = dloss_i/dW for every Linear layer, then the SNR in float64."""
    per_example = []
    for i in range(len(x)):
        model.zero_grad()
        cross_entropy(model(Tensor(x[i : i + 1])), y[i : i + 1]).backward()
        per_example.append([layer.weight.grad.astype(np.float64).copy() for layer in model.layers])
    snr = []
    for grads in zip(*per_example):
        grads = np.stack(grads)
        mean = grads.mean(axis=0)
        snr.append(np.sum(mean**2) / np.mean(np.sum((grads - mean) ** 2, axis=(1, 2))))
    return snr


@pytest.mark.parametrize(
    "act, dtype, rel",
    [("tanh", np.float64, 1e-10), ("sigmoid", np.float64, 1e-10), ("relu", np.float64, 1e-10),
     ("tanh", np.float32, 1e-4), ("relu", np.float32, 1e-4)],
)  # fmt: skip
def test_grad_snr_matches_one_backward_pass_per_example(act, dtype, rel):
    x = X.astype(dtype)
    measured = _measured(_model(act, dtype), x, Y)
    expected = _brute_force(_model(act, dtype), x, Y)
    assert len(measured) == 4
    assert measured == pytest.approx(expected, rel=rel)
    assert all(0 < s < 1e3 for s in measured)  # a real spread: the comparison is not 0 == 0 or a cap


def test_grad_snr_matches_brute_force_with_layer_norm():
    # layer norm acts per example, so examples stay independent and the brute force still applies
    measured = _measured(_model("tanh", np.float64, norm="layer"), X, Y)
    assert measured == pytest.approx(_brute_force(_model("tanh", np.float64, norm="layer"), X, Y), rel=1e-10)


def test_a_batch_of_one_has_no_snr():
    assert _measured(_model("tanh", np.float64), X[:1], Y[:1]) == [None] * 4


def test_a_layer_that_receives_no_gradient_at_all_has_no_snr_not_zero():
    model = _model("relu", np.float64)
    model.layers[1].bias.data[:] = -1e3  # layer 2's ReLUs are off for every example: nothing flows below them
    snr = _measured(model, X, Y)
    assert snr[0] is None and snr[1] is None  # δ = 0 at layers 1 and 2
    assert snr[2] is None and snr[3] is None  # their inputs are all zero, so is every example's gradient


def test_snr_is_scale_free_so_a_vanished_gradient_keeps_its_snr():
    x, delta = 0.3 * RNG.normal(size=(16, 6)) + 1, 0.3 * RNG.normal(size=(16, 4)) + 1  # examples that mostly agree
    grad = x.T @ delta
    snr = gradient_snr(x, delta, float(np.sum(grad**2)))
    tiny = 1e-150 * delta  # a vanished gradient in float64: squares 1e-300, still normal
    assert gradient_snr(x, tiny, float(np.sum((x.T @ tiny) ** 2))) == pytest.approx(snr, rel=1e-9)
    noisy = delta - delta.mean(axis=0)  # examples that cancel: the mean gradient is (almost) nothing
    assert snr > 3 and gradient_snr(x, noisy, float(np.sum((x.T @ noisy) ** 2))) < 0.3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_examples_that_agree_give_the_largest_resolvable_snr_never_inf_or_negative(dtype):
    batch = 8
    x = np.tile(RNG.normal(size=(1, 6)), (batch, 1)).astype(dtype)
    delta = np.tile(RNG.normal(size=(1, 4)), (batch, 1)).astype(dtype) / batch
    grad = x.T @ delta
    snr = gradient_snr(x, delta, float(np.sum(grad.astype(np.float64) ** 2)))
    cap = 1 / (2 * batch * np.finfo(dtype).eps)
    assert 0.5 * cap < snr <= 1.01 * cap


def test_non_finite_gradients_give_nan():
    x, delta = np.ones((3, 2)), np.array([[np.inf, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert math.isnan(gradient_snr(x, delta, math.inf))


def test_snr_figure_draws_every_layer_over_the_steps_on_a_log_axis_and_the_table_shows_it():
    model = _model("tanh", np.float64)
    optimizer = SGD(model.parameters(), lr=0.1)
    probe = LayerProbe(model, optimizer)
    records = []
    for step in range(3):
        loss = cross_entropy(model(Tensor(X)), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        records.append({"step": step, "loss": loss.item(), "accuracy": 0.5, **probe.record})
    fig, name = run_figures.gradient_snr(records, batch=len(X))
    assert name == "snr.png"
    over_steps = fig.axes[1]
    assert over_steps.get_yscale() == "log"
    assert [1 / 11, 1 / 11] in [list(line.get_ydata()) for line in over_steps.get_lines()]  # pure noise's floor
    lines = [line for line in over_steps.get_lines() if len(line.get_xdata()) == 3]
    assert len(lines) == 4  # one per Linear layer
    for index, line in enumerate(lines):
        assert list(line.get_ydata()) == [r["layers"][index]["grad_snr"] for r in records]
    row = layer_table(records, width=200, wide=True).splitlines()[2].split()  # layer 1: snr@0 and snr@2 (wide)
    assert float(row[10]) == pytest.approx(records[0]["layers"][0]["grad_snr"], rel=0.05)
    assert float(row[11]) == pytest.approx(records[-1]["layers"][0]["grad_snr"], rel=0.05)


def test_examples_with_no_common_direction_sit_at_the_noise_floor_one_over_b_minus_1():
    # Monte Carlo: independent zero-mean g_i (random x_i, δ_i) give E[SNR] about 1/(B-1) (2% here, 400 draws)
    rng, batch = np.random.default_rng(7), 16
    values = []
    for _ in range(400):
        x, delta = rng.normal(size=(batch, 30)), rng.normal(size=(batch, 20))
        values.append(gradient_snr(x, delta, float(np.sum((x.T @ delta) ** 2))))
    assert np.mean(values) == pytest.approx(noise_floor(batch), rel=0.05)
    assert noise_floor(64) == pytest.approx(1 / 63) and math.isnan(noise_floor(1))
