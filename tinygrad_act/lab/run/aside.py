"""Work beside the training loop, in one worker thread: the whole-split evaluations, and the Jacobian's theory.

A run scores its model on the whole training and test splits at every evaluated step (11 steps in the default run,
about a sixth of its training time) and predicts the Jacobian's spectrum from its configuration (free probability,
about 0.1 s) before it trains. Neither needs the training loop's thread: ``Worker(True)`` runs them in a thread of
its own while training goes on, each evaluation on a copy of the weights after its step's update (the optimizer
changes the live arrays in place). numpy releases the GIL in its matrix products and in its loops over large
arrays, so the evaluation's chunks of 1000 examples run on the second core while the training step's small
operations hold the GIL. Measured on the default run (2 cores, load 4-7, per thread from /proc/thread-self/schedstat):
while an evaluation runs beside it, a training step sleeps 0.12 ms more waiting for the GIL (its 1.9 ms on the CPU
unchanged), and the evaluation, 40 ms on the CPU, sleeps 8-15 ms; the theory is Python and holds the GIL more (the
steps beside it sleep 0.6-0.9 ms each while it runs, about 40 ms of its 130). The training thread's time less what
it waited for a CPU another process held: 2.68 s with the evaluations and theory at once, 2.42 s aside (8 runs
alternated, figures off). ``Worker(False)`` does the same work at once in the caller's thread, as a sweep's runs
do: there the other cores train other runs.

The records stay what they were: ``EvaluatingLog`` holds an evaluated step's record until its numbers are in and
every later record behind it, so the log receives the same records, whole, in step order (the same numbers: the
evaluation is the same arithmetic on the same weights). ``flush`` writes what is held, as the training loop does at
its end, after divergence, on Ctrl-C or SIGTERM and before a checkpoint (never ahead of metrics.jsonl). An
evaluation goes aside only when the worker is free (the theory at the run's start, the previous evaluation): else
it is done at once, so no more than one waits and the shadow's weights are never copied while the worker reads them.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ...common.errors import interrupts_deferred
from ..data import tasks

FINAL_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def wanted(config, draw_aside: bool) -> bool:
    """Whether a run works aside: a single run that owns the machine (``draw_aside``, the command line's: a sweep's
    runs share the cores among themselves), with a second core, training an MLP (a recurrent run evaluates in its
    own thread), without TensorBoard (its histograms read the live weights when a record is written)."""
    return draw_aside and config.model != "rnn" and not config.tensorboard and free_core()


def free_core() -> bool:
    """Whether the process may run on more than one core (its CPU affinity, where the system says)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores > 1


class Worker:
    """Runs functions one at a time, in submission order: in a thread of its own (``aside``), else at once in the
    caller's. A context manager: leaving it waits for the function in progress and drops those not started."""

    def __init__(self, aside: bool):
        self.aside = aside
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aside") if aside else None  # a thread on submit
        self._last = None  # the Future of the last function submitted

    @property
    def busy(self) -> bool:
        """Whether a function submitted has not finished."""
        return self._last is not None and not self._last.done()

    def submit(self, fn, *args) -> Future:
        """``fn(*args)``'s Future (aside), or a finished one (at once: an exception is raised here)."""
        if self._executor is not None:
            self._last = self._executor.submit(fn, *args)
            return self._last
        done = Future()
        done.set_result(fn(*args))
        return done

    def close(self) -> None:
        """End the thread (a signal meanwhile waits until it has ended)."""
        if self._executor is not None:
            with interrupts_deferred():
                self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def settled(entry: dict) -> dict:
    """``entry`` with each value a worker computes (a Future) replaced by its result, waited for."""
    return {key: value.result() if isinstance(value, Future) else value for key, value in entry.items()}


def whole_splits(model, dataset) -> dict:
    """{train_loss, train_accuracy, test_loss, test_accuracy}: ``model`` on the whole splits (tasks.evaluate)."""
    with np.errstate(all="ignore"):  # per thread: an exploding model's scores are inf or nan, as the training loop's
        train = tasks.evaluate(model, dataset.x_train, dataset.y_train, task=dataset.task)
        test = tasks.evaluate(model, dataset.x_test, dataset.y_test, task=dataset.task)
    return dict(zip(FINAL_KEYS, (*train, *test)))


def final_evaluation(records: list[dict]) -> dict:
    """The summary's whole-split numbers: those of the last record. A completed run's last step is always an
    evaluation step (experiment._evaluated), evaluated after its update, so evaluating again would repeat them."""
    last = records[-1]
    assert all(key in last for key in FINAL_KEYS), f"step {last['step']} of a completed run was not evaluated"
    return {key: last[key] for key in FINAL_KEYS}


class EvaluatingLog:
    """A run's log (measure/records.RunLog or run/tensorboard.TensorBoardLog) whose evaluated records get their
    whole-split numbers from ``worker``: at once, or aside on ``shadow`` (a model of the same architecture that the
    worker may read: the weights are copied into it), the records written whole and in step order."""

    def __init__(self, log, model, dataset, worker: Worker, shadow=None):
        self._log, self._model, self._dataset, self._worker = log, model, dataset, worker
        self._shadow = shadow if worker.aside else None
        self._evaluations = {}  # step -> the Future of its record's numbers, until the record is written
        self._held = collections.deque()  # (record, its numbers' Future or None), in step order

    @property
    def records(self) -> list[dict]:
        """The records written (as RunLog.records)."""
        return self._log.records

    def evaluate(self, record: dict) -> None:
        """Give ``record`` (written next, by ``write``) the whole-split numbers of the model as it is now: aside
        if the worker is free (then it has done with the shadow), else at once (the same numbers)."""
        if self._shadow is None or self._worker.busy:
            record.update(whole_splits(self._model, self._dataset))
            return
        self._shadow.load_state_dict(self._model.state_dict())
        record.update(dict.fromkeys(FINAL_KEYS))  # their place in the record now, their values when computed
        self._evaluations[record["step"]] = self._worker.submit(whole_splits, self._shadow, self._dataset)

    def write(self, record: dict) -> None:
        """Log ``record`` after those before it, once its numbers are in (now, if the worker has them). A signal
        waits until the records written here are whole and out of the queue: none is lost, none written twice."""
        with interrupts_deferred():
            self._held.append((record, self._evaluations.pop(record["step"], None)))
            self._write_held(wait=False)

    def flush(self) -> None:
        """Wait for the evaluations in progress and write every record held (a signal waits until they are)."""
        with interrupts_deferred():
            self._write_held(wait=True)

    def _write_held(self, wait: bool) -> None:
        while self._held:
            record, numbers = self._held[0]
            if numbers is not None:
                if not (wait or numbers.done()):
                    return
                record.update(numbers.result())
            self._held.popleft()  # first: a signal held by the log's own write is raised as that write ends
            self._log.write(record)

    def close(self) -> None:
        """Close the log (the records held stay unwritten: ``flush`` first to keep them)."""
        self._log.close()
