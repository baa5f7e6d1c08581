"""The failures a user sees as one line, and the exit codes the command line gives them.

Only these become one-liners at the command line; any other exception is a bug and keeps its traceback.

- ``UsageError`` (exit 2): a value the user gave is invalid. The message names the value and the valid choices.
  It subclasses ValueError, so ``except ValueError`` in user code keeps working.
- ``RunDirError`` (exit 1): the run directory cannot be written as asked (no space left, read-only, locked by
  another writer, a name too long ...). The message names the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading

EXIT_FAULT = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(ValueError):
    """A value given by the user is invalid: one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


class RunDirError(RuntimeError):
    """The file system refused what the run needs: one line, exit code 1."""

    exit_code = EXIT_FAULT


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the run ends the same way (records kept, summary written); exit code 143."""

    exit_code = EXIT_TERMINATED


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread, as Ctrl-C does.

    Outside the main thread (where Python cannot install handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred():
    """Hold SIGINT and SIGTERM until the block ends, then raise them (main thread only): a record or a summary
    being written is finished first, so a stopped run never leaves half of one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)
    if received:
        raise Terminated if signal.SIGTERM in received else KeyboardInterrupt


_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "a name is longer than the file system allows",
    errno.ENOTDIR: "a part of the path is a regular file, not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a directory",
    errno.ELOOP: "it is a symbolic link",
}


def describe(error: OSError, path, doing: str = "writing") -> str:
    """One line for an OSError: ``no space left on the device while writing runs/x/metrics.jsonl``."""
    reason = _REASONS.get(error.errno) or (error.strerror or str(error)).lower()
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{reason} while {doing} {path}"
    return f"cannot {'write' if doing == 'writing' else doing} {path}: {reason}"


@contextlib.contextmanager
def os_errors(path, doing: str = "writing"):
    """Turn an OSError raised in the block into RunDirError (one line)."""
    try:
        yield
    except RunDirError:
        raise
    except OSError as error:
        raise RunDirError(describe(error, path, doing)) from None
