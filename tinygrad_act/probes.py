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
  gradient: they count in ``saturation``, not here. ``None`` for the output layer;
- ``update_ratio``: ||ΔW||_F / ||W||_F of the update the optimizer applied at this step;
- ``grad_subnormal_fraction``: fraction of dL/dW entries that are subnormal (below the dtype's smallest
  normal number, but not zero) or zero — where float32 arithmetic slows down or gradients vanish outright.

Global: ``grad_norm`` (all parameters, before clipping), ``nonfinite`` (non-finite gradient entries).
"""

from __future__ import annotations

import math

import numpy as np

from .graph import is_grad_enabled


def _norm(a) -> float:
    flat = a.ravel()
    with np.errstate(over="ignore"):  # overflow of the sum of squares only: the norm is inf
        squares = float(np.dot(flat, flat))
        if not math.isfinite(squares) and np.all(np.isfinite(flat)):  # float32 overflow of the sum only
            squares = float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))
    return math.sqrt(squares) if squares >= 0 else math.nan


class LayerProbe:
    """Measures every Linear layer of an MLP on the training steps chosen by ``should_log(step)``."""

    def __init__(self, model, optimizer, should_log=lambda step: True):
        self.model = model
        self.layers = list(model.layers)
        self.activation = model.activation
        self.should_log = should_log
        self.step = 0  # index of the step whose forward pass comes next
        self.record = None  # the statistics of the last measured step, once its update is done
        self._active = False
        self._handles = []
        self._hooks = []
        for index, layer in enumerate(self.layers):
            self._hooks.append(layer.register_forward_hook(self._on_linear(index)))
        for index, block in enumerate(model.blocks):  # the activation's input is the norm's output if any
            if block.norm is not None:
                self._hooks.append(block.norm.register_forward_hook(self._on_norm(index)))
        optimizer.register_step_pre_hook(self._before_step)
        optimizer.register_step_post_hook(self._after_step)
        self._parameters = model.parameters()

    @property
    def measuring(self) -> bool:
        """True between the forward pass and the optimizer step of a measured step."""
        return self._active

    def detach(self):
        """Remove the forward hooks (optimizer hooks stay but do nothing once no step is measured)."""
        for handle in self._hooks:
            handle.remove()
        self.should_log = lambda step: False

    # ---- forward: decide whether this step is measured, remember what we need --------------------------
    def _on_linear(self, index):
        def hook(layer, inputs, z):
            if not is_grad_enabled():
                return
            if index == 0:
                self._start_step()
            if not self._active:
                return
            self._pre[index] = z.data
            self._deltas[index] = None
            z.register_hook(self._store(self._deltas, index))

        return hook

    def _on_norm(self, index):
        def hook(norm, inputs, output):
            if self._active and is_grad_enabled():
                self._pre[index] = output.data

        return hook

    def _start_step(self):
        self._release_parameter_hooks()
        self.record = None
        self._active = bool(self.should_log(self.step))
        if not self._active:
            return
        n = len(self.layers)
        self._pre, self._deltas = [None] * n, [None] * n
        self._grad_norms = {}
        self._nonfinite = 0
        for p in self._parameters:
            self._handles.append(p.register_hook(self._parameter_grad(p)))

    def _store(self, target, index):
        def hook(grad):
            target[index] = _norm(grad)

        return hook

    def _parameter_grad(self, parameter):
        def hook(grad):
            # Everything is taken now, before clipping may scale this very array in place.
            norm = _norm(grad)
            nonfinite = 0 if math.isfinite(norm) else int(np.count_nonzero(~np.isfinite(grad)))
            tiny = np.finfo(grad.dtype).tiny
            self._grad_norms[id(parameter)] = (norm, nonfinite, float(np.mean(np.abs(grad) < tiny)))

        return hook

    def _release_parameter_hooks(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---- the optimizer step: gradients are final before it, the update is known after it ---------------
    def _before_step(self, optimizer):
        if not self._active:
            return
        self._weights_before = [layer.weight.data.copy() for layer in self.layers]

    def _after_step(self, optimizer):
        if self._active:
            self.record = self.collect(updated=True)
        self._active = False
        self._release_parameter_hooks()
        self.step += 1

    def collect(self, updated: bool = False) -> dict:
        """The statistics of the measured step so far (without ``update_ratio`` unless ``updated``)."""
        act = self.activation
        layers = []
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            weight_norm, _, subnormal = self._grad_norms.get(id(layer.weight), (math.nan, 0, None))
            bias_norm = self._grad_norms.get(id(layer.bias), (math.nan,))[0] if layer.bias is not None else 0.0
            pre = self._pre[index]
            stats = {"layer": index + 1, "weight_grad_norm": weight_norm, "bias_grad_norm": bias_norm}
            stats["delta_norm"] = self._deltas[index] if self._deltas[index] is not None else math.nan
            if pre is not None:
                out = act.forward(pre) if index < last else pre
                stats["act_mean"], stats["act_std"] = float(np.mean(out)), float(np.std(out))
                if index < last:
                    stats["saturation"] = float(np.mean(act.saturated(pre)))
                    stats["dead_fraction"] = float(np.mean(np.all(act.derivative(pre) == 0, axis=0)))
                else:
                    stats["saturation"] = stats["dead_fraction"] = None
            if updated:
                before = self._weights_before[index]
                stats["update_ratio"] = _norm(layer.weight.data - before) / max(_norm(before), 1e-300)
            if subnormal is not None:
                stats["grad_subnormal_fraction"] = subnormal
            layers.append(stats)
        norms = [n for n, _, _ in self._grad_norms.values()]
        nonfinite = sum(count for _, count, _ in self._grad_norms.values())
        return {
            "grad_norm": math.sqrt(sum(n * n for n in norms)) if norms else math.nan,
            "nonfinite": nonfinite,
            "layers": layers,
        }


def gradient_record(model) -> dict:
    """What can still be said about a step that was not measured: the gradient norms of every layer."""
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
    return {"grad_norm": math.sqrt(sum(_norm(g) ** 2 for g in grads)), "nonfinite": nonfinite, "layers": layers}
