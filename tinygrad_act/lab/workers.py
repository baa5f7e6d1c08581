"""Local worker processes that stop together: one Ctrl-C or SIGTERM ends every task, and none outlives its parent.

Each worker is a spawned interpreter that takes tasks from a queue. Workers sit in their own process group, so
a Ctrl-C at the terminal reaches only the parent, which then sends each worker exactly one SIGINT (a second one
could cut short what the interrupted task still writes). Queued tasks never start once the parent stops. A
worker whose parent dies, even by SIGKILL, gets SIGINT from the kernel (Linux: prctl PR_SET_PDEATHSIG; elsewhere
it checks its parent between tasks). SIGINT and SIGTERM stay blocked from before a worker is started until it
has installed its handlers, so no signal is lost in between.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import time
import traceback

from ..common.errors import sigterm_as_interrupt

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
STOP_GRACE_S = 120  # an interrupted task still evaluates and writes its summary
_PR_SET_PDEATHSIG = 1


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as the cause of the one re-raised here."""


def run_all(function, tasks: list, jobs: int, environment: dict | None = None):
    """Yield ``(index, function(task))`` in completion order, computed by ``jobs`` worker processes.

    ``environment``: variables set for the workers (e.g. one BLAS thread each), not for this process.

    A worker's exception is re-raised here; a task that ends with KeyboardInterrupt stops everything and raises
    KeyboardInterrupt. Closing the generator early (an exception in the caller, Ctrl-C, SIGTERM) stops the
    workers: use it as ``with contextlib.closing(run_all(...))``.
    """
    context = multiprocessing.get_context("spawn")
    todo, results, stop = context.Queue(), context.Queue(), context.Event()
    count = min(jobs, len(tasks))
    for item in [*enumerate(tasks), *[None] * count]:
        todo.put(item)
    workers = [
        context.Process(target=_worker, args=(function, todo, results, stop, os.getpid()), daemon=True)
        for _ in range(count)
    ]
    saved = {key: os.environ.get(key) for key in environment or {}}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # inherited by the workers (see above)
    try:
        os.environ.update(environment or {})
        for worker in workers:
            worker.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finished = False
    try:
        for _ in tasks:
            index, kind, value = _next_result(results, workers)
            if kind == "interrupted":
                raise KeyboardInterrupt
            if kind == "error":
                error, text = value
                raise error from RemoteTraceback(text)
            yield index, value
        finished = True
    finally:
        _stop(workers, stop, interrupt=not finished)


def _next_result(results, workers):
    while True:
        try:
            return results.get(timeout=0.2)
        except queue.Empty:
            pass
        crashed = [w for w in workers if w.exitcode not in (None, 0)]
        if crashed or not any(w.is_alive() for w in workers):
            with contextlib.suppress(queue.Empty):  # its last result may still be on the way
                return results.get(timeout=1)
            codes = ", ".join(str(w.exitcode) for w in crashed) or "0"
            raise RuntimeError(f"a worker process ended before its tasks were done (exit code {codes})")


def _stop(workers, stop, interrupt: bool) -> None:
    """No new task starts; running ones get one SIGINT (if ``interrupt``) and are waited for; a second Ctrl-C
    kills them."""
    stop.set()
    for worker in workers if interrupt else ():
        if worker.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGINT)
    try:
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()


def _worker(function, todo, results, stop, parent: int) -> None:
    """A worker's main loop: tasks until the queue says stop, the parent stops us, or a task is interrupted."""
    os.setpgrp()  # a terminal's Ctrl-C goes to the parent, which forwards exactly one SIGINT
    _exit_with(parent)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with sigterm_as_interrupt():
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            while not stop.is_set() and os.getppid() == parent:
                item = todo.get()
                if item is None or stop.is_set():
                    return
                index, task = item
                try:
                    value = function(task)
                except KeyboardInterrupt:
                    raise
                except BaseException as error:
                    results.put((index, "error", (_portable(error), traceback.format_exc())))
                    return
                results.put((index, "done", value))
    except KeyboardInterrupt:
        results.put((None, "interrupted", None))


def _exit_with(parent: int) -> None:
    """Ask the kernel for SIGINT when the parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    if os.getppid() != parent:
        os._exit(0)


def _portable(error: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
