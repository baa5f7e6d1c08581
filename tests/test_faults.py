"""One run when things go wrong: a second writer, signals, a full or read-only disk, hostile paths and links,
non-finite numbers in the files, runs that diverged, and messages that must say something true."""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import hostile
import pytest

from tinygrad_act.cli import main
from tinygrad_act.common import files
from tinygrad_act.common.errors import RunDirError
from tinygrad_act.lab import stats
from tinygrad_act.lab.run import experiment
from tinygrad_act.lab.run.experiment import Config, run
from tinygrad_act.lab.show.report import terminal_report, verdict_line

DEPTH = 3
TINY = [
    "experiment",
    *("--depth", str(DEPTH), "--width", "8", "--act", "tanh", "--steps", "5", "--batch-size", "16"),
    *("--data", "spirals:n=200", "--log-every", "1", "--no-progress", "--no-figures"),
]


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


def _config(out, **overrides) -> Config:
    values = dict(depth=DEPTH, width=8, act="tanh", steps=6, batch_size=16, data="spirals:n=200", log_every=1)
    values.update(figures=False, out=str(out))
    values.update(overrides)
    return Config(**values)


def _main(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(stderr):
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def _env(tmp_path):
    return {**os.environ, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}


def _lines(path):
    """metrics.jsonl as strict JSON lines: every line whole, no NaN/Infinity tokens."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a record was cut short"
    return [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in {path}")) for line in text.splitlines()
    ]


def _csv_rows(path):
    text = path.read_bytes().decode()
    assert text.endswith("\r\n"), "a CSV row was cut short"
    return text.splitlines()[1:]


# ---- 1. one writer per run directory -----------------------------------------------------------------------------
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_a_second_writer_to_a_run_directory_gets_one_line_and_changes_nothing(tmp_path, capsys, force):
    out = tmp_path / "run"
    out.mkdir()
    files.Owned(out, "run", files=["metrics.jsonl"]).save()  # a run of this laboratory, being written
    (out / "metrics.jsonl").write_text("the other writer's records\n")
    with files.locked(out):  # another process writing this run (flock: a second descriptor conflicts too)
        code, _, stderr = _main([*TINY, "--out", str(out), *(["--force"] if force else [])], capsys)
    assert code == 1
    assert "another process" in _one_line(stderr) and str(out) in stderr
    assert (out / "metrics.jsonl").read_text() == "the other writer's records\n"
    assert sorted(p.name for p in out.iterdir()) == [".lock", files.MANIFEST, "metrics.jsonl"]


def test_a_finished_run_can_be_forced_again_its_lock_is_released(tmp_path, capsys):
    out = tmp_path / "run"
    assert _main([*TINY, "--out", str(out)], capsys)[0] == 0
    code, _, stderr = _main([*TINY, "--out", str(out), "--force", "--seed", "1"], capsys)
    assert code == 0, stderr


# ---- 2. the summary never claims more records than metrics.jsonl holds -----------------------------------------------
def test_the_summary_counts_the_records_written_to_metrics_jsonl(tmp_path):
    out = tmp_path / "run"
    summary = run(_config(out, steps=7, log_every=3), progress=False)
    assert summary["records"] == len(_lines(out / "metrics.jsonl")) == 3
    assert files.read_json(out / "summary.json")["records"] == 3


def test_a_write_that_fails_mid_run_keeps_whole_records_and_a_summary_that_counts_them(tmp_path, monkeypatch):
    original = files.AppendLog.append
    appends = []

    def append_until_the_disk_is_full(self, text):
        if self.path.name == "metrics.jsonl":
            appends.append(text)
            if len(appends) == 4:
                raise RunDirError(f"no space left on the device while writing {self.path}")
        original(self, text)

    monkeypatch.setattr(files.AppendLog, "append", append_until_the_disk_is_full)
    out = tmp_path / "run"
    with pytest.raises(RunDirError, match="no space left"):
        run(_config(out, steps=20), progress=False)
    records = _lines(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    assert len(_csv_rows(out / "metrics.csv")) == 3 * (DEPTH + 1)  # the failed record left no CSV rows either
    summary = files.read_json(out / "summary.json")
    assert summary["status"] == "failed" and "no space left" in summary["message"]
    assert summary["records"] == 3


# ---- 3. signals: SIGTERM like Ctrl-C, and a signal after training still leaves the summary ---------------------------
def _start(args, tmp_path, script=None):
    command = [sys.executable, "-c", script] if script else [sys.executable, "-m", "tinygrad_act"]
    return subprocess.Popen(
        [*command, *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts a job in the background hands it SIGINT ignored; restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _signal_when(process, ready, signum):
    """Wait until ``ready()`` holds, send ``signum``, return (stdout, stderr) once the process has exited."""
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never got there"
            time.sleep(0.05)
        process.send_signal(signum)
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_sigterm_to_a_running_experiment_exits_143_with_a_summary_and_every_record(tmp_path):
    out = tmp_path / "run"
    process = _start([*TINY, "--out", str(out), "--steps", "1000000"], tmp_path)
    metrics = out / "metrics.jsonl"
    _, stderr = _signal_when(process, lambda: metrics.exists() and metrics.read_text().count("\n") >= 2, signal.SIGTERM)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    summary = files.read_json(out / "summary.json")
    assert summary["status"] == "interrupted" and "terminated" in summary["message"]
    assert summary["signal"] == "SIGTERM"
    steps = [r["step"] for r in _lines(metrics)]
    assert steps == list(range(len(steps))) and summary["records"] == len(steps)


# The child runs the CLI with the figures slowed down, announcing them with a marker file.
LATE_SIGNAL_CHILD = textwrap.dedent(
    """
    import pathlib, sys, time
    from tinygrad_act.lab.show import drawing
    from tinygrad_act.cli import main

    marker = pathlib.Path(sys.argv[1])
    draw = drawing.Drawer.draw  # the command line's runs render their figures in other processes
    calls = []

    def slow(function, index):
        def wrapper(*args, **kwargs):
            calls.append(function)
            if calls.count(function) == index:
                marker.write_text("here")
                time.sleep(60)
            return function(*args, **kwargs)
        return wrapper

    drawing.Drawer.draw = slow(draw, 1)
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_figures_are_drawn_still_leaves_the_summary(tmp_path, signum, code):
    # (the summary's whole-split numbers are the last step's evaluation: no final evaluation of its own to stop)
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [str(marker), *TINY[:-1], "--steps", "3", "--out", str(out)]  # figures on
    process = _start(args, tmp_path, script=LATE_SIGNAL_CHILD)
    _, stderr = _signal_when(process, marker.exists, signum)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    summary = files.read_json(out / "summary.json")
    assert summary["status"] == "interrupted"
    assert "figures" in summary["message"]
    assert summary["records"] == len(_lines(out / "metrics.jsonl")) == 3
    assert not [p.name for p in out.rglob("*") if p.name.endswith((".tmp", ".partial"))]


# ---- 4. a full, read-only or impossible place for the run: one line, exit 1 ------------------------------------------
@contextlib.contextmanager
def _tmpfs(path, options):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)  # lazy: a file left open must not block it


def test_a_full_disk_is_one_line_exit_1_whole_records_and_no_partial_files(tmp_path, capsys):
    with _tmpfs(tmp_path / "disk", "size=32k") as disk:
        out = disk / "run"
        code, _, stderr = _main([*TINY, "--out", str(out), "--steps", "100000"], capsys)
        assert code == 1
        line = _one_line(stderr)
        assert "no space left on the device while writing" in line and str(out) in line
        records = _lines(out / "metrics.jsonl")
        assert [r["step"] for r in records] == list(range(len(records))) and records
        rows = _csv_rows(out / "metrics.csv")
        assert len(rows) in (len(records) * (DEPTH + 1), (len(records) + 1) * (DEPTH + 1))
        assert sorted(p.name for p in out.iterdir()) in (
            [".lock", files.MANIFEST, "config.json", "metrics.csv", "metrics.jsonl"],
            [".lock", files.MANIFEST, "config.json", "metrics.csv", "metrics.jsonl", "summary.json"],
        )
        summary = files.read_json(out / "summary.json")
        assert summary is None or (summary["status"] == "failed" and summary["records"] == len(records))


def test_a_read_only_file_system_is_one_line_exit_1(tmp_path, capsys):
    with _tmpfs(tmp_path / "disk", "size=64k") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code, _, stderr = _main([*TINY, "--out", str(disk / "run")], capsys)
        assert code == 1
        assert "read-only file system" in _one_line(stderr)


@pytest.mark.parametrize(
    "where, words",
    [
        ("under_a_file", "not a directory"),
        ("proc", "/proc/"),
        ("name_too_long", "longer than the file system allows"),
    ],
)
def test_an_impossible_out_is_one_line_exit_1_without_a_traceback(tmp_path, where, words, capsys, monkeypatch):
    (tmp_path / "file").write_text("a regular file")
    out = {
        "under_a_file": tmp_path / "file" / "run",
        "proc": "/proc/tinygrad-act-no-such-dir/run",
        "name_too_long": tmp_path / ("x" * 300),
    }[where]
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _main([*TINY, "--out", str(out)], capsys)  # in-process: a traceback is an error here
    assert code == 1
    assert words in _one_line(stderr)
    assert (tmp_path / "file").read_text() == "a regular file"


# ---- 5. links planted in the run directory are replaced, never written through ---------------------------------------
LINKED = ["config.json", "metrics.jsonl", "metrics.csv", "summary.json", "summary.json.partial", "figures/training.png"]


def _plant_after_prepare(monkeypatch, plant):
    """Plant links once the run directory is prepared (before config.json), as another user racing the run would."""
    predict = experiment.predict_theory

    def plant_then_predict(config, *args):
        plant(Path(config.out))
        return predict(config, *args)

    monkeypatch.setattr(experiment, "predict_theory", plant_then_predict)


@pytest.mark.parametrize("name", LINKED)
def test_a_link_planted_at_a_run_file_is_replaced_and_its_target_stays_unchanged(tmp_path, monkeypatch, name):
    target = tmp_path / "precious.txt"
    target.write_text("precious")

    def plant(path):
        (path / name).parent.mkdir(exist_ok=True)
        (path / name).symlink_to(target)

    _plant_after_prepare(monkeypatch, plant)
    out = tmp_path / "run"
    figures = ["training"] if name.startswith("figures") else False  # the figure a link is planted at
    summary = run(_config(out, steps=2, figures=figures), progress=False)
    assert target.read_text() == "precious"
    if name != "summary.json.partial":  # a name the run no longer writes: the link is left alone
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    assert "figures_error" not in summary


def test_a_directory_link_planted_at_figures_is_replaced_and_its_target_stays_empty(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _plant_after_prepare(monkeypatch, lambda path: (path / "figures").symlink_to(elsewhere, target_is_directory=True))
    out = tmp_path / "run"
    # one figure written into figures/ is enough to show where it goes
    summary = run(_config(out, steps=2, figures=["training"]), progress=False)
    assert list(elsewhere.iterdir()) == []
    assert not (out / "figures").is_symlink() and summary["figures"]
    assert all((out / name).is_file() for name in summary["figures"])


def test_force_removes_planted_links_without_touching_their_targets(tmp_path, finished_run):
    out, elsewhere, target = tmp_path / "run", tmp_path / "elsewhere", tmp_path / "precious.txt"
    hostile.copy_run(finished_run[0], out)  # a run of this laboratory with figures, then links planted in it
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "summary.json", "figures"):
        files.remove(out / name)
    elsewhere.mkdir()
    (elsewhere / "keep.png").write_text("keep")
    target.write_text("precious")
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "summary.json"):
        (out / name).symlink_to(target)
    (out / "figures").symlink_to(elsewhere, target_is_directory=True)
    run(_config(out, steps=2), force=True, progress=False)
    assert target.read_text() == "precious" and (elsewhere / "keep.png").read_text() == "keep"
    assert not any(p.is_symlink() for p in out.iterdir())


# ---- 6. JSON keeps nan and inf apart from "not measured" -------------------------------------------------------------
def test_non_finite_numbers_are_kept_as_markers_and_null_means_not_measured(tmp_path):
    out = tmp_path / "run"
    summary = run(_config(out, act="identity", lr=1e6, steps=30), progress=False)
    assert summary["status"] == "diverged"
    raw = _lines(out / "metrics.jsonl")[-1]
    assert raw["loss"] in ("nan", "inf")  # measured, not finite
    assert raw["layers"][-1]["saturation"] is None  # the output layer has no activation: not measured
    records = files.read_records(out)
    assert not math.isfinite(records[-1]["loss"]) and records[-1]["layers"][-1]["saturation"] is None
    on_disk = files.read_json(out / "summary.json")
    assert not math.isfinite(on_disk["final_loss"])
    csv_loss = _csv_rows(out / "metrics.csv")[-1].split(",")[1]
    assert csv_loss in ("nan", "inf")  # the CSV keeps them as numbers


# ---- 7. a run that diverged says so wherever its verdict is shown ----------------------------------------------------
def test_a_diverged_run_is_called_diverged_in_the_summary_and_the_terminal(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = _main(
        [*TINY, "--out", str(out), "--act", "identity", "--lr", "1e6", "--steps", "30"], capsys
    )
    assert code == 0, stderr
    summary = files.read_json(out / "summary.json")
    assert summary["verdict_final"] == "diverged" and stats.shown_verdict(summary) == "diverged"
    end = [line for line in stdout.splitlines() if line.startswith("diverged at step")]
    assert end and f"step {summary['steps_done']}" in end[0]
    assert not any(line.endswith("end]") for line in stdout.splitlines())  # no r-based verdict for the end
    code, shown, _ = _main(["show", str(out)], capsys)
    assert code == 0 and end[0] in shown


# ---- 8. no global state: the caller's matplotlib backend; tqdm only on a terminal ------------------------------------
def test_a_run_with_figures_leaves_the_callers_matplotlib_backend_and_pyplot_alone(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, matplotlib
        matplotlib.use("svg")
        from tinygrad_act.lab.run.experiment import Config, run
        from tinygrad_act.lab.show import run_figures
        every = run_figures.drawings  # every figure is made; one is rendered (the eight took most of this test)
        run_figures.drawings = lambda *args: [(f, n) for f, n in every(*args) if n == "training.png"]
        summary = run(Config(depth=3, width=8, steps=2, data="spirals:n=200", out={str(tmp_path / "run")!r}),
                      progress=False)
        assert summary["figures"], summary
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "False"]


def test_the_progress_bar_is_not_written_when_stderr_is_not_a_terminal(tmp_path, capsys):
    args = [a for a in TINY if a != "--no-progress"]
    assert not sys.stderr.isatty()  # captured, as a pipe or a file would take it
    code, _, stderr = _main([*args, "--out", str(tmp_path / "run")], capsys)
    assert code == 0, stderr
    assert stderr == ""


# ---- 9. messages that say something true -----------------------------------------------------------------------------
def test_a_gradient_that_underflowed_in_float64_is_not_told_to_try_float64():
    assert "float64" not in verdict_line("vanishing", 0.0, math.nan, 80, dtype="float64")
    assert "DTYPE=float64" in verdict_line("vanishing", 0.0, math.nan, 80, dtype="float32")


def test_one_hidden_layer_prints_no_nan_per_layer_factor(tmp_path, capsys):
    code, stdout, stderr = _main([*TINY, "--depth", "1", "--out", str(tmp_path / "run")], capsys)
    assert code == 0, stderr
    assert "nan" not in stdout and "one hidden layer" in stdout


def test_huge_numbers_are_printed_in_a_general_format():
    summary = {
        "status": "completed",
        "message": "",
        "path": "run",
        "steps_done": 3,
        "wall_time_s": 0.5,
        **{"train_loss": 1.134e300, "train_accuracy": 0.3, "test_loss": 2e300, "test_accuracy": 0.35},
    }
    text = terminal_report(summary, [], _config("run"))
    assert "train loss 1.134e+300" in text and "test loss 2e+300" in text
    assert max(len(line) for line in text.splitlines()) < 200


def test_no_figures_lists_only_the_files_that_exist(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = _main([*TINY, "--out", str(out)], capsys)
    assert code == 0
    files = " ".join(stdout[stdout.index("files:") :].split())  # the line, unwrapped
    assert (
        files == f"files: {out}/ (checkpoint.npz, config.json, metrics.csv, metrics.jsonl, report.html, summary.json)"
    )
