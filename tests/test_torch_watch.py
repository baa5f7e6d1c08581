"""tinygrad_act.watch: a PyTorch model in its own loop is measured as the lab measures its own engine's.

Skipped where torch is not importable (an optional extra: pip install 'tinygrad_act[torch]').
"""

import copy
import importlib
import math

import numpy as np
import pytest
from tinygrad_act.optim import SGD

import tinygrad_act
from tinygrad_act import Tensor
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.measure import jacobian
from tinygrad_act.lab.measure.probes import LayerProbe
from tinygrad_act.lab.measure.records import LAYER_FIELDS, read_metrics, read_summary
from tinygrad_act.lab.settings import read_config
from tinygrad_act.lab.show import compare
from tinygrad_act.nn import MLP, activations, cross_entropy
from tinygrad_act.torch.activations import PAIRS, from_module

torch = None  # PyTorch, set before the first test (conftest.py); without it the tests skip
pytestmark = pytest.mark.usefixtures("pytorch")

RNG = np.random.default_rng(3)
X, Y = RNG.normal(size=(3, 24, 5)), RNG.integers(0, 4, size=(3, 24))
TORCH_MODULES = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "gelu": "GELU", "swish": "SiLU",
                 "selu": "SELU"}  # fmt: skip


def _native_records(act, steps, lr=0.1, momentum=0.9, inplace=False):
    """The lab's own engine: MLP(5, [7] * 3, 4) trained ``steps`` steps on X, Y with every step measured; its
    PyTorch twin with the initial weights, and the records."""
    model = MLP(5, [7] * 3, 4, activation=act, init="xavier_normal", seed=2, sigma_b2=0.1, dtype=np.float64)
    twin = _torch_twin(model, act, inplace)
    optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)
    probe = LayerProbe(model, optimizer)
    records = []
    for step in range(steps):
        loss = cross_entropy(model(Tensor(X[step])), Y[step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        records.append({"step": step, "loss": loss.item(), **probe.record})
    return twin, records


def _torch_twin(native_model, act, inplace=False):
    """The same MLP in PyTorch, float64, with the native model's initial weights (W transposed: out x in)."""
    modules = []
    for index, layer in enumerate(native_model.layers):
        linear = torch.nn.Linear(*layer.weight.data.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
        modules.append(linear)
        if index < len(native_model.layers) - 1:
            modules.append(torch.nn.ReLU(inplace=True) if inplace else getattr(torch.nn, TORCH_MODULES[act])())
    return torch.nn.Sequential(*modules)


def _train_watched(model, path, steps, every=1, lr=0.1, momentum=0.9, **options):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    deltas = []
    with tinygrad_act.watch(model, out=str(path), every=every, **options) as lab:
        for step in range(steps):
            zs = []

            def keep(module, inputs, z, zs=zs):
                z.retain_grad()
                zs.append(z)

            handles = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, torch.nn.Linear)]
            loss = torch.nn.functional.cross_entropy(
                model(torch.from_numpy(X[step % 3])), torch.from_numpy(Y[step % 3])
            )
            optimizer.zero_grad()
            loss.backward()
            deltas.append([z.grad.clone() for z in zs])  # PyTorch's own dL/dz of each Linear
            for handle in handles:
                handle.remove()
            lab.step(loss)
            optimizer.step()
    return lab, deltas


def _assert_close(watched, native, where):
    if native is None or watched is None:
        assert watched is None and native is None, where
    else:
        assert math.isclose(watched, native, rel_tol=1e-10, abs_tol=1e-300), (where, watched, native)


@pytest.mark.parametrize("act", sorted(TORCH_MODULES))
def test_watched_torch_mlp_logs_the_lab_engine_s_numbers_to_1e_10_in_float64(tmp_path, act):
    twin, native = _native_records(act, steps=3)
    lab, deltas = _train_watched(twin, tmp_path / "run", steps=3, figures=False)  # numbers only
    watched = read_metrics(tmp_path / "run")
    assert [r["step"] for r in watched] == [0, 1, 2]
    for mine, theirs, torch_deltas in zip(watched, native, deltas):
        _assert_close(mine["loss"], theirs["loss"], "loss")
        _assert_close(mine["grad_norm"], theirs["grad_norm"], "grad_norm")
        assert len(mine["layers"]) == len(theirs["layers"]) == 4
        for number, (layer, reference, delta) in enumerate(zip(mine["layers"], theirs["layers"], torch_deltas)):
            for field in LAYER_FIELDS:
                _assert_close(layer.get(field), reference.get(field), f"step {mine['step']} layer {number} {field}")
            _assert_close(layer["delta_norm"], float(torch.linalg.norm(delta)), "PyTorch's own dL/dz")


def test_an_in_place_relu_is_measured_as_the_same_relu_out_of_place(tmp_path):
    twin, native = _native_records("relu", steps=2, inplace=True)
    _train_watched(twin, tmp_path / "run", steps=2, figures=False)
    for mine, theirs in zip(read_metrics(tmp_path / "run"), native):
        for layer, reference in zip(mine["layers"], theirs["layers"]):
            for field in ("delta_norm", "saturation", "dead_fraction", "activation_gain", "act_mean"):
                _assert_close(layer.get(field), reference.get(field), field)


def test_a_watched_chain_gets_a_verdict_theory_jacobian_figures_and_a_report(tmp_path, draw_only):
    draw_only("gradient_flow.png")  # the one figure looked at (every figure's code still runs)
    twin, _ = _native_records("tanh", steps=0)
    lab, _ = _train_watched(twin, tmp_path / "run", steps=5, every=2)
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps_done"] == 5 and summary["records"] == 3
    assert summary["verdict"] in ("vanishing", "healthy", "exploding")
    assert summary["theory"]["applies"] and summary["theory"]["ratio"] > 0
    assert summary["jacobian"]["applies"] and summary["jacobian"]["examples"] == 4
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "histograms.npz").is_file()
    if "figures" in summary:  # matplotlib is optional too
        assert "figures/gradient_flow.png" in summary["figures"]
    config = read_config(tmp_path / "run")
    assert config["engine"] == "torch (watch)" and config["act"] == "tanh" and config["depth"] == 3
    assert [layer["activation"] for layer in config["module"]["layers"]] == ["tanh", "tanh", "tanh", None]


def test_the_jacobian_by_torch_func_is_the_lab_engine_s(tmp_path):
    native_model = MLP(5, [7] * 3, 4, activation="tanh", init="xavier_normal", seed=2, sigma_b2=0.1)
    _train_watched(_torch_twin(native_model, "tanh"), tmp_path / "run", steps=1, figures=False)
    native = jacobian.measure(native_model, X[0])
    watched = read_summary(tmp_path / "run")["jacobian"]
    np.testing.assert_allclose(watched["singular_values"], native["singular_values"], rtol=1e-9)


def test_a_model_the_theory_does_not_cover_is_measured_and_says_why(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(7, 7),
                                torch.nn.Tanh(), torch.nn.Linear(7, 4)).double()  # fmt: skip
    _train_watched(model, tmp_path / "run", steps=2, figures=False)
    summary, records = read_summary(tmp_path / "run"), read_metrics(tmp_path / "run")
    assert not summary["theory"]["applies"] and "does not read the previous layer" in summary["theory"]["reason"]
    assert not summary["jacobian"]["applies"]
    assert all(layer["delta_norm"] > 0 for layer in records[0]["layers"])
    assert summary["verdict"] in ("vanishing", "healthy", "exploding")


def test_a_linear_without_a_known_activation_module_is_named_and_measured_as_z(tmp_path):
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second, self.out = torch.nn.Linear(5, 7), torch.nn.Linear(7, 7), torch.nn.Linear(7, 4)

        def forward(self, x):  # softsign is abs and div to autograd: no activation node to read
            return self.out(torch.tanh(self.second(torch.nn.functional.softsign(self.first(x)))))

    model = Block().double()
    lab, _ = _train_watched(model, tmp_path / "run", steps=1, figures=False)
    first, second = read_metrics(tmp_path / "run")[0]["layers"][:2]
    assert first["saturation"] is None and first["activation_gain"] is None and first["act_std"] > 0
    assert second["activation_gain"] > 0  # torch.tanh, called as a function, is identified
    assert "layer 1 (first): no known activation (module or function)" in lab.summary["message"]
    assert "not every hidden Linear" in lab.summary["theory"]["reason"]


FUNCTIONS = {  # an activation called as a function, and the module the lab reads as the same activation (made
    # when a test runs: torch is imported by the tests)
    "torch.relu": lambda: (torch.relu, torch.nn.ReLU()),
    "F.relu in place": lambda: (lambda z: torch.nn.functional.relu(z, inplace=True), torch.nn.ReLU()),
    "Tensor.tanh": lambda: (lambda z: z.tanh(), torch.nn.Tanh()),
    "torch.sigmoid": lambda: (torch.sigmoid, torch.nn.Sigmoid()),
    "F.gelu": lambda: (torch.nn.functional.gelu, torch.nn.GELU()),
    "F.gelu tanh": lambda: (
        lambda z: torch.nn.functional.gelu(z, approximate="tanh"),
        torch.nn.GELU(approximate="tanh"),
    ),
    "F.silu": lambda: (torch.nn.functional.silu, torch.nn.SiLU()),
    "F.leaky_relu 0.2": lambda: (lambda z: torch.nn.functional.leaky_relu(z, 0.2), torch.nn.LeakyReLU(0.2)),
    "F.elu": lambda: (torch.nn.functional.elu, torch.nn.ELU()),
    "F.selu": lambda: (torch.nn.functional.selu, torch.nn.SELU()),
    "F.softplus": lambda: (lambda z: torch.nn.functional.softplus(z, beta=2.0), torch.nn.Softplus(beta=2.0)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_an_activation_called_as_a_function_is_measured_as_its_module_is(tmp_path, name):
    function, module = FUNCTIONS[name]()
    twin, _ = _native_records("relu", steps=0)
    linears = [m for m in twin if isinstance(m, torch.nn.Linear)]
    modules = torch.nn.Sequential(*[m for linear in linears[:-1] for m in (linear, module)], linears[-1])
    from torch_models import Calls  # PyTorch's modules: imported here, not at collection

    clone = Calls(copy.deepcopy(linears), function)
    _train_watched(modules, tmp_path / "modules", steps=1, figures=False)
    _train_watched(clone, tmp_path / "functions", steps=1, figures=False)
    by_module, by_function = (read_summary(tmp_path / n) for n in ("modules", "functions"))
    for mine, theirs in zip(read_metrics(tmp_path / "functions")[0]["layers"], read_metrics(tmp_path / "modules")[0][
            "layers"], strict=True):  # fmt: skip
        for field in LAYER_FIELDS:
            _assert_close(mine.get(field), theirs.get(field), field)
    assert by_function["theory"]["applies"] and by_function["theory"] == by_module["theory"]
    _assert_close(by_function["jacobian"]["singular_values"][0], by_module["jacobian"]["singular_values"][0], "J")
    assert read_config(tmp_path / "functions")["act"] == read_config(tmp_path / "modules")["act"]


@pytest.mark.parametrize(
    ("model", "every", "message"),
    [
        (lambda: [1, 2], 10, "watch needs a torch.nn.Module, got list"),
        (lambda: torch.nn.Linear(3, 2), 10, "needs at least two"),
        (lambda: torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)), 0, "every"),
    ],
)
def test_bad_models_and_settings_are_one_line_errors_that_write_nothing(tmp_path, model, every, message):
    with pytest.raises(UsageError, match=message) as error:
        tinygrad_act.watch(model(), out=str(tmp_path / "run"), every=every)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["force", "jacobian", "figures", "tensorboard"])
@pytest.mark.parametrize("value", ["no", 0, None])
def test_a_flag_that_is_not_true_or_false_is_one_line_naming_it_and_writes_nothing(tmp_path, flag, value):
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    with pytest.raises(UsageError, match=f"{flag} must be True or False, got {value!r}") as error:
        tinygrad_act.watch(model, out=str(tmp_path / "run"), **{flag: value})
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()


def test_watch_never_writes_over_files_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    with pytest.raises(UsageError, match="not written by this laboratory"):
        tinygrad_act.watch(model, out=str(tmp_path / "mine"), force=True)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_compare_puts_a_watched_model_beside_a_native_run(tmp_path):
    twin, _ = _native_records("sigmoid", steps=0)
    _train_watched(twin, tmp_path / "watched", steps=2, figures=False)
    tinygrad_act.run(depth=3, width=7, act="sigmoid", steps=2, data="spirals", out=str(tmp_path / "native"),
                     figures=False, progress=False)  # fmt: skip
    runs = compare.find_runs([str(tmp_path / "watched"), str(tmp_path / "native")])
    assert [run.act for run in runs] == ["sigmoid", "sigmoid"] and [run.depth for run in runs] == [3, 3]
    assert "watched" in compare.table(runs) and "native" in compare.table(runs)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: f"{pair.module}-{pair.name}")
def test_each_paired_torch_activation_module_computes_the_registry_s_activation_and_derivative(pair):
    module = {"GELU": lambda: torch.nn.GELU(approximate=dict(pair.selects).get("approximate", "none")),
              "LeakyReLU": lambda: torch.nn.LeakyReLU(0.3), "ELU": lambda: torch.nn.ELU(0.7),
              "Softplus": lambda: torch.nn.Softplus(2.0, 5.0), "Hardtanh": lambda: torch.nn.Hardtanh(-2.0, 3.0),
              "CELU": lambda: torch.nn.CELU(0.5)}.get(pair.module, getattr(torch.nn, pair.module))()  # fmt: skip
    activation = activations.get(from_module(module))
    assert activation.name == pair.name
    x = torch.linspace(-8, 8, 1603, dtype=torch.float64, requires_grad=True)  # no grid point on a kink
    module(x).sum().backward()
    np.testing.assert_allclose(activation.forward(x.detach().numpy()), module(x).detach().numpy(), atol=1e-14)
    np.testing.assert_allclose(activation.derivative(x.detach().numpy()), x.grad.numpy(), atol=1e-13)


def test_a_subclass_of_an_activation_module_is_not_taken_for_it():
    class Shifted(torch.nn.Tanh):
        def forward(self, x):
            return torch.tanh(x) + 1

    assert from_module(Shifted()) is None and from_module(torch.nn.PReLU()) is None


def _tiny_chain():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 7), torch.nn.Tanh(),
                               torch.nn.Linear(7, 4)).double()  # fmt: skip


def test_a_non_finite_loss_ends_the_watched_run_as_diverged(tmp_path):
    model = _tiny_chain()
    with tinygrad_act.watch(model, out=str(tmp_path / "run"), every=1, figures=False) as lab:
        for step, scale in enumerate((1.0, math.inf, 1.0)):
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X[step])), torch.from_numpy(Y[step]))
            loss.backward()
            lab.step(loss * scale)
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "diverged" and "diverged at step 1: the loss is inf" in summary["message"]
    assert summary["verdict_final"] == "diverged" and [r["step"] for r in read_metrics(tmp_path / "run")] == [0, 1]


def test_an_exception_in_the_loop_ends_the_run_as_failed_with_its_records_kept(tmp_path):
    model = _tiny_chain()
    with pytest.raises(ZeroDivisionError):
        with tinygrad_act.watch(model, out=str(tmp_path / "run"), every=1, figures=False) as lab:
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X[0])), torch.from_numpy(Y[0]))
            loss.backward()
            lab.step(loss, accuracy=0.25)
            raise ZeroDivisionError("the loop's own error")
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "failed" and "ZeroDivisionError after 1 steps" in summary["message"]
    assert read_metrics(tmp_path / "run")[0]["accuracy"] == 0.25
    with pytest.raises(UsageError, match="closed"):
        lab.step(loss)


def test_a_watch_closed_before_any_step_is_still_a_described_run(tmp_path):
    summary = tinygrad_act.watch(_tiny_chain(), out=str(tmp_path / "run")).close()
    assert summary["records"] == 0 and "no step was measured" in summary["message"]
    assert read_config(tmp_path / "run")["depth"] == 2 and read_summary(tmp_path / "run")["status"] == "completed"


def test_tensorboard_from_watch_reads_back_as_the_records_with_histograms_text_and_hparams(tmp_path):
    pytest.importorskip("tensorboardX")
    events = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    twin, _ = _native_records("tanh", steps=0)
    _train_watched(twin, tmp_path / "run", steps=3, every=2, figures=False, tensorboard=True)
    records = read_metrics(tmp_path / "run")
    everything = {"scalars": 0, "histograms": 0}
    reader = events.EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance=everything)
    reader.Reload()
    tags = reader.Tags()

    def scalar(tag):
        return {event.step: event.value for event in reader.Scalars(tag)}

    assert scalar("minibatch/loss") == {r["step"]: np.float32(r["loss"]) for r in records} and len(records) == 2
    for index, name in enumerate(["1", "2", "3", "out"]):
        for key in ("delta_norm", "weight_grad_norm", "update_ratio", "weight_gain"):
            assert scalar(f"{key}/{name}") == {r["step"]: np.float32(r["layers"][index][key]) for r in records}
    for tag in ("weights/out", "weight_grads/1", "activations/1", "delta_log10/out"):
        assert [h.step for h in reader.Histograms(tag)] == [0], tag  # at most one every 10 steps (HIST_EVERY)
    grads = reader.Histograms("weight_grads/2")[0].histogram_value  # the measured step's own dL/dW, not the next's
    assert math.isclose(math.sqrt(grads.sum_squares), records[0]["layers"][1]["weight_grad_norm"], rel_tol=1e-6)
    texts = {tag.split("/")[0]: reader.Tensors(tag) for tag in tags["tensors"]}
    assert "| module | Sequential |" in texts["config"][0].tensor_proto.string_val[0].decode()
    summary = read_summary(tmp_path / "run")
    assert f"{summary['verdict']}: layer 1 receives" in texts["verdict"][0].tensor_proto.string_val[0].decode()
    hparams = events.EventAccumulator(str(tmp_path / "run" / "tensorboard" / "hparams"))
    hparams.Reload()
    metrics = {tag: hparams.Scalars(tag)[0].value for tag in hparams.Tags()["scalars"]}
    assert metrics["hparams/log10_r_init"] == np.float32(np.log10(summary["ratio_init"]))


def test_a_measured_step_leaves_no_hook_on_the_model_or_in_torch(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 4)).double()
    hooks = torch.nn.modules.module._global_forward_hooks
    before = len(hooks)
    with tinygrad_act.watch(model, out=str(tmp_path / "run"), every=2, figures=False, jacobian=False) as lab:
        for step in range(3):
            armed = len(hooks) - before  # one global hook, attached for the measured steps 0 and 2 only
            assert armed == (step % 2 == 0), step
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X[step])), torch.from_numpy(Y[step]))
            loss.backward()
            lab.step(loss)
            assert len(hooks) == before + (step == 1)  # the next step (2) is measured: armed again
    assert len(hooks) == before and not any(m._forward_hooks for m in model.modules())


def _blas_threads() -> list:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_a_measured_steps_statistics_run_on_one_blas_thread_and_the_users_threads_come_back(
    tmp_path, monkeypatch, draw_only
):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    draw_only("training.png")  # close() still draws (every figure made, one rendered): the threads are looked at
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # make test sets them: a user may not
        monkeypatch.delenv(name, raising=False)
    seen, watch_module = [], importlib.import_module("tinygrad_act.torch.watch")  # the module, not the function
    statistics = watch_module.step_statistics
    monkeypatch.setattr(watch_module, "step_statistics", lambda *a: (seen.append(_blas_threads()), statistics(*a))[1])
    model = torch.nn.Sequential(torch.nn.Linear(5, 8, dtype=torch.float64), torch.nn.Tanh(),
                                torch.nn.Linear(8, 4, dtype=torch.float64))  # fmt: skip
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):  # the user's process: two BLAS threads
        _train_watched(model, tmp_path / "run", steps=2)
        assert _blas_threads() and set(_blas_threads()) == {2}  # given back after each measured step and close()
    assert len(seen) == 2 and all(set(threads) == {1} for threads in seen)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_wide_layer_s_update_ratio_is_the_same_number_from_torch_s_transposed_copy(dtype):
    dtype = getattr(torch, dtype)
    watch_module = importlib.import_module("tinygrad_act.torch.watch")  # the module, not the function
    update_ratio = watch_module.update_ratio
    generator = torch.Generator().manual_seed(0)
    for width in (64, 256):  # a transposed view below TRANSPOSE_IN_TORCH weights, torch's copy from it on
        before = torch.randn(width, width, generator=generator, dtype=dtype)
        after = before - 1e-3 * torch.randn(width, width, generator=generator, dtype=dtype)
        wide = width * width >= watch_module.TRANSPOSE_IN_TORCH
        arrays = [watch_module._fan_in_first(w) for w in (before, after)]
        assert all(
            a.flags.c_contiguous == wide and np.array_equal(a, w.numpy().T) for a, w in zip(arrays, (before, after))
        )
        assert update_ratio(*arrays) == update_ratio(before.numpy().T, after.numpy().T)  # to the last bit
