"""A watched model's recurrent modules (``torch.nn.RNN``, ``LSTM``, ``GRU``) measured through time, as a native
recurrent run measures its own (lab/measure/through_time.py, whose statistics these are).

PyTorch runs a recurrent module's whole sequence in one kernel and keeps no per-step hidden state a hook could
reach. So at a measured step the module's forward hook keeps its input, initial state and weights (copies: the
optimizer updates them in place), and tensor hooks keep what the rest of the model passed back into it: dL/d(output)
and dL/dh_n (an LSTM's dL/dc_n too). At ``lab.step`` the sequence is run again step by step with those weights, by
PyTorch's formulas (nn/recurrent.py's docstring states them), and one backward pass from the kept gradients through
that replay gives dL/dh_t of every layer and step (an LSTM's dL/dc_t): the total gradient, through later steps,
upper layers and whatever read the output. The user's own backward pass is untouched, so its gradients and the
training are PyTorch's bit for bit; the replay's agree with them to rounding (float64: 1e-10 against the lab's
engine, tests/test_torch_watch_recurrent.py). The replay also gives each step's gates (an RNN's pre-activation).

Every layer of a multi-layer module is measured (``through_time_layers`` in a record); the record's
``through_time``, r_time and the verdict are the first recurrent layer's, as a native run's (its only one). Not
measured through time, each with a note: a bidirectional module or one with ``proj_size``, a packed sequence, an
unbatched (2-D) input, dropout between layers while training (the replay cannot draw PyTorch's mask), a module
called more than once in a forward pass, and the one-step cells (``nn.LSTMCell`` ...: no sequence to follow).
"""

from __future__ import annotations

import dataclasses

from ..common.errors import UsageError
from ..lab.measure import through_time

CELLS = {"LSTM": "lstm", "GRU": "gru"}  # an RNN's cell is its nonlinearity: tanh or relu
STEP_CELLS = ("RNNCell", "LSTMCell", "GRUCell")


def cell_of(module) -> str | None:
    """The lab's cell name (tanh, relu, lstm, gru) of exactly PyTorch's RNN, LSTM or GRU class, else None."""
    kind = type(module).__name__
    if type(module).__module__ != "torch.nn.modules.rnn" or kind not in ("RNN", "LSTM", "GRU"):
        return None
    return module.nonlinearity if kind == "RNN" else CELLS[kind]


def refusal(module) -> str | None:
    """Why a recurrent module cannot be replayed whatever its input (None: it can)."""
    if module.bidirectional:
        return "bidirectional"
    if getattr(module, "proj_size", 0):
        return f"proj_size {module.proj_size}"
    return None


@dataclasses.dataclass
class Kept:
    """What a measured step's hooks kept of one recurrent module: its input (T, B, F), each layer's initial
    state(s) and weights (w_ih, w_hh, b_ih, b_hh), and the gradients passed back into its outputs (time first)."""

    cell: str
    x: object
    states: list
    weights: list
    grads: dict = dataclasses.field(default_factory=dict)


class Watched:
    """One recurrent module of a watched model: the hooks of a measured step and what they kept (``kept``), or why
    it is not measured through time (``reason``, once and for good)."""

    def __init__(self, name: str, module):
        self.name, self.module, self.cell = name, module, cell_of(module)
        self.reason = refusal(module)
        self.kept = None

    @property
    def layers(self) -> int:
        return self.module.num_layers

    def arm(self):
        """The forward hook for the coming measured step, or None if the module is not measured."""
        self.kept = None
        return None if self.reason else self._on_forward

    def _on_forward(self, module, inputs, output):
        import torch

        x, hidden = inputs[0], inputs[1] if len(inputs) > 1 else None
        if not torch.is_grad_enabled() or self.reason:
            return
        if self.kept is not None:
            self.reason = "called more than once in a forward pass"
        elif not isinstance(x, torch.Tensor):
            self.reason = "its input is a packed sequence"
        elif x.dim() != 3:
            self.reason = "its input is unbatched (2-D)"
        elif module.training and module.dropout and module.num_layers > 1:
            self.reason = f"dropout {module.dropout} between its layers while training"
        if self.reason:
            self.kept = None
            return
        sequence, state = output
        self.kept = _keep(self.cell, module, x, hidden)
        if sequence.requires_grad:
            sequence.register_hook(self._keep_grad("output", module.batch_first))
        for name, tensor in zip(("h_n", "c_n"), state if self.cell == "lstm" else (state,)):
            if tensor.requires_grad:
                tensor.register_hook(self._keep_grad(name, False))

    def _keep_grad(self, name: str, batch_first: bool):
        def hook(grad):
            self.kept.grads[name] = (grad.transpose(0, 1) if batch_first else grad).detach()

        return hook


def _keep(cell: str, module, x, hidden) -> Kept:
    """Copies of the input (time first), the initial state (zeros if none was given) and every layer's weights."""
    import torch

    x = (x.transpose(0, 1) if module.batch_first else x).detach().clone()
    size, batch, layers = module.hidden_size, x.shape[1], module.num_layers
    if hidden is None:
        zeros = torch.zeros(layers, batch, size, dtype=x.dtype, device=x.device)
        hidden = (zeros, zeros) if cell == "lstm" else zeros
    states = [tensor.detach().clone() for tensor in (hidden if cell == "lstm" else (hidden,))]
    weights = []
    for layer in range(layers):
        names = (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}")
        weights.append(tuple(None if getattr(module, n, None) is None else getattr(module, n).detach().clone()
                             for n in names))  # fmt: skip
    return Kept(cell, x, states, weights)


def _step(cell: str, x, carry: tuple, weights: tuple) -> tuple:
    """One step of one layer by PyTorch's formulas: the new carry (h, and an LSTM's c) and the step's gates."""
    import torch
    from torch.nn.functional import linear

    w_ih, w_hh, b_ih, b_hh = weights
    h, size = carry[0], carry[0].shape[-1]
    if cell == "gru":
        from_input, from_hidden = linear(x, w_ih, b_ih), linear(h, w_hh, b_hh)
        r = torch.sigmoid(from_input[:, :size] + from_hidden[:, :size])
        z = torch.sigmoid(from_input[:, size : 2 * size] + from_hidden[:, size : 2 * size])
        n = torch.tanh(from_input[:, 2 * size :] + r * from_hidden[:, 2 * size :])
        return (n + z * (h - n),), {"reset": r, "update": z, "candidate": n}
    gates = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)
    if cell == "lstm":
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * carry[1] + i * g
        return (o * torch.tanh(c), c), {"input": i, "forget": f, "candidate": g, "output": o}
    return (torch.tanh(gates) if cell == "tanh" else torch.relu(gates),), {"preactivation": gates}


def replay(kept: Kept) -> list[dict]:
    """Each layer's per-step tensors (``hidden``, an LSTM's ``cell``, the gates), the states part of a graph."""

    inputs = list(kept.x.unbind(0))
    layers = []
    for layer, weights in enumerate(kept.weights):
        carry = tuple(state[layer].clone().requires_grad_(True) for state in kept.states)
        trace = {"hidden": []}
        for x in inputs:
            carry, gates = _step(kept.cell, x, carry, weights)
            trace["hidden"].append(carry[0])
            if kept.cell == "lstm":
                trace.setdefault("cell", []).append(carry[1])
            for name, value in gates.items():
                trace.setdefault(name, []).append(value)
        layers.append(trace)
        inputs = trace["hidden"]
    return layers


def measure(kept: Kept) -> list[dict]:
    """Per layer, input side first: ``trace`` (name -> numpy arrays per step, through_time.time_entries's),
    ``deltas`` and ``cell_deltas`` (step index -> dL/dh_t, dL/dc_t as numpy; a step no gradient reached: absent)."""
    import torch

    with torch.enable_grad():
        layers = replay(kept)
        total = 0
        if "output" in kept.grads:
            total = (torch.stack(layers[-1]["hidden"]) * kept.grads["output"]).sum()
        for name, key in (("h_n", "hidden"), ("c_n", "cell")):
            if name in kept.grads:
                for layer, trace in enumerate(layers):
                    total = total + (trace[key][-1] * kept.grads[name][layer]).sum()
        states = [trace[key] for trace in layers for key in ("hidden", "cell") if key in trace]
        flat = [tensor for steps in states for tensor in steps]
        found = torch.autograd.grad(total, flat, allow_unused=True) if torch.is_tensor(total) else [None] * len(flat)
    grads, measured = iter(found), []
    for trace in layers:
        entry = {"trace": {name: [_numpy(t) for t in steps] for name, steps in trace.items()}}
        for key, field in (("hidden", "deltas"), ("cell", "cell_deltas")):
            if key in trace:
                entry[field] = {t: _numpy(g) for t, g in enumerate(next(grads) for _ in trace[key]) if g is not None}
        measured.append(entry)
    return measured


def _numpy(tensor):
    """A tensor as numpy on the CPU (half precisions as float32)."""
    import torch

    tensor = tensor.detach()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.cpu().numpy()


def check_model(recurrents: list, linears: list, model) -> None:
    """UsageError in one line unless the model has a hidden part to measure and an output Linear."""
    if recurrents and not linears:
        raise UsageError(f"watch measures a recurrent module with the torch.nn.Linear that reads it out; "
                         f"{type(model).__name__} has no Linear")  # fmt: skip
    if not recurrents and len(linears) < 2:
        raise UsageError(f"watch measures torch.nn.Linear layers and needs at least two (a hidden layer and the "
                         f"output layer), or a recurrent module and a Linear; {type(model).__name__} has "
                         f"{len(linears)}")  # fmt: skip


def entries(watched: Watched, first: int, squares: dict, grads: dict) -> tuple[list, list]:
    """The module's layers' entries of a record (numbered from ``first``) and each layer's through_time, from what
    its hooks kept; ``squares`` and ``grads``: id(parameter) -> its gradient's squared norm, and the gradient."""
    module, kept = watched.module, watched.kept
    layers, times = [], []
    for layer, measured in enumerate(measure(kept)):
        time = through_time.time_entries(kept.cell, measured["trace"], measured.get("deltas", {}),
                                         measured.get("cell_deltas"))  # fmt: skip
        w_ih, w_hh = getattr(module, f"weight_ih_l{layer}"), getattr(module, f"weight_hh_l{layer}")
        biases = [getattr(module, f"{n}_l{layer}") for n in ("bias_ih", "bias_hh")] if module.bias else []
        norms = {
            "weight_grad_norm": through_time.root_norm(squares, (w_ih, w_hh)),
            "recurrent_grad_norm": through_time.root_norm(squares, (w_hh,)),
            "bias_grad_norm": through_time.root_norm(squares, biases) if biases else 0.0,
        }
        weight_hh = _numpy(kept.weights[layer][1])
        layers.append(through_time.recurrent_entry(first + layer, kept.cell, weight_hh, measured["trace"]["hidden"],
                                                   time, norms, grads.get(id(w_hh))))  # fmt: skip
        times.append(time)
    return layers, times


def weights_pairs(watched: Watched) -> list[tuple]:
    """Per layer: (the weights W_ih, W_hh its measured forward used, as numpy; the parameters now), for the update
    ratio at the next step."""
    module = watched.module
    return [
        ([_numpy(w) for w in watched.kept.weights[layer][:2]],
         (getattr(module, f"weight_ih_l{layer}"), getattr(module, f"weight_hh_l{layer}")))
        for layer in range(module.num_layers)
    ]  # fmt: skip
