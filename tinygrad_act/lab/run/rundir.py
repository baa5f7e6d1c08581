"""A run directory: claimed (a fresh name, or OUT), locked while a process writes it, and its files (``RUN_FILES``).

The safe writes themselves (lock, atomic files, strict JSON) are common/files.py's; the records' format is
measure/records.py's.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ...common.errors import RunDirError, UsageError
from ...common.files import LOCK_NAME, describe, locked, make_dir, os_errors, remove
from ..measure.records import RUN_FILES


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
