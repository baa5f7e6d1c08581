"""Measurement through time: RecurrentNet (nn/recurrent_net.py), the TimeProbe and its summary
(lab/measure/through_time.py), and the state Jacobian's factors (lab/measure/time_jacobian.py)."""

import math

import numpy as np
import pytest
from tinygrad_act.optim import SGD, clip_grad_norm

from tinygrad_act import Tensor, no_grad
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.data import tasks
from tinygrad_act.lab.measure import time_jacobian
from tinygrad_act.lab.measure.through_time import NEAR, TimeProbe, gradient_record, summarize
from tinygrad_act.lab.theory import recurrent as theory
from tinygrad_act.nn import RecurrentNet, activations
from tinygrad_act.nn.step import Step

CELLS = ("tanh", "relu", "lstm", "gru")
X = np.random.default_rng(7).standard_normal((5, 6, 2))
Y = np.random.default_rng(8).standard_normal(5)


def measured_step(cell, clip=0.0, **options):
    """One SGD step of a fresh RecurrentNet measured by a TimeProbe: (model, probe record, retained trace)."""
    model = RecurrentNet(2, 4, 1, cell=cell, seed=3, **options)
    optimizer = SGD(model.parameters(), lr=0.05)
    probe = TimeProbe(model, optimizer)
    loss = tasks.loss("regression", model(Tensor(X)), Y)
    trace = model.recurrent.trace
    for name in ("hidden", "cell"):
        for node in trace[name][0] if name in trace.names else []:
            if node.requires_grad:
                node.retain_grad()
    optimizer.zero_grad()
    loss.backward()
    if clip:
        clip_grad_norm(model.parameters(), clip)
    optimizer.step()
    return model, probe.record, trace


@pytest.mark.parametrize("cell", CELLS)
def test_delta_norm_of_each_step_is_the_norm_of_dl_dh_t_through_the_readout_and_later_steps(cell):
    _, record, trace = measured_step(cell)
    steps = record["through_time"]
    assert [s["t"] for s in steps] == list(range(1, 7))
    for t, node in enumerate(trace.hidden[0]):
        assert steps[t]["delta_norm"] == pytest.approx(np.linalg.norm(node.grad), rel=1e-12)
    if cell == "lstm":
        for t, node in enumerate(trace["cell"][0]):
            assert steps[t]["cell_delta_norm"] == pytest.approx(np.linalg.norm(node.grad), rel=1e-12)
    layer = record["layers"][0]
    assert layer["delta_norm"] == pytest.approx(math.sqrt(sum(s["delta_norm"] ** 2 for s in steps)))


@pytest.mark.parametrize("cell", CELLS)
def test_measuring_changes_no_number_of_training(cell):
    def train(probed):
        model = RecurrentNet(2, 4, 1, cell=cell, seed=1)
        optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
        if probed:
            TimeProbe(model, optimizer, lambda step: step % 2 == 0)
        for step in range(3):
            loss = tasks.loss("regression", model(Tensor(X[:, : 4 + step])), Y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.state_dict()

    plain, probed = train(False), train(True)
    for name, value in plain.items():
        np.testing.assert_array_equal(value, probed[name])


def test_only_the_chosen_steps_are_measured_and_evaluation_under_no_grad_records_no_trace():
    model = RecurrentNet(2, 3, 1, cell="gru", seed=0)
    optimizer = SGD(model.parameters(), lr=0.01)
    probe = TimeProbe(model, optimizer, lambda step: step in (0, 1))
    measured = []
    for _ in range(3):
        loss = tasks.loss("regression", model(Tensor(X)), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        measured.append(probe.record is not None)
        with no_grad():
            model(Tensor(X))
    assert measured == [True, True, False]
    assert not model.recurrent.recording and model.recurrent.trace is None  # step 2 and after: nothing kept


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gate_statistics_are_the_means_and_saturated_fractions_of_the_traced_gates_and_the_carry_theirs(cell):
    model, record, trace = measured_step(cell, forget_bias=6.0 if cell == "lstm" else None)
    gates = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update")}[cell]
    for t, step in enumerate(record["through_time"]):
        for gate in gates:
            values = trace[gate][0][t].data
            assert step[f"{gate}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert step[f"{gate}_near_0"] == np.mean(values < NEAR)
            assert step[f"{gate}_near_1"] == np.mean(values > 1 - NEAR)
    carry = np.stack([node.data for node in trace[theory.CARRY_GATE[cell]][0]])
    np.testing.assert_allclose([s["carry"] for s in record["through_time"]], theory.carry_profile(carry))
    if cell == "lstm":  # a forget bias of 6 saturates the forget gate toward 1: σ(6) = 0.9975
        assert record["through_time"][0]["forget_near_1"] > 0.5


def test_near_is_where_the_sigmoids_derivative_falls_below_its_saturation_threshold():
    sigmoid = activations.get("sigmoid")
    assert NEAR * (1 - NEAR) == pytest.approx(sigmoid.saturation_threshold, rel=1e-12)


@pytest.mark.parametrize("cell", ["tanh", "relu"])
def test_an_rnns_activation_gain_and_saturation_per_step_are_those_of_its_preactivations(cell):
    _, record, trace = measured_step(cell)
    act = activations.get(cell)
    for t, step in enumerate(record["through_time"]):
        z = trace["preactivation"][0][t].data
        assert step["activation_gain"] == pytest.approx(np.mean(act.derivative(z) ** 2), rel=1e-12)
        assert step["saturation"] == np.mean(act.saturated(z))


def test_gradient_norms_are_taken_before_clipping_and_the_update_ratio_after_the_update():
    model, record, _ = measured_step("tanh", clip=1e-3)
    grads = [p.grad for p in model.parameters()]
    assert record["grad_norm"] > 1e-3 * 1.5  # clipped to 1e-3 afterwards: the record kept the norm before it
    assert math.sqrt(sum(float(np.sum(g**2)) for g in grads)) == pytest.approx(1e-3)
    assert record["layers"][0]["update_ratio"] > 0 and record["layers"][1]["update_ratio"] > 0


def test_a_hidden_state_no_gradient_reached_has_delta_norm_zero():
    _, record, _ = measured_step("tanh", truncate=2)  # BPTT(2, 2): only h_5, h_6 reach the readout of h_6
    norms = [s["delta_norm"] for s in record["through_time"]]
    assert norms[:4] == [0.0] * 4 and all(n > 0 for n in norms[4:])


def test_recurrent_layer_entry_reads_w_hh_spectra_and_sigma_w2_before_the_update():
    model = RecurrentNet(2, 4, 1, cell="relu", recurrent_init="identity", bias_init=0.0, seed=0)
    optimizer = SGD(model.parameters(), lr=0.5)
    probe = TimeProbe(model, optimizer)
    loss = tasks.loss("regression", model(Tensor(X)), Y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    layer = probe.record["layers"][0]
    assert (layer["spectral_radius"], layer["spectral_norm"], layer["weight_gain"]) == pytest.approx((1.0, 1.0, 1.0))


def test_summary_through_time_gives_r_time_the_per_step_factor_verdicts_and_the_theory():
    records = []
    for step, (first, last) in enumerate([(1e-3, 1.0), (0.5, 1.0)]):
        steps = [{"t": t + 1, "delta_norm": first + (last - first) * t / 9, "activation_gain": 0.5} for t in range(10)]
        layers = [{"weight_gain": 2.0, "spectral_norm": 1.2, "spectral_radius": 0.9}, {}]
        records.append({"step": 10 * step, "nonfinite": 0, "layers": layers, "through_time": steps})
    summary = summarize(records, "tanh")
    assert (summary["ratio_init"], summary["ratio_final"], summary["steps"]) == (1e-3, 0.5, 10)
    assert summary["factor_init"] == pytest.approx(1e-3 ** (1 / 9))
    assert (summary["verdict"], summary["verdict_final"]) == ("vanishing", "healthy")
    assert summary["theory"]["ratio"] == 1.0 and summary["theory"]["pascanu"]["condition"] == "exploding possible"
    assert summarize(records, "tanh", diverged=True)["verdict_final"] == "diverged"
    assert not summarize([{"step": 0, "layers": []}], "tanh")["applies"]


def test_gradient_record_of_an_unmeasured_step_holds_the_gradient_norms():
    model, _, _ = measured_step("lstm")
    record = gradient_record(model)
    assert record["nonfinite"] == 0 and record["grad_norm"] > 0
    assert [layer["delta_norm"] for layer in record["layers"]] == [None, None]


def test_probe_state_resumes_at_the_next_step():
    model = RecurrentNet(2, 3, 1, cell="tanh", seed=0)
    probe = TimeProbe(model, SGD(model.parameters(), lr=0.01), lambda step: step == 4)
    assert not model.recurrent.recording
    probe.load_state({"step": np.array(4)})
    assert probe.state()["step"] == 4 and model.recurrent.recording


# ---- the state Jacobian through time ------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_state_jacobian_factors_multiply_to_the_finite_difference_jacobian_of_s_t_by_s_1(cell):
    model = RecurrentNet(2, 3, 1, cell=cell, seed=2)
    module, x = model.recurrent, X[0]
    size = time_jacobian.state_size(module)

    def run(state):
        parts = [state[i * 3 : (i + 1) * 3][None] for i in range(size // 3)]
        for t in range(1, len(x)):
            out = module.cell(x[t : t + 1], parts[0] if len(parts) == 1 else tuple(parts))
            parts = [p.data for p in (out if isinstance(out, tuple) else (out,))]
        return np.concatenate([p[0] for p in parts])

    first = module.cell(x[:1], np.zeros((1, 3)) if size == 3 else (np.zeros((1, 3)), np.zeros((1, 3))))
    start = np.concatenate([p.data[0] for p in (first if isinstance(first, tuple) else (first,))])
    eps = 1e-6
    numeric = np.stack([(run(start + eps * e) - run(start - eps * e)) / (2 * eps) for e in np.eye(size)], axis=1)
    product = np.linalg.multi_dot(time_jacobian.factors(module, x)[::-1])
    np.testing.assert_allclose(product, numeric, atol=1e-8)
    assert all(p.grad is None for p in model.parameters())  # the weights' gradients are left as they were


def test_time_jacobian_counts_the_state_size_and_exact_zeros_of_units_that_are_off():
    model = RecurrentNet(2, 3, 1, cell="relu", recurrent_init="identity", bias_init=-100.0, seed=0)
    entry = time_jacobian.measure(model, X[:2])  # every unit off at every step: J = 0
    assert (entry["width"], entry["examples"], entry["state"], entry["steps"]) == (3, 2, 3, 6)
    assert entry["zeros"] == [3, 3] and entry["singular_values"] == []
    lstm = time_jacobian.measure(RecurrentNet(2, 3, 1, cell="lstm", seed=0), X[:1], examples=1)
    assert lstm["width"] == 6 and lstm["of"] == "ds_T/ds_1"
    assert time_jacobian.wanted(None, 100, 128) and not time_jacobian.wanted(None, 101, 128)
    assert not time_jacobian.wanted(False, 100, 8) and time_jacobian.wanted(True, 10**6, 512)


# ---- the model -------------------------------------------------------------------------------------------------
def test_recurrent_net_reads_the_last_hidden_state_or_one_row_per_example_and_step():
    model = RecurrentNet(2, 4, 3, cell="lstm", readout_steps=2, seed=0)
    out = model(Tensor(X))
    hidden, _ = model.recurrent(Tensor(X))
    expected = hidden.data[:, -2:].reshape(10, 4) @ model.output.weight.data + model.output.bias.data
    np.testing.assert_allclose(out.data, expected, rtol=1e-14)
    single = RecurrentNet(2, 4, 3, cell="tanh", seed=0)
    assert single(Tensor(X)).shape == (5, 3)


def test_recurrent_net_draws_its_weights_from_its_seed_and_refuses_a_forget_bias_without_a_forget_gate():
    a, b = RecurrentNet(2, 4, 1, cell="gru", seed=5), RecurrentNet(2, 4, 1, cell="gru", seed=5)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])
    with pytest.raises(UsageError, match="forget_bias"):
        RecurrentNet(2, 4, 1, cell="gru", forget_bias=1.0)
    with pytest.raises(UsageError, match="unknown cell .elman.; choose one of: tanh, relu, lstm, gru"):
        RecurrentNet(2, 4, 1, cell="elman")


def test_an_overflowing_step_counts_its_nonfinite_gradient_entries_and_its_norm_is_not_finite():
    model = RecurrentNet(2, 4, 1, cell="relu", recurrent_init="identity:gain=1e200", bias_init=0.0, seed=0)
    optimizer = SGD(model.parameters(), lr=0.01)
    probe = TimeProbe(model, optimizer)
    with np.errstate(all="ignore"):
        loss = tasks.loss("regression", model(Tensor(np.abs(X))), Y)
        optimizer.zero_grad()
        loss.backward()
        record = probe.collect()
    assert record["nonfinite"] > 0 and not math.isfinite(record["grad_norm"])


# ---- the captured step replays recurrent nets ----------------------------------------------------------------
@pytest.mark.parametrize(
    "cell, loss, readout", [("tanh", "mse", 1), ("relu", "mse", 1), ("lstm", "cross_entropy", 2), ("gru", "mse", 1)]
)
def test_a_recurrent_nets_captured_step_replays_bit_for_bit_what_eager_steps_compute(cell, loss, readout):
    rng = np.random.default_rng(4)
    batches = [(rng.standard_normal((5, 6, 2)), rng.standard_normal(5) if loss == "mse" else rng.integers(0, 3, (5, 2)))
               for _ in range(4)]  # fmt: skip
    outputs = 1 if loss == "mse" else 3

    def train(capture):
        model = RecurrentNet(2, 4, outputs, cell=cell, readout_steps=readout, seed=1)
        optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
        step = Step(model, optimizer, clip=1.0, enabled=capture, loss=loss)
        losses, replayed = [], []
        for xb, yb in batches:
            losses.append(step(xb, yb)[0])
            replayed.append(step.replayed)
            step.update()
        return losses, replayed, model.state_dict()

    eager, captured = train(False), train(True)
    assert captured[1] == [False, True, True, True] and not any(eager[1])
    assert eager[0] == captured[0]
    for name, value in eager[2].items():
        np.testing.assert_array_equal(value, captured[2][name])


def test_a_measured_recurrent_step_runs_eagerly_and_arming_the_probe_keeps_the_program():
    model = RecurrentNet(2, 4, 1, cell="gru", seed=0)
    optimizer = SGD(model.parameters(), lr=0.01)
    step = Step(model, optimizer, loss="mse")
    TimeProbe(model, optimizer, lambda s: s % 3 == 0)
    replayed = []
    for _ in range(7):
        step(X, Y)
        replayed.append(step.replayed)
        step.update()
    # measured steps 0, 3, 6 eager (hooks); step 1 records; the probe's recording switch records nothing anew
    assert replayed == [False, False, True, False, True, True, False]
