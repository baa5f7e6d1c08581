"""Recurrent runs end to end (lab/run/recurrent.py through the runner, the CLI and make): ``through_time`` for every
cell, the records through time, the task's loss and accuracy, the figures and report, resume and bad input."""

import json
import math

import numpy as np
import pytest

import tinygrad_act as tga
from tinygrad_act import Tensor, makeargs, no_grad
from tinygrad_act.cli import main
from tinygrad_act.common import files
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab import data
from tinygrad_act.lab.data import tasks
from tinygrad_act.lab.run import checkpoint, experiment, tensorboard
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.show import compare, report, run_figures, time_figures

TINY = dict(model="rnn", width=4, steps=6, batch_size=8, log_every=2, eval_every=3, seq_len=5,
            data="adding:n_train=40,n_test=16", figures=False)  # fmt: skip
THROUGH_TIME = {"ratio_init", "ratio_final", "factor_init", "verdict", "verdict_final", "theory", "steps"}


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))


def _run(tmp_path, name="run", **options):
    config = Config(**{**TINY, **options, "out": str(tmp_path / name)})
    return experiment.run(config, progress=False), tmp_path / name


@pytest.mark.parametrize("cell", ["tanh", "relu", "lstm", "gru"])
def test_every_cell_reports_through_time_and_its_r_is_the_summarys(tmp_path, cell):
    summary, path = _run(tmp_path, cell=cell)
    entry = summary["through_time"]
    assert THROUGH_TIME <= set(entry) and entry["steps"] == 5 and entry["cell"] == cell
    assert entry["theory"]["applies"] and len(entry["theory"]["profile"]) == 5
    assert (summary["ratio_init"], summary["verdict"], summary["verdict_final"]) == (
        entry["ratio_init"], entry["verdict"], entry["verdict_final"])  # fmt: skip
    assert summary["per_layer_factor_init"] == entry["factor_init"]
    assert summary["theory"]["ratio"] == entry["theory"]["ratio"]
    records = files.read_records(path)
    assert [r["step"] for r in records] == [0, 2, 3, 4, 5]  # log_every 2, and every evaluated step (3 and the last)
    first = records[0]
    assert len(first["through_time"]) == 5 and len(first["layers"]) == 2
    assert entry["ratio_init"] == first["through_time"][0]["delta_norm"] / first["through_time"][-1]["delta_norm"]
    assert summary["jacobian"]["applies"] and summary["jacobian"]["width"] == (8 if cell == "lstm" else 4)


def test_a_regression_run_scores_mse_and_the_fraction_within_the_tolerance_with_its_chance(tmp_path):
    summary, path = _run(tmp_path, cell="gru")
    assert summary["task"] == "regression"
    ds = data.load("adding:n_train=40,n_test=16", seq_len=5)
    assert summary["chance"] == tasks.chance("regression", 0, ds.y_train, ds.y_test)
    config = json.loads((path / "config.json").read_text())
    assert config["dataset"]["task"] == "regression" and config["dataset"]["seq_len"] == 5
    run_config = Config.read(path)
    model = experiment.make_model(run_config, 2, 1)
    checkpoint.restore(checkpoint.load(path, run_config, config["dataset"]["sha256"]), model)
    loss, accuracy = experiment.evaluate(model, ds.x_test, ds.y_test, task="regression")
    with no_grad():
        outputs = model(Tensor(ds.x_test)).data[:, 0]
    assert loss == pytest.approx(np.mean((outputs - ds.y_test) ** 2)) == pytest.approx(summary["test_loss"])
    assert accuracy == np.mean(np.abs(outputs - ds.y_test) <= tasks.REGRESSION_TOLERANCE) == summary["test_accuracy"]


def test_a_per_step_task_reads_the_last_steps_and_scores_every_recall_step(tmp_path):
    summary, path = _run(tmp_path, cell="lstm", seq_len=None, data="copy:seq_len=7,length=2,n_train=40,n_test=16")
    assert summary["task"] == "per_step" and summary["through_time"]["steps"] == 7
    assert json.loads((path / "config.json").read_text())["dataset"]["readout_steps"] == 2
    assert 0 <= summary["test_accuracy"] <= 1 and summary["chance"]["accuracy"] == 1 / 8


def test_a_recurrent_run_is_deterministic(tmp_path):
    runs = [files.read_records(_run(tmp_path, name, cell="lstm")[1]) for name in ("a", "b")]
    strip = [[{k: v for k, v in r.items() if k != "time"} for r in records] for records in runs]
    assert json.dumps(strip[0]) == json.dumps(strip[1])


def test_a_resumed_recurrent_run_logs_the_records_of_one_never_stopped(tmp_path, monkeypatch):
    _, whole = _run(tmp_path, "whole", cell="gru")
    original = experiment._train_step

    def stop_at_four(*args):
        if args[8] == 4:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(experiment, "_train_step", stop_at_four)
    summary, cut = _run(tmp_path, "cut", cell="gru")
    assert summary["status"] == "interrupted"
    monkeypatch.setattr(experiment, "_train_step", original)
    resumed = experiment.resume(cut, progress=False)
    assert resumed["status"] == "completed"
    strip = [[json.dumps({k: v for k, v in r.items() if k != "time"}) for r in files.read_records(p)] for p in
             (whole, cut)]  # fmt: skip
    assert strip[0] == strip[1]


def test_figures_report_and_terminal_table_go_through_time(tmp_path):
    summary, path = _run(tmp_path, cell="lstm", figures=True)
    names = {name.split("/")[-1] for name in summary["figures"]}
    assert {"gradient_time.png", "gradient_time_heatmap.png", "gates.png", "training.png", "jacobian.png"} <= names
    assert names == {f"{name}.png" for name in run_figures.names("rnn", "lstm")}  # the catalog: what it draws
    assert "gradient_flow.png" not in names
    page = (path / "report.html").read_text()
    assert "Time steps" in page and "cdelta@0" in page and "step 1 receives" in page
    config = Config(**{**TINY, "cell": "lstm"})
    text = report.terminal_report({**summary, "path": str(path)}, files.read_records(path), config, width=100)
    assert "delta@0" in text and "theory (the forget gates' carry" in text and "Jacobian ds_T/ds_1" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_a_plain_rnns_third_figure_is_its_saturation_through_time(tmp_path):
    summary, path = _run(tmp_path, cell="tanh")
    draws = time_figures.draws(files.read_records(path), summary)
    assert list(draws)[2] == "saturation_time" and draws["saturation_time"]()[1] == "saturation_time.png"


def test_compare_draws_recurrent_runs_over_time_steps_and_refuses_to_mix_them_with_mlps(tmp_path):
    _, a = _run(tmp_path, "a", cell="tanh")
    _, b = _run(tmp_path, "b", cell="lstm")
    text, out = compare.compare([str(a), str(b)], tmp_path / "cmp.png")
    assert out.exists() and "| cell" in text and "LSTM" in text and "| T " in text
    experiment.run(Config(depth=2, width=4, steps=2, data="spirals:n=100", figures=False, out=str(tmp_path / "m")),
                   progress=False)  # fmt: skip
    with pytest.raises(UsageError, match="recurrent runs and MLP runs"):
        compare.compare([str(a), str(tmp_path / "m")], tmp_path / "mixed.png")


# ---- the command line and make -------------------------------------------------------------------------------
def _main(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_line_runs_a_recurrent_net_and_prints_the_table_through_time(tmp_path, capsys):
    argv = ["experiment", "--model", "rnn", "--cell", "gru", "--seq-len", "4", "--width", "4", "--steps", "2",
            "--batch-size", "8", "--data", "adding:n_train=20,n_test=8", "--no-figures", "--no-progress",
            "--out", str(tmp_path / "cli")]  # fmt: skip
    code, out, err = _main(argv, capsys)
    assert code == 0, err
    assert "step 1 receives" in out and "u@0" in out
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["through_time"]["steps"] == 4


@pytest.mark.parametrize(
    "options, message",
    [(["--model", "rnn", "--data", "mnist1d"], "model rnn reads sequences; data 'mnist1d' is not a sequence task: "
      "choose one of: adding, copy, mnist1d_seq"),
     (["--data", "adding"], "data 'adding' is a sequence task (T = 100 steps): an MLP reads flat inputs; use "
      "--model rnn"),
     (["--model", "rnn", "--data", "adding", "--depth", "3"], "--depth 3 describes an MLP's layers"),
     (["--model", "rnn", "--cell", "elman", "--data", "adding"], "unknown cell 'elman'; choose one of: tanh, relu, "
      "lstm, gru"),
     (["--model", "rnn", "--data", "spirals", "--seq-len", "9"], "seq_len sets T of a sequence dataset; 'spirals' "
      "is not one"),
     (["--model", "rnn", "--data", "adding:seq_len=5", "--seq-len", "9"], "seq_len 9 disagrees with the data spec"),
     (["--model", "rnn", "--cell", "gru:forget_bias=1", "--data", "adding"], "cell 'gru' has no parameter "
      "'forget_bias'; its parameters: none"),
     (["--model", "rnn", "--cell", "lstm:forget_bias=x", "--data", "adding"], "forget_bias must be a finite number"),
     (["--model", "transformer"], "unknown model 'transformer'; choose one of: mlp, rnn")],
)  # fmt: skip
def test_bad_combinations_are_one_line_naming_the_value_and_nothing_is_written(tmp_path, capsys, options, message):
    code, out, err = _main(["experiment", *options, "--out", str(tmp_path / "bad"), "--no-progress"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_make_variables_model_cell_and_seq_len_become_options():
    arguments = makeargs.arguments("experiment", {"MODEL": "rnn", "CELL": "lstm", "SEQ_LEN": "100", "DATA": "adding"})
    assert arguments[1:] == ["--data", "adding", "--model", "rnn", "--cell", "lstm", "--seq-len", "100"]


def test_a_recurrent_runs_name_says_model_cell_init_and_t():
    assert Config(model="rnn", cell="lstm", seq_len=100, data="adding").default_name() == "rnn-lstm-T100-adding-s0"
    named = Config(model="rnn", cell="relu", init="identity", data="copy").default_name()
    assert named == "rnn-relu-identity-Tdata-copy-s0"
    forget = Config(model="rnn", cell="lstm:forget_bias=1", seq_len=50, data="adding").default_name()
    assert forget == "rnn-lstm_forget_bias1-T50-adding-s0"


def test_truncate_reaches_the_recurrent_layer_and_names_the_run():
    config = Config(model="rnn", cell="gru", seq_len=20, data="adding", truncate=5)
    assert experiment.make_model(config, 2, 1).recurrent.truncate == 5
    assert experiment.make_model(Config(model="rnn"), 2, 1).recurrent.truncate is None  # 0: full BPTT
    assert config.default_name() == "rnn-gru-T20-tbptt5-adding-s0"


def test_forget_bias_sets_the_lstms_forget_gate_bias_alone(tmp_path):
    model = experiment.make_model(Config(model="rnn", cell="lstm:forget_bias=2.5", width=3), 2, 1)
    bias = model.recurrent.bias_ih_l0.data + model.recurrent.bias_hh_l0.data
    assert np.all(bias[3:6] == 2.5) and not np.any(bias[:3] == 2.5)


def test_memory_estimate_of_a_recurrent_run_grows_with_the_sequence_length():
    short, long = (Config(model="rnn", data="adding", seq_len=t).memory_estimate(data.check("adding", seq_len=t))[0]
                   for t in (50, 500))  # fmt: skip
    assert long > 5 * short and math.isfinite(long)


def test_tensorboard_of_a_recurrent_run_has_r_time_and_the_gates(tmp_path):
    pytest.importorskip("tensorboardX")
    summary, path = _run(tmp_path, cell="lstm", tensorboard=True)
    assert (path / "tensorboard").is_dir() and "tensorboard_error" not in summary
    values = tensorboard.scalars(files.read_records(path)[0])
    assert values["gradients/r"] == summary["ratio_init"]
    assert 0 < values["gates/forget_mean"] < 1 and "gates/forget_near_1" in values


def test_the_python_entrance_trains_a_recurrent_run_whose_model_predicts_the_tasks_targets(tmp_path):
    run = tga.run(**{**TINY, "cell": "gru"}, out=str(tmp_path / "api"), progress=False)
    ds = data.load("adding:n_train=40,n_test=16", seq_len=5)
    values = run.predict(ds.x_test)
    assert values.shape == (16,) and values.dtype == np.float64
    scores = run.evaluate(ds.x_test, ds.y_test)
    assert scores == {"loss": pytest.approx(run.summary["test_loss"]), "accuracy": run.summary["test_accuracy"]}
    with pytest.raises(UsageError, match=r"sequences of \(steps, 2\)"):
        run.predict(np.zeros((3, 7)))


def test_run_tables_give_a_row_per_layer_and_through_time_a_row_per_time_step(tmp_path):
    run = tga.run(**{**TINY, "cell": "lstm"}, out=str(tmp_path / "tables"), progress=False)
    assert all("through_time" not in row for row in run.table()) and len(run.table()) == 2 * len(run.records)
    rows = run.time_table()
    assert len(rows) == 5 * len(run.records) and [row["t"] for row in rows[:5]] == [1, 2, 3, 4, 5]
    assert {"step", "loss", "delta_norm", "cell_delta_norm", "forget_mean"} <= set(rows[0])


def test_list_names_the_cells_and_their_parameters(capsys):
    assert main(["list"]) == 0
    assert "cells (--model rnn): tanh, relu, lstm:forget_bias, gru" in capsys.readouterr().out
