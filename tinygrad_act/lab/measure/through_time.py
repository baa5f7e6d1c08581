"""Gradient flow through time: the statistics of a RecurrentNet's training step per time step, attached from outside.

``TimeProbe(model, optimizer, should_log)`` does for a ``nn.RecurrentNet`` what probes.LayerProbe does for an MLP,
with the same protocol (``record``, ``measuring``, ``collect``, ``detach``, ``state``): on a measured step it
switches the recurrent layer's ``recording`` on (nn/recurrent.py's Trace), hooks every hidden state h_t of the
(first) recurrent layer, and after ``optimizer.step()`` leaves in ``probe.record``:

- ``through_time``: one entry per step t = 1..T, input side first:
  ``delta_norm`` = ||dL/dh_t||_F over the batch (the total gradient: through the readout and all later steps);
  an RNN's ``activation_gain`` E[f'(z_t)²] and ``saturation`` (fraction of units with |f'| below the activation's
  threshold, nn/activations.py); a gated cell's sigmoid gates (LSTM: input, forget, output; GRU: reset, update):
  ``<gate>_mean``, ``<gate>_near_0`` and ``<gate>_near_1``, the fractions of values saturated toward 0 and 1
  (σ' = σ(1 - σ) below the sigmoid's saturation threshold: σ < 0.0127 or σ > 0.9873), and ``carry``, the root
  mean square of the carry gates' product from t to T (theory/recurrent.py's carry_profile); the LSTM's
  ``cell_delta_norm`` = ||dL/dc_t||_F.
- ``layers``: the recurrent layer, then the readout (``out``), with the per-layer fields of records.py where they
  mean the same: ``weight_grad_norm`` (of W_ih and W_hh together), ``bias_grad_norm``, ``delta_norm`` (of all the
  layer's h_t; the readout's: of its outputs), ``act_mean``/``act_std`` (of h_t over all steps; the readout's
  outputs), ``weight_gain`` (σ_w² = H mean(W_hh²); the readout's as records.py), ``update_ratio``, and the recurrent
  layer's ``recurrent_grad_norm`` (||dL/dW_hh||), ``spectral_radius`` and ``spectral_norm`` of W_hh (the largest
  over a gated cell's gate blocks), an RNN's ``saturation`` and ``activation_gain`` over all steps.
- ``grad_norm`` (every parameter, before clipping) and ``nonfinite``, as probes.LayerProbe.

A hidden state no gradient reached (a truncated BPTT's cut with the readout elsewhere) has ``delta_norm`` 0.
Evaluation under ``no_grad`` is not measured; the recurrent layer records a trace only on measured steps.
"""

from __future__ import annotations

import math
import types

import numpy as np

from ...engine.graph import is_grad_enabled
from ...nn import activations
from ...nn.optim import squared_norm
from .. import stats
from ..theory import recurrent as theory
from ..theory.mean_field import sigma_w2_of_weights
from .probes import Probe

_SIGMOID = activations.get("sigmoid")
# σ' = σ (1 - σ) < threshold  <=>  σ < NEAR or σ > 1 - NEAR: the sigmoid's own saturation rule, on its output
NEAR = (1.0 - math.sqrt(1.0 - 4.0 * _SIGMOID.saturation_threshold)) / 2.0
SIGMOID_GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update")}
# the row blocks of W_hh, by gate (nn/recurrent.py's GATES, PyTorch's order); an RNN's one block
GATE_BLOCKS = {"tanh": ("recurrent",), "relu": ("recurrent",), "lstm": ("input", "forget", "candidate", "output"),
               "gru": ("reset", "update", "candidate")}  # fmt: skip


def _norm(array) -> float:
    return math.sqrt(squared_norm(array))


def _moments(arrays: list) -> tuple[float, float]:
    """Mean and standard deviation over every entry of the arrays, in float64, without joining them (two passes:
    the mean, then the squares about it, so no digits cancel)."""
    count = sum(a.size for a in arrays)
    mean = sum(float(np.sum(a, dtype=np.float64)) for a in arrays) / count
    square = sum(float(np.sum(np.square(a - mean, dtype=np.float64))) for a in arrays)
    return mean, math.sqrt(square / count)


class TimeProbe(Probe):
    """Measures a RecurrentNet through time on the training steps chosen by ``should_log(step)``."""

    def __init__(self, model, optimizer, should_log=lambda step: True):
        super().__init__(model, optimizer, should_log)
        self.recurrent, self.cell = model.recurrent, model.cell
        # the weights TensorBoard draws per layer (LayerProbe's layers are Linears): W_hh, then the readout
        self.layers = [types.SimpleNamespace(weight=model.recurrent.weight_hh_l0), model.output]
        self.histograms = {}
        self._weights = (self.recurrent.weight_ih_l0, self.recurrent.weight_hh_l0, model.output.weight)
        self._arm()

    def _hook_forward(self) -> list:
        """Record the coming step's trace and hook it (only for a measured step)."""
        self.recurrent.recording = True
        return [
            self.recurrent.register_forward_hook(self._on_recurrent),
            self.model.output.register_forward_hook(self._on_output),
        ]

    def _disarm(self):
        super()._disarm()
        self.recurrent.recording = False

    def _on_recurrent(self, module, inputs, output):
        if not is_grad_enabled():
            return
        self._release()
        self.record = None
        self._active = bool(self.should_log(self.step)) and module.trace is not None
        if not self._active:
            return
        trace = module.trace
        self._trace = {name: [node.data for node in trace[name][0]] for name in trace.names}
        self._deltas, self._cell_deltas, self._grads, self._out = {}, {}, {}, None
        for t, node in enumerate(trace.hidden[0]):
            if node.requires_grad:
                node.register_hook(self._keep(self._deltas, t))
        for t, node in enumerate(trace["cell"][0] if "cell" in trace.names else []):
            if node.requires_grad:
                node.register_hook(self._keep(self._cell_deltas, t))
        for p in self._parameters:
            self._handles.append(p.register_hook(self._keep(self._grads, id(p))))

    def _on_output(self, module, inputs, output):
        if self._active and is_grad_enabled() and output.requires_grad:
            self._out = {"logits": output.data}
            output.register_hook(self._keep(self._out, "delta"))

    def _before_step(self, optimizer):
        if self._active:  # copies: the update is in place
            self._weights_before = [w.data.copy() for w in self._weights]

    def _forget(self):
        self._trace = self._deltas = self._cell_deltas = self._out = self._weights_before = None
        self._grads = {}

    def _collect(self, updated: bool) -> dict:
        squares = {key: squared_norm(grad) for key, grad in self._grads.items()}
        time = self._time_entries()
        layers = [self._recurrent_entry(squares, time, updated), self._output_entry(squares, updated)]
        present = [squares[id(p)] for p in self._parameters if id(p) in squares]  # the model's order, as clipping
        total = sum(present)
        # a finite sum of squares proves every entry finite; only the others are counted
        nonfinite = sum(int(np.count_nonzero(~np.isfinite(self._grads[k]))) for k, v in squares.items() if not
                        math.isfinite(v))  # fmt: skip
        return {
            "grad_norm": (math.sqrt(total) if total >= 0 else math.nan) if present else math.nan,
            "nonfinite": nonfinite,
            "layers": layers,
            "through_time": time,
        }

    def _time_entries(self) -> list[dict]:
        return time_entries(self.cell, self._trace, self._deltas, self._cell_deltas)

    def _recurrent_entry(self, squares: dict, time: list, updated: bool) -> dict:
        module = self.recurrent
        w_ih, w_hh = module.weight_ih_l0, module.weight_hh_l0
        biases = [getattr(module, name) for name in ("bias_ih_l0", "bias_hh_l0")] if module.bias else []
        norms = {
            "weight_grad_norm": root_norm(squares, (w_ih, w_hh)),
            "recurrent_grad_norm": root_norm(squares, (w_hh,)),
            "bias_grad_norm": root_norm(squares, biases) if biases else 0.0,
        }
        weight_hh = self._weights_before[1] if updated else w_hh.data
        update = joint_update_ratio(self._weights_before[:2], (w_ih.data, w_hh.data)) if updated else None
        return recurrent_entry(1, self.cell, weight_hh, self._trace["hidden"], time, norms,
                               self._grads.get(id(w_hh)), update)  # fmt: skip

    def _output_entry(self, squares: dict, updated: bool) -> dict:
        output = self.model.output
        weight = self._weights_before[2] if updated else output.weight.data
        entry = {
            "layer": 2,
            "weight_grad_norm": root_norm(squares, (output.weight,)),
            "bias_grad_norm": root_norm(squares, (output.bias,)) if output.bias is not None else 0.0,
            "delta_norm": _norm(self._out["delta"]) if self._out and "delta" in self._out else math.nan,
            "weight_gain": sigma_w2_of_weights(weight),
            "saturation": None,
            "activation_gain": None,
        }
        if self._out:
            entry["act_mean"], entry["act_std"] = _moments([self._out["logits"]])
        if updated:
            entry["update_ratio"] = joint_update_ratio(self._weights_before[2:], (output.weight.data,))
        return entry

    def histogram_arrays(self) -> dict:
        """No histograms through time (probes.LayerProbe's are per Linear layer): empty."""
        return {}

    def save_histograms(self, path) -> bool:
        """Nothing to write (``histogram_arrays`` is empty): False."""
        return False


# ---- the statistics through time, from arrays whichever engine produced them (TimeProbe, tinygrad_act/torch) ----
def time_entries(cell: str, trace: dict, deltas: dict, cell_deltas: dict | None = None) -> list[dict]:
    """A record's ``through_time`` (the module docstring) from one recurrent layer's step arrays: ``trace``, name
    -> one (B, H) array per step t = 1..T (``hidden``; an RNN's ``preactivation``; a gated cell's gates; an LSTM's
    ``cell``), ``deltas`` and ``cell_deltas``: step index (0-based) -> dL/dh_t, dL/dc_t (a step missing there got
    no gradient: 0)."""
    hidden = trace["hidden"]
    steps = len(hidden)
    entries = [{"t": t + 1, "delta_norm": _norm(deltas[t]) if t in deltas else 0.0} for t in range(steps)]
    if "cell" in trace:
        for t, entry in enumerate(entries):
            entry["cell_delta_norm"] = _norm(cell_deltas[t]) if t in cell_deltas else 0.0
    if cell in ("tanh", "relu"):
        z = np.stack(trace["preactivation"])  # (T, B, H)
        act = activations.get(cell)
        slope = act.derivative(z)
        gains = np.mean(np.square(slope, dtype=np.float64), axis=(1, 2))
        saturation = np.mean(act.saturated(z, slope), axis=(1, 2))
        for entry, gain, flat in zip(entries, gains, saturation):
            entry["activation_gain"], entry["saturation"] = float(gain), float(flat)
        return entries
    stacked = {}
    for gate in SIGMOID_GATES[cell]:
        values = stacked[gate] = np.stack(trace[gate])
        columns = {
            f"{gate}_mean": np.mean(values, axis=(1, 2), dtype=np.float64),
            f"{gate}_near_0": np.mean(values < NEAR, axis=(1, 2)),
            f"{gate}_near_1": np.mean(values > 1.0 - NEAR, axis=(1, 2)),
        }
        for t, entry in enumerate(entries):
            entry.update((key, float(column[t])) for key, column in columns.items())
    carry = theory.carry_profile(stacked[theory.CARRY_GATE[cell]])
    for entry, value in zip(entries, carry):
        entry["carry"] = float(value)
    return entries


def recurrent_entry(number: int, cell: str, weight_hh, hidden: list, time: list, norms: dict, hh_grad=None,
                    update: float | None = None) -> dict:  # fmt: skip
    """A recurrent layer's entry of ``layers`` (layer ``number``): ``norms`` holds its ``weight_grad_norm``,
    ``recurrent_grad_norm`` and ``bias_grad_norm``; ``weight_hh`` the W_hh its forward used (PyTorch's layout),
    ``hidden`` its h_t per step, ``time`` its time_entries, ``hh_grad`` dL/dW_hh (None: not known), ``update``
    its update ratio (None: not known)."""
    gates = GATE_BLOCKS[cell]
    spectra = [theory.spectral(b) for b in theory.weight_blocks(weight_hh, gates).values()]
    act_mean, act_std = _moments(hidden)
    entry = {
        "layer": number,
        **norms,
        "delta_norm": math.sqrt(sum(e["delta_norm"] ** 2 for e in time)),
        "act_mean": act_mean,
        "act_std": act_std,
        "weight_gain": theory.sigma_w2(weight_hh),
        "spectral_radius": max(s["spectral_radius"] for s in spectra),
        "spectral_norm": max(s["spectral_norm"] for s in spectra),
    }
    if cell in ("tanh", "relu"):
        entry["activation_gain"] = float(np.mean([e["activation_gain"] for e in time]))
        entry["saturation"] = float(np.mean([e["saturation"] for e in time]))
    if hh_grad is not None:
        entry["grad_subnormal_fraction"] = float(np.mean(np.abs(hh_grad) < np.finfo(hh_grad.dtype).tiny))
    if update is not None:
        entry["update_ratio"] = update
    return entry


def root_norm(squares: dict, parameters) -> float:
    """sqrt of the summed squared gradient norms of ``parameters`` (nan if one got no gradient)."""
    values = [squares.get(id(p)) for p in parameters]
    if any(v is None for v in values):
        return math.nan
    total = sum(values)
    return math.sqrt(total) if total >= 0 else math.nan


def joint_update_ratio(before, after) -> float:
    """||ΔW|| / ||W|| over several matrices together (W before the update)."""
    change = sum(squared_norm(a - b) for a, b in zip(after, before))
    size = sum(squared_norm(b) for b in before)
    return math.sqrt(change) / max(math.sqrt(size), 1e-300)


def gradient_record(model) -> dict:
    """What can still be said about a step that was not measured (a diverged one): the gradient norms."""
    with np.errstate(all="ignore"):
        grads = {id(p): p.grad for p in model.parameters() if p.grad is not None}
        squares = {key: squared_norm(g) for key, g in grads.items()}
        module = model.recurrent
        biases = [getattr(module, n) for n in ("bias_ih_l0", "bias_hh_l0")] if module.bias else []
        layers = [
            {"layer": 1, "weight_grad_norm": root_norm(squares, (module.weight_ih_l0, module.weight_hh_l0)),
             "bias_grad_norm": root_norm(squares, biases) if biases else 0.0, "delta_norm": None},
            {"layer": 2, "weight_grad_norm": root_norm(squares, (model.output.weight,)),
             "bias_grad_norm": root_norm(squares, (model.output.bias,)), "delta_norm": None},
        ]  # fmt: skip
        total = sum(squares.values())
        nonfinite = sum(int(np.count_nonzero(~np.isfinite(g))) for g in grads.values())
    return {"grad_norm": math.sqrt(total) if total >= 0 else math.nan, "nonfinite": nonfinite, "layers": layers}


def _state_ratio(record: dict, field: str) -> float:
    """||dL/ds_1|| / ||dL/ds_T|| of one record for the per-step ``field`` (delta_norm, cell_delta_norm)."""
    steps = record.get("through_time") or []
    if not steps or steps[0].get(field) is None:
        return math.nan
    return stats.first_last_ratio({"through_time": [{"delta_norm": s[field]} for s in (steps[0], steps[-1])]})


def gate_means(record: dict, cell: str) -> dict:
    """Each sigmoid gate's mean, near-0 and near-1 fractions averaged over the steps of one record ({} for an RNN)."""
    steps = record.get("through_time") or []
    keys = [f"{gate}_{kind}" for gate in SIGMOID_GATES.get(cell, ()) for kind in ("mean", "near_0", "near_1")]
    if not steps or not keys or keys[0] not in steps[0]:
        return {}
    return {key: float(np.mean([s[key] for s in steps])) for key in keys}


def summarize(records: list[dict], cell: str, diverged: bool = False) -> dict:
    """summary["through_time"]: r_time, the per-step factor and the verdict at step 0 and at the last measured
    step, W_hh's spectral radius and norm, the gates' means (gated cells), and the theory at step 0
    (theory/recurrent.py's predict from that record's σ_w², E[f'²] per step or carry)."""
    measured = [r for r in records if r.get("through_time")]
    if not measured:
        return {"applies": False, "reason": "no step was measured through time"}
    first, last = measured[0], measured[-1]
    steps = len(first["through_time"])
    entry = {"applies": True, "cell": cell, "steps": steps}
    for key, record in (("init", first), ("final", last)):
        ratio = stats.first_last_ratio(record)
        layer = record["layers"][0]
        entry[f"ratio_{key}"], entry[f"factor_{key}"] = ratio, stats.per_layer_factor(ratio, steps)
        entry[f"step_{key}"], entry[f"gates_{key}"] = record["step"], gate_means(record, cell)
        for name in ("spectral_radius", "spectral_norm"):
            entry[f"{name}_{key}"] = layer.get(name)
        if cell == "lstm":
            entry[f"cell_ratio_{key}"] = _state_ratio(record, "cell_delta_norm")
    entry["verdict"] = stats.verdict(entry["ratio_init"], first.get("nonfinite", 0))
    entry["verdict_final"] = "diverged" if diverged else stats.verdict(entry["ratio_final"], last.get("nonfinite", 0))
    layer = first["layers"][0]
    entry["theory"] = theory.predict(
        cell,
        sigma_w2_value=layer.get("weight_gain"),
        spectral_norm=layer.get("spectral_norm"),
        gamma=activations.get(cell).derivative_sup if cell in ("tanh", "relu") else 1.0,
        step_gains=[s.get("activation_gain") for s in first["through_time"]] if cell in ("tanh", "relu") else None,
        carry=[s.get("carry") for s in first["through_time"]] if cell not in ("tanh", "relu") else None,
    )
    return entry
