"""Value's backward walk: graph.backward's rules, with x + y and x * y propagated inline. A speed path, measured.

A scalar graph is mostly additions and multiplications (11,153 nodes per step of the benchmark's MLP, bench/
scalar_mlp.py), and for them the call of ``op.backward``, the tuple it returns and the ``zip`` over the parents
cost more than the two float operations they carry. Sending those inline takes 29% off the instructions of a
Value backward (callgrind, 74 -> 52 million per step). Everything else is graph.backward's, rule for rule (no
un-broadcasting: a Value's gradient is a float); tests/test_graph.py and tests/test_conventions.py run the rules
through both engines, tests/test_scalar.py checks that both walks give the same bits.
"""

from __future__ import annotations

from .graph import FREED, _clear, run_hooks, topological_order


def inlining(add_op, mul_op):
    """graph.backward for Value graphs, with the ops ``add_op`` and ``mul_op`` (x + y, x * y) propagated inline."""

    def backward(root, seed, retain_graph: bool = False) -> None:
        add, mul, mark = add_op, mul_op, object()  # locals: faster to read than the closure's cells
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
                    node._accumulate_grad(grad, False)
                    if op is None:
                        continue
                if op is add:  # what add.backward(node, grad) returns, sent without a call, a tuple and a zip
                    for parent in node._parents:
                        if parent._requires_grad:
                            parent._pending = grad if (arrived := parent._pending) is mark else arrived + grad
                elif op is mul:  # likewise: these two are most of a scalar graph
                    a, b = node._parents
                    for parent, sent in ((a, grad * b.data), (b, grad * a.data)):
                        if parent._requires_grad:
                            parent._pending = sent if (arrived := parent._pending) is mark else arrived + sent
                else:
                    for parent, sent in zip(node._parents, op.backward(node, grad)):
                        if sent is not None and parent._requires_grad:
                            parent._pending = sent if (arrived := parent._pending) is mark else arrived + sent
                if not retain_graph:
                    node._parents, node._ctx, node._op = (), None, FREED
        except BaseException:  # e.g. a hook raised: no partial sum may leak into the next backward()
            _clear(order)
            raise

    return backward
