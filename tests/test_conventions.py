"""The engine's conventions, once, for both engines (issue 18, item 8): a hook keeps its argument, an interrupted
walk leaves nothing behind, Value and Tensor agree with each other and with PyTorch where the numbers are not
finite, bool and complex tensors never require gradients, and every node names its op."""

import math
import sys

import numpy as np
import pytest

from tinygrad_act import Tensor, Value
from tinygrad_act.engine import extension, fused, graph
from tinygrad_act.engine import scalar as scalar_module
from tinygrad_act.engine import tensor as tensor_module
from tinygrad_act.engine.grad_mode import structure_version
from tinygrad_act.engine.graph import Node

INF, NAN = math.inf, math.nan


# ---- a hook's argument is the hook's ---------------------------------------------------------------------------
@pytest.mark.parametrize("retained", [False, True], ids=["leaf", "retained non-leaf"])
def test_a_hooks_argument_is_never_written_by_a_later_backward(retained):
    x = Tensor(np.ones(3), requires_grad=True)
    node = x * 1.0 if retained else x
    if retained:
        node.retain_grad()
    seen = []
    node.register_hook(seen.append)  # keeps every gradient it is given, as a probe does
    (node * 2.0).sum().backward(retain_graph=True)
    (node * 2.0).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 2.0, 2.0])  # not the 4.0 of the accumulated .grad
    np.testing.assert_array_equal(seen[1], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(node.grad, [4.0, 4.0, 4.0])


# ---- an interrupt anywhere in the walk -------------------------------------------------------------------------
def _value_leaves():
    return Value(0.5), Value(-1.5)


def _tensor_leaves():
    return Tensor(np.array([0.5, 0.25]), requires_grad=True), Tensor(np.array([-1.5, 2.0]), requires_grad=True)


def _interrupt_at(line: int, codes: set):
    """A trace function that raises KeyboardInterrupt at the ``line``-th line run inside ``codes``."""
    seen = [0]

    def local(frame, event, arg):
        if event == "line":
            seen[0] += 1
            if seen[0] == line:
                raise KeyboardInterrupt
        return local

    return lambda frame, event, arg: local if frame.f_code in codes else None


@pytest.mark.parametrize("leaves", [_value_leaves, _tensor_leaves], ids=["value", "tensor"])
def test_an_interrupt_at_any_line_of_the_walk_leaves_nothing_that_changes_the_next_backward(leaves):
    a, b = leaves()
    h = a * b
    root = ((h.tanh() + h * a - b.exp()) * h + a * 3.0).sum() if isinstance(a, Tensor) else (h.tanh() + h * a) * h
    root.backward(retain_graph=True)
    expected = [np.copy(a.grad), np.copy(b.grad)]
    walk = getattr(type(a), "_walk", graph.backward)
    codes = {graph.topological_order.__code__, graph.backward.__code__, walk.__code__}
    line, interrupted = 1, True
    previous = sys.gettrace()  # coverage's tracer, under pytest --cov: put back, or no later test is measured
    while interrupted:  # every line of topological_order and of the walk, until a backward runs through
        a.zero_grad(), b.zero_grad()
        sys.settrace(_interrupt_at(line, codes))
        try:
            root.backward(retain_graph=True)
            interrupted = False
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(previous)
        a.zero_grad(), b.zero_grad()
        root.backward(retain_graph=True)
        assert np.array_equal(a.grad, expected[0]) and np.array_equal(b.grad, expected[1]), f"interrupted at {line}"
        line += 1
    assert line > 20  # the walk was interrupted at many places


# ---- where the numbers are not finite: Value, Tensor and PyTorch agree ------------------------------------------
# name: (function of the leaves, leaves, incoming gradient, value, gradients (PyTorch 2.13's), warns in numpy)
CONVENTIONS = {
    "relu(nan)": (lambda x: x.relu(), [NAN], 1.0, NAN, [1.0], False),
    "relu(nan), inf incoming": (lambda x: x.relu(), [NAN], INF, NAN, [INF], False),
    "0 * log x at x = 0": (lambda x: 0 * x.log(), [0.0], 1.0, NAN, [NAN], True),
    "c * log x at c = x = 0": (lambda c, x: c * x.log(), [0.0, 0.0], 1.0, NAN, [-INF, NAN], True),
    "x ** y at x = y = 0": (lambda x, y: x**y, [0.0, 0.0], 1.0, 1.0, [0.0, 0.0], False),
    "x ** y at x = y = 0, inf incoming": (lambda x, y: x**y, [0.0, 0.0], INF, 1.0, [0.0, NAN], False),
    "x ** y at x = 0, y = 0.5": (lambda x, y: x**y, [0.0, 0.5], 1.0, 0.0, [INF, 0.0], False),
    "x ** y at x = 0, y = -1": (lambda x, y: x**y, [0.0, -1.0], 1.0, INF, [-INF, -INF], True),
    "(-2) ** p at p = 2": (lambda p: (-2.0) ** p, [2.0], 1.0, 4.0, [NAN], True),
    "(-2) ** p at p = 0.5": (lambda p: (-2.0) ** p, [0.5], 1.0, NAN, [NAN], True),
    "x ** p at x = -2, p = 2": (lambda x, p: x**p, [-2.0, 2.0], 1.0, 4.0, [-4.0, NAN], True),
    "x ** p at x = -2, p = 0": (lambda x, p: x**p, [-2.0, 0.0], 1.0, 1.0, [0.0, NAN], True),
}


def _value_run(function, xs, seed):
    leaves = [Value(x) for x in xs]
    out = function(*leaves)
    out.backward(seed)
    return [out.data, *(leaf.grad for leaf in leaves)]


def _tensor_run(function, xs, seed, warns):
    leaves = [Tensor(np.float64(x), requires_grad=True) for x in xs]
    with np.errstate(all="ignore" if warns else "raise"):  # numpy's forward warnings; the backward never warns
        out = function(*leaves)
    out.backward(np.float64(seed))
    assert out.dtype == np.float64 and all(leaf.grad.dtype == np.float64 for leaf in leaves)
    return [float(out.data), *(float(leaf.grad) for leaf in leaves)]


@pytest.mark.parametrize("name", CONVENTIONS)
def test_value_and_tensor_give_pytorchs_value_and_gradients_where_numbers_are_not_finite(name):
    function, xs, seed, value, grads, warns = CONVENTIONS[name]
    expected = [value, *grads]
    assert np.array_equal(_value_run(function, xs, seed), expected, equal_nan=True)
    assert np.array_equal(_tensor_run(function, xs, seed, warns), expected, equal_nan=True)


@pytest.mark.parametrize("name", CONVENTIONS)
def test_the_conventions_table_is_pytorchs(name):
    torch = pytest.importorskip("torch")
    function, xs, seed, value, grads, _ = CONVENTIONS[name]
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = function(*leaves)
    out.backward(torch.tensor(seed, dtype=torch.float64))
    computed = [out.item(), *(leaf.grad.item() for leaf in leaves)]
    assert np.array_equal(computed, [value, *grads], equal_nan=True)


# ---- bool and complex never require gradients ------------------------------------------------------------------
def test_bool_and_integer_tensors_cannot_be_made_to_require_grad_after_creation_either():
    for data in (np.array([True, False]), np.array([1, 2])):
        t = Tensor(data, dtype=data.dtype)
        with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
            t.requires_grad = True
        assert not t.requires_grad
        with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
            Tensor(data, dtype=data.dtype, requires_grad=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda t: Tensor(np.array([1 + 2j])),
        lambda t: Tensor([1.0, 2.0], dtype=np.complex128),
        lambda t: t * np.array([1j, 2j]),
        lambda t: t + 1j,
        lambda t: t * Tensor(np.array([1.0, 2.0])).data.astype(np.complex64),
        lambda t: (t * 2.0).backward(np.array([1 + 1j, 1.0])),
    ],
    ids=["complex data", "complex dtype", "times a complex array", "plus a complex number", "complex64", "gradient"],
)
def test_complex_values_are_refused_never_cast_to_their_real_part(make):
    t = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match="complex values are not supported"):
        make(t)
    assert t.grad is None


# ---- requires_grad and the structure version -------------------------------------------------------------------
@pytest.mark.parametrize("leaf", [lambda: Value(1.0), lambda: Tensor(np.ones(2), requires_grad=True)])
def test_setting_requires_grad_changes_the_structure_version_only_when_it_changes(leaf):
    node = leaf()
    before = structure_version()
    node.requires_grad = True  # already
    assert structure_version() == before
    node.requires_grad = False
    assert structure_version() == before + 1 and not node.requires_grad
    y = node * 2.0
    assert not y.requires_grad  # a frozen leaf takes no part in the graph
    node.requires_grad = True
    y = node * 2.0
    with pytest.raises(RuntimeError, match="only on a leaf"):
        y.requires_grad = False


# ---- every node names its op; the op's forward is the op ---------------------------------------------------------
def _value_graph():
    a, b = Value(0.7), Value(1.3)
    return [a + b, a + 2.0, a * b, a * 3.0, a / b, a / 4.0, a**b, a**2.0, a.exp(), a.log(), a.tanh(), a.gelu()]


def _tensor_graph():
    rng = np.random.default_rng(0)
    a, b = (Tensor(rng.uniform(0.5, 1.5, (2, 3)), requires_grad=True) for _ in range(2))
    w = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    return [
        a + b, a + 2.0, a * b, a * 3.0, a / b, a / 4.0, a**b, a**2.0, a @ w, tensor_module.linear(a, w),
        tensor_module.linear(a, w, w[0]), a.exp(), a.log(), a.sqrt(), a.abs(), a.tanh(), a.softplus(beta=2.0),
        a.clip(0.6, 1.2), a.maximum(b), a.minimum(b), a.sum(axis=0), a.max(axis=1), a.min(), a.log_softmax(),
        a.softmax(axis=0), a.reshape(3, 2), a.T, a[1, ::2], a[[0, 0, 1]], tensor_module.concatenate([a, b]),
        tensor_module.where(a.data > 1, a, b),
    ]  # fmt: skip


def _ops(*modules) -> set:
    return {value for module in modules for value in vars(module).values() if isinstance(value, graph.Op)}


@pytest.mark.parametrize(
    "build, ops",
    [(_value_graph, _ops(scalar_module)), (_tensor_graph, _ops(tensor_module, fused))],
    ids=["value", "tensor"],
)
def test_every_node_records_a_named_op_whose_forward_recomputes_its_data(build, ops):
    names = set()
    for node in build():
        op = node._op
        assert isinstance(op, graph.Op) and op.name and node.requires_grad
        names.add(op.name)
        recomputed = op.forward(node._ctx, *[p.data for p in node._parents])
        assert np.array_equal(recomputed, node.data), op.name
    assert names == {op.name for op in ops}  # every op of the engine, each named once
    assert len(names) == len(ops)


# ---- the extension point ---------------------------------------------------------------------------------------
def test_the_engine_adds_methods_only_through_its_extension_point_and_never_shadows_its_own():
    assert not extension.add_method("exp", lambda self: None)  # Tensor's and Value's own
    assert not extension.add_method("_hidden", lambda self: None)
    assert extension.add_method("twice", lambda self: self * 2.0)
    try:
        assert Value(1.5).twice().data == 3.0 and Tensor(np.ones(2)).twice().data.tolist() == [2.0, 2.0]
    finally:
        extension.remove_method("twice")
    assert not hasattr(Node, "twice")
    extension.remove_method("tanh")  # not one it installed: left alone
    assert Value(0.0).tanh().data == 0.0


def test_nn_sets_no_attribute_on_the_engines_classes():
    import ast
    import pathlib

    import tinygrad_act.nn

    for path in pathlib.Path(tinygrad_act.nn.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("setattr", "delattr"):
                target = ast.unparse(node.args[0])
                assert target not in ("Node", "Value", "Tensor"), f"{path.name}: {ast.unparse(node)}"


# ---- one definition each -------------------------------------------------------------------------------------
def test_the_registrys_sigmoid_tanh_and_relu_are_the_engines_own_records():
    from tinygrad_act import activations
    from tinygrad_act.engine import kernels

    for name, record in (("sigmoid", kernels.SIGMOID), ("tanh", kernels.TANH), ("relu", kernels.RELU)):
        activation = activations.get(name)
        assert activation.engine is record
        x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
        assert activation(x)._ctx is getattr(x, name)()._ctx is record
        assert activation(Value(0.3)).data == getattr(Value(0.3), name)().data


def _counted(optimizer_class, calls):
    update = optimizer_class.update

    def counting(self, data, *rest):
        calls.append(data.size)
        return update(self, data, *rest)

    return counting


@pytest.mark.parametrize("name", ["sgd:momentum=0.9", "adam"])
def test_the_flat_update_after_a_replay_is_the_optimizers_one_update_function(monkeypatch, name):
    from tinygrad_act.nn import MLP, Step, optim

    model = MLP(4, [5, 5], 3, activation="tanh", seed=0)
    optimizer = optim.get(name, model.parameters(), lr=0.01)
    step, calls = Step(model, optimizer), []
    monkeypatch.setattr(type(optimizer), "update", _counted(type(optimizer), calls))
    rng = np.random.default_rng(0)
    for _ in range(3):
        step(rng.standard_normal((6, 4)), rng.integers(0, 3, 6))
        step.update()
    # the recorded step per parameter (6 of them), the two replayed ones once over all 73 numbers
    assert calls == [20, 5, 25, 5, 15, 3, 73, 73]
    assert not hasattr(type(optimizer), "update_flat")
