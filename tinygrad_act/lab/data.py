"""Built-in datasets, generated locally from a seed (no downloads): ``mnist1d`` (default), ``spirals``, ``teacher``;
your own data (``path.npz``, ``path.csv``, arrays) through the same ``load`` and ``check`` (userdata.py).

    ds = load("spirals:classes=5,noise=0.1", seed=0, dtype=np.float32)
    ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_features, ds.num_classes

Every dataset has a train and a test split, integer labels (int64) and inputs standardized per feature with
the *train* mean and std. The same name, parameters and seed give bit-identical arrays; the float64 arrays
are cached in ``.cache/data/`` under the working directory (or ``$TINYGRAD_ACT_CACHE/data/``), written
atomically so that parallel workers never read half a file; an unreadable cache file is regenerated.

MNIST-1D (Greydanus, "Scaling down deep learning", 2020, arXiv:2011.14439) is rebuilt from the paper's
procedure and its published default constants. Each sample starts from one of ten hand-designed digit
templates (12 points, each whitened, shifted to start and end at 0, divided by 6) and goes through:

1. padding: 36..60 zeros appended (uniform integer), then linear interpolation back to 12 + 60 = 72 points,
   which stretches the digit by a random factor;
2. scaling by 1 + 0.4 (u - 1/2), u ~ U(0, 1);
3. translation: a circular shift by 0..47 points;
4. correlated noise: the background (points outside the digit) is replaced by white noise of std 0.25
   smoothed by a Gaussian filter of width sigma = 2 (reflecting edges, radius 4 sigma);
5. iid Gaussian noise of std 0.02 on every point;
6. shear: a linear ramp c * linspace(-1/2, 1/2) subtracted, c = 0.75 (u - 1/2);
7. downsampling by linear interpolation to 40 points.

Where this generator differs from the reference implementation: its random stream is a numpy Generator
(so the arrays are not those of the published pickle, but follow the same distribution); the digit mask
of step 4 is computed exactly instead of by adding 1e-8 to the template; each split is exactly balanced
(``n // 10`` samples per class plus the remainder) rather than 5000 balanced samples split at random;
and inputs are standardized per feature with the train statistics instead of by one global mean and std.
Published test accuracies for orientation: logistic regression 32%, MLP 68%, CNN 94%.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import validate
from ..common.errors import RunDirError, UsageError
from ..common.registry import Registry, keyword_defaults
from . import rundir, userdata

# Part of every cache key: bump it whenever a generator's output changes for the same name, params and seed.
DATA_VERSION = 1
CACHE_ENV = "TINYGRAD_ACT_CACHE"
_SPLITS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)  # arrays have no single truth value
class Dataset:
    """A train/test split: inputs ``(n, num_features)`` standardized with the train statistics, int64 labels."""

    name: str
    params: dict
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        """Length of one input vector."""
        return self.x_train.shape[1]

    def __repr__(self):
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"classes={self.num_classes}, seed={self.seed}, dtype={self.x_train.dtype})"
        )


@dataclass(frozen=True)
class Shape:
    """What a dataset spec will produce, known without generating it: split sizes, features, classes, and the
    number of float64 values its generator holds at its peak (for the memory estimate)."""

    n_train: int
    n_test: int
    features: int
    classes: int
    peak_values: int


_REGISTRY = Registry("dataset")


def register(name: str, generator, *, shape=None, description: str = "", replace: bool = False) -> str:
    """Add a dataset: ``generator(rng, **params) -> (x_train, y_train, x_test, y_test)``, raw (unstandardized).

    Keyword parameters of ``generator`` after ``rng`` become the dataset's parameters (``name:param=value``);
    labels must be integers 0..classes-1. Standardization, dtype and caching are done by ``load``; the cache
    key is the name, parameters and seed, so pass ``cache=False`` to ``load`` while editing a generator.
    ``shape(**params) -> Shape`` (optional) checks the parameters without generating anything, raising
    UsageError (see common/validate.py) for values that make no sense; ``check`` and ``load`` call it.
    """
    description = description or (generator.__doc__ or "").strip().split("\n")[0]
    _REGISTRY.register(name, (generator, shape), defaults=keyword_defaults(generator), description=description,
                       replace=replace)  # fmt: skip
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
    """The cached arrays, or None when the file is missing, unreadable or holds another key."""
    try:
        # Our own handle: np.load leaks the one it opens when the zip archive inside is corrupt.
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:
            if str(archive["key"]) != key:
                return None
            return tuple(archive[split] for split in _SPLITS)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, key: str, arrays) -> None:
    """Write the arrays whole or not at all (rundir.atomic_file): parallel readers never see half a file."""
    rundir.make_dir(path.parent)
    with rundir.atomic_file(path, "wb") as file:
        np.savez(file, key=np.array(key), **dict(zip(_SPLITS, arrays)))


def _standardize(x_train: np.ndarray, x_test: np.ndarray):
    """(x - mean) / std per feature, with the train split's statistics; a constant feature keeps std 1."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def _generate(entry, params: dict, seed: int):
    x_train, y_train, x_test, y_test = entry.obj[0](np.random.default_rng(seed), **params)
    x_train, x_test = _standardize(np.asarray(x_train, np.float64), np.asarray(x_test, np.float64))
    return x_train, np.asarray(y_train, np.int64), x_test, np.asarray(y_test, np.int64)


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
    check(spec, **params)
    entry, bound = _REGISTRY.resolve(spec, **params)
    arrays = None
    if cache:
        path, key = cache_path(entry.name, seed, **bound), _cache_key(entry.name, bound, seed)
        arrays = _read_cache(path, key)
    if arrays is None:
        arrays = _generate(entry, bound, seed)
        if cache:
            try:
                _write_cache(path, key, arrays)
            except RunDirError:  # the cache only saves time: a read-only or full disk must not stop a run
                pass
    x_train, y_train, x_test, y_test = arrays
    num_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    num_classes = int(bound.get("classes", num_classes))
    return Dataset(
        entry.name, dict(bound), seed, x_train.astype(dtype), y_train, x_test.astype(dtype), y_test, num_classes
    )


def batches(dataset: Dataset, batch_size: int, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless minibatches ``(xb, yb)`` of the train split, reshuffled with ``rng`` (Generator or seed) every epoch.

    Batches are cut from a stream of epoch permutations, so every batch is full and every example is seen
    once per epoch; a batch may straddle two epochs (or span several when it is larger than the split).
    """
    batch_size = validate.integer("batch_size", batch_size, 1)
    if len(dataset.y_train) == 0:  # no permutation would ever fill a batch
        raise UsageError(f"the training split of dataset {dataset.name!r} is empty; it needs at least one example")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return BatchStream(dataset.x_train, dataset.y_train, batch_size, rng)


class BatchStream:
    """The endless batches of ``batches``, with a state to resume from: the RNG state and the indices cut from
    the current permutations but not yet served (``state()`` / ``load_state()``, arrays only, no pickle)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator):
        self.x, self.y, self.batch_size, self.rng = x, y, batch_size, rng
        self.order = np.empty(0, dtype=np.int64)
        self.served = 0  # batches handed out so far

    def __iter__(self):
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        # All the permutations a batch still needs, joined once: linear in the batch size, the same stream.
        missing = -(-(self.batch_size - len(self.order)) // len(self.y))
        if missing > 0:
            permutations = (self.rng.permutation(len(self.y)) for _ in range(missing))
            self.order = np.concatenate([self.order, *permutations])
        index, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        self.served += 1
        return self.x[index], self.y[index]

    def state(self) -> dict[str, np.ndarray]:
        """{"rng": the bit generator's state as JSON text, "order": pending indices, "served": batches served}."""
        rng_state = json.dumps(self.rng.bit_generator.state)
        return {"rng": np.array(rng_state), "order": self.order.copy(), "served": np.array(self.served)}

    def load_state(self, state: dict) -> None:
        """Continue from ``state()``; UsageError if it is not one (another generator, indices out of range)."""
        try:
            rng_state = json.loads(str(state["rng"]))
            self.rng.bit_generator.state = rng_state
            order = np.asarray(state["order"])
            served = int(state["served"])
        except (KeyError, TypeError, ValueError) as error:
            raise UsageError(f"the batch stream's state is not valid: {error}") from None
        if (
            order.dtype.kind not in "iu"
            or order.ndim != 1
            or (order.size and not 0 <= order.min() <= order.max() < len(self.y))
        ):
            raise UsageError(f"the batch stream's pending indices do not fit a training split of {len(self.y)}")
        self.order, self.served = order.astype(np.int64), served


# ======================================================================================================
# Generators: each returns raw (unstandardized) float64 inputs and integer labels for both splits.
# ======================================================================================================


# The bound on the generators' real parameters (noise, scales, turns, gain): far beyond any useful value, far
# below the overflow that would turn the data into inf and nan.
LARGEST_PARAMETER = 1e6


def _scale(name: str, value) -> float:
    return validate.number(name, value, 0, LARGEST_PARAMETER)


def _balanced_labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels, each class n // classes times (the first n % classes once more), in random order."""
    return rng.permutation(np.arange(n) % classes)


def _split_sizes(n: int, test_fraction: float) -> tuple[int, int]:
    n_test = round(n * test_fraction)
    return n - n_test, n_test


def _checked_split(n, test_fraction, classes) -> tuple[int, int]:
    """(n_train, n_test) after checking that each split holds every class at least once."""
    validate.integer("n", n, 2)
    validate.number("test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
    validate.integer("classes", classes, 2)
    n_train, n_test = _split_sizes(n, test_fraction)
    if min(n_train, n_test) < classes:
        raise UsageError(
            f"n={n} with test_fraction={test_fraction} gives {n_train} train and {n_test} test examples, fewer than "
            f"classes={classes}: every class needs an example in each split; raise n or lower classes"
        )
    return n_train, n_test


# The ten digit outlines of MNIST-1D as published with the paper (Greydanus 2020), on a baseline of 5.
_MNIST1D_DIGITS = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


def mnist1d_templates() -> np.ndarray:
    """The ten MNIST-1D templates, shape (10, 12): each whitened, shifted to start at 0, divided by 6."""
    digits = np.array(_MNIST1D_DIGITS, dtype=np.float64)
    digits = (digits - digits.mean(axis=1, keepdims=True)) / digits.std(axis=1, keepdims=True)
    return (digits - digits[:, :1]) / 6.0


def _interpolate_rows(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``values`` at fractional column ``positions`` (per row or shared)."""
    positions = np.broadcast_to(positions, (values.shape[0], positions.shape[-1]))
    left = np.clip(np.floor(positions).astype(np.int64), 0, values.shape[1] - 2)
    weight = positions - left
    rows = np.arange(values.shape[0])[:, None]
    return values[rows, left] * (1.0 - weight) + values[rows, left + 1] * weight


def _gaussian_smooth(rows: np.ndarray, sigma: float) -> np.ndarray:
    """Each row convolved with a normalized Gaussian of width ``sigma`` (radius 4 sigma, mirrored edges)."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    padded = np.pad(rows, ((0, 0), (radius, radius)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=1)
    return windows @ (kernel / kernel.sum())


def _mnist1d(
    rng,
    *,
    n_train=4000,
    n_test=1000,
    length=40,
    padding_min=36,
    padding_max=60,
    scale_coeff=0.4,
    max_translation=48,
    corr_noise_scale=0.25,
    iid_noise_scale=0.02,
    shear_scale=0.75,
):
    """MNIST-1D (Greydanus 2020): ten 1-D digit templates padded, scaled, shifted, noised, sheared, resampled."""
    templates = mnist1d_templates()
    classes, template_len = templates.shape
    labels = np.concatenate([_balanced_labels(n_train, classes, rng), _balanced_labels(n_test, classes, rng)])
    n, width = len(labels), template_len + padding_max

    # Padding then resampling the padded sequence to a fixed width stretches the digit by a random factor.
    padding = rng.integers(padding_min, padding_max + 1, size=n)
    padded = np.zeros((n, width + 1))
    padded[:, :template_len] = templates[labels]
    positions = np.linspace(0.0, 1.0, width)[None, :] * (template_len + padding - 1)[:, None]
    x = _interpolate_rows(padded, positions)
    # Points that draw on any template sample are the digit; the rest is background for the noise.
    digit = positions < template_len

    x *= 1.0 + scale_coeff * (rng.random(n) - 0.5)[:, None]
    shift = rng.integers(0, max_translation, size=n)
    columns = (np.arange(width)[None, :] - shift[:, None]) % width
    x, digit = np.take_along_axis(x, columns, axis=1), np.take_along_axis(digit, columns, axis=1)

    background = _gaussian_smooth(corr_noise_scale * rng.standard_normal((n, width)), sigma=2.0)
    x = np.where(digit, x, background) + iid_noise_scale * rng.standard_normal((n, width))
    x -= shear_scale * (rng.random(n) - 0.5)[:, None] * np.linspace(-0.5, 0.5, width)[None, :]
    x = _interpolate_rows(x, np.linspace(0.0, width - 1.0, length))
    return x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]


def _mnist1d_shape(n_train, n_test, length, padding_min, padding_max, max_translation, **scales) -> Shape:
    classes = len(_MNIST1D_DIGITS)
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        validate.integer(name, value, classes)  # each split holds every digit at least once
    validate.integer("length", length, 2)
    validate.integer("padding_max", padding_max, 0)
    validate.integer("padding_min", padding_min, 0, padding_max)
    validate.integer("max_translation", max_translation, 1)
    for name, value in scales.items():
        _scale(name, value)
    width = len(_MNIST1D_DIGITS[0]) + padding_max + 1
    # padded, positions, x, digit mask, background, noise: about six (n, width) arrays at once
    return Shape(n_train, n_test, length, classes, 6 * (n_train + n_test) * width)


def _spirals(rng, *, classes=3, n=3000, noise=0.2, turns=1.0, test_fraction=0.2):
    """K interleaved 2-D spiral arms, one per class; ``noise`` jitters each point's angle (radians)."""
    n_train, n_test = _split_sizes(n, test_fraction)
    labels = np.concatenate([_balanced_labels(n_train, classes, rng), _balanced_labels(n_test, classes, rng)])
    radius = rng.random(n)
    # Arm k starts at angle 2 pi k / K and winds `turns` times as the radius grows from 0 to 1.
    angle = 2.0 * np.pi * (labels / classes + turns * radius) + noise * rng.standard_normal(n)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]


def _spirals_shape(classes, n, noise, turns, test_fraction) -> Shape:
    n_train, n_test = _checked_split(n, test_fraction, classes)
    _scale("noise", noise)
    _scale("turns", turns)
    return Shape(n_train, n_test, 2, classes, 8 * n)  # labels, radius, angle, cos, sin, x: a few n-vectors


def _teacher(rng, *, features=20, classes=10, depth=3, width=64, gain=1.5, n=5000, test_fraction=0.2):
    """Gaussian inputs labelled by the argmax of a random deep tanh network, W ~ N(0, gain^2 / fan_in)."""
    n_train, n_test = _split_sizes(n, test_fraction)
    x = rng.standard_normal((n, features))
    hidden = x
    for fan_out in [width] * depth:
        weight = rng.standard_normal((hidden.shape[1], fan_out)) * (gain / np.sqrt(hidden.shape[1]))
        hidden = np.tanh(hidden @ weight)
    logits = hidden @ (rng.standard_normal((hidden.shape[1], classes)) / np.sqrt(hidden.shape[1]))
    # A random teacher favours a few classes; per-class offsets, tuned on the train inputs, make the classes
    # about equally frequent so that chance stays 1 / classes.
    offset, train_logits = -logits[:n_train].mean(axis=0), logits[:n_train]
    for step in range(200):
        frequency = np.bincount(np.argmax(train_logits + offset, axis=1), minlength=classes) / n_train
        offset -= 0.1 * train_logits.std() / (1.0 + step / 20) * (frequency * classes - 1.0)
    labels = np.argmax(logits + offset, axis=1)
    return x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]


def _teacher_shape(features, classes, depth, width, gain, n, test_fraction) -> Shape:
    n_train, n_test = _checked_split(n, test_fraction, classes)
    validate.integer("features", features, 1)
    validate.integer("depth", depth, 0)
    validate.integer("width", width, 1)
    _scale("gain", gain)
    # inputs, two hidden layers, logits and their offset copies; the teacher's weights
    peak = n * (features + 2 * width + 3 * classes) + width * (width + features)
    return Shape(n_train, n_test, features, classes, peak)


register("mnist1d", _mnist1d, shape=_mnist1d_shape)
register("spirals", _spirals, shape=_spirals_shape)
register("teacher", _teacher, shape=_teacher_shape)

# Optional: the reference package's MNIST-1D (pip install mnist1d); imported here so the name is always listed.
from .mnist1d_official import mnist1d_official, mnist1d_official_shape  # noqa: E402

register("mnist1d_official", mnist1d_official, shape=mnist1d_official_shape)
