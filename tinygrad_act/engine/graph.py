"""The one reverse-mode core shared by ``Value`` (scalar.py) and ``Tensor`` (tensor.py).

A node records its parents in a tuple and its ``Op`` (name, forward, backward); ``op.backward(node, grad)``
receives the node, never a closure over it, so nodes form no reference cycles and a graph is freed by reference
counting the moment it goes out of scope.

Semantics follow PyTorch: ``.grad`` is filled for leaves that require grad and for non-leaves that called
``retain_grad()``; it accumulates across ``backward()`` calls until ``zero_grad()`` resets it. ``backward()``
frees the graph as it walks it; a second call through the same graph raises unless the first passed
``retain_graph=True``. Inside ``no_grad()`` operations record no graph. A hook's argument is never the array
that later accumulates into ``.grad``; an interrupted walk leaves no mark that a later one could take for its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from operator import attrgetter
from typing import NamedTuple

from . import kernels

# no_grad, enable_grad, is_grad_enabled: importable from here too, as they always were
from .grad_mode import _GradMode, _switched, enable_grad, is_grad_enabled, no_grad, structure_changed  # noqa: F401

_next_seq = itertools.count().__next__  # creation order is a topological order: a node comes after its parents
_new = object.__new__


class Op(NamedTuple):
    """An operation: micrograd's three lines as data. ``forward(ctx, *parents' data)`` computes the output;
    ``backward(node, grad)`` says how the gradient flows back, one per parent (None where none flows)."""

    name: str
    forward: Callable
    backward: Callable
    # For capture.py's replays into arrays allocated once: forward_out(node) / backward_out(node) say whether this
    # node's forward(ctx, *data, out=array) / backward(node, grad, out=(array or None per parent)) write into the
    # arrays given; either may still return fresh arrays instead (the replay copies them where they belong).
    forward_out: Callable | None = None
    backward_out: Callable | None = None


def _graph_freed(node, grad):
    raise RuntimeError("backward through a freed graph: pass retain_graph=True to the first backward()")


FREED = Op("freed", None, _graph_freed)  # the op of a node whose graph backward() released


class Node:
    """Graph bookkeeping shared by Value and Tensor. Subclasses add the operations."""

    # _pending: during backward(), the sum of the gradients that have arrived so far (or the walk's mark); else None
    __slots__ = tuple("data grad _requires_grad _parents _op _ctx _seq _hooks _retain _pending".split())

    # fit(grad, parent.data) -> grad, applied to every gradient on its way to a parent (Tensor: un-broadcast, cast)
    _fit_grad = None
    _empty_grad = None  # what .grad holds before any backward and after zero_grad() (Value: 0.0)

    def __init__(self, data, requires_grad=False):  # a leaf; make() creates the nodes of operations
        self.data, self.grad, self._requires_grad, self._seq = data, self._empty_grad, requires_grad, _next_seq()
        self._parents, self._op, self._ctx = (), None, None
        self._hooks, self._retain, self._pending = None, False, None

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this node; settable on a leaf (it changes the structure version)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if value != self._requires_grad:
            if self._op is not None:
                raise RuntimeError("requires_grad can be switched off only on a leaf; use detach()")
            self._check_requires_grad(value)
            self._requires_grad = value
            structure_changed()

    _check_requires_grad = staticmethod(lambda value: None)  # raises where a node cannot require grad (Tensor)

    @property
    def is_leaf(self) -> bool:
        """True for nodes created by the user rather than by an operation that records a graph."""
        return self._op is None

    def register_hook(self, fn):
        """Call ``fn(grad)`` whenever this node's gradient is complete; a non-None return replaces it (copied).

        ``grad`` is the hook's to keep (no later backward writes into it), never to modify (it may be shared). A
        replacement must look like the gradient (shape and dtype; for a Value a real number), else backward()
        raises. Returns a removable handle.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a node that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return RemovableHandle(self._hooks, fn)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf node after backward (leaves always keep theirs)."""
        if not self._requires_grad:
            raise RuntimeError("cannot retain_grad on a node that does not require grad")
        self._retain = True
        return self

    def detach(self):
        """A new leaf with the same data (shared, for a Tensor) that does not require grad."""
        return type(self)(self.data, requires_grad=False)

    def zero_grad(self):
        """Reset ``.grad`` (to ``None`` for tensors, ``0.0`` for values) so the next backward starts afresh."""
        self.grad = self._empty_grad

    def backward(self, grad=None, retain_graph: bool = False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (scaled by ``grad`` if given)."""
        if not self._requires_grad:
            raise RuntimeError("backward() on a node that does not require grad (was it built under no_grad?)")
        self._walk(self, self._seed_grad(grad), retain_graph)

    # The engines' built-in activations, defined once for both (kernels.py); each engine has its own apply().
    def tanh(self):
        """tanh x; its derivative from x (kernels.sech2), exact in the saturated tails."""
        return self.apply(kernels.TANH)

    def sigmoid(self):
        """1 / (1 + e^-x) from e^-|x|, never overflowing; its derivative from x, exact in the tails."""
        return self.apply(kernels.SIGMOID)

    def relu(self):
        """max(0, x); the derivative at 0 is taken as 0, and relu(nan) = nan passes the gradient, as in PyTorch."""
        return self.apply(kernels.RELU)

    # Composed from each engine's own primitives (__mul__, __add__), the same for both.
    def __neg__(self):
        return self * -1

    def __rsub__(self, other):
        return (-self) + other


def make(cls, data, parents: tuple, op: Op, ctx=None):
    """An operation's output node; it records the graph only when some parent requires grad."""
    node = _new(cls)  # Node.__init__ inlined: this runs once per operation
    node.data, node.grad, node._seq = data, cls._empty_grad, _next_seq()
    node._hooks, node._retain, node._pending = None, False, None
    if not _switched or _GradMode.enabled:  # grad_mode.py: the thread-local is read only inside some block
        for parent in parents:
            if parent._requires_grad:
                node._requires_grad, node._parents, node._op, node._ctx = True, parents, op, ctx
                return node
    node._requires_grad, node._parents, node._op, node._ctx = False, (), None, None
    return node


class RemovableHandle:
    """Returned by ``register_hook`` (and by modules' ``register_forward_hook``): ``remove()`` unregisters."""

    def __init__(self, hooks: list, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        """Unregister the hook (a second call does nothing)."""
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


def topological_order(root, mark=None) -> list:
    """Every node recorded in ``root``'s graph, root first, parents after children (by creation number).

    Iterative (no recursion limit), deterministic; nodes that do not require grad are listed too, as leaves.
    ``mark`` (a backward walk's fresh object) stays in each node's ``_pending`` in place of a set of nodes; a
    later walk overwrites it, never trusts it, so an interrupted walk cannot make a later one skip nodes.
    """
    visited = object() if mark is None else mark
    order, stack = [root], [root]  # depth first: the order comes out nearly sorted, cheap for sort() to finish
    pop, push, keep = stack.pop, stack.append, order.append
    try:
        root._pending = visited
        while stack:
            for parent in pop()._parents:
                if parent._pending is not visited:
                    keep(parent)  # listed before it is marked: whatever is marked is in order
                    parent._pending = visited
                    push(parent)
    except BaseException:  # an interrupt: no mark stays behind (capture.py's replays read _pending)
        _clear(order)
        raise
    order.sort(key=attrgetter("_seq"), reverse=True)
    if mark is None:
        _clear(order)
    return order


def _clear(nodes) -> None:
    for node in nodes:
        node._pending = None


def backward(root, seed, retain_graph: bool = False) -> None:
    """Propagate ``seed`` = dL/d(root) to every node ``root`` depends on, children first: run each node's hooks,
    keep ``.grad`` on leaves and retained nodes, send each parent its share, summing what arrives from several."""
    fit, mark = root._fit_grad, object()
    order = topological_order(root, mark)
    try:
        kept = {id(seed)}  # arrays already handed to someone (a hook, a .grad): a .grad must never alias them
        root._pending = seed
        for node in order:
            grad, node._pending = node._pending, None
            if grad is mark:  # every path from root to this node carried no gradient
                continue
            if node._hooks is not None:
                grad = run_hooks(node, grad, kept)
            op = node._op
            if op is None or node._retain:
                node._accumulate_grad(grad, id(grad) in kept)
                kept.add(id(grad))
                if op is None:
                    continue
            # Parents that do not require grad are outside the walk; never add in place (arrived may be shared).
            for parent, sent in zip(node._parents, op.backward(node, grad)):
                if sent is not None and parent._requires_grad:
                    if fit is not None:
                        sent = fit(sent, parent.data)
                    parent._pending = sent if (arrived := parent._pending) is mark else arrived + sent
            if not retain_graph:
                node._parents, node._ctx, node._op = (), None, FREED
    except BaseException:  # e.g. a hook raised: no partial sum may leak into the next backward()
        _clear(order)
        raise


Node._walk = staticmethod(backward)  # Value has a walk of its own (scalar_walk.py), the same rules, faster


def run_hooks(node, grad, kept: set):
    """``node``'s hooks in order, each on the gradient the previous one left; the gradient they leave."""
    for hook in node._hooks:
        kept.add(id(grad))  # the hook may keep it: it must never become a .grad that later accumulates in place
        replaced = hook(grad)
        if replaced is not None:
            grad = node._hook_result(hook, replaced, grad)
    return grad
