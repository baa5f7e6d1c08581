"""A run directory: claimed (a fresh name, or OUT), locked while a process writes it, and owned: its manifest lists
every file the run writes, and only those are ever removed.

``claim`` is the one rule for every surface that writes a directory (a run, a sweep, a resumed run, a watched
PyTorch model): a directory is this laboratory's only if it holds a manifest this package wrote
(common/files.py's ``Owned``); an empty or new directory is claimed; anything else is refused before anything is
written, ``force`` included. ``force`` replaces a run of the same kind by removing exactly the files its manifest
lists (a user's notes beside it, or a photo put in its figures/, stay). The safe writes themselves (lock, atomic
files, strict JSON) are common/files.py's; the records' format is measure/records.py's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ...common.errors import RunDirError, UsageError
from ...common.files import LOCK_NAME, MANIFEST, Owned, describe, locked, make_dir, os_errors, owning, subdir
from ...common.validate import spell


@contextlib.contextmanager
def claim(path, kind: str = "run", *, force: bool = False, reuse: bool = False, lock: str | None = None):
    """The directory ``path`` for the block, locked and owned (every file written into it joins its manifest).

    A missing or empty directory is claimed; one whose manifest says ``kind`` is replaced with ``force`` (its
    listed files removed, once the lock is held), kept as it is with ``reuse`` (a sweep that resumes, a run that
    continues), and refused otherwise; a directory this package did not write is always refused, and is left
    exactly as it was (not even a lock file is added). ``lock`` names a subdirectory to lock instead of the whole
    (a sweep's shards share one directory, each locking its own share).
    """
    path = Path(path)
    what = f"{kind} directory"
    with os_errors(path, "create"):  # a name too long fails even to be looked at
        exists, is_dir = path.exists(), path.is_dir()
    if exists and not is_dir:
        raise UsageError(f"{what} {str(path)!r} is a file; choose another {spell('out')}")
    if exists:
        _claimable(path, kind, force=True, reuse=True, share=lock)  # before the lock: a user's folder gets nothing
    else:
        make_dir(path)
    locked_path = subdir(path, lock) if lock else path
    with locked(locked_path, what):
        owned = _claimable(path, kind, force, reuse, lock)  # again under the lock: another process may have come first
        if owned is not None and not reuse:
            owned.clear()  # replaced (force): its manifest, saved again, lists nothing now
        if owned is None:
            owned = Owned(path, kind)
            owned.save()
        with owning(owned):
            yield owned


def _claimable(path: Path, kind: str, force: bool, reuse: bool, share: str | None = None) -> Owned | None:
    """The directory's manifest (None if it is empty and has none); UsageError if it may not be claimed as asked.
    ``share``: the locked subdirectory of one of several writers (a sweep's shards: ``.shard-0-of-2``); such
    subdirectories of the others are theirs, not a stranger's files."""
    owned = Owned.read(path)
    shares = share.rsplit("-", 3)[0] + "-" if share else None  # ".shard-": every shard's lock
    with os_errors(path, "read"):
        entries = sorted(name for name in os.listdir(path)
                         if name not in (LOCK_NAME, MANIFEST) and not (shares and name.startswith(shares)))  # fmt: skip
    what = f"{kind} directory {str(path)!r}"
    if owned is None:
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise UsageError(f"{what} holds files not written by this laboratory ({shown}; no {MANIFEST}); it is "
                             f"never written over, {spell('force', True)} included: choose another "
                             f"{spell('out')}")  # fmt: skip
        return None
    if owned.kind != kind:
        raise UsageError(f"{what} holds a {owned.kind}, not a {kind}; choose another {spell('out')}")
    if entries and not (force or reuse):
        raise UsageError(f"{what} already exists; choose another {spell('out')} or pass {spell('force', True)} to "
                         f"replace it (only the files that {kind} wrote are removed)")  # fmt: skip
    return owned


def owned_run(path) -> Owned:
    """The manifest of the run in ``path``; UsageError if the laboratory did not write it (before anything is read
    from it or changed in it)."""
    owned = Owned.read(path) if Path(path).is_dir() else None
    if owned is None or owned.kind != "run":
        raise UsageError(f"{str(path)!r} is not a run directory this laboratory wrote (it has no {MANIFEST} of a run)")
    return owned


@contextlib.contextmanager
def prepare(out: str, name: str, force: bool = False, root: str = "runs"):
    """The run directory, claimed and locked for the block: ``out``, or a fresh ``root/name``; never silently
    overwritten (``claim``)."""
    path = Path(out) if out else _fresh_dir(Path(root) / name)
    with claim(path, "run", force=force):
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
