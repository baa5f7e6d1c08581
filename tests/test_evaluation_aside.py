"""Evaluations aside (lab/run/aside.py): a run whose whole-split evaluations run in a worker thread writes the same
files, record for record, as one that evaluates at once; the end, divergence, a signal and a checkpoint write what
was held first; no thread outlives the run, however it ends; a sweep's runs (draw_aside=False) start none."""

import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tinygrad_act.common import files
from tinygrad_act.lab.run import aside, checkpoint, experiment
from tinygrad_act.lab.run.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.identical import READERS  # noqa: E402  (equal files: the same text, timing fields cut out)


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def free_core(monkeypatch):
    """A second core, whatever the machine running the tests has: the runs that draw aside evaluate aside."""
    monkeypatch.setattr(aside, "free_core", lambda: True)


def _config(out, **options) -> Config:
    settings = dict(depth=3, width=8, steps=24, log_every=2, eval_every=4, data="spirals:n=300", figures=False)
    return Config(**{**settings, **options, "out": str(out)})


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory):
    """The directories of ``_config()`` and ``_config(eval_every=12)`` run at once and never stopped, made once for
    the module before any test patches anything, and only read (what a stopped or resumed run is compared with)."""
    root = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYGRAD_ACT_CACHE", str(root / "cache"))  # data_cache, for a module's fixture
        for name, options in {"default": {}, "eval_every=12": {"eval_every": 12}}.items():
            experiment.run(_config(root / name, **options), progress=False)
    return {"default": root / "default", "eval_every=12": root / "eval_every=12"}


class Evaluations:
    """Spies on aside.whole_splits: the thread each evaluation ran in; each one aside made ``delay`` s slower, or
    with ``held`` kept from starting until the run's log flushes after it was handed to the worker (so that records
    are still held while the run goes on, however fast its steps, and a flush always finds its evaluation running);
    failing if ``fail``."""

    def __init__(self, monkeypatch, delay=0.0, held=False):
        self.threads, self.delay, self.fail = [], delay, False
        self._original = aside.whole_splits
        self._flushes, self._flushed = 0, threading.Condition()  # the log's flushes, counted as each one starts
        monkeypatch.setattr(aside, "whole_splits", self)
        if held:
            flush, submit = aside.EvaluatingLog.flush, aside.Worker.submit

            def flushing(log):
                with self._flushed:
                    self._flushes += 1
                    self._flushed.notify_all()
                flush(log)

            def submitting(worker, fn, *args):  # in the training thread, which alone flushes
                if fn is self:  # an evaluation aside: held until a flush later than this
                    fn = functools.partial(self._after_flush, self._flushes)
                return submit(worker, fn, *args)

            monkeypatch.setattr(aside.EvaluatingLog, "flush", flushing)
            monkeypatch.setattr(aside.Worker, "submit", submitting)

    def _after_flush(self, flushes, model, dataset):
        with self._flushed:
            assert self._flushed.wait_for(lambda: self._flushes > flushes, timeout=60), "no flush came"
        return self(model, dataset)

    def __call__(self, model, dataset):
        here = threading.current_thread()
        self.threads.append(here.name)
        if here is not threading.main_thread():
            time.sleep(self.delay)
            if self.fail:
                raise RuntimeError("the evaluation failed")
        return self._original(model, dataset)

    @property
    def aside(self) -> int:
        return sum(name != threading.main_thread().name for name in self.threads)


def _same_files(a: Path, b: Path) -> None:
    for name, read in READERS.items():
        assert read(a / name) == read(b / name), name


def _timeless(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "time"} for record in records]


def _no_worker_thread() -> bool:
    return not [thread for thread in threading.enumerate() if thread.name.startswith("aside")]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dtype": "float32", "act": "sigmoid", "depth": 6},
        {"norm": "batch", "act": "tanh"},  # batch norm's running statistics go to the shadow too
        {"act": "relu", "init": "he_normal", "lr": 40.0, "depth": 6, "eval_every": 1},  # diverges, evaluations held
    ],
)
def test_records_evaluated_aside_equal_those_evaluated_at_once(tmp_path, monkeypatch, options):
    evaluations = Evaluations(monkeypatch, delay=0.01)
    at_once = experiment.run(_config(tmp_path / "at_once", **options), progress=False)
    assert evaluations.aside == 0  # a sweep's run (draw_aside=False) evaluates in its own thread
    aside_run = experiment.run(_config(tmp_path / "aside", **options), progress=False, draw_aside=True)
    assert evaluations.aside >= 1 and aside_run["status"] == at_once["status"]
    _same_files(tmp_path / "at_once", tmp_path / "aside")
    assert _no_worker_thread()


def test_the_jacobians_theory_computed_aside_equals_the_one_computed_at_once(tmp_path):
    options = {"act": "sigmoid", "depth": 4, "width": 16, "steps": 6, "jacobian": True}
    at_once = experiment.run(_config(tmp_path / "at_once", **options), progress=False)
    aside_run = experiment.run(_config(tmp_path / "aside", **options), progress=False, draw_aside=True)
    assert at_once["jacobian"]["theory"]["applies"] and aside_run["jacobian"] == at_once["jacobian"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_evaluations_are_held_keeps_every_record_logged_before_it(
    tmp_path, monkeypatch, never_stopped, ctrl_c, signum
):
    evaluations = Evaluations(monkeypatch, held=True)  # the record of step 12 is held when the signal comes
    original = experiment._train_step

    def signalled_at_13(*args):
        if args[8] == 13:
            os.kill(os.getpid(), signum)  # held until the step is done, as a real Ctrl-C or SIGTERM is
        return original(*args)

    monkeypatch.setattr(experiment, "_train_step", signalled_at_13)
    summary = experiment.run(_config(tmp_path / "run", eval_every=12), progress=False, draw_aside=True)
    assert summary["status"] == "interrupted" and evaluations.aside >= 1
    records = files.read_records(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(0, 14, 2))  # the step the signal came in is whole too
    assert all(r["test_loss"] is not None for r in records if r["step"] in (0, 12))
    whole = never_stopped["eval_every=12"]
    assert _timeless(records) == _timeless(files.read_records(whole))[: len(records)]
    assert _no_worker_thread()


def test_a_run_resumed_after_a_signal_while_evaluations_are_held_equals_one_never_stopped(
    tmp_path, monkeypatch, never_stopped
):
    Evaluations(monkeypatch, held=True)
    original = experiment._train_step

    def interrupted_at_9(*args):
        if args[8] == 9:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(experiment, "_train_step", interrupted_at_9)
    experiment.run(_config(tmp_path / "run"), progress=False, draw_aside=True)
    monkeypatch.setattr(experiment, "_train_step", original)
    resumed = experiment.resume(tmp_path / "run", progress=False, draw_aside=True)
    assert resumed["status"] == "completed" and resumed["resumed"]["from_step"] == 9
    _same_files_but_resumed(never_stopped["default"], tmp_path / "run")  # evaluated at once: the same records as aside


def _same_files_but_resumed(whole: Path, resumed: Path) -> None:
    for name in ("metrics.jsonl", "metrics.csv"):
        assert READERS[name](whole / name) == READERS[name](resumed / name), name


def test_a_checkpoint_is_written_only_once_every_record_before_it_is(tmp_path, monkeypatch):
    evaluations = Evaluations(monkeypatch, held=True)
    monkeypatch.setattr(experiment, "CHECKPOINT_INTERVAL", 0.0)  # a checkpoint at every measured step
    save, missing = checkpoint.save, []

    def checked_save(path, config, steps_done, *args, **kwargs):
        logged = {record["step"] for record in files.read_records(path)}
        missing.extend(step for step in range(0, steps_done, config.log_every) if step not in logged)
        return save(path, config, steps_done, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", checked_save)
    experiment.run(_config(tmp_path / "run"), progress=False, draw_aside=True)
    assert evaluations.aside >= 1 and missing == []


def test_no_worker_thread_outlives_a_run_whose_evaluation_fails(tmp_path, monkeypatch):
    evaluations = Evaluations(monkeypatch)
    evaluations.fail = True
    with pytest.raises(RuntimeError, match="the evaluation failed"):
        experiment.run(_config(tmp_path / "run"), progress=False, draw_aside=True)
    assert evaluations.aside >= 1 and _no_worker_thread()


def test_a_run_works_aside_only_when_it_draws_aside_on_a_free_core_and_trains_an_mlp_without_tensorboard(
    monkeypatch,
):
    config = Config()
    assert aside.wanted(config, draw_aside=True)
    assert not aside.wanted(config, draw_aside=False)  # a sweep's run: the other cores train other runs
    assert not aside.wanted(Config(model="rnn"), draw_aside=True)
    assert not aside.wanted(Config(tensorboard=True), draw_aside=True)
    monkeypatch.setattr(aside, "free_core", lambda: False)
    assert not aside.wanted(config, draw_aside=True)


class _InterruptedLog:
    """A run log whose write is stopped as RunLog's is by a signal: the record whole in the log, then
    KeyboardInterrupt raised as the write ends (its interrupts_deferred block); once, on the write of ``step``."""

    def __init__(self, step: int):
        self.records, self.step = [], step

    def write(self, record: dict) -> None:
        self.records.append(record)
        if record["step"] == self.step:
            self.step = None
            raise KeyboardInterrupt


def test_a_signal_raised_as_a_held_records_write_ends_neither_loses_nor_repeats_a_record():
    written = _InterruptedLog(step=1)
    log = aside.EvaluatingLog(written, model=None, dataset=None, worker=aside.Worker(False))
    with pytest.raises(KeyboardInterrupt):
        for step in range(4):
            log.write({"step": step})
    log.flush()  # what the training loop does on the signal
    assert [record["step"] for record in written.records] == [0, 1]
    log.write({"step": 2})
    assert [record["step"] for record in written.records] == [0, 1, 2]
