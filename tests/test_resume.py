"""Checkpoints and resume: state_dict round trips, checkpoint.npz, and ``experiment --resume`` continuing a run
so that its metrics.jsonl equals that of the same run never interrupted (time aside)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_act import cli, makeargs
from tinygrad_act.common import files
from tinygrad_act.common.errors import UsageError
from tinygrad_act.engine.tensor import Tensor
from tinygrad_act.lab.run import checkpoint, experiment
from tinygrad_act.lab.run.config import Config
from tinygrad_act.nn import optim
from tinygrad_act.nn.modules import MLP, cross_entropy
from tinygrad_act.nn.step import Step

TIME_FIELDS = ("time", "wall")


def _config(out, **options) -> Config:
    settings = dict(depth=3, width=8, steps=40, log_every=5, eval_every=100, data="spirals:n=300", figures=False)
    return Config(**{**settings, **options, "out": str(out)})


def _records(path) -> list[dict]:
    """metrics.jsonl without its time fields, as JSON text (nan compares equal to nan there)."""
    return [json.dumps({k: v for k, v in r.items() if k not in TIME_FIELDS}) for r in files.read_records(path)]


OPTIONS = {
    "momentum-sgd": {},  # SGD with momentum 0.9, the default
    "adam": {"optimizer": "adam", "lr": 0.01},
    "eval-steps-batchnorm": {"eval_every": 10, "norm": "batch"},
}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """``whole(name)``: (directory, summary) of the uninterrupted run of ``_config(**OPTIONS[name])``, made once for
    the module and only read (the runs a resumed one must equal); a test asks for it outside its patches."""
    root, made = tmp_path_factory.mktemp("whole"), {}

    def get(name: str = "momentum-sgd"):
        if name not in made:
            made[name] = root / name, experiment.run(_config(root / name, **OPTIONS[name]), progress=False)
        return made[name]

    return get


@pytest.fixture(scope="module")
def stopped_at_12(tmp_path_factory):
    """The default run interrupted between steps 12 and 13 (its checkpoint at step 12), made once for the module;
    each test copies it (``stopped``) before it changes anything."""
    path = tmp_path_factory.mktemp("made") / "b"
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_at(patch, 12, "between")
        assert experiment.run(_config(path), progress=False)["status"] == "interrupted"
    return path


@pytest.fixture
def stopped(stopped_at_12, tmp_path):
    """This test's own copy of ``stopped_at_12``, at tmp_path / "b"."""
    return Path(shutil.copytree(stopped_at_12, tmp_path / "b", symlinks=True))


def _interrupt_at(monkeypatch, step: int, where: str):
    """Raise KeyboardInterrupt at ``step``: between two steps, or in the middle of one (after its backward pass,
    captured or not: the forward pass has changed batch norm's running statistics, the update has not run)."""
    original_step, original_call = experiment._train_step, Step.__call__
    current = {"step": None}

    def train_step(*args):
        current["step"] = args[8]
        if where == "between" and args[8] == step:
            raise KeyboardInterrupt
        return original_step(*args)

    def forward_backward(self, *args):
        result = original_call(self, *args)
        if where == "mid-step" and current["step"] == step:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(experiment, "_train_step", train_step)
    monkeypatch.setattr(Step, "__call__", forward_backward)


def _batches(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(16, 4)), rng.integers(0, 3, size=16)) for _ in range(n)]


def _train(model, optimizer, batches):
    for x, y in batches:
        loss = cross_entropy(model(Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_model_state_dict_round_trips_parameters_and_batchnorm_running_statistics():
    model = MLP(4, [8, 8], 3, activation="tanh", norm="batch", seed=1)
    _train(model, optim.get("sgd", model.parameters(), lr=0.1), _batches(5))
    state = model.state_dict()
    assert "blocks.0.linear.weight" in state and "blocks.1.norm.running_var" in state and "output.bias" in state
    fresh = MLP(4, [8, 8], 3, activation="tanh", norm="batch", seed=2)
    fresh.load_state_dict(state)
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    state["blocks.0.linear.weight"][:] = 7.0  # a copy: changing it leaves both models alone
    for kept in (model, fresh):
        assert not np.any(kept.blocks[0].linear.weight.data == 7.0)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("output.bias"), "lacks 'output.bias'"),
        (lambda s: s.update(extra=np.zeros(1)), "unexpected entry 'extra'"),
        (lambda s: s.update({"output.weight": np.zeros((8, 4))}), "'output.weight' is float64[8, 4], expected"),
        (lambda s: s.update({"output.bias": np.zeros(3, np.float32)}), "'output.bias' is float32[3]"),
    ],
)
def test_load_state_dict_names_the_first_mismatch_and_changes_nothing(change, message):
    model = MLP(4, [8], 3, seed=0)
    before = model.state_dict()
    state = model.state_dict()
    change(state)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("spec", ["sgd:momentum=0.9", "sgd:momentum=0.9,nesterov=True", "adam"])
def test_optimizer_state_dict_continues_training_exactly(spec):
    batches = _batches(12)
    straight = MLP(4, [8], 3, seed=0)
    _train(straight, optim.get(spec, straight.parameters(), lr=0.05), batches)
    first = MLP(4, [8], 3, seed=0)
    first_optimizer = optim.get(spec, first.parameters(), lr=0.05)
    _train(first, first_optimizer, batches[:5])
    second = MLP(4, [8], 3, seed=9)  # other weights and a fresh optimizer: everything comes from the states
    second.load_state_dict(first.state_dict())
    second_optimizer = optim.get(spec, second.parameters(), lr=0.05)
    second_optimizer.load_state_dict(first_optimizer.state_dict())
    assert second_optimizer.steps == 5
    _train(second, second_optimizer, batches[5:])
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[name], value, err_msg=name)


def test_optimizer_load_state_dict_refuses_another_optimizers_state():
    model = MLP(4, [8], 3, seed=0)
    adam = optim.get("adam", model.parameters())
    _train(model, adam, _batches(2))
    with pytest.raises(UsageError, match="optimizer state lacks 'momentum'"):
        optim.get("sgd", model.parameters()).load_state_dict(adam.state_dict())


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("where", ["between", "mid-step"])
def test_resumed_run_logs_the_same_records_as_an_uninterrupted_one(tmp_path, monkeypatch, whole, name, where):
    options = OPTIONS[name]
    straight, summary = whole(name)
    assert summary["status"] == "completed"
    with monkeypatch.context() as patch:
        patch.setattr(experiment, "CHECKPOINT_INTERVAL", 0.0)  # a checkpoint at every measured step
        _interrupt_at(patch, 17, where)
        stopped = experiment.run(_config(tmp_path / "b", **options), progress=False)
    assert stopped["status"] == "interrupted"
    # Between two steps the interruption itself is checkpointed; in the middle of one, the last measured step.
    expected = 17 if where == "between" else 16
    assert checkpoint.load(tmp_path / "b", _config(tmp_path / "b", **options)).step == expected
    resumed = experiment.resume(tmp_path / "b", progress=False)
    assert resumed["status"] == "completed" and resumed["steps_done"] == 40
    assert _records(tmp_path / "b") == _records(straight)
    assert resumed["test_accuracy"] == summary["test_accuracy"]
    assert _csv_without_time(tmp_path / "b") == _csv_without_time(straight)


def test_with_checkpoints_a_second_apart_a_crash_resumes_from_the_first_measured_step(tmp_path, monkeypatch, whole):
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 17, "mid-step")
        experiment.run(_config(tmp_path / "b"), progress=False)
    assert checkpoint.load(tmp_path / "b", _config(tmp_path / "b")).step == 1  # step 0's; steps 5..15 < 1 s later
    experiment.resume(tmp_path / "b", progress=False)
    assert _records(tmp_path / "b") == _records(whole()[0])


def test_an_uninterrupted_run_keeps_its_checkpoint_current_at_the_end(whole):
    path = whole()[0]
    assert checkpoint.load(path, _config(path)).step == 40


def test_sigint_to_a_running_experiment_then_resume_from_the_command_line_matches(tmp_path, ctrl_c):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    args = ["--depth", "3", "--width", "8", "--steps", "1500", "--log-every", "5", "--data", "spirals:n=300"]
    args += ["--no-figures", "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_act", "experiment", *args, "--out", str(tmp_path / "b")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = tmp_path / "b" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    interrupted = files.read_json(tmp_path / "b" / "summary.json")
    assert interrupted["status"] == "interrupted" and interrupted["steps_done"] < 1500
    # The signal to a real process is the point above; the command line that resumes runs in this process.
    assert cli.main(["experiment", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0
    assert files.read_json(tmp_path / "b" / "summary.json")["status"] == "completed"
    cli.main(["experiment", *args, "--out", str(tmp_path / "a")])
    assert _records(tmp_path / "b") == _records(tmp_path / "a")


def test_resuming_a_completed_run_says_there_is_nothing_to_resume(tmp_path, capsys, whole):
    path = shutil.copytree(whole()[0], tmp_path / "a", symlinks=True)
    assert cli.main(["experiment", "--resume", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is completed: there is nothing to resume" in error


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.write_bytes(b"not a zip file"), "checkpoint.npz is not a readable .npz archive"),
        (lambda f: f.unlink(), "has no checkpoint.npz: nothing to resume from"),
        (
            lambda f: np.savez(f, format=np.array(1), step=np.array(3), config=np.array([object()], dtype=object)),
            "checkpoint.npz holds pickled Python objects (config.npy), which are never loaded",
        ),  # fmt: skip
    ],
    ids=["corrupt", "missing", "pickled"],
)
def test_a_corrupt_or_missing_checkpoint_is_one_line(stopped, capsys, damage, message):
    damage(stopped / "checkpoint.npz")
    assert cli.main(["experiment", "--resume", str(stopped)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error


def test_a_checkpoint_from_another_run_is_refused(tmp_path, stopped, capsys):
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_at(patch, 12, "between")
        experiment.run(_config(tmp_path / "c", width=9), progress=False)
    (tmp_path / "c" / "checkpoint.npz").replace(stopped / "checkpoint.npz")
    assert cli.main(["experiment", "--resume", str(stopped)]) == 2
    assert "belongs to another run: its width is 9, config.json says 8" in capsys.readouterr().err


def test_resume_refuses_options_that_would_change_the_run(stopped, capsys):
    assert cli.main(["experiment", "--resume", str(stopped), "--depth", "4"]) == 2
    assert "--depth cannot change a resumed run" in capsys.readouterr().err
    # The same value as the run's is no change.
    assert cli.main(["experiment", "--resume", str(stopped), "--depth", "3", "--no-progress"]) == 0


def test_make_resume_variable_becomes_the_resume_option_for_experiments_only():
    assert makeargs.arguments("experiment", {"RESUME": "runs/x"}) == ["experiment", "--resume", "runs/x"]
    assert "--resume" not in makeargs.arguments("sweep", {"RESUME": "runs/x"})


def _csv_without_time(run_dir):
    """metrics.csv as rows of cells, the wall-clock column left out (it differs between any two runs)."""
    rows = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()]
    column = rows[0].index("time")
    return [row[:column] + row[column + 1 :] for row in rows]


def test_a_checkpoint_written_before_a_setting_existed_resumes_with_that_settings_default(stopped):
    """A run interrupted under an older version (its checkpoint and config.json lack sigma_b2 and jacobian,
    added since) resumes: a missing setting had its default, as the sweep's reuse check assumes."""
    import zipfile

    run = stopped
    with zipfile.ZipFile(run / "checkpoint.npz") as archive:
        arrays = {name[:-4]: np.load(archive.open(name)) for name in archive.namelist()}
    old = {k: v for k, v in json.loads(str(arrays["config"])).items() if k not in ("sigma_b2", "jacobian")}
    arrays["config"] = np.array(json.dumps(old))
    np.savez(run / "checkpoint.npz", **arrays)
    stored = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({k: v for k, v in stored.items() if k not in ("sigma_b2", "jacobian")}))
    summary = experiment.resume(run, progress=False)
    assert summary["status"] == "completed"


def test_a_run_resumed_twice_records_and_prints_from_which_steps(tmp_path, monkeypatch, capsys, whole):
    path = tmp_path / "b"
    with monkeypatch.context() as patch:
        patch.setattr(experiment, "CHECKPOINT_INTERVAL", 0.0)
        _interrupt_at(patch, 12, "between")
        assert "resumed" not in experiment.run(_config(path), progress=False)
    with monkeypatch.context() as patch:
        patch.setattr(experiment, "CHECKPOINT_INTERVAL", 0.0)
        _interrupt_at(patch, 27, "between")
        first = experiment.resume(path, progress=False)
    assert first["status"] == "interrupted" and first["resumed"] == {"from_step": 12, "times": 1, "from_steps": [12]}
    assert cli.main(["experiment", "--resume", str(path), "--no-progress"]) == 0
    summary = files.read_json(path / "summary.json")
    assert summary["status"] == "completed"
    assert summary["resumed"] == {"from_step": 27, "times": 2, "from_steps": [12, 27]}
    assert "resumed 2 times, from steps 12, 27" in " ".join(capsys.readouterr().out.split())
    assert _records(path) == _records(whole()[0])  # resumed twice, logged as if never stopped
