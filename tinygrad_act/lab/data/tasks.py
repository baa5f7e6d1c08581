"""How a dataset's targets are scored (base.py's ``Dataset.task``): the loss a run trains on, its accuracy, and
what guessing scores.

- ``classification``: outputs (n, classes) logits, one label per example; mean cross-entropy; accuracy = the
  fraction of arg-max predictions equal to the label.
- ``per_step`` (the copy task): outputs (n·K, classes), one row per labelled step (a model reads its last K steps),
  labels (n, K); mean cross-entropy over all n·K steps; accuracy = the fraction of steps predicted right.
- ``regression`` (the adding problem): outputs (n, 1), one value per example; mean squared error; accuracy = the
  fraction of predictions within REGRESSION_TOLERANCE of the target, Hochreiter & Schmidhuber 1997's criterion
  for the adding problem (an absolute error above 0.04 counts as wrong). Chance is the train mean predicted for
  everything: its test MSE (the targets' variance, 1/6 for the adding problem) and its accuracy (7.8% there).
"""

from __future__ import annotations

import math

import numpy as np

from ...engine.graph import no_grad
from ...engine.tensor import Tensor
from ...nn.modules import cross_entropy, mse

REGRESSION_TOLERANCE = 0.04


def flat_targets(task: str, y: np.ndarray) -> np.ndarray:
    """The targets in the outputs' row order: a per-step task's (n, K) labels as n·K labels; others as they are."""
    return np.asarray(y).reshape(-1) if task == "per_step" else np.asarray(y)


def loss(task: str, outputs: Tensor, y: np.ndarray) -> Tensor:
    """The training loss of ``outputs`` for targets ``y``: MSE for a regression, else mean cross-entropy."""
    if task == "regression":
        return mse(outputs, np.asarray(y, dtype=outputs.dtype).reshape(-1, 1))
    return cross_entropy(outputs, flat_targets(task, y))


def correct(task: str, outputs, y: np.ndarray) -> np.ndarray:
    """Per target, whether the prediction counts as right (a regression: within REGRESSION_TOLERANCE)."""
    scores = outputs.data if isinstance(outputs, Tensor) else np.asarray(outputs)
    if task == "regression":
        return np.abs(scores.reshape(-1) - np.asarray(y).reshape(-1)) <= REGRESSION_TOLERANCE
    return np.argmax(scores, axis=1) == flat_targets(task, y)


def accuracy(task: str, outputs, y: np.ndarray) -> float:
    """The fraction of targets predicted right (``correct``)."""
    return float(np.mean(correct(task, outputs, y)))


def chance(task: str, classes: int, y_train: np.ndarray, y_test: np.ndarray) -> dict:
    """What guessing scores on the test split: {"accuracy", "loss"}. Classes: 1/classes and log(classes)
    (uniform guesses); a regression: the train mean predicted for every test example (its MSE and accuracy)."""
    if task == "regression":
        guess = float(np.mean(y_train))
        error = np.asarray(y_test, dtype=np.float64) - guess
        return {"accuracy": float(np.mean(np.abs(error) <= REGRESSION_TOLERANCE)), "loss": float(np.mean(error**2))}
    return {"accuracy": 1.0 / classes, "loss": math.log(classes)}


def evaluate(model, x, y, batch_size: int = 1000, task: str = "classification") -> tuple[float, float]:
    """The task's mean loss and accuracy over a whole split (cross-entropy and the fraction of labels predicted, or
    a regression's MSE and the fraction within tolerance), without recording a graph, in eval mode."""
    model.eval()
    total_loss, right = 0.0, 0
    with no_grad():
        for start in range(0, len(x), batch_size):
            outputs = model(Tensor(x[start : start + batch_size]))
            yb = y[start : start + batch_size]
            total_loss += loss(task, outputs, yb).item() * len(yb)
            right += int(np.count_nonzero(correct(task, outputs, yb)))
    model.train()
    return total_loss / len(x), right / np.size(y)
