"""Activations called as functions (``torch.relu(z)``, ``F.leaky_relu(z, 0.2)``, ``z.tanh()``, ``F.selu(z)``, ...)
found by the autograd node that consumed a Linear's output, at the end of a measured step's forward pass.

Why the autograd graph, and not torch.fx or a ``__torch_function__`` mode: the graph is what the backward pass
will differentiate, whatever Python produced it (control flow a symbolic trace refuses, methods, functional and
in-place calls alike), it is already built (nothing is traced again, no mode stays pushed if the user's forward
raises), and each node names its operation and keeps its scalar arguments (LeakyReluBackward0's negative slope,
GeluBackward0's approximation, EluBackward0's alpha and scale, which tell ELU from SELU). The forward hook of the
model walks back from its output once per measured step: a node whose inputs include a Linear's output node is a
consumer of that z; a Linear whose z is consumed by exactly one known node gets that activation. What it reads as
f(z) is then computed from z by the registry's own definition (nn/activations.py): the same function as
PyTorch's to rounding. A function the table does not know (``F.softsign`` is composed of abs and div; a custom
autograd.Function) leaves the layer measured as z only, with the note saying so.
"""

from __future__ import annotations

import math

from ..nn import activations

# autograd node (its trailing number dropped) -> the registry's activation and (node attribute, parameter) pairs
NODES = {
    "ReluBackward": ("relu", ()),
    "TanhBackward": ("tanh", ()),
    "SigmoidBackward": ("sigmoid", ()),
    "SiluBackward": ("swish", ()),
    "MishBackward": ("mish", ()),
    "HardsigmoidBackward": ("hard_sigmoid", ()),
    "LeakyReluBackward": ("leaky_relu", (("_saved_negative_slope", "alpha"),)),
    "CeluBackward": ("celu", (("_saved_alpha", "alpha"),)),
    "SoftplusBackward": ("softplus", (("_saved_beta", "beta"), ("_saved_threshold", "threshold"))),
    "HardtanhBackward": ("hard_tanh", (("_saved_min_val", "min_val"), ("_saved_max_val", "max_val"))),
}
SELU = (1.6732632423543772, 1.0507009873554805)  # PyTorch's SELU: ELU's alpha and scale (Klambauer et al. 2017)


def spec_of(node) -> str | None:
    """The registry spec of the activation an autograd node computes, else None."""
    name = type(node).__name__.rstrip("0123456789")
    if name == "GeluBackward":
        approximate = getattr(node, "_saved_approximate", None)
        return {"none": "gelu", "tanh": "gelu_tanh"}.get(approximate)
    if name == "EluBackward":
        alpha, scale, input_scale = (float(getattr(node, f"_saved_{k}")) for k in ("alpha", "scale", "input_scale"))
        if input_scale != 1.0:
            return None
        if scale != 1.0:
            return "selu" if all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip((alpha, scale), SELU)) else None
        return activations.get("elu", alpha=alpha).spec
    if name not in NODES:
        return None
    registry, pairs = NODES[name]
    return activations.get(registry, **{key: float(getattr(node, attribute)) for attribute, key in pairs}).spec


def consumers(output, produced: dict) -> dict:
    """{Linear index: the autograd nodes that take its output z as an input}, walking back from every tensor in
    ``output`` (a tensor, or a tuple, list or dict of them); ``produced``: id(z's node) -> Linear index."""
    import torch

    values = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else [output]
    stack = [v.grad_fn for v in values if isinstance(v, torch.Tensor) and v.grad_fn is not None]
    seen, found = {id(node) for node in stack}, {}
    while stack:
        node = stack.pop()
        for parent, _ in node.next_functions:
            if parent is None:
                continue
            index = produced.get(id(parent))
            if index is not None:
                found.setdefault(index, []).append(node)
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return found


def identify(output, produced: dict) -> dict:
    """{Linear index: (spec, node)} for each Linear whose z one node consumes, that node a known activation."""
    found = {}
    for index, nodes in consumers(output, produced).items():
        distinct = {id(node): node for node in nodes}
        if len(distinct) == 1:
            node = next(iter(distinct.values()))
            spec = spec_of(node)
            if spec is not None:
                found[index] = (spec, node)
    return found
