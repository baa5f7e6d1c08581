"""Your script: tinygrad_act.run(**options) -> Run (dir, config, summary, records, table(), figures()), Run.load."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_act
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.run.api import Run

TINY = {"depth": 3, "width": 8, "steps": 5, "batch_size": 16, "log_every": 2, "progress": False}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 5))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_run_with_arrays_logs_the_same_records_as_the_cli_on_the_same_data_as_npz(tmp_path):
    x, y = _data()
    run = tinygrad_act.run(**TINY, data=(x, y), seed=3, figures=False, out=str(tmp_path / "script"))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    command = [sys.executable, "-m", "tinygrad_act", "experiment", "--depth", "3", "--width", "8", "--steps", "5",
               "--batch-size", "16", "--log-every", "2", "--seed", "3", "--no-figures", "--no-progress",
               "--data", "d.npz", "--out", str(tmp_path / "cli")]  # fmt: skip
    env = {**os.environ, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
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


def test_figures_are_matplotlib_figures_and_leave_the_backend_unchanged(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    run = tinygrad_act.run(**TINY, data="spirals:n=200", out=str(tmp_path / "r"))
    before = matplotlib.get_backend()
    figures = run.figures()
    assert len(figures) >= 5 and all(isinstance(fig, Figure) for fig in figures)
    assert matplotlib.get_backend() == before
    assert "matplotlib.pyplot" not in sys.modules or sys.modules["matplotlib.pyplot"].get_fignums() == []


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
