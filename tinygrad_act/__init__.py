"""tinygrad_act: a small reverse-mode autograd engine and a laboratory for gradient flow in deep MLPs.

The parts (ARCHITECTURE.md): ``engine`` (graph, Tensor, Value), ``nn`` (activations, initializers, modules,
optimizers), ``lab`` (data, probes, theory, runs, sweeps, reports), ``findings``, and ``cli`` on top.
"""

import sys as _sys

from .common import __version__
from .engine.gradcheck import gradcheck
from .engine.graph import enable_grad, is_grad_enabled, no_grad
from .engine.scalar import Value
from .engine.tensor import Tensor, concatenate, maximum, minimum, stack, where
from .nn import activations, init, optim

# The first wave's public module names stay importable as the same module objects
# (``import tinygrad_act.optim``, ``from tinygrad_act.activations import get``): one module, two names.
for _module in (activations, init, optim):
    _sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module


def run(**options):
    """Train one deep MLP from a script: the command line's experiment options as keywords; a ``Run``.

    ``tinygrad_act.run(depth=3, width=8, steps=5, data=(x, y))``; see ``lab/api.py`` and the README.
    """
    from .lab.api import run as _run  # the laboratory only when a run is asked for: importing stays light

    return _run(**options)


def __getattr__(name):
    if name == "Run":  # the reader of a run directory, imported on first use like run()
        from .lab.api import Run

        return Run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Run",
    "Tensor",
    "__version__",
    "Value",
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
    "where",
]
