"""tinygrad_act.watch on recurrent models: nn.RNN, nn.LSTM and nn.GRU measured through time as the lab's own
recurrent runs are (lab/measure/through_time.py), the per-step gradients equal to the engine's to 1e-10.

Skipped where torch is not importable (an optional extra: pip install 'tinygrad_act[torch]').
"""

import numpy as np
import pytest
from test_torch_watch import _assert_close as _close  # one copy of the watch tests' 1e-10 rule
from tinygrad_act.optim import SGD

import tinygrad_act
from tinygrad_act import Tensor
from tinygrad_act.common.files import read_json
from tinygrad_act.lab.measure.records import read_metrics, read_summary
from tinygrad_act.lab.measure.through_time import TimeProbe
from tinygrad_act.nn import RecurrentNet, cross_entropy

torch = None  # PyTorch, set before the first test (conftest.py); without it the tests skip
pytestmark = pytest.mark.usefixtures("pytorch")

RNG = np.random.default_rng(5)
X, Y = RNG.normal(size=(2, 4, 6, 3)), RNG.integers(0, 2, size=(2, 4))  # 2 batches of 4 sequences, T = 6, F = 3
KINDS = {"tanh": ("RNN", {"nonlinearity": "tanh"}), "relu": ("RNN", {"nonlinearity": "relu"}),
         "lstm": ("LSTM", {}), "gru": ("GRU", {})}  # fmt: skip
LAYER_FIELDS = ("weight_grad_norm", "recurrent_grad_norm", "bias_grad_norm", "delta_norm", "act_mean", "act_std",
                "weight_gain", "spectral_radius", "spectral_norm", "activation_gain", "saturation",
                "update_ratio")  # fmt: skip


def _native(cell, steps):
    """A RecurrentNet trained ``steps`` SGD steps on X, Y with a TimeProbe on each; its PyTorch twin (float64, the
    same initial weights) and the native records."""
    from torch_models import Readout  # PyTorch's modules: imported here, not at collection

    model = RecurrentNet(3, 5, 2, cell=cell, seed=1, dtype=np.float64)
    kind, options = KINDS[cell]
    recurrent = getattr(torch.nn, kind)(3, 5, batch_first=True, dtype=torch.float64, **options)
    recurrent.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.recurrent.state_dict().items()})
    head = torch.nn.Linear(5, 2, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.output.weight.data.T.copy()))
        head.bias.copy_(torch.from_numpy(model.output.bias.data.copy()))
    optimizer = SGD(model.parameters(), lr=0.5, momentum=0.9)
    probe, records = TimeProbe(model, optimizer), []
    for step in range(steps):
        loss = cross_entropy(model(Tensor(X[step])), Y[step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        records.append({"step": step, "loss": loss.item(), **probe.record})
    return Readout(recurrent, head), records


def _train(model, path, steps, every=1, **options):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    with tinygrad_act.watch(model, out=str(path), every=every, figures=False, **options) as lab:
        for step in range(steps):
            loss = torch.nn.functional.cross_entropy(
                model(torch.from_numpy(X[step % 2])), torch.from_numpy(Y[step % 2])
            )
            optimizer.zero_grad()
            loss.backward()
            lab.step(loss)
            optimizer.step()
    return lab


@pytest.mark.parametrize("cell", sorted(KINDS))
def test_a_watched_recurrent_model_logs_the_native_run_s_numbers_through_time_to_1e_10(tmp_path, cell):
    twin, native = _native(cell, steps=2)
    _train(twin, tmp_path / "run", steps=2)
    for mine, theirs in zip(read_metrics(tmp_path / "run"), native, strict=True):
        _close(mine["grad_norm"], theirs["grad_norm"], "grad_norm")
        assert len(mine["through_time"]) == len(theirs["through_time"]) == 6
        for t, (step, reference) in enumerate(zip(mine["through_time"], theirs["through_time"])):
            assert set(step) == set(reference), t
            for field in reference:  # every field through time: |dL/dh_t|, |dL/dc_t|, gains, gates, carry
                _close(step[field], reference[field], f"step {mine['step']} t {t + 1} {field}")
        for number, (layer, reference) in enumerate(zip(mine["layers"], theirs["layers"], strict=True)):
            for field in LAYER_FIELDS:
                _close(layer.get(field), reference.get(field), f"step {mine['step']} layer {number} {field}")


def test_the_per_step_gradient_is_pytorch_s_own_dl_dh_t_of_a_step_by_step_run(tmp_path):
    """dL/dh_t from the replay equals the gradient PyTorch gives each h_t of an nn.LSTMCell loop with the weights."""
    from torch_models import Readout  # PyTorch's modules: imported here, not at collection

    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(3, 5, batch_first=True, dtype=torch.float64), torch.nn.Linear(5, 2, dtype=torch.float64)
    cell = torch.nn.LSTMCell(3, 5, dtype=torch.float64)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in lstm.state_dict().items()})
    x, y = torch.from_numpy(X[0]), torch.from_numpy(Y[0])
    h = c = torch.zeros(4, 5, dtype=torch.float64)
    hidden, cells = [], []
    for t in range(6):
        h, c = cell(x[:, t], (h, c))
        h.retain_grad(), c.retain_grad()
        hidden.append(h)
        cells.append(c)
    torch.nn.functional.cross_entropy(head(h), y).backward()
    _train(Readout(lstm, head), tmp_path / "run", steps=1)
    record = read_metrics(tmp_path / "run")[0]
    for step, h, c in zip(record["through_time"], hidden, cells, strict=True):
        _close(step["delta_norm"], float(torch.linalg.norm(h.grad)), f"t {step['t']} dL/dh")
        _close(step["cell_delta_norm"], float(torch.linalg.norm(c.grad)), f"t {step['t']} dL/dc")


def test_a_watched_lstm_with_a_head_gets_r_time_the_verdict_and_the_theory_through_time(tmp_path):
    from torch_models import LstmMlp  # PyTorch's modules: imported here, not at collection

    torch.manual_seed(1)  # an LSTM then a head of two Linears: both parts measured
    lab = _train(LstmMlp(), tmp_path / "run", steps=3, every=2)
    summary, records = read_summary(tmp_path / "run"), read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [0, 2]
    first = records[0]
    assert len(first["layers"]) == 3 and "spectral_radius" in first["layers"][0] and "act_std" in first["layers"][2]
    entry = summary["through_time"]
    assert entry["applies"] and entry["cell"] == "lstm" and entry["steps"] == 6
    assert summary["ratio_init"] == entry["ratio_init"] == first["through_time"][0]["delta_norm"] / first[
        "through_time"][-1]["delta_norm"]  # fmt: skip
    assert summary["verdict"] in ("vanishing", "healthy", "exploding")
    assert summary["theory"]["applies"] and summary["theory"]["kind"] == "carry"
    assert lab.summary["through_time"]["gates_init"]["forget_mean"] > 0
    config = read_json(tmp_path / "run" / "config.json")
    assert (config["model"], config["cell"], config["width"], config["dataset"]["seq_len"]) == ("rnn", "lstm", 5, 6)


def test_each_layer_of_a_two_layer_gru_gets_pytorch_s_own_dl_dh_t(tmp_path):
    torch.manual_seed(2)
    gru, head = torch.nn.GRU(3, 5, num_layers=2, dtype=torch.float64), torch.nn.Linear(5, 2, dtype=torch.float64)
    cells = [torch.nn.GRUCell(3 if k == 0 else 5, 5, dtype=torch.float64) for k in range(2)]
    for k, cell in enumerate(cells):
        cell.load_state_dict({name.removesuffix(f"_l{k}"): v for name, v in gru.state_dict().items()
                              if name.endswith(f"_l{k}")})  # fmt: skip
    x, y = torch.from_numpy(X[0]).transpose(0, 1), torch.from_numpy(Y[0])  # time first: batch_first=False
    inputs, hidden = list(x), []
    for cell in cells:
        h, states = torch.zeros(4, 5, dtype=torch.float64), []
        for step in inputs:
            h = cell(step, h)
            h.retain_grad()
            states.append(h)
        hidden.append(states)
        inputs = states
    torch.nn.functional.cross_entropy(head(hidden[-1][-1]), y).backward()

    class TimeFirst(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.head = gru, head

        def forward(self, x):
            return self.head(self.gru(x.transpose(0, 1))[0][-1])

    _train(TimeFirst(), tmp_path / "run", steps=1)
    record = read_metrics(tmp_path / "run")[0]
    assert record["through_time"] == record["through_time_layers"][0]
    assert [layer["layer"] for layer in record["layers"]] == [1, 2, 3]
    for layer, states in zip(record["through_time_layers"], hidden, strict=True):
        for step, h in zip(layer, states, strict=True):
            _close(step["delta_norm"], float(torch.linalg.norm(h.grad)), f"t {step['t']}")
    layers = read_summary(tmp_path / "run")["through_time"]["layers"]
    assert [entry["layer"] for entry in layers] == [1, 2]
    assert layers[1]["ratio_init"] == record["through_time_layers"][1][0]["delta_norm"] / record[
        "through_time_layers"][1][-1]["delta_norm"]  # fmt: skip


@pytest.mark.parametrize(
    ("recurrent", "reason"),
    [
        (lambda: torch.nn.LSTM(3, 5, batch_first=True, bidirectional=True, dtype=torch.float64), "bidirectional"),
        (lambda: torch.nn.GRU(3, 5, num_layers=2, dropout=0.5, batch_first=True, dtype=torch.float64), "dropout 0.5"),
    ],
)
def test_a_recurrent_module_the_replay_cannot_follow_is_named_and_the_rest_measured(tmp_path, recurrent, reason):
    from torch_models import Readout  # PyTorch's modules: imported here, not at collection

    module = recurrent()
    head = torch.nn.Linear(5 * (1 + module.bidirectional), 2, dtype=torch.float64)
    lab = _train(Readout(module, head), tmp_path / "run", steps=1)
    record, summary = read_metrics(tmp_path / "run")[0], read_summary(tmp_path / "run")
    assert "through_time" not in record and len(record["layers"]) == 1 and record["layers"][0]["delta_norm"] > 0
    assert any(reason in note and "not measured through time" in note for note in lab.notes)
    assert reason in summary["message"] and summary["verdict"] is None
