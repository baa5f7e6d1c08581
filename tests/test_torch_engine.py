"""``engine = "torch"``: a run trained in PyTorch logs the numpy engine's numbers (CPU, float64), through every
entrance, checkpoint and reader the numpy engine's runs go through.

Skipped where torch is not importable (an optional extra: pip install 'tinygrad_act[torch]'), but for the line
that says how to install it.
"""

import math
import sys

import hostile
import numpy as np
import pytest
from hostile import TINY, call, command, refused, succeeded

import tinygrad_act
from tinygrad_act import makeargs
from tinygrad_act.common.errors import UsageError
from tinygrad_act.common.registry import keyword_defaults
from tinygrad_act.lab.measure.records import read_metrics, read_summary
from tinygrad_act.lab.run import engines, experiment
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.settings import read_config
from tinygrad_act.lab.show import compare
from tinygrad_act.lab.sweep import grid as sweeps
from tinygrad_act.torch import engine as torch_engine

pytestmark = pytest.mark.usefixtures("data_cache")

# 200 steps of a small MLP, every 5th measured (each measured step logs every probe field of every layer)
SMALL = {"depth": 4, "width": 16, "steps": 200, "batch_size": 16, "data": "spirals:n=300", "log_every": 5,
         "eval_every": 50, "figures": False, "progress": False, "jacobian": False}  # fmt: skip
# each optimizer of nn/optim.py with its options, clipping, and the MLP's residual and normalized forms
CASES = {
    "sgd_momentum": {"optimizer": "sgd", "lr": 0.05},
    "sgd_plain": {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1},
    "sgd_nesterov_decay": {"optimizer": "sgd:nesterov=true,weight_decay=0.01", "lr": 0.05},
    "adam": {"optimizer": "adam", "lr": 0.01},
    "adam_decay_clip": {"optimizer": "adam:weight_decay=0.01", "lr": 0.01, "clip": 0.3},
    "sgd_clip_tanh_layer_norm": {"act": "tanh", "norm": "layer", "clip": 0.2, "lr": 0.05},
    "sgd_relu_residual_batch_norm": {"act": "relu", "init": "he_normal", "residual": True, "norm": "batch"},
}
RELATIVE = 1e-10
NOT_NUMBERS = {"time", "wall_time_s", "engine", "device", "files", "path"}  # what differs by design


# Batch norm takes the mean out of its input, so the gradient of the bias before it is 0 in exact arithmetic: both
# engines log rounding noise there (~1e-16, beside gradient norms of 0.01..5), which no tolerance relates.
NOISE = {"sgd_relu_residual_batch_norm": 1e-13}


def _differences(a, b, where="", noise=0.0):
    """(relative difference, where) of every float of ``a`` against ``b`` (both at most ``noise``: not compared);
    AssertionError on anything else that differs (a key, a length, a count, None)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: {sorted(a.keys() ^ b.keys())}"
        return [d for key in a if key not in NOT_NUMBERS for d in _differences(a[key], b[key], f"{where}.{key}", noise)]
    if isinstance(a, list):
        assert len(a) == len(b), where
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]", noise)]
    if isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) and math.isnan(b)) and a != b:
        return [(abs(a - b) / max(abs(a), abs(b)), where)] if max(abs(a), abs(b)) > noise else []
    assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"
    return []


def _run(tmp_path, name, **settings):
    return succeeded(call(tinygrad_act.run, **settings, out=str(tmp_path / name), timeout=120))


@pytest.mark.parametrize("case", list(CASES))
def test_a_float64_cpu_run_in_torch_logs_the_numpy_engines_numbers_to_1e_10_over_200_steps(tmp_path, case):
    pytest.importorskip("torch")
    settings = {**SMALL, **CASES[case]}
    native, trained = _run(tmp_path, "numpy", **settings), _run(tmp_path, "torch", **settings, engine="torch")
    assert len(native.records) == len(trained.records) == 200 // 5 + 1
    noise = NOISE.get(case, 0.0)
    compared = _differences(native.records, trained.records, noise=noise)
    worst = max(compared + _differences(native.summary, trained.summary, noise=noise))
    assert worst[0] <= RELATIVE, f"relative difference {worst[0]:.1e} at {worst[1]}"
    assert trained.summary["status"] == "completed" and native.summary["final_loss"] < native.records[0]["loss"]
    for p, q in zip(native.model.parameters(), trained.model.parameters()):  # the trained weights, read back
        np.testing.assert_allclose(q.data, p.data, rtol=RELATIVE, atol=noise or 1e-300)


def test_a_resumed_torch_run_logs_what_the_run_never_stopped_logs(tmp_path):
    pytest.importorskip("torch")
    settings = {**CASES["adam_decay_clip"], "engine": "torch", "steps": 8}
    whole = _run(tmp_path, "whole", **{**TINY, **settings})
    stopped = hostile.interrupted_run(tmp_path / "stopped", **settings)
    succeeded(call(experiment.resume, stopped, progress=False))
    assert _differences(whole.records, read_metrics(stopped)) == []  # bit for bit: the same torch arithmetic


def test_the_path_off_the_cpu_copies_back_after_every_update_and_logs_the_same_numbers(tmp_path, monkeypatch):
    # A GPU's path (the torch tensors copies of the lab's arrays, written back after every update, bound again on
    # resume) taken on the CPU, where it must log what sharing the arrays logs, bit for bit.
    pytest.importorskip("torch")
    settings = {**TINY, **CASES["adam_decay_clip"], "engine": "torch", "steps": 8}
    shared = _run(tmp_path, "shared", **settings)
    monkeypatch.setattr(torch_engine, "shares_memory", lambda device: False)
    copied = _run(tmp_path, "copied", **settings)
    stopped = hostile.interrupted_run(tmp_path / "stopped", **settings)
    succeeded(call(experiment.resume, stopped, progress=False))
    assert _differences(shared.records, copied.records) == [] == _differences(shared.records, read_metrics(stopped))
    for p, q in zip(shared.model.parameters(), copied.model.parameters()):
        assert np.array_equal(p.data, q.data)


def test_config_and_summary_record_the_engine_and_device_and_the_name_says_torch(tmp_path):
    pytest.importorskip("torch")
    run = _run(tmp_path, "run", **TINY, engine="torch")
    assert read_config(run.dir)["engine"] == "torch" and read_config(run.dir)["device"] == "cpu"
    assert read_summary(run.dir)["engine"] == "torch" and read_summary(run.dir)["device"] == "cpu"
    assert Config(engine="torch").default_name().endswith("-torch-s0")


@pytest.mark.usefixtures("no_sweep_figures")
def test_a_sweep_may_mix_engines_and_its_table_shows_the_engine(tmp_path):
    pytest.importorskip("torch")
    fixed = {key: value for key, value in TINY.items() if key != "progress"}
    sweep = sweeps.Sweep({"engine": ["numpy", "torch"]}, {**fixed, "steps": 6}, name="engines")
    rows = sweeps.run_sweep(sweep, tmp_path / "sweep", progress=False)
    assert sorted(row["engine"] for row in rows) == ["numpy", "torch"]
    numpy_row, torch_row = sorted(rows, key=lambda row: row["engine"])
    assert math.isclose(numpy_row["ratio_init"], torch_row["ratio_init"], rel_tol=RELATIVE)
    table = (tmp_path / "sweep" / "sweep.md").read_text()
    assert table.splitlines()[0].startswith("| engine |") and "| torch |" in table


def test_compare_shows_each_runs_engine_in_its_table_and_legend(tmp_path):
    pytest.importorskip("torch")
    for engine in ("numpy", "torch"):
        _run(tmp_path, engine, **TINY, engine=engine)
    runs = compare.find_runs([str(tmp_path / "numpy"), str(tmp_path / "torch")])
    table = compare.table(runs)
    assert table.splitlines()[0].startswith("| run   | engine |")
    assert [line.split("|")[2].strip() for line in table.splitlines()[2:]] == ["numpy", "torch"]
    assert compare._label(runs[1], "torch", engine=True).startswith("sigmoid/xavier_normal, depth 2, torch")
    numpy_only = compare.find_runs([str(tmp_path / "numpy")])
    assert "engine" not in compare.table(numpy_only)  # one engine, the default: nothing to tell apart
    assert succeeded(command("compare", tmp_path / "numpy", tmp_path / "torch")) is None


HOSTILE = [("engine", "tensorflow"), ("engine", "Torch"), ("engine", None), ("engine", 1), ("device", "gpu"),
           ("device", "cuda:0"), ("device", ["cpu"]), ("device", "")]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), HOSTILE, ids=[f"{n}={v!r}" for n, v in HOSTILE])
def test_a_bad_engine_or_device_is_refused_in_one_line_naming_it_through_every_entrance(tmp_path, name, value):
    line = refused(call(tinygrad_act.run, **TINY, **{name: value}, out=str(tmp_path / "run")), name)
    if isinstance(value, str):
        assert "numpy, torch" in line or "cpu, cuda" in line
        option = f"--{name}"
        refused(hostile.experiment(tmp_path / "cli", option, value), name, value)
        with pytest.raises(UsageError, match=name):
            sweeps.Sweep({name: [value]}, TINY).configs(tmp_path / "sweep")
    assert not any((tmp_path / d).exists() for d in ("run", "cli", "sweep"))


def test_make_passes_engine_and_device_to_the_command_line_and_a_sweep_takes_them_from_toml(tmp_path):
    pytest.importorskip("torch")
    arguments = makeargs.arguments("experiment", {"ENGINE": "torch", "DEVICE": "cuda"})
    assert arguments[arguments.index("--engine") + 1] == "torch"
    assert arguments[arguments.index("--device") + 1] == "cuda"
    toml = tmp_path / "mixed.toml"
    toml.write_text('name = "mixed"\n[grid]\nengine = ["numpy", "torch"]\n[fixed]\ndevice = "cpu"\ndepth = 2\n')
    assert [config.engine for _, config in sweeps.load_config(str(toml)).configs(tmp_path / "sweep")] == [
        "numpy", "torch"]  # fmt: skip
    toml.write_text('name = "bad"\n[grid]\ndepth = [2]\n[fixed]\ndevice = "tpu"\n')
    with pytest.raises(UsageError, match="device.*tpu.*cpu, cuda"):
        sweeps.load_config(str(toml)).configs(tmp_path / "sweep")


def test_a_config_json_with_a_bad_engine_is_one_line_naming_the_file_and_the_setting(tmp_path):
    run = _run(tmp_path, "run", **TINY)
    text = (run.dir / "config.json").read_text().replace('"engine": "numpy"', '"engine": "jax"')
    (run.dir / "config.json").write_text(text)
    line = refused(call(read_config, run.dir), "config.json", "engine", "jax")
    assert "numpy, torch" in line


def test_cuda_where_torch_sees_no_gpu_is_refused_in_one_line_before_anything_is_written(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(hostile.experiment(tmp_path / "run", "--engine", "torch", "--device", "cuda"), "cuda", "device cpu")
    refused(call(tinygrad_act.run, **TINY, engine="numpy", device="cuda", out=str(tmp_path / "run")), "engine torch")
    assert not (tmp_path / "run").exists()


def test_engine_torch_refuses_a_recurrent_model_and_an_optimizer_it_has_no_update_for(tmp_path):
    pytest.importorskip("torch")
    rnn = {**{k: v for k, v in TINY.items() if k != "depth"}, "model": "rnn", "data": "adding", "seq_len": 5}
    refused(call(tinygrad_act.run, **rnn, engine="torch", out=str(tmp_path / "rnn")), "engine torch", "rnn")

    class Mine(tinygrad_act.optim.SGD):
        """An optimizer of the user's: its update may be anything."""

    registry = tinygrad_act.optim._REGISTRY
    registry.register("mine", Mine, defaults=keyword_defaults(Mine.__init__, skip=2))
    try:
        refused(call(tinygrad_act.run, **TINY, optimizer="mine", engine="torch", out=str(tmp_path / "mine")),
                "mine", "adam, sgd")  # fmt: skip
    finally:
        registry.unregister("mine")
    assert not (tmp_path / "rnn").exists() and not (tmp_path / "mine").exists()


def test_engine_torch_without_torch_is_one_line_naming_the_extra_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError, as where it is missing
    monkeypatch.setattr(engines, "_ENGINES", {"numpy": engines._ENGINES["numpy"]})  # as if never imported
    monkeypatch.delitem(sys.modules, "tinygrad_act.torch.engine", raising=False)
    outcome = hostile.experiment(tmp_path / "run", "--engine", "torch")
    refused(outcome, "pip install 'tinygrad_act[torch]'")
    assert outcome.code == 2 and not (tmp_path / "run").exists()
