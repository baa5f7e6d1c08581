"""Datasets: built-ins generated locally from a seed (``mnist1d``, ``spirals``, ``teacher``; the sequence tasks
``adding``, ``copy``, ``mnist1d_seq``), the reference package's MNIST-1D, and your own files or arrays, all
loaded the same way (datasets.py) into a ``Dataset`` (base.py), scored as its ``task`` says (tasks.py).

    from tinygrad_act.lab import data
    ds = data.load("spirals:classes=5", seed=0); xb, yb = next(data.batches(ds, 64, rng))
"""

from . import tasks
from .base import TASKS, BatchStream, Dataset, Shape, batches, standardize
from .datasets import CACHE_ENV, DATA_VERSION, cache_path, check, describe, load, names, register, sequence_names

__all__ = [
    "BatchStream",
    "CACHE_ENV",
    "DATA_VERSION",
    "Dataset",
    "Shape",
    "TASKS",
    "batches",
    "cache_path",
    "check",
    "describe",
    "load",
    "names",
    "register",
    "sequence_names",
    "standardize",
    "tasks",
]
