"""What a hostile user's call may do, for the boundary tests (tests/test_boundary_*.py and the boundary fuzzer).

Every call goes in-process (the CLI's ``main``, ``tinygrad_act.run``, ``Run.load``) under an alarm, and ends in one
of four ways: ``ok``, ``refused`` (one line naming what is wrong and a non-zero exit, or a UsageError/RunDirError
from Python), ``crashed`` (any other exception: a traceback) or ``hung``. ``snapshot`` and ``unchanged`` say
whether a user's files (or a refused command's directory) are as they were. A failed expectation names its kind
first (``TRACEBACK``, ``HANG``, ``SILENT`` for a wrong result given without a word, ``LOSS`` for a user's file
deleted or changed, ``UNCLEAR`` for a message that does not say what is wrong), so a run of the suite counts them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import os
import shutil
import signal
import stat
import traceback
from pathlib import Path

import pytest

import tinygrad_act
from tinygrad_act import cli
from tinygrad_act.common.errors import RunDirError, UsageError
from tinygrad_act.lab.run import experiment as lifecycle
from tinygrad_act.lab.show import run_figures

TIMEOUT_S = 20
TINY = {
    "depth": 2, "width": 4, "steps": 4, "data": "spirals:n=60", "batch_size": 8, "log_every": 1, "eval_every": 2,
    "figures": False, "progress": False,
}  # fmt: skip
TINY_ARGS = [
    "--depth", "2", "--width", "4", "--steps", "4", "--data", "spirals:n=60", "--batch-size", "8", "--log-every",
    "1", "--eval-every", "2", "--no-figures", "--no-progress",
]  # fmt: skip


class _Hung(BaseException):
    """Raised by the alarm: the call did not return in TIMEOUT_S."""


@dataclasses.dataclass
class Outcome:
    kind: str  # ok, refused, crashed, hung
    message: str = ""
    value: object = None
    code: int | None = None
    stdout: str = ""


@contextlib.contextmanager
def _alarm(seconds: int):
    def hung(signum, frame):
        raise _Hung

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def call(function, *args, timeout: int = TIMEOUT_S, **kwargs) -> Outcome:
    """``function(*args, **kwargs)`` from Python: ok (its value), refused (UsageError/RunDirError), crashed, hung."""
    try:
        with _alarm(timeout):
            return Outcome("ok", value=function(*args, **kwargs))
    except _Hung:
        return Outcome("hung", f"no answer within {timeout} s")
    except (UsageError, RunDirError) as error:
        return Outcome("refused", str(error))
    except Exception:
        return Outcome("crashed", traceback.format_exc())


def command(*argv, timeout: int = TIMEOUT_S) -> Outcome:
    """The command line (``python -m tinygrad_act ARGV``) in-process: refused = a non-zero exit."""
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with _alarm(timeout), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main([str(a) for a in argv])
    except _Hung:
        return Outcome("hung", f"no answer within {timeout} s")
    except SystemExit as exit:  # argparse
        code = exit.code
    except BaseException:
        return Outcome("crashed", traceback.format_exc())
    kind = "ok" if code == 0 else "refused"
    return Outcome(kind, stderr.getvalue().strip(), code=code, stdout=stdout.getvalue())


def experiment(out, *extra, timeout: int = TIMEOUT_S) -> Outcome:
    """``experiment`` with the tiny settings into ``out``."""
    return command("experiment", *TINY_ARGS, "--out", out, *extra, timeout=timeout)


def refused(outcome: Outcome, *names: str) -> str:
    """Assert a refusal in one line that names each of ``names``; the line."""
    if outcome.kind == "crashed":
        raise AssertionError(f"TRACEBACK where one line was due:\n{outcome.message}")
    if outcome.kind == "hung":
        raise AssertionError(f"HANG: {outcome.message}")
    if outcome.kind == "ok":
        raise AssertionError(f"SILENT: the call succeeded where it had to refuse ({outcome.stdout[-300:]!r})")
    lines = outcome.message.strip().splitlines()
    if len(lines) != 1 or any(str(name) not in outcome.message for name in names):
        raise AssertionError(f"UNCLEAR: {outcome.message!r} should be one line naming {names}")
    return outcome.message


def succeeded(outcome: Outcome):
    """Assert the call succeeded; its value."""
    if outcome.kind == "crashed":
        raise AssertionError(f"TRACEBACK:\n{outcome.message}")
    if outcome.kind == "hung":
        raise AssertionError(f"HANG: {outcome.message}")
    if outcome.kind != "ok":
        raise AssertionError(f"REFUSED where it had to succeed: {outcome.message}")
    return outcome.value


def clean(outcome: Outcome) -> None:
    """Assert the call either succeeded or refused in one line: never a traceback or a hang."""
    if outcome.kind in ("crashed", "hung"):
        raise AssertionError(f"{'TRACEBACK' if outcome.kind == 'crashed' else 'HANG'}:\n{outcome.message}")
    if outcome.kind == "refused" and len(outcome.message.strip().splitlines()) != 1:
        raise AssertionError(f"UNCLEAR: {outcome.message!r} should be one line")


def snapshot(root) -> dict:
    """Every entry under ``root`` (links not followed): its kind and, for a file, its content's sha256."""
    root = Path(root)
    entries = {}
    if not root.exists() and not root.is_symlink():
        return entries
    for path in [root, *sorted(root.rglob("*"))]:
        relative = str(path.relative_to(root))
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            entries[relative] = ("link", os.readlink(path))
        elif stat.S_ISREG(mode):
            entries[relative] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            entries[relative] = ("dir" if stat.S_ISDIR(mode) else "special", "")
    return entries


def unchanged(before: dict, root, ignore=(".lock",)) -> None:
    """Assert ``root`` holds what ``snapshot`` saw (``ignore``: names a lab may leave, such as its lock)."""
    after = snapshot(root)
    keep = {k: v for k, v in before.items() if Path(k).name not in ignore}
    now = {k: v for k, v in after.items() if Path(k).name not in ignore}
    if keep != now:
        lost = sorted(set(keep) - set(now))
        changed = sorted(k for k in set(keep) & set(now) if keep[k] != now[k])
        added = sorted(set(now) - set(keep))
        raise AssertionError(f"LOSS: deleted {lost}, changed {changed}, added {added}")


def made_once(tmp_path_factory, name: str, make) -> Path:
    """The directory ``name`` with what ``make(directory)`` writes there, made once per test session: by the first
    xdist worker that asks, in the session's shared temporary directory (the pytest-xdist pattern: the others wait
    on its lock, then read it), or in this process's own one when there are no workers. Tests must not change it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.mktemp(name)
        make(path)
        return path
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, shared by this session's workers (popen-gwK/)
    path, done = shared / name, shared / f"{name}.made"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the directory is whole
        if not done.exists():  # another worker made it whole
            shutil.rmtree(path, ignore_errors=True)  # what a failed make left: made afresh, the failure seen again
            path.mkdir()
            make(path)
            done.touch()
    return path


def draw_only(patch, *names) -> None:
    """The runs made under ``patch`` (a MonkeyPatch) draw only the named figures (``"training.png"``, ...), the
    others made but not rendered: run_figures.drawings filtered, so every figure's code still runs."""
    every = run_figures.drawings
    patch.setattr(run_figures, "drawings", lambda *args: [(f, n) for f, n in every(*args) if n in names])


def copy_run(source, target) -> Path:
    """A copy of a finished run directory (links kept as links)."""
    shutil.copytree(source, target, symlinks=True)
    return Path(target)


def interrupted_run(out, **settings):
    """A tiny run interrupted between steps 2 and 3: checkpoint.npz at step 2, summary.json says interrupted."""
    original = lifecycle._train_step

    def stop_at_two(*args):
        if args[8] == 2:
            raise KeyboardInterrupt
        return original(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle, "_train_step", stop_at_two)
        summary = succeeded(call(tinygrad_act.run, **{**TINY, **settings}, out=str(out))).summary
    assert summary["status"] == "interrupted"
    return Path(out)
