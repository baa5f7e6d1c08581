"""One run end to end (experiment.run on tiny configurations): the run directory, determinism, divergence,
interrupts, overwrite protection, verdicts; and the small functions the summary is made of."""

import csv
import dataclasses
import json
import math
from pathlib import Path

import hostile
import numpy as np
import pytest
from conftest import FINISHED_RUN

import tinygrad_act
from tinygrad_act import optim
from tinygrad_act.common import files
from tinygrad_act.common.errors import UsageError
from tinygrad_act.common.files import read_records
from tinygrad_act.lab.run import threads
from tinygrad_act.lab.run.experiment import (
    LAYER_FIELDS,
    Config,
    run,
    summarize,
)
from tinygrad_act.lab.stats import first_last_ratio, per_layer_factor, shown_verdict
from tinygrad_act.lab.stats import verdict as verdict_of

DEPTH = 3


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


def _config(out, **overrides) -> Config:
    values = dict(
        depth=DEPTH,
        width=8,
        act="tanh",
        steps=6,
        batch_size=16,
        data="spirals:n=200",
        log_every=1,
        eval_every=100,
        figures=False,  # drawing takes most of a tiny run's time; tests that look at figures ask for them
        out=str(out),
    )
    values.update(overrides)
    # The Jacobian at step 0 (test_jacobian.py) only where the figures are drawn: jacobian.png is one of them
    values.setdefault("jacobian", None if values["figures"] else False)
    return Config(**values)


def _strict_json(text):
    """json.loads that refuses NaN and Infinity (they are not JSON)."""

    def refuse(name):
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def _jsonl(path):
    return [_strict_json(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _csv_rows(path):
    with open(path / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# One tiny run with a figure drawn, made once for the module: the run-directory test reads it (every figure drawn in
# this process: the session's finished_run, which the aside test compares with the same run drawn aside). Its own
# data cache, as the autouse fixture gives a test.
@pytest.fixture(scope="module")
def drawn_here(tmp_path_factory):
    """(config, summary) of a completed tiny run with its training figure (the others made, not rendered)."""
    root = tmp_path_factory.mktemp("drawn_here")
    config = _config(root / "run", steps=6, log_every=2, figures=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYGRAD_ACT_CACHE", str(root / "cache"))
        hostile.draw_only(patch, "training.png")
        return config, run(config, progress=False, command="test command")


# ---- the run directory ---------------------------------------------------------------------------------------
def test_run_writes_config_metrics_csv_summary_and_figures(drawn_here):
    config, summary = drawn_here
    out = Path(config.out)

    resolved = _strict_json((out / "config.json").read_text())
    for field in dataclasses.fields(Config):
        expected = str(out) if field.name == "out" else getattr(config, field.name)
        assert resolved[field.name] == expected, field.name
    assert resolved["version"] == tinygrad_act.__version__
    assert resolved["seed"] == 0 and resolved["command"] == "test command"

    records = _jsonl(out)
    assert [r["step"] for r in records] == [0, 2, 4, 5]  # every log_every steps, and the last step
    for record in records:
        assert {"step", "loss", "accuracy", "layers"} <= set(record)
        assert len(record["layers"]) == DEPTH + 1
        for index, layer in enumerate(record["layers"]):
            assert set(LAYER_FIELDS) <= set(layer)
            for field in ("weight_grad_norm", "bias_grad_norm", "delta_norm", "act_std", "update_ratio"):
                assert layer[field] > 0, (record["step"], index, field)
            if index < DEPTH:
                assert 0 <= layer["saturation"] <= 1 and 0 <= layer["dead_fraction"] <= 1
            else:
                assert layer["saturation"] is None and layer["dead_fraction"] is None

    rows = _csv_rows(out)
    assert len(rows) == len(records) * (DEPTH + 1)
    # the output layer is "out", as in the terminal's table; the step's test metrics and time are on every row
    names = [*map(str, range(1, DEPTH + 1)), "out"]
    assert [(int(r["step"]), r["layer"]) for r in rows] == [(rec["step"], name) for rec in records for name in names]
    for row, (record, layer) in zip(rows, [(rec, la) for rec in records for la in rec["layers"]]):
        assert float(row["loss"]) == record["loss"]
        assert float(row["delta_norm"]) == layer["delta_norm"]
        assert float(row["time"]) == record["time"]
        for field in ("test_loss", "test_accuracy"):
            assert row[field] == ("" if record.get(field) is None else repr(record[field]))

    on_disk = _strict_json((out / "summary.json").read_text())
    for key in ("status", "steps_done", "final_loss", "final_accuracy", "ratio_init", "ratio_final"):
        assert key in on_disk, key
    for key in ("per_layer_factor_init", "per_layer_factor_final", "verdict", "verdict_final", "theory"):
        assert key in on_disk, key
    assert on_disk["status"] == "completed" and on_disk["steps_done"] == 6
    assert on_disk["final_loss"] == records[-1]["loss"] and on_disk["final_accuracy"] == records[-1]["accuracy"]
    assert on_disk["ratio_init"] == pytest.approx(first_last_ratio(records[0]), rel=1e-12)
    assert on_disk["ratio_final"] == pytest.approx(first_last_ratio(records[-1]), rel=1e-12)
    assert on_disk["per_layer_factor_init"] == pytest.approx(on_disk["ratio_init"] ** (1 / (DEPTH - 1)))
    assert on_disk["verdict"] == verdict_of(on_disk["ratio_init"])
    assert on_disk["wall_time_s"] > 0
    assert summary["path"] == str(out) and summary["status"] == "completed"

    assert summary["figures"] == ["figures/training.png"], "the figure drawn is recorded"
    for name in summary["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_first_record_is_step_zero_with_the_loss_at_initialization(tmp_path):
    out = tmp_path / "run"
    run(_config(out, steps=2), progress=False)
    records = _jsonl(out)
    assert records[0]["step"] == 0
    # With 3 balanced classes and a freshly initialized net, the loss is near log 3, not a trained value.
    assert records[0]["loss"] == pytest.approx(math.log(3), abs=0.5)
    assert read_records(out) == [_strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_evaluation_steps_log_the_whole_training_split_beside_the_minibatch(tmp_path):
    out = tmp_path / "run"
    summary = run(_config(out, steps=6, log_every=1, eval_every=3), progress=False)
    records = read_records(out)
    evaluated = [r for r in records if "test_loss" in r]
    assert [r["step"] for r in evaluated] == [0, 3, 5]  # every eval_every-th step and the last
    assert all("train_loss" in r and "train_accuracy" in r for r in evaluated)
    assert all("train_loss" not in r for r in records if r not in evaluated)
    # The last step is evaluated after its update, as the final evaluation is: the same whole-split numbers.
    assert (evaluated[-1]["train_loss"], evaluated[-1]["train_accuracy"]) == (
        summary["train_loss"],
        summary["train_accuracy"],
    )
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "time"} <= set(header)


def test_an_existing_run_directory_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    run(_config(out), progress=False)
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(UsageError, match="force=True"):
        run(_config(out, seed=1), progress=False)
    assert (out / "metrics.jsonl").read_text() == before
    run(_config(out, seed=1, steps=2), force=True, progress=False)
    assert [r["step"] for r in _jsonl(out)] == [0, 1]
    assert _strict_json((out / "config.json").read_text())["seed"] == 1


def test_default_out_is_a_fresh_directory_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config("", steps=1)
    first = run(config, progress=False)
    second = run(_config("", steps=1), progress=False)
    assert first["path"] != second["path"]
    for summary in (first, second):
        path = tmp_path / summary["path"]
        assert path.parent == tmp_path / "runs"
        assert (path / "summary.json").exists()
    assert (tmp_path / "runs" / config.default_name()).exists()


def test_same_config_and_seed_give_identical_records_except_time(tmp_path):
    runs = []
    for name in ("a", "b"):
        run(_config(tmp_path / name, act="relu", steps=5, eval_every=2), progress=False)
        runs.append([{k: v for k, v in r.items() if k != "time"} for r in _jsonl(tmp_path / name)])
    assert runs[0] == runs[1]
    csvs = [list(csv.DictReader((tmp_path / name / "metrics.csv").read_text().splitlines())) for name in ("a", "b")]
    for row in (*csvs[0], *csvs[1]):
        assert float(row.pop("time")) >= 0  # the wall clock is the one column allowed to differ
    assert csvs[0] == csvs[1]
    run(_config(tmp_path / "c", act="relu", steps=5, eval_every=2, seed=1), progress=False)
    assert _jsonl(tmp_path / "c")[0]["loss"] != runs[0][0]["loss"]


# ---- divergence and interrupts ---------------------------------------------------------------------------------
def test_a_run_whose_loss_becomes_non_finite_is_diverged_with_valid_logs(tmp_path):
    out = tmp_path / "run"
    # A linear net with a huge learning rate: the weights grow until the logits overflow.
    summary = run(_config(out, act="identity", lr=1e6, steps=30, figures=True), progress=False)
    assert summary["status"] == "diverged"
    assert "diverged" in summary["message"]
    assert summary["steps_done"] < 30
    records = _jsonl(out)  # strict: no NaN or Infinity tokens
    assert [r["step"] for r in records] == list(range(summary["steps_done"] + 1))
    assert records[-1]["loss"] in ("nan", "inf")  # the non-finite loss is kept, as a marker (null = not measured)
    assert math.isnan(read_records(out)[-1]["loss"]) or read_records(out)[-1]["loss"] == math.inf
    on_disk = _strict_json((out / "summary.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["verdict_final"] == "diverged"
    assert on_disk["steps_done"] == summary["steps_done"]
    rows = _csv_rows(out)
    assert len(rows) == len(records) * (DEPTH + 1)
    assert summary["figures"] and all((out / name).exists() for name in summary["figures"])


def test_a_run_whose_gradients_are_all_zero_draws_its_figures_without_warnings(tmp_path):
    # pytest runs with -W error, so a warning from the plotting code shows up here as figures_error.
    # Zero weights: every hidden delta is exactly 0, which a log-scale axis cannot show.
    summary = run(_config(tmp_path / "run", act="relu", init="zeros", steps=2, figures=True), progress=False)
    assert summary["status"] == "completed"
    assert "figures_error" not in summary, summary.get("figures_error")
    assert summary["figures"]


def test_keyboard_interrupt_ends_the_run_as_interrupted_keeping_every_logged_record(tmp_path, monkeypatch):
    original = optim.Optimizer.step
    calls = []

    def step_then_interrupt(self, *flat):  # flat: the captured step's fused update (nn/step.py)
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        original(self, *flat)

    monkeypatch.setattr(optim.Optimizer, "step", step_then_interrupt)
    out = tmp_path / "run"
    summary = run(_config(out, steps=50), progress=False)
    assert summary["status"] == "interrupted" and summary["steps_done"] == 3
    assert [r["step"] for r in _jsonl(out)] == [0, 1, 2]
    on_disk = _strict_json((out / "summary.json").read_text())
    assert on_disk["status"] == "interrupted" and on_disk["steps_done"] == 3
    assert on_disk["verdict"] in ("vanishing", "healthy", "exploding")
    rows = _csv_rows(out)
    assert len(rows) == 3 * (DEPTH + 1)


# ---- verdicts on the laboratory's two classic cases -------------------------------------------------------------
@pytest.mark.parametrize(
    "act, init, verdict", [("sigmoid", "xavier_normal", "vanishing"), ("relu", "he_normal", "healthy")]
)
def test_depth_20_verdict_at_step_zero(tmp_path, act, init, verdict):
    summary = run(
        _config(tmp_path / "run", depth=20, width=32, act=act, init=init, steps=1, batch_size=64), progress=False
    )
    assert summary["step_init"] == 0
    assert summary["verdict"] == verdict, summary["ratio_init"]


# ---- the functions the summary is made of ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "ratio, nonfinite, verdict",
    [
        (0.0099, 0, "vanishing"),
        (1e-12, 0, "vanishing"),
        (0.01, 0, "healthy"),
        (1.0, 0, "healthy"),
        (100.0, 0, "healthy"),
        (100.1, 0, "exploding"),
        (math.inf, 0, "exploding"),
        (math.nan, 0, "exploding"),
        (1.0, 3, "exploding"),
    ],
)
def test_verdict_thresholds(ratio, nonfinite, verdict):
    assert verdict_of(ratio, nonfinite) == verdict


def _record(*deltas):
    return {"layers": [{"delta_norm": d} for d in deltas]}


def test_first_last_ratio_divides_the_first_hidden_delta_by_the_last_hidden_one():
    assert first_last_ratio(_record(1e-6, 5.0, 1e-3, 123.0)) == pytest.approx(1e-3)  # output layer ignored
    assert math.isnan(first_last_ratio(_record(None, 1.0, 1.0)))
    assert math.isnan(first_last_ratio(_record(1.0, math.nan, 1.0)))
    assert first_last_ratio(_record(2.0, 0.0, 1.0)) == math.inf


def test_per_layer_factor_is_the_geometric_mean_factor_over_the_hidden_layers():
    assert per_layer_factor(1e-4, 3) == pytest.approx(1e-2)
    assert per_layer_factor(2.0**19, 20) == pytest.approx(2.0)
    assert math.isnan(per_layer_factor(0.5, 1))
    assert math.isnan(per_layer_factor(0.0, 5))
    assert math.isnan(per_layer_factor(math.inf, 5))


def test_summary_of_a_diverged_run_ends_diverged_whatever_the_last_finite_ratio_was():
    records = [
        {"step": 0, "loss": 1.0, "accuracy": 0.5, "nonfinite": 0, **_record(1.0, 1.0, 1.0)},
        {"step": 1, "loss": math.nan, "accuracy": 0.3, "nonfinite": 0, **_record(None, None, None)},
    ]
    summary = summarize(_config("x", depth=2), records, "diverged", "boom", 1, {}, None)
    assert summary["verdict"] == "healthy" and summary["verdict_final"] == "diverged"
    assert shown_verdict(summary) == "diverged" and shown_verdict({**summary, "status": "completed"}) == "diverged"
    assert summary["step_init"] == 0 and summary["step_final"] == 0


# ---- configuration checks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, words",
    [
        ("depth", 0, ["depth", "0", "positive integer"]),
        ("depth", 2.5, ["depth", "2.5", "positive integer"]),
        ("depth", True, ["depth", "True"]),
        ("width", -1, ["width", "-1"]),
        ("steps", 0, ["steps", "0"]),
        ("batch_size", "8", ["batch_size", "'8'"]),
        ("lr", 0.0, ["lr", "0.0", "positive"]),
        ("lr", -1.0, ["lr", "-1.0"]),
        ("lr", math.nan, ["lr", "nan"]),
        ("lr", math.inf, ["lr", "inf"]),
        ("dtype", "float16", ["'float16'", "float32, float64"]),
        ("norm", "group", ["'group'", "none, batch, layer"]),
        ("act", "swoosh", ["'swoosh'", "relu", "sigmoid", "tanh"]),
        ("init", "glorot", ["'glorot'", "he_normal", "xavier_normal"]),
        ("data", "cifar", ["'cifar'", "mnist1d", "spirals"]),
        ("optimizer", "rmsprop", ["'rmsprop'", "adam, sgd"]),
        ("seed", -1, ["seed", "-1"]),
    ],
)
def test_validate_names_the_bad_value_and_the_valid_choices(tmp_path, field, value, words):
    config = dataclasses.replace(_config(tmp_path / "run"), **{field: value})
    with pytest.raises(ValueError) as error:
        config.validate()
    for word in words:
        assert word in str(error.value)
    with pytest.raises(ValueError):
        run(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_rejected_for_bad_dataset_parameters_leaves_no_directory_behind(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="-5"):
        run(_config(out, data="spirals:n=-5"), progress=False)
    assert not out.exists()


def test_the_default_config_is_valid():
    assert Config().validate() == Config()
    assert np.dtype(Config().dtype) == np.float64


def test_parameters_given_in_the_optimizer_spec_are_not_silently_overridden(tmp_path):
    # `--optimizer sgd:momentum=0` must mean momentum 0 (or be refused), not the --momentum default 0.9.
    try:
        run(_config(tmp_path / "inline", optimizer="sgd:momentum=0.0", steps=3), progress=False)
    except ValueError as error:
        assert "momentum" in str(error)
        return
    run(_config(tmp_path / "explicit", optimizer="sgd", momentum=0.0, steps=3), progress=False)
    inline, explicit = (
        [{k: v for k, v in r.items() if k != "time"} for r in _jsonl(tmp_path / name)]
        for name in ("inline", "explicit")
    )
    assert inline == explicit


def _without_time(out) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "time"} for record in read_records(out)]


def test_one_blas_thread_or_two_log_the_same_numbers(tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    logged = []
    for limit in (1, 2):
        with threadpoolctl.threadpool_limits(limits=limit, user_api="blas"):
            run(_config(tmp_path / f"run{limit}", width=64, batch_size=64, eval_every=2), progress=False)
        logged.append(_without_time(tmp_path / f"run{limit}"))
    assert logged[0] == logged[1]


def test_small_models_train_on_one_blas_thread_unless_the_environment_sets_a_count(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)

    def blas_threads_inside(width):
        with threads.blas_threads(width):
            return {pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads_inside(threads.SMALL) == {1}
        assert blas_threads_inside(threads.SMALL + 1) == {2}
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        assert blas_threads_inside(64) == {2}


def test_figures_rendered_aside_are_the_same_files_written_and_recorded_as_drawn_here(tmp_path, finished_run):
    pictures, manifests = [], []
    here_path, here = finished_run  # drawn in the process that ran it
    out = tmp_path / here_path.name  # the same name: it is in every figure's title
    aside = run(Config(**FINISHED_RUN, out=str(out)), progress=False, draw_aside=True)
    for path, summary in ((here_path, here), (out, aside)):
        assert "figures_error" not in summary, summary.get("figures_error")
        pictures.append({name: (path / name).read_bytes() for name in summary["figures"]})
        manifests.append(files.Owned.read(path).files)
    assert len(pictures[0]) == 8 and pictures[0] == pictures[1]
    assert manifests[0] == manifests[1]  # every PNG recorded as the run's own, in the same order
