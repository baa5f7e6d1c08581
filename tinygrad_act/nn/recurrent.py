"""Recurrent nets on the Tensor engine: ``RNN``, ``LSTM`` and ``GRU`` exactly as PyTorch defines them, batch first.

``outputs, state = module(x, state=None)``: ``x`` of shape (B, T, F); ``outputs`` (B, T, H) holds the last layer's
h_1..h_T; ``state`` is h_n of shape (num_layers, B, H) for RNN and GRU, ``(h_n, c_n)`` for LSTM, and the optional
initial state has that form too (zeros when omitted): PyTorch's ``nn.RNN/LSTM/GRU(..., batch_first=True)``.
Per layer and step, with ⊙ the elementwise product and σ the logistic sigmoid (PyTorch's formulas):

- RNN:  h' = f(W_ih x + b_ih + W_hh h + b_hh),  f = tanh or relu (``nonlinearity``)
- LSTM: i, f, g, o = σ, σ, tanh, σ of the four row blocks of W_ih x + b_ih + W_hh h + b_hh (gates in that order);
  c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')  (Hochreiter & Schmidhuber 1997, with Gers et al. 2000's forget gate)
- GRU:  r, z = σ of the first two row blocks of W_ih x + b_ih + W_hh h + b_hh;
  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ n + z ⊙ h  (Cho et al. 2014, PyTorch's variant)

Parameters carry PyTorch's names, shapes and gate order: ``weight_ih_l{k}`` (gates·H, F_k), ``weight_hh_l{k}``
(gates·H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (gates·H) for layer k (F_0 = input_size, else H). This is the
(out, in) layout, not Linear's (in, out): ``load_state_dict({k: v.detach().numpy() for k, v in
torch_module.state_dict().items()})`` reproduces PyTorch's outputs and gradients (tests/test_recurrent.py).
Options other than the two sizes are keywords. Not built: dropout between layers, bidirectional, proj_size,
time-first inputs.

Truncated backpropagation through time, ``truncate=k`` (Williams & Peng 1990's BPTT(k, k)): the forward pass is
unchanged; in every layer the state carried from step t to step t + 1 is detached (a constant for the backward
pass) whenever t is a multiple of k (steps counted from 1). The sequence is cut into chunks of k steps (the last
may be shorter) and gradients flow back in time only within a chunk: the derivative of anything at step t with
respect to the input or the state at step s is 0 unless s <= t lie in the same chunk, so the output at step t
reaches back at most k steps (itself included); the initial state gets gradient from the first chunk only.
``truncate=None`` (the default) or k >= T builds the same graph as full BPTT: bit-identical gradients.

Probes (measurement from outside, the training loop unchanged): set ``module.recording = True`` and every forward
that records a graph (not under ``no_grad``: an evaluation keeps nothing) leaves a ``Trace`` in ``module.trace``
(else None, and nothing is kept): ``trace.hidden[layer][t]`` is the Tensor
h_{t+1} of that layer, the very node that the next step and the outputs use, so ``retain_grad()`` on it (e.g. in
a forward hook, before ``backward``) gives the whole dL/dh through the outputs and later steps, and a backward
from h_T with ``retain_graph=True`` gives ∂h_T/∂h_1 row by row. ``trace["forget"][layer][t]`` and the like are
the gate activations of each step (``module.GATES``: RNN's pre-activation, LSTM's input, forget, candidate (g),
output, GRU's reset, update, candidate (n)); ``trace["cell"]`` the LSTM cell states. ``module.cell(x_t, state)``
runs one step of one layer, as forward does.

Initialization draws only from ``numpy.random.default_rng(seed)`` (``seed``: an int or a Generator), parameter by
parameter in PyTorch's order. The default is PyTorch's: every parameter U(-1/√H, 1/√H). ``input_init`` and
``recurrent_init`` take an initializer of the registry (nn/init.py: ``xavier_uniform``, ``he_normal``,
``orthogonal``, ``identity``, ...) applied to each gate's (H, F_k) or (H, H) block on its own (fan_in F_k or H,
fan_out H): ``recurrent_init="orthogonal"`` makes each gate's block orthogonal (Saxe et al. 2014), ``"identity"``
makes it I (Le, Jaitly & Hinton 2015's IRNN: with ``nonlinearity="relu", bias_init=0.0``). ``bias_init`` sets
every bias to a number; LSTM's ``forget_bias=b`` makes the forget gate's total bias b (its block of bias_ih is b,
of bias_hh 0; Gers et al. 2000, Jozefowicz et al. 2015: b = 1). ``dtype`` (float64 by default, or float32) is
kept throughout: inputs must have it, and outputs and gradients keep it.
"""

from __future__ import annotations

import math

import numpy as np

from ..common import validate
from ..common.errors import UsageError
from ..engine.graph import is_grad_enabled
from ..engine.tensor import Tensor, linear, stack
from . import init as initializers
from .modules import Module


class Trace:
    """The per-step Tensors of one forward pass (``module.trace`` while ``module.recording``; see the module doc).

    ``trace[name][layer][t]`` for each name in ``trace.names`` (``"hidden"``, LSTM's ``"cell"``, then the cell's
    ``GATES``); ``trace.hidden`` is ``trace["hidden"]``. Step t = 0 is the first step: its hidden state is h_1.
    """

    def __init__(self, names: tuple):
        self.names = names
        self.layers = []  # one {name: [Tensor per step]} per layer, input side first

    def __getitem__(self, name: str) -> list:
        if name not in self.names:
            raise KeyError(f"a trace records {', '.join(self.names)}; got {name!r}")
        return [layer[name] for layer in self.layers]

    @property
    def hidden(self) -> list:
        """hidden[layer][t]: h_{t+1} of that layer, (B, H), a node of the graph."""
        return self["hidden"]

    def _new_layer(self) -> dict:
        layer = {name: [] for name in self.names}
        self.layers.append(layer)
        return layer


class _Recurrent(Module):
    """What RNN, LSTM and GRU share: parameters, initialization, checks and the loop over layers and steps."""

    GATE_BLOCKS = 1  # row blocks of H in weight_ih / weight_hh
    CARRIED = ("hidden",)  # the state carried from step to step (LSTM: hidden and cell)
    GATES: tuple = ()  # the per-step activations a trace records, as each step returns them

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bias: bool = True,
        truncate: int | None = None,
        input_init=None,
        recurrent_init=None,
        bias_init: float | None = None,
        seed=0,
        dtype=np.float64,
    ):
        super().__init__()
        self.input_size = validate.integer("input_size", input_size, 1)
        self.hidden_size = validate.integer("hidden_size", hidden_size, 1)
        self.num_layers = validate.integer("num_layers", num_layers, 1)
        self.bias = validate.boolean("bias", bias)
        self.truncate = None if truncate is None else validate.integer("truncate", truncate, 1)
        self.dtype = np.dtype(validate.choice("dtype", np.dtype(dtype).name, ("float32", "float64")))
        self.recording = False
        self.trace = None
        if bias_init is not None:
            bias_init = validate.number("bias_init", bias_init)
            if not self.bias:
                raise UsageError("bias_init needs bias=True: a module without biases has none to set")
        rng = np.random.default_rng(seed)
        input_init, recurrent_init = (None if s is None else initializers.get(s) for s in (input_init, recurrent_init))
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else self.hidden_size
            setattr(self, f"weight_ih_l{layer}", self._parameter(self._weight(input_init, fan_in, rng)))
            setattr(self, f"weight_hh_l{layer}", self._parameter(self._weight(recurrent_init, self.hidden_size, rng)))
            if self.bias:
                for name in ("bias_ih", "bias_hh"):
                    setattr(self, f"{name}_l{layer}", self._parameter(self._bias(bias_init, rng)))

    def __setattr__(self, name, value):
        if name == "recording":  # measurement state, not structure: a captured step keeps its program
            object.__setattr__(self, name, bool(value))
            return
        super().__setattr__(name, value)

    def _parameter(self, values: np.ndarray) -> Tensor:
        return Tensor(np.asarray(values, dtype=self.dtype), requires_grad=True)

    def _uniform(self, shape, rng) -> np.ndarray:
        """PyTorch's default for every parameter of a recurrent layer: U(-1/√H, 1/√H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        return rng.uniform(-bound, bound, size=shape)

    def _weight(self, initializer, fan_in: int, rng) -> np.ndarray:
        """(gates·H, fan_in): PyTorch's default, or ``initializer`` drawn for each gate's (H, fan_in) block."""
        hidden = self.hidden_size
        if initializer is None:
            return self._uniform((self.GATE_BLOCKS * hidden, fan_in), rng)
        return np.concatenate([initializer(fan_in, hidden, rng).T for _ in range(self.GATE_BLOCKS)])

    def _bias(self, value, rng) -> np.ndarray:
        shape = (self.GATE_BLOCKS * self.hidden_size,)
        return self._uniform(shape, rng) if value is None else np.full(shape, value)

    def __repr__(self):
        options = f"num_layers={self.num_layers}, bias={self.bias}, truncate={self.truncate}, dtype={self.dtype}"
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}, {options})"

    # ---- the loop ------------------------------------------------------------------------------------------
    def forward(self, x, state=None):
        """(outputs (B, T, H), final state) for ``x`` (B, T, F) from ``state`` (zeros when None); see the module doc.
        ``x`` may also be the steps x[:, t] as a list of T (B, F) Tensors (the captured step feeds them so)."""
        inputs = self._checked_steps(x)
        batch, steps = inputs[0].shape[0], len(inputs)
        carries = self._initial_carries(state, batch)
        trace = Trace(self.CARRIED + self.GATES) if self.recording and is_grad_enabled() else None
        finals = []
        for layer in range(self.num_layers):
            weights = self._weights(layer)
            carry, outputs = carries[layer], []
            record = None if trace is None else trace._new_layer()
            for t in range(steps):
                if t and self.truncate and t % self.truncate == 0:  # truncated BPTT: cut the graph, keep the values
                    carry = tuple(part.detach() for part in carry)
                carry, gates = self._step(inputs[t], carry, weights)
                outputs.append(carry[0])
                if record is not None:
                    for name, value in zip(trace.names, carry + gates):
                        record[name].append(value)
            finals.append(carry)
            inputs = outputs
        object.__setattr__(self, "trace", trace)  # measurement state, not a part of the module
        return stack(inputs, axis=1), self._final_state(finals)

    def cell(self, x, state, layer: int = 0):
        """One step of layer ``layer``, as forward takes it: the next state from x (B, F_layer) and the state
        (RNN, GRU: h of shape (B, H); LSTM: (h, c))."""
        layer = validate.integer("layer", layer, 0, self.num_layers - 1)
        carry = (state,) if len(self.CARRIED) == 1 else tuple(state)
        carry, _ = self._step(_as_tensor(x), tuple(_as_tensor(part) for part in carry), self._weights(layer))
        return carry[0] if len(self.CARRIED) == 1 else carry

    def _weights(self, layer: int) -> tuple:
        """(W_ih^T, W_hh^T, b_ih, b_hh) of a layer, transposed once per forward (biases None without bias)."""
        w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
        biases = (getattr(self, f"bias_ih_l{layer}"), getattr(self, f"bias_hh_l{layer}")) if self.bias else (None,) * 2
        return (w_ih.T, w_hh.T, *biases)

    def _step(self, x: Tensor, carry: tuple, weights: tuple) -> tuple:
        """(the next carry, the gates' Tensors in ``GATES`` order) of one step."""
        raise NotImplementedError

    # ---- checks at the boundary ----------------------------------------------------------------------------
    def _checked_steps(self, x) -> list:
        """The input's steps x[:, t], each (B, F): from a (B, T, F) input, or checked as given in a list."""
        if not isinstance(x, (list, tuple)):
            x = self._checked_input(x)
            return [x[:, t] for t in range(x.shape[1])]
        steps = [_as_tensor(step) for step in x]
        if not steps or any(s.ndim != 2 or s.shape != (steps[0].shape[0], self.input_size) for s in steps):
            shapes = sorted({s.shape for s in steps})
            raise ValueError(f"{type(self).__name__} takes steps of shape (batch, {self.input_size}), got {shapes}")
        for step in steps:
            self._check_dtype("input", step)
        return steps

    def zero_state(self, batch: int) -> Tensor:
        """The (B, H) zeros every carry starts from when no state is given: one Tensor per batch size, kept (a
        captured step holds it as a constant input of its program)."""
        kept = self.__dict__.setdefault("_zero_states", {})
        if batch not in kept:
            kept[batch] = Tensor(np.zeros((batch, self.hidden_size), dtype=self.dtype))
        return kept[batch]

    def _checked_input(self, x) -> Tensor:
        x = _as_tensor(x)
        if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} takes inputs of shape (batch, steps >= 1, {self.input_size}), got {x.shape}"
            )
        self._check_dtype("input", x)
        return x

    def _check_dtype(self, what: str, tensor: Tensor) -> None:
        if tensor.dtype != self.dtype:
            raise TypeError(
                f"{type(self).__name__}'s {what} has dtype {tensor.dtype}, the module {self.dtype}: "
                f"cast it, or build the module with dtype=np.{tensor.dtype}"
            )

    def _initial_carries(self, state, batch: int) -> list:
        """One carry (a tuple of (B, H) Tensors) per layer: zeros, or the layers of ``state``."""
        if state is None:
            return [(self.zero_state(batch),) * len(self.CARRIED)] * self.num_layers
        parts = (state,) if len(self.CARRIED) == 1 else tuple(state) if isinstance(state, (tuple, list)) else None
        if parts is None or len(parts) != len(self.CARRIED):
            raise ValueError(f"{type(self).__name__}'s state is a tuple ({', '.join(self.CARRIED)}), got {state!r}")
        expected = (self.num_layers, batch, self.hidden_size)
        parts = tuple(_as_tensor(part) for part in parts)
        for name, part in zip(self.CARRIED, parts):
            if part.shape != expected:
                raise ValueError(
                    f"{type(self).__name__}'s initial {name} state must have shape (num_layers, batch, "
                    f"hidden_size) = {expected}, got {part.shape}"
                )
            self._check_dtype(f"initial {name} state", part)
        return [tuple(part[layer] for part in parts) for layer in range(self.num_layers)]

    def _final_state(self, finals: list):
        stacked = tuple(stack([carry[i] for carry in finals], axis=0) for i in range(len(self.CARRIED)))
        return stacked[0] if len(stacked) == 1 else stacked


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class RNN(_Recurrent):
    """Elman RNN, h' = f(W_ih x + b_ih + W_hh h + b_hh) with f = tanh or relu (PyTorch's nn.RNN; see the module doc)."""

    GATES = ("preactivation",)

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh", **options):
        chosen = validate.choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, **options)
        self.nonlinearity = chosen

    def _step(self, x, carry, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        z = linear(x, w_ih, b_ih) + linear(carry[0], w_hh, b_hh)
        return (z.tanh() if self.nonlinearity == "tanh" else z.relu(),), (z,)

    def __repr__(self):
        return super().__repr__()[:-1] + f", nonlinearity={self.nonlinearity!r})"


class LSTM(_Recurrent):
    """Long short-term memory, gates i, f, g, o in PyTorch's order (nn.LSTM; see the module doc)."""

    GATE_BLOCKS = 4
    CARRIED = ("hidden", "cell")
    GATES = ("input", "forget", "candidate", "output")

    def __init__(self, input_size: int, hidden_size: int, *, forget_bias: float | None = None, **options):
        super().__init__(input_size, hidden_size, **options)
        if forget_bias is not None:
            forget_bias = validate.number("forget_bias", forget_bias)
            if not self.bias:
                raise UsageError("forget_bias needs bias=True: a module without biases has none to set")
            hidden = slice(self.hidden_size, 2 * self.hidden_size)  # the forget gate's rows
            for layer in range(self.num_layers):
                getattr(self, f"bias_ih_l{layer}").data[hidden] = forget_bias
                getattr(self, f"bias_hh_l{layer}").data[hidden] = 0.0

    def _step(self, x, carry, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        h, c = carry
        gates, H = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh), self.hidden_size
        # One sigmoid over all four blocks (g's goes unused, its gradient is an exact 0): fewer, larger calls,
        # 4-11% off a step at H = 64 (measured side by side), the same numbers bit for bit.
        sigmoid = gates.sigmoid()
        i, f, o = sigmoid[:, :H], sigmoid[:, H : 2 * H], sigmoid[:, 3 * H :]
        g = gates[:, 2 * H : 3 * H].tanh()
        c = f * c + i * g
        return (o * c.tanh(), c), (i, f, g, o)


class GRU(_Recurrent):
    """Gated recurrent unit, gates r, z, n in PyTorch's order and with its formula (nn.GRU; see the module doc)."""

    GATE_BLOCKS = 3
    GATES = ("reset", "update", "candidate")

    def _step(self, x, carry, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        h, H = carry[0], self.hidden_size
        from_input, from_hidden = linear(x, w_ih, b_ih), linear(h, w_hh, b_hh)
        reset_update = (from_input[:, : 2 * H] + from_hidden[:, : 2 * H]).sigmoid()  # one call for both gates
        r, z = reset_update[:, :H], reset_update[:, H:]
        n = (from_input[:, 2 * H :] + r * from_hidden[:, 2 * H :]).tanh()
        return (n + z * (h - n),), (r, z, n)  # (1 - z) n + z h, in PyTorch's arrangement
