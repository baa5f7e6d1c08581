"""Sequence tasks with long-range dependencies, generated locally from a seed: inputs of shape (n, T, F).

- ``adding`` (Hochreiter & Schmidhuber 1997, experiment 4; in the form of Le, Jaitly & Hinton 2015 and Arjovsky
  et al. 2016): at each of T steps a pair (value ~ U(0, 1), marker); the marker is 1 at exactly two steps, one in
  each half of the sequence, and 0 elsewhere. The target is the sum of the two marked values: a regression, read
  from the last hidden state, whose information lies up to T - 1 steps back. Predicting the mean (1) leaves the
  target's variance, 1/6 (``ADDING_CHANCE_MSE``); a prediction within 0.04 of the target counts as right (the
  original paper's criterion, tasks.REGRESSION_TOLERANCE), which a constant 1 meets 7.8% of the time.
- ``copy`` (Hochreiter & Schmidhuber 1997's noiseless "long time lag" memory task, as the copy problem of
  Arjovsky et al. 2016 states it): ``length`` symbols drawn from ``symbols`` kinds, then blanks, a delimiter at step
  T - length (counting from 1), and ``length`` blanks during which the net must recall the symbols in order.
  Inputs are one-hot over symbols + 2 kinds (the symbols, blank, delimiter); the targets are the ``length``
  symbols, one per recall step (per-step classification of the last ``length`` outputs); the first symbol lies
  T - length steps back. Chance: 1/symbols per step.
- ``mnist1d_seq``: MNIST-1D (builtin.mnist1d) read as a sequence of its values, one per step (F = 1), classified
  from the last hidden state; ``seq_len`` is MNIST-1D's ``length`` (40 by default). Its inputs, standardized per
  step with the train statistics, are exactly ``mnist1d``'s standardized inputs, reshaped.

Every generator takes ``seq_len`` (T), the one parameter a run's ``--seq-len`` sets. The adding and copy inputs keep
the papers' scale (datasets.py registers them unstandardized): standardizing a marker that is 1 at two steps of T
would make it about sqrt(T / 2), a task that changed with T.
"""

from __future__ import annotations

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from ...common.registry import keyword_defaults
from . import builtin
from .base import Shape

ADDING_CHANCE_MSE = 1.0 / 6.0  # Var(U1 + U2) for two independent U(0, 1): the MSE of always predicting 1


def adding(rng, *, seq_len=100, n_train=4000, n_test=1000):
    """The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of T (value, marker) pairs."""
    n, half = n_train + n_test, seq_len // 2
    values = rng.random((n, seq_len))
    rows = np.arange(n)
    first = rng.integers(0, half, size=n)  # one marker in each half: the first lies at least T/2 steps back
    second = rng.integers(half, seq_len, size=n)
    markers = np.zeros((n, seq_len))
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=2)
    y = values[rows, first] + values[rows, second]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def adding_shape(seq_len, n_train, n_test) -> Shape:
    validate.integer("seq_len", seq_len, 2)  # a marker in each half
    validate.integer("n_train", n_train, 1)
    validate.integer("n_test", n_test, 1)
    n = n_train + n_test
    return Shape(n_train, n_test, 2, 0, 5 * n * seq_len, seq_len=seq_len, task="regression")


def copy(rng, *, seq_len=100, length=10, symbols=8, n_train=4000, n_test=1000):
    """The copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): recall ``length`` symbols after a gap."""
    n = n_train + n_test
    shown = rng.integers(0, symbols, size=(n, length))
    blank, delimiter = symbols, symbols + 1
    kinds = np.full((n, seq_len), blank)
    kinds[:, :length] = shown
    kinds[:, seq_len - length - 1] = delimiter  # "recall now": the next `length` steps answer
    x = np.eye(symbols + 2)[kinds]
    return x[:n_train], shown[:n_train], x[n_train:], shown[n_train:]


def copy_shape(seq_len, length, symbols, n_train, n_test) -> Shape:
    validate.integer("length", length, 1)
    validate.integer("symbols", symbols, 2)
    validate.integer("seq_len", seq_len, 1)
    if seq_len < 2 * length + 1:
        raise UsageError(
            f"copy: seq_len={seq_len} cannot hold {length} symbols, a delimiter and {length} recall steps; "
            f"use seq_len >= {2 * length + 1} (or a smaller length)"
        )
    validate.integer("n_train", n_train, 1)
    validate.integer("n_test", n_test, 1)
    n, features = n_train + n_test, symbols + 2
    peak = n * seq_len * (features + 1) + n * length
    return Shape(n_train, n_test, features, symbols, peak, seq_len=seq_len, task="per_step", targets=length)


def mnist1d_seq(rng, *, seq_len=40, n_train=4000, n_test=1000):
    """MNIST-1D (Greydanus 2020) as a sequence: one of its ``seq_len`` values per step, a digit per sequence."""
    x_train, y_train, x_test, y_test = builtin.mnist1d(rng, n_train=n_train, n_test=n_test, length=seq_len)
    return x_train[:, :, None], y_train, x_test[:, :, None], y_test


def mnist1d_seq_shape(seq_len, n_train, n_test) -> Shape:
    settings = {**keyword_defaults(builtin.mnist1d), "n_train": n_train, "n_test": n_test, "length": seq_len}
    flat = builtin.mnist1d_shape(**settings)
    return Shape(n_train, n_test, 1, flat.classes, flat.peak_values, seq_len=seq_len)
