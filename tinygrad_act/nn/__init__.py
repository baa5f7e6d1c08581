"""Neural-network pieces on the engine: activations, initializers, modules (Linear, norms, MLP, losses), optimizers."""

from . import activations, init, optim
from .modules import MLP, Activate, BatchNorm1d, Block, LayerNorm, Linear, Module, accuracy, cross_entropy, mse

__all__ = [
    "MLP",
    "Activate",
    "BatchNorm1d",
    "Block",
    "LayerNorm",
    "Linear",
    "Module",
    "accuracy",
    "activations",
    "cross_entropy",
    "init",
    "mse",
    "optim",
]
