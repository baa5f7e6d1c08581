"""The laboratory's model for sequence tasks: a recurrent layer (RNN, LSTM or GRU) and a linear readout of its
last hidden states.

``RecurrentNet(input_size, hidden_size, out_features, cell="tanh")`` reads (B, T, F) inputs batch first; its
output is ``readout(h_T)`` of shape (B, out_features), or with ``readout_steps=K`` ``readout(h_t)`` for each of the
last K steps, the rows ordered (example, step): (B·K, out_features), what a per-step task (the copy task) scores.
``cell`` is ``tanh`` or ``relu`` (an Elman RNN with that nonlinearity), ``lstm`` or ``gru``; the recurrent layer
is ``model.recurrent`` (nn/recurrent.py: PyTorch's parameters, its ``recording`` and ``trace`` for the probes),
the readout ``model.output`` (a Linear, weights (H, out_features)).

Initialization: ``recurrent_init`` is an initializer of the registry applied to each gate's H x H block of W_hh
(``orthogonal``, ``identity`` for Le et al. 2015's IRNN ...), ``None`` for PyTorch's default U(-1/√H, 1/√H) of every
parameter; ``bias_init`` sets every bias of the recurrent layer (IRNN: 0), ``forget_bias`` the LSTM's forget-gate
bias (Gers et al. 2000: 1); ``output_init`` the readout's initializer (``auto``: Xavier normal; its bias starts
at 0). The recurrent layer draws from ``numpy.random.default_rng(seed)`` first, the readout from the same stream
after it.
"""

from __future__ import annotations

import numpy as np

from ..common import validate
from ..common.errors import UsageError
from ..engine.tensor import Tensor
from . import init as initializers
from .modules import Linear, Module
from .recurrent import GRU, LSTM, RNN

CELLS = ("tanh", "relu", "lstm", "gru")


class RecurrentNet(Module):
    """A recurrent layer of ``cell`` (tanh, relu, lstm, gru) and a linear readout of its last ``readout_steps``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        out_features: int,
        *,
        cell: str = "tanh",
        readout_steps: int = 1,
        recurrent_init=None,
        bias_init: float | None = None,
        forget_bias: float | None = None,
        truncate: int | None = None,
        output_init="xavier_normal",
        seed=0,
        dtype=np.float64,
    ):
        super().__init__()
        self.cell = validate.choice("cell", cell, CELLS)
        self.readout_steps = validate.integer("readout_steps", readout_steps, 1)
        if forget_bias is not None and cell != "lstm":
            raise UsageError(f"forget_bias is the LSTM's forget-gate bias; cell {cell!r} has none")
        rng = np.random.default_rng(seed)
        options = dict(recurrent_init=recurrent_init, bias_init=bias_init, truncate=truncate, seed=rng, dtype=dtype)
        if cell in ("tanh", "relu"):
            self.recurrent = RNN(input_size, hidden_size, nonlinearity=cell, **options)
        elif cell == "lstm":
            self.recurrent = LSTM(input_size, hidden_size, forget_bias=forget_bias, **options)
        else:
            self.recurrent = GRU(input_size, hidden_size, **options)
        readout = initializers.for_activation(output_init, "identity")  # auto: Xavier, for a linear layer
        self.output = Linear(hidden_size, out_features, init=readout, rng=rng, dtype=dtype)

    def program_inputs(self, xb: np.ndarray) -> tuple[list, list]:
        """What the captured step (nn/step.py) feeds this model for a batch ``xb`` (B, T, F): the steps x[:, t], each
        a leaf of its own that a replay refills (a slice of one input would be a node computed from an input alone,
        which capture cannot replay), and the constants the forward uses, the recurrent layer's zero state."""
        steps = [Tensor(np.array(xb[:, t])) for t in range(xb.shape[1])]
        return steps, [self.recurrent.zero_state(len(xb))]

    def forward(self, x, state=None) -> Tensor:
        """The readout of the last step(s) for ``x``: (B, T, F), or its T steps as a list of (B, F) Tensors, from
        ``state`` (zeros when None)."""
        outputs, _ = self.recurrent(x, state)
        steps = self.readout_steps
        if steps == 1:
            return self.output(outputs[:, -1])
        if steps > outputs.shape[1]:
            raise ValueError(f"the readout reads the last {steps} steps of sequences of {outputs.shape[1]}")
        last = outputs[:, -steps:]  # (B, K, H) -> one row per (example, step)
        return self.output(last.reshape(last.shape[0] * steps, last.shape[2]))

    def __repr__(self):
        return f"RecurrentNet({self.recurrent!r}, readout={self.output!r}, readout_steps={self.readout_steps})"
