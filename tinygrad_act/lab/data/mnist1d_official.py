"""``DATA=mnist1d_official``: MNIST-1D made by the reference package (``pip install mnist1d``, Greydanus 2020).

The package generates the published dataset locally from its own seed (42 by default), without a download:
``mnist1d.data.make_dataset`` needs no network (only ``get_dataset``, which we do not call, fetches a pickle).
It is an optional data source beside the built-in ``mnist1d`` (builtin.py), which rebuilds the same procedure
with a numpy Generator; tests/test_mnist1d.py checks that the two agree in distribution.

The package seeds numpy's and Python's global random generators; we restore both afterwards, so a run's other
random streams (weights, batch order: numpy Generators of their own) and the caller's state are untouched.
The run's data seed is not used: the arrays are those of ``package_seed``, as published.
"""

from __future__ import annotations

import random

import numpy as np

from ...common import validate
from ...common.errors import UsageError
from .base import Shape

INSTALL = "pip install 'tinygrad_act[mnist1d]' (or pip install mnist1d)"


def mnist1d_official(rng, *, num_samples=5000, train_split=0.8, package_seed=42):
    """MNIST-1D as published, generated locally by the reference package (pip install mnist1d)."""
    from mnist1d.data import get_dataset_args, make_dataset

    del rng  # the package draws from its own seed (package_seed), as the published arrays do
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_split, package_seed
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002 (the package's global)
    try:
        arrays = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
    return arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]


def mnist1d_official_shape(num_samples, train_split, package_seed):
    """The split sizes without generating anything; UsageError if the package is missing."""
    try:
        import mnist1d.data  # noqa: F401  (checked here, before a run writes anything or a sweep starts)
    except ImportError:
        raise UsageError(f"DATA=mnist1d_official needs the mnist1d package (not installed): {INSTALL}") from None
    classes, length = 10, 40
    validate.integer("num_samples", num_samples, 2 * classes)
    validate.number("train_split", train_split, 0, 1, low_open=True, high_open=True)
    validate.integer("package_seed", package_seed, 0, 2**32 - 1)
    per_class = num_samples // classes  # the package makes num_samples // 10 of each digit, then splits
    n_train = int(per_class * classes * train_split)
    n_test = per_class * classes - n_train
    if min(n_train, n_test) < 1:
        raise UsageError(f"num_samples={num_samples} with train_split={train_split} leaves a split empty")
    return Shape(n_train, n_test, length, classes, 4 * per_class * classes * length)
