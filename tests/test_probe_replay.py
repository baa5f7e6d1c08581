"""A probe fed by the captured step (LayerProbe(..., replay=step)): measured steps replay, and every record is the
one the probe's hooks take from an eager step."""

import json

import numpy as np
import pytest
from tinygrad_act.optim import SGD

from tinygrad_act.lab.measure.probes import LayerProbe
from tinygrad_act.nn import MLP
from tinygrad_act.nn.activations import Activation
from tinygrad_act.nn.step import Step

RNG = np.random.default_rng(3)
BATCHES = [(RNG.normal(size=(16, 5)), RNG.integers(0, 3, size=16)) for _ in range(4)]


def _train(replay: bool, log_every: int, clip: float, norm, capture: bool = True, steps: int = 12, act="tanh",
           dtype=np.float64):  # fmt: skip
    """(the records as JSON, whether each measured step replayed)."""
    model = MLP(5, [8, 8, 8], 3, activation=act, norm=norm, seed=1, dtype=dtype)
    optimizer = SGD(model.parameters(), lr=0.3, momentum=0.9)
    step = Step(model, optimizer, clip, enabled=capture)
    probe = LayerProbe(model, optimizer, lambda i: i % log_every == 0, replay=step if replay else None)
    records, replayed = [], []
    for i in range(steps):
        xb, yb = BATCHES[i % len(BATCHES)]
        step(xb.astype(dtype), yb)
        measured = probe.measuring
        step.update()
        if measured:
            records.append(probe.record)
            replayed.append(step.replayed)
    return json.dumps(records), replayed


@pytest.mark.parametrize(("log_every", "clip", "norm"), [(3, 0.0, None), (1, 0.05, None), (2, 0.0, "batch")])
def test_measured_steps_replay_and_log_the_records_of_hooked_eager_steps(log_every, clip, norm):
    eager, replayed_eagerly = _train(False, log_every, clip, norm)
    served, replayed = _train(True, log_every, clip, norm)
    assert served == eager
    assert not any(replayed_eagerly)
    assert replayed[0] is False and all(replayed[2:])  # the first records the program, the second may too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["sigmoid", "relu", "gelu", "elu", "selu"])
def test_records_of_replayed_steps_handed_the_backwards_derivatives_equal_hooked_eager_ones(act, dtype):
    eager, _ = _train(False, 1, 0.0, None, act=act, dtype=dtype)
    served, replayed = _train(True, 1, 0.0, None, act=act, dtype=dtype)
    assert served == eager and all(replayed[2:])


def test_a_probe_served_by_a_step_that_cannot_replay_measures_through_its_hooks():
    eager, _ = _train(False, 2, 0.0, None)
    served, replayed = _train(True, 2, 0.0, None, capture=False)
    assert served == eager and not any(replayed)


class _Observer:
    """An observer of a Step that keeps what each replayed call hands it."""

    def __init__(self):
        self.replays = []

    def replayed(self, step):
        self.replays.append(step)

    def attach(self):
        pass


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "gelu", "elu", "leaky_relu:alpha=0.2"])
def test_a_replay_hands_each_activation_the_derivative_of_its_input_bit_for_bit(act, dtype):
    model = MLP(5, [8, 8, 8], 3, activation=act, norm="layer", seed=2, dtype=dtype)
    step = Step(model, SGD(model.parameters(), lr=0.3, momentum=0.9))
    observer = _Observer()
    step.observe(observer)
    for i in range(4):
        xb, yb = BATCHES[i]
        step(xb.astype(dtype) * 3, yb)  # * 3: some units saturate, or die
        step.update()
    replays = observer.replays[1:]  # the first call records: its arrays come from hooks, without derivatives
    assert len(replays) == 3 and step.replayed
    for replay in replays:
        activations = [(c, s) for c, s in zip(replay.calls, replay.slopes) if c[0] in {b.act for b in model.blocks}]
        assert len(activations) == 3
        for (module, inputs, _), slope in activations:
            expected = module.activation.derivative(inputs[0])
            assert slope.dtype == expected.dtype and slope.tobytes() == expected.tobytes()


def test_a_probe_fed_by_replays_computes_no_derivative_of_its_own(monkeypatch):
    calls = []
    derivative = Activation.derivative
    monkeypatch.setattr(Activation, "derivative", lambda self, x: calls.append(x.shape) or derivative(self, x))
    model = MLP(5, [8, 8, 8], 3, activation="tanh", seed=1)
    optimizer = SGD(model.parameters(), lr=0.3, momentum=0.9)
    step = Step(model, optimizer)
    probe = LayerProbe(model, optimizer, lambda i: True, replay=step)
    records = []
    for i in range(6):
        step(*BATCHES[i % len(BATCHES)])
        step.update()
        records.append(probe.record)
        if i == 1:
            calls.clear()  # the recording step's probe computed them (no replay hands them over)
    assert step.replayed and all(r is not None for r in records) and calls == []
