"""Sweeps: grid expansion, run names, resume after a kill, parallel and Dask runs give the serial numbers,
shards, the tables and figures, the `sweep` command and the named configs under experiments/.

Every sweep here is tiny (depth 2-3, width 8, a few steps on 200 spirals); outputs go to tmp_path."""

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_act.cli import main
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.run import experiment
from tinygrad_act.lab.run.experiment import Config
from tinygrad_act.lab.sweep import grid as sweeps

# The Jacobian at step 0 is not what a sweep is tested for here (test_jacobian.py): not measured
TINY = {"width": 8, "steps": 2, "data": "spirals:n=200", "batch_size": 16, "log_every": 1, "jacobian": False}
REPO_EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# The sweeps here draw no figures of their own but in the tests that ask for sweep_figures (conftest.py).
pytestmark = pytest.mark.usefixtures("no_sweep_figures")


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


def tiny(grid, **fixed) -> sweeps.Sweep:
    return sweeps.Sweep(grid, {**TINY, **fixed}, name="tiny")


def count_runs(monkeypatch) -> list[str]:
    """Patch experiment.run (the serial path calls it in this process): the run directories it trains."""
    calls, real = [], experiment.run

    def counting(config, *args, **kwargs):
        calls.append(Path(config.out).name)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(experiment, "run", counting)
    return calls


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def records_without_time(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def assert_same_numbers(root_a: Path, root_b: Path, runs: list[str]):
    """Two sweep directories hold the same training, step by step: metrics.jsonl and sweep.csv agree."""
    for run in runs:
        assert records_without_time(root_a / "runs" / run) == records_without_time(root_b / "runs" / run), run
    rows_a, rows_b = (
        [{k: v for k, v in row.items() if k != "wall_time_s"} for row in read_csv(root / "sweep.csv")]
        for root in (root_a, root_b)
    )
    assert rows_a == rows_b
    assert sorted(row["run"] for row in rows_a) == sorted(runs)


# ---- grid expansion ---------------------------------------------------------------------------------------
def test_points_are_every_combination_in_grid_key_order_with_the_last_key_fastest():
    sweep = sweeps.Sweep({"act": ["relu", "tanh"], "depth": [2, 3, 4], "seed": [0, 1]})
    points = sweep.points()
    assert len(points) == 12
    assert [list(p) for p in points] == [["act", "depth", "seed"]] * 12
    assert points[:3] == [
        {"act": "relu", "depth": 2, "seed": 0},
        {"act": "relu", "depth": 2, "seed": 1},
        {"act": "relu", "depth": 3, "seed": 0},
    ]
    assert points[-1] == {"act": "tanh", "depth": 4, "seed": 1}
    assert len({tuple(p.values()) for p in points}) == 12


def test_grid_text_is_parsed_by_the_schema_and_typed_values_are_taken_exactly():
    sweep = sweeps.Sweep.from_text(
        {"depth": "5,7", "lr": ["0.1", "1"], "residual": "true,False", "seed": "2"},
        {"width": 16, "clip": 1, "figures": True, "act": "relu"},
    )
    assert sweep.grid == {"depth": [5, 7], "lr": [0.1, 1.0], "residual": [True, False], "seed": [2]}
    assert [type(v) for v in sweep.grid["depth"] + sweep.grid["lr"] + sweep.grid["seed"]] == [
        int,
        int,
        float,
        float,
        int,
    ]
    assert sweep.fixed == {"width": 16, "clip": 1.0, "figures": True, "act": "relu"}
    assert type(sweep.fixed["clip"]) is float  # an int is a number where a float is declared
    for grid in ({"depth": ["5"]}, {"residual": ["true"]}, {"seed": [2.0]}, {"depth": [True]}):
        with pytest.raises(UsageError, match=next(iter(grid))):
            sweeps.Sweep(grid)


@pytest.mark.parametrize("value", ["maybe", "ture", "2"])
def test_a_bool_parameter_rejects_a_string_that_is_not_true_or_false(value):
    with pytest.raises(ValueError, match="residual"):
        sweeps.Sweep({"residual": [value, "false"]})


@pytest.mark.parametrize(
    ("grid", "fixed", "named"),
    [
        ({"activation": ["relu"]}, {}, "activation"),
        ({"act": ["relu"]}, {"depht": 3}, "depht"),
        ({"act": ["relu"]}, {"out": "somewhere"}, "out"),
        ({"act": []}, {}, "act"),
        ({"act": "relu"}, {}, "act"),
        ({"act": ["relu"], "depth": [2]}, {"depth": 3}, "depth"),
        ({"depth": ["two"]}, {}, "depth"),
        ({"lr": ["fast"]}, {}, "lr"),
        ({"act": [1, "relu"]}, {}, "act"),  # a TOML number where a name belongs
        ({"act": ["relu"]}, {"data": 5}, "data"),
    ],
)
def test_bad_sweep_parameters_raise_value_error_naming_the_parameter(grid, fixed, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        sweeps.Sweep(grid, fixed)


def test_a_duplicate_grid_value_is_rejected_before_two_runs_share_a_directory(tmp_path):
    sweep = tiny({"depth": [2, np.int64(2)]})  # the same run once the schema made both a plain int
    with pytest.raises(ValueError, match="depth-2"):
        sweeps.run_sweep(sweep, tmp_path / "sweep", progress=False)
    assert not (tmp_path / "sweep").exists()


def test_every_run_is_validated_before_anything_runs_or_is_written(tmp_path, monkeypatch):
    calls = count_runs(monkeypatch)
    sweep = tiny({"act": ["relu", "no_such_activation"], "depth": [2]})
    with pytest.raises(ValueError, match="no_such_activation"):
        sweeps.run_sweep(sweep, tmp_path / "sweep", progress=False)
    assert calls == []
    assert not (tmp_path / "sweep").exists()


def test_configs_give_each_point_its_own_run_directory_with_the_fixed_settings(tmp_path):
    sweep = tiny({"act": ["relu", "tanh"]}, depth=3)
    runs = sweep.configs(tmp_path)
    assert [name for name, _ in runs] == ["act-relu", "act-tanh"]
    for (name, config), point in zip(runs, sweep.points()):
        assert isinstance(config, Config)
        assert config.out == str(tmp_path / "runs" / name)
        assert (config.act, config.depth, config.width, config.steps) == (point["act"], 3, 8, 2)
        assert config.figures is False  # the sweep draws its own figures; per-run figures are slow


# ---- run names --------------------------------------------------------------------------------------------
def test_run_name_spells_the_grid_values_in_grid_order():
    assert sweeps.run_name({"act": "relu", "depth": 20, "seed": 0}) == "act-relu_depth-20_seed-0"
    assert sweeps.run_name({"lr": 0.1, "residual": True}) == "lr-0.1_residual-True"


@pytest.mark.parametrize(
    "point",
    [
        {"act": "leaky_relu:alpha=0.2", "depth": 3},
        {"init": "xavier_normal:gain=1.41", "data": "spirals:n=200,noise=0.1,classes=5"},
        {"act": "elu:alpha=1.5", "init": "orthogonal:gain=2", "lr": 1e-05},
        {"data": "../../etc/passwd", "act": "a b/c\\d"},
    ],
)
def test_run_name_is_a_single_safe_directory_name(point, tmp_path):
    name = sweeps.run_name(point)
    assert SAFE_NAME.fullmatch(name), name
    assert name not in (".", "..")
    (tmp_path / name).mkdir()
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_distinct_points_get_distinct_run_names():
    grid = {
        "act": ["leaky_relu", "leaky_relu:alpha=0.2", "leaky_relu:alpha=0.02", "elu:alpha=0.2"],
        "init": ["xavier_normal", "xavier_normal:gain=2", "xavier_normal:gain=2.0", "xavier_normal:gain=0.5"],
        "lr": [0.1, 0.01, 1e-05],
        "residual": [False, True],
    }
    points = sweeps.Sweep(grid).points()
    assert len({sweeps.run_name(p) for p in points}) == len(points) == 96


@pytest.mark.parametrize("path", sorted(REPO_EXPERIMENTS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_named_config_loads_and_expands_to_valid_configs_with_distinct_names(path, tmp_path):
    sweep = sweeps.load_config(str(path))
    assert sweep.name == path.stem
    assert sweep.grid and sweep.description
    runs = sweep.configs(tmp_path)  # validates every point; nothing is run
    assert len(runs) == len(sweep.points()) > 1
    assert len({name for name, _ in runs}) == len(runs)
    assert all(SAFE_NAME.fullmatch(name) for name, _ in runs)
    by_name = sweeps.load_config(path.stem)
    assert (by_name.grid, by_name.fixed) == (sweep.grid, sweep.fixed)


# ---- named configs ----------------------------------------------------------------------------------------
def test_load_config_by_name_reads_experiments_under_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "mine.toml").write_text(
        'name = "mine"\ndescription = "two activations"\n[grid]\nact = ["relu", "tanh"]\ndepth = [2, 3]\n'
        "[fixed]\nsteps = 2\nwidth = 8\n"
    )
    monkeypatch.chdir(tmp_path)
    sweep = sweeps.load_config("mine")
    assert (sweep.name, sweep.description) == ("mine", "two activations")
    assert sweep.grid == {"act": ["relu", "tanh"], "depth": [2, 3]}
    assert sweep.fixed == {"steps": 2, "width": 8}


def test_load_config_of_an_unknown_name_lists_the_available_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no_such_sweep") as error:
        sweeps.load_config("no_such_sweep")
    assert "vanishing_depth" in str(error.value) and "he_2015" in str(error.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('name = "x"\ngirds = 1\n[grid]\nact = ["relu"]\n', "girds"),
        ('[grid]\nact = ["relu"]\n[fixd]\ndepth = 2\n', "fixd"),
        ('[grid]\nact = ["relu"\n', "bad.toml"),
        ('[grid]\nactivation = ["relu"]\n', "activation"),
        ('[grid]\nact = ["relu"]\n[report]\nnote = "read by nothing"\n', "report"),
    ],
)
def test_load_config_of_a_bad_toml_raises_value_error_naming_the_problem(text, named, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=named):
        sweeps.load_config(str(path))


# ---- shards -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "shard"), [("1/3", (1, 3)), ("0/1", (0, 1)), (" 2 / 4 ", (2, 4))])
def test_parse_shard_reads_i_of_n(text, shard):
    assert sweeps.parse_shard(text) == shard


@pytest.mark.parametrize("text", ["3/3", "a/b", "-1/2", "1", "", "1/0", "0/0", "1/2/3", "1.0/2"])
def test_parse_shard_rejects_anything_but_i_of_n_with_i_below_n(text):
    with pytest.raises(ValueError, match="shard"):
        sweeps.parse_shard(text)


def test_shards_run_every_run_exactly_once_and_the_last_table_lists_them_all(tmp_path, monkeypatch):
    calls = count_runs(monkeypatch)
    sweep = tiny({"act": ["relu", "tanh", "sigmoid"], "depth": [2], "seed": [0, 1]})
    everything = [name for name, _ in sweep.configs(tmp_path)]
    done = []
    for index in range(2):
        calls.clear()
        rows = sweeps.run_sweep(sweep, tmp_path, shard=(index, 2), progress=False)
        done.append(set(calls))
        assert len(calls) == len(set(calls)) == 3
        assert {row["run"] for row in rows} == set().union(*done)  # the table lists every finished run so far
    assert done[0] | done[1] == set(everything)
    assert done[0] & done[1] == set()
    assert sorted(row["run"] for row in read_csv(tmp_path / "sweep.csv")) == sorted(everything)


# ---- resume -----------------------------------------------------------------------------------------------
def test_resume_redoes_only_the_run_without_a_summary_and_a_finished_sweep_does_no_work(tmp_path, monkeypatch):
    sweep = tiny({"act": ["sigmoid", "tanh"], "depth": [2, 3]})
    calls = count_runs(monkeypatch)
    sweeps.run_sweep(sweep, tmp_path, progress=False)
    assert len(calls) == 4
    runs = tmp_path / "runs"
    before = {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in runs.glob("*/summary.json")}
    killed = runs / "act-tanh_depth-2"
    complete_records = records_without_time(killed)
    # A kill mid-run: no summary.json, and metrics.jsonl cut off in the middle of a record.
    (killed / "summary.json").unlink()
    text = (killed / "metrics.jsonl").read_text()
    (killed / "metrics.jsonl").write_text(text[: len(text) // 2])
    calls.clear()
    rows = sweeps.run_sweep(sweep, tmp_path, progress=False)
    assert calls == ["act-tanh_depth-2"]
    for name, (mtime, content) in before.items():
        if name != killed.name:
            summary = runs / name / "summary.json"
            assert (summary.stat().st_mtime_ns, summary.read_text()) == (mtime, content), name
    assert records_without_time(killed) == complete_records  # redone from scratch, the same numbers
    assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
    calls.clear()
    sweeps.run_sweep(sweep, tmp_path, progress=False)
    assert calls == []


def test_resume_redoes_a_run_whose_summary_was_cut_short_by_a_kill(tmp_path, monkeypatch):
    sweep = tiny({"act": ["sigmoid", "tanh"]}, depth=2)
    calls = count_runs(monkeypatch)
    sweeps.run_sweep(sweep, tmp_path, progress=False)
    summary = tmp_path / "runs" / "act-tanh" / "summary.json"
    complete = json.loads(summary.read_text())
    summary.write_text(summary.read_text()[:40])  # killed while summary.json was being written
    calls.clear()
    rows = sweeps.run_sweep(sweep, tmp_path, progress=False)
    assert calls == ["act-tanh"]
    assert json.loads(summary.read_text())["ratio_init"] == complete["ratio_init"]
    assert [row["run"] for row in rows] == ["act-sigmoid", "act-tanh"]


def test_a_sweep_killed_with_sigkill_resumes_without_redoing_its_finished_run(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    # The first run is quick, the second long enough (~1 s) to be killed in the middle.
    args = ["sweep", "--grid", "steps=3,1200", "--depth", "2", "--width", "8", "--data", "spirals:n=200"]
    args += ["--batch-size", "16", "--log-every", "1", "--jobs", "1", "--no-progress", "--out", str(out)]
    env = {**os.environ, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_act", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first, second = out / "runs" / "steps-3", out / "runs" / "steps-1200"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                json.loads((first / "summary.json").read_text())
                break
            except (OSError, ValueError):  # not there yet, or being written
                time.sleep(0.005)
        assert process.poll() is None, "the sweep ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert (first / "summary.json").exists() and not (second / "summary.json").exists()
    finished = (first / "summary.json").stat().st_mtime_ns, (first / "summary.json").read_text()

    calls = count_runs(monkeypatch)
    assert main(args) == 0
    assert calls == ["steps-1200"]
    assert ((first / "summary.json").stat().st_mtime_ns, (first / "summary.json").read_text()) == finished
    rows = read_csv(out / "sweep.csv")
    assert [(row["steps"], row["status"], row["steps_done"]) for row in rows] == [
        ("3", "completed", "3"),
        ("1200", "completed", "1200"),
    ]


# ---- parallel, Dask ---------------------------------------------------------------------------------------
def test_parallel_jobs_give_the_same_numbers_as_serial(tmp_path):
    sweep = tiny({"act": ["sigmoid", "relu"], "depth": [2, 3]}, steps=3)
    serial = sweeps.run_sweep(sweep, tmp_path / "serial", jobs=1, progress=False)
    parallel = sweeps.run_sweep(sweep, tmp_path / "parallel", jobs=2, progress=False)
    assert [row["run"] for row in serial] == [row["run"] for row in parallel]
    assert_same_numbers(tmp_path / "serial", tmp_path / "parallel", [row["run"] for row in serial])


@pytest.fixture
def dask_cluster():
    from dask.distributed import LocalCluster  # in the 'test' extra

    # processes=False: the worker is a thread of this process, but tasks still travel over TCP on loopback.
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_a_dask_cluster_gives_the_same_numbers_as_serial(tmp_path, dask_cluster):
    assert dask_cluster.startswith("tcp://127.0.0.1:")
    sweep = tiny({"act": ["sigmoid", "relu"]}, depth=2)
    sweeps.run_sweep(sweep, tmp_path / "serial", progress=False)
    rows = sweeps.run_sweep(sweep, tmp_path / "dask", scheduler=dask_cluster, progress=False)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert_same_numbers(tmp_path / "serial", tmp_path / "dask", ["act-sigmoid", "act-relu"])


# ---- outputs ----------------------------------------------------------------------------------------------
def test_sweep_csv_and_md_have_one_row_per_run_with_parameters_and_results(tmp_path):
    sweep = tiny({"act": ["sigmoid", "leaky_relu:alpha=0.2"], "depth": [2, 3]})
    rows = sweeps.run_sweep(sweep, tmp_path, progress=False)
    table = read_csv(tmp_path / "sweep.csv")
    columns = ["act", "depth", *sweeps.ROW_FIELDS, "init_resolved", "run"]
    assert list(table[0]) == columns
    assert [(row["act"], row["depth"]) for row in table] == [(p["act"], str(p["depth"])) for p in sweep.points()]
    for row, summary_row in zip(table, rows):
        summary = json.loads((tmp_path / "runs" / row["run"] / "summary.json").read_text())
        assert row["status"] == "completed" and row["steps_done"] == "2"
        assert row["verdict"] in ("vanishing", "healthy", "exploding")
        for field in ("ratio_init", "ratio_final", "per_layer_factor_init", "final_loss", "test_accuracy"):
            assert float(row[field]) == pytest.approx(summary[field], rel=1e-12), field
        assert float(row["predicted_ratio"]) == pytest.approx(summary["theory"]["ratio"], rel=1e-12)
        assert float(row["predicted_per_layer_factor"]) > 0
        assert float(row["per_layer_factor_final"]) > 0 and float(row["train_accuracy"]) >= 0
        assert summary_row["ratio_init"] == summary["ratio_init"]
    markdown = (tmp_path / "sweep.md").read_text().splitlines()
    # init=auto chose per activation: a column, though init is not in the grid; readable headers
    assert markdown[0] == ("| act | depth | init | verdict | r at init | r at end | factor per layer | theory: factor "
                           "per layer | test loss | test accuracy | status |")  # fmt: skip
    assert set(markdown[1]) <= set("|-")
    assert len(markdown) == 2 + len(table)
    for line, row in zip(markdown[2:], table):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:3] == [row["act"], row["depth"], row["init_resolved"]] and cells[-1] == "completed"
        assert cells[2] == ("xavier_normal" if row["act"] == "sigmoid" else "he_normal")
        assert float(cells[4]) == pytest.approx(float(row["ratio_init"]), rel=5e-3)
        assert cells[-2] == f"{100 * float(row['test_accuracy']):.1f}%"  # accuracy in percent, as everywhere


def test_sweep_md_shows_measured_numbers_as_report_fmt_and_grid_values_as_given(tmp_path):
    from tinygrad_act.lab.show.format import fmt

    row = {"act": "relu", "depth": 100, "ratio_init": 3.125e-3, "ratio_final": 0.0607, "test_loss": None}
    sweeps.write_tables(tmp_path, [{**row, "status": "completed", "verdict": "vanishing"}], ["act", "depth"])
    cells = [c.strip() for c in (tmp_path / "sweep.md").read_text().splitlines()[2].strip("|").split("|")]
    assert cells[:5] == ["relu", "100", "vanishing", fmt(3.125e-3, 3), fmt(0.0607, 3)]
    assert cells[-3:] == ["-", "-", "completed"]  # test_loss not measured, test_accuracy absent


def test_every_varied_setting_is_a_column_and_an_init_given_as_auto_names_what_it_chose(tmp_path):
    rows = [{"act": "tanh", "init": "auto", "init_resolved": "xavier_normal", "test_accuracy": 0.5},
            {"act": "tanh", "init": "he_normal", "init_resolved": "he_normal", "test_accuracy": 0.25}]  # fmt: skip
    headers, cells = sweeps.table_cells(rows, ["act", "init"])
    assert headers[:3] == ["act", "init", "verdict"] and headers[-2] == "test accuracy"
    assert [row[1] for row in cells] == ["auto (xavier_normal)", "he_normal"]
    assert [row[-2] for row in cells] == ["50.0%", "25.0%"]
    same = [{**row, "init_resolved": "he_normal"} for row in rows]
    assert sweeps.table_cells(same, ["act"])[0][:2] == ["act", "verdict"]  # one init for all: not a column
    assert sweeps.table_cells(rows, ["batch_size"])[0][0] == "batch size"  # readable, not snake_case


def test_a_sweep_draws_its_figures_as_png_files(tmp_path, sweep_figures):
    sweep = tiny({"act": ["sigmoid", "relu"], "depth": [2, 3]})
    sweeps.run_sweep(sweep, tmp_path, progress=False)
    for name in ("ratio_vs_depth.png", "ratio_heatmap.png", "delta_profiles.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == PNG_SIGNATURE, name


def test_without_depth_in_the_grid_only_the_delta_profiles_are_drawn(tmp_path, sweep_figures):
    rows = sweeps.run_sweep(tiny({"act": ["sigmoid", "relu"]}, depth=2), tmp_path, progress=False)
    assert sweeps.figures(tmp_path, rows, ["act"]) == ["figures/delta_profiles.png"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["delta_profiles.png"]


def test_sweep_tables_and_figures_take_vanished_and_diverged_runs_without_warnings(tmp_path, sweep_figures):
    # Gain 1e20: sigmoid and tanh saturate (every delta is exactly 0, r = 0); ReLU and SELU overflow and diverge,
    # and a diverged run's last record has no per-layer statistics. Warnings are errors in this suite.
    sweep = tiny(
        {"act": ["sigmoid", "tanh", "relu", "selu"], "depth": [2, 3]},
        init="xavier_normal:gain=1e20",
        steps=4,
        log_every=2,
    )
    rows = sweeps.run_sweep(sweep, tmp_path, progress=False)
    statuses = {(row["act"], row["status"], row["verdict"]) for row in rows}
    assert ("sigmoid", "completed", "vanishing") in statuses and ("relu", "diverged", "diverged") in statuses
    assert {row["ratio_init"] for row in rows if row["act"] in ("sigmoid", "tanh")} == {0.0}
    assert len(read_csv(tmp_path / "sweep.csv")) == 8
    for name in ("ratio_vs_depth.png", "ratio_heatmap.png", "delta_profiles.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == PNG_SIGNATURE, name


# ---- the sweep command ------------------------------------------------------------------------------------
def _main(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


CLI_TINY = ["--width", "8", "--steps", "2", "--data", "spirals:n=200", "--batch-size", "16", "--log-every", "1"]


def test_sweep_command_runs_the_grid_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "sweep"
    code, stdout, err = _main(
        ["sweep", "--acts", "sigmoid,relu", "--depths", "2,3", *CLI_TINY, "--no-progress", "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "| act | depth | init | verdict |" in stdout and "4 runs in" in stdout
    assert stdout.count("| completed |") == 4
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(
        ["act-sigmoid_depth-2", "act-sigmoid_depth-3", "act-relu_depth-2", "act-relu_depth-3"]
    )
    config = json.loads((out / "runs" / "act-relu_depth-3" / "config.json").read_text())
    assert (config["act"], config["depth"], config["width"], config["steps"]) == ("relu", 3, 8, 2)


def test_sweep_command_keeps_activation_specs_with_commas_whole(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--acts", "elu:alpha=0.5,leaky_relu:alpha=0.2,relu", "--depth", "2", *CLI_TINY]
    code, _, err = _main([*argv, "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    acts = [row["act"] for row in read_csv(out / "sweep.csv")]
    assert acts == ["elu:alpha=0.5", "leaky_relu:alpha=0.2", "relu"]


def test_sweep_command_grids_over_any_parameter(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--grid", "norm=none,layer", "--grid", "residual=false,true", "--depth", "2", *CLI_TINY]
    code, _, err = _main([*argv, "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    rows = read_csv(out / "sweep.csv")
    assert [(row["norm"], row["residual"]) for row in rows] == [
        ("none", "False"),
        ("none", "True"),
        ("layer", "False"),
        ("layer", "True"),
    ]
    config = json.loads((out / "runs" / "norm-layer_residual-True" / "config.json").read_text())
    assert (config["norm"], config["residual"]) == ("layer", True)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ([], "grid"),
        (["--acts", "relu", "--shard", "2/2"], "shard"),
        (["--acts", "relu", "--shard", "half"], "shard"),
        (["--grid", "depth"], "--grid"),
        (["--grid", "depht=2,3"], "depht"),
        (["--acts", "relu,no_such_activation"], "no_such_activation"),
        (["--depths", "2,x"], "depth"),
        (["no_such_config"], "no_such_config"),
    ],
)
def test_sweep_command_bad_input_ends_with_one_line_and_exit_code_2(extra, named, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = _main(["sweep", *extra, *CLI_TINY, "--no-progress", "--out", str(tmp_path / "s")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "error" in err and named in err, err
    assert "Traceback" not in err and stdout == ""
    assert not (tmp_path / "s").exists()


def test_a_run_interrupted_by_ctrl_c_is_redone_when_the_sweep_resumes(tmp_path, monkeypatch):
    import json

    from tinygrad_act.lab.sweep import grid as sweeps

    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))
    grid = sweeps.Sweep(
        {"act": ["tanh"]},
        {"depth": 2, "width": 8, "steps": 3, "data": "spirals:n=200", "log_every": 1, "batch_size": 16},
    )
    sweeps.run_sweep(grid, tmp_path / "s", progress=False)
    summary_file = next((tmp_path / "s" / "runs").iterdir()) / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary_file.write_text(json.dumps({**summary, "status": "interrupted"}))
    rows = sweeps.run_sweep(grid, tmp_path / "s", progress=False)
    assert json.loads(summary_file.read_text())["status"] == "completed"
    assert [row["status"] for row in rows] == ["completed"]


# ---- scheduling -------------------------------------------------------------------------------------------
@pytest.fixture
def parallel_tasks(monkeypatch):
    """Patch workers.run_all: the runs a parallel sweep hands to its workers, in order, and their environment."""
    from tinygrad_act.lab.sweep import workers

    seen = {"tasks": [], "environment": {}}

    def capture(function, tasks, jobs, environment=None):
        seen["tasks"] += [Path(config.out).name for config in tasks]
        seen["environment"].update(environment or {})
        for index, config in enumerate(tasks):
            yield index, function(config)

    monkeypatch.setattr(workers, "run_all", capture)
    return seen


def test_parallel_runs_start_longest_first_and_the_tables_keep_the_grid_order(tmp_path, monkeypatch, parallel_tasks):
    calls = count_runs(monkeypatch)
    sweeps.run_sweep(tiny({"depth": [2, 4, 3]}), tmp_path, jobs=2, progress=False)
    assert parallel_tasks["tasks"] == calls == ["depth-4", "depth-3", "depth-2"]
    assert [row["depth"] for row in read_csv(tmp_path / "sweep.csv")] == ["2", "4", "3"]
    calls.clear()
    sweeps.run_sweep(tiny({"depth": [2, 4, 3]}), tmp_path / "serial", progress=False)
    assert calls == ["depth-2", "depth-4", "depth-3"]  # one process: the order makes no difference, the grid's


def test_longest_first_orders_by_estimated_cost_and_keeps_the_order_of_ties(tmp_path):
    configs = [config for _, config in tiny({"depth": [2, 4], "seed": [0, 1]}).configs(tmp_path)]
    assert [(c.depth, c.seed) for c in sweeps.longest_first(configs)] == [(4, 0), (4, 1), (2, 0), (2, 1)]
    a, b = configs[0], dataclasses.replace(configs[0], steps=2 * configs[0].steps)
    assert sweeps.cost(b) == 2 * sweeps.cost(a)


def test_prefetch_runs_several_sweeps_in_one_pool_longest_first_and_run_sweep_then_redoes_nothing(
    tmp_path, monkeypatch, parallel_tasks
):
    calls = count_runs(monkeypatch)
    first, second = tiny({"depth": [2]}), tiny({"depth": [3]})
    sweeps.prefetch([(first, tmp_path / "a"), (second, tmp_path / "b")], jobs=2, progress=False)
    assert parallel_tasks["tasks"] == ["depth-3", "depth-2"]
    sweeps.run_sweep(first, tmp_path / "a", jobs=2, progress=False)
    assert len(calls) == 2


def test_parallel_workers_get_one_blas_thread_set_before_they_start(tmp_path, monkeypatch, parallel_tasks):
    sweeps.run_sweep(tiny({"depth": [2, 3]}), tmp_path, jobs=2, progress=False)
    blas = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
    assert parallel_tasks["environment"] == dict.fromkeys(blas, "1")


def test_a_worker_process_sees_the_environment_run_all_sets_not_the_parents(monkeypatch):
    from tinygrad_act.lab.sweep import workers

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    results = dict(workers.run_all(os.getenv, ["OPENBLAS_NUM_THREADS"], 2, {"OPENBLAS_NUM_THREADS": "1"}))
    assert results == {0: "1"} and os.environ["OPENBLAS_NUM_THREADS"] == "7"
