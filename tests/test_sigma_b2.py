"""Random initial biases, N(0, sigma_b2) (--sigma-b2 / SIGMA_B2): the sigma_b^2 of mean-field theory, drawn from
their own stream so the weights stay those of the same seed; and the computed claim checks of the findings."""

import json

import numpy as np
import pytest

from tinygrad_act import cli, makeargs
from tinygrad_act.common.errors import UsageError
from tinygrad_act.findings.common import Check, Part
from tinygrad_act.lab.run.config import Config
from tinygrad_act.nn.modules import MLP


def test_random_biases_have_the_variance_asked_and_leave_the_weights_of_the_seed_unchanged():
    plain = MLP(5, [256] * 4, 3, activation="tanh", seed=7)
    biased = MLP(5, [256] * 4, 3, activation="tanh", seed=7, sigma_b2=0.05)
    for a, b in zip(plain.layers, biased.layers):
        assert np.array_equal(a.weight.data, b.weight.data)
        assert np.all(b.bias.data != 0)
    hidden = np.concatenate([layer.bias.data for layer in biased.layers[:-1]])
    assert abs(hidden.var() - 0.05) < 0.01  # 1024 draws: the sample variance is within ~9% (4 sigma)
    assert not any(layer.bias.data.any() for layer in plain.layers)


def test_sigma_b2_is_checked_named_in_the_run_name_and_reaches_config_json_and_theory(tmp_path, capsys):
    with pytest.raises(UsageError, match="sigma_b2"):
        Config(sigma_b2=-1).validate()
    assert "sb0.05" in Config(sigma_b2=0.05).default_name()
    assert "sb" not in Config().default_name()
    assert makeargs.arguments("experiment", {"SIGMA_B2": "0.05"}) == ["experiment", "--sigma-b2", "0.05"]
    out = tmp_path / "r"
    tiny = ["--depth", "3", "--width", "8", "--steps", "2", "--data", "spirals:n=200", "--act", "tanh"]
    command = ["experiment", *tiny, "--no-progress", "--sigma-b2", "0.05", "--out", str(out)]
    assert cli.main([*command, "--no-figures"]) == 0  # in-process (tests/test_cli.py checks the process's exit codes)
    assert json.loads((out / "config.json").read_text())["sigma_b2"] == 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["theory"]["sigma_b2"] == 0.05
    assert "sigma_b^2=0.05" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:  # argparse refuses it
        cli.main([*command[:-2], "--sigma-b2", "-1", "--out", str(tmp_path / "bad")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "sigma-b2" in err and "Traceback" not in err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("held", "status"), [((True, True), "holds"), ((True, False), "holds partly"), ((False, False), "does not hold")]
)
def test_a_check_adds_its_parts_up_to_a_status_and_prints_every_part_with_its_numbers(held, status):
    check = Check([Part(f"part {i}", ok, f"r = {i}") for i, ok in enumerate(held)])
    assert check.status == status
    text = check.markdown()
    assert text.startswith(f"**Check, computed from the runs: {status}.**")
    for i, ok in enumerate(held):
        assert f"- part {i}: **{'holds' if ok else 'does not hold'}** (r = {i})" in text
