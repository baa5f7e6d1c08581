"""What the lab sees of a user's PyTorch model: its Linear layers, the activation that follows each, and whether it
is a chain the theory covers.

Linear layers are found by type (``torch.nn.Linear`` and its subclasses), in the order ``model.modules()`` gives
them, which for ``nn.Sequential`` and for most models written by hand is the order of the forward pass (layer 1
is the input side; the last one is read as the output layer). The activation after a Linear is found while a
measured step runs, by the tensor itself: an activation module (activations.PAIRS) whose input *is* that Linear's
output. So it is found wherever the module sits (nested blocks, a custom forward), and never guessed from names.
An activation called as a function (``torch.relu(z)``, ``F.leaky_relu(z, 0.2)``, ``z.tanh()``) is found by the
autograd node that consumed z (functional.py). A Linear whose output goes anywhere else first (dropout, a norm, a
custom block, a function the lab does not know) has no identified activation and gets the measurements of its
output z only (``act_mean``, ``act_std``; its saturation, dead units and E[f'(z)²] say null), with a note saying
so.

The model is a chain the mean-field theory covers when each hidden Linear's output goes straight into one known
activation, the same for every hidden layer, each next Linear reads exactly that activation's output, and the
last Linear's output is the model's. Anything else is measured just the same, and the theory says why it does
not apply.
"""

from __future__ import annotations

import dataclasses

from ..common.errors import UsageError
from . import recurrent
from .activations import from_module


@dataclasses.dataclass
class Layout:
    """The Linear layers (``names``, ``linears``, input side first), the activation modules the registry knows
    (module -> registry spec), what the lab cannot measure in this model (``notes``) and its recurrent modules
    (``recurrents``: recurrent.Watched, measured through time)."""

    names: list
    linears: list
    activations: dict
    notes: list
    recurrents: list = dataclasses.field(default_factory=list)


def read(model) -> Layout:
    """The model's Layout; UsageError in one line if it is not a torch.nn.Module with at least two Linear layers,
    or a recurrent module and a Linear."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"watch needs a torch.nn.Module, got {type(model).__name__}")
    names, linears, found, notes, recurrents = [], [], {}, [], []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear):
            names.append(name or kind)
            linears.append(module)
        elif recurrent.cell_of(module) is not None:
            recurrents.append(recurrent.Watched(name or kind, module))
            if recurrents[-1].reason:
                notes.append(f"{name or kind} ({kind}, {recurrents[-1].reason}): not measured through time")
        elif kind in recurrent.STEP_CELLS or isinstance(module, torch.nn.RNNBase):
            notes.append(f"{name or kind} ({kind}): not measured (watch follows nn.RNN, nn.LSTM and nn.GRU of "
                         f"PyTorch's own classes through a sequence)")  # fmt: skip
        else:
            spec = from_module(module)
            if spec is not None:
                found[module] = spec
    recurrent.check_model(recurrents, linears, model)
    return Layout(names, linears, found, notes, recurrents)


def activation_notes(layout: Layout, specs: list) -> list[str]:
    """One line for each hidden Linear whose activation was not identified at the first measured step."""
    return [
        f"layer {index + 1} ({layout.names[index]}): no known activation (module or function) takes its output "
        f"directly (dropout, a norm, a custom block, or a function the lab does not know): measured as z only"
        for index, spec in enumerate(specs[:-1])
        if spec is None
    ]


def chain_reason(specs: list, fed_by: list, output_is_last: bool, shared: set) -> str | None:
    """Why the theory does not cover the model (None if it is a plain chain of Linear + one known activation).

    ``specs``: each Linear's identified activation (None: none); ``fed_by[i]``: the index of the Linear whose
    activation's output Linear i read (None: something else); ``output_is_last``: the model returned the last
    Linear's output; ``shared``: Linears called more than once in a forward pass."""
    hidden = specs[:-1]
    if shared:
        return f"layer {min(shared) + 1} is called more than once per forward pass (shared weights)"
    if any(spec is None for spec in hidden):
        return "not every hidden Linear is followed directly by a known activation"
    if len(set(hidden)) > 1:
        return f"the hidden layers use different activations ({', '.join(sorted(set(hidden)))})"
    broken = [i + 1 for i in range(1, len(specs)) if fed_by[i] != i - 1]
    if broken:
        return f"layer {broken[0]} does not read the previous layer's activation directly (not a plain chain)"
    if specs[-1] is not None or not output_is_last:
        return "the model's output is not the last Linear's output (something follows it)"
    return None
