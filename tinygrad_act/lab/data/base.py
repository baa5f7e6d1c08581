"""What every dataset is made of: ``Dataset`` (a standardized train/test split), ``Shape`` (what a spec will produce,
known before generating it), ``standardize`` (the train split's ``statistics``) and ``batches`` (the endless,
resumable minibatch stream). Built-ins (builtin.py), official MNIST-1D and your files (userdata.py) all produce these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ...common import validate
from ...common.errors import UsageError

TASKS = ("classification", "regression", "per_step")  # what a target is: tasks.py scores each


@dataclass(frozen=True, eq=False)  # arrays have no single truth value
class Dataset:
    """A train/test split: inputs ``(n, num_features)``, or ``(n, seq_len, num_features)`` for a sequence task,
    standardized with the train statistics (unless the dataset is registered unstandardized), and targets.

    ``task`` says what a target is (tasks.py scores it): ``classification``, one int64 label per example;
    ``regression``, one float64 value per example (``num_classes`` 0); ``per_step``, int64 labels of shape
    (n, steps), one for each of the last ``steps`` time steps.
    """

    name: str
    params: dict
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    sha256: str = ""  # of what it was made from: a file's bytes, the arrays given, the generated arrays (fingerprint)
    task: str = "classification"

    @property
    def num_features(self) -> int:
        """Length of one input vector (of one step's, for a sequence)."""
        return self.x_train.shape[-1]

    @property
    def seq_len(self) -> int:
        """T, the steps of each input sequence; 0 for inputs that are not sequences."""
        return self.x_train.shape[1] if self.x_train.ndim == 3 else 0

    @property
    def num_outputs(self) -> int:
        """The outputs a model needs per example (per labelled step): one per class, or 1 for a regression."""
        return 1 if self.task == "regression" else self.num_classes

    def __repr__(self):
        task = "" if self.task == "classification" else f", task={self.task!r}"
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"classes={self.num_classes}{task}, seed={self.seed}, dtype={self.x_train.dtype})"
        )


@dataclass(frozen=True)
class Shape:
    """What a dataset spec will produce, known without generating it: split sizes, features (per step), classes
    (0 for a regression), the number of float64 values its generator holds at its peak (for the memory
    estimate), and for a sequence task its ``seq_len`` (T; 0 otherwise), ``task`` and labelled steps
    (``targets``, per example: the last ``targets`` steps of a per-step task)."""

    n_train: int
    n_test: int
    features: int
    classes: int
    peak_values: int
    seq_len: int = 0
    task: str = "classification"
    targets: int = 1


SPLITS = ("x_train", "y_train", "x_test", "y_test")


def fingerprint(arrays, names=SPLITS) -> str:
    """sha256 over each array's name, dtype, shape and bytes: equal arrays, equal digest (about 1 ms per MB)."""
    digest = hashlib.sha256()
    for name, array in zip(names, arrays):
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def statistics(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-feature mean and std ``standardize`` uses: the train split's, a constant feature keeping std 1
    (over the examples: a sequence's statistics are per step and feature)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


def standardize(x_train: np.ndarray, x_test: np.ndarray):
    """(x - mean) / std per feature, with the train split's statistics (``statistics``)."""
    mean, std = statistics(x_train)
    return (x_train - mean) / std, (x_test - mean) / std


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
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as error:
            raise UsageError(f"the batch stream's state is not valid: {type(error).__name__}: {error}") from None
        if (
            order.dtype.kind not in "iu"
            or order.ndim != 1
            or (order.size and not 0 <= order.min() <= order.max() < len(self.y))
        ):
            raise UsageError(f"the batch stream's pending indices do not fit a training split of {len(self.y)}")
        self.order, self.served = order.astype(np.int64), served
