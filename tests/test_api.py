"""Your script: tinygrad_act.run(**options) -> Run (dir, config, summary, records, table(), figures, draw(), model,
predict, evaluate, _repr_html_), Run.load; Activation/Initializer objects and plain functions as act/init."""

import base64
import contextlib
import subprocess
import sys

import hostile
import numpy as np
import pytest

import tinygrad_act
from tinygrad_act import activations, init
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.run.api import Run

TINY = {"depth": 3, "width": 8, "steps": 5, "batch_size": 16, "log_every": 2, "progress": False}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 5))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_run_with_arrays_logs_the_same_records_as_the_cli_on_the_same_data_as_npz(tmp_path, monkeypatch):
    x, y = _data()
    run = tinygrad_act.run(**TINY, data=(x, y), seed=3, figures=False, out=str(tmp_path / "script"))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))
    result = hostile.command("experiment", "--depth", "3", "--width", "8", "--steps", "5", "--batch-size", "16",
                             "--log-every", "2", "--seed", "3", "--no-figures", "--no-progress", "--data", "d.npz",
                             "--out", tmp_path / "cli")  # fmt: skip
    assert result.code == 0, result.message
    cli = Run.load(tmp_path / "cli")
    assert len(run.records) == 3
    assert _without_time(run.records) == _without_time(cli.records)
    assert run.summary["status"] == "completed" and run.summary["test_accuracy"] == cli.summary["test_accuracy"]


def test_arrays_are_recorded_by_their_shapes_and_sha256(tmp_path):
    x, y = _data()
    run = tinygrad_act.run(**TINY, data=(x[:60], y[:60], x[60:], y[60:]), figures=False, out=str(tmp_path / "r"))
    recorded = run.config["dataset"]
    assert recorded["name"] == "arrays" and recorded["params"]["test_split"] == "given"
    assert recorded["params"]["shapes"] == {"x": [60, 5], "y": [60], "x_test": [20, 5], "y_test": [20]}
    assert len(recorded["params"]["sha256"]) == 64 and run.config["data"].startswith("arrays@")
    again = tinygrad_act.run(**TINY, data=(x[:60], y[:60], x[60:], y[60:] * 1), figures=False, out=str(tmp_path / "s"))
    assert again.config["dataset"]["params"]["sha256"] == recorded["params"]["sha256"]


def test_the_table_has_one_flat_row_per_step_and_layer(tmp_path):
    run = tinygrad_act.run(**TINY, data="spirals:n=200", figures=False, out=str(tmp_path / "r"))
    rows = run.table()
    assert len(rows) == len(run.records) * 4  # three hidden layers and the output layer
    assert all(not isinstance(value, (dict, list)) for row in rows for value in row.values())
    assert [row["layer_name"] for row in rows[:4]] == ["1", "2", "3", "out"]
    second = run.records[1]
    assert rows[5]["step"] == second["step"] and rows[5]["delta_norm"] == second["layers"][1]["delta_norm"]
    assert Run.load(run.dir).table() == rows


def test_figures_map_each_name_to_its_png_and_draw_gives_figures_leaving_the_backend_unchanged(finished_run):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    run = Run.load(finished_run[0])
    assert set(run.figures) >= {"gradient_flow", "saturation", "snr", "histograms", "training"}
    assert run.figures["gradient_flow"] == run.dir / "figures" / "gradient_flow.png"
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in run.figures.values())
    before = matplotlib.get_backend()
    drawn = run.draw()
    assert set(drawn) == set(run.figures) and all(isinstance(fig, Figure) for fig in drawn.values())
    assert matplotlib.get_backend() == before
    assert "matplotlib.pyplot" not in sys.modules or sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_the_model_is_the_trained_network_and_evaluate_gives_the_summarys_numbers(finished_run):
    from tinygrad_act.lab import data

    path, summary = finished_run
    run = Run.load(path)
    assert len(run.model.layers) == 5 and run.model.layers[1].weight.data.shape == (8, 8)
    dataset = data.load("spirals:n=200")  # a built-in's inputs as the lab loads them
    assert run.evaluate(dataset.x_test, dataset.y_test) == {"loss": summary["test_loss"],
                                                            "accuracy": summary["test_accuracy"]}  # fmt: skip
    predicted = run.predict(dataset.x_test)
    assert predicted.shape == (len(dataset.y_test),)
    assert np.mean(predicted == dataset.y_test) == summary["test_accuracy"]
    assert run.predict(dataset.x_test[0]).shape == (1,)  # one example


def test_predict_and_evaluate_take_your_arrays_in_your_units_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 10.0, size=(120, 4))  # far from standardized: the run's statistics must be applied
    y = np.where(x[:, 0] + x[:, 1] > 10.0, 7, -1)  # labels that are not 0..C-1
    run = tinygrad_act.run(**TINY, data=(x[:90], y[:90], x[90:], y[90:]), figures=False, out=str(tmp_path / "r"))
    assert run.evaluate(x[90:], y[90:]) == {"loss": run.summary["test_loss"], "accuracy": run.summary["test_accuracy"]}
    assert set(run.predict(x[90:])) <= {7, -1}
    assert np.mean(run.predict(x[90:]) == y[90:]) == run.summary["test_accuracy"]
    with pytest.raises(UsageError, match="label 3 is not one of this run's classes: \\[-1, 7\\]"):
        run.evaluate(x[:2], [7, 3])
    with pytest.raises(UsageError, match="rows of 4 features"):
        run.predict(x[:, :3])


def test_a_run_shows_itself_in_a_notebook_with_its_verdict_table_and_gradient_flow(finished_run):
    path, summary = finished_run
    shown = Run.load(path)._repr_html_()
    assert f"{summary['verdict']}: layer 1 receives" in shown and "<table>" in shown
    gradient_flow = base64.b64encode((path / "figures" / "gradient_flow.png").read_bytes()).decode()
    assert shown.count("data:image/png;base64,") == 1 and gradient_flow in shown
    assert "wall time" not in shown and " s)" not in shown  # the same run shows the same, whenever shown


def test_activation_and_initializer_objects_and_plain_functions_are_accepted(tmp_path):
    def squashed(x):
        return x.tanh() * 0.5

    def narrow_normal(fan_in, fan_out, rng):
        return rng.normal(0.0, 0.5 / np.sqrt(fan_in), size=(fan_in, fan_out))

    try:
        objects = {"act": activations.get("leaky_relu", alpha=0.2), "init": init.get("he_normal", mode="fan_out")}
        leaky = tinygrad_act.run(**TINY, **objects, data="spirals:n=200", figures=False, out=str(tmp_path / "a"))
        assert leaky.config["act"] == "leaky_relu:alpha=0.2"
        assert init.get(leaky.config["init"]).params == init.get("he_normal", mode="fan_out").params
        mine = tinygrad_act.run(**TINY, data="spirals:n=200", act=squashed, init=narrow_normal, figures=False,
                                out=str(tmp_path / "b"))  # fmt: skip
        assert (mine.config["act"], mine.config["init"]) == ("squashed", "narrow_normal")
        assert mine.summary["status"] == "completed" and mine.records[0]["layers"][1]["weight_gain"] < 0.5
    finally:  # registered for this process: leave the registries as they were
        with contextlib.suppress(UsageError):
            activations.unregister("squashed")
        with contextlib.suppress(UsageError):
            init._REGISTRY.unregister("narrow_normal")


def test_an_unknown_keyword_is_named_with_the_valid_ones(tmp_path):
    with pytest.raises(UsageError, match=r"no option 'layers'; its options: depth, width, .*progress"):
        tinygrad_act.run(layers=3, out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_bad_arrays_are_refused_before_the_run_directory_exists(tmp_path):
    x, y = _data()
    with pytest.raises(UsageError, match="labels must be integers"):
        tinygrad_act.run(**TINY, data=(x, y + 0.5), out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_load_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(UsageError, match="not a run directory"):
        Run.load(tmp_path)


def test_importing_the_package_does_not_import_plotting_or_progress_bars():
    heavy = "('matplotlib', 'tqdm')"
    code = f"import sys, tinygrad_act; print(any(m.startswith({heavy}) for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
