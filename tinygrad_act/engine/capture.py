"""Capture: record the graph of one computation, then replay it on new inputs (as tinygrad's TinyJit, CUDA graphs).

``Program(root, inputs)`` takes the graph that ``root`` (a scalar loss) records, before its ``backward()``;
``restore()`` after that backward links it again. ``replay_forward()`` recomputes every node in creation order
from the current data of its parents (the inputs' arrays are overwritten by the caller, parameters are read
where they are), ``replay_backward(views)`` walks the graph as graph.backward does and writes each parameter's
gradient into the array ``views`` gives it. Both run the very operations eager mode runs, in the same order, so
every result is bit-identical: hot operations (linear layers, tanh, same-shape sums) write into the arrays
recorded for them (numpy's ``out=``, the same kernels), every other operation is recomputed by its own method
under ``no_grad`` and its backward is the engine's own function.

What the graph does not hold is not replayed: Python side effects of the forward pass run again only if they
went through ``effect`` (batch norm's running statistics), and numbers are kept as recorded. A graph with a
constant leaf (neither an input nor a parameter: it might change between steps), an operation missing from
``_FORWARD``, hooks or retain_grad cannot be captured (``Program`` raises ``NotCapturable``); the caller
then stays eager.
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import kernels
from .graph import no_grad, topological_order
from .tensor import Tensor, _fit_grad, _linear_backward, _where_backward, linear, where


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


T = Tensor
# Each operation's forward, recomputed through the operation itself (never a second copy of its formula).
_FORWARD = {
    T._add_backward: lambda n, a, b=None: a + (n._ctx if b is None else b),
    T._scale_backward: lambda n, a: a * n._ctx,
    T._mul_backward: lambda n, a, b: a * b,
    T._divide_by_number_backward: lambda n, a: a / n._ctx,
    T._divide_backward: lambda n, a, b: a / b,
    T._pow_backward: lambda n, a: a**n._ctx,
    T._tensor_pow_backward: lambda n, a, b: a**b,
    T._matmul_backward: lambda n, a, b: a @ b,
    T._exp_backward: lambda n, a: a.exp(),
    T._log_backward: lambda n, a: a.log(),
    T._sqrt_backward: lambda n, a: a.sqrt(),
    T._abs_backward: lambda n, a: a.abs(),
    T._apply_backward: lambda n, a: a.apply(n._ctx),
    T._clip_backward: lambda n, a: a.clip(*n._ctx),
    T._sum_backward: lambda n, a: a.sum(*n._ctx),
    T._log_softmax_backward: lambda n, a: a.log_softmax(n._ctx),
    T._softmax_backward: lambda n, a: a.softmax(n._ctx),
    T._reshape_backward: lambda n, a: a.reshape(n.data.shape),
    T._transpose_backward: lambda n, a: a.transpose(*(n._ctx or ())),
    _linear_backward: lambda n, *parents: linear(*parents),
    _where_backward: lambda n, a, b: where(n._ctx, a, b),
}


def _owned(array) -> bool:
    """An array replay may overwrite: it owns its memory, contiguous and writeable."""
    return array.__class__ is np.ndarray and array.flags.owndata and array.flags.c_contiguous and array.flags.writeable


def _same(*arrays) -> bool:
    first = arrays[0]
    return all(a.shape == first.shape and a.dtype == first.dtype for a in arrays[1:])


class Program:
    """The recorded graph of ``root`` with ``inputs`` (leaves whose data the caller overwrites before a replay)."""

    def __init__(self, root: Tensor, inputs, effects=()):
        self.root, self.effects = root, list(effects)
        self.order = topological_order(root)  # root first, as graph.backward walks it
        self.links = [(node, node._parents, node._backward, node._ctx) for node in self.order]
        self.nodes = [node for node in reversed(self.order) if node._backward is not None]  # creation order
        self.params = [node for node in self.order if node._backward is None and node.requires_grad]
        for node in self.order:
            if node._hooks or node._retain:
                raise NotCapturable("a node of the graph has a hook or retain_grad()")
            if node._backward is not None and node._backward not in _FORWARD:
                raise NotCapturable(f"operation {node._backward.__qualname__} has no replay")
            if node._backward is None and not node.requires_grad and node not in inputs:
                # e.g. batch norm's running statistics in eval mode: they change, a replay would freeze them
                raise NotCapturable(f"a constant of shape {node.data.shape} is neither an input nor a parameter")
        consumers = {}
        for node in self.nodes:
            for parent in node._parents:
                consumers[parent] = consumers.get(parent, 0) + 1
        self.forward_steps = [self._forward_step(node) for node in self.nodes]
        self.backward_steps = {node: self._backward_step(node, consumers) for node in self.nodes}
        self.seed = np.ones_like(root.data)

    # ---- forward ---------------------------------------------------------------------------------------
    def _forward_step(self, node):
        parents, fn, out = node._parents, node._backward, node.data
        data = [p.data for p in parents]
        if fn is _linear_backward and len(parents) == 3 and _owned(out):
            x, w, b = parents  # as tensor.linear: the product, then the bias added to it in place

            def linear_step():
                np.matmul(x.data, w.data, out=out)
                np.add(out, b.data, out=out)  # what out += bias runs

            return linear_step
        if fn is T._apply_backward and node._ctx.kernel is np.tanh and _owned(out) and _same(out, data[0]):
            a = parents[0]
            return lambda: np.tanh(a.data, out=out)
        if fn is T._add_backward and len(parents) == 2 and _owned(out) and _same(out, *data):
            a, b = parents
            return lambda: np.add(a.data, b.data, out=out)
        return _generic_forward(node)

    def replay_forward(self) -> None:
        """Recompute every node from its parents' current data (the inputs were overwritten by the caller)."""
        with no_grad():
            for step in self.forward_steps:
                step()

    def run_effects(self) -> None:
        """The recorded side effects (``effect``), on the replayed data, in the order they first ran."""
        for fn, nodes in self.effects:
            fn(*(node.data for node in nodes))

    # ---- backward --------------------------------------------------------------------------------------
    def _backward_step(self, node, consumers):
        parents = node._parents
        if node._backward is _linear_backward and len(parents) == 3:
            x, w, b = parents
            direct = all(consumers[p] == 1 and p in self.params for p in (w, b))
            dtypes = {a.dtype for a in (node.data, x.data, w.data, b.data)}
            if direct and x.data.ndim == w.data.ndim == 2 and b.data.ndim == 1 and len(dtypes) == 1:
                return _linear_step(x, w, b)
        if node._backward is T._apply_backward and _owned(node.data) and _same(node.data, parents[0].data):
            activation = node._ctx
            derivative = getattr(activation, "_derivative", activation.derivative)  # nn's or the engine's
            if activation.trusted and not getattr(activation, "params", None) and derivative in _IN_PLACE:
                return _activation_step(node, derivative)
        return None

    def replay_backward(self, views: dict) -> None:
        """Walk the graph from the root (seed 1) as graph.backward does; ``views[param]`` receives its gradient."""
        self.root._pending = self.seed
        steps = self.backward_steps
        try:
            for node in self.order:
                grad = node._pending
                if grad is None:
                    continue
                node._pending = None
                fn = node._backward
                if fn is None:  # a parameter (only those require grad among the leaves)
                    np.copyto(views[node], grad)
                    continue
                step = steps[node]
                if step is not None:
                    step(grad, views)
                    continue
                for parent, parent_grad in zip(node._parents, fn(node, grad)):
                    if parent_grad is not None and parent.requires_grad:
                        parent_grad = _fit_grad(parent_grad, parent)
                        arrived = parent._pending
                        parent._pending = parent_grad if arrived is None else arrived + parent_grad
        except BaseException:
            for node in self.order:
                node._pending = None
            raise

    def restore(self) -> None:
        """Link the graph again after the eager backward() of the recorded step freed it."""
        for node, parents, backward, ctx in self.links:
            node._parents, node._backward, node._ctx, node._pending = parents, backward, ctx, None


def _linear_step(x, w, b):
    """A linear layer's backward as _linear_backward and _fit_grad compute it, each gradient written in place."""
    gx = np.empty_like(x.data) if x.requires_grad else None

    def step(g, views):
        if gx is not None:
            np.matmul(g, w.data.T, out=gx)
            arrived = x._pending
            x._pending = gx if arrived is None else arrived + gx
        np.matmul(x.data.T, g, out=views[w])
        np.sum(g, axis=0, out=views[b])  # _fit_grad sums the bias's gradient over the batch axis

    return step


_IN_PLACE = (kernels.sech2, kernels.sigmoid_derivative)  # derivatives that take out= and scratch= arrays


def _activation_step(node, derivative):
    """Tensor._apply_backward for tanh and sigmoid, with the derivative computed into arrays of its own."""
    x, generic = node._parents[0], node._backward
    slope, scratch = np.empty_like(x.data), np.empty_like(x.data)
    finite = np.empty(x.data.shape, dtype=bool)

    def step(g, views):
        if np.isfinite(g, out=finite).all():  # as _apply_backward: the product goes into the derivative's array
            grad = np.multiply(derivative(x.data, slope, scratch), g, out=slope)
        else:  # rare: the engine's own function, with its care for 0 * inf
            grad = _fit_grad(generic(node, g)[0], x)
        if x.requires_grad:
            arrived = x._pending
            x._pending = grad if arrived is None else arrived + grad

    return step


def _generic_forward(node):
    forward, parents = _FORWARD[node._backward], node._parents

    def step():
        node.data = forward(node, *parents).data

    return step
