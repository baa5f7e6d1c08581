"""What one measured step's arrays say, per Linear layer, whichever engine produced them: the arithmetic behind
every field of a record (probes.py's docstring defines the fields) and the histograms of the first and latest
measured step.

The probes collect references to a step's arrays: this engine's (probes.LayerProbe, through its hooks) or
PyTorch's as numpy (tinygrad_act/torch, through torch's hooks); ``LayerArrays`` holds one layer's, and
``step_statistics`` turns a step's into the record's ``grad_norm``, ``nonfinite`` and ``layers``. One copy of
each rule, so a run trained in PyTorch and a PyTorch model under ``watch`` log what a native run logs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ...common import files
from ...nn.optim import squared_norm
from ..theory.mean_field import sigma_w2_of_weights
from .gradient_noise import gradient_snr

_ACTIVATION_KEYS = ("act_mean", "act_std", "saturation", "dead_fraction", "activation_gain", "inactive_fraction")
HISTOGRAM_BINS = 60
DELTA_LOG_RANGE = (-30.0, 6.0)  # log10|δ|: from far below float32's smallest number to well past exploding


def norm(a) -> float:
    """Frobenius norm in float64 (callers hold np.errstate: an overflow means inf)."""
    return math.sqrt(squared_norm(a))


_TINY = {}  # dtype -> smallest normal number (np.finfo is slow to call once per layer)


def _subnormal_fraction(grad: np.ndarray) -> float:
    tiny = _TINY.get(grad.dtype)
    if tiny is None:
        tiny = _TINY[grad.dtype] = np.finfo(grad.dtype).tiny
    return _fraction(np.abs(grad) < tiny)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation in float64, in one pass unless cancellation makes that inexact."""
    flat = values.ravel()
    if flat.dtype != np.float64:
        flat = flat.astype(np.float64)
    n = flat.size
    mean = float(flat.sum()) / n
    variance = float(np.dot(flat, flat)) / n - mean * mean
    if variance < 1e-6 * mean * mean:  # E[x^2] - mean^2 lost its digits: take the two-pass route
        centered = flat - mean
        variance = float(np.dot(centered, centered)) / n
    return mean, math.sqrt(max(variance, 0.0))


def _root_of_sum(squares: list) -> float:
    """optim.global_grad_norm from the squared norms already computed (the same sum, in the same order)."""
    total = sum(squares)
    return math.sqrt(total) if total >= 0 else math.nan


def _fraction(mask: np.ndarray) -> float:
    return np.count_nonzero(mask) / mask.size if mask.size else math.nan


@dataclasses.dataclass
class LayerArrays:
    """One Linear layer's arrays at a measured step, as numpy (references: nothing here is modified).

    ``weight`` is (fan_in, fan_out), the weights the step's forward pass used (``weight_grad`` may be either way
    round: only its norms are taken); ``weight_after`` the same after the
    step's update (None: not known, no ``update_ratio``). ``delta`` = dL/dz of the layer's output z, ``inputs`` its
    input rows. ``pre`` and ``out``: the activation's input a (z, or z normalized) and output, with ``activation``
    the registry's Activation; for the output layer, or an activation the registry does not know, ``activation``
    is None and ``out`` is z (only ``act_mean`` and ``act_std`` are measured). ``slope``: f'(pre) if the engine
    computed it already (its backward does; nn.step.Replayed), else None. None wherever a value was not seen.
    """

    weight: np.ndarray
    weight_grad: np.ndarray | None = None
    bias_grad: np.ndarray | None = None
    has_bias: bool = True
    delta: np.ndarray | None = None
    inputs: np.ndarray | None = None
    pre: np.ndarray | None = None
    out: np.ndarray | None = None
    slope: np.ndarray | None = None
    activation: object = None
    weight_after: np.ndarray | None = None


def activation_statistics(activation, pre: np.ndarray, out: np.ndarray, slope: np.ndarray | None = None) -> dict:
    """A hidden layer's statistics of its activation's input ``pre`` (rows: examples) and output ``out``; ``slope``:
    f'(pre) as the engine's backward computed it (the same function, the same numbers), else computed here.

    Kept per layer: stacking the layers' arrays to reduce them in one call copies them into a fresh allocation
    each step, which measured slower (page faults) than the per-layer calls it saves."""
    # f'(a) once, for every statistic, from the input as the engine has it: the output form
    # (1 - y^2) is 0 in the saturated tails and would call saturated units dead
    if slope is None:
        slope = activation.derivative(pre)
    size = slope.size
    if not size:
        return dict.fromkeys(_ACTIVATION_KEYS, math.nan)
    dead = slope == 0  # (nan is not 0: counted as active, as count_nonzero counts it)
    zeros = np.count_nonzero(dead)  # a count over booleans: faster than count_nonzero over the floats
    flat = slope.ravel()
    if flat.dtype != np.float64:
        flat = flat.astype(np.float64)
    mean, std = _mean_std(out)
    return {
        "act_mean": mean,
        "act_std": std,
        "saturation": np.count_nonzero(activation.saturated(pre, slope)) / size,
        # dead units: f' = 0 for every example (rows are examples); counted only where some f' is 0
        "dead_fraction": _fraction(dead.all(axis=0)) if zeros else 0.0,
        "activation_gain": float(np.dot(flat, flat)) / size,
        "inactive_fraction": zeros / size,
    }


def update_ratio(before: np.ndarray, after: np.ndarray) -> float:
    """||ΔW||_F / ||W||_F of one update, W the weights before it."""
    return norm(after - before) / max(norm(before), 1e-300)


def layer_statistics(number: int, layer: LayerArrays, squares: dict) -> dict:
    """Layer ``number``'s (1, 2, ...) entry of a record; ``squares``: id(array) -> its squared norm, for the
    gradients already summed (computed here for any other)."""

    def grad_norm(grad):
        if grad is None:
            return math.nan
        square = squares.get(id(grad))
        return math.sqrt(squared_norm(grad) if square is None else square)

    weight_norm = grad_norm(layer.weight_grad)
    stats = {
        "layer": number,
        "weight_grad_norm": weight_norm,
        "bias_grad_norm": grad_norm(layer.bias_grad) if layer.has_bias else 0.0,
        "delta_norm": math.nan if layer.delta is None else norm(layer.delta),
    }
    if layer.activation is not None and layer.pre is not None:
        stats.update(activation_statistics(layer.activation, layer.pre, layer.out, layer.slope))
    elif layer.out is not None:  # the output layer (or an activation the registry does not know): z only
        stats["act_mean"], stats["act_std"] = _mean_std(layer.out)
        stats["saturation"] = stats["dead_fraction"] = None
        stats["activation_gain"] = stats["inactive_fraction"] = None
    stats["weight_gain"] = sigma_w2_of_weights(layer.weight)
    if layer.weight_after is not None:
        stats["update_ratio"] = update_ratio(layer.weight, layer.weight_after)
    if layer.weight_grad is not None:
        stats["grad_subnormal_fraction"] = _subnormal_fraction(layer.weight_grad)
    grad_known = layer.weight_grad is not None and layer.inputs is not None and layer.delta is not None
    stats["grad_snr"] = gradient_snr(layer.inputs, layer.delta, weight_norm * weight_norm) if grad_known else None
    return stats


def step_statistics(layers: list[LayerArrays], grads: list) -> dict:
    """A measured step's record fields: ``grad_norm`` over ``grads`` (every parameter's gradient, in the model's
    order: the norm clipping compares with its threshold), ``nonfinite`` (their non-finite entries) and ``layers``
    (input side first). Callers hold np.errstate: an exploding step's statistics say inf or nan."""
    squares = {id(grad): squared_norm(grad) for grad in grads}  # once, for both kinds of norm
    nonfinite = sum(int(np.count_nonzero(~np.isfinite(g))) for g in grads if not squares[id(g)] < math.inf)
    return {
        "grad_norm": _root_of_sum([squares[id(g)] for g in grads]) if grads else math.nan,
        "nonfinite": nonfinite,
        "layers": [layer_statistics(index + 1, layer, squares) for index, layer in enumerate(layers)],
    }


# ---- histograms of the first and the latest measured step -----------------------------------------------------------
def _counts(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Counts over HISTOGRAM_BINS equal bins of [low, high]; values outside fall in the edge bins, nan is dropped."""
    flat = values.ravel().astype(np.float64)
    flat = flat[~np.isnan(flat)]
    index = np.floor((np.clip(flat, low, high) - low) / (high - low) * HISTOGRAM_BINS)
    return np.bincount(np.minimum(index.astype(np.int64), HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS)


def _activation_range(outputs: list[np.ndarray]) -> tuple[float, float]:
    """Shared bins for every layer and both steps: the 0.5-99.5 percentiles of all hidden outputs, widened by half."""
    pooled = np.concatenate([o.ravel().astype(np.float64) for o in outputs])
    pooled = pooled[np.isfinite(pooled)]
    low, high = np.percentile(pooled, [0.5, 99.5]) if pooled.size else (-1.0, 1.0)
    margin = max(high - low, 1e-6) / 4
    return float(low - margin), float(high + margin)


class Histograms:
    """Glorot & Bengio 2010, figures 6-7: for the first and the latest measured step, per-layer counts of the
    hidden activations' outputs (HISTOGRAM_BINS bins over a range fixed at the first measured step) and of
    log10|δ| (every layer, over DELTA_LOG_RANGE; zeros and underflows count in the first bin, so each layer's
    counts sum to batch x width; ``delta_zeros`` says how many of them are exactly 0)."""

    def __init__(self):
        self.activation_range = None  # the activation histograms' bins, fixed at the first measured step
        self._histograms = {}  # "init" and "end": the first and the latest measured step
        self._latest = None  # (step, activations, deltas) of the latest measured step: counted only when read
        self._buffers = []  # the copies in self._latest, reused by the next measured step

    def observe(self, step: int, outputs: list, deltas: list, copy: bool = True) -> None:
        """A measured step's hidden outputs and every layer's δ: the first measured step's counted now, the
        latest's when read (``histograms``): counting every measured step was most of the probe's cost.
        ``copy`` False: the arrays are the caller's to keep as they are (PyTorch's, fresh at each step)."""
        if not outputs or any(d is None for d in deltas):
            return
        if "init" in self._histograms:  # copies: the engine may reuse its buffers after this step
            self._latest = (step, *self._copies(outputs, deltas)) if copy else (step, list(outputs), list(deltas))
            return
        self.activation_range = _activation_range(outputs)
        self._histograms["init"] = self._histograms["end"] = self._entry(step, outputs, deltas)

    def _copies(self, outputs: list, deltas: list) -> tuple[list, list]:
        """Copies of this step's arrays, into the previous measured step's copies when their shapes match: those
        were counted already if read (``histograms``), and a warm buffer is cheaper to fill than a fresh one."""
        arrays = outputs + deltas
        kept = self._buffers
        if len(kept) != len(arrays) or any(k.shape != a.shape or k.dtype != a.dtype for k, a in zip(kept, arrays)):
            kept = self._buffers = [np.empty_like(a) for a in arrays]
        for buffer, array in zip(kept, arrays):
            np.copyto(buffer, array)
        return kept[: len(outputs)], kept[len(outputs) :]

    def _entry(self, step: int, outputs: list, deltas: list) -> dict:
        low, high = self.activation_range
        with np.errstate(all="ignore"):  # log10(0) = -inf counts in the first bin
            return {
                "step": step,
                "activations": np.stack([_counts(o, low, high) for o in outputs]),
                "deltas": np.stack([_counts(np.log10(np.abs(d)), *DELTA_LOG_RANGE) for d in deltas]),
                "delta_zeros": np.array([d.size - np.count_nonzero(d) for d in deltas]),  # of the first bin
            }

    @property
    def histograms(self) -> dict:
        """ "init" and "end": the counts of the first and the latest measured step."""
        if self._latest is not None:
            self._histograms["end"] = self._entry(*self._latest)
            self._latest = None
        return self._histograms

    def arrays(self) -> dict:
        """The histograms as named arrays (for histograms.npz): counts, steps and bin edges; empty if none."""
        if "init" not in self.histograms:
            return {}
        arrays = {
            "activation_edges": np.linspace(*self.activation_range, HISTOGRAM_BINS + 1),
            "delta_log_edges": np.linspace(*DELTA_LOG_RANGE, HISTOGRAM_BINS + 1),
        }
        for key, entry in self.histograms.items():
            for name, value in entry.items():
                arrays[f"{key}_{name}"] = np.asarray(value)
        return arrays

    def save(self, path) -> bool:
        """Write ``arrays()`` to ``path`` (.npz, whole or not at all); False if nothing was measured."""
        arrays = self.arrays()
        if arrays:
            with files.atomic_file(path, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return bool(arrays)

    def state(self) -> dict[str, np.ndarray]:
        """The bins and counts so far (a checkpoint's ``probe.*`` entries)."""
        state = {}
        if self.activation_range is not None:
            state["activation_range"] = np.array(self.activation_range)
        for key, entry in self.histograms.items():
            state.update((f"{key}_{name}", np.asarray(value)) for name, value in entry.items())
        return state

    def load_state(self, state: dict) -> None:
        """Continue from ``state()``."""
        if "activation_range" in state:
            self.activation_range = tuple(float(v) for v in state["activation_range"])
        self._latest = None
        names = ("activations", "deltas", "delta_zeros")  # delta_zeros: not in checkpoints written before it
        self._histograms = {
            key: {"step": int(state[f"{key}_step"]), **{n: state[f"{key}_{n}"] for n in names if f"{key}_{n}" in state}}
            for key in ("init", "end")
            if f"{key}_step" in state
        }
