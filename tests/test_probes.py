"""LayerProbe against values computed by hand (numpy) on a tiny net with known weights: depth 2, width 3, batch 4."""

import math

import numpy as np
import pytest
from tinygrad_act.optim import SGD, clip_grad_norm

from tinygrad_act import Tensor, no_grad
from tinygrad_act.lab.measure.probes import LayerProbe, gradient_record
from tinygrad_act.nn import MLP, cross_entropy

LR = 0.1
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.0], [2.0, 1.0]])
Y = np.array([0, 1, 1, 0])
# Unit 2 of layer 1 has z = -(x1 + x2) - 4 < 0 for every example: dead for relu (zero gradient), saturated
# (but alive) for tanh.
WEIGHTS = [
    np.array([[1.0, -1.0, 0.5], [0.5, -1.0, -1.0]]),
    np.array([[1.0, -1.0, 2.0], [3.0, 1.0, -1.0], [-0.5, 2.0, 1.0]]),
    np.array([[1.0, -1.0], [-2.0, 0.5], [0.5, 1.0]]),
]
BIASES = [np.array([0.0, -4.0, 0.1]), np.array([0.5, -1.0, 0.0]), np.array([0.1, -0.1])]

# phi, phi', and the saturation threshold: 5% of max |phi'| (relu 1, tanh 1, sigmoid 1/4).
ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float), 0.05),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2, 0.05),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2, 0.0125),
}


def _tiny_model(act, weights=WEIGHTS, biases=BIASES):
    model = MLP(2, [3, 3], 2, activation=act, seed=0)
    for layer, w, b in zip(model.layers, weights, biases):
        layer.weight.data = w.copy()
        layer.bias.data = b.copy()
    return model


def _hand_statistics(act, weights, biases, x=X, y=Y):
    """Every probe field, from a numpy forward and backward written out for this net."""
    phi, dphi, threshold = ACTIVATIONS[act]
    hs, zs = [x], []
    for i, (w, b) in enumerate(zip(weights, biases)):
        zs.append(hs[-1] @ w + b)
        if i < 2:
            hs.append(phi(zs[-1]))
    logits = zs[-1]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(4), y]))
    deltas = [None, None, (p - np.eye(2)[y]) / 4]
    for i in (1, 0):
        deltas[i] = (deltas[i + 1] @ weights[i + 1].T) * dphi(zs[i])
    grads_w = [hs[i].T @ deltas[i] for i in range(3)]
    grads_b = [deltas[i].sum(0) for i in range(3)]
    layers = []
    for i in range(3):
        out = phi(zs[i]) if i < 2 else logits
        stats = {
            "layer": i + 1,
            "weight_grad_norm": np.sqrt(np.sum(grads_w[i] ** 2)),
            "bias_grad_norm": np.sqrt(np.sum(grads_b[i] ** 2)),
            "delta_norm": np.sqrt(np.sum(deltas[i] ** 2)),
            "act_mean": out.mean(),
            "act_std": out.std(),
            # the SGD step changes W by -lr dW
            "update_ratio": LR * np.sqrt(np.sum(grads_w[i] ** 2)) / np.sqrt(np.sum(weights[i] ** 2)),
        }
        if i < 2:
            saturated = np.abs(dphi(zs[i])) < threshold
            stats["saturation"] = saturated.mean()
            stats["dead_fraction"] = (dphi(zs[i]) == 0).all(axis=0).mean()
        else:
            stats["saturation"] = stats["dead_fraction"] = None
        layers.append(stats)
    grad_norm = np.sqrt(sum(np.sum(g**2) for g in grads_w + grads_b))
    return {"loss": loss, "grad_norm": grad_norm, "layers": layers, "grads_w": grads_w, "grads_b": grads_b}


def _train_step(model, optimizer, x=X, y=Y, clip=None):
    loss = cross_entropy(model(Tensor(x)), y)
    optimizer.zero_grad()
    loss.backward()
    if clip is not None:
        clip_grad_norm(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def _assert_record_matches(record, expected):
    assert record["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-12)
    assert record["nonfinite"] == 0
    assert [layer["layer"] for layer in record["layers"]] == [1, 2, 3]
    for got, want in zip(record["layers"], expected["layers"]):
        for field, value in want.items():
            if value is None:
                assert got[field] is None, field
            else:
                assert got[field] == pytest.approx(value, rel=1e-12, abs=1e-15), (got["layer"], field)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_every_probe_field_matches_the_hand_computed_value_at_step_zero(act):
    model = _tiny_model(act)
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    loss = _train_step(model, optimizer)
    expected = _hand_statistics(act, WEIGHTS, BIASES)
    assert loss == pytest.approx(expected["loss"], rel=1e-12)
    _assert_record_matches(probe.record, expected)


def test_hand_computed_case_exercises_dead_and_saturated_units():
    # Guards the fixture: the numbers above are only a test of the probe if they are not all zeros.
    relu, tanh = _hand_statistics("relu", WEIGHTS, BIASES), _hand_statistics("tanh", WEIGHTS, BIASES)
    assert relu["layers"][0]["dead_fraction"] == pytest.approx(1 / 3)
    assert 0 < relu["layers"][1]["saturation"] < 1
    assert tanh["layers"][0]["saturation"] >= 1 / 3  # the same unit is saturated, not dead: tanh' > 0
    assert tanh["layers"][0]["dead_fraction"] == 0
    assert 0 < tanh["layers"][1]["saturation"] < 1


def test_the_first_record_is_step_zero_at_initialization_and_the_second_sees_the_updated_weights():
    model = _tiny_model("tanh")
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    _train_step(model, optimizer)
    first = probe.record
    assert probe.step == 1
    _assert_record_matches(first, _hand_statistics("tanh", WEIGHTS, BIASES))
    initial = _hand_statistics("tanh", WEIGHTS, BIASES)
    updated_w = [w - LR * g for w, g in zip(WEIGHTS, initial["grads_w"])]
    updated_b = [b - LR * g for b, g in zip(BIASES, initial["grads_b"])]
    for layer, w in zip(model.layers, updated_w):
        np.testing.assert_allclose(layer.weight.data, w, rtol=1e-13)
    _train_step(model, optimizer)
    _assert_record_matches(probe.record, _hand_statistics("tanh", updated_w, updated_b))


def _hooks_of(tensor):
    return list(tensor._hooks or [])


def test_steps_not_selected_produce_no_record_and_register_no_hooks():
    model = _tiny_model("relu")
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer, should_log=lambda step: step % 2 == 0)
    outputs = []
    for layer in model.layers:  # registered after the probe's hooks, so it sees what they did
        layer.register_forward_hook(lambda module, inputs, z: outputs.append(z))
    records = []
    for step in range(4):
        outputs.clear()
        loss = cross_entropy(model(Tensor(X)), Y)
        hooked = [len(_hooks_of(z)) for z in outputs] + [len(_hooks_of(p)) for p in model.parameters()]
        assert probe.measuring == (step % 2 == 0)
        if step % 2:
            assert hooked == [0] * len(hooked), f"step {step} registered hooks"
        else:
            assert all(hooked), f"step {step} is measured, so every tensor gets a hook"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        records.append(probe.record)
    assert [r is not None for r in records] == [True, False, True, False]
    assert all(not _hooks_of(p) for p in model.parameters())  # released after each step


def test_forward_passes_under_no_grad_are_ignored():
    act = "sigmoid"
    reference_model = _tiny_model(act)
    reference_optimizer = SGD(reference_model.parameters(), lr=LR)
    reference = LayerProbe(reference_model, reference_optimizer)
    _train_step(reference_model, reference_optimizer)

    model = _tiny_model(act)
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    loss = cross_entropy(model(Tensor(X)), Y)
    optimizer.zero_grad()
    loss.backward()
    with no_grad():  # an evaluation between backward and step, on other data
        model(Tensor(-3 * X))
    optimizer.step()
    with no_grad():  # and one between steps
        model(Tensor(X[:2]))
    assert probe.step == 1 and probe.record is not None
    assert probe.record == reference.record
    _train_step(model, optimizer)
    assert probe.step == 2


def test_grad_norms_are_taken_before_clipping_and_the_update_ratio_after():
    model = _tiny_model("tanh")
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    expected = _hand_statistics("tanh", WEIGHTS, BIASES)
    clip = expected["grad_norm"] / 4
    _train_step(model, optimizer, clip=clip)
    assert probe.record["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-12)
    for got, want in zip(probe.record["layers"], expected["layers"]):
        assert got["weight_grad_norm"] == pytest.approx(want["weight_grad_norm"], rel=1e-12)
        assert got["update_ratio"] == pytest.approx(want["update_ratio"] / 4, rel=1e-5)


def test_act_statistics_use_the_normalized_pre_activation_when_the_mlp_has_layer_norm():
    model = MLP(2, [3], 2, activation="tanh", norm="layer", seed=0)
    model.layers[0].weight.data = WEIGHTS[0].copy()
    model.layers[0].bias.data = BIASES[0].copy()
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    _train_step(model, optimizer)
    z = X @ WEIGHTS[0] + BIASES[0]
    a = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-5)
    hidden = probe.record["layers"][0]
    assert hidden["act_mean"] == pytest.approx(np.tanh(a).mean(), rel=1e-12)
    assert hidden["act_std"] == pytest.approx(np.tanh(a).std(), rel=1e-12)
    assert hidden["saturation"] == pytest.approx(np.mean(1 - np.tanh(a) ** 2 < 0.05))


def test_non_finite_gradients_are_counted_entry_by_entry():
    model = _tiny_model("tanh")
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    x = X.copy()
    x[0, 0] = np.nan
    loss = cross_entropy(model(Tensor(x)), Y)
    optimizer.zero_grad()
    loss.backward()
    record = probe.collect()
    assert "update_ratio" not in record["layers"][0]  # no update yet
    assert math.isnan(record["grad_norm"])
    assert record["nonfinite"] == model.num_parameters()


def test_detach_stops_measurement():
    model = _tiny_model("relu")
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    _train_step(model, optimizer)
    first = probe.record
    assert first is not None
    probe.detach()
    loss = cross_entropy(model(Tensor(X)), Y)
    assert not probe.measuring and all(not _hooks_of(p) for p in model.parameters())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert probe.record is first  # still the last measured step


def test_gradient_record_gives_the_gradient_norms_of_an_unmeasured_step():
    model = _tiny_model("tanh")
    cross_entropy(model(Tensor(X)), Y).backward()
    record = gradient_record(model)
    expected = _hand_statistics("tanh", WEIGHTS, BIASES)
    assert record["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-12)
    assert record["nonfinite"] == 0
    for got, want in zip(record["layers"], expected["layers"]):
        assert got["weight_grad_norm"] == pytest.approx(want["weight_grad_norm"], rel=1e-12)
        assert got["bias_grad_norm"] == pytest.approx(want["bias_grad_norm"], rel=1e-12)
        assert got["delta_norm"] is None


def test_float32_model_gives_finite_python_float_statistics():
    model = MLP(2, [3, 3], 2, activation="tanh", seed=0, dtype=np.float32)
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    _train_step(model, optimizer, x=X.astype(np.float32))
    for layer in probe.record["layers"]:
        for field in ("weight_grad_norm", "bias_grad_norm", "delta_norm", "act_mean", "act_std", "update_ratio"):
            assert type(layer[field]) is float and math.isfinite(layer[field]), field


@pytest.mark.parametrize("seed", range(5))
def test_the_logged_grad_norm_is_exactly_the_norm_clipping_compares_with_its_threshold(seed):
    rng = np.random.default_rng(seed)
    model = MLP(6, [16, 16, 16], 3, activation="tanh", seed=seed)
    optimizer = SGD(model.parameters(), lr=LR)
    probe = LayerProbe(model, optimizer)
    loss = cross_entropy(model(Tensor(rng.normal(size=(32, 6)))), rng.integers(0, 3, size=32))
    loss.backward()
    clipped_at = clip_grad_norm(model.parameters(), 1e9)  # returns the global norm it compared
    optimizer.step()
    assert probe.record["grad_norm"] == clipped_at
    assert gradient_record(model)["grad_norm"] == clipped_at
