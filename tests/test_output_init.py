"""The output layer's initializer is a choice (--output-init / OUTPUT_INIT), recorded in config.json; the default,
xavier_normal, keeps every number as before."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinygrad_act import cli, makeargs
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.run.config import Config
from tinygrad_act.nn import MLP
from tinygrad_act.nn import init as initializers


def test_default_output_init_is_xavier_normal_drawn_as_before():
    """Today's numbers: the output layer drawn by xavier_normal right after the hidden layers, from one stream."""
    model = MLP(5, [7, 7], 3, activation="relu", init="he_normal", seed=4)
    rng = np.random.default_rng(4)
    for fan_in, fan_out in ((5, 7), (7, 7)):
        initializers.get("he_normal")(fan_in, fan_out, rng)
    expected = initializers.get("xavier_normal")(7, 3, rng)
    np.testing.assert_array_equal(model.output.weight.data, expected)
    assert Config().output_init == "xavier_normal"


def test_output_init_same_uses_the_hidden_initializer_and_a_name_picks_any():
    same = MLP(5, [64, 64], 3, activation="relu", init="he_normal", seed=0, output_init="same")
    small = MLP(5, [64, 64], 3, activation="relu", init="he_normal", seed=0, output_init="normal:std=0.001")
    default = MLP(5, [64, 64], 3, activation="relu", init="he_normal", seed=0)
    # he_normal: Var = 2 / 64; xavier_normal: Var = 2 / (64 + 3)
    assert same.output.weight.data.std() > default.output.weight.data.std() * 1.0
    assert np.isclose(same.output.weight.data.var(), 2 / 64, rtol=0.3)
    assert small.output.weight.data.std() < 0.002


def test_a_bad_output_init_is_refused_naming_it():
    with pytest.raises(UsageError, match="unknown initializer 'nope'"):
        Config(output_init="nope").validate()


def test_output_init_option_is_in_help_with_its_default_and_recorded_in_config_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # the help as a pipe gets it, whatever the terminal running the tests
    with pytest.raises(SystemExit) as exit:  # in-process: the option's text and its path into the run
        cli.main(["experiment", "--help"])
    assert exit.value.code == 0
    help_text = capsys.readouterr().out
    described = " ".join(help_text.split("--output-init OUTPUT_INIT\n")[-1].split("\n  --")[0].split())
    assert "output layer's initializer" in described and "(default xavier_normal)" in described
    tiny = ["--depth", "3", "--width", "8", "--steps", "5", "--data", "spirals:n=200", "--no-progress", "--no-figures"]
    assert cli.main(["experiment", *tiny, "--output-init", "same", "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["output_init"] == "same"
    assert makeargs.arguments("experiment", {"OUTPUT_INIT": "same"}) == ["experiment", "--output-init", "same"]
