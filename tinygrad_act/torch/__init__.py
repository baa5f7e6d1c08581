"""The PyTorch adapter (an optional extra: ``pip install 'tinygrad_act[torch]'``): ``watch(model)`` measures a
user's torch.nn.Module in its own training loop and writes a run directory like a native run's.

The only part of the package that imports torch, and only inside functions, so ``import tinygrad_act`` never
needs it: watch.py (the hooks and a measured step's record), model.py (the Linear layers, their activations,
whether the model is a chain the theory covers), activations.py (PyTorch's activation modules as the registry's),
finish.py (config.json, the theory, the Jacobian by torch.func, the summary, figures and report.html),
recurrent.py (nn.RNN/LSTM/GRU through time), functional.py (activations called as functions), board.py
(TensorBoard), engine.py (``engine = "torch"``: the lab's own runs trained in PyTorch; lab/run/engines.py
imports it by name when asked).
"""

from .watch import Watch, watch

__all__ = ["Watch", "watch"]
