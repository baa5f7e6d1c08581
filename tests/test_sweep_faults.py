"""Sweeps under faults: reruns with other settings, a second writer, damaged run directories, Ctrl-C and SIGTERM
(with real signals to a real sweep process), an unreachable scheduler, bad configs, keys given twice, diverged
verdicts, run names, planted links, and figures that leave matplotlib's global state alone.

Every sweep here is tiny (depth 2, width 8, 200 spirals); outputs go to tmp_path."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import count_runs, read_csv  # one copy of the sweep tests' helpers

from tinygrad_act import findings
from tinygrad_act.cli import main
from tinygrad_act.common import files
from tinygrad_act.common.errors import RunDirError, UsageError
from tinygrad_act.lab.run import experiment
from tinygrad_act.lab.run.experiment import Config
from tinygrad_act.lab.show import plots
from tinygrad_act.lab.sweep import grid as sweeps
from tinygrad_act.lab.sweep.workers import STOP_GRACE_S

TINY = {"depth": 2, "width": 8, "steps": 2, "data": "spirals:n=200", "batch_size": 16, "log_every": 1}
CLI_TINY = ["--depth", "2", "--width", "8", "--data", "spirals:n=200", "--batch-size", "16", "--no-progress"]
# The sweeps here draw no figures of their own but in the tests that ask for sweep_figures (conftest.py).
pytestmark = pytest.mark.usefixtures("no_sweep_figures")


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


RELU = sweeps.Sweep({"act": ["relu"]}, TINY)


@pytest.fixture(scope="module")
def relu_sweep(tmp_path_factory):
    """A finished sweep of RELU's one run, made once for the module's tests that damage it: each copies it first."""
    root = tmp_path_factory.mktemp("made") / "relu"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYGRAD_ACT_CACHE", str(root.parent / "cache"))
        patch.setattr(sweeps, "figures", lambda root, rows, keys: [])  # no_sweep_figures, for a module's fixture
        sweeps.run_sweep(RELU, root, progress=False)
    return root


@pytest.fixture
def relu_copy(relu_sweep, tmp_path):
    """This test's own copy of ``relu_sweep``."""
    return Path(shutil.copytree(relu_sweep, tmp_path / "sweep", symlinks=True))


def one_line_error(argv, capsys, code):
    assert main(argv) == code
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err, captured.err
    return captured.err


# ---- 1. a rerun with other settings -------------------------------------------------------------------------
def test_a_rerun_with_other_fixed_settings_is_refused_naming_the_keys_and_keeps_the_old_runs(tmp_path, monkeypatch):
    sweeps.run_sweep(sweeps.Sweep({"act": ["relu", "tanh"]}, TINY), tmp_path, progress=False)
    before = (tmp_path / "runs" / "act-relu" / "summary.json").read_text()
    calls = count_runs(monkeypatch)
    other = sweeps.Sweep({"act": ["relu", "tanh"]}, {**TINY, "steps": 3, "init": "he_normal"})
    with pytest.raises(RunDirError, match="act-relu") as error:
        sweeps.run_sweep(other, tmp_path, progress=False)
    message = str(error.value)
    assert "steps 2 there, 3 now" in message and "init 'auto' there, 'he_normal' now" in message
    assert "width" not in message and "\n" not in message
    assert calls == []
    assert (tmp_path / "runs" / "act-relu" / "summary.json").read_text() == before
    assert [row["steps_done"] for row in read_csv(tmp_path / "sweep.csv")] == ["2", "2"]  # the old table stands


def test_sweep_command_with_other_settings_into_the_same_out_exits_1_with_one_line(tmp_path, capsys):
    argv = ["sweep", "--acts", "relu", *CLI_TINY, "--out", str(tmp_path / "s")]
    assert main([*argv, "--steps", "2"]) == 0
    capsys.readouterr()
    err = one_line_error([*argv, "--steps", "3"], capsys, 1)
    assert "steps 2 there, 3 now" in err


# ---- 2. one writer, and a summary that claims more than metrics.jsonl holds -----------------------------------
def test_a_second_sweep_on_a_locked_out_gets_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    out.mkdir()
    calls = count_runs(monkeypatch)
    with files.locked(out, what="sweep directory"):
        with pytest.raises(RunDirError, match="being written by another process"):
            sweeps.run_sweep(sweeps.Sweep({"act": ["relu"]}, TINY), out, progress=False)
        err = one_line_error(["sweep", "--acts", "relu", *CLI_TINY, "--steps", "2", "--out", str(out)], capsys, 1)
    assert "sweep directory" in err and str(out) in err
    assert calls == [] and sorted(p.name for p in out.iterdir()) == [".lock"]


@pytest.mark.parametrize("claims_records", [False, True])
def test_a_completed_summary_with_records_missing_from_metrics_jsonl_is_redone(tmp_path, monkeypatch, claims_records):
    sweep = sweeps.Sweep({"act": ["relu"]}, {**TINY, "steps": 4})
    sweeps.run_sweep(sweep, tmp_path, progress=False)
    run = tmp_path / "runs" / "act-relu"
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 4
    if claims_records:
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "records": 4}))
    (run / "metrics.jsonl").write_text("".join(lines[:2]))  # whole lines: a second writer's truncation
    calls = count_runs(monkeypatch)
    rows = sweeps.run_sweep(sweep, tmp_path, progress=False)
    assert calls == ["act-relu"]
    assert len(files.read_records(run)) == 4 and rows[0]["steps_done"] == 4


# ---- 3. summaries of the wrong shape ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["[]", "null", '"completed"', '{"status": 5}', '{"status": "completed", "steps_done": "2"}', "change:ratio_init"],
)
def test_a_summary_of_the_wrong_shape_makes_the_run_incomplete_and_it_is_redone(relu_copy, monkeypatch, text):
    summary_file = relu_copy / "runs" / "act-relu" / "summary.json"
    good = json.loads(summary_file.read_text())
    if text.startswith("change:"):
        text = json.dumps({**good, text.split(":")[1]: "a lot"})
    summary_file.write_text(text)
    calls = count_runs(monkeypatch)
    rows = sweeps.run_sweep(RELU, relu_copy, progress=False)
    assert calls == ["act-relu"]
    assert rows[0]["status"] == "completed" and rows[0]["ratio_init"] == good["ratio_init"]


def test_non_finite_markers_and_unmeasured_values_in_a_summary_reach_the_tables(relu_copy):
    summary_file = relu_copy / "runs" / "act-relu" / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary_file.write_text(json.dumps({**summary, "ratio_init": "inf", "ratio_final": "nan", "test_loss": None}))
    rows = sweeps.collect(relu_copy, RELU)
    assert rows[0]["ratio_init"] == float("inf") and rows[0]["test_loss"] is None
    sweeps.write_tables(relu_copy, rows, ["act"])
    row = read_csv(relu_copy / "sweep.csv")[0]
    assert (row["ratio_init"], row["ratio_final"], row["test_loss"]) == ("inf", "nan", "")


# ---- 4. Ctrl-C and SIGTERM stop the whole sweep -----------------------------------------------------------------
def _workers(pid: int) -> set[int]:
    """The sweep's worker processes (multiprocessing's resource tracker is left out)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _started(out: Path) -> list[Path]:
    """Run directories whose training has logged at least one record."""
    started = []
    for run in sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else []:
        try:
            if (run / "metrics.jsonl").stat().st_size:
                started.append(run)
        except OSError:  # not written yet
            pass
    return started


# Every wait below ends on the sweep's state (its runs have logged, its process has ended), however slowly a loaded
# machine gets there; HANG_S only turns a sweep that never gets there into a failure rather than a stuck suite.
HANG_S = 180  # six times the 30 s bound that timed out at load 7; a hang still ends the test in minutes


def _sweep_process(tmp_path, jobs: int):
    """A real sweep process of three runs (each far too long to end by itself), returned once ``jobs`` of them are
    training: each has logged a record."""
    out = tmp_path / "s"
    args = ["sweep", "--seeds", "0,1,2", *CLI_TINY, "--steps", "200000", "--log-every", "100", "--eval-every", "100000"]
    env = {**os.environ, "TINYGRAD_ACT_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_act", *args, "--jobs", str(jobs), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    hang = time.monotonic() + HANG_S
    while len(_started(out)) < jobs:
        if process.poll() is not None or time.monotonic() > hang:
            process.kill()
            pytest.fail(f"the sweep ended or hung before {jobs} runs trained: {process.communicate()[1]}")
        time.sleep(0.02)
    return process, out


def _stopped(out: Path, running: int) -> None:
    """The runs that were training when the signal came ended interrupted, and no other run started."""
    started = [p for p in sorted((out / "runs").iterdir()) if (p / "config.json").exists()]
    assert len(started) == running  # no new run started after the signal
    for run in started:
        assert files.read_json(run / "summary.json")["status"] == "interrupted", run


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_one_signal_stops_a_serial_sweep_its_run_ends_interrupted_and_no_other_starts(
    tmp_path, monkeypatch, capsys, ctrl_c, signum, code
):
    """One process (jobs=1) and no workers: the signal comes to this process, from its first run's step 3."""
    original = experiment._train_step

    def signalled_at_3(*args):
        if args[8] == 3:
            os.kill(os.getpid(), signum)  # raised at once, in the run, as a real Ctrl-C or SIGTERM is
        return original(*args)

    monkeypatch.setattr(experiment, "_train_step", signalled_at_3)
    out = tmp_path / "s"
    argv = ["sweep", "--seeds", "0,1,2", *CLI_TINY, "--steps", "20", "--jobs", "1", "--out", str(out)]
    one_line_error(argv, capsys, code)
    _stopped(out, running=1)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_one_signal_stops_the_whole_parallel_sweep_running_runs_end_interrupted_and_no_worker_survives(
    tmp_path, ctrl_c, signum, code
):
    process, out = _sweep_process(tmp_path, 2)
    try:
        workers = _workers(process.pid)
        assert len(workers) == 2
        process.send_signal(signum)
        _, err = process.communicate(timeout=HANG_S)
    finally:
        process.kill()
        process.communicate()  # closes the pipes
    assert process.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    _stopped(out, running=2)
    assert not any(_alive(pid) for pid in workers)


def test_a_worker_whose_sweep_is_killed_does_not_keep_training(tmp_path):
    process, out = _sweep_process(tmp_path, 2)
    try:
        workers = _workers(process.pid)
        assert len(workers) == 2
        process.kill()
        process.wait()
        # The kernel's SIGINT interrupts each worker's run, which ends as an interrupted task does (STOP_GRACE_S).
        grace = time.monotonic() + STOP_GRACE_S
        while any(_alive(pid) for pid in workers) and time.monotonic() < grace:
            time.sleep(0.02)
        assert not any(_alive(pid) for pid in workers)
    finally:
        process.kill()
        process.communicate()  # closes the pipes


# ---- 5. an unreachable scheduler, a directory or a binary file as config ----------------------------------------
def test_an_unreachable_scheduler_fails_fast_with_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweeps, "DASK_CONNECT_TIMEOUT_S", 0.2)  # the connection is refused: 0.2 s of retries do
    started = time.monotonic()
    argv = ["sweep", "--acts", "relu", *CLI_TINY, "--steps", "2", "--scheduler", "tcp://127.0.0.1:1"]
    err = one_line_error([*argv, "--out", str(tmp_path / "s")], capsys, 2)
    assert "tcp://127.0.0.1:1" in err and time.monotonic() - started < 20


def test_a_config_that_is_a_directory_or_binary_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "conf.toml").mkdir()
    err = one_line_error(["sweep", str(tmp_path / "conf.toml"), "--out", str(tmp_path / "s")], capsys, 2)
    assert "conf.toml" in err and "directory" in err
    err = one_line_error(["sweep", str(tmp_path), "--out", str(tmp_path / "s")], capsys, 2)
    assert str(tmp_path) in err and "directory" in err
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00grid\x80\x81")
    with pytest.raises(UsageError, match="binary.toml"):
        sweeps.load_config(str(tmp_path / "binary.toml"))
    err = one_line_error(["sweep", str(tmp_path / "binary.toml"), "--out", str(tmp_path / "s")], capsys, 2)
    assert "binary.toml" in err
    assert not (tmp_path / "s").exists()


# ---- 6. every cell validated first ---------------------------------------------------------------------------
def test_a_bad_dataset_parameter_in_any_cell_fails_before_any_run_is_written(tmp_path, monkeypatch):
    calls = count_runs(monkeypatch)
    sweep = sweeps.Sweep({"data": ["spirals:n=200", "spirals:n=-5"]}, {k: v for k, v in TINY.items() if k != "data"})
    with pytest.raises(UsageError, match="n"):
        sweeps.run_sweep(sweep, tmp_path / "s", progress=False)
    assert calls == [] and not (tmp_path / "s").exists()


# ---- 7. a key given twice ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--grid", "depth=1", "--depths", "2"], ["depth", "--grid depth=1", "--depths 2"]),
        (["--grid", "act=relu", "--grid", "act=tanh"], ["act", "--grid act=relu", "--grid act=tanh"]),
        (["--acts", "relu", "--act", "tanh"], ["act", "--acts relu", "--act tanh"]),
        (["vanishing_depth", "--act", "tanh"], ["act", "vanishing_depth", "--act tanh"]),
    ],
)
def test_a_sweep_key_given_twice_is_refused_naming_the_key_and_both_sources(extra, named, tmp_path, capsys):
    argv = ["sweep", *extra, "--width", "8", "--no-progress", "--out", str(tmp_path / "s")]
    err = one_line_error(argv, capsys, 2)
    assert all(n in err for n in named), err
    assert not (tmp_path / "s").exists()


# ---- 8. diverged runs say so -------------------------------------------------------------------------------------
def test_a_diverged_run_reads_diverged_in_the_tables_the_figures_and_the_findings(tmp_path, monkeypatch, sweep_figures):
    grid = {"act": ["relu", "sigmoid"], "residual": [False], "norm": ["none"]}
    fixed = {**TINY, "depth": 3, "init": "xavier_normal:gain=1e20", "steps": 4, "log_every": 2}
    tiny = sweeps.Sweep(grid, fixed, "rescue", "tiny rescue")
    monkeypatch.setattr(sweeps, "load_config", lambda name: tiny)
    readme = findings.generate(
        ["rescue"], runs_root=tmp_path / "runs", out_dir=tmp_path / "out", jobs=1, progress=False
    )
    root = tmp_path / "runs" / "rescue"
    table = {row["act"]: row for row in read_csv(root / "sweep.csv")}
    assert table["relu"]["status"] == "diverged"
    assert (table["relu"]["verdict"], table["relu"]["verdict_final"]) == ("diverged", "diverged")
    assert table["sigmoid"]["verdict"] == "vanishing"
    md_relu = next(line for line in (root / "sweep.md").read_text().splitlines() if line.startswith("| relu"))
    assert "| diverged |" in md_relu and "healthy" not in md_relu and "exploding" not in md_relu
    text = readme.read_text()
    relu_line = next(line for line in text.splitlines() if line.startswith("| relu | plain"))
    assert relu_line.count("diverged") == 2, relu_line
    check = next(line for line in text.splitlines() if "relu plain: r = " in line)  # the check under the claim
    assert "relu plain: r = inf" in check and "**does not hold**" in check, check  # diverged counts as r = inf
    assert (root / "figures" / "delta_profiles.png").exists()


# ---- 9. run names ------------------------------------------------------------------------------------------------
def test_single_run_names_spell_every_setting_that_differs_from_the_default():
    base = Config(depth=80)
    variants = [
        Config(depth=80, dtype="float32"),
        Config(depth=80, data="spirals:n=200"),
        Config(depth=80, optimizer="adam"),
        Config(depth=80, lr=0.1),
        Config(depth=80, width=32),
        Config(depth=80, init="xavier_normal:gain=2"),
        Config(depth=80, init="xavier_normal:gain=4"),
    ]
    names = [c.default_name() for c in [base, *variants]]
    assert len(set(names)) == len(names), names
    assert names[0] == "sigmoid-auto-d80-s0" and names[1] == "sigmoid-auto-d80-float32-s0"
    assert "adam" in names[3] and "lr0.1" in names[4] and "w32" in names[5]
    assert Config(depth=80, dtype="float32").default_name() == names[1]  # deterministic


# ---- 10. no global matplotlib state, no progress bar off a terminal, no writing through links -------------------
def test_sweep_and_findings_figures_leave_the_matplotlib_backend_alone(tmp_path, sweep_figures):
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    try:
        rows = [{"act": "tanh", "depth": 2, "run": "c", "status": "completed", "ratio_init": 0.5}]
        sweeps.figures(tmp_path, rows, ["act", "depth"])
        ctx = findings.Context("x", None, [], tmp_path, tmp_path / "out")
        fig, ax = plots.figure(figsize=(2, 2))
        ax.plot([1, 2])
        assert ctx.figure(fig, "plot") == "![x plot](figures/x_plot.png)"
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)


def test_the_sweep_progress_bar_stays_silent_when_stderr_is_not_a_terminal(tmp_path, capsys):
    sweeps.run_sweep(sweeps.Sweep({"act": ["relu"]}, TINY, name="quiet"), tmp_path, progress=True)
    assert "sweep quiet" not in capsys.readouterr().err


def test_links_planted_at_the_sweep_tables_and_the_readme_are_replaced_not_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    root = tmp_path / "runs" / "rescue"
    root.mkdir(parents=True)
    files.Owned(root, "sweep").save()  # a sweep's directory (the lab wrote it), with links planted in it
    for name in ("sweep.csv", "sweep.md", "sweep.json"):
        (root / name).symlink_to(victim)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").symlink_to(victim)
    grid = {"act": ["relu"], "residual": [False], "norm": ["none"]}
    monkeypatch.setattr(sweeps, "load_config", lambda name: sweeps.Sweep(grid, TINY, "rescue", "tiny"))
    findings.generate(["rescue"], runs_root=tmp_path / "runs", out_dir=tmp_path / "out", jobs=1, progress=False)
    assert victim.read_text() == "precious"
    for path in (root / "sweep.csv", root / "sweep.md", root / "sweep.json", tmp_path / "out" / "README.md"):
        assert path.is_file() and not path.is_symlink(), path
