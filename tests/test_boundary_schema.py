"""One validation for every entrance (issue 18, item 3): the command line, make variables, ``run()``'s keywords,
sweep TOML, config.json read back and the checkpoint's settings all pass through one typed schema. Booleans are
booleans, numbers are finite and in range, types are exact; ``run()`` has the real signature the schema declares."""

import argparse
import dataclasses
import inspect
import json

import numpy as np
import pytest
from hostile import TINY, call, command, copy_run, refused, succeeded

import tinygrad_act
from tinygrad_act import cli, makeargs
from tinygrad_act.common.registry import Registry
from tinygrad_act.lab.run import config as run_config
from tinygrad_act.lab.run import experiment
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.sweep import grid as sweeps

BAD_PYTHON_VALUES = [
    ("residual", "false"), ("residual", 1), ("figures", "no"), ("capture", "yes"), ("tensorboard", 1),
    ("jacobian", "0"), ("jacobian", 0), ("depth", 20.0), ("depth", "20"), ("depth", True), ("width", 0),
    ("lr", "0.1"), ("lr", float("nan")), ("lr", True), ("lr", float("inf")), ("momentum", 1), ("clip", -1.0),
    ("seed", -1), ("seed", 1.5), ("dtype", "float16"), ("dtype", np.float32), ("norm", None), ("act", 5),
    ("init", None), ("output_init", 3), ("optimizer", ["sgd"]), ("data", 5), ("out", 5), ("steps", 0),
    ("log_every", "1"), ("eval_every", 0.5), ("sigma_b2", -1.0), ("force", "false"), ("progress", "no"),
    ("batch_size", np.float64(8)), ("hist_every", 0), ("hist_every", "10"),
]  # fmt: skip

pytestmark = pytest.mark.usefixtures("data_cache")


@pytest.mark.parametrize(("name", "value"), BAD_PYTHON_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_PYTHON_VALUES])
def test_run_refuses_a_value_of_the_wrong_type_or_range_naming_the_setting(tmp_path, name, value):
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **{**TINY, "out": str(out), name: value}), name)
    assert not out.exists()


GOOD_PYTHON_VALUES = [
    ("depth", np.int64(2)), ("lr", np.float32(0.5)), ("lr", 1), ("residual", np.bool_(False)), ("jacobian", None),
    ("seed", np.uint8(3)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), GOOD_PYTHON_VALUES, ids=[f"{n}={v!r}" for n, v in GOOD_PYTHON_VALUES])
def test_run_takes_numpy_numbers_and_ints_for_floats_as_plain_python_values(tmp_path, name, value):
    run = succeeded(call(tinygrad_act.run, **{**TINY, name: value, "out": str(tmp_path / "run")}))
    recorded = run.config[name]
    assert recorded == value and type(recorded) in (int, float, bool, type(None))


def test_run_has_the_real_signature_of_every_setting_with_its_default_and_type():
    signature = inspect.signature(tinygrad_act.run)
    default = Config()
    names = [f.name for f in dataclasses.fields(Config)] + [option.name for option in run_config.RUN_OPTIONS]
    assert list(signature.parameters) == names
    for setting in run_config.SETTINGS:
        parameter = signature.parameters[setting.name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        assert parameter.default == getattr(default, setting.name)
        assert parameter.annotation is not inspect.Parameter.empty
    assert signature.parameters["depth"].annotation is int and signature.parameters["residual"].annotation is bool
    doc = tinygrad_act.run.__doc__
    assert all(f"{name} :" in doc or f"{name}:" in doc for name in names)


def test_the_command_line_make_and_run_offer_the_same_settings():
    parser = cli.build_parser()
    experiment_parser = parser._subparsers._group_actions[0].choices["experiment"]
    options = {action.dest for action in experiment_parser._actions if not isinstance(action, argparse._HelpAction)}
    names = {s.name for s in run_config.SETTINGS} | {o.name for o in run_config.RUN_OPTIONS}
    assert names <= options
    variables = set(makeargs.VARIABLES)
    assert {s.make for s in run_config.SETTINGS} <= variables


def test_make_accepts_every_setting_and_passes_on_every_variable_it_accepts():
    settings = {s.make for s in run_config.SETTINGS}
    assert settings <= set(makeargs.TARGETS["experiment"]) and settings <= set(makeargs.TARGETS["sweep"])
    switches = {*makeargs.EXPERIMENT_SWITCHES, *makeargs.SHOW_SWITCHES}
    for target in ("experiment", "sweep"):
        for name in makeargs.TARGETS[target]:  # a variable the check lets through reaches the program
            value = "1" if name in switches else "depth=1,2" if name == "GRID" else "x"
            passed = makeargs.arguments(target, {name: value, makeargs.COMMAND_LINE: name})
            assert len(passed) > 1, (target, name)
    assert makeargs.arguments("compare", {"RUNS": "runs/a", "FORCE": "1"})[-1] == "--force"


def test_command_line_defaults_and_help_come_from_the_schema(capsys):
    parser = cli.build_parser()
    experiment_parser = parser._subparsers._group_actions[0].choices["experiment"]
    for setting in run_config.SETTINGS:
        action = next(a for a in experiment_parser._actions if a.dest == setting.name)
        assert action.default == setting.default
        assert setting.help.split("(")[0].strip()[:20] in (action.help or "")


@pytest.mark.parametrize(
    ("text", "name"),
    [("residual = \"false\"", "residual"), ("depth = 20.5", "depth"), ("depth = \"20\"", "depth"), ("act = 1", "act"),
     ("lr = true", "lr"), ("seed = 1.5", "seed"), ("figures = \"no\"", "figures"), ("steps = \"10\"", "steps")],
)  # fmt: skip
def test_sweep_toml_values_are_checked_exactly_as_run_keywords_are(tmp_path, text, name):
    path = tmp_path / "mine.toml"
    path.write_text(f"[grid]\nwidth = [4]\n[fixed]\n{text}\n")
    refused(command("sweep", path, "--out", tmp_path / "sweep", "--no-progress"), name)
    assert not (tmp_path / "sweep").exists()


def test_grid_values_from_the_command_line_are_text_parsed_by_the_schema():
    assert sweeps.Sweep.from_text({"residual": "false,true", "depth": "2,3"}).grid == {
        "residual": [False, True],
        "depth": [2, 3],
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("depth", "20"), ("residual", "false"), ("act", 5), ("lr", "x"), ("steps", -1), ("jacobian", "yes")],
)
def test_a_config_json_of_the_wrong_types_read_back_is_one_line_naming_the_file_and_field(tmp_path, field, value):
    path = tmp_path / "run"
    succeeded(call(tinygrad_act.run, **TINY, out=str(path)))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, field: value}))
    for outcome in (command("show", path), command("experiment", "--resume", path), command("compare", path)):
        refused(outcome, "config.json", field)


def test_a_config_json_that_is_not_an_object_is_one_line(tmp_path):
    path = tmp_path / "run"
    succeeded(call(tinygrad_act.run, **TINY, out=str(path)))
    (path / "config.json").write_text("[1, 2]")
    refused(command("show", path), "config.json")


def test_python_errors_speak_python_and_the_command_line_speaks_options(tmp_path):
    line = refused(call(tinygrad_act.run, **TINY, residual="false", out=str(tmp_path / "a")), "residual")
    assert "--" not in line
    assert "--residual" not in refused(command("experiment", "--depth", "0"), "depth")


def test_config_validate_resolves_every_name_once_and_build_resolves_none(tmp_path, monkeypatch):
    config = Config(**{k: v for k, v in TINY.items() if k != "progress"}, out=str(tmp_path / "run"))
    resolved = config.resolve()
    assert resolved.activation.name == "sigmoid" and resolved.init.name == "xavier_normal"
    assert resolved.output_init.name == "xavier_normal" and resolved.shape.n_train > 0

    def no_resolving(*args, **kwargs):
        raise AssertionError("build resolved a name again")

    dataset = tinygrad_act.lab.data.load(config.data)
    monkeypatch.setattr(Registry, "resolve", no_resolving)
    model, *_ = experiment.build(config, dataset, resolved)
    assert model.activation is resolved.activation


def test_an_existing_run_copied_reads_back_through_the_schema(tmp_path):
    path = tmp_path / "run"
    succeeded(call(tinygrad_act.run, **TINY, out=str(path)))
    copy = copy_run(path, tmp_path / "copy")
    assert Config.read(copy).depth == TINY["depth"]
