"""The findings through time read their committed full grids: the learning table and the learning parts of the
check appear, computed from the committed rows (experiments/<name>_full.json), next to the report's own runs."""

import json

import pytest

from tinygrad_act import findings
from tinygrad_act.findings.through_time import runs
from tinygrad_act.lab.sweep import grid as sweeps

RNN = {"model": "rnn", "data": "adding:n_train=32,n_test=8", "width": 8, "steps": 2, "batch_size": 8, "log_every": 1}
TINY = {
    "vanishing_time": ({"cell": ["tanh", "lstm:forget_bias=1", "gru"], "seq_len": [4, 6], "seed": [0]}, RNN),
    "irnn": ({"cell": ["relu", "tanh"], "init": ["identity", "auto"], "seq_len": [4], "seed": [0]}, RNN),
}
CHANCE = 1 / 6


def _row(cell, seq_len, fraction, ratio_final, **extra):
    return {"cell": cell, "seq_len": seq_len, "status": "completed", "ratio_init": 1e-20, "ratio_final": ratio_final,
            "test_loss": fraction * CHANCE, "test_accuracy": 0.5, "chance_loss": CHANCE, "chance_accuracy": 0.078,
            "steps_done": 100, **extra}  # fmt: skip


COMMITTED = {
    "vanishing_time": [
        _row("tanh", 50, 1.02, 1e-9),
        _row("lstm:forget_bias=1", 50, 0.02, 0.3),
        _row("gru", 50, 0.01, 0.8),
        _row("tanh", 100, 1.01, 1e-12),
        _row("lstm:forget_bias=1", 100, 0.05, 0.2),
        _row("gru", 100, 0.2, 1e-5),
    ],
    "irnn": [
        _row("relu", 50, 0.05, 0.5, init="identity"),
        _row("relu", 50, 0.05, 0.9, init="auto"),
        _row("tanh", 50, 0.9, 1e-9, init="auto"),
    ],
}


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """One runs directory for the module: the tiny sweeps run once, every later report reuses their runs."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(autouse=True)
def tiny(monkeypatch, runs_root):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(runs_root / "cache"))
    monkeypatch.setattr(sweeps, "load_config", lambda name: sweeps.Sweep(*TINY[name], name, f"tiny {name}"))


def _section(name, out, runs_root, committed: bool) -> str:
    """The finding's README section, generated into ``out`` (with its committed full grid when ``committed``)."""
    if committed:
        out.mkdir(parents=True, exist_ok=True)
        made = {"made_by": "test", "sweep": f"{name}_full", "fixed": {"steps": 100, "optimizer": "adam", "lr": 0.003},
                "rows": COMMITTED[name]}  # fmt: skip
        (out / f"{name}_full.json").write_text(json.dumps(made))
    readme = findings.generate([name], runs_root=runs_root, out_dir=out, jobs=1, progress=False).read_text()
    return readme.split(f"<!-- finding:{name} -->", 1)[1].split(f"<!-- /finding:{name} -->", 1)[0]


def test_without_a_committed_full_grid_the_section_says_how_to_make_it_and_checks_the_runs_at_init(tmp_path, runs_root):
    text = _section("vanishing_time", tmp_path / "out", runs_root, committed=False)
    assert "`make report ONLY=vanishing_time FULL=1` runs it" in text
    assert "learn the adding problem (test MSE" not in text


@pytest.mark.usefixtures("no_sweep_figures")  # the same runs' sweep figures: the test above draws them
def test_the_learning_parts_are_computed_from_the_committed_rows(tmp_path, runs_root):
    text = _section("vanishing_time", tmp_path / "out", runs_root, committed=True)
    checks = text.split("**Source.**")[0]
    # the GRU at T = 100 stayed at 0.2 of chance: the gated cells do not all learn, the tanh RNN stays at chance
    assert ("the LSTM and the GRU learn the adding problem (test MSE below 0.1 of chance) at every T: **does not "
            "hold**") in checks  # fmt: skip
    assert "GRU T = 100: 0.20" in checks
    assert "the tanh RNN does not: its test MSE stays above 0.5 of chance at every T: **holds**" in checks
    assert "T = 100: MSE / chance" in text and "LSTM (forget_bias=1)" in text  # the learning table
    assert "100 steps of adam at lr 0.003" in text


def test_the_irnn_learning_part_reads_its_committed_rows(tmp_path, runs_root):
    text = _section("irnn", tmp_path / "out", runs_root, committed=True).split("**Source.**")[0]
    assert ("the IRNN learns the adding problem (test MSE below 0.1 of chance) at every T of the full grid: "
            "**holds**") in text  # fmt: skip
    # the default-initialized ReLU RNN learned (0.05 of chance): the usual initialization does learn here
    assert ("the ReLU and tanh RNNs with PyTorch's default initialization do not (test MSE above 0.5 of chance): "
            "**does not hold** (ReLU RNN T = 50: 0.05, tanh RNN T = 50: 0.90") in text  # fmt: skip


def test_committed_rows_carry_what_the_learning_parts_read(tmp_path):
    row = COMMITTED["vanishing_time"][1]
    assert runs.mse_fraction(row) == pytest.approx(0.02)
    assert runs.decades(0.1, runs.mse_fraction(row)) == pytest.approx(0.69897, rel=1e-4)
    assert runs.cell_label("lstm:forget_bias=1") == "LSTM (forget_bias=1)" and runs.cell_name("gru") == "gru"
