"""The dataset registry: ``load`` and ``check`` a spec (a built-in or registered name with parameters, or your own
data: ``path.npz``, ``path.csv``, arrays; userdata.py), ``register`` your own generator, and the cache.

    ds = load("spirals:classes=5,noise=0.1", seed=0, dtype=np.float32)
    ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_features, ds.num_classes

Every dataset has a train and a test split, targets (int64 labels; float64 values for a regression, base.py's
``Dataset.task``) and inputs standardized per feature with the *train* mean and std (sequence tasks registered
with ``standardize=False`` keep their published scale: sequences.py). The same name, parameters and seed give
bit-identical arrays; the float64 arrays are cached in ``.cache/data/`` under the working directory (or
``$TINYGRAD_ACT_CACHE/data/``), written atomically so that parallel workers never read half a file; an unreadable
cache file is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ...common import files, validate
from ...common.errors import RunDirError, UsageError
from ...common.files import atomic_file, make_dir
from ...common.registry import Registry, keyword_defaults
from . import builtin, sequences, userdata
from .base import TASKS, Dataset, Shape, fingerprint, standardize
from .mnist1d_official import mnist1d_official, mnist1d_official_shape

DATA_VERSION = 1
CACHE_ENV = "TINYGRAD_ACT_CACHE"
_SPLITS = ("x_train", "y_train", "x_test", "y_test")

_REGISTRY = Registry("dataset")


def register(name: str, generator, *, shape=None, description: str = "", replace: bool = False,
             standardize: bool = True) -> str:  # fmt: skip
    """Add a dataset: ``generator(rng, **params) -> (x_train, y_train, x_test, y_test)``, raw (unstandardized).

    Keyword parameters of ``generator`` after ``rng`` become the dataset's parameters (``name:param=value``);
    labels must be integers 0..classes-1. Standardization (unless ``standardize=False``), dtype and caching are
    done by ``load``; the cache key is the name, parameters and seed, so pass ``cache=False`` to ``load`` while
    editing a generator. ``shape(**params) -> Shape`` (optional) checks the parameters without generating
    anything, raising UsageError (see common/validate.py) for values that make no sense; ``check`` and ``load``
    call it. A Shape also declares a sequence task's T and what its targets are (base.py: regression values,
    per-step labels); without one, the targets are class labels.
    """
    description = description or (generator.__doc__ or "").strip().split("\n")[0]
    _REGISTRY.register(name, (generator, shape, standardize), defaults=keyword_defaults(generator),
                       description=description, replace=replace)  # fmt: skip
    return name


def check(spec: str = "mnist1d", **params) -> Shape | None:
    """Check ``spec``'s name and parameters without generating anything; its Shape (None if not declared).

    Cheap: a sweep checks every cell this way before its first run starts. Your data (a .npz or .csv path,
    see userdata.py) is read and checked once here, its defects named.
    """
    if userdata.is_user_spec(spec, names()):
        return userdata.check(spec)
    entry, bound = _REGISTRY.resolve(spec, **params)
    shape = entry.obj[1]
    return None if shape is None else shape(**bound)


def names() -> list[str]:
    """Every registered dataset name, sorted."""
    return _REGISTRY.names()


def sequence_names() -> list[str]:
    """The sequence datasets: those whose generator takes ``seq_len`` (T, what a run's seq_len sets), sorted."""
    return [name for name in names() if "seq_len" in _REGISTRY.entry(name).defaults]


def describe(name: str) -> str:
    """One line: the dataset's description and its default parameters."""
    entry = _REGISTRY.entry(name)
    defaults = ",".join(f"{k}={v}" for k, v in entry.defaults.items())
    return f"{entry.name}:{defaults}  {entry.description}"


def _cache_key(name: str, params: dict, seed: int) -> str:
    key = {"name": name, "params": params, "seed": seed, "version": DATA_VERSION}
    return json.dumps(key, sort_keys=True, default=lambda value: value.item())  # numpy scalars


def cache_path(spec: str = "mnist1d", seed: int = 0, **params) -> Path:
    """Where ``load(spec, seed, **params)`` caches its arrays: ``<cache>/data/<name>-<hash>.npz``."""
    entry, bound = _REGISTRY.resolve(spec, **params)
    digest = hashlib.sha256(_cache_key(entry.name, bound, seed).encode()).hexdigest()[:16]
    return Path(os.environ.get(CACHE_ENV) or ".cache") / "data" / f"{entry.name}-{digest}.npz"


def _read_cache(path: Path, key: str):
    """The cached arrays, or None when the file is missing, unreadable (not a regular file, corrupt, too large ...)
    or holds another key."""
    if not path.exists():
        return None
    try:
        archive = files.read_npz(path, "data cache")
    except (UsageError, RunDirError):
        return None
    if any(name not in archive for name in ("key", *_SPLITS)) or archive["key"].dtype.kind != "U":
        return None
    return tuple(archive[split] for split in _SPLITS) if str(archive["key"]) == key else None


def _write_cache(path: Path, key: str, arrays) -> None:
    """Write the arrays whole or not at all (atomic_file): parallel readers never see half a file."""
    make_dir(path.parent)
    with atomic_file(path, "wb") as file:
        np.savez(file, key=np.array(key), **dict(zip(_SPLITS, arrays)))


def _generate(entry, params: dict, seed: int, shape: Shape | None):
    generator, _, standardized = entry.obj
    try:
        result = generator(np.random.default_rng(seed), **params)
    except UsageError:
        raise
    except Exception as error:  # a plug-in's generator: its failure is the user's to fix, in one line
        raise UsageError(f"dataset {entry.name!r}: its generator failed: {type(error).__name__}: {error}") from None
    x_train, y_train, x_test, y_test = _generated(entry.name, result, shape or Shape(0, 0, 0, 0, 0))
    if standardized:
        x_train, x_test = standardize(x_train, x_test)
    return x_train, y_train, x_test, y_test


def _generated(name: str, result, shape: Shape) -> tuple:
    """A generator's (x_train, y_train, x_test, y_test) as float64 inputs and targets as its Shape declares (int64
    labels; float64 values for a regression), or one line naming the dataset: four arrays, inputs (n, features)
    (a sequence task's (n, T, features)) of finite numbers, and per row one integer label >= 0 (a regression's: a
    finite value; a per-step task's: ``targets`` labels)."""
    where, sequence, task = f"dataset {name!r}: its generator", shape.seq_len > 0, shape.task
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        raise UsageError(f"{where} must return (x_train, y_train, x_test, y_test), got {type(result).__name__}")
    try:
        x_train, y_train, x_test, y_test = (np.asarray(a) for a in result)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{where} returned something that is not an array ({error})") from None
    layout = "(examples, steps, features)" if sequence else "(examples, features)"
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype.kind not in "biuf" or x.ndim != 2 + sequence or not np.all(np.isfinite(x)):
            raise UsageError(f"{where}'s x_{split} must be finite numbers of shape {layout}, got {x.dtype} of shape "
                             f"{x.shape}")  # fmt: skip
        rows = (len(x), shape.targets) if task == "per_step" else (len(x),)
        if y.shape != rows or y.dtype.kind not in "biuf" or not np.all(np.isfinite(y)):
            raise UsageError(f"{where}'s y_{split} must be one {'value' if task == 'regression' else 'label'} per "
                             f"row of x_{split}, got {y.dtype} of shape {y.shape}")  # fmt: skip
        if task != "regression" and not np.all((y == np.round(y)) & (y >= 0)):
            raise UsageError(f"{where}'s y_{split} holds {y[(y != np.round(y)) | (y < 0)][0]!r}; labels are "
                             "integers 0..classes-1")  # fmt: skip
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UsageError(f"{where}'s x_train has rows of shape {x_train.shape[1:]} but x_test {x_test.shape[1:]}")
    targets = np.float64 if task == "regression" else np.int64
    return (x_train.astype(np.float64, copy=False), y_train.astype(targets), x_test.astype(np.float64, copy=False),
            y_test.astype(targets))  # fmt: skip


def load(spec: str = "mnist1d", seed: int = 0, dtype=np.float64, *, cache: bool = True, **params) -> Dataset:
    """The dataset ``spec`` (``"name"`` or ``"name:param=value,..."``) generated from ``seed``, inputs in ``dtype``."""
    seed = validate.integer("seed", seed, 0)
    try:
        kind = np.dtype(dtype).kind
    except (TypeError, ValueError):
        kind = None
    if kind != "f":
        raise UsageError(f"dtype must be a floating type such as float32 or float64, got {dtype!r}")
    if userdata.is_user_spec(spec, names()):
        return userdata.load(spec, seed, dtype)
    shape = check(spec, **params)
    task = shape.task if shape is not None else "classification"
    validate.choice(f"task of dataset {spec!r} (its shape's)", task, TASKS)  # a plug-in's Shape, checked
    entry, bound = _REGISTRY.resolve(spec, **params)
    arrays = None
    if cache:
        path, key = cache_path(entry.name, seed, **bound), _cache_key(entry.name, bound, seed)
        arrays = _read_cache(path, key)
    if arrays is None:
        arrays = _generate(entry, bound, seed, shape)
        if cache:
            try:
                _write_cache(path, key, arrays)
            except RunDirError:  # the cache only saves time: a read-only or full disk must not stop a run
                pass
    x_train, y_train, x_test, y_test = arrays
    if task == "regression":
        num_classes = 0
    else:
        num_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
        declared = shape.classes if shape is not None else bound.get("classes")
        if isinstance(declared, int) and num_classes > declared:
            raise UsageError(f"dataset {entry.name!r}: its labels go up to {num_classes - 1}, beyond classes="
                             f"{declared}")  # fmt: skip
        num_classes = int(num_classes if declared is None else declared)
    return Dataset(entry.name, dict(bound), seed, x_train.astype(dtype), y_train, x_test.astype(dtype), y_test,
                   num_classes, fingerprint(arrays), task)  # fmt: skip


register("mnist1d", builtin.mnist1d, shape=builtin.mnist1d_shape)
register("spirals", builtin.spirals, shape=builtin.spirals_shape)
register("teacher", builtin.teacher, shape=builtin.teacher_shape)
# Sequence tasks (inputs (n, T, F); --seq-len sets T): the adding and copy tasks keep the papers' scale.
register("adding", sequences.adding, shape=sequences.adding_shape, standardize=False)
register("copy", sequences.copy, shape=sequences.copy_shape, standardize=False)
register("mnist1d_seq", sequences.mnist1d_seq, shape=sequences.mnist1d_seq_shape)
# Optional: the reference package's MNIST-1D (pip install mnist1d); registered always, so the name is listed.
register("mnist1d_official", mnist1d_official, shape=mnist1d_official_shape)
