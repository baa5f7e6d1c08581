"""``engine = "torch"``: a run's MLP trained in PyTorch; in every other respect the numpy engine's run.

The lab builds the run as always (lab/run/experiment.py: the model and its initial weights, the optimizer, the
batches, the theory, the Jacobian at step 0) and asks its engine registry (lab/run/engines.py) for the training
step and the probe; importing this module registers ``torch`` there. What it hands back:

- ``TorchStep``, nn.Step's protocol: forward, the loss, backward and clipping in torch on ``device``, as the numpy
  engine computes them (``x @ W + b``, each activation by its registry definition, cross-entropy as
  Σ target weights · log_softmax, clipping by optim.clip_grad_norm's rule), then ``update()``.
- ``TorchOptimizer``: the run's optimizer (nn/optim.py's SGD or Adam: its hyperparameters, state, state_dict and
  step hooks) with the update written in torch operation for operation as nn/optim.py's.
- ``TorchProbe``: probes.LayerProbe (its record, histograms and resumable state) with its hooks on the torch step.

The numpy model is the run's state at every step boundary, so whole-split evaluation, checkpoint.npz, a resume and
``Run.model`` read it as a native run's: on the CPU the torch parameters and optimizer state *are* its arrays
(torch.from_numpy shares their memory, and every update is in place); on another device they are copies, written
back (``.cpu()``) after every update. An activation runs as the registry defines it, f(x) forward and g · f'(x)
backward on the arrays as numpy (on the CPU without a copy; on a GPU through the host). So on the CPU in float64 a
run logs the numpy engine's numbers up to the last bits of BLAS sums (tests/test_torch_engine.py: rel 1e-10 over
200 steps for each optimizer).

torch is imported inside functions only, so the module imports without it and says how to install it when asked.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..common.errors import UsageError
from ..engine.tensor import Tensor
from ..lab.measure.probes import LayerProbe
from ..lab.run import engines
from ..nn import optim
from ..nn.modules import target_weights
from ..nn.step import all_finite

INSTALL = "engine torch needs PyTorch: pip install 'tinygrad_act[torch]'"


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError(INSTALL) from None
    return torch


def _numpy(tensor) -> np.ndarray:
    """A tensor's values as numpy: its own memory on the CPU, a host copy from elsewhere."""
    return tensor.detach().cpu().numpy()


def shares_memory(device) -> bool:
    """Whether torch tensors on ``device`` can be views of numpy arrays: on the CPU (torch.from_numpy)."""
    return device.type == "cpu"


class TorchEngine:
    """The registry's ``torch``: check a run, build its step and probe."""

    @staticmethod
    def check(config, optimizer_class=None) -> None:
        torch = _torch()
        if config.model != "mlp":
            raise UsageError(f"engine torch trains MLPs; model {config.model!r} needs engine numpy")
        if optimizer_class is not None and optimizer_class not in UPDATES:
            raise UsageError(f"engine torch has no update for optimizer {config.optimizer!r}; choose one of: "
                             f"{', '.join(sorted(UPDATE_NAMES))}, or engine numpy")  # fmt: skip
        if config.device == "cuda" and not torch.cuda.is_available():
            raise UsageError("device 'cuda' is not available here (torch.cuda.is_available() is False); "
                             "use device cpu")  # fmt: skip

    @staticmethod
    def build(config, model, optimizer, should_log):
        step = TorchStep(model, optimizer, config.clip, config.device)
        return step, TorchProbe(step, should_log)


@functools.cache
def _activate():
    """The torch.autograd.Function applying a registry activation: f(x) forward, g · f'(x) backward, each on the
    arrays as numpy (the numpy engine's Tensor.apply, which its forward and derivative are written for)."""
    torch = _torch()

    class Activate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, activation):
            ctx.activation = activation
            ctx.save_for_backward(x)
            return torch.from_numpy(activation(_numpy(x))).to(x.device)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            slope = torch.from_numpy(ctx.activation.derivative(_numpy(x))).to(x.device)
            product = grad * slope
            if ctx.activation.can_die:  # as the numpy engine: where f' is 0 by definition, 0 even times inf
                product = torch.where(slope == 0, torch.zeros((), dtype=grad.dtype, device=grad.device), product)
            return product, None

    return Activate


class TorchStep:
    """One training step of ``model`` (the lab's MLP, whose arrays stay the run's state) in PyTorch on ``device``,
    with ``optimizer`` (the lab's) and global-norm clipping ``clip`` (0: none): nn.Step's protocol."""

    def __init__(self, model, optimizer, clip: float, device: str):
        self.torch = torch = _torch()
        self.model, self.clip, self.device = model, clip, torch.device(device)
        self.shared = shares_memory(self.device)  # the torch arrays are the model's
        self.params = list(optimizer.params)
        self.tensors = []  # a leaf tensor per parameter, in the optimizer's order
        self.optimizer = TorchOptimizer(optimizer, self)
        self._hooks = []  # fn(index, inputs, z, activated): the probe's, for a measured step only
        self.bind()

    def bind(self) -> None:
        """The torch tensors from the model's arrays: views on the CPU, copies on another device (again after a
        checkpoint was loaded into them)."""
        self.tensors = [self._tensor(p.data).requires_grad_(True) for p in self.params]
        self._by_id = {id(p): t for p, t in zip(self.params, self.tensors)}

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(array).to(self.device, copy=not self.shared)

    def register_forward_hook(self, fn):
        """Call ``fn(index, inputs, z, activated)`` for each Linear layer of the coming forward passes: its input,
        its output z and, for a hidden layer, (the activation's input, its output), else None; ``remove()``."""
        self._hooks.append(fn)
        return _Handle(self._hooks, fn)

    def __call__(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, Tensor]:
        """Forward, loss, backward, clipping; (the loss, the logits). ``update()`` applies the step."""
        torch = self.torch
        x = self._tensor(np.ascontiguousarray(xb))
        logits = self._forward(x)
        weights = target_weights(tuple(logits.shape), xb.dtype, np.asarray(yb).reshape(-1))
        loss = (torch.log_softmax(logits, dim=1) * self._tensor(weights)).sum()
        for tensor in self.tensors:
            tensor.grad = None
        loss.backward()
        loss_value = loss.item()
        grads = [t.grad for t in self.tensors]
        for p, grad in zip(self.params, grads):  # the lab's view of them (a diverged step's record reads these)
            p.grad = None if grad is None else _numpy(grad)
        if self.clip:
            total = optim.global_grad_norm([p.grad for p in self.params if p.grad is not None])
            if math.isfinite(total) and total > self.clip:  # optim.clip_grad_norm's rule, on the torch tensors
                scale = self.clip / (total + 1e-6)
                for p, tensor in zip(self.params, self.tensors):
                    if tensor.grad is not None:  # replaced, not scaled in place: a probe keeps the gradient before
                        tensor.grad = tensor.grad * scale
                        p.grad = _numpy(tensor.grad)
        return loss_value, Tensor(_numpy(logits).copy())

    def _forward(self, x):
        """The MLP (nn/modules.py's MLP.forward and Block.forward) on the torch tensors."""
        model, activate = self.model, _activate().apply
        for index, block in enumerate(model.blocks):
            z = self._linear(block.linear, x)
            pre = z if block.norm is None else self._norm(block.norm, z)
            out = activate(pre, model.activation)
            for hook in self._hooks:
                hook(index, x, z, (pre, out))
            x = x + out if block.residual else out
        z = self._linear(model.output, x)
        for hook in self._hooks:
            hook(len(model.blocks), x, z, None)
        return z

    def _linear(self, layer, x):
        z = x @ self._by_id[id(layer.weight)]
        return z if layer.bias is None else z + self._by_id[id(layer.bias)]

    def _norm(self, norm, z):
        """nn/modules.py's LayerNorm or BatchNorm1d (training mode; its running statistics tracked by the module's
        own rule, in numpy, where the lab's evaluation reads them)."""
        axis = -1 if not hasattr(norm, "running_mean") else 0
        mean = z.mean(dim=axis, keepdim=True)
        centered = z - mean
        variance = (centered * centered).mean(dim=axis, keepdim=True)
        if axis == 0:
            norm._track(z.shape[0], _numpy(mean), _numpy(variance))
        return centered * (variance + norm.eps) ** -0.5 * self._by_id[id(norm.weight)] + self._by_id[id(norm.bias)]

    def update(self) -> None:
        """The optimizer step (TorchOptimizer.step)."""
        self.optimizer.step()

    def finite(self) -> bool:
        """True when every gradient of the last call is finite (nn.Step's test, on the lab's view of them)."""
        return all_finite(p.grad for p in self.params if p.grad is not None)


class _Handle:
    def __init__(self, hooks: list, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self) -> None:
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


class TorchOptimizer:
    """The lab's ``optimizer`` (its hyperparameters, state, ``state_dict``) stepping ``step``'s torch tensors: the
    update of nn/optim.py written again in torch (UPDATES), its state the optimizer's own arrays (views on the
    CPU; copied back after every update elsewhere). Step hooks as nn/optim.py's, called with this object."""

    def __init__(self, optimizer, step: TorchStep):
        self.inner, self.training_step = optimizer, step
        self.params = optimizer.params
        self._pre_hooks, self._post_hooks = [], []
        self._update = UPDATES[type(optimizer)]
        self._state = []  # per parameter: {key: torch tensor} of the arrays in inner.state

    # nn/optim.py's step hooks: the same methods, on this object's lists
    register_step_pre_hook = optim.Optimizer.register_step_pre_hook
    register_step_post_hook = optim.Optimizer.register_step_post_hook

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """The optimizer's state (a checkpoint's), and the torch tensors bound anew to it and to the model's
        arrays (a checkpoint loads the model before the optimizer)."""
        self.inner.load_state_dict(state)
        self.training_step.bind()
        self._state = []

    def step(self) -> None:
        for hook in self._pre_hooks:
            hook(self)
        torch, inner, step = self.training_step.torch, self.inner, self.training_step
        inner.steps += 1
        if not self._state:
            self._state = [{key: step._tensor(value) for key, value in entries.items() if isinstance(value, np.ndarray)}
                           for entries in inner.state]  # fmt: skip
        with torch.no_grad():
            for p, tensor, state, entries in zip(step.params, step.tensors, self._state, inner.state):
                if tensor.grad is not None:
                    self._update(inner, tensor, tensor.grad, state, entries)
                    if not step.shared:
                        np.copyto(p.data, _numpy(tensor))
                    for key, value in state.items():  # new state is the optimizer's too (a view on the CPU)
                        if step.shared and entries.get(key) is None:
                            entries[key] = value.numpy()
                        elif not step.shared:
                            entries[key] = _numpy(value).copy()
        for hook in self._post_hooks:
            hook(self)


def _sgd(optimizer, data, grad, state: dict, entries: dict) -> None:
    """nn/optim.py's SGD.update on torch tensors, operation for operation."""
    if optimizer.weight_decay:
        grad = grad + optimizer.weight_decay * data
    if optimizer.momentum:
        buffer = state.get("momentum")
        if buffer is None:
            buffer = state["momentum"] = grad.clone()
        else:
            buffer.mul_(optimizer.momentum)
            buffer.add_(grad)
        grad = grad + optimizer.momentum * buffer if optimizer.nesterov else buffer
    data.sub_(optimizer.lr * grad)


def _adam(optimizer, data, grad, state: dict, entries: dict) -> None:
    """nn/optim.py's Adam.update on torch tensors, operation for operation (its step count: ``entries``')."""
    if optimizer.weight_decay:
        grad = grad + optimizer.weight_decay * data
    if "m" not in state:
        state["m"], state["v"] = data.new_zeros(data.shape), data.new_zeros(data.shape)
    m, v = state["m"], state["v"]
    m.mul_(optimizer.beta1)
    m.add_((1 - optimizer.beta1) * grad)
    v.mul_(optimizer.beta2)
    v.add_((1 - optimizer.beta2) * (grad * grad))
    entries["step"] = t = entries.get("step", 0) + 1
    step_size = optimizer.lr * math.sqrt(1 - optimizer.beta2**t) / (1 - optimizer.beta1**t)
    eps = optimizer.eps * math.sqrt(1 - optimizer.beta2**t)
    data.sub_(step_size * m / (v.sqrt() + eps))


UPDATES = {optim.SGD: _sgd, optim.Adam: _adam}
UPDATE_NAMES = ("sgd", "adam")


class TorchProbe(LayerProbe):
    """probes.LayerProbe on a TorchStep: the same record, histograms and state, from the torch step's arrays (as
    numpy) instead of the numpy engine's hooks."""

    def __init__(self, step: TorchStep, should_log):
        self.training_step = step
        super().__init__(step.model, step.optimizer, should_log)

    def _hook_forward(self) -> list:
        return [self.training_step.register_forward_hook(self._on_layer)]

    def _on_layer(self, index, inputs, z, activated):
        torch = self.training_step.torch
        if index == 0 and torch.is_grad_enabled():
            self._start_step()
        if self._active and torch.is_grad_enabled():
            seen = _numpy(z)
            self._seen[index] = (seen, seen) if activated is None else tuple(map(_numpy, activated))
            self._inputs[index] = _numpy(inputs)
            z.register_hook(self._kept(self._deltas, index))

    def _hook_gradients(self) -> list:
        by_id = self.training_step._by_id
        return [by_id[id(p)].register_hook(self._kept(self._grads, id(p))) for p in self._parameters]

    @staticmethod
    def _kept(target, key):
        def hook(grad):
            target[key] = _numpy(grad)

        return hook


engines.register("torch", TorchEngine())
