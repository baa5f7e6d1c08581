"""`python -m tinygrad_act` end to end on tiny configurations: success, bad input, overwrite protection,
divergence, interrupts, list and show. In-process through cli.main where possible, in a subprocess for the module's
entry point, a real interpreter's exit code and signals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tinygrad_act import activations, init, optim
from tinygrad_act.cli import main
from tinygrad_act.lab import data
from tinygrad_act.lab.data import tasks

TINY = [
    "experiment",
    "--depth",
    "3",
    "--width",
    "8",
    "--act",
    "tanh",
    "--steps",
    "5",
    "--batch-size",
    "16",
    "--data",
    "spirals:n=200",
    "--log-every",
    "1",
    "--no-progress",
    "--no-figures",
]


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


def _main(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse exits on bad arguments and --help
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _subprocess(args, tmp_path, **kwargs):
    env = {**os.environ, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_act", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _summary(path):
    return json.loads((path / "summary.json").read_text())


# ---- success ---------------------------------------------------------------------------------------------------
def test_experiment_prints_the_layer_table_and_verdict_and_writes_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = _main([*TINY, "--out", str(out)], capsys)
    assert code == 0, stderr
    assert "layer" in stdout and "out" in stdout
    verdict = _summary(out)["verdict"]
    assert f"{verdict}: layer 1 receives" in stdout
    assert [r["step"] for r in _records(out)] == [0, 1, 2, 3, 4]
    config = json.loads((out / "config.json").read_text())
    assert (config["depth"], config["width"], config["act"], config["steps"]) == (3, 8, "tanh", 5)
    assert config["command"].startswith("python -m tinygrad_act")
    assert not (out / "figures").exists()  # --no-figures


def test_experiment_help_lists_the_defaults(capsys):
    code, stdout, _ = _main(["experiment", "--help"], capsys)
    assert code == 0
    assert "default 20" in stdout and "default sigmoid" in stdout


def test_list_prints_activations_initializers_datasets_and_optimizers(capsys):
    code, stdout, _ = _main(["list"], capsys)
    assert code == 0
    lines = dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)
    assert lines["activations"].split(", ") == activations.names()
    assert lines["initializers"].split(", ") == init.names()
    assert lines["datasets"].split(", ") == data.names()
    assert lines["optimizers"].split(", ") == optim.names()


def test_module_entry_point_lists_in_a_subprocess(tmp_path):
    result = _subprocess(["list"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sigmoid" in result.stdout and "he_normal" in result.stdout and "spirals" in result.stdout
    assert "adam" in result.stdout


def test_show_prints_the_report_of_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert _main([*TINY, "--out", str(out)], capsys)[0] == 0
    code, stdout, stderr = _main(["show", str(out)], capsys)
    assert code == 0, stderr
    assert f"{_summary(out)['verdict']}: layer 1 receives" in stdout
    code, _, stderr = _main(["show", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "summary.json" in stderr


# ---- bad input ---------------------------------------------------------------------------------------------------
BAD_INPUTS = [
    (["--act", "swoosh"], ["'swoosh'", "relu", "sigmoid", "tanh"]),
    (["--init", "glorot"], ["'glorot'", "he_normal", "xavier_normal"]),
    (["--data", "cifar"], ["'cifar'", "mnist1d", "spirals"]),
    (["--optimizer", "rmsprop"], ["'rmsprop'", "adam, sgd"]),
    (["--depth", "0"], ["depth", "'0'", "positive integer"]),
    (["--depth", "2.5"], ["depth", "'2.5'", "positive integer"]),
    (["--width", "-3"], ["width", "'-3'", "positive integer"]),
    (["--width", "wide"], ["width", "'wide'", "positive integer"]),
    (["--steps", "0"], ["steps", "'0'", "positive integer"]),
    (["--steps", "1e3"], ["steps", "'1e3'", "positive integer"]),
    (["--batch-size", "0"], ["batch-size", "'0'", "positive integer"]),
    (["--lr", "0"], ["lr", "'0'", "positive finite"]),
    (["--lr", "-1"], ["lr", "'-1'", "positive finite"]),
    (["--lr", "nan"], ["lr", "'nan'", "positive finite"]),
    (["--lr", "inf"], ["lr", "'inf'", "positive finite"]),
    (["--dtype", "float16"], ["'float16'", "float32, float64"]),
    (["--norm", "group"], ["'group'", "none, batch, layer"]),
    (["--act", "leaky_relu:beta=1"], ["'beta'", "alpha"]),
    (["--act", "leaky_relu:alpha=x"], ["alpha", "'x'"]),
    (["--optimizer", "adam:betas=1"], ["betas", "1"]),
]


@pytest.mark.parametrize("arguments, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_value_and_choices_with_exit_code_2(tmp_path, capsys, arguments, words):
    out = tmp_path / "run"
    code, stdout, stderr = _main([*TINY, "--out", str(out), *arguments], capsys)
    assert code == 2
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for word in words:
        assert word in stderr, (word, stderr)
    assert not out.exists()


# Sizes the machine cannot hold and data that cannot be generated: refused with the estimate or the reason,
# before anything is allocated or written (before: MemoryError/OverflowError, a hang, NaN data or 0% accuracy).
IMPOSSIBLE = [
    (["--width", "1000000"], ["needs about", "TiB", "parameters", "limit"]),
    (["--depth", "100000000000000000000"], ["needs about", "PiB", "limit"]),
    (["--depth", "1e20"], ["depth", "'1e20'", "positive integer"]),
    (["--width", "1e6"], ["width", "'1e6'", "positive integer"]),
    (["--data", "spirals:n=1000000000"], ["needs about", "GiB", "data", "limit"]),
    (["--data", "spirals:n=1e9"], ["n must be", "integer", "1000000000.0"]),
    (["--data", "spirals:classes=1000000000"], ["classes=1000000000", "test examples"]),
    (["--data", "spirals:classes=5000,n=3000"], ["classes=5000", "600 test examples"]),
    (["--data", "spirals:turns=inf"], ["turns", "inf", "finite"]),
    (["--data", "spirals:noise=1e308"], ["noise", "1e+308", "finite number in [0, 1000000.0]"]),
    (["--data", "teacher:gain=inf"], ["teacher", "gain", "inf"]),
    (["--data", "mnist1d:n_test=5"], ["n_test", "5", ">= 10"]),
    (["--batch-size", "100000000"], ["batch_size 100000000", "160 examples", "at most 160"]),
    (["--act", "leaky_relu:alpha=-1e300"], ["activation 'leaky_relu:alpha=-1e300'", "gain"]),
    (["--act", "leaky_relu:alpha=1,alpha=2"], ["'alpha' is given twice", "leaky_relu:alpha=1,alpha=2"]),
    (["--init", "he_normal:mode=fan_in,mode=fan_out"], ["'mode' is given twice"]),
    (["--data", "spirals:n=200,n=300"], ["'n' is given twice"]),
    (["--act", "softplus:beta=0"], ["activation 'softplus:beta=0'", "beta"]),
]


@pytest.mark.parametrize("arguments, words", IMPOSSIBLE, ids=[" ".join(a) for a, _ in IMPOSSIBLE])
def test_impossible_sizes_and_parameters_are_refused_in_one_line_before_the_run_directory_exists(
    tmp_path, capsys, arguments, words
):
    out = tmp_path / "run"
    code, stdout, stderr = _main([*TINY, "--out", str(out), *arguments], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    for word in words:
        assert word in stderr, (word, stderr)
    if arguments[0] == "--act":  # an activation's fault is not blamed on the initializer 'auto'
        assert "initializer" not in stderr
    assert not out.exists()


def test_the_memory_limit_follows_the_environment_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_MEMORY_LIMIT", "1K")
    code, stdout, stderr = _main([*TINY, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "limit of 1 KiB ($TINYGRAD_ACT_MEMORY_LIMIT)" in stderr, stderr
    monkeypatch.setenv("TINYGRAD_ACT_MEMORY_LIMIT", "lots")
    code, stdout, stderr = _main([*TINY, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "TINYGRAD_ACT_MEMORY_LIMIT" in stderr and "'lots'" in stderr


def test_an_internal_value_error_is_a_bug_and_keeps_its_traceback(tmp_path, monkeypatch):
    from tinygrad_act.lab.run import experiment

    def broken_training(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")  # as numpy would, deep inside a run

    monkeypatch.setattr(experiment, "run", broken_training)
    with pytest.raises(ValueError, match="broadcast"):
        main([*TINY, "--out", str(tmp_path / "run")])


def test_an_internal_value_error_deep_in_training_leaves_main_with_its_traceback_not_a_usage_line(
    tmp_path, capsys, monkeypatch
):
    # the task's loss raising ValueError in the evaluation (aside, in the run's worker thread) stands for any numpy
    # bug inside training; an exception that leaves main is the interpreter's traceback and exit code 1
    def bad(*args, **kwargs):
        raise ValueError("internal")

    monkeypatch.setattr(tasks, "loss", bad)
    with pytest.raises(ValueError, match="internal") as error:
        main([*TINY, "--out", str(tmp_path / "run")])
    assert any(entry.name == "bad" for entry in error.traceback)  # the traceback reaches where it was raised
    assert "error:" not in capsys.readouterr().err


def test_sweep_help_lists_the_options_with_the_values_that_apply(capsys):
    code, stdout, stderr = _main(["sweep", "--help"], capsys)
    assert code == 0, stderr
    assert "--depths" in stdout and "--depth DEPTH" in stdout and "(default 20)" in stdout


def test_bad_input_in_a_subprocess_exits_2_with_one_line_and_no_traceback(tmp_path):
    arguments = ["--act", "swoosh"]  # the process's own exit code and stderr: BAD_INPUTS checks each value's line
    result = _subprocess([*TINY, "--out", str(tmp_path / "run"), *arguments], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert arguments[1] in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_out_path_that_is_a_file_is_bad_input_not_a_crash(tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.write_text("not a directory")
    code, _, stderr = _main([*TINY, "--out", str(occupied)], capsys)
    assert code == 2
    assert "Traceback" not in stderr and str(occupied) in stderr
    assert occupied.read_text() == "not a directory"


# ---- overwrite protection, divergence, interrupts ------------------------------------------------------------------
def test_an_existing_out_is_refused_without_force_and_replaced_with_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert _main([*TINY, "--out", str(out)], capsys)[0] == 0
    before = (out / "metrics.jsonl").read_text()
    code, _, stderr = _main([*TINY, "--out", str(out), "--seed", "1"], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "--force" in stderr and str(out) in stderr
    assert (out / "metrics.jsonl").read_text() == before
    code, _, stderr = _main([*TINY, "--out", str(out), "--seed", "1", "--force"], capsys)
    assert code == 0, stderr
    assert (out / "metrics.jsonl").read_text() != before
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_divergence_exits_0_with_a_message_and_a_summary(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*TINY, "--out", str(out), "--act", "identity", "--lr", "1e6", "--steps", "30"]
    code, stdout, stderr = _main(args, capsys)
    assert code == 0, stderr
    assert "diverged" in stdout
    summary = _summary(out)
    assert summary["status"] == "diverged" and summary["verdict_final"] == "diverged"
    records = _records(out)
    assert [r["step"] for r in records] == list(range(summary["steps_done"] + 1))


def test_a_keyboard_interrupt_exits_130_with_the_run_summarized(tmp_path, capsys, monkeypatch):
    original = optim.Optimizer.step
    calls = []

    def step_then_interrupt(self, *flat):  # flat: the captured step's fused update (nn/step.py)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self, *flat)

    monkeypatch.setattr(optim.Optimizer, "step", step_then_interrupt)
    out = tmp_path / "run"
    code, stdout, stderr = _main([*TINY, "--out", str(out), "--steps", "100"], capsys)
    assert code == 130
    assert "Traceback" not in stderr
    assert "interrupted" in stdout + stderr
    assert _summary(out)["status"] == "interrupted"
    assert [r["step"] for r in _records(out)] == [0, 1]


def test_sigint_to_a_running_experiment_exits_130_without_traceback_keeping_every_record(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}
    args = [*TINY, "--out", str(out), "--steps", "1000000"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_act", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts a job in the background (as CI runners may) hands it SIGINT ignored; Python then
        # keeps ignoring it. Restore the default so the child installs its KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never logged three steps"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = _summary(out)
    assert summary["status"] == "interrupted"
    steps = [r["step"] for r in _records(out)]  # every line is complete JSON
    assert steps == list(range(len(steps))) and len(steps) >= 3
    # The signal may land after a step's update and before its record is written: at most one step unlogged.
    assert summary["steps_done"] in (steps[-1] + 1, steps[-1] + 2)


def test_the_module_docstring_names_every_command():
    from tinygrad_act import cli

    first_line = cli.__doc__.splitlines()[0]
    assert all(name in first_line for name in cli.COMMANDS), first_line
