"""Writing a run (or sweep) directory safely: one writer at a time, whole files or none, never through a link.

- ``locked(dir)``: an exclusive lock (``dir/.lock``, flock) held while a process writes the directory; a second
  writer gets RunDirError at once, naming the holder's pid. The kernel drops the lock when the holder dies.
- ``atomic_write`` / ``atomic_file``: write a temporary file created exclusively inside the same directory,
  then rename it over the target. A link planted at the target is replaced, never followed; on any failure
  the temporary file is removed and the target is untouched.
- ``AppendLog``: a line-oriented log (metrics.jsonl, metrics.csv) in which each append is whole or absent: a
  failed write (no space left ...) truncates the file back to its last complete line.
- ``dumps`` / ``read_json`` / ``read_records``: the one JSON format (strict JSON; a non-finite number is the
  string "nan", "inf" or "-inf", and null means "not measured") and the one reader of summary.json /
  config.json and of metrics.jsonl, which turns those strings back into floats.
- ``prepare`` / ``RunLog`` / ``listing``: a run directory's files (``RUN_FILES``; see ARCHITECTURE.md, the run
  files): the directory claimed and locked, metrics.jsonl and metrics.csv appended one measured step at a time.

Every OSError leaves this module as RunDirError with one line naming the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from ..common.errors import RunDirError, UsageError, interrupts_deferred

LOCK_NAME = ".lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

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


def make_dir(path) -> Path:
    """``mkdir -p`` with one-line errors (a file in the way, read-only, a name too long, ...)."""
    path = Path(path)
    with os_errors(path, "create"):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
        path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(parent, name: str) -> Path:
    """A directory inside ``parent`` (e.g. figures/); a link or file planted there is removed, not followed."""
    path = Path(parent) / name
    with os_errors(path, "create"):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        path.mkdir(exist_ok=True)
    return path


def remove(path) -> None:
    """Remove a file, a link (not its target) or a directory tree; nothing if absent."""
    path = Path(path)
    with os_errors(path, "remove"):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)


@contextlib.contextmanager
def locked(directory, what: str = "run directory"):
    """Hold an exclusive lock on ``directory`` for the block; RunDirError at once if another process holds it."""
    directory = Path(directory)
    lock_path = directory / LOCK_NAME
    with os_errors(lock_path):
        if lock_path.is_symlink():
            lock_path.unlink()
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(
                f"{what} {directory} is being written by another process (pid {holder}); "
                "wait for it to finish or choose another OUT"
            ) from None
        with contextlib.suppress(OSError):  # the pid is only for the message above
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def atomic_file(path, mode: str = "w"):
    """A file object for ``path`` that replaces it only if the block finishes; a temporary file otherwise."""
    path = Path(path)
    fd = None
    temporary = None
    try:
        with os_errors(path):
            fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.fchmod(fd, 0o644)
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": "" if path.suffix == ".csv" else None}
        with os_errors(path):  # around the close too: a buffer flushed on close can meet a full disk
            with os.fdopen(fd, mode, **kwargs) as handle:
                fd = None
                yield handle
                handle.flush()
            os.replace(temporary, path)  # rename replaces a link at ``path`` itself, never its target
        temporary = None
    finally:
        if fd is not None:
            os.close(fd)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def atomic_write(path, content: str | bytes) -> None:
    """Write ``content`` to ``path`` whole or not at all (see atomic_file)."""
    with atomic_file(path, "wb" if isinstance(content, bytes) else "w") as handle:
        handle.write(content)


class AppendLog:
    """A text file appended one whole line-group at a time; a failed append leaves the file as it was."""

    def __init__(self, path, append: bool = False):
        self.path = Path(path)
        with os_errors(self.path):
            if not append and (self.path.is_symlink() or self.path.exists()):
                self.path.unlink()  # a fresh log: whatever was there (a planted link too) goes, unfollowed
            flags = os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _CLOEXEC | (0 if append else os.O_CREAT | os.O_EXCL)
            self._fd = os.open(self.path, flags, 0o644)
        self.size = os.fstat(self._fd).st_size

    def append(self, text: str) -> None:
        """Append ``text`` whole; on failure truncate back to the previous size and raise RunDirError."""
        data = memoryview(text.encode("utf-8"))
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.size)
            raise RunDirError(describe(error, self.path)) from None
        self.size += len(text.encode("utf-8"))

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes: undo appends made since it had that size (a paired log failed)."""
        with os_errors(self.path):
            os.ftruncate(self._fd, size)
        self.size = size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def jsonable(obj):
    """``obj`` for strict JSON: numpy scalars as Python numbers, nan/inf as "nan"/"inf"/"-inf", None kept."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def dumps(obj, indent: int | None = None) -> str:
    """Strict JSON text for ``obj`` (see jsonable)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def restore(obj):
    """Inverse of jsonable for the non-finite markers: "nan"/"inf"/"-inf" become floats again."""
    if isinstance(obj, dict):
        return {k: restore(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [restore(v) for v in obj]
    if isinstance(obj, str) and obj in _NONFINITE:
        return _NONFINITE[obj]
    return obj


def read_json(path, kind: type = dict):
    """The JSON object in ``path``, or None if it is missing, unreadable, invalid or not of type ``kind``."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = restore(json.load(handle))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, kind) else None


def read_records(path) -> list[dict]:
    """A run's metrics.jsonl as a list of dicts; a last line cut short by a crash is left out."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    records = []
    with os_errors(path, "read"), open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = restore(json.loads(line))
        except ValueError:
            if number == len(lines) - 1:  # no newline after it: an append that never finished
                break
            raise RunDirError(f"{path} line {number + 1} is not valid JSON") from None
        records.append(record)
    return records


# ---- a run directory: its files, claimed and locked, and its two logs ----------------------------------------
RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "summary.json")
LAYER_FIELDS = [
    "weight_grad_norm",
    "bias_grad_norm",
    "delta_norm",
    "act_mean",
    "act_std",
    "saturation",
    "dead_fraction",
    "inactive_fraction",
    "weight_gain",
    "activation_gain",
    "update_ratio",
    "grad_subnormal_fraction",
    "grad_snr",
]
STEP_FIELDS = [
    "step", "loss", "accuracy", "grad_norm", "nonfinite", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "time",
]  # fmt: skip
CSV_FIELDS = [*STEP_FIELDS, "layer", *LAYER_FIELDS]  # one row per layer; a step without a test evaluation: empty


def layer_name(index: int, count: int) -> str:
    """The name of Linear layer ``index`` (0-based) of ``count``: 1, 2, ... and ``out`` for the output layer."""
    return "out" if index == count - 1 else str(index + 1)


@contextlib.contextmanager
def prepare(out: str, name: str, force: bool = False, root: str = "runs"):
    """The run directory, locked for the block: ``out``, or a fresh ``root/name``; never silently overwritten.

    With ``force`` the files of a previous run in ``out`` are removed (links removed, never followed) once the
    lock is held, so a directory another process is writing is refused, never emptied under it.
    """
    if out:
        path = Path(out)
        with os_errors(path, "create"):  # a name too long fails even to be looked at
            is_file = path.exists() and not path.is_dir()
        if is_file:
            raise UsageError(f"run directory {str(path)!r} is a file; choose another OUT")
        make_dir(path)
    else:
        path = _fresh_dir(Path(root) / name)
    with locked(path):
        leftovers = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)
        if leftovers and not force:
            raise UsageError(f"run directory {str(path)!r} already exists; choose another OUT or pass --force")
        ours = (*RUN_FILES, "figures", "histograms.npz", "report.html", "summary.json.partial", "checkpoint.npz",
                "tensorboard")  # fmt: skip
        for leftover in leftovers:
            if leftover in ours or leftover.endswith(".tmp"):
                remove(path / leftover)
        yield path


def _fresh_dir(base: Path) -> Path:
    """Create and return ``base``, or ``base-2``, ``base-3``...: the first name no one has (mkdir claims it)."""
    make_dir(base.parent)
    counter = 1
    while True:
        path = base if counter == 1 else Path(f"{base}-{counter}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            counter += 1
        except OSError as error:
            raise RunDirError(describe(error, path, "create")) from None


def listing(path) -> list[str]:
    """A run's files as they will be once summary.json is written (directories end with /; no hidden files)."""
    names = {p.name + ("/" if p.is_dir() else "") for p in Path(path).iterdir() if not p.name.startswith(".")}
    return sorted(names | {"summary.json"})


class RunLog:
    """metrics.jsonl and metrics.csv, appended one measured step at a time, both or neither."""

    def __init__(self, path: Path, records: list[dict] | None = None):
        """Fresh logs, or (resuming) logs rewritten to hold exactly ``records`` and then appended to."""
        header = _csv_text([dict(zip(CSV_FIELDS, CSV_FIELDS))])
        if records is not None:
            atomic_write(path / "metrics.jsonl", "".join(dumps(record) + "\n" for record in records))
            atomic_write(path / "metrics.csv", header + "".join(_csv_rows(record) for record in records))
        self._jsonl = AppendLog(path / "metrics.jsonl", append=records is not None)
        self._csv = AppendLog(path / "metrics.csv", append=records is not None)
        if records is None:
            self._csv.append(header)
        self.records: list[dict] = list(records or [])

    def write(self, record: dict):
        """Append one measured step to both files (whole lines; on failure neither file keeps it)."""
        line = dumps(record) + "\n"
        rows = _csv_rows(record)
        with interrupts_deferred():  # a Ctrl-C or SIGTERM here waits until the record is whole in both files
            csv_size = self._csv.size
            self._csv.append(rows)
            try:
                self._jsonl.append(line)
            except RunDirError:
                self._csv.truncate(csv_size)
                raise
            self.records.append(record)

    def close(self):
        """Close both files (the records written stay in ``records``)."""
        self._jsonl.close()
        self._csv.close()


def _csv_rows(record: dict) -> str:
    """A record's CSV lines: one per layer, the step's global numbers repeated on each."""
    head = {k: record.get(k) for k in STEP_FIELDS}
    count = len(record["layers"])
    return _csv_text([{**head, **layer, "layer": layer_name(i, count)} for i, layer in enumerate(record["layers"])])


def _csv_text(rows: list[dict]) -> str:
    """CSV lines for ``rows`` (non-finite numbers stay numbers: nan, inf; None is empty)."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore").writerows(rows)
    return buffer.getvalue()
