"""Files written safely and read back strictly: one writer at a time, whole files or none, never through a link,
nothing removed that this package did not write, nothing read that is not a regular file of a bounded size.

The one safe-write rule of the package (run and sweep directories, the data cache, figures, checkpoints):

- ``locked(dir)``: an exclusive lock (``dir/.lock``, flock) held while a process writes the directory; a second
  writer gets RunDirError at once, naming the holder's pid. The kernel drops the lock when the holder dies.
- ``atomic_write`` / ``atomic_file``: write a temporary file created exclusively inside the same directory,
  then rename it over the target. A link planted at the target is replaced, never followed; on any failure
  the temporary file is removed and the target is untouched.
- ``AppendLog``: a line-oriented log (metrics.jsonl, metrics.csv) in which each append is whole or absent: a
  failed write (no space left ...) truncates the file back to its last complete line.
- ``dumps`` / ``read_json`` / ``load_json`` / ``read_records``: the one JSON format (strict JSON; a non-finite
  number is the string "nan", "inf" or "-inf", and null means "not measured") and the one reader of summary.json /
  config.json and of metrics.jsonl, which turns those strings back into floats.
- ``read_bytes`` / ``read_npz`` (reads.py): every file read whole is a regular file of a bounded size, and an
  .npz member's shape and dtype are read from its header before anything is inflated.
- ``Owned`` (ownership): a directory this package claimed holds a manifest (``MANIFEST``) naming its kind and
  every file and directory written into it; while a process owns it (``owning``), every write above records
  itself there, and its temporary files carry the owner's token. ``Owned.clear`` removes exactly what the
  manifest lists (and the owner's temporary files), never anything else: a user's file beside or inside a run,
  even one with a run file's name, stays.

Every OSError leaves this module as RunDirError with one line naming the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from .errors import RunDirError, UsageError, describe, os_errors
from .reads import read_bytes, read_npz  # noqa: F401  (read_npz: callers import the safe readers from here)
from .validate import spell

LOCK_NAME = ".lock"
MANIFEST = ".tinygrad_act.json"  # the mark of a directory this package wrote, and the list of what it wrote
FORMAT = "tinygrad_act"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def make_dir(path) -> Path:
    """``mkdir -p`` with one-line errors (a file in the way, read-only, a name too long, ...); the directories it
    creates inside an owned directory are recorded in its manifest."""
    path = Path(path)
    with os_errors(path, "create"):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
        missing = [p for p in (path, *path.parents) if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        _record(created, directory=True)
    return path


def subdir(parent, name: str) -> Path:
    """A directory inside ``parent`` (e.g. figures/); a link planted there is removed, not followed. In an owned
    directory, a file there that the owner did not write is never removed: RunDirError says so."""
    path = Path(parent) / name
    with os_errors(path, "create"):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            found = _owner(path)
            if not path.is_symlink() and found is not None and found[1] not in found[0].files:
                raise RunDirError(f"cannot create the directory {path}: a file this run did not write is in the way")
            path.unlink()
        created = not path.exists()
        path.mkdir(exist_ok=True)
    if created:
        _record(path, directory=True)
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
                f"wait for it to finish or choose another {spell('out')}"
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
    found = _owner(path)
    prefix = f".{found[0].token}.{path.name}." if found else f".{path.name}."  # the owner's: FORCE may remove it
    try:
        with os_errors(path):
            fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
            os.fchmod(fd, 0o644)
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": "" if path.suffix == ".csv" else None}
        with os_errors(path):  # around the close too: a buffer flushed on close can meet a full disk
            with os.fdopen(fd, mode, **kwargs) as handle:
                fd = None
                yield handle
                handle.flush()
            os.replace(temporary, path)  # rename replaces a link at ``path`` itself, never its target
        temporary = None
        if found:
            found[0].record(found[1])
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
        _record(self.path)

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


def _marked(value: float):
    """A float for strict JSON: itself if finite, else "nan", "inf" or "-inf"."""
    return value if math.isfinite(value) else "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def jsonable(obj):
    """``obj`` for strict JSON: numpy scalars as Python numbers, nan/inf as "nan"/"inf"/"-inf", None kept."""
    kind = type(obj)
    if kind is float:  # most of a record, so asked first: a measured step's record holds hundreds
        return _marked(obj)
    if kind is int or kind is str or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalar
        obj = obj.item()
    return _marked(obj) if isinstance(obj, float) else obj


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


def load_json(path, what: str = "file", kind: type = dict):
    """The JSON value of type ``kind`` in ``path`` (non-finite markers restored); UsageError in one line naming the
    file if it is missing, not a regular file, not UTF-8 JSON, nested absurdly deep, or of another type."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{what} {path} does not exist")
    try:
        content = read_bytes(path, what)
    except RunDirError as error:
        raise UsageError(str(error)) from None
    try:
        value = restore(json.loads(content.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = "nested too deep" if isinstance(error, RecursionError) else f"{type(error).__name__}: {error}"
        raise UsageError(f"{what} {path} is not valid JSON ({reason})") from None
    if not isinstance(value, kind):
        raise UsageError(f"{what} {path} holds a JSON {type(value).__name__}, not an {kind.__name__}")
    return value


def read_json(path, kind: type = dict):
    """The JSON object in ``path``, or None if it is missing, unreadable, not a regular file, invalid or not of type
    ``kind`` (see load_json for the strict reader)."""
    try:
        return load_json(path, kind=kind)
    except (UsageError, RunDirError):
        return None


def read_records(path) -> list[dict]:
    """A run's metrics.jsonl as a list of dicts; a last line cut short by a crash is left out. RunDirError in one
    line naming the file for anything else (not a regular file, too large, not UTF-8, a line that is not a JSON
    object)."""
    path = Path(path)
    if path.is_dir() and path.name != "metrics.jsonl":  # a run directory (metrics.jsonl itself may be a directory)
        path = path / "metrics.jsonl"
    try:
        text = read_bytes(path, "metrics file").decode("utf-8")
    except UsageError as error:
        raise RunDirError(str(error)) from None
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not UTF-8 text") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = restore(json.loads(line))
        except (ValueError, RecursionError):
            if number == len(lines) - 1:  # no newline after it: an append that never finished
                break
            raise RunDirError(f"{path} line {number + 1} is not valid JSON") from None
        if not isinstance(record, dict):
            raise RunDirError(f"{path} line {number + 1} is a JSON {type(record).__name__}, not a record (an object)")
        records.append(record)
    return records


# ---- ownership: what this package wrote, and nothing else, may be removed ------------------------------------------
class Owned:
    """A directory this package claimed: its ``kind`` ("run", "sweep"), a random ``token`` that marks its temporary
    files, and ``files``, every file and directory written into it (relative; a directory ends with /)."""

    def __init__(self, path, kind: str, token: str | None = None, files=()):
        self.path, self.kind = Path(path), kind
        self.written = token is not None  # a manifest read back (with its token) is on disk; a new claim's is not
        self.token = token or secrets.token_hex(8)
        self.files = list(dict.fromkeys(files))

    @classmethod
    def read(cls, path) -> Owned | None:
        """The manifest in ``path``, or None if there is none this package wrote (missing, unreadable, of another
        shape, or naming a file outside the directory)."""
        data = read_json(Path(path) / MANIFEST)
        if data is None or data.get("format") != FORMAT:
            return None
        kind, token, listed = data.get("kind"), data.get("token"), data.get("files")
        if not (isinstance(kind, str) and isinstance(token, str) and token.isalnum() and isinstance(listed, list)):
            return None
        if not all(isinstance(name, str) and _relative(name) for name in listed):
            return None
        return cls(path, kind, token, listed)

    def save(self) -> None:
        """Write the manifest whole (atomic, its temporary file marked with the token). A new claim's first manifest
        is written in place instead: a process killed then (kill -9) leaves the directory empty or holding a broken
        manifest, both claimed again, where a temporary file would be a stranger's (its token never reached the disk)
        that nothing may remove, and the directory could never be resumed."""
        content = dumps({"format": FORMAT, "kind": self.kind, "token": self.token, "files": self.files}, indent=1)
        if self.written:
            _atomic_bytes(self.path / MANIFEST, content.encode(), f".{self.token}.{MANIFEST}.")
        else:
            _in_place(self.path / MANIFEST, content.encode())
            self.written = True

    def record(self, relative: str) -> None:
        """Add ``relative`` to the manifest (written again only when it is new)."""
        if relative not in self.files and _relative(relative):
            self.files.append(relative)
            self.save()

    def clear(self) -> None:
        """Remove exactly what the manifest lists (files, the owner's temporary files, then the directories left
        empty), never following a link; a file a user added, even inside a listed directory, stays."""
        listed = [(name, _inside(self.path, name.rstrip("/"))) for name in self.files]
        listed = [(name, target) for name, target in listed if target is not None]
        directories = [target for name, target in listed if name.endswith("/") and not target.is_symlink()]
        for name, target in listed:
            if target.is_symlink() or (target.is_file() and not name.endswith("/")):
                remove(target)  # a link planted at a listed name goes too (the link, never its target)
        for directory in [self.path, *directories]:
            with contextlib.suppress(OSError):
                for entry in os.scandir(directory):
                    if entry.name.startswith(f".{self.token}.") and entry.name.endswith(".tmp"):
                        os.unlink(entry.path)
        for directory in sorted(directories, key=lambda path: len(path.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty (a user's file in it), or gone: it stays
                os.rmdir(directory)
        self.files = []
        self.save()


_OWNERS: dict[str, Owned] = {}  # real path -> the directory this process owns there (``owning``)


@contextlib.contextmanager
def owning(owned: Owned):
    """Within the block, every write into ``owned.path`` (or below it) records itself in its manifest."""
    key = os.path.realpath(owned.path)
    previous = _OWNERS.get(key)
    _OWNERS[key] = owned
    try:
        yield owned
    finally:
        if previous is None:
            _OWNERS.pop(key, None)
        else:
            _OWNERS[key] = previous


def record(path, directory: bool = False) -> None:
    """Record a file (or a ``directory``) written into an owned directory by other code (a library writing its own
    files)."""
    _record(Path(path), directory)


def _owner(path: Path):
    """(the Owned directory nearest above ``path``, ``path`` relative to it), or None."""
    if not _OWNERS:
        return None
    path = Path(os.path.realpath(path.parent)) / path.name
    for ancestor in path.parents:
        owned = _OWNERS.get(str(ancestor))
        if owned is not None:
            return owned, path.relative_to(ancestor).as_posix()
    return None


def _record(path: Path, directory: bool = False) -> None:
    found = _owner(Path(path))
    if found is not None:
        found[0].record(found[1] + ("/" if directory else ""))


def _relative(name: str) -> bool:
    """Whether ``name`` stays inside the directory (no absolute path, no .., no empty part)."""
    parts = name.rstrip("/").split("/")
    return bool(name) and not name.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if no directory on the way is a link (removing through one could reach anywhere)."""
    target = root
    for part in relative.split("/")[:-1]:
        target = target / part
        if target.is_symlink() or not target.is_dir():
            return None
    return target / relative.split("/")[-1]


def _in_place(path: Path, content: bytes) -> None:
    """``path`` written directly (what was there removed first, a link never followed)."""
    with os_errors(path):
        if path.is_symlink() or path.is_file():
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)


def _atomic_bytes(path: Path, content: bytes, prefix: str) -> None:
    """atomic_write without the ownership bookkeeping (the manifest itself)."""
    with os_errors(path):
        fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
