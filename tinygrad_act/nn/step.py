"""The captured training step: forward, cross-entropy, backward and clipping recorded once, then replayed.

``step = Step(model, optimizer, clip)``; each training step is ``loss, logits = step(xb, yb)``, the finite-loss
check, then ``step.update()``. The first eligible call runs eagerly and records its graph
(engine/capture.py); later calls with the same signature replay it into preallocated arrays, the
gradients land in one flat buffer (nn/flat.py) and the update is one fused call over all parameters. Every
number is bit-identical to the eager step (tests/test_capture.py).

A call runs eagerly (exactly as the plain loop: ``model(Tensor(xb))``, ``cross_entropy``, ``zero_grad``,
``backward``, ``clip_grad_norm``) whenever the replay could differ: capture disabled, a model with a module
type of its own (its forward may do anything), an input of another shape or dtype, a forward hook on a module
or a hook on a parameter (a measured step: the probes attach them), grad mode off, another train/eval mode,
a parameter whose data was replaced, or a non-finite loss (replayed forwards have no side effects until the
loss is known finite, so the eager step then starts from the same state).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from ..engine import capture
from ..engine.graph import is_grad_enabled
from ..engine.tensor import Tensor
from . import modules
from .flat import FlatParameters
from .optim import clip_grad_norm

# Module types whose forward is pure graph operations plus capture.effect: the only ones replayed.
REPLAYABLE = (modules.MLP, modules.Block, modules.Linear, modules.LayerNorm, modules.BatchNorm1d, modules.Activate)
_HOOKS, _TRAINING = operator.attrgetter("_hooks"), operator.attrgetter("training")
_KEPT = 2  # programs kept, one per input signature (the full batch, a partial one)


class Step:
    """One training step of ``model`` with ``optimizer`` and global-norm clipping ``clip`` (0: none)."""

    def __init__(self, model, optimizer, clip: float = 0.0, enabled: bool = True):
        self.model, self.optimizer, self.clip = model, optimizer, clip
        self.modules = list(model.modules())
        self._forward_hooks = [m._forward_hooks for m in self.modules]  # the lists hooks are added to and removed from
        params = model.parameters()
        self.enabled = (
            enabled
            and all(type(m) in REPLAYABLE for m in self.modules)
            and [id(p) for p in optimizer.params] == [id(p) for p in params]
            and len({p.data.dtype for p in params}) == 1
        )
        self.flat = FlatParameters(params) if self.enabled else None
        self.programs = {}  # signature -> (program, x, weights, logits, loss)
        self.replayed = False  # whether the last call replayed (then update() is the fused one)

    def _signature(self, xb, yb):
        """The key of the program a replay needs, or None when this call must run eagerly."""
        if not self.enabled or not is_grad_enabled() or not self.flat.bound():
            return None
        if any(self._forward_hooks) or any(map(_HOOKS, self.flat.params)):
            return None
        return (xb.shape, xb.dtype, yb.shape, tuple(map(_TRAINING, self.modules)))

    def __call__(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, Tensor]:
        """Forward, loss, backward, clipping; (the loss, the logits). ``update()`` applies the step."""
        xb, yb = np.asarray(xb), np.asarray(yb)
        key = self._signature(xb, yb)
        self.replayed = False
        if key is not None and key not in self.programs:
            return self._record(key, xb, yb)
        entry = self.programs.get(key)
        if entry is not None:
            result = self._replay(entry, xb, yb)
            if result is not None:
                self.replayed = True
                return result
        return self._eager(xb, yb)

    def update(self) -> None:
        """The optimizer step: fused over the flat buffers after a replay, else the optimizer's own loop."""
        self.optimizer.step(self.flat if self.replayed else None)

    def _eager(self, xb, yb):
        logits = self.model(Tensor(xb))
        loss = modules.cross_entropy(logits, yb)
        return self._backward(loss), logits

    def _backward(self, loss) -> float:
        self.optimizer.zero_grad()
        loss.backward()
        loss_value = loss.item()
        if self.clip:
            clip_grad_norm(self.model.parameters(), self.clip)
        return loss_value

    def _record(self, key, xb, yb):
        """The eager step, its graph kept for replay when it can be (and its loss is finite)."""
        x = Tensor(xb.copy())  # replays overwrite it: never the caller's array
        with capture.recording() as effects:
            logits = self.model(x)
        weights = Tensor(modules.target_weights(logits.shape, logits.dtype, yb))
        loss = modules.weighted_log_softmax(logits, weights)
        try:
            program = capture.Program(loss, (x, weights), effects)
        except capture.NotCapturable:
            program = None
        loss_value = self._backward(loss)
        if not math.isfinite(loss_value):
            return loss_value, logits  # the run stops here; a later call may record again
        if len(self.programs) >= _KEPT:
            self.programs.pop(next(iter(self.programs)))
        self.programs[key] = None  # this signature stays eager, unless the program is complete:
        if program is not None and set(program.params) == set(self.flat.params):
            program.restore()
            views = dict(zip(self.flat.params, self.flat.grad_views))
            self.programs[key] = (program, x, weights, logits, loss, views)
        return loss_value, logits

    def _replay(self, entry, xb, yb):
        program, x, weights, logits, loss, views = entry
        np.copyto(x.data, xb)
        modules.target_weights(weights.data.shape, weights.data.dtype, yb, out=weights.data)
        program.replay_forward()
        loss_value = loss.data.item()
        if not math.isfinite(loss_value):  # divergence: the eager step computes and reports it
            return None
        program.replay_backward(views)
        program.run_effects()
        for p, view in zip(self.flat.params, self.flat.grad_views):
            p.grad = view
        if self.clip:
            clip_grad_norm(self.flat.params, self.clip, flat=self.flat.grad)
        return loss_value, logits
