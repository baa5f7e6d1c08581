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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished TINY run, made once for the module's tests that read it back; each copies it first."""
    path = tmp_path_factory.mktemp("made") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYGRAD_ACT_CACHE", str(path.parent / "cache"))  # data_cache, for a module's fixture
        succeeded(call(tinygrad_act.run, **TINY, out=str(path)))
    return path


@pytest.mark.parametrize(
    ("field", "value"),
    [("depth", "20"), ("residual", "false"), ("act", 5), ("lr", "x"), ("steps", -1), ("jacobian", "yes")],
)
def test_a_config_json_of_the_wrong_types_read_back_is_one_line_naming_the_file_and_field(
    tmp_path, tiny_run, field, value
):
    path = copy_run(tiny_run, tmp_path / "run")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, field: value}))
    for outcome in (command("show", path), command("experiment", "--resume", path), command("compare", path)):
        refused(outcome, "config.json", field)


def test_a_config_json_that_is_not_an_object_is_one_line(tmp_path, tiny_run):
    path = copy_run(tiny_run, tmp_path / "run")
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


def test_an_existing_run_copied_reads_back_through_the_schema(tmp_path, tiny_run):
    copy = copy_run(tiny_run, tmp_path / "copy")
    assert Config.read(copy).depth == TINY["depth"]


# ---- a recurrent run's settings (model, cell, seq_len, truncate): the same schema at every entrance ----------------
TINY_RNN = {**{k: v for k, v in TINY.items() if k != "depth"}, "model": "rnn", "cell": "gru", "seq_len": 5,
            "data": "adding:n_train=40,n_test=16"}  # fmt: skip
TINY_RNN_ARGS = ["--model", "rnn", "--cell", "gru", "--seq-len", "5", "--data", "adding:n_train=40,n_test=16",
                 "--width", "4", "--steps", "4", "--batch-size", "8", "--no-figures", "--no-progress"]  # fmt: skip
BAD_RECURRENT_PYTHON = [
    ("model", "rnnn"), ("model", None), ("cell", "lstmm"), ("cell", 4), ("cell", "gru:forget_bias=1"),
    ("cell", "lstm:forget_bias=nan"), ("cell", "lstm:forget_bias=1e9"), ("cell", "lstm:forget_bias"),
    ("seq_len", 0), ("seq_len", -3), ("seq_len", 2.5), ("seq_len", "5"), ("seq_len", True), ("truncate", -1),
    ("truncate", 1.5), ("truncate", "4"), ("truncate", None), ("truncate", False),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), BAD_RECURRENT_PYTHON, ids=[f"{n}={v!r}" for n, v in BAD_RECURRENT_PYTHON])
def test_run_refuses_a_bad_recurrent_setting_naming_it(tmp_path, name, value):
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **{**TINY_RNN, "out": str(out), name: value}), name.split(":")[0])
    assert not out.exists()


BAD_RECURRENT_ARGS = [
    (["--seq-len", "-3"], "seq_len"), (["--seq-len", "1e3"], "seq_len"), (["--seq-len", "nan"], "seq_len"),
    (["--cell", "lstmm"], "lstmm"), (["--cell", "lstm:forget_bias=inf"], "forget_bias"), (["--model", "RNN"], "RNN"),
    (["--truncate", "-1"], "truncate"), (["--truncate", "two"], "truncate"), (["--truncate", "0x4"], "truncate"),
    (["--cell", "lstm:forget_bias=1,forget_bias=2"], "forget_bias"), (["--cell", ":"], "cell"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "name"), BAD_RECURRENT_ARGS, ids=[" ".join(a) for a, _ in BAD_RECURRENT_ARGS])
def test_the_command_line_refuses_a_bad_recurrent_setting_in_one_line(tmp_path, args, name):
    out = tmp_path / "run"
    refused(command("experiment", *TINY_RNN_ARGS, *args, "--out", out), name)
    assert not out.exists()


@pytest.mark.parametrize(
    ("variables", "name"),
    [({"MODEL": "rnn", "SEQ_LEN": "-3"}, "seq_len"), ({"MODEL": "rnn", "CELL": "lstmm"}, "lstmm"),
     ({"MODEL": "rnn", "TRUNCATE": "-2"}, "truncate"), ({"MODEL": "rnn", "TRUNCATE": "yes"}, "truncate"),
     ({"MODEL": "rnm"}, "rnm"), ({"SEQ_LEN": "5", "DATA": "spirals"}, "seq_len"), ({"TRUNCATE": "3"}, "TRUNCATE=3"),
     ({"CELL": "lstm"}, "CELL=lstm"), ({"MODEL": "rnn", "SEQ_LEN": "5", "DEPTH": "3"}, "DEPTH=3")],
)  # fmt: skip
def test_make_refuses_a_bad_recurrent_setting_in_one_line_naming_it(tmp_path, monkeypatch, capsys, variables, name):
    given = {"DATA": "adding:n_train=40,n_test=16", "STEPS": "2", "OUT": str(tmp_path / "run"), **variables}
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(makeargs.COMMAND_LINE, " ".join(given))
    try:
        code = makeargs.main(["experiment"])
    except SystemExit as stop:  # argparse's refusal of an option's value
        code = stop.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], lines
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "name"),
    [("model = \"rnnn\"", "model"), ("cell = \"lstmm\"", "lstmm"), ("seq_len = 2.5", "seq_len"),
     ("seq_len = -3", "seq_len"), ("truncate = \"4\"", "truncate"), ("truncate = -1", "truncate")],
)  # fmt: skip
def test_sweep_toml_recurrent_values_are_checked_by_the_schema(tmp_path, text, name):
    path = tmp_path / "mine.toml"
    model = "" if text.startswith("model") else 'model = "rnn"\n'
    path.write_text(f'[grid]\nwidth = [4]\n[fixed]\n{model}data = "adding:n_train=40,n_test=16"\n{text}\n')
    refused(command("sweep", path, "--out", tmp_path / "sweep", "--no-progress"), name)
    assert not (tmp_path / "sweep").exists()


def succeeded_command(*argv) -> str:
    outcome = command(*argv)
    assert outcome.kind == "ok", outcome.message
    return outcome.stdout


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("rnn") / "run"
    succeeded(call(tinygrad_act.run, **TINY_RNN, truncate=2, out=str(path), timeout=60))
    return path


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "rnnn"), ("cell", 5), ("cell", "lstmm"), ("seq_len", "5"), ("seq_len", 0), ("truncate", -1),
     ("truncate", 2.0)],
)  # fmt: skip
def test_a_recurrent_config_json_of_the_wrong_types_read_back_is_one_line(tmp_path, recurrent_run, field, value):
    path = copy_run(recurrent_run, tmp_path / "copy")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, field: value}))
    for outcome in (command("show", path), command("experiment", "--resume", path), command("compare", path)):
        refused(outcome, "config.json", field)


@pytest.mark.parametrize(
    ("key", "value", "name"),
    [("task", "ranking", "task"), ("seq_len", -1, "seq_len"), ("readout_steps", 0, "readout_steps"),
     ("classes", 0, "classes")],
)  # fmt: skip
def test_a_recurrent_runs_recorded_data_read_back_is_checked(tmp_path, recurrent_run, key, value, name):
    path = copy_run(recurrent_run, tmp_path / "copy")
    config = json.loads((path / "config.json").read_text())
    config["dataset"] = {**config["dataset"], key: value, **({"task": "classification"} if key == "classes" else {})}
    (path / "config.json").write_text(json.dumps(config))
    refused(call(lambda: tinygrad_act.Run.load(path).model), "config.json", name)


@pytest.mark.parametrize(("field", "value"), [("steps", "x"), ("ratio_init", "small"), ("cell", 3), ("verdict", "ok")])
def test_a_recurrent_summarys_through_time_of_the_wrong_type_is_one_line(tmp_path, recurrent_run, field, value):
    path = copy_run(recurrent_run, tmp_path / "copy")
    summary = json.loads((path / "summary.json").read_text())
    summary["through_time"][field] = value
    (path / "summary.json").write_text(json.dumps(summary))
    refused(command("show", path), "summary.json", "through_time", field)


def test_a_recurrent_run_claims_its_directory_and_records_its_data_and_truncation(recurrent_run):
    manifest = json.loads((recurrent_run / ".tinygrad_act.json").read_text())
    assert manifest["kind"] == "run" and "config.json" in manifest["files"]
    config = Config.read(recurrent_run)
    assert (config.model, config.cell, config.seq_len, config.truncate) == ("rnn", "gru", 5, 2)
    recorded = json.loads((recurrent_run / "config.json").read_text())["dataset"]
    assert len(recorded["sha256"]) == 64 and recorded["task"] == "regression" and recorded["seq_len"] == 5
    shown = " ".join(succeeded_command("show", recurrent_run).split())  # the report wraps its lines
    assert "truncated BPTT cuts the graph every 2 steps: no gradient crosses a cut" in shown
