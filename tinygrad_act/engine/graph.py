"""The one reverse-mode core shared by ``Value`` (scalar.py) and ``Tensor`` (tensor.py).

A node records its parents in a tuple and a backward function ``fn(node, grad) -> tuple``, one gradient per
parent (``None`` where a parent needs none). It receives the node, never a closure over it, so nodes form no
reference cycles and a graph is freed by reference counting the moment it goes out of scope.

Semantics follow PyTorch: ``.grad`` is filled for leaves that require grad and for non-leaves that called
``retain_grad()``; it accumulates across ``backward()`` calls until ``zero_grad()`` resets it. ``backward()``
frees the graph as it walks it (saved buffers are released); a second call through the same graph raises unless
the first passed ``retain_graph=True``. Inside ``no_grad()`` operations record no graph; ``enable_grad()`` does.
"""

from __future__ import annotations

import functools
import itertools
import threading
from operator import attrgetter

from . import kernels

_next_seq = itertools.count().__next__  # creation order is a topological order: a node comes after its parents
_new = object.__new__


class _GradModeState(threading.local):
    enabled = True  # per thread, as in PyTorch: no_grad() in one thread leaves the others recording

    def __init__(self):
        self.saved = []  # the modes to restore, one per block entered in this thread


_GradMode = _GradModeState()
_switched = []  # one entry per grad-mode block open in any thread: while empty every thread records (a cheap test)


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()`` (in this thread)."""
    return _GradMode.enabled


class _SetGradMode:
    """Context manager and decorator: the grad mode is ``enabled`` inside; one instance may nest and be shared."""

    def __enter__(self):
        _GradMode.saved.append(_GradMode.enabled)
        _GradMode.enabled = self.enabled
        _switched.append(None)  # list append and pop are atomic: no lock needed between threads
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = _GradMode.saved.pop()
        _switched.pop()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:  # reentrant: the modes to restore are kept per thread, not on the instance
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_SetGradMode):  # noqa: N801 - named like the context managers of PyTorch and the standard library
    """Context manager and decorator: operations inside record no graph."""

    enabled = False


class enable_grad(_SetGradMode):  # noqa: N801
    """Context manager and decorator: operations inside record a graph, even within ``no_grad()``."""

    enabled = True


class Node:
    """Graph bookkeeping shared by Value and Tensor. Subclasses add the operations."""

    # _pending: during backward(), the sum of the gradients that have arrived so far; else None
    __slots__ = tuple("data grad requires_grad _parents _backward _ctx _seq _hooks _retain _pending".split())

    # fit(grad, parent) -> grad, applied to every gradient on its way to a parent (Tensor: un-broadcast and cast)
    _fit_grad = None
    _empty_grad = None  # what .grad holds before any backward and after zero_grad() (Value: 0.0)
    _inline = (None, None)  # Value's x + y and x * y backward functions, which backward() runs inline

    def __init__(self, data, requires_grad=False):  # a leaf; make() creates the nodes of operations
        self.data, self.grad, self.requires_grad, self._seq = data, self._empty_grad, requires_grad, _next_seq()
        self._parents, self._backward, self._ctx = (), None, None
        self._hooks, self._retain, self._pending = None, False, None

    @property
    def is_leaf(self) -> bool:
        """True for nodes created by the user rather than by an operation that records a graph."""
        return self._backward is None

    def register_hook(self, fn):
        """Call ``fn(grad)`` whenever this node's gradient is complete; a non-None return replaces it (copied).

        Never modify ``grad`` in place (it may be shared or read-only). A replacement must look like the gradient
        (same shape and dtype; for a Value a real number), else backward() raises. Returns a removable handle.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a node that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return RemovableHandle(self._hooks, fn)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf node after backward (leaves always keep theirs)."""
        if not self.requires_grad:
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
        if not self.requires_grad:
            raise RuntimeError("backward() on a node that does not require grad (was it built under no_grad?)")
        backward(self, self._seed_grad(grad), retain_graph)

    # The engines' built-in activations, defined once for both (kernels.py); each engine has its own apply().
    def tanh(self):
        """tanh x; its derivative from x (kernels.sech2), exact in the saturated tails."""
        return self.apply(kernels.TANH)

    def sigmoid(self):
        """1 / (1 + e^-x) from e^-|x|, never overflowing; its derivative from x, exact in the tails."""
        return self.apply(kernels.SIGMOID)

    def relu(self):
        """max(0, x); the derivative at 0 is taken as 0, as in PyTorch."""
        return self.apply(kernels.RELU)

    # Composed from each engine's own primitives (__mul__, __add__), the same for both.
    def __neg__(self):
        return self * -1

    def __rsub__(self, other):
        return (-self) + other


def make(cls, data, parents: tuple, backward, ctx=None):
    """An operation's output node; it records the graph only when some parent requires grad."""
    node = _new(cls)  # Node.__init__ inlined: this runs once per operation
    node.data, node.grad, node._seq = data, cls._empty_grad, _next_seq()
    node._hooks, node._retain, node._pending = None, False, None
    if not _switched or _GradMode.enabled:
        for parent in parents:
            if parent.requires_grad:
                node.requires_grad, node._parents, node._backward, node._ctx = True, parents, backward, ctx
                return node
    node.requires_grad, node._parents, node._backward, node._ctx = False, (), None, None
    return node


class RemovableHandle:
    """Returned by ``register_hook`` (and by modules' ``register_forward_hook``): ``remove()`` unregisters."""

    def __init__(self, hooks: list, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        """Unregister the hook (a second call does nothing)."""
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


_SEEN = object()  # _pending of a node that topological_order listed and no gradient has reached yet


def topological_order(root, marked: bool = False) -> list:
    """Every node recorded in ``root``'s graph, root first, parents after children (by creation number).

    Iterative (no recursion limit), deterministic; nodes that do not require grad are listed too, as leaves;
    ``marked`` (for backward) leaves each node's ``_pending`` at _SEEN, the mark that replaces a set of nodes.
    """
    root._pending = _SEEN
    order, stack = [root], [root]  # depth first: the order comes out nearly sorted, cheap for sort() to finish
    pop, push, keep = stack.pop, stack.append, order.append
    while stack:
        for parent in pop()._parents:
            if parent._pending is None:
                parent._pending = _SEEN
                push(parent)
                keep(parent)
    order.sort(key=attrgetter("_seq"), reverse=True)
    if not marked:
        for node in order:
            node._pending = None
    return order


def _graph_freed(node, grad):
    raise RuntimeError("backward through a freed graph: pass retain_graph=True to the first backward()")


def backward(root, seed, retain_graph: bool = False) -> None:
    """Propagate ``seed`` = dL/d(root) to every node ``root`` depends on (see the module docstring)."""
    fit, (add, mul) = root._fit_grad, root._inline
    order = topological_order(root, marked=True)
    stored = {id(seed)}  # arrays already handed to someone: a .grad must never alias another
    root._pending = seed
    try:
        for node in order:
            grad = node._pending
            node._pending = None
            if grad is _SEEN:  # every path from root to this node carried no gradient
                continue
            if node._hooks is not None:
                for hook in node._hooks:
                    replaced = hook(grad)
                    if replaced is not None:
                        grad = node._hook_result(hook, replaced, grad)
            fn = node._backward
            if fn is None or node._retain:
                node._accumulate_grad(grad, id(grad) in stored)
                stored.add(id(grad))
                if fn is None:
                    continue
            if fn is add:  # what add(node, grad) would return, sent without a call, a tuple and a zip
                for parent in node._parents:
                    if parent.requires_grad:
                        parent._pending = grad if (arrived := parent._pending) is _SEEN else arrived + grad
            elif fn is mul:  # likewise: inline, these two are most of a scalar graph
                a, b = node._parents
                for parent, sent in ((a, grad * b.data), (b, grad * a.data)):
                    if parent.requires_grad:
                        parent._pending = sent if (arrived := parent._pending) is _SEEN else arrived + sent
            else:
                # Parents that do not require grad are outside the walk; never add in place (arrived may be shared).
                for parent, sent in zip(node._parents, fn(node, grad)):
                    if sent is not None and parent.requires_grad:
                        if fit is not None:
                            sent = fit(sent, parent)
                        parent._pending = sent if (arrived := parent._pending) is _SEEN else arrived + sent
            if not retain_graph:
                node._parents, node._ctx, node._backward = (), None, _graph_freed
    except BaseException:  # e.g. a hook raised: no partial sum may leak into the next backward()
        for node in order:
            node._pending = None
        raise
