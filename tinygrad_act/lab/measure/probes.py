"""Per-layer statistics of a training step, attached to a model and optimizer from outside.

``LayerProbe(model, optimizer, should_log)`` hooks into the model's forward passes, the gradients of the
pre-activations and parameters, and the optimizer's step. A training step whose forward pass starts while
gradients are enabled (evaluation under ``no_grad`` is ignored) and whose index satisfies ``should_log``
is measured; after ``optimizer.step()`` its statistics are in ``probe.record``. Nothing is computed on
other steps beyond one call and one comparison per forward hook.

For each Linear layer, input side first (the last one is the output layer):

- ``weight_grad_norm``, ``bias_grad_norm``: Frobenius norms of dL/dW and dL/db (before any clipping);
- ``delta_norm``: ||dL/dz||_F over the batch, z = x @ W + b the layer's output (its pre-activation);
- ``act_mean``, ``act_std``: of the activation's output φ(a) over batch and units, where a is the input of
  the activation (z, or the normalized z when the MLP has normalization); for the output layer, of the logits;
- ``saturation``: fraction of (example, unit) pairs with |φ'(a)| below the activation's saturation threshold
  (5% of its largest |φ'|, see activations.py); ``None`` for the output layer;
- ``dead_fraction``: fraction of units whose gradient is exactly zero (φ'(a) = 0) for every example of the
  batch: dead ReLU units. Leaky ReLU, ELU, sigmoid or tanh units in their flat region still pass a little
  gradient: they count in ``saturation``, not here. φ'(a) is the engine's, in the run's dtype and exact
  wherever it is a normal float: a float32 tanh unit at |a| = 9 is saturated (φ' = 6e-8), not dead; only
  past |a| ≈ 52, where float32 sech² underflows to 0 and the unit truly gets no gradient, does it count as dead.
  ``None`` for the output layer;
- ``weight_gain``: σ_w² = fan_in · mean(W²) of the weights this step's forward pass used (theory.sigma_w2_of_weights);
- ``activation_gain``: E[φ'(a)²] over batch and units; mean-field theory predicts that ||δ||² changes by
  weight_gain · activation_gain per layer (for ReLU it is the fraction of active units); ``None`` for the output;
- ``inactive_fraction``: fraction of (example, unit) pairs with φ'(a) = 0 exactly (ReLU's zero region: inactive,
  not saturated; they also count in ``saturation``); ``None`` for the output layer;
- ``update_ratio``: ||ΔW||_F / ||W||_F of the update the optimizer applied at this step;
- ``grad_subnormal_fraction``: fraction of dL/dW entries that are subnormal (below the dtype's smallest
  normal number, but not zero) or zero — where float32 arithmetic slows down or gradients vanish outright.
- ``grad_snr``: ||mean g||² / mean_i ||g_i - mean g||² of the examples' own weight gradients g_i, from each
  example's δ and input (gradient_noise.py: None for a batch of one or a gradient that is exactly zero).

Global: ``grad_norm`` (all parameters, before clipping: the norm ``optim.clip_grad_norm`` compares with its
threshold), ``nonfinite`` (non-finite gradient entries).

Histograms (Glorot & Bengio 2010, figures 6-7): ``probe.histograms`` keeps, for the first and the latest
measured step, per-layer counts of the activations' outputs (hidden layers, HISTOGRAM_BINS bins over a range
fixed at the first measured step) and of log10|δ| (every layer, over DELTA_LOG_RANGE; zeros and underflows
count in the first bin, so each layer's counts sum to batch x width; ``delta_zeros`` says how many of them are
exactly 0, as ReLU's inactive units give).
"""

from __future__ import annotations

import math

import numpy as np

from ...common import files
from ...engine.graph import is_grad_enabled
from ...nn.optim import global_grad_norm, squared_norm
from ..theory.mean_field import sigma_w2_of_weights
from .gradient_noise import gradient_snr

_ACTIVATION_KEYS = ("act_mean", "act_std", "saturation", "dead_fraction", "activation_gain", "inactive_fraction")
HISTOGRAM_BINS = 60
DELTA_LOG_RANGE = (-30.0, 6.0)  # log10|δ|: from far below float32's smallest number to well past exploding


def _norm(a) -> float:
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


class LayerProbe:
    """Measures every Linear layer of an MLP on the training steps chosen by ``should_log(step)``."""

    def __init__(self, model, optimizer, should_log=lambda step: True):
        self.model = model
        self.layers = list(model.layers)
        self.activation = model.activation
        self.should_log = should_log
        self.step = 0  # index of the step whose forward pass comes next
        self.record = None  # the statistics of the last measured step, once its update is done
        self.activation_range = None  # the activation histograms' bins, fixed at the first measured step
        self._histograms = {}  # "init" and "end": the first and the latest measured step (see the module docstring)
        self._latest = None  # (step, activations, deltas) of the latest measured step: counted only when read
        self._buffers = []  # the copies in self._latest, reused by the next measured step
        self._weight_buffers = []  # the weights before a measured step's update, reused likewise
        self._active = self._detached = False
        self._handles = []  # gradient hooks of the step being measured
        self._hooks = []  # forward hooks, attached only for a step that will be measured
        self._parameters = model.parameters()
        optimizer.register_step_pre_hook(self._before_step)
        optimizer.register_step_post_hook(self._after_step)
        self._arm()

    def _arm(self):
        """Attach the forward hooks if the coming step is measured: other steps run no probe code at all."""
        if self.should_log(self.step) and not self._hooks:
            self._hooks = [layer.register_forward_hook(self._on_linear(i)) for i, layer in enumerate(self.layers)]
            self._hooks += [
                block.act.register_forward_hook(self._on_activation(i)) for i, block in enumerate(self.model.blocks)
            ]

    def _disarm(self):
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    @property
    def measuring(self) -> bool:
        """True between the forward pass and the optimizer step of a measured step."""
        return self._active

    def detach(self):
        """Remove the forward hooks (optimizer hooks stay but do nothing once no step is measured)."""
        self._disarm()
        self._release_parameter_hooks()
        self.should_log = lambda step: False
        self._detached = True

    # ---- hooks only keep references; all arithmetic happens once, in collect() --------------------------
    def _on_linear(self, index):
        def hook(layer, inputs, z):
            if index == 0 and is_grad_enabled():
                self._start_step()
            if self._active and is_grad_enabled():
                self._seen[index] = (z.data, z.data)  # the output layer: no activation after it
                self._inputs[index] = inputs[0].data  # for grad_snr: a reference, never copied or modified
                z.register_hook(self._keep(self._deltas, index))

        return hook

    def _on_activation(self, index):
        def hook(module, inputs, output):
            if self._active and is_grad_enabled():
                self._seen[index] = (inputs[0].data, output.data)  # the activation's input and output

        return hook

    def _start_step(self):
        self._release_parameter_hooks()
        self.record = None
        self._active = bool(self.should_log(self.step))
        if not self._active:
            return
        n = len(self.layers)
        self._seen, self._deltas, self._grads = [None] * n, [None] * n, {}
        self._inputs = [None] * n
        for p in self._parameters:
            self._handles.append(p.register_hook(self._keep(self._grads, id(p))))

    @staticmethod
    def _keep(target, key):
        # Gradients in flight are never modified in place (graph.py), nor are .grad arrays by this library
        # (optim.clip_grad_norm replaces them): a reference is enough, and it is the value before clipping.
        def hook(grad):
            target[key] = grad

        return hook

    def _release_parameter_hooks(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---- the optimizer step: gradients are final before it, the update is known after it ---------------
    def _before_step(self, optimizer):
        if self._active:  # copies (the update is in place), into the previous measured step's when they fit
            weights = [layer.weight.data for layer in self.layers]
            kept = self._weight_buffers
            if any(k.shape != w.shape or k.dtype != w.dtype for k, w in zip(kept, weights)) or not kept:
                kept = self._weight_buffers = [np.empty_like(w) for w in weights]
            for buffer, weight in zip(kept, weights):
                np.copyto(buffer, weight)
            self._weights_before = kept

    def _after_step(self, optimizer):
        if self._detached:  # the optimizer outlives the probe: keep the last record, measure nothing
            return
        self.record = self.collect(updated=True) if self._active else None
        if self._active:  # let the step's arrays go now, not at the next measured step: memory is reused sooner
            self._seen = self._deltas = self._weights_before = None
            self._inputs = None
            self._grads = {}
        self._active = False
        self._release_parameter_hooks()
        self.step += 1
        if not self.should_log(self.step):
            self._disarm()
        self._arm()

    def collect(self, updated: bool = False) -> dict:
        """The statistics of the measured step so far (without ``update_ratio`` unless ``updated``)."""
        with np.errstate(all="ignore"):  # exploding runs overflow: the statistics then say inf or nan
            return self._collect(updated)

    def _histogram(self) -> None:
        """Histogram counts of this step's activations and log10|δ|: the first measured step's now, the latest's
        when read (``histograms``): counting every measured step was most of the probe's cost."""
        outputs = [seen[1] for seen in self._seen[:-1] if seen is not None]
        if not outputs or any(d is None for d in self._deltas):
            return
        if "init" in self._histograms:  # copies: the engine may reuse its buffers after this step
            self._latest = (self.step, *self._copies(outputs, self._deltas))
            return
        self.activation_range = _activation_range(outputs)
        self._histograms["init"] = self._histograms["end"] = self._entry(self.step, outputs, self._deltas)

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
        """ "init" and "end": the counts of the first and the latest measured step (see the module docstring)."""
        if self._latest is not None:
            self._histograms["end"] = self._entry(*self._latest)
            self._latest = None
        return self._histograms

    def histogram_arrays(self) -> dict:
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

    def save_histograms(self, path) -> bool:
        """Write ``histogram_arrays()`` to ``path`` (.npz, whole or not at all); False if nothing was measured."""
        arrays = self.histogram_arrays()
        if arrays:
            with files.atomic_file(path, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return bool(arrays)

    def state(self) -> dict[str, np.ndarray]:
        """What a resumed run needs to measure as if never stopped: the next step, the histograms' bins and counts."""
        state = {"step": np.array(self.step)}
        if self.activation_range is not None:
            state["activation_range"] = np.array(self.activation_range)
        for key, entry in self.histograms.items():
            state.update((f"{key}_{name}", np.asarray(value)) for name, value in entry.items())
        return state

    def load_state(self, state: dict) -> None:
        """Continue from ``state()``: the coming step is ``state["step"]`` (armed if it is measured)."""
        self.step = int(state["step"])
        if "activation_range" in state:
            self.activation_range = tuple(float(v) for v in state["activation_range"])
        self._latest = None
        names = ("activations", "deltas", "delta_zeros")  # delta_zeros: not in checkpoints written before it
        self._histograms = {
            key: {"step": int(state[f"{key}_step"]), **{n: state[f"{key}_{n}"] for n in names if f"{key}_{n}" in state}}
            for key in ("init", "end")
            if f"{key}_step" in state
        }
        self._disarm()
        self._arm()

    def _activation_statistics(self, pre: np.ndarray, out: np.ndarray) -> dict:
        """A hidden layer's statistics of its activation's input ``pre`` and output ``out``.

        Kept per layer: stacking the layers' arrays to reduce them in one call copies them into a fresh
        allocation each step, which measured slower (page faults) than the per-layer calls it saves."""
        act = self.activation
        # f'(a) once, for every statistic, from the input as the engine has it: the output form
        # (1 - y^2) is 0 in the saturated tails and would call saturated units dead
        slope = act.derivative(pre)
        size = slope.size
        if not size:
            return dict.fromkeys(_ACTIVATION_KEYS, math.nan)
        zeros = size - np.count_nonzero(slope)
        flat = slope.ravel()
        if flat.dtype != np.float64:
            flat = flat.astype(np.float64)
        mean, std = _mean_std(out)
        return {
            "act_mean": mean,
            "act_std": std,
            "saturation": np.count_nonzero(act.saturated(pre, slope)) / size,
            # dead units: f' = 0 for every example (rows are examples); counted only where some f' is 0
            "dead_fraction": _fraction(np.all(slope == 0, axis=0)) if zeros else 0.0,
            "activation_gain": float(np.dot(flat, flat)) / size,
            "inactive_fraction": zeros / size,
        }

    def _collect(self, updated: bool) -> dict:
        last = len(self.layers) - 1
        self._histogram()
        squares = {key: squared_norm(grad) for key, grad in self._grads.items()}  # once, for both kinds of norm
        norms = {key: math.sqrt(square) for key, square in squares.items()}
        layers = []
        for index, layer in enumerate(self.layers):
            weight_grad = self._grads.get(id(layer.weight))
            bias_norm = norms.get(id(layer.bias), math.nan) if layer.bias is not None else 0.0
            stats = {
                "layer": index + 1,
                "weight_grad_norm": norms.get(id(layer.weight), math.nan),
                "bias_grad_norm": bias_norm,
                "delta_norm": math.nan if self._deltas[index] is None else _norm(self._deltas[index]),
            }
            if self._seen[index] is not None and index < last:
                stats.update(self._activation_statistics(*self._seen[index]))
            elif self._seen[index] is not None:
                stats["act_mean"], stats["act_std"] = _mean_std(self._seen[index][1])
                if index == last:
                    stats["saturation"] = stats["dead_fraction"] = None
                    stats["activation_gain"] = stats["inactive_fraction"] = None
            # the weights of this step's forward pass: before the update if there was one
            weight = self._weights_before[index] if updated else layer.weight.data
            stats["weight_gain"] = sigma_w2_of_weights(weight)
            if updated:
                before = self._weights_before[index]
                stats["update_ratio"] = _norm(layer.weight.data - before) / max(_norm(before), 1e-300)
            if weight_grad is not None:
                stats["grad_subnormal_fraction"] = _subnormal_fraction(weight_grad)
            stats["grad_snr"] = self._grad_snr(index, norms.get(id(layer.weight)))
            layers.append(stats)
        nonfinite = sum(
            int(np.count_nonzero(~np.isfinite(self._grads[k]))) for k, n in norms.items() if not n < math.inf
        )
        return {
            # the norm clipping uses (optim.global_grad_norm), over the parameters in the model's order
            "grad_norm": _root_of_sum([squares[id(p)] for p in self._parameters if id(p) in squares])
            if norms
            else math.nan,
            "nonfinite": nonfinite,
            "layers": layers,
        }

    def _grad_snr(self, index: int, grad_norm: float | None) -> float | None:
        """Layer ``index``'s gradient signal-to-noise ratio across the batch (None where it was not seen)."""
        inputs, deltas = self._inputs[index], self._deltas[index]
        if inputs is None or deltas is None or grad_norm is None:
            return None
        return gradient_snr(inputs, deltas, grad_norm * grad_norm)


def gradient_record(model) -> dict:
    """What can still be said about a step that was not measured: the gradient norms of every layer."""
    with np.errstate(all="ignore"):  # called on divergence: overflow means inf
        return _gradient_record(model)


def _gradient_record(model) -> dict:
    layers = []
    for index, layer in enumerate(model.layers):
        bias = layer.bias.grad if layer.bias is not None else None
        layers.append(
            {
                "layer": index + 1,
                "weight_grad_norm": _norm(layer.weight.grad) if layer.weight.grad is not None else math.nan,
                "bias_grad_norm": _norm(bias) if bias is not None else math.nan,
                "delta_norm": None,
            }
        )
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    nonfinite = sum(int(np.count_nonzero(~np.isfinite(g))) for g in grads)
    return {"grad_norm": global_grad_norm(grads), "nonfinite": nonfinite, "layers": layers}
