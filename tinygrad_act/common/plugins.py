"""Your plug-ins: modules that register activations, initializers, datasets or optimizers when imported.

Three sources, loaded in this order, each module once: the ``tinygrad_act.plugins`` entry-point group of
installed packages, the ``TINYGRAD_ACT_PLUGINS`` environment variable (names or .py paths separated by commas
or colons), and ``--plugin`` on the command line (``load``). A plug-in is an importable module name
(``my_acts``, ``mypkg.acts``) or a path to a .py file (``my_acts.py``, ``/abs/acts.py``).

``load`` also writes everything loaded into ``TINYGRAD_ACT_PLUGINS`` (paths made absolute), so the spawned
interpreters of a parallel sweep, which inherit the environment, load the same plug-ins before their first run.

``fingerprints`` names every plug-in file loaded with its sha256: a run records them in config.json, and a resumed
run or a sweep's rerun compares them with the files as they are now (lab/run/provenance.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path

from .errors import RunDirError, UsageError
from .reads import read_bytes

ENV = "TINYGRAD_ACT_PLUGINS"
GROUP = "tinygrad_act.plugins"
_loaded: dict[str, object] = {}  # spec as loaded (absolute path or module name) -> module


def split(text: str) -> list[str]:
    """``a,b:c.py`` -> ['a', 'b', 'c.py']: commas or colons separate, blanks are dropped."""
    return [part.strip() for part in re.split(r"[,:]", text or "") if part.strip()]


def _key(spec: str) -> str:
    """The identity of a plug-in: a .py path made absolute (workers may start elsewhere), else the module name."""
    return str(Path(spec).expanduser().resolve()) if spec.endswith(".py") else spec


def load_one(spec: str):
    """Import one plug-in (module name or .py path) once; UsageError in one line naming it if it fails."""
    key = _key(spec)
    if key in _loaded:
        return _loaded[key]
    try:
        if key.endswith(".py"):
            path = Path(key)
            if not path.exists():
                raise FileNotFoundError(f"no such file {str(path)!r}")
            read_bytes(path, "plug-in")  # a regular file of a sane size: a FIFO is refused, not waited for
            name = f"tinygrad_act_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # registered objects pickle by reference to their module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(key)
    except (UsageError, RunDirError) as error:
        raise UsageError(f"plug-in {spec!r} cannot be read: {error}") from None
    except Exception as error:  # the plug-in's own code: any failure is the user's to fix, in one line
        sys.modules.pop(f"tinygrad_act_plugin_{Path(key).stem}", None)
        raise UsageError(f"plug-in {spec!r} failed to load: {type(error).__name__}: {error}") from None
    _loaded[key] = module
    return module


def load(specs=(), environ=os.environ) -> list[str]:
    """Load the entry-point plug-ins, those in ``TINYGRAD_ACT_PLUGINS`` and ``specs``; return what was loaded.

    The loaded names and paths are written back into ``environ[TINYGRAD_ACT_PLUGINS]`` for worker processes.
    """
    for entry in importlib.metadata.entry_points(group=GROUP):
        try:
            entry.load()
        except Exception as error:
            raise UsageError(f"plug-in {entry.name!r} ({entry.value}, entry point of group {GROUP}) "
                             f"failed to load: {type(error).__name__}: {error}") from None  # fmt: skip
    wanted = [*split(environ.get(ENV, "")), *(part for spec in specs for part in split(spec))]
    for spec in wanted:
        load_one(spec)
    keys = list(dict.fromkeys(_key(spec) for spec in wanted))
    if keys:
        environ[ENV] = ",".join(keys)
    return keys


def file_sha256(path) -> str | None:
    """The sha256 of the file at ``path`` (a regular file), or None if it cannot be read as one."""
    try:
        return hashlib.sha256(read_bytes(path, "plug-in")).hexdigest()
    except (UsageError, RunDirError):
        return None


def fingerprints() -> list[dict]:
    """Every plug-in loaded from a file (a .py path, or a module with one): ``{"path", "sha256"}``, in load order."""
    found = []
    for module in _loaded.values():
        path = getattr(module, "__file__", None)
        if path:
            found.append({"path": str(Path(path).resolve()), "sha256": file_sha256(path)})
    return found
