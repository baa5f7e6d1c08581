"""Value's speed paths: its node creation (``make``), its graph order and its backward walk. Measured, each one.

graph.py's rules, rule for rule, for nodes that keep their parents in two fields (``_left``, ``_right``; Value's
``_parents`` is a property over them) rather than a tuple. A Value graph is mostly x + y and x * y (11,153 nodes
per step of the benchmark's MLP, bench/scalar_mlp.py), each node a Python object the cyclic garbage collector must
track while the graph lives; a parents tuple made it two, and the collector took 26-35% of an iteration's time.
With the fields it is one: 13.6 young collections per iteration instead of 24.2, and the benchmark's ratio to
micrograd went from 6.8-7.7x to 9.6-10.7x (side by side, a loaded 2-core machine). The walk sends
x + y, x * y and x * c inline: for them the call of ``op.backward``, the tuple it returns and the ``zip`` over the
parents cost more than the float operations they carry. No un-broadcasting: a Value's gradient is a float.
tests/test_graph.py and tests/test_conventions.py run the rules through both engines, tests/test_scalar.py checks
that both walks give the same bits and both orders the same nodes.
"""

from __future__ import annotations

from operator import attrgetter

from . import grad_mode
from .graph import FREED, _clear, _next_seq, run_hooks

_new, _by_creation, _switched, _GradMode = object.__new__, attrgetter("_seq"), grad_mode._switched, grad_mode._GradMode


def parents(node) -> tuple:
    """``node._parents`` of a Value: its parents as a tuple, as graph.py's nodes keep them."""
    left, right = node._left, node._right
    return () if left is None else (left,) if right is None else (left, right)


def set_parents(node, parents: tuple) -> None:
    node._left, node._right = (*parents, None, None)[:2]  # a Value op has one parent or two


def make(cls, data, parents: tuple, op, ctx=None):
    """graph.make for a Value: its one or two parents stored in fields, the tuple given left to be freed."""
    node = _new(cls)
    node.data, node.grad, node._seq = data, 0.0, _next_seq()
    node._hooks, node._retain, node._pending = None, False, None
    if not _switched or _GradMode.enabled:
        for parent in parents:
            if parent._requires_grad:
                node._requires_grad, node._op, node._ctx = True, op, ctx
                node._left, node._right = (parents[0], parents[1]) if len(parents) == 2 else (parents[0], None)
                return node
    node._requires_grad, node._left, node._right, node._op, node._ctx = False, None, None, None, None
    return node


def topological_order(root, mark) -> list:
    """graph.topological_order(root, mark) over the two fields: every node of the graph, children first."""
    order, stack = [root], [root]
    pop, push, keep = stack.pop, stack.append, order.append
    try:
        root._pending = mark
        while stack:
            node = pop()
            for parent in (node._left, node._right):
                if parent is not None and parent._pending is not mark:
                    keep(parent)  # listed before it is marked: whatever is marked is in order
                    parent._pending = mark
                    push(parent)
    except BaseException:  # an interrupt: no mark stays behind
        _clear(order)
        raise
    order.sort(key=_by_creation, reverse=True)
    return order


def inlining(add_op, mul_op, scale_op):
    """graph.backward for Value graphs, with x + y, x * y and x * c (``add_op``, ``mul_op``, ``scale_op``) inline."""

    def backward(root, seed, retain_graph: bool = False) -> None:
        add, mul, scale, mark = add_op, mul_op, scale_op, object()  # locals: faster to read than closure cells
        order = topological_order(root, mark)
        try:
            root._pending = seed
            for node in order:
                grad, node._pending = node._pending, None
                if grad is mark:  # every path from root to this node carried no gradient
                    continue
                if node._hooks is not None:
                    grad = run_hooks(node, grad, set())  # a float: nothing accumulates in place
                op = node._op
                if op is None or node._retain:
                    node.grad += grad
                    if op is None:
                        continue
                a, b = node._left, node._right
                if op is add:  # what add.backward(node, grad) returns, sent without a call, a tuple and a zip
                    sent_a = sent_b = grad
                elif op is mul:  # likewise for these two: they are most of a scalar graph
                    sent_a, sent_b = grad * b.data, grad * a.data
                elif op is scale:
                    sent_a, sent_b = grad * node._ctx, None
                else:
                    sent_a, sent_b = (*op.backward(node, grad), None)[:2]
                if sent_a is not None and a._requires_grad:
                    a._pending = sent_a if (arrived := a._pending) is mark else arrived + sent_a
                if b is not None and sent_b is not None and b._requires_grad:
                    b._pending = sent_b if (arrived := b._pending) is mark else arrived + sent_b
                if not retain_graph:
                    node._left = node._right = node._ctx = None
                    node._op = FREED
        except BaseException:  # e.g. a hook raised: no partial sum may leak into the next backward()
            _clear(order)
            raise

    return backward
