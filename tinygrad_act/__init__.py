"""tinygrad_act: a small reverse-mode autograd engine and a laboratory for gradient flow in deep MLPs."""

from . import activations, init
from .gradcheck import gradcheck
from .graph import is_grad_enabled, no_grad
from .scalar import Value
from .tensor import Tensor, concatenate, maximum, minimum, stack, where

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "Value",
    "activations",
    "gradcheck",
    "init",
    "concatenate",
    "is_grad_enabled",
    "maximum",
    "minimum",
    "no_grad",
    "stack",
    "where",
]
