"""Capture: record the graph of one computation, then replay it on new inputs (as tinygrad's TinyJit, CUDA graphs).

``Program(root, inputs)`` takes the graph that ``root`` (a scalar loss) records, before its ``backward()``;
``restore()`` after that backward links it again. ``replay_forward()`` recomputes every node in creation order
from the current data of its parents (the inputs' arrays are overwritten by the caller, parameters are read
where they are), ``replay_backward(views)`` walks the graph as graph.backward does and writes each parameter's
gradient into the array ``views`` gives it. Both call each node's own op, ``op.forward`` and ``op.backward``, in
the order eager mode does, so every result is bit-identical; capture holds no formula of its own. Ops that take
``out=`` arrays (graph.Op: linear layers, elementwise functions, sums) are given arrays allocated once: the
node's own data, and for gradients a buffer per parent, or the parameter's view when it is its only use.

What the graph does not hold is not replayed: Python side effects of the forward pass run again only if they
went through ``effect`` (batch norm's running statistics), and numbers are kept as recorded. A graph with a
constant leaf (neither an input nor a parameter: it might change between steps), a node without an op's forward,
hooks or retain_grad cannot be captured (``Program`` raises ``NotCapturable``); the caller then stays eager.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from .grad_mode import no_grad
from .graph import topological_order
from .kernels import unbroadcast


class NotCapturable(Exception):
    """The graph holds something replay cannot reproduce; the message says what."""


_recorders: list[list] = []  # the effect lists of the recordings in progress


def effect(fn, *nodes) -> None:
    """Call ``fn(*(node.data for node in nodes))`` now; a recording in progress replays it after each forward."""
    fn(*(node.data for node in nodes))
    for effects in _recorders:
        effects.append((fn, nodes))


@contextlib.contextmanager
def recording():
    """Collect the ``effect`` calls made inside (a list, yielded)."""
    effects = []
    _recorders.append(effects)
    try:
        yield effects
    finally:
        _recorders.remove(effects)


def _owned(array) -> bool:
    """An array replay may overwrite: it owns its memory, contiguous and writeable."""
    return array.__class__ is np.ndarray and array.flags.owndata and array.flags.c_contiguous and array.flags.writeable


class Program:
    """The recorded graph of ``root`` with ``inputs`` (leaves whose data the caller overwrites before a replay)."""

    def __init__(self, root, inputs, effects=()):
        self.root, self.effects = root, list(effects)
        self.order = topological_order(root)  # root first, as graph.backward walks it
        self.links = [(node, node._parents, node._op, node._ctx) for node in self.order]
        self.nodes = [node for node in reversed(self.order) if node._op is not None]  # creation order
        self.params = [node for node in self.order if node._op is None and node._requires_grad]
        for node in self.order:
            if node._hooks or node._retain:
                raise NotCapturable("a node of the graph has a hook or retain_grad()")
            if node._op is not None and node._op.forward is None:
                raise NotCapturable(f"operation {node._op.name} has no forward to replay")
            if node._op is None and not node._requires_grad and node not in inputs:
                # e.g. batch norm's running statistics in eval mode: they change, a replay would freeze them
                raise NotCapturable(f"a constant of shape {node.data.shape} is neither an input nor a parameter")
        consumers = {}
        for node in self.nodes:
            for parent in node._parents:
                consumers[parent] = consumers.get(parent, 0) + 1
        self.forward_steps = [self._forward_step(node) for node in self.nodes]
        self.plans = {node: self._plan(node, consumers) for node in self.order}
        self.seed = np.ones_like(root.data)
        self._slopes = {}  # node -> its _Slope (replay_backward's slopes), whose copy is reused at each replay

    def _forward_step(self, node):
        """A function that recomputes ``node.data``: its op's forward, into the node's own array where it takes out=."""
        forward, parents, ctx = node._op.forward, node._parents, node._ctx
        if node._op.forward_out is not None and node._op.forward_out(node) and _owned(node.data):
            forward = functools.partial(forward, out=node.data)  # nothing allocated (forward may still decline)
        a, b, c = (*parents, None, None)[:3]
        # The parents' data is read at every replay (an op upstream may have replaced its array); one function per
        # arity, so that a step is one call on top of the op's own forward.
        if len(parents) == 1:

            def step():
                data = forward(ctx, a.data)
                node.data = data if data.__class__ is np.ndarray else np.asarray(data)

        elif len(parents) == 2:

            def step():
                data = forward(ctx, a.data, b.data)
                node.data = data if data.__class__ is np.ndarray else np.asarray(data)

        elif len(parents) == 3:

            def step():
                data = forward(ctx, a.data, b.data, c.data)
                node.data = data if data.__class__ is np.ndarray else np.asarray(data)

        else:

            def step():
                data = forward(ctx, *[p.data for p in parents])
                node.data = data if data.__class__ is np.ndarray else np.asarray(data)

        return step

    def _plan(self, node, consumers):
        """How a replay sends ``node``'s gradient on: (parents, backward, out, direct, routes); None for a leaf.

        ``out``: None where the op takes no out= arrays; else a list with one entry per parent: None (no gradient),
        a buffer of its own, or, for a parameter used only here (its gradient needs no sum), this replay's view of
        it (views[param]), put there by the replay. ``direct``: the positions of those parameters; ``routes``: of
        the other parents that require grad, whose gradients are summed in their ``_pending``.
        """
        op, parents = node._op, node._parents
        if op is None:
            return None
        needing = [i for i, p in enumerate(parents) if p._requires_grad]
        one_dtype = len({p.data.dtype for p in parents} | {node.data.dtype}) == 1
        if op.backward_out is None or not op.backward_out(node) or not one_dtype:
            return parents, op.backward, None, (), tuple(needing)
        direct = tuple(i for i in needing if parents[i] in self.params and consumers[parents[i]] == 1)
        routes = tuple(i for i in needing if i not in direct)
        out = [np.empty_like(p.data) if i in routes else None for i, p in enumerate(parents)]
        return parents, op.backward, out, direct, routes

    def replay_forward(self) -> None:
        """Recompute every node from its parents' current data (the inputs were overwritten by the caller)."""
        with no_grad():
            for step in self.forward_steps:
                step()

    def run_effects(self) -> None:
        """The recorded side effects (``effect``), on the replayed data, in the order they first ran."""
        for fn, nodes in self.effects:
            fn(*(node.data for node in nodes))

    def replay_backward(self, views: dict, kept: dict | None = None, slopes: dict | None = None) -> None:
        """Walk the graph from the root (seed 1) as graph.backward does; ``views[param]`` receives its gradient.

        ``kept``: {node: None} for nodes whose gradient the caller wants (what a hook on them would be handed): each
        entry becomes that gradient, an array of this replay's that no later step of it writes into.
        ``slopes``: {node: None} for nodes of elementwise functions (``Tensor.apply``) whose derivative f'(x) the
        caller wants: each entry becomes the f'(x) this backward computed (a copy kept before the gradient was
        multiplied into it; see ``_Slope``), or stays None if no gradient reached the node."""
        self.root._pending, plans = self.seed, self.plans
        if slopes:
            self._watch_slopes(slopes)
        try:
            for node in self.order:
                grad = node._pending
                if grad is None:
                    continue
                node._pending = None
                if kept is not None and node in kept:
                    kept[node] = grad
                plan = plans[node]
                if plan is None:  # a parameter (only those require grad among the leaves), used more than once
                    np.copyto(views[node], grad)
                    continue
                parents, backward, out, direct, routes = plan
                if out is None:
                    sends = backward(node, grad)
                else:
                    for i in direct:  # this replay's arrays for the gradients of the parameters used only here
                        out[i] = views[parents[i]]
                    sends = backward(node, grad, out)
                    for i in direct:
                        if sends[i] is not out[i]:  # computed afresh (e.g. a non-finite gradient): copied there
                            np.copyto(out[i], unbroadcast(sends[i], parents[i].data))
                for i in routes:
                    sent, parent = sends[i], parents[i]
                    if sent is None:
                        continue
                    if out is None or sent is not out[i]:
                        sent = unbroadcast(sent, parent.data)
                    arrived = parent._pending
                    parent._pending = sent if arrived is None else arrived + sent
        except BaseException:
            for node in self.order:
                node._pending = None
            raise
        finally:
            if slopes:
                self._unwatch_slopes(slopes)

    def _watch_slopes(self, slopes: dict) -> None:
        """Stand-ins (``_Slope``) for the functions of the ``slopes`` nodes, for one backward walk."""
        kept = self._slopes
        for node in slopes:
            if node._op is not None and node._op.name == "apply" and node in self.plans:
                stand_in = kept.get(node)
                if stand_in is None or stand_in.function is not node._ctx:
                    stand_in = kept[node] = _Slope(node._ctx)
                stand_in.seen = False
                node._ctx = stand_in

    @staticmethod
    def _unwatch_slopes(slopes: dict) -> None:
        for node in slopes:
            stand_in = node._ctx
            if stand_in.__class__ is _Slope:
                node._ctx = stand_in.function
                slopes[node] = stand_in.copy if stand_in.seen else None

    def restore(self) -> None:
        """Link the graph again after the eager backward() of the recorded step freed it."""
        for node, parents, op, ctx in self.links:
            node._parents, node._op, node._ctx, node._pending = parents, op, ctx, None


class _Slope:
    """An elementwise function (kernels.Elementwise or an activation) as the backward of ``Tensor.apply`` reads it,
    which keeps a copy of the derivative f'(x) it hands out: that backward multiplies the gradient into f'(x) in
    place, so the copy is taken between the two. The derivative is the function's own, called as the backward
    calls it; nothing else changes."""

    def __init__(self, function):
        self.function = function
        self.can_die, self.trusted, self.in_place = function.can_die, function.trusted, function.in_place
        self.copy, self.seen = None, False

    def derivative(self, x, *out):
        slope = self.function.derivative(x, *out)
        if self.copy is None or self.copy.shape != slope.shape or self.copy.dtype != slope.dtype:
            self.copy = np.empty_like(slope)
        np.copyto(self.copy, slope)
        self.seen = True
        return slope
