"""The built-in datasets, generated locally from a seed (no downloads): ``mnist1d`` (default), ``spirals``, ``teacher``;
each a generator of raw (unstandardized) splits and a shape check; datasets.py registers them.

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

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from .base import Shape

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


def mnist1d(
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


def mnist1d_shape(n_train, n_test, length, padding_min, padding_max, max_translation, **scales) -> Shape:
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


def spirals(rng, *, classes=3, n=3000, noise=0.2, turns=1.0, test_fraction=0.2):
    """K interleaved 2-D spiral arms, one per class; ``noise`` jitters each point's angle (radians)."""
    n_train, n_test = _split_sizes(n, test_fraction)
    labels = np.concatenate([_balanced_labels(n_train, classes, rng), _balanced_labels(n_test, classes, rng)])
    radius = rng.random(n)
    # Arm k starts at angle 2 pi k / K and winds `turns` times as the radius grows from 0 to 1.
    angle = 2.0 * np.pi * (labels / classes + turns * radius) + noise * rng.standard_normal(n)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]


def spirals_shape(classes, n, noise, turns, test_fraction) -> Shape:
    n_train, n_test = _checked_split(n, test_fraction, classes)
    _scale("noise", noise)
    _scale("turns", turns)
    return Shape(n_train, n_test, 2, classes, 8 * n)  # labels, radius, angle, cos, sin, x: a few n-vectors


def teacher(rng, *, features=20, classes=10, depth=3, width=64, gain=1.5, n=5000, test_fraction=0.2):
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


def teacher_shape(features, classes, depth, width, gain, n, test_fraction) -> Shape:
    n_train, n_test = _checked_split(n, test_fraction, classes)
    validate.integer("features", features, 1)
    validate.integer("depth", depth, 0)
    validate.integer("width", width, 1)
    _scale("gain", gain)
    # inputs, two hidden layers, logits and their offset copies; the teacher's weights
    peak = n * (features + 2 * width + 3 * classes) + width * (width + features)
    return Shape(n_train, n_test, features, classes, peak)
