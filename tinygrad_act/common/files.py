"""Files written safely and read back strictly: one writer at a time, whole files or none, never through a link.

The one safe-write rule of the package (run and sweep directories, the data cache, figures, checkpoints):

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

Every OSError leaves this module as RunDirError with one line naming the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from .errors import RunDirError

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
