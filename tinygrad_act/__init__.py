"""tinygrad_act: a small reverse-mode autograd engine and a laboratory for gradient flow in deep MLPs.

The parts (ARCHITECTURE.md): ``engine`` (graph, Tensor, Value), ``nn`` (activations, initializers, modules,
optimizers), ``lab`` (data, probes, theory, runs, sweeps, reports), ``findings``, ``torch`` (``watch``: your
PyTorch model in the lab; torch is an optional extra), and ``cli`` on top.
"""

import sys as _sys

from .common import __version__
from .engine.gradcheck import gradcheck
from .engine.graph import enable_grad, is_grad_enabled, no_grad
from .engine.scalar import Value
from .engine.tensor import Tensor, concatenate, maximum, minimum, stack, where
from .lab.run.api import Run, run
from .nn import activations, init, optim
from .torch import Watch, watch

# The first wave's public module names stay importable as the same module objects
# (``import tinygrad_act.optim``, ``from tinygrad_act.activations import get``): one module, two names.
for _module in (activations, init, optim):
    _sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module


__all__ = [
    "Run",
    "Tensor",
    "__version__",
    "Value",
    "Watch",
    "activations",
    "concatenate",
    "enable_grad",
    "gradcheck",
    "init",
    "is_grad_enabled",
    "maximum",
    "minimum",
    "no_grad",
    "optim",
    "run",
    "stack",
    "watch",
    "where",
]
