"""`compare`: runs (and sweeps, and patterns) side by side on one fixed log scale, theory dashed, a table;
anything that is not a run is one line and exit 2."""

import shutil
import subprocess
import sys
from pathlib import Path

import hostile
import numpy as np
import pytest

from tinygrad_act import cli, makeargs
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.run.experiment import run
from tinygrad_act.lab.show import compare, plots

TINY = dict(depth=3, width=8, steps=3, data="spirals:n=200", figures=False)
PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny finished runs: sigmoid (Xavier) and ReLU (He), and a third of another depth."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, options in (
        ("run-sig", dict(act="sigmoid")),
        ("run-relu", dict(act="relu", init="he_normal")),
        ("deep", dict(act="tanh", depth=5)),
    ):
        run(Config(**{**TINY, **options, "out": str(root / name)}), progress=False)
        made[name] = root / name
    return root, made


def test_compare_draws_one_png_and_prints_each_runs_act_init_depth_r_theory_and_verdict(runs, tmp_path, capsys):
    root, made = runs
    out = tmp_path / "cmp.png"
    assert cli.main(["compare", str(made["run-sig"]), str(made["run-relu"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_bytes().startswith(PNG) and f"wrote {out}" in printed
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in printed.splitlines()
            if line.startswith("| run-")}  # fmt: skip
    assert rows["run-sig"][:3] == ["sigmoid", "xavier_normal", "3"]
    assert rows["run-relu"][:3] == ["relu", "he_normal", "3"]
    for cells in rows.values():  # r, theory r, verdict and the test accuracy are filled in
        assert all(cell and cell != "-" for cell in cells) and cells[5] in ("healthy", "vanishing", "exploding")


def test_a_sweep_directory_gives_its_complete_runs_and_patterns_are_expanded_without_a_shell(runs, tmp_path):
    root, made = runs
    sweep = tmp_path / "sweep"
    for name in ("run-sig", "run-relu"):
        shutil.copytree(made[name], sweep / "runs" / name)
    (sweep / "runs" / "unfinished").mkdir()  # no summary.json: not a complete run, left out
    assert [r.path.name for r in compare.find_runs([str(sweep)])] == ["run-relu", "run-sig"]
    assert [r.path.name for r in compare.find_runs([str(root / "run-*")])] == ["run-relu", "run-sig"]
    # the same run named twice (a directory and a pattern) is drawn once
    assert len(compare.find_runs([str(made["run-sig"]), str(root / "run-s*")])) == 1


@pytest.mark.parametrize("bad", ["not-a-run", "empty-dir", "no-such-*"])
def test_a_path_that_is_not_a_run_is_one_line_naming_it_and_exit_2(runs, tmp_path, bad):
    _, made = runs
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "not-a-run" / "summary.json").write_text("{}")  # no config.json, no metrics.jsonl
    (tmp_path / "empty-dir").mkdir()
    out = tmp_path / "cmp.png"
    result = hostile.command("compare", made["run-sig"], tmp_path / bad, "--out", out)  # in-process: a traceback fails
    assert result.code == 2 and not out.exists()
    hostile.refused(result, bad)  # one line naming it


def test_the_theory_is_anchored_at_the_last_hidden_layers_measured_delta_and_falls_by_the_predicted_r(runs):
    _, made = runs
    sigmoid = compare.load_run(made["run-sig"])
    predicted = compare.predicted_profile(sigmoid)
    theory = sigmoid.summary["theory"]
    assert len(predicted) == sigmoid.depth
    assert predicted[-1] == sigmoid.first["layers"][-2]["delta_norm"]
    assert predicted[0] / predicted[-1] == pytest.approx(theory["per_layer_factor"] ** (sigmoid.depth - 1))
    assert predicted[0] / predicted[-1] == pytest.approx(theory["ratio"], rel=1e-6)


def test_the_legend_says_diverged_for_a_run_that_diverged_and_else_its_verdict_and_r(runs):
    _, made = runs
    relu = compare.load_run(made["run-relu"])
    assert f"{relu.verdict}, $r$ = " in compare._label(relu, "run-relu")
    relu.summary = {**relu.summary, "status": "diverged"}
    assert compare._label(relu, "run-relu").endswith(": diverged")


def test_a_gradient_that_underflowed_to_zero_is_drawn_as_a_marker_at_the_bottom_edge_not_dropped():
    fig, ax = plots.figure()
    plots.draw_profile(ax, np.arange(1, 5), np.array([0.0, 1e-30, 1e-3, 1.0]), "#000000")  # compare draws with it
    markers = [line for line in ax.get_lines() if line.get_marker() == plots.UNDERFLOW_MARKER["marker"]]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [1, 2]
    assert set(markers[0].get_ydata()) == {plots.NORM_RANGE[0]}


def test_runs_of_different_depths_share_the_fixed_norm_range(runs, tmp_path):
    _, made = runs
    out = tmp_path / "mixed.png"
    table, path = compare.compare([str(made["run-sig"]), str(made["deep"])], out)
    assert path == out and out.read_bytes().startswith(PNG)
    assert "| deep " in table and "| 5 " in table


def test_make_compare_passes_each_word_of_runs_and_out_and_needs_runs():
    arguments = makeargs.arguments("compare", {"RUNS": "runs/a  runs/b* $(x)", "OUT": "c d.png"})
    assert arguments == ["compare", "runs/a", "runs/b*", "$(x)", "--out", "c d.png"]
    with pytest.raises(UsageError, match="RUNS"):
        makeargs.arguments("compare", {"OUT": "x.png"})


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_compare_expands_a_pattern_in_runs_in_python_and_writes_out(runs, tmp_path):
    root, _ = runs
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: no install
    out = tmp_path / "make compare.png"
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), f"PY={sys.executable}", f"STAMP={stamp}", "compare",
         f"RUNS={root / 'run-*'} {root / 'deep'}", f"OUT={out}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG) and "| run-sig" in result.stdout and "| deep" in result.stdout
