"""Your own data: ``DATA=path.npz``, ``DATA=path.csv``, or arrays passed to ``tinygrad_act.run(data=(x, y))``.

- ``.npz``: arrays ``x`` (n, features) and ``y`` (n,), optionally ``x_test`` and ``y_test``; loaded with
  ``allow_pickle=False`` (an archive holding pickled objects is refused, never unpickled).
- ``.csv``: a header row, numeric feature columns, the label in the column named ``label``.

Labels are integers; their sorted distinct values become classes 0..C-1 (``-1, 1`` -> ``0, 1``; config.json
keeps the original values as ``labels``); a label that does not survive its conversion to int64 exactly (1e20,
a uint64 above 2**63 - 1) is refused. Without a test split, a stratified 20% of each class is held out,
drawn from the dataset seed (0, as for the built-ins) so every run on the file sees the same split. Inputs are
standardized with the train statistics, like the built-ins; a feature whose standardization overflows or
underflows float64 (values near 1e200 or 1e-200), or that leaves the run's dtype, is refused rather than
silently turned into zeros. A file must be a regular file (never a FIFO or a device), its size bounded before
it is read; masked arrays with masked entries are refused. Every defect is one UsageError naming the file and
what is wrong, raised by ``check`` before a run directory exists.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from pathlib import Path

import numpy as np

from ...common import files, validate
from ...common.errors import RunDirError, UsageError
from .base import TASKS, Dataset, Shape, standardize, statistics
from .base import fingerprint as _sha256_arrays

SUFFIXES = (".npz", ".csv")
TEST_FRACTION = 0.2
LABEL_COLUMN = "label"
ARRAYS = "arrays@"  # the spec of arrays given to tinygrad_act.run: "arrays@" + the start of their sha256
_ARRAY_NAMES = ("x", "y", "x_test", "y_test")
_arrays: dict[str, tuple] = {}  # spec -> the raw arrays, this process only
_loaded: dict = {}  # the last file read: (path, size, mtime) -> (raw arrays, sha256), so check + load read once


def is_user_spec(spec, builtin_names=()) -> bool:
    """Whether ``spec`` names your data: registered arrays, a ``.npz``/``.csv`` path, or an existing path that
    is not a built-in dataset's name."""
    if not isinstance(spec, str):
        return False
    if spec.startswith(ARRAYS) or spec.lower().endswith(SUFFIXES):
        return True
    return spec.partition(":")[0] not in builtin_names and os.path.exists(spec)


def register_arrays(arrays) -> str:
    """Keep ``(x, y)`` or ``(x, y, x_test, y_test)`` for this process after checking them; their spec."""
    count = len(arrays) if isinstance(arrays, (tuple, list)) else None
    if count not in (2, 4):
        got = f"{count} arrays" if count is not None else f"a {type(arrays).__name__}"
        raise UsageError(f"data arrays must be (x, y) or (x, y, x_test, y_test); got {got}")
    raw = tuple(_array(name, a) for name, a in zip(_ARRAY_NAMES, arrays))
    _check(raw, "dataset arrays")
    digest = _sha256_arrays(raw, _ARRAY_NAMES)
    spec = ARRAYS + digest[:16]
    _arrays[spec] = (raw, digest)
    return spec


def _array(name: str, value) -> np.ndarray:
    """One of the arrays given to run(): a plain numeric array (a masked array only without masked entries)."""
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.count_masked(value):
            raise UsageError(f"dataset arrays: {name} is a masked array with {np.ma.count_masked(value)} masked "
                             "entries; fill them (x.filled(value)) or drop their rows first")  # fmt: skip
        value = value.data
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged lists ...
        raise UsageError(f"dataset arrays: {name} is not an array ({error})") from None


def fingerprint(spec: str) -> str:
    """The sha256 of your data as ``load`` would read it now (the file's bytes, or the registered arrays')."""
    return _raw(spec)[2]["sha256"]


def check(spec: str):
    """Read and check your data (cheap enough for Config.validate: one read, kept for ``load``); its Shape."""
    raw, _, _ = _raw(spec)
    n_train, n_test = _split_sizes(raw)
    features = raw[0].shape[1]
    classes = len(np.unique(np.concatenate([_labels(y) for y in raw[1::2]])))
    # Peak: the arrays as read, standardized in float64 and converted: about three copies of the values.
    return Shape(n_train, n_test, features, classes, 3 * (n_train + n_test) * (features + 1))


def load(spec: str, seed: int = 0, dtype=np.float64):
    """Your data as a Dataset: checked, labels mapped to 0..C-1, split if needed, standardized."""
    raw, name, params = _raw(spec)
    raw = tuple(a.astype(np.float64) if i % 2 == 0 else _labels(a) for i, a in enumerate(raw))
    x, y = raw[0], raw[1]
    labels = np.unique(np.concatenate(raw[1::2]))
    if len(raw) == 4:
        x_train, y_train, x_test, y_test = raw
        params["test_split"] = "given"
    else:
        test = _stratified_test(y, seed)
        x_train, y_train, x_test, y_test = x[~test], y[~test], x[test], y[test]
        params["test_split"] = f"stratified {TEST_FRACTION:.0%} of each class, seed {seed}"
    params["labels"] = labels.tolist()
    raw_train = x_train
    x_train, x_test = _standardized(x_train, x_test, np.dtype(dtype), name if name == "arrays" else params["path"])
    mean, std = statistics(raw_train)  # finite (checked just above); kept so a trained run predicts in your units
    params["standardization"] = {"mean": mean.tolist(), "std": std.tolist()}
    y_train, y_test = (np.searchsorted(labels, part).astype(np.int64) for part in (y_train, y_test))
    return Dataset(name, params, seed, x_train, y_train, x_test, y_test, len(labels), params["sha256"])


# What config.json records of a run's data (``dataset``: lab/run/experiment.py), as Run's model, predict and
# evaluate read it back: typed, and your data's labels and standardization (``load``) consistent with it.
_RECORDED = (
    validate.Setting("features", int, None, low=1),
    validate.Setting("classes", int, None, low=0),  # 0: a regression's (below: only there)
    validate.Setting("sha256", str, None, optional=True),
    validate.Setting("params", dict, {}, optional=True),
    # a sequence task's (lab/run/recurrent.py's dataset_entry); absent for flat data: the defaults
    validate.Setting("seq_len", int, 0, low=0),
    validate.Setting("task", str, "classification", choices=TASKS),
    validate.Setting("readout_steps", int, 1, low=1),
    validate.Setting("outputs", int, None, optional=True, low=1),
)
_RECORDED_PARAMS = (validate.Setting("labels", list, None, optional=True, items=int),
                    validate.Setting("standardization", dict, None, optional=True))  # fmt: skip
_SCALE = (validate.Setting("mean", list, None, items=float),
          validate.Setting("std", list, None, items=float, low=0, low_open=True))  # fmt: skip


def recorded(entry, where: str) -> dict:
    """config.json's ``dataset`` entry read back (``where``: the file): ``features``, ``classes``, ``sha256``, a
    sequence task's ``seq_len``, ``task``, ``readout_steps`` and ``outputs`` (flat data's defaults if absent), and
    for your data the ``labels`` (one per class, distinct, increasing) and the ``standardization`` (a finite
    ``mean`` and a positive ``std`` per feature) that ``load`` recorded, None where absent; UsageError naming the
    field."""
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: dataset must be an object (the run's record of its data), got {entry!r:.200}")
    found = {s.name: s.check(entry.get(s.name, s.default), f"{where}: dataset") for s in _RECORDED}
    if found["classes"] < 1 and found["task"] != "regression":
        raise UsageError(f"{where}: dataset: classes must be a positive integer (only a regression has none), got "
                         f"{found['classes']!r}")  # fmt: skip
    params, inner = found.pop("params") or {}, f"{where}: dataset.params"
    found.update((s.name, s.check(params.get(s.name), inner)) for s in _RECORDED_PARAMS)
    labels, scale = found["labels"], found["standardization"]
    if labels is not None and (len(labels) != found["classes"] or any(a >= b for a, b in zip(labels, labels[1:]))):
        raise UsageError(f"{inner}: labels must be {found['classes']} distinct integers in increasing order (one "
                         f"per class), got {len(labels)} values")  # fmt: skip
    for setting in _SCALE if scale is not None else ():
        values = setting.check(scale.get(setting.name), f"{inner}.standardization")
        low = -math.inf if setting.low is None else setting.low  # std divides: above 0
        if len(values) != found["features"] or not all(low < value < math.inf for value in values):  # nan: False
            raise UsageError(
                f"{inner}.standardization: {setting.name} must hold {found['features']} finite numbers"
                f"{'' if setting.low is None else ' above 0'} (one per feature), got {values!r:.200}"
            )
    return found


def _labels(y: np.ndarray) -> np.ndarray:
    """Labels as int64 (``_check`` made sure they survive the conversion exactly)."""
    return y.astype(np.int64)


def _standardized(x_train, x_test, dtype, where):
    """Both splits standardized with the train statistics, in ``dtype``; UsageError for a feature whose
    standardization overflows or underflows (it would become all zeros or inf, and train "healthy" on nothing)."""
    with np.errstate(all="ignore"):
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        varying = np.ptp(x_train, axis=0) > 0
        x_train_std, x_test_std = standardize(x_train, x_test)
        spread = x_train_std.std(axis=0)
    bad = np.flatnonzero(~np.isfinite(mean) | ~np.isfinite(std) | (varying & ~(np.abs(spread - 1) < 1e-6)))
    if bad.size:
        j = int(bad[0])
        column = x_train[:, j]
        raise UsageError(f"{where}: feature {j} (values {column.min():.3g} .. {column.max():.3g}, std {std[j]:.3g}) "
                         "cannot be standardized in float64: its spread overflows, underflows or is below 1e-12; "
                         "rescale it")  # fmt: skip
    with np.errstate(over="ignore"):  # a value beyond the dtype becomes inf: refused just below
        x_train_std, x_test_std = x_train_std.astype(dtype), x_test_std.astype(dtype)
    for split, values in (("the training split", x_train_std), ("the test split", x_test_std)):
        if not np.all(np.isfinite(values)):
            j = int(np.flatnonzero(~np.all(np.isfinite(values), axis=0))[0])
            raise UsageError(f"{where}: feature {j} of {split} leaves {dtype} once standardized with the training "
                             "split's statistics (it is far outside them); rescale it or use float64")  # fmt: skip
    return x_train_std, x_test_std


def _raw(spec: str):
    """The checked raw arrays, the dataset's name and its params (what config.json records)."""
    if spec.startswith(ARRAYS):
        if spec not in _arrays:
            raise UsageError(f"data {spec!r}: arrays are known only to the process that passed them to run()")
        raw, digest = _arrays[spec]
        shapes = {name: list(a.shape) for name, a in zip(_ARRAY_NAMES, raw)}
        return raw, "arrays", {"shapes": shapes, "sha256": digest}
    path = Path(spec)
    raw, digest = _read_file(path)
    return raw, "file", {"path": os.path.abspath(path), "sha256": digest}  # absolute, a link kept as named


def _read_file(path: Path):
    """(raw arrays, sha256) of a .npz or .csv file, checked; read once per version of the file."""
    where = f"dataset file {str(path)!r}"
    if path.is_dir():
        raise UsageError(f"{where} is a directory; DATA takes a .npz or .csv file")
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"{where} has an unknown type {path.suffix or '(no suffix)'!r}; use .npz or .csv")
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{where} does not exist") from None
    except OSError as error:
        raise UsageError(f"{where} cannot be read: {error.strerror or error}") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _loaded:
        return _loaded[key]
    # The file as it lies on disk, at most ~4 copies of it while parsed: refused before reading if too big.
    validate.memory(where, 4 * stat.st_size, {"file": stat.st_size})
    try:
        content = files.read_bytes(path, "dataset file", limit=stat.st_size + 2**20)  # a regular file: never a FIFO
    except RunDirError as error:
        raise UsageError(str(error)) from None
    if path.suffix.lower() == ".npz" and not content.startswith(b"PK"):  # np.load would take it for a pickle
        raise UsageError(f"{where} is not a readable .npz archive (not a zip file); save it with numpy.savez")
    raw = _parse_npz(content, where) if path.suffix.lower() == ".npz" else _parse_csv(content, where)
    _check(raw, where)
    _loaded.clear()
    _loaded[key] = (raw, hashlib.sha256(content).hexdigest())
    return _loaded[key]


def _parse_npz(content: bytes, where: str) -> tuple:
    archive = files.read_npz(content, where)  # members' sizes from their headers first, never unpickled
    present = list(archive)
    if "x" not in present or "y" not in present:
        missing = " and ".join(repr(n) for n in ("x", "y") if n not in present)
        raise UsageError(f"{where} has no array {missing} (it holds: {', '.join(present) or 'nothing'}); "
                         "save arrays x, y and optionally x_test, y_test")  # fmt: skip
    if ("x_test" in present) != ("y_test" in present):
        raise UsageError(f"{where} has only one of x_test and y_test; give both or neither")
    return tuple(archive[name] for name in _ARRAY_NAMES if name in present)


def _parse_csv(content: bytes, where: str) -> tuple:
    try:
        rows = list(csv.reader(content.decode("utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{where} is not UTF-8 CSV text ({error})") from None
    if not rows:
        raise UsageError(f"{where} is empty; it needs a header row and a column named {LABEL_COLUMN!r}")
    header = [name.strip() for name in rows[0]]
    if LABEL_COLUMN not in header:
        raise UsageError(f"{where} has no column named {LABEL_COLUMN!r} (columns: {', '.join(header)})")
    if header.count(LABEL_COLUMN) > 1:
        raise UsageError(f"{where} has {header.count(LABEL_COLUMN)} columns named {LABEL_COLUMN!r}; name the "
                         "labels once")  # fmt: skip
    values = np.empty((len(rows) - 1, len(header)))
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UsageError(f"{where}, line {number}: {len(row)} fields where the header has {len(header)}")
        for column, text in enumerate(row):
            try:
                values[number - 2, column] = float(text)
            except ValueError:
                raise UsageError(f"{where}, line {number}, column {header[column]!r}: "
                                 f"{text!r} is not a number") from None  # fmt: skip
    label = header.index(LABEL_COLUMN)
    return np.delete(values, label, axis=1), values[:, label]


def _check(raw: tuple, where: str) -> None:
    """Shapes, numbers, finiteness, integer labels, at least two classes, every class in every split."""
    pairs = [("x", "y")] + ([("x_test", "y_test")] if len(raw) == 4 else [])
    for (x_name, y_name), x, y in zip(pairs, raw[0::2], raw[1::2]):
        for name, array in ((x_name, x), (y_name, y)):
            if array.dtype.kind not in "biuf":
                raise UsageError(f"{where}: {name} holds {array.dtype} values; it must be numeric")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                bad = np.argwhere(~np.isfinite(array))[0].tolist()
                raise UsageError(f"{where}: {name} holds a non-finite value ({array[tuple(bad)]} at {bad})")
        if x.ndim != 2 or x.shape[1] == 0:
            raise UsageError(f"{where}: {x_name} has shape {x.shape}; it must be (examples, features)")
        if y.shape != (len(x),):
            raise UsageError(f"{where}: {y_name} has shape {y.shape}; it must be ({len(x)},), one label per row")
        if len(x) == 0:
            raise UsageError(f"{where}: {x_name} has no rows")
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise UsageError(f"{where}: {y_name} holds {y[y != np.round(y)][0]!r}; labels must be integers")
        with np.errstate(all="ignore"):  # the labels must survive their conversion to int64 exactly
            survives = y.astype(np.int64).astype(y.dtype) == y
            if y.dtype.kind == "f":
                survives &= np.abs(y) < 2.0**63
            elif y.dtype.kind == "u":
                survives &= y <= np.iinfo(np.int64).max
        if not np.all(survives):
            raise UsageError(f"{where}: {y_name} holds the label {y[~survives][0]!r}, which is no 64-bit integer "
                             "(labels must lie within +-9.2e18)")  # fmt: skip
    if len(raw) == 4 and raw[2].shape[1] != raw[0].shape[1]:
        raise UsageError(f"{where}: x has {raw[0].shape[1]} features but x_test has {raw[2].shape[1]}")
    classes = np.unique(np.concatenate([_labels(y) for y in raw[1::2]]))
    if len(classes) < 2:
        raise UsageError(f"{where}: the labels hold {len(classes)} class; a classifier needs at least 2")
    if len(raw) == 4:
        for name, y in (("y", raw[1]), ("y_test", raw[3])):
            missing = np.setdiff1d(classes, _labels(y))
            if missing.size:
                raise UsageError(f"{where}: class {missing[0]:g} is missing from {name}; every class needs "
                                 "examples in both splits")  # fmt: skip
    else:
        values, counts = np.unique(raw[1], return_counts=True)
        if counts.min() < 2:
            raise UsageError(f"{where}: class {values[counts.argmin()]:g} has 1 example; each class needs at "
                             "least 2 for the stratified test split")  # fmt: skip


def _test_counts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each class and how many of its examples go to the test split: 20%, at least 1, at least 1 left to train."""
    values, counts = np.unique(y, return_counts=True)
    return values, np.clip(np.round(counts * TEST_FRACTION).astype(np.int64), 1, counts - 1)


def _split_sizes(raw: tuple) -> tuple[int, int]:
    if len(raw) == 4:
        return len(raw[1]), len(raw[3])
    n_test = int(_test_counts(raw[1])[1].sum())
    return len(raw[1]) - n_test, n_test


def _stratified_test(y: np.ndarray, seed: int) -> np.ndarray:
    """A mask of the test examples: per class, a seeded random 20% (file order kept within each split)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for value, count in zip(*_test_counts(y)):
        test[rng.permutation(np.flatnonzero(y == value))[:count]] = True
    return test
