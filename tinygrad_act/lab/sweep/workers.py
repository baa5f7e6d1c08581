"""Local worker processes that stop together: one Ctrl-C or SIGTERM ends every task, and none outlives its parent.

Each worker is a spawned interpreter that takes tasks from a queue. Workers sit in their own process group, so
a Ctrl-C at the terminal reaches only the parent, which then sends each worker exactly one SIGINT (a second one
could cut short what the interrupted task still writes). Queued tasks never start once the parent stops. A
worker whose parent dies, even by SIGKILL, gets SIGINT from the kernel (Linux: prctl PR_SET_PDEATHSIG; elsewhere
it checks its parent between tasks). SIGINT and SIGTERM stay blocked from before a worker is started until it
has installed its handlers, so no signal is lost in between.

A worker first loads the user's plug-ins (``common.plugins``: the parent's ``--plugin`` list reaches it through
the environment), then re-runs the parent's main script, as ``__mp_main__``, so that activations, initializers
and datasets the script registers at top level exist in the worker too. That re-run stops where the script
starts a sweep (``stop_if_reexecuting``), so a script without an ``if __name__ == "__main__":`` guard works (a
plain spawn would start a sweep inside each worker and fail with multiprocessing's bootstrapping RuntimeError).
Whatever the script does before that call runs once more in each worker: keep slow work below the guard.
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
import types

from ...common import plugins
from ...common.errors import sigterm_as_interrupt

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
STOP_GRACE_S = 120  # an interrupted task still evaluates and writes its summary
_PR_SET_PDEATHSIG = 1


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as the cause of the one re-raised here."""


class _ScriptStopped(BaseException):
    """Ends a worker's re-run of the main script where it starts a sweep (BaseException: no ``except
    Exception`` in the script catches it)."""


_reexecuting = False  # True while a worker re-runs the parent's main script


def stop_if_reexecuting() -> None:
    """Called where a sweep starts: inside a worker's re-run of the main script, stop that re-run here."""
    if _reexecuting:
        raise _ScriptStopped


def _main_script() -> str | None:
    """The path of the main script if Python runs one (``python script.py``), else None (-m, REPL, notebook)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or getattr(main, "__spec__", None) is not None or not path or not path.endswith(".py"):
        return None
    return os.path.abspath(path)


@contextlib.contextmanager
def _main_hidden(script: str | None):
    """While workers start, spawn sees no main script: the worker re-runs it itself (see the module docstring)."""
    if script is None:
        yield
        return
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _rerun_script(script: str) -> None:
    """Run the parent's main script as ``__mp_main__`` up to its first sweep, for its registrations."""
    global _reexecuting
    module = types.ModuleType("__mp_main__")
    module.__file__ = script
    sys.modules["__mp_main__"] = module
    with open(script, "rb") as f:
        code = compile(f.read(), script, "exec")
    _reexecuting = True
    try:
        exec(code, module.__dict__)
    except _ScriptStopped:
        pass
    finally:
        _reexecuting = False


def run_all(function, tasks: list, jobs: int, environment: dict | None = None):
    """Yield ``(index, function(task))`` in completion order, computed by ``jobs`` worker processes.

    ``environment``: variables set for the workers (e.g. one BLAS thread each), not for this process.

    A worker's exception is re-raised here; a task that ends with KeyboardInterrupt stops everything and raises
    KeyboardInterrupt. Closing the generator early (an exception in the caller, Ctrl-C, SIGTERM) stops the
    workers: use it as ``with contextlib.closing(run_all(...))``.
    """
    stop_if_reexecuting()
    script = _main_script()
    context = multiprocessing.get_context("spawn")
    todo, results, stop = context.Queue(), context.Queue(), context.Event()
    count = min(jobs, len(tasks))
    for item in [*enumerate(tasks), *[None] * count]:
        todo.put(item)
    workers = [
        context.Process(target=_worker, args=(function, todo, results, stop, os.getpid(), script), daemon=True)
        for _ in range(count)
    ]
    saved = {key: os.environ.get(key) for key in environment or {}}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # inherited by the workers (see above)
    try:
        os.environ.update(environment or {})
        with _main_hidden(script):
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


def _worker(function, todo, results, stop, parent: int, script: str | None = None) -> None:
    """A worker's main loop: tasks until the queue says stop, the parent stops us, or a task is interrupted.

    First the user's plug-ins and the parent's main script (see the module docstring); if they fail, the first
    task reports the error."""
    os.setpgrp()  # a terminal's Ctrl-C goes to the parent, which forwards exactly one SIGINT
    _exit_with(parent)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with sigterm_as_interrupt():
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            try:
                plugins.load()
                if script:
                    _rerun_script(script)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                item = todo.get()
                results.put((item[0] if item else None, "error", (_portable(error), traceback.format_exc())))
                return
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
