"""The shared reverse-mode core (graph.py), exercised through both engines: accumulation over diamonds and
reused nodes, deep chains without recursion, repeated backward, no_grad, retain_grad, hooks, graph release."""

import math
import sys
import weakref

import numpy as np
import pytest

from tinygrad_act import Tensor, Value, is_grad_enabled, no_grad
from tinygrad_act.engine.graph import topological_order


class ValueEngine:
    name = "value"

    def leaf(self, x, requires_grad=True):
        return Value(x, requires_grad=requires_grad)

    def grad(self, node):
        return node.grad

    def data(self, node):
        return node.data


class TensorEngine:
    name = "tensor"

    def leaf(self, x, requires_grad=True):
        return Tensor(np.array(x, dtype=np.float64), requires_grad=requires_grad)

    def grad(self, node):
        return None if node.grad is None else float(node.grad)

    def data(self, node):
        return float(node.data)


@pytest.fixture(params=[ValueEngine(), TensorEngine()], ids=lambda engine: engine.name)
def engine(request):
    return request.param


# ---- accumulation ----------------------------------------------------------------------------------------
def test_diamond_sums_the_gradients_of_both_paths(engine):
    a = engine.leaf(1.5)
    b, c = a * 2.0, a.exp()
    d = b * c  # d = 2a e^a, d' = 2 e^a (1 + a)
    d.backward()
    assert engine.grad(a) == pytest.approx(2 * math.exp(1.5) * 2.5, rel=1e-12)


def test_node_used_several_times_accumulates_every_use(engine):
    a = engine.leaf(3.0)
    b = a + a
    c = b + b
    c.backward()
    assert engine.grad(a) == 4.0
    x = engine.leaf(3.0)
    (x * x * x).backward()
    assert engine.grad(x) == pytest.approx(27.0)


def test_repeated_doubling_counts_2_to_the_60_paths_in_linear_time(engine):
    a = engine.leaf(1.0)
    x = a
    for _ in range(60):  # 2**60 distinct paths from the root to a: a walk per path would never end
        x = x + x
    x.backward()
    assert engine.grad(a) == 2.0**60


def test_hundred_thousand_node_value_chain_backprops_under_the_default_recursion_limit():
    assert sys.getrecursionlimit() <= 10_000  # nobody raised it for us: the chain is ten times deeper than that
    a = Value(1.0)
    x = a
    for _ in range(100_000):
        x = x * 1.00001
    x.backward()
    assert a.grad == pytest.approx(1.00001**100_000, rel=1e-9)


def test_hundred_thousand_node_tensor_chain_backprops_under_the_default_recursion_limit():
    a = Tensor(np.ones(3), requires_grad=True)
    x = a
    for _ in range(100_000):
        x = x + 1.0
    x.sum().backward(retain_graph=True)
    np.testing.assert_array_equal(a.grad, np.ones(3))
    del x  # dropping the retained 100k-deep graph frees it without deep recursion (no crash)


def test_long_value_chain_that_is_never_backpropagated_is_freed_without_deep_recursion():
    x = Value(1.0)
    for _ in range(300_000):
        x = x + 1.0
    del x  # each node holds its parents: freeing is 300k levels deep, and must not crash the interpreter
    assert Value(1.0).data == 1.0


def test_parents_are_tuples_and_the_order_of_the_walk_is_deterministic(engine):
    def build():
        a, b = engine.leaf(0.5), engine.leaf(-1.5)
        h = a * b
        return (h.tanh() + h * a - b.exp()) * h

    orders = []
    for _ in range(3):
        root = build()
        order = topological_order(root)
        assert order[0] is root
        position = {id(node): i for i, node in enumerate(order)}
        for node in order:
            assert isinstance(node._parents, tuple)
            for parent in node._parents:
                assert position[id(parent)] > position[id(node)]  # children before parents
        orders.append([engine.data(node) for node in order])
    assert orders[0] == orders[1] == orders[2]


# ---- seeds and repeated backward -------------------------------------------------------------------------
def test_backward_on_a_scalar_seeds_one_and_an_explicit_gradient_scales(engine):
    a = engine.leaf(2.0)
    (a * 3.0).backward()
    assert engine.grad(a) == 3.0
    b = engine.leaf(2.0)
    (b * 3.0).backward(np.array(0.5) if engine.name == "tensor" else 0.5)
    assert engine.grad(b) == 1.5


def test_backward_on_a_node_that_does_not_require_grad_raises(engine):
    with pytest.raises(RuntimeError, match="does not require grad"):
        (engine.leaf(2.0, requires_grad=False) * 3.0).backward()


def test_second_backward_through_a_freed_graph_raises(engine):
    a = engine.leaf(2.0)
    y = a * a + a
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_through_a_subgraph_freed_by_another_root_raises(engine):
    a = engine.leaf(2.0)
    shared = a * a
    first, second = shared + 1.0, shared * 2.0
    first.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        second.backward()


def test_backward_twice_with_retain_graph_accumulates_exactly_as_pytorch(engine):
    a, b = engine.leaf(2.0), engine.leaf(-3.0)
    y = a * b + a  # dy/da = b + 1, dy/db = a
    y.backward(retain_graph=True)
    assert (engine.grad(a), engine.grad(b)) == (-2.0, 2.0)
    y.backward()  # the graph is freed by this one
    assert (engine.grad(a), engine.grad(b)) == (-4.0, 4.0)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    assert (engine.grad(a), engine.grad(b)) == (-4.0, 4.0)


def test_backward_on_a_leaf_accumulates_without_a_graph(engine):
    a = engine.leaf(5.0)
    a.backward()
    a.backward()
    assert engine.grad(a) == 2.0


def test_zero_grad_resets_so_the_next_backward_starts_afresh():
    t = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (t * 3.0).sum().backward()
    t.zero_grad()
    assert t.grad is None  # tensors: None, as PyTorch's set_to_none
    (t * 5.0).sum().backward()
    np.testing.assert_array_equal(t.grad, [5.0, 5.0])
    v = Value(1.0)
    (v * 3.0).backward()
    v.zero_grad()
    assert v.grad == 0.0  # values: 0.0, a float like every Value gradient
    (v * 5.0).backward()
    assert v.grad == 5.0


def test_gradients_accumulate_across_separate_graphs_until_zero_grad(engine):
    a = engine.leaf(2.0)
    (a * 3.0).backward()
    (a * a).backward()
    assert engine.grad(a) == 7.0


# ---- no_grad, requires_grad, detach ----------------------------------------------------------------------
def test_no_grad_context_records_no_graph_and_restores_the_mode(engine):
    a = engine.leaf(2.0)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with no_grad():
            y = (a * a).exp()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._parents == ()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert (a * a).requires_grad  # recording resumes after the block


def test_no_grad_restores_the_mode_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert is_grad_enabled()


def test_no_grad_decorator_disables_recording_inside_the_function_only(engine):
    @no_grad()
    def step(x):
        """Docstring kept."""
        assert not is_grad_enabled()
        return x * 2.0

    a = engine.leaf(1.0)
    assert not step(a).requires_grad
    assert step.__name__ == "step" and step.__doc__ == "Docstring kept."
    assert is_grad_enabled() and (a * 2.0).requires_grad


def test_only_inputs_that_require_grad_receive_a_gradient(engine):
    a, c = engine.leaf(2.0), engine.leaf(3.0, requires_grad=False)
    assert not (c * c).requires_grad
    y = a * c + c
    assert y.requires_grad
    y.backward()
    assert engine.grad(a) == 3.0
    assert engine.grad(c) in (None, 0.0)


def test_detach_cuts_the_graph(engine):
    a = engine.leaf(2.0)
    d = (a * a).detach()
    assert not d.requires_grad and d.is_leaf and engine.data(d) == 4.0
    (a * d).backward()
    assert engine.grad(a) == 4.0  # d is a constant: no gradient through a * a


def test_tensor_detach_shares_the_data():
    t = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert t.detach().data is t.data


# ---- retain_grad and hooks -------------------------------------------------------------------------------
def test_retain_grad_keeps_the_gradient_of_a_non_leaf(engine):
    a = engine.leaf(2.0)
    h = a * 3.0
    kept = (a * 5.0).retain_grad()
    y = h * h + kept
    y.backward()
    assert engine.grad(kept) == 1.0
    assert engine.grad(h) in (None, 0.0)  # not retained: tensors leave None, values leave 0.0
    assert engine.grad(a) == 2 * 3.0 * 6.0 + 5.0


def test_retain_grad_and_hooks_need_a_node_that_requires_grad(engine):
    c = engine.leaf(1.0, requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.retain_grad()
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.register_hook(print)


def test_hook_is_called_once_with_the_complete_gradient(engine):
    a = engine.leaf(2.0)
    h = a * 3.0
    seen = []
    h.register_hook(lambda g: seen.append(float(g)))
    (h * h + h).backward()  # two uses of h: the hook sees the sum, once
    assert seen == [2 * 6.0 + 1.0]
    assert engine.grad(a) == 3.0 * 13.0


def test_hook_return_value_replaces_the_gradient_downstream(engine):
    a = engine.leaf(2.0)
    h = a * 3.0
    h.register_hook(lambda g: g * 10.0)
    h.register_hook(lambda g: None)  # None keeps the gradient as it is
    h.register_hook(lambda g: g + 1.0)  # hooks chain in registration order
    h.retain_grad()
    h.backward()
    assert engine.grad(h) == 11.0  # the retained gradient is the hooked one, as in PyTorch
    assert engine.grad(a) == 33.0


def test_hook_on_a_leaf_changes_what_accumulates_in_its_grad(engine):
    a = engine.leaf(2.0)
    a.register_hook(lambda g: g * -1.0)
    (a * 4.0).backward()
    assert engine.grad(a) == -4.0


def test_removed_hook_is_no_longer_called(engine):
    a = engine.leaf(2.0)
    calls = []
    handle = a.register_hook(lambda g: calls.append(g))
    (a * 1.0).backward()
    handle.remove()
    handle.remove()  # removing twice is harmless
    (a * 1.0).backward()
    assert len(calls) == 1 and engine.grad(a) == 2.0


def test_hook_sees_the_gradient_of_a_whole_tensor_with_its_shape():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    h = x * 2.0
    shapes = []
    h.register_hook(lambda g: shapes.append((g.shape, g.dtype)))
    h.sum().backward()
    assert shapes == [((2, 3), np.float64)]


@pytest.mark.parametrize(
    "hook, error, returned",
    [
        (lambda g: np.zeros(5), ValueError, r"an array of shape \(5,\) and dtype float64"),
        (lambda g: g.astype(np.float32), ValueError, r"an array of shape \(2, 3\) and dtype float32"),
        (lambda g: g.tolist(), TypeError, "returned a list"),
        (lambda g: 1.0, TypeError, "returned a float"),
        (lambda g: Tensor(g), TypeError, "returned a Tensor"),
    ],
    ids=["wrong shape", "wrong dtype", "list", "float", "Tensor"],
)
def test_hook_returning_anything_but_an_array_like_the_gradient_raises_naming_both(hook, error, returned):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    h = x * 2.0
    h.register_hook(hook)
    expected = r"a hook returns None or a numpy array of shape \(2, 3\) and dtype float64"
    with pytest.raises(error, match=f"hook .*{returned}.*; {expected}"):
        h.sum().backward()
    assert x.grad is None


def test_hook_on_a_zero_dimensional_tensor_may_return_a_numpy_scalar():
    x = Tensor(2.0, requires_grad=True)
    x.register_hook(lambda g: g * 3.0)  # numpy arithmetic on a 0-d array gives a numpy scalar
    (x * 1.0).backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == () and float(x.grad) == 3.0


@pytest.mark.parametrize("retained", [False, True], ids=["leaf", "retained non-leaf"])
def test_gradient_returned_by_a_hook_is_copied_so_later_accumulation_leaves_the_callers_array_alone(retained):
    replacement = np.full(3, 5.0)
    x = Tensor(np.ones(3), requires_grad=True)
    node = x * 1.0 if retained else x
    if retained:
        node.retain_grad()
    handle = node.register_hook(lambda g: replacement)
    (node * 1.0).sum().backward(retain_graph=True)
    handle.remove()
    (node * 1.0).sum().backward()
    np.testing.assert_array_equal(replacement, [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(node.grad, [6.0, 6.0, 6.0])


@pytest.mark.parametrize("bad", [[1.0], "1.0", None, True, Value(1.0)], ids=repr)
def test_hook_on_a_value_must_return_none_or_a_real_number(bad):
    a = Value(2.0)
    a.register_hook(lambda g: bad)
    if bad is None:
        (a * 3.0).backward()
        assert a.grad == 3.0
        return
    with pytest.raises(TypeError, match=r"hook .* returned .*; a hook on a Value returns None or a real number"):
        (a * 3.0).backward()


def test_hook_on_a_value_may_return_an_int_or_a_numpy_float_and_grad_stays_a_python_float():
    a, b = Value(2.0), Value(2.0)
    a.register_hook(lambda g: 7)
    b.register_hook(lambda g: np.float64(g * 2))
    (a * 3.0).backward()
    (b * 3.0).backward()
    assert a.grad == 7.0 and type(a.grad) is float
    assert b.grad == 6.0 and type(b.grad) is float


# ---- graph release ---------------------------------------------------------------------------------------
def test_backward_releases_the_graph_and_its_saved_buffers():
    x = Tensor(np.ones((50, 50)), requires_grad=True)
    hidden = (x * 2.0).exp()
    buffer = weakref.ref(hidden.data)
    y = (hidden * x).sum()
    nodes = [n for n in topological_order(y) if not n.is_leaf]
    del hidden
    assert buffer() is not None  # the graph keeps it alive for backward ...
    y.backward()
    for node in nodes:
        assert node._parents == () and node._ctx is None
    del nodes
    assert buffer() is None  # ... and lets go of it afterwards, by reference counting alone (no cycles)


def test_retain_graph_keeps_the_graph_and_its_buffers():
    x = Tensor(np.ones(4), requires_grad=True)
    hidden = (x * 2.0).exp()
    buffer = weakref.ref(hidden.data)
    y = (hidden * x).sum()
    del hidden
    y.backward(retain_graph=True)
    assert y._parents != () and buffer() is not None
    y.backward()
    assert buffer() is None


def test_value_graph_is_released_after_backward():
    a = Value(2.0)
    y = (a * a).tanh() * a
    nodes = [n for n in topological_order(y) if not n.is_leaf]
    y.backward()
    assert all(n._parents == () and n._ctx is None for n in nodes)
    assert a.is_leaf and a.grad != 0.0


def test_graph_built_under_no_grad_holds_no_references_to_its_inputs():
    x = Tensor(np.ones(4), requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert y._parents == () and y._ctx is None


def test_no_grad_in_one_thread_leaves_other_threads_recording():
    import threading

    entered, release = threading.Event(), threading.Event()

    def hold_no_grad():
        with no_grad():
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=hold_no_grad)
    worker.start()
    entered.wait(5)
    try:
        x = Tensor(np.ones(3), requires_grad=True)
        assert (x * 2).requires_grad, "no_grad in another thread switched off recording here"
    finally:
        release.set()
        worker.join()


def test_one_no_grad_instance_can_be_nested():
    guard = no_grad()
    with guard:
        with guard:
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_one_no_grad_instance_entered_in_two_threads_restores_each_threads_own_mode():
    import threading

    guard = no_grad()
    both_inside, first_left = threading.Barrier(2, timeout=5), threading.Barrier(2, timeout=5)
    after, errors = {}, []

    def recording_thread():  # recording before the guard: must record again after it
        try:
            with guard:
                both_inside.wait()
            after["recording"] = is_grad_enabled()
            first_left.wait()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    def no_grad_thread():  # inside another no_grad: must still be inside it after the guard
        try:
            with no_grad():
                with guard:
                    both_inside.wait()
                    first_left.wait()  # leaves the guard after the other thread has left it
                after["inside no_grad"] = is_grad_enabled()
            after["after no_grad"] = is_grad_enabled()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=recording_thread), threading.Thread(target=no_grad_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert after == {"recording": True, "inside no_grad": False, "after no_grad": True}


def test_enable_grad_records_a_graph_inside_no_grad():
    from tinygrad_act.engine.graph import enable_grad

    x = Value(2.0)
    with no_grad():
        with enable_grad():
            y = x * x
        assert not is_grad_enabled()
    y.backward()
    assert x.grad == 4.0


def test_the_engine_imports_nothing_outside_the_engine():
    import ast
    import pathlib

    import tinygrad_act.engine

    for path in pathlib.Path(tinygrad_act.engine.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level in (0, 1), f"{path.name} imports from above the engine: {ast.unparse(node)}"
                assert node.level == 1 or not (node.module or "").startswith("tinygrad_act"), path.name
