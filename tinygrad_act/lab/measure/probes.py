"""Per-layer statistics of a training step, attached to a model and optimizer from outside.

``LayerProbe(model, optimizer, should_log)`` hooks into the model's forward passes, the gradients of the
pre-activations and parameters, and the optimizer's step. A training step whose forward pass starts while
gradients are enabled (evaluation under ``no_grad`` is ignored) and whose index satisfies ``should_log``
is measured; after ``optimizer.step()`` its statistics are in ``probe.record``. Nothing is computed on
other steps beyond one call and one comparison per forward hook. The hooks only keep references to the step's
arrays; the arithmetic below is statistics.py's, which the PyTorch adapter (tinygrad_act/torch) uses too.

``LayerProbe(..., replay=step)`` (the nn.Step that runs the training steps) attaches no hooks while that step can
replay its captured program: a measured step then replays too, and the probe reads the same arrays from the
replay (nn/step.py's ``observe``), the same numbers as through its hooks, and each activation's f'(a) as the
replayed backward computed it (not computed a second time).

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

from ...engine.graph import is_grad_enabled
from ...nn.optim import global_grad_norm
from .statistics import DELTA_LOG_RANGE, HISTOGRAM_BINS, Histograms, LayerArrays, norm, step_statistics  # noqa: F401  (DELTA_LOG_RANGE, HISTOGRAM_BINS: callers import them from here)


class Probe:
    """What every probe shares: the optimizer's pre/post hooks around a measured step, forward hooks attached only
    for a step that will be measured (``_hook_forward``), gradient hooks released after it, the step count a resumed
    run continues from. A subclass keeps its step's arrays in ``_start``-like forward hooks, drops them in
    ``_forget`` and computes its record in ``_collect``."""

    def __init__(self, model, optimizer, should_log=lambda step: True, replay=None):
        self.model = model
        self._replay = replay  # the nn.Step whose replays hand this probe their arrays (see attach, replayed)
        self.should_log = should_log
        self.step = 0  # index of the step whose forward pass comes next
        self.record = None  # the statistics of the last measured step, once its update is done
        self._active = self._detached = False
        self._handles = []  # gradient hooks of the step being measured
        self._hooks = []  # forward hooks, attached only for a step that will be measured
        self._parameters = model.parameters()
        optimizer.register_step_pre_hook(self._before_step)
        optimizer.register_step_post_hook(self._after_step)

    @property
    def measuring(self) -> bool:
        """True between the forward pass and the optimizer step of a measured step."""
        return self._active

    def _arm(self):
        """Attach the forward hooks if the coming step is measured: other steps run no probe code at all. With a
        ``replay`` step, ask it for the step's arrays instead: it calls ``attach`` if it runs the step eagerly."""
        if self.should_log(self.step):
            if self._replay is not None:
                self._replay.observe(self)
            else:
                self.attach()

    def attach(self):
        """Read the coming step through the forward hooks (nn.Step.observe: that step runs eagerly)."""
        if not self._hooks:
            self._hooks = self._hook_forward()

    def _disarm(self):
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._replay is not None:
            self._replay.observe(None)

    def detach(self):
        """Remove the forward hooks (optimizer hooks stay but do nothing once no step is measured)."""
        self._disarm()
        self._release()
        self.should_log = lambda step: False
        self._detached = True

    @staticmethod
    def _keep(target, key):
        # Gradients in flight are never modified in place (graph.py), nor are .grad arrays by this library
        # (optim.clip_grad_norm replaces them): a reference is enough, and it is the value before clipping.
        def hook(grad):
            target[key] = grad

        return hook

    def _release(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _after_step(self, optimizer):
        if self._detached:  # the optimizer outlives the probe: keep the last record, measure nothing
            return
        self.record = self.collect(updated=True) if self._active else None
        if self._active:  # let the step's arrays go now, not at the next measured step: memory is reused sooner
            self._forget()
        self._active = False
        self._release()
        self.step += 1
        if self._replay is not None or not self.should_log(self.step):  # a replay step attaches hooks when it must
            self._disarm()
        self._arm()

    def collect(self, updated: bool = False) -> dict:
        """The statistics of the measured step so far (without ``update_ratio`` unless ``updated``)."""
        with np.errstate(all="ignore"):  # exploding runs overflow: the statistics then say inf or nan
            return self._collect(updated)

    def state(self) -> dict[str, np.ndarray]:
        """What a resumed run needs to measure as if never stopped: the next step."""
        return {"step": np.array(self.step)}

    def load_state(self, state: dict) -> None:
        """Continue from ``state()``: the coming step is ``state["step"]`` (armed if it is measured)."""
        self.step = int(state["step"])
        self._disarm()
        self._arm()


class LayerProbe(Probe):
    """Measures every Linear layer of an MLP on the training steps chosen by ``should_log(step)``."""

    def __init__(self, model, optimizer, should_log=lambda step: True, replay=None):
        super().__init__(model, optimizer, should_log, replay)
        self.layers = list(model.layers)
        self.activation = model.activation
        self._histograms = Histograms()  # of the first and the latest measured step (see the module docstring)
        self._weight_buffers = []  # the weights before a measured step's update, reused by the next measured step
        self._roles = {layer: (True, i) for i, layer in enumerate(self.layers)}  # module -> (is a Linear, index)
        self._roles.update((block.act, (False, i)) for i, block in enumerate(self.model.blocks))
        self._arm()

    def _hook_forward(self) -> list:
        hooks = [layer.register_forward_hook(self._on_linear(i)) for i, layer in enumerate(self.layers)]
        return hooks + [
            block.act.register_forward_hook(self._on_activation(i)) for i, block in enumerate(self.model.blocks)
        ]

    # ---- hooks only keep references; all arithmetic happens once, in collect() --------------------------
    def _on_linear(self, index):
        def hook(layer, inputs, z):
            if index == 0 and is_grad_enabled():
                self._start_step()
            if self._active and is_grad_enabled():
                self._seen_linear(index, inputs[0].data, z.data)
                z.register_hook(self._keep(self._deltas, index))

        return hook

    def _on_activation(self, index):
        def hook(module, inputs, output):
            if self._active and is_grad_enabled():
                self._seen[index] = (inputs[0].data, output.data)  # the activation's input and output

        return hook

    def _seen_linear(self, index, x, z):
        self._seen[index] = (z, z)  # the output layer: no activation after it
        self._inputs[index] = x  # for grad_snr: a reference, never copied or modified

    def _start_step(self, hooked: bool = True):
        self._release()
        self.record = None
        self._active = bool(self.should_log(self.step))
        if not self._active:
            return
        n = len(self.layers)
        self._seen, self._deltas, self._grads = [None] * n, [None] * n, {}
        self._inputs, self._slopes = [None] * n, [None] * n
        if hooked:
            self._handles += self._hook_gradients()

    def _hook_gradients(self) -> list:
        """Hooks that keep each parameter's gradient of the measured step in ``_grads`` (by the parameter's id)."""
        return [p.register_hook(self._keep(self._grads, id(p))) for p in self._parameters]

    def replayed(self, step) -> None:
        """A measured step that replayed or was recorded (nn.Step.observe; ``step`` an nn.step.Replayed): the arrays
        the hooks would have kept, in the order the hooks would have seen them."""
        self._start_step(hooked=False)
        if not self._active:
            return
        slopes = step.slopes or [None] * len(step.calls)
        for (module, inputs, output), delta, slope in zip(step.calls, step.deltas, slopes):
            role = self._roles.get(module)
            if role is None:
                continue
            linear, index = role
            if linear:
                self._seen_linear(index, inputs[0], output)
                self._deltas[index] = delta
            else:
                self._seen[index] = (inputs[0], output)
                self._slopes[index] = slope  # f'(input), as the replayed backward computed it (or None)
        wanted = set(map(id, self._parameters))
        self._grads = {id(p): g for p, g in zip(step.params, step.grads) if g is not None and id(p) in wanted}

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

    def _forget(self):
        self._seen = self._deltas = self._weights_before = None
        self._inputs = self._slopes = None
        self._grads = {}

    def _histogram(self) -> None:
        """This step's hidden outputs and deltas to the histograms (statistics.Histograms)."""
        self._histograms.observe(self.step, [seen[1] for seen in self._seen[:-1] if seen is not None], self._deltas)

    @property
    def activation_range(self):
        """The activation histograms' bins, fixed at the first measured step (None before it)."""
        return self._histograms.activation_range

    @property
    def histograms(self) -> dict:
        """ "init" and "end": the counts of the first and the latest measured step (statistics.Histograms)."""
        return self._histograms.histograms

    def histogram_arrays(self) -> dict:
        """The histograms as named arrays (for histograms.npz): counts, steps and bin edges; empty if none."""
        return self._histograms.arrays()

    def save_histograms(self, path) -> bool:
        """Write ``histogram_arrays()`` to ``path`` (.npz, whole or not at all); False if nothing was measured."""
        return self._histograms.save(path)

    def state(self) -> dict[str, np.ndarray]:
        """The next step, the histograms' bins and counts."""
        return {**super().state(), **self._histograms.state()}

    def load_state(self, state: dict) -> None:
        self._histograms.load_state(state)
        super().load_state(state)

    def _collect(self, updated: bool) -> dict:
        self._histogram()
        last = len(self.layers) - 1
        layers = []
        for index, layer in enumerate(self.layers):
            seen = self._seen[index]
            # the weights of this step's forward pass: before the update if there was one
            arrays = LayerArrays(
                self._weights_before[index] if updated else layer.weight.data,
                weight_grad=self._grads.get(id(layer.weight)),
                bias_grad=self._grads.get(id(layer.bias)) if layer.bias is not None else None,
                has_bias=layer.bias is not None,
                delta=self._deltas[index],
                inputs=self._inputs[index],
                pre=None if seen is None else seen[0],
                out=None if seen is None else seen[1],
                slope=self._slopes[index],
                activation=self.activation if index < last else None,
                weight_after=layer.weight.data if updated else None,
            )
            layers.append(arrays)
        return step_statistics(layers, [self._grads[id(p)] for p in self._parameters if id(p) in self._grads])


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
                "weight_grad_norm": norm(layer.weight.grad) if layer.weight.grad is not None else math.nan,
                "bias_grad_norm": norm(bias) if bias is not None else math.nan,
                "delta_norm": None,
            }
        )
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    nonfinite = sum(int(np.count_nonzero(~np.isfinite(g))) for g in grads)
    return {"grad_norm": global_grad_norm(grads), "nonfinite": nonfinite, "layers": layers}
