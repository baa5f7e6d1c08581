"""Neural-network pieces on the engine: activations, initializers, modules (Linear, norms, MLP, losses), optimizers,
and the captured training step (Step)."""

from . import activations, init, optim
from .modules import MLP, Activate, BatchNorm1d, Block, LayerNorm, Linear, Module, accuracy, cross_entropy, mse
from .step import Step

__all__ = [
    "MLP",
    "Activate",
    "BatchNorm1d",
    "Block",
    "LayerNorm",
    "Linear",
    "Module",
    "Step",
    "accuracy",
    "activations",
    "cross_entropy",
    "init",
    "mse",
    "optim",
]
