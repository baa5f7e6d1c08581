"""The figures setting: True draws every figure a run can draw, False none, a list of names only those (the figure
files' stems, listed once in lab/show/run_figures.py). Every entrance takes it through the one schema (run()'s
keyword, --figures a,b, FIGURES=a,b, sweep TOML, config.json read back); a name no run draws, or one this run
cannot draw, is refused in one line naming it and the valid names, before anything is written; a run draws,
writes, lists and inlines exactly the figures it was asked for, resumed or not."""

import json
import re

import pytest
from hostile import TINY, TINY_ARGS, call, command, copy_run, experiment, interrupted_run, refused, succeeded

import tinygrad_act
from tinygrad_act import cli, makeargs
from tinygrad_act.common import validate
from tinygrad_act.lab.run import experiment as lifecycle
from tinygrad_act.lab.run.config import SETTINGS
from tinygrad_act.lab.show import run_figures
from tinygrad_act.lab.sweep import grid as sweeps

pytestmark = pytest.mark.usefixtures("data_cache")
FIGURES = next(s for s in SETTINGS if s.name == "figures")
# TINY's sizes for a recurrent run (depth, an MLP's setting, at its default)
RNN = {"model": "rnn", "cell": "gru", "data": "adding:n_train=40,n_test=16", "seq_len": 4, "depth": 20}


def _drawn(path) -> set[str]:
    return {p.name for p in (path / "figures").glob("*")}


def _inlined(path) -> list[str]:
    return re.findall(r"<figcaption>figures/([^<]+)</figcaption>", (path / "report.html").read_text())


# ---- the value at each door -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], True), (["--figures"], True), (["--no-figures"], False), (["--figures", "0"], False),
     (["--figures", "YES"], True), (["--figures", "snr, training"], ["snr", "training"]),
     (["--figures", "snr,snr"], ["snr"])],
)  # fmt: skip
def test_the_command_line_reads_all_none_or_the_names_separated_by_commas(argv, expected):
    assert cli.build_parser().parse_args(["experiment", *argv]).figures == expected


def test_make_passes_the_names_and_the_switch_words_to_the_option():
    assert makeargs.arguments("experiment", {"FIGURES": "gradient_flow,snr"})[-2:] == ["--figures", "gradient_flow,snr"]
    assert makeargs.arguments("sweep", {"CONFIG": "x", "FIGURES": "no"})[-2:] == ["--figures", "no"]


def test_python_json_and_toml_give_true_false_or_a_list_and_the_signature_says_so():
    assert FIGURES.check(True) is True and FIGURES.check(False) is False
    assert FIGURES.check(["saturation", "gradient_flow", "saturation"]) == ["saturation", "gradient_flow"]
    assert FIGURES.annotation == bool | list[str] and "figures : bool or list of str" in tinygrad_act.run.__doc__
    with validate.entrance("make"):
        assert validate.spell("figures", ["snr", "training"]) == "FIGURES=snr,training"


@pytest.mark.parametrize(("value", "says"), [("snr", "a list of names"), ([], "figures=False"), ([1], "a list")])
def test_a_value_that_is_no_list_of_names_is_refused_by_the_schema(tmp_path, value, says):
    refused(call(tinygrad_act.run, **{**TINY, "figures": value, "out": str(tmp_path / "run")}), "figures", says)
    assert not (tmp_path / "run").exists()


# ---- refused in one line, nothing written ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "names"),
    [({"figures": ["gradient_flw"]}, ("'gradient_flw'", "did you mean gradient_flow?", "snr, training")),
     ({"figures": ["training", "wobble"]}, ("'wobble'", "the figures of an MLP run: gradient_flow")),
     ({"figures": ["gates"]}, ("'gates'", "not one that an MLP run draws", "gradient_flow")),
     ({**RNN, "figures": ["gradient_flow"]}, ("'gradient_flow'", "recurrent run of cell gru", "gradient_time")),
     ({**RNN, "cell": "tanh", "figures": ["gates"]}, ("'gates'", "cell tanh", "saturation_time"))],
)  # fmt: skip
def test_a_figure_no_run_draws_or_this_run_cannot_draw_is_refused_before_anything_is_written(tmp_path, settings,
                                                                                            names):  # fmt: skip
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **{**TINY, **settings, "out": str(out)}), *names)
    assert not out.exists()


def test_the_command_line_refuses_an_unknown_figure_with_exit_2_and_the_nearest_name(tmp_path):
    outcome = experiment(tmp_path / "run", "--figures", "training,histogram")
    refused(outcome, "'histogram'", "did you mean histograms?")
    assert outcome.code == 2 and not (tmp_path / "run").exists()


def test_a_sweep_toml_takes_a_list_of_names_and_refuses_an_unknown_one(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[grid]\nwidth = [4, 8]\n[fixed]\nfigures = ["training"]\n')
    assert [config.figures for _, config in sweeps.load_config(str(path)).configs(tmp_path)] == [["training"]] * 2
    path.write_text('[grid]\nwidth = [4]\n[fixed]\nfigures = ["trainig"]\n')
    refused(command("sweep", path, "--out", tmp_path / "sweep", "--no-progress"), "'trainig'", "training")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("value", "names"), [(["bogus"], ("unknown figure 'bogus'", "gradient_flow")), ("snr", ("config.json", "figures"))]
)
def test_a_config_json_holding_a_bad_figures_value_is_refused_on_resume_and_the_run_kept(tmp_path, interrupted,
                                                                                       value, names):  # fmt: skip
    run = copy_run(interrupted, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "figures": value}))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    refused(command("experiment", "--resume", run), *names)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# ---- a run draws exactly what it was asked for -----------------------------------------------------------------
def test_a_run_asked_for_two_figures_writes_lists_and_inlines_exactly_those(tmp_path):
    run = succeeded(call(tinygrad_act.run, **{**TINY, "figures": ["saturation", "gradient_flow"]},
                         out=str(tmp_path / "run")))  # fmt: skip
    assert _drawn(run.dir) == {"gradient_flow.png", "saturation.png"}
    assert sorted(run.figures) == ["gradient_flow", "saturation"] and sorted(run.draw()) == sorted(run.figures)
    # the drawing processes deal shares of the named figures alone: the second of two draws the second named
    assert [name for _, name in run_figures.drawings(run.dir, run.records, run.summary, (1, 2))] == ["saturation.png"]
    assert sorted(_inlined(run.dir)) == ["gradient_flow.png", "saturation.png"]
    assert run.config["figures"] == ["saturation", "gradient_flow"]  # config.json: what was asked
    assert not (run.dir / "histograms.npz").exists()  # the data of a figure not asked for is not kept
    shown = command("show", run.dir)
    assert shown.kind == "ok" and "figures/" in shown.stdout


def test_the_command_lines_drawing_processes_render_exactly_the_named_figures_in_order(tmp_path):
    out = tmp_path / "run"
    outcome = command("experiment", *TINY_ARGS, "--figures", "training,snr,gradient_flow", "--out", out)
    assert outcome.kind == "ok", outcome.message
    summary = json.loads((out / "summary.json").read_text())
    assert summary["figures"] == ["figures/gradient_flow.png", "figures/snr.png", "figures/training.png"]
    assert _drawn(out) == {"gradient_flow.png", "snr.png", "training.png"} and len(_inlined(out)) == 3


def test_a_resumed_run_draws_the_figures_its_config_json_names(tmp_path):
    out = interrupted_run(tmp_path / "run", figures=["training"])
    refused(command("experiment", "--resume", out, "--figures", "snr"), "--figures", "cannot change a resumed run")
    summary = succeeded(call(lifecycle.resume, out, progress=False))
    assert summary["resumed"]["times"] == 1 and summary["figures"] == ["figures/training.png"]
    assert _drawn(out) == {"training.png"} and _inlined(out) == ["training.png"]


def test_a_recurrent_run_draws_exactly_its_named_figures_through_time(tmp_path):
    run = succeeded(call(tinygrad_act.run, **{**TINY, **RNN, "figures": ["gates", "gradient_time"]},
                         out=str(tmp_path / "run")))  # fmt: skip
    assert _drawn(run.dir) == {"gates.png", "gradient_time.png"} and sorted(run.figures) == ["gates", "gradient_time"]


def test_every_figure_name_is_drawable_by_some_run_and_the_list_command_names_them(capsys):
    assert set(run_figures.every_name()) == {*run_figures.names("mlp"), *run_figures.names("rnn")}
    assert set(run_figures.names("rnn", "lstm")) ^ set(run_figures.names("rnn", "tanh")) == {"gates", "saturation_time"}
    assert cli.main(["list"]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("figures"))
    assert all(name in listed for name in run_figures.every_name())
