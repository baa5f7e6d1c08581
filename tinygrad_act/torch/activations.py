"""PyTorch's activation modules read as the registry's activations: ``nn.LeakyReLU(0.2)`` is
``leaky_relu:alpha=0.2``, so a watched model's saturation, dead units and E[f'(z)²] are measured with the same
definitions (nn/activations.py) as a native run's, and the theory knows the activation.

``PAIRS`` is the one table. Each pair names the registry activation, PyTorch's module class, and which of the
module's attributes are which of the registry's parameters (PyTorch's defaults are the registry's). Only a
module of exactly a class of ``torch.nn.modules`` is read (a subclass may compute anything); no torch import is
needed to read one.
"""

from __future__ import annotations

import dataclasses

from ..nn import activations

__all__ = ["PAIRS", "Pair", "from_module", "module_for"]


@dataclasses.dataclass(frozen=True)
class Pair:
    """A registry activation and PyTorch's module: ``arguments`` maps the module's attributes to the registry's
    parameter names; ``fixed`` holds registry parameters the module implies, and ``selects`` module attributes
    (and their values) that choose this pair among several of one class (GELU's ``approximate``)."""

    name: str
    module: str
    arguments: tuple = ()  # (PyTorch attribute, registry parameter) pairs
    fixed: tuple = ()  # (registry parameter, value) pairs
    selects: tuple = ()  # (PyTorch attribute, value) pairs


PAIRS = (
    Pair("relu", "ReLU"),
    Pair("leaky_relu", "LeakyReLU", (("negative_slope", "alpha"),)),
    Pair("elu", "ELU", (("alpha", "alpha"),)),
    Pair("selu", "SELU"),
    Pair("celu", "CELU", (("alpha", "alpha"),)),
    Pair("gelu", "GELU", selects=(("approximate", "none"),)),
    Pair("gelu_tanh", "GELU", selects=(("approximate", "tanh"),)),
    Pair("swish", "SiLU"),
    Pair("mish", "Mish"),
    Pair("tanh", "Tanh"),
    Pair("sigmoid", "Sigmoid"),
    Pair("softplus", "Softplus", (("beta", "beta"), ("threshold", "threshold"))),
    Pair("softsign", "Softsign"),
    Pair("hard_tanh", "ReLU6", fixed=(("min_val", 0.0), ("max_val", 6.0))),
    Pair("hard_tanh", "Hardtanh", (("min_val", "min_val"), ("max_val", "max_val"))),
    Pair("hard_sigmoid", "Hardsigmoid"),
)
_BY_MODULE = {pair.module: [p for p in PAIRS if p.module == pair.module] for pair in PAIRS}


def from_module(module) -> str | None:
    """The registry spec of an activation module (exactly one of PyTorch's classes), else None."""
    pairs = _BY_MODULE.get(type(module).__name__)
    if not pairs or type(module).__module__.split(".")[:3] != ["torch", "nn", "modules"]:
        return None
    for pair in pairs:
        if all(getattr(module, key, None) == value for key, value in pair.selects):
            params = {**dict(pair.fixed), **{name: float(getattr(module, attribute))
                                             for attribute, name in pair.arguments}}  # fmt: skip
            return activations.get(pair.name, **params).spec
    return None


def module_for(spec: str):
    """PyTorch's activation module computing a registry spec (the pair whose fixed parameters match), else None."""
    import torch

    activation = activations.get(spec)
    for pair in PAIRS:
        fixed = all(activation.params.get(key) == value for key, value in pair.fixed)
        if pair.name == activation.name and fixed:
            arguments = {attribute: activation.params[name] for attribute, name in pair.arguments}
            return getattr(torch.nn, pair.module)(**arguments, **dict(pair.selects))
    return None
