"""Neural-network pieces on the engine: activations, initializers, modules (Linear, norms, MLP, losses), recurrent
nets (RNN, LSTM, GRU; RecurrentNet, the laboratory's model for sequences), optimizers, and the captured training
step (Step)."""

from . import activations, init, optim
from .modules import MLP, Activate, BatchNorm1d, Block, LayerNorm, Linear, Module, accuracy, cross_entropy, mse
from .recurrent import GRU, LSTM, RNN, Trace
from .recurrent_net import RecurrentNet
from .step import Step

__all__ = [
    "GRU",
    "LSTM",
    "MLP",
    "RNN",
    "RecurrentNet",
    "Activate",
    "BatchNorm1d",
    "Block",
    "LayerNorm",
    "Linear",
    "Module",
    "Step",
    "Trace",
    "accuracy",
    "activations",
    "cross_entropy",
    "init",
    "mse",
    "optim",
]
