"""The Makefile passes its variables to the program as data: no shell injection, any character in a value,
strict switches, `make help` naming every variable, a variable the target does not read refused with the nearest
name, extras installed on demand, Ctrl-C exiting 130 through make. Runs make with PY (this Python) and STAMP (a fresh
file) overridden, so no virtual environment is installed.

Make runs once for each way a refusal reaches the caller (a variable the target does not read, a switch that is not
a boolean, a bad value): there its line and exit code are the ones makeargs' entry point gives in-process with the
environment make exports (``_makeargs``), which checks the table of cases."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinygrad_act import makeargs
from tinygrad_act.common.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
TINY = ["DEPTH=2", "WIDTH=4", "STEPS=2", "BATCH=16", "DATA=spirals:n=200", "LOG_EVERY=1", "FIGURES=0"]  # no figure read


def _environment(tmp_path) -> dict:
    """This process's environment for a fresh make: without the variables of a make running these tests
    (`make test TESTS=...` passes TESTS down through MAKEFLAGS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return {**env, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}


def _make(tmp_path, *args, python=sys.executable):
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: the install recipe does not run
    env = _environment(tmp_path)
    command = ["make", "-s", "-C", str(ROOT), f"PY={python}", f"STAMP={stamp}", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


MAKEFILE = (ROOT / "Makefile").read_text()


def _recipe_call(target: str) -> list[str]:
    """The arguments ``make TARGET``'s recipe gives makeargs (``$(RUN) experiment``, ``$(RUN) check test``)."""
    recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)*)", MAKEFILE, re.M).group(1)
    return re.search(r"\$\(RUN\) ([\w -]+?)\)?$", recipe, re.M).group(1).split()


def _makeargs(monkeypatch, capsys, target, *given):
    """makeargs' entry point in-process as ``make TARGET NAME=VALUE...`` starts it: each variable exported as typed,
    their names in TINYGRAD_ACT_MAKE_VARIABLES, no other variable of makeargs set (`make test TESTS=...` exports
    TESTS to these tests), the recipe's arguments; (exit code, stderr's lines)."""
    for name in makeargs.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for assignment in given:
        name, value = assignment.split("=", 1)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(makeargs.COMMAND_LINE, " ".join(a.split("=", 1)[0] for a in given))
    monkeypatch.setattr(sys, "argv", ["-m"])  # makeargs.main sets the CLI's arguments there (config.json's command)
    try:
        code = makeargs.main(_recipe_call(target))
    except SystemExit as exit:  # argparse
        code = exit.code
    return code, capsys.readouterr().err.splitlines()


def _own_lines(stderr: str) -> list[str]:
    """stderr without make's own ``make: *** [...] Error 2`` lines."""
    return [line for line in stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]


def _environment_printer(tmp_path):
    """A stand-in for Python that prints the variables the recipe's environment holds, as JSON."""
    script = tmp_path / "print-env"
    script.write_text(
        f"#!{sys.executable}\nimport json, os\n"
        f"print(json.dumps({{k: os.environ.get(k) for k in {list(makeargs.VARIABLES)!r}}}))\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_shell_command_injected_through_out_does_not_run_and_the_apostrophe_reaches_the_run(tmp_path):
    planted = tmp_path / "PWNED"
    out = tmp_path / f"it's'; touch {planted}; echo '"
    result = _make(tmp_path, "experiment", *TINY, f"OUT={out}", "RESIDUAL=True", "FORCE=no")
    assert result.returncode == 0, result.stderr
    assert not planted.exists()
    config = json.loads((out / "config.json").read_text())
    assert config["out"] == str(out) and config["residual"] is True  # True, any case, means yes


@pytest.mark.parametrize(
    "value",
    ['a$b $$c `touch x` "q" \\n', "$(shell touch made-by-make)", "two\nlines", "#hash; && || > redirect"],
)
def test_any_characters_in_a_variable_reach_the_program_unchanged(tmp_path, value):
    result = _make(tmp_path, "experiment", f"OUT={value}", f"ACT={value}", python=_environment_printer(tmp_path))
    assert result.returncode == 0, result.stderr
    received = json.loads(result.stdout.splitlines()[-1])
    assert received["OUT"] == value and received["ACT"] == value
    assert not (ROOT / "x").exists() and not (ROOT / "made-by-make").exists()


def test_the_recipe_text_holds_no_user_value(tmp_path):
    result = _make(tmp_path, "-n", "experiment", "OUT=secret-value", "DEPTH=7")
    assert "secret-value" not in result.stdout and "7" not in result.stdout.replace(sys.executable, "")


# One refusal of each kind through make: the caller sees the line and exit code makeargs gives in-process, and
# nothing is written; the cases of each kind are checked in-process below.
@pytest.mark.parametrize(
    "given",
    [["DEPHT=3"], [*TINY, "RESIDUAL=on"], ["DATA=adding", "MODEL=rnn", "SEQ_LEN=-3"]],
    ids=["a variable the target does not read", "a switch that is not a boolean", "a bad value"],
)
def test_a_refusal_through_make_is_the_programs_one_line_with_exit_2(tmp_path, monkeypatch, capsys, given):
    out = f"OUT={tmp_path / 'run'}"
    result = _make(tmp_path, "experiment", *given, out)
    code, lines = _makeargs(monkeypatch, capsys, "experiment", *given, out)
    assert result.returncode == code == 2 and "Traceback" not in result.stderr, result.stderr
    assert _own_lines(result.stderr) == lines and len(lines) == 1, (result.stderr, lines)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["on", "2", "Y", "True!"])
def test_a_switch_that_is_not_a_boolean_is_refused_with_one_line(tmp_path, monkeypatch, capsys, value):
    code, lines = _makeargs(monkeypatch, capsys, "experiment", *TINY, f"RESIDUAL={value}", f"OUT={tmp_path / 'run'}")
    assert code == 2
    assert len(lines) == 1 and "RESIDUAL" in lines[0] and repr(value) in lines[0] and "yes" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "variables, name",
    [(["MODEL=rnn", "SEQ_LEN=-3"], "seq_len"), (["MODEL=rnn", "CELL=lstmm"], "lstmm"), (["TRUNCATE=x"], "truncate")],
)
def test_a_bad_recurrent_setting_is_refused_by_make_with_one_line(tmp_path, monkeypatch, capsys, variables, name):
    given = ["DATA=adding", *variables, f"OUT={tmp_path / 'run'}"]
    code, lines = _makeargs(monkeypatch, capsys, "experiment", *given)
    assert code == 2 and not any("Traceback" in line for line in lines)
    assert len(lines) == 1 and name in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_a_figure_name_no_run_draws_is_refused_by_make_with_the_nearest_name(tmp_path):
    result = _make(tmp_path, "experiment", *TINY, "FIGURES=training,snrr", f"OUT={tmp_path / 'run'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert len(lines) == 1 and "'snrr'" in lines[0] and "did you mean snr?" in lines[0], lines
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("yes", True), ("TRUE", True), ("Yes", True), ("0", False), ("no", False), ("False", False)],
)
def test_switches_accept_one_zero_true_false_yes_no_in_any_case(value, expected):
    assert ("--residual" in makeargs.arguments("experiment", {"RESIDUAL": value})) is expected
    assert ("--force" in makeargs.arguments("experiment", {"FORCE": value})) is expected


def test_sweep_variables_map_to_their_options_and_grid_splits_on_spaces():
    environ = {"CONFIG": "vanishing_depth", "ACTS": "relu,tanh", "WIDTHS": "8,16", "LRS": "0.1", "JOBS": "2",
               "SCHEDULER": "tcp://h:1", "SHARD": "0/2", "GRID": "norm=none,batch residual=0,1", "STEPS": "5",
               "OUT": "o", "RESIDUAL": "yes", "DEPTH": ""}  # fmt: skip
    assert makeargs.arguments("sweep", environ) == [
        "sweep", "vanishing_depth", "--acts", "relu,tanh", "--widths", "8,16", "--lrs", "0.1", "--jobs", "2",
        "--scheduler", "tcp://h:1", "--shard", "0/2", "--grid", "norm=none,batch", "--grid", "residual=0,1",
        "--steps", "5", "--residual", "--out", "o",
    ]  # fmt: skip
    assert makeargs.arguments("report", {"ONLY": "he_2015", "JOBS": "3"}) == [
        "report",
        "--only",
        "he_2015",
        "--jobs",
        "3",
    ]
    with pytest.raises(UsageError, match="FORCE"):
        makeargs.arguments("experiment", {"FORCE": "maybe"})


def test_make_help_lists_every_variable_and_the_show_command(tmp_path):
    result = _make(tmp_path, "help")
    assert result.returncode == 0
    words = set(result.stdout.replace(",", " ").replace("=", " ").split())
    missing = [name for name in makeargs.VARIABLES if name not in words]
    assert not missing, missing
    assert "make show" in result.stdout


# ---- variables a target does not read, extras on demand, Ctrl-C -------------------------------------------------
@pytest.mark.parametrize(
    "target, given, suggestion",
    [("experiment", "ACTIVATION=relu", "did you mean ACT?"), ("experiment", "OPTIMIZER=adam", "did you mean OPT?"),
     ("experiment", "DEPHT=3", "did you mean DEPTH?"), ("experiment", "SEEDS=0,1", "(make sweep reads it); did you "
     "mean SEED?"), ("sweep", "FORCE=1", "(make experiment and make compare read it)"),
     ("compare", "RUN=runs/a", "did you mean RUNS?"), ("show", "run_dir=runs/a", "did you mean RUN_DIR?"),
     ("test", "TEST=tests/test_x.py", "did you mean TESTS?")],
)  # fmt: skip
def test_a_variable_the_target_does_not_read_is_refused_with_the_nearest_name(
    tmp_path, monkeypatch, capsys, target, given, suggestion
):
    other = f"OUT={tmp_path / 'run'}" if target == "experiment" else "VENV=.venv"
    code, lines = _makeargs(monkeypatch, capsys, target, given, other)
    name = given.split("=")[0]
    assert code == 2 and len(lines) == 1, lines
    assert f"unknown variable {name} for make {target}" in lines[0] and suggestion in lines[0]
    assert not (tmp_path / "run").exists()


def test_every_variable_a_target_reads_is_accepted_and_the_makefiles_own_are_defined_there():
    for target, names in makeargs.TARGETS.items():
        makeargs.check_variables(target, {makeargs.COMMAND_LINE: " ".join([*names, *makeargs.MAKEFILE_VARIABLES])})
    assigned = set(re.findall(r"^([A-Z_]+)\s*(?::=|\?=|=)", (ROOT / "Makefile").read_text(), re.M))
    assert set(makeargs.MAKEFILE_VARIABLES) <= assigned


def test_wide_and_hist_every_reach_the_program():
    assert makeargs.arguments("experiment", {"WIDE": "1", "HIST_EVERY": "50"})[1:] == [
        "--hist-every", "50", "--wide"]  # fmt: skip
    assert makeargs.arguments("show", {"RUN_DIR": "runs/a", "WIDE": "yes"}) == ["show", "runs/a", "--wide"]


@pytest.mark.parametrize(
    "target, given, extras",
    [("experiment", ["TENSORBOARD=1"], "plot,tensorboard"), ("experiment", ["TENSORBOARD=Yes"], "plot,tensorboard"),
     ("experiment", ["TENSORBOARD=0"], "plot"), ("sweep", ["DATA=mnist1d_official:seed=1"], "plot,mnist1d"),
     ("experiment", ["TENSORBOARD=true", "DATA=mnist1d_official"], "plot,tensorboard,mnist1d"),
     ("notebook", [], "notebook")],
)  # fmt: skip
def test_a_switch_that_needs_an_extra_installs_it_on_demand(tmp_path, target, given, extras):
    command = ["make", "-n", "-C", str(ROOT), target, *given, f"VENV={tmp_path / 'venv'}"]  # a venv not yet made
    result = subprocess.run(command, env=_environment(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"-e '.[{extras}]'" in result.stdout


def _python_of(make_pid: int) -> int:
    """The pid of the Python process a make recipe started (make -> sh -> python)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                session = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
            except (OSError, IndexError, ValueError):
                continue
            if (
                session == make_pid
                and b"tinygrad_act.makeargs" in command
                and Path(command[0].decode()).name.startswith("py")
            ):
                return int(entry.name)
    raise AssertionError("no Python process under make")


@pytest.mark.parametrize("to", ["the process group (Ctrl-C)", "the program alone"])
def test_ctrl_c_through_make_exits_130_with_the_run_summarized(tmp_path, to):
    stamp = tmp_path / "stamp"
    stamp.touch()
    out = tmp_path / "run"
    env = _environment(tmp_path)
    command = ["make", "-s", "-C", str(ROOT), f"PY={sys.executable}", f"STAMP={stamp}", "experiment", *TINY,
               "STEPS=1000000", f"OUT={out}"]  # fmt: skip
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731  (a job may inherit it ignored)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n") >= 3):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        if to == "the program alone":
            os.kill(_python_of(process.pid), signal.SIGINT)
        else:
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == -signal.SIGINT, stderr  # make dies of SIGINT: a shell reports 130
    assert "Traceback" not in stderr and json.loads((out / "summary.json").read_text())["status"] == "interrupted"
