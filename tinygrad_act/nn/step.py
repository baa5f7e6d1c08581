"""The captured training step: forward, loss, backward and clipping recorded once, then replayed.

``step = Step(model, optimizer, clip)``; each training step is ``loss, logits = step(xb, yb)``, the checks
(``math.isfinite(loss)``, ``step.finite()``), then ``step.update()``. The first eligible call runs eagerly and
records its graph (engine/capture.py); later calls with the same signature replay it into preallocated arrays,
the gradients land in one flat array (nn/flat.py) and the update is one fused call over all parameters. Every
number is bit-identical to the eager step (tests/test_capture.py).

The loss is ``cross_entropy`` (labels ``yb``, one per row of the outputs: a per-step task's (n, K) labels are
read row by row) or ``mse`` (one value per output row, as a regression's targets). A recurrent net
(nn.RecurrentNet) is fed its steps x[:, t] and holds its zero state as inputs of the program
(``RecurrentNet.program_inputs``): the recurrent nets replay too.

A measurement need not make a step eager: ``step.observe(observer)`` (a probe, lab/measure/probes.py) hands every
replayed call's arrays to ``observer.replayed(Replayed(...))``: each module call's input and output, the gradient
of the loss with respect to each output, every parameter's gradient before clipping: what the observer's hooks
would have kept; and each activation's derivative f'(x) as the replayed backward computed it, so that the
observer need not compute it again. A call that cannot replay calls ``observer.attach()`` first (the observer
attaches its hooks) and runs eagerly, as any call with hooks does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator

import numpy as np

from ..common import validate
from ..engine import capture
from ..engine.grad_mode import is_grad_enabled, structure_version
from ..engine.tensor import Tensor
from . import modules, recurrent, recurrent_net
from .flat import FlatParameters
from .optim import clip_grad_norm

# Module types whose forward is pure graph operations plus capture.effect: the only ones replayed. (A recurrent
# layer also records a trace while ``recording``: only on measured steps, whose hooks make them eager anyway.)
REPLAYABLE = (modules.MLP, modules.Block, modules.Linear, modules.LayerNorm, modules.BatchNorm1d, modules.Activate,
              recurrent_net.RecurrentNet, recurrent.RNN, recurrent.LSTM, recurrent.GRU)  # fmt: skip
LOSSES = ("cross_entropy", "mse")
_HOOKS, _TRAINING = operator.attrgetter("_hooks"), operator.attrgetter("training")
_KEPT = 2  # programs kept, one per input signature (the full batch, a partial one)


def all_finite(arrays) -> bool:
    """True when every entry of every array is finite: checked exactly, and cheaply when they are."""
    with np.errstate(all="ignore"):
        # a finite sum of squares is proof enough; an infinite one may be an overflow of finite values
        return all(math.isfinite(np.dot(a.ravel(), a.ravel())) or bool(np.isfinite(a).all()) for a in arrays)


@dataclasses.dataclass
class Replayed:
    """What a replayed call computed, for an observer (``Step.observe``); arrays of the program, valid until the next
    call. ``calls``: one (module, its inputs' arrays, its output's array) per module call of the forward pass, in the
    order they returned (as forward hooks see them); ``deltas``: dL/d(output) of each call, in the same order (None
    where no gradient reached it); ``grads``: each of ``params``' gradient before clipping; ``slopes``: for a call
    whose output is one elementwise function of its input (``Tensor.apply``: an activation), the derivative f'(input)
    its backward computed (None elsewhere, or where none was computed: the observer computes it if it needs it)."""

    calls: list
    deltas: list
    params: list
    grads: list
    slopes: list | None = None


class Step:
    """One training step of ``model`` with ``optimizer``, global-norm clipping ``clip`` (0: none) and ``loss``
    (``cross_entropy`` or ``mse``; see the module docstring).

    ``loss, logits = step(xb, yb)`` runs forward, the loss, ``zero_grad``, backward and clipping; then
    ``step.update()`` applies the optimizer. What it guarantees:

    - Every number is the plain eager loop's (``model(Tensor(xb))``, the loss, ``optimizer.zero_grad()``,
      ``loss.backward()``, ``clip_grad_norm``, ``optimizer.step()``), bit for bit, whether the call replays a
      recorded program or not.
    - A call replays only when eager would see what the recording saw; else it runs eagerly (and may record
      again). Eager whenever: capture is disabled; a module is of a type of its own or has its own ``forward``
      (either may do anything); the optimizer's parameters are not the model's; the input's shape or dtype,
      a module's train/eval mode or the grad mode differ; a forward hook or a parameter hook is attached (a
      measured step); a parameter's data array was replaced; the loss is not finite (replayed forwards have no
      side effects until the loss is known finite, so the eager step starts from the same state). Any change of
      structure records anew: an attribute assigned to any module (a bias set to None, an activation swapped,
      residual switched on, a new Parameter), a list of modules changed, ``requires_grad`` set on a tensor
      (engine/grad_mode.py's structure version).
    - What it hands out is the caller's: the loss (a float), the logits (a Tensor that records nothing), and each
      parameter's ``.grad`` are new arrays every call; no later call writes into them.
    - ``finite()`` says whether every gradient of the last call is finite, so that a run can stop on the very
      step where a gradient overflows while the loss is still finite, replayed or not.
    """

    def __init__(self, model, optimizer, clip: float = 0.0, enabled: bool = True, loss: str = "cross_entropy"):
        self.model, self.optimizer, self.clip, self.enabled = model, optimizer, clip, enabled
        self.loss = validate.choice("loss", loss, LOSSES)
        self.programs = {}  # signature -> (program, refilled inputs, target, logits, loss, its module calls)
        self.replayed = False  # whether the last call replayed (then update() is the fused one)
        self.observer = None  # handed the arrays of every replayed call (observe)
        self.flat, self._version = None, None
        self._derive()

    def _derive(self) -> None:
        """What a replay relies on, worked out from the model's structure as it is now; every program dropped."""
        self._version = structure_version()
        self.programs.clear()
        self.modules = list(self.model.modules())
        self._forward_hooks = [m._forward_hooks for m in self.modules]  # the lists hooks are added to and removed from
        params = self.model.parameters()
        self.replayable = (
            self.enabled
            and all(type(m) in REPLAYABLE and "forward" not in vars(m) for m in self.modules)
            and self.optimizer.params == params
            and len({p.data.dtype for p in params}) == 1
        )
        if self.replayable and (self.flat is None or self.flat.params != params):
            self.flat = FlatParameters(params)

    def _signature(self, xb, yb):
        """The key of the program a replay needs, or None when this call must run eagerly."""
        if self._version != structure_version():
            self._derive()
        if not self.replayable or not is_grad_enabled() or not self.flat.bound():
            return None
        if self.optimizer.params != self.flat.params:  # the optimizer's own list was changed
            return None
        if any(self._forward_hooks) or any(map(_HOOKS, self.flat.params)):
            return None
        return (xb.shape, xb.dtype, yb.shape, tuple(map(_TRAINING, self.modules)))

    def __call__(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, Tensor]:
        """Forward, loss, backward, clipping; (the loss, the logits). ``update()`` applies the step."""
        xb, yb = np.asarray(xb), np.asarray(yb)
        key = self._signature(xb, yb)
        self.replayed, observer = False, self.observer
        if key is not None and key not in self.programs:
            return self._record(key, xb, yb, observer)
        entry = self.programs.get(key)
        if entry is not None:
            result = self._replay(entry, xb, yb, observer)
            if result is not None:
                self.replayed = True
                return result
        if observer is not None:
            observer.attach()  # its hooks: this call runs eagerly
        return self._eager(xb, yb)

    def observe(self, observer) -> None:
        """Hand every following call's arrays to ``observer`` (None: to nobody): ``observer.replayed(Replayed)``
        when the call replays, else ``observer.attach()`` before it runs eagerly (see the module docstring)."""
        self.observer = observer

    def update(self) -> None:
        """The optimizer step: fused over the flat buffers after a replay, else the optimizer's own loop."""
        self.optimizer.step(self.flat if self.replayed else None)

    def finite(self) -> bool:
        """True when every gradient the last call computed is finite (all of them, exactly, cheaply if so)."""
        grads = [self.flat.grad] if self.replayed else [p.grad for p in self.optimizer.params if p.grad is not None]
        return all_finite(grads)

    def _inputs(self, xb) -> tuple[object, list, list]:
        """(the model's argument, the leaves a replay refills from each batch, the constant leaves it holds): x for
        an MLP; a recurrent net's steps and zero state (RecurrentNet.program_inputs)."""
        if isinstance(self.model, recurrent_net.RecurrentNet):
            steps, constants = self.model.program_inputs(xb)
            return steps, steps, constants
        x = Tensor(xb.copy())  # replays overwrite it: never the caller's array
        return x, [x], []

    @staticmethod
    def _refill(leaves: list, xb) -> None:
        """A new batch into the input leaves: x whole, or a recurrent net's steps x[:, t]."""
        if len(leaves) == 1 and leaves[0].data.shape == xb.shape:
            np.copyto(leaves[0].data, xb)
        else:
            for t, leaf in enumerate(leaves):
                np.copyto(leaf.data, xb[:, t])

    def _target(self, logits, yb, out=None) -> np.ndarray:
        """The loss's second operand, an input of the program: cross-entropy's target weights (-1/n at each row's
        label), or MSE's targets negated, in the outputs' shape and dtype (into ``out`` if given). Negated, because
        a node computed from an input alone (-y) would be a constant to capture, which it refuses."""
        if self.loss == "mse":
            return np.negative(np.asarray(yb, dtype=logits.dtype).reshape(logits.shape), out=out)
        return modules.target_weights(logits.shape, logits.dtype, np.asarray(yb).reshape(-1), out=out)

    def _loss(self, logits, target: Tensor) -> Tensor:
        if self.loss == "cross_entropy":
            return modules.weighted_log_softmax(logits, target)
        difference = logits + target  # modules.mse's prediction - y is prediction + (-y): the same numbers
        return (difference * difference).mean()

    def _eager(self, xb, yb):
        logits = self.model(Tensor(xb))
        loss = self._loss(logits, Tensor(self._target(logits.data, yb)))
        return self._backward(loss), Tensor(logits.data)

    def _backward(self, loss, before_clip=None) -> float:
        self.optimizer.zero_grad()
        loss.backward()
        if before_clip is not None:
            before_clip()
        loss_value = loss.item()
        if self.clip:
            clip_grad_norm(self.model.parameters(), self.clip)
        return loss_value

    def _record(self, key, xb, yb, observer=None):
        """The eager step, its graph kept for replay when it can be (and its loss is finite); ``observer``, if any,
        handed its arrays as a replay would hand them (the gradients through hooks added after the capture)."""
        x, refilled, constants = self._inputs(xb)
        calls = []  # every module call under grad: (module, inputs, output), for an observer of later replays

        def seen(module, inputs, output):
            if is_grad_enabled():
                calls.append((module, inputs, output))

        handles = [module.register_forward_hook(seen) for module in self.modules]
        with capture.recording() as effects:
            try:
                logits = self.model(x)
            finally:
                for handle in handles:
                    handle.remove()
        target = Tensor(self._target(logits.data, yb))
        loss = self._loss(logits, target)
        try:
            program = capture.Program(loss, (*refilled, target, *constants), effects)
        except capture.NotCapturable:
            program = None
        observed = None if observer is None else self._observed_record(calls, observer)
        loss_value = self._backward(loss, observed)
        handed_out = Tensor(logits.data.copy())  # replays write into logits.data
        if not math.isfinite(loss_value):
            return loss_value, handed_out  # the run stops here; a later call may record again
        if len(self.programs) >= _KEPT:
            self.programs.pop(next(iter(self.programs)))
        self.programs[key] = None  # this signature stays eager, unless the program is complete:
        params = self.flat.params
        if program is not None and set(program.params) == set(params) and all(p.grad is not None for p in params):
            program.restore()
            self.programs[key] = (program, refilled, target, logits, loss, _replayed_calls(program, calls))
        return loss_value, handed_out

    def _observed_record(self, calls: list, observer):
        """For a recorded call: hooks keeping dL/d(output) of each module call, and a function to call after the
        backward (before clipping) that removes them and hands ``observer`` the call's arrays."""
        kept = {output: None for _, _, output in calls if isinstance(output, Tensor) and output.requires_grad}
        handles = [output.register_hook(functools.partial(kept.__setitem__, output)) for output in kept]

        def observe():
            for handle in handles:
                handle.remove()
            deltas = [kept.get(output) if isinstance(output, Tensor) else None for _, _, output in calls]
            params = self.model.parameters()
            observer.replayed(Replayed(_arrays(calls), deltas, params, [p.grad for p in params]))

        return observe

    def _replay(self, entry, xb, yb, observer=None):
        program, refilled, target, logits, loss, calls = entry
        self._refill(refilled, xb)
        self._target(logits.data, yb, out=target.data)
        program.replay_forward()
        loss_value = loss.data.item()
        if not math.isfinite(loss_value):  # divergence: the eager step computes and reports it
            return None
        views = self.flat.new_grad()  # this step's gradients: the last step's stay whoever holds them
        kept = None if observer is None else dict.fromkeys(output for _, _, output in calls)
        slopes = None if observer is None else dict.fromkeys(kept)  # f'(x) of the calls that apply a function
        program.replay_backward(dict(zip(self.flat.params, views)), kept, slopes)
        program.run_effects()
        for p, view in zip(self.flat.params, views):
            p.grad = view
        if observer is not None:  # clipping scales the flat gradient in place: the observer keeps them before it
            grads = self.flat.views_of(self.flat.grad.copy()) if self.clip else views
            deltas = [kept[output] for _, _, output in calls]
            derivatives = [slopes[output] for _, _, output in calls]
            observer.replayed(Replayed(_arrays(calls), deltas, self.flat.params, grads, derivatives))
        if self.clip:
            clip_grad_norm(self.flat.params, self.clip, flat=self.flat.grad)
        return loss_value, Tensor(logits.data.copy())


def _replayed_calls(program, calls: list) -> list:
    """The recorded module calls a replay recomputes: those whose output and inputs are nodes of ``program``."""
    nodes = set(program.order)
    return [
        (module, inputs, output)
        for module, inputs, output in calls
        if output in nodes and all(isinstance(t, Tensor) and t in nodes for t in inputs)
    ]


def _arrays(calls: list) -> list:
    """Module calls (module, inputs, output) with every Tensor among them replaced by its array."""

    def data(value):
        return value.data if isinstance(value, Tensor) else value

    return [(module, tuple(map(data, inputs)), data(output)) for module, inputs, output in calls]
