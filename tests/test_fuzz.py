"""Differential fuzzer: random programs of 3-6 operations, run by the engine, by numpy and (when it is
installed) by PyTorch, must agree in values and gradients; and the gradients must match central finite
differences (gradcheck) wherever no kink is near. Programs on one number run through Value as well, and programs
whose inputs hold inf and nan must give PyTorch's non-finite values exactly, in both engines.

A program starts from one float64 leaf of a random shape; each step applies an elementwise function, a
binary operation with a new leaf of a broadcastable shape, a reduction over random axes, a matmul, a clip,
a reshape or a transpose. The loss is ``sum(out * P)`` for a fixed random ``P``, so every element's
gradient counts. Domains are kept safe by construction (log and sqrt of ``x^2 + 1/2``, division by leaves
with ``|x| >= 1/2``, exp of a tanh), and the numpy run measures how close each kink (relu, abs, clip,
maximum/minimum, max/min ties) comes: finite differences are only compared away from kinks.

PyTorch is optional, never a dependency: without it the numpy values and the finite differences still
check every program; with it each program is also compared with PyTorch to rtol 1e-10. The directed
examples at the end pin the division and masking conventions to PyTorch's answers, written out, so that
they are checked without PyTorch too (and the table itself is checked against PyTorch when it is there).
"""

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from tinygrad_act import Tensor, Value, maximum, where
from tinygrad_act.engine.gradcheck import gradcheck

torch = None  # PyTorch where it is installed (optional: the finite-difference and numpy comparisons run without it)
pytestmark = pytest.mark.usefixtures("pytorch_if_installed")  # sets it before the first test (conftest.py)

KINK_MARGIN = 1e-3  # finite differences (eps 1e-6) are trusted only this far from a kink
# Closer than this but not on it, the rounding of another summation order (numpy's or PyTorch's pairwise sums)
# may put a value on the other side of a kink: PyTorch's gradient is then compared only when exactly on it.
ROUNDING_MARGIN = 1e-9


# ---- three implementations of the few functions that are not plain operators (+ - * / ** @) ----------------
class MethodOps:
    """The elementwise functions, spelled alike by the engine and PyTorch."""

    def exp(self, x):
        return x.exp()

    def log(self, x):
        return x.log()

    def tanh(self, x):
        return x.tanh()

    def sigmoid(self, x):
        return x.sigmoid()

    def relu(self, x):
        return x.relu()

    def abs(self, x):
        return x.abs()

    def sqrt(self, x):
        return x.sqrt()


class EngineOps(MethodOps):
    def leaf(self, array):
        return Tensor(array.copy(), requires_grad=True)

    def constant(self, array):
        return Tensor(array)

    def project(self, x, projection):
        return (x * self.constant(projection)).sum()

    def maximum(self, a, b):
        return a.maximum(b)

    def minimum(self, a, b):
        return a.minimum(b)

    def clip(self, x, low, high):
        return x.clip(low, high)

    def reduce(self, name, x, axis, keepdims):
        return getattr(x, name)(axis=axis, keepdims=keepdims)

    def transpose(self, x, axes):
        return x.transpose(axes)


class ValueOps(MethodOps):
    """The scalar engine, on programs of one number (shape ()): the steps in VALUE_STEPS."""

    def leaf(self, array):
        return Value(float(array))

    def constant(self, array):
        return float(array)

    def project(self, x, projection):
        return x * float(projection)

    def sqrt(self, x):
        return x**0.5


class NumpyOps:
    """The reference values; it also records how close the program comes to a kink."""

    def __init__(self):
        self.margin = math.inf

    def project(self, x, projection):
        return (x * self.constant(projection)).sum()

    def _near(self, distance):
        if np.size(distance):
            self.margin = min(self.margin, float(np.min(distance)))

    def leaf(self, array):
        return array.copy()

    def constant(self, array):
        return array

    exp, log, tanh, sqrt = np.exp, np.log, np.tanh, np.sqrt

    def sigmoid(self, x):
        return 0.5 * (1.0 + np.tanh(0.5 * x))

    def relu(self, x):
        self._near(np.abs(x))
        return np.maximum(x, 0.0)

    def abs(self, x):
        self._near(np.abs(x))
        return np.abs(x)

    def maximum(self, a, b):
        self._near(np.abs(a - b))
        return np.maximum(a, b)

    def minimum(self, a, b):
        self._near(np.abs(a - b))
        return np.minimum(a, b)

    def clip(self, x, low, high):
        self._near(np.abs(x - low))
        self._near(np.abs(x - high))
        return np.clip(x, low, high)

    def reduce(self, name, x, axis, keepdims):
        out = getattr(np, name)(x, axis=axis, keepdims=True)
        if name in ("max", "min"):  # the kink: the gap between the extreme and the next element of its slice
            axes = range(x.ndim) if axis is None else np.atleast_1d(axis) % x.ndim
            gaps = np.moveaxis(np.abs(x - out), tuple(axes), tuple(range(-len(axes), 0)))
            gaps = np.sort(gaps.reshape(gaps.shape[: x.ndim - len(axes)] + (-1,)), axis=-1)
            self._near(gaps[..., 1:2])
        return out if keepdims else getattr(np, name)(x, axis=axis)

    def transpose(self, x, axes):
        return np.transpose(x, axes)


class TorchOps(MethodOps):
    def leaf(self, array):
        return torch.tensor(array, dtype=torch.float64, requires_grad=True)

    def constant(self, array):
        return torch.tensor(array, dtype=torch.float64)

    def project(self, x, projection):
        return (x * self.constant(projection)).sum()

    def maximum(self, a, b):
        return torch.maximum(a, b)

    def minimum(self, a, b):
        return torch.minimum(a, b)

    def clip(self, x, low, high):
        return torch.clamp(x, low, high)

    def reduce(self, name, x, axis, keepdims):
        dims = tuple(range(x.ndim)) if axis is None else axis
        function = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[name]
        return function(x, dim=dims, keepdim=keepdims)  # amax/amin share ties evenly, like the engine

    def transpose(self, x, axes):
        return x.permute(axes)


# ---- the steps: name -> function(ops, x, leaves, params) -------------------------------------------------
def positive(x):
    return x * x + 0.5


STEPS = {
    "exp": lambda ops, x, leaves, p: ops.exp(ops.tanh(x)),
    "log": lambda ops, x, leaves, p: ops.log(positive(x)),
    "sqrt": lambda ops, x, leaves, p: ops.sqrt(positive(x)),
    "tanh": lambda ops, x, leaves, p: ops.tanh(x),
    "sigmoid": lambda ops, x, leaves, p: ops.sigmoid(x),
    "relu": lambda ops, x, leaves, p: ops.relu(x),
    "abs": lambda ops, x, leaves, p: ops.abs(x),
    "add": lambda ops, x, leaves, p: x + leaves[p["leaf"]],
    "sub": lambda ops, x, leaves, p: leaves[p["leaf"]] - x,
    "mul": lambda ops, x, leaves, p: x * leaves[p["leaf"]],
    "div": lambda ops, x, leaves, p: x / leaves[p["leaf"]],
    "div by a number": lambda ops, x, leaves, p: x / p["number"],
    "number divided": lambda ops, x, leaves, p: p["number"] / positive(x),
    "maximum": lambda ops, x, leaves, p: ops.maximum(x, leaves[p["leaf"]]),
    "minimum": lambda ops, x, leaves, p: ops.minimum(leaves[p["leaf"]], x),
    "integer power": lambda ops, x, leaves, p: x ** p["exponent"],
    "real power": lambda ops, x, leaves, p: positive(x) ** p["exponent"],
    "tensor power": lambda ops, x, leaves, p: positive(x) ** leaves[p["leaf"]],
    "sum": lambda ops, x, leaves, p: ops.reduce("sum", x, p["axis"], p["keepdims"]),
    "mean": lambda ops, x, leaves, p: ops.reduce("mean", x, p["axis"], p["keepdims"]),
    "max": lambda ops, x, leaves, p: ops.reduce("max", x, p["axis"], p["keepdims"]),
    "min": lambda ops, x, leaves, p: ops.reduce("min", x, p["axis"], p["keepdims"]),
    "matmul": lambda ops, x, leaves, p: x @ leaves[p["leaf"]],
    "clip": lambda ops, x, leaves, p: ops.clip(x, p["low"], p["high"]),
    "reshape": lambda ops, x, leaves, p: x.reshape(p["shape"]),
    "transpose": lambda ops, x, leaves, p: ops.transpose(x, p["axes"]),
}
NEEDS_AXES = {"matmul", "transpose"}  # no 0-d input
# The steps Value has (on one number): no reductions, shapes, clip, abs, maximum or minimum.
VALUE_STEPS = {"exp", "log", "sqrt", "tanh", "sigmoid", "relu", "add", "sub", "mul", "div", "div by a number",
               "number divided", "integer power", "real power", "tensor power"}  # fmt: skip


def run(ops, program, leaves):
    """(loss, out): the output of ``program`` on ``leaves`` and the loss sum(out * P) whose gradient is compared."""
    steps, projection = program
    x = leaves[0]
    for name, params in steps:
        x = STEPS[name](ops, x, leaves, params)
    return ops.project(x, projection), x


# ---- program generation ----------------------------------------------------------------------------------
def values(low=-2.0, high=2.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


AWAY_FROM_ZERO = st.one_of(values(-2.0, -0.5), values(0.5, 2.0))


@st.composite
def programs(draw, scalar=False):
    """(arrays of the leaves, (steps, projection P)) with 3-6 steps over shapes of at most 3 axes of side 3;
    ``scalar``: of shape () with the steps Value has (VALUE_STEPS), every leaf one number."""
    shape = () if scalar else draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
    arrays = [draw(hnp.arrays(np.float64, shape, elements=values()))]
    steps = []

    def new_leaf(leaf_shape, elements=None):
        leaf_shape = () if scalar else leaf_shape
        arrays.append(draw(hnp.arrays(np.float64, leaf_shape, elements=values() if elements is None else elements)))
        return len(arrays) - 1

    for _ in range(draw(st.integers(3, 6))):
        names = [n for n in STEPS if (len(shape) or n not in NEEDS_AXES) and (not scalar or n in VALUE_STEPS)]
        name = draw(st.sampled_from(names))
        params = {}
        broadcastable = hnp.broadcastable_shapes(shape, max_dims=3, max_side=3)
        if name in ("add", "sub", "mul", "maximum", "minimum"):
            params["leaf"] = new_leaf(draw(broadcastable))
        elif name == "div":
            params["leaf"] = new_leaf(draw(broadcastable), AWAY_FROM_ZERO)
        elif name == "tensor power":
            params["leaf"] = new_leaf(draw(broadcastable), values(-1.5, 1.5))
        elif name in ("div by a number", "number divided"):
            params["number"] = draw(AWAY_FROM_ZERO)
        elif name == "integer power":
            params["exponent"] = draw(st.sampled_from([2, 3]))
        elif name == "real power":
            params["exponent"] = draw(st.sampled_from([-1.5, -1.0, 0.5, 1.7]))
        elif name in ("sum", "mean", "max", "min"):
            axis, ndim = None, len(shape)
            if ndim:  # None, an int or a non-empty tuple (an empty one reduces nothing in numpy, all in PyTorch)
                axes = st.lists(st.integers(-ndim, ndim - 1), min_size=1, unique_by=lambda a, n=ndim: a % n).map(tuple)
                axis = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1), axes))
            params.update(axis=axis, keepdims=draw(st.booleans()))
        elif name == "matmul":
            params["leaf"] = new_leaf(draw(st.sampled_from([(shape[-1],), (shape[-1], draw(st.integers(1, 3)))])))
        elif name == "clip":
            params.update(low=draw(values(-1.5, -0.1)), high=draw(values(0.1, 1.5)))
        elif name == "reshape":
            params["shape"] = draw(st.sampled_from([shape[::-1], (-1,)]))
        elif name == "transpose":
            params["axes"] = tuple(draw(st.permutations(range(len(shape)))))
        steps.append((name, params))
        shape = STEPS[name](NumpyOps(), np.zeros(shape), arrays, params).shape
    projection = np.random.default_rng(len(steps)).standard_normal(shape)
    return arrays, (steps, projection)


def gradients(ops, program, arrays):
    """(out, the gradient of the loss for each leaf) as computed by ``ops`` (EngineOps or TorchOps)."""
    leaves = [ops.leaf(a) for a in arrays]
    loss, out = run(ops, program, leaves)
    loss.backward()
    return out, [leaf.grad for leaf in leaves]


def assert_close(actual, expected, rtol, what):
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))  # sums may cancel: relative to the largest term
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@settings(max_examples=80, deadline=None)
@given(case=programs())
def test_random_programs_agree_with_numpy_finite_differences_and_pytorch(case):
    arrays, program = case
    reference = NumpyOps()
    _, expected_out = run(reference, program, arrays)
    out, grads = gradients(EngineOps(), program, arrays)
    steps = program[0]
    assert out.shape == expected_out.shape and out.dtype == np.float64
    assert_close(out.data, expected_out, 1e-9, f"values of {steps}")
    for grad, array in zip(grads, arrays):
        assert grad.shape == array.shape and grad.dtype == np.float64

    if reference.margin > KINK_MARGIN:
        scale = 1.0 + float(np.abs(expected_out).max(initial=0.0))  # finite differences lose digits on large losses
        result = gradcheck(
            lambda *leaves: run(EngineOps(), program, leaves)[0],
            [Tensor(a, requires_grad=True) for a in arrays],
            atol=1e-5 * scale,
        )
        assert result.ok, (steps, result)

    if torch is not None:
        torch_out, torch_grads = gradients(TorchOps(), program, arrays)
        assert_close(out.data, torch_out.detach().numpy(), 1e-10, f"values of {steps} against PyTorch")
        if 0 < reference.margin < ROUNDING_MARGIN:
            return
        for i, (grad, torch_grad) in enumerate(zip(grads, torch_grads)):
            assert_close(grad, torch_grad.numpy(), 1e-10, f"gradient of leaf {i} of {steps} against PyTorch")


# ---- Value, and inputs that are not finite ------------------------------------------------------------------
def assert_same(actual, expected, rtol, what):
    """Equal where ``expected`` is not finite (inf with its sign, nan), close (assert_close) where it is."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.where(finite, 0.0, actual), np.where(finite, 0.0, expected), err_msg=what)
    assert_close(np.where(finite, actual, 0.0), np.where(finite, expected, 0.0), rtol, what)


@settings(max_examples=60, deadline=None)
@given(case=programs(scalar=True))
def test_programs_on_one_number_agree_through_value_tensor_numpy_and_pytorch(case):
    arrays, program = case
    reference = NumpyOps()
    _, expected_out = run(reference, program, arrays)
    value_out, value_grads = gradients(ValueOps(), program, arrays)
    tensor_out, tensor_grads = gradients(EngineOps(), program, arrays)
    steps = program[0]
    assert type(value_out.data) is float and all(type(grad) is float for grad in value_grads)
    assert_close(value_out.data, expected_out, 1e-9, f"Value's values of {steps}")
    assert_close(value_out.data, tensor_out.data, 1e-12, f"Value's and Tensor's values of {steps}")
    if 0 < reference.margin < ROUNDING_MARGIN:  # on the brink of a kink: the engines may round to either side
        return
    for i, (value_grad, tensor_grad) in enumerate(zip(value_grads, tensor_grads)):
        assert_close(value_grad, tensor_grad, 1e-12, f"Value's and Tensor's gradient of leaf {i} of {steps}")
    if torch is not None:
        torch_out, torch_grads = gradients(TorchOps(), program, arrays)
        for i, (value_grad, torch_grad) in enumerate(zip(value_grads, torch_grads)):
            assert_close(value_grad, torch_grad.numpy(), 1e-10, f"Value's gradient of leaf {i} of {steps}")


@st.composite
def nonfinite_programs(draw, scalar=False):
    """A program (``programs``) whose leaves hold inf, -inf or nan in some elements (at least one).

    Without max and min over axes: PyTorch has no such reduction that both shares ties evenly and gives the
    losers exactly 0 (amax multiplies, so its losers get nan times 0; max(dim) gives a tie to one element), which
    is the engine's convention (CONVENTIONS below pins it with PyTorch's max).
    """
    arrays, program = draw(programs(scalar=scalar).filter(lambda case: not {"max", "min"} & {n for n, _ in case[1][0]}))
    specials = st.sampled_from([math.inf, -math.inf, math.nan])
    for array in arrays:
        mask = draw(hnp.arrays(bool, array.shape))
        array[mask] = draw(hnp.arrays(np.float64, array.shape, elements=specials))[mask]
    first = arrays[0].reshape(-1)
    if first.size and np.isfinite(arrays[0]).all():
        first[draw(st.integers(0, first.size - 1))] = draw(specials)
    return arrays, program


@settings(max_examples=80, deadline=None)
@given(case=nonfinite_programs())
def test_programs_with_inf_and_nan_inputs_give_pytorchs_values_and_gradients_exactly(case):
    pytest.importorskip("torch")
    arrays, program = case
    steps = program[0]
    with np.errstate(all="ignore"):  # numpy warns about what it computes here; the numbers are the test
        reference = NumpyOps()
        run(reference, program, arrays)
        out, grads = gradients(EngineOps(), program, arrays)
    torch_out, torch_grads = gradients(TorchOps(), program, [a.copy() for a in arrays])
    assert_same(out.data, torch_out.detach().numpy(), 1e-10, f"values of {steps}")
    if not 0 < reference.margin < ROUNDING_MARGIN:
        for i, (grad, torch_grad) in enumerate(zip(grads, torch_grads)):
            assert_same(grad, torch_grad.numpy(), 1e-10, f"gradient of leaf {i} of {steps}")


@settings(max_examples=60, deadline=None)
@given(case=nonfinite_programs(scalar=True))
def test_value_gives_tensors_values_and_gradients_for_inf_and_nan_inputs(case):
    arrays, program = case
    steps = program[0]
    with np.errstate(all="ignore"):
        reference = NumpyOps()
        run(reference, program, arrays)
        tensor_out, tensor_grads = gradients(EngineOps(), program, arrays)
    value_out, value_grads = gradients(ValueOps(), program, arrays)
    assert_same(value_out.data, tensor_out.data, 1e-12, f"values of {steps}")
    if not 0 < reference.margin < ROUNDING_MARGIN:
        for i, (value_grad, tensor_grad) in enumerate(zip(value_grads, tensor_grads)):
            assert_same(value_grad, tensor_grad, 1e-12, f"gradient of leaf {i} of {steps}")


# ---- directed examples: the division and masking conventions, with PyTorch's answers written out ----------
INF, NAN = math.inf, math.nan


def _engine_maximum(x, other):
    return maximum(x, Tensor(np.asarray(other, dtype=np.float64)))


# name: (engine function, PyTorch function, input, incoming gradient, PyTorch's gradient)
CONVENTIONS = {
    "division of tiny numbers, numerator": (
        lambda x: x / Tensor([1e-200]),
        lambda x: x / torch.tensor([1e-200], dtype=torch.float64),
        [1e-200],
        [1.0],
        [1e200],
    ),
    "division of tiny numbers, denominator": (
        lambda y: Tensor([1e-200]) / y,
        lambda y: torch.tensor([1e-200], dtype=torch.float64) / y,
        [1e-200],
        [1.0],
        [-1e200],
    ),
    "division by zero, numerator": (
        lambda x: x / Tensor([0.0, 0.0]),
        lambda x: x / torch.zeros(2, dtype=torch.float64),
        [1.0, 0.0],
        [1.0, 1.0],
        [INF, INF],
    ),
    "division by zero, denominator": (
        lambda y: Tensor([1.0, 0.0]) / y,
        lambda y: torch.tensor([1.0, 0.0], dtype=torch.float64) / y,
        [0.0, 0.0],
        [1.0, 1.0],
        [-INF, NAN],
    ),
    "relu below zero, inf incoming": (
        lambda x: x.relu(),
        lambda x: x.relu(),
        [-1.0, 2.0],
        [INF, INF],
        [0.0, INF],
    ),
    "clip below and above, inf incoming": (
        lambda x: x.clip(-1.0, 1.0),
        lambda x: torch.clamp(x, -1.0, 1.0),
        [-2.0, 0.5, 2.0],
        [INF, INF, INF],
        [0.0, INF, 0.0],
    ),
    "clip, nan incoming": (
        lambda x: x.clip(-1.0, 1.0),
        lambda x: torch.clamp(x, -1.0, 1.0),
        [-2.0, 0.5, 2.0],
        [NAN, NAN, NAN],
        [0.0, NAN, 0.0],
    ),
    "maximum loser, -inf incoming": (
        lambda x: _engine_maximum(x, [0.0, 0.0]),
        lambda x: torch.maximum(x, torch.zeros(2, dtype=torch.float64)),
        [-1.0, 2.0],
        [-INF, -INF],
        [0.0, -INF],
    ),
    "minimum loser, nan incoming": (
        lambda x: x.minimum(Tensor([0.0, 0.0])),
        lambda x: torch.minimum(x, torch.zeros(2, dtype=torch.float64)),
        [1.0, -2.0],
        [NAN, NAN],
        [0.0, NAN],
    ),
    "max loser, inf incoming (PyTorch's max, whose losers get 0; its amax gives nan)": (
        lambda x: x.max(axis=0),
        lambda x: x.max(dim=0).values,
        [[-1.0, 3.0], [2.0, 1.0]],
        [INF, INF],
        [[0.0, INF], [INF, 0.0]],
    ),
    "where's other branch, inf incoming": (
        lambda x: where([True, False], x, 0.0),
        lambda x: torch.where(torch.tensor([True, False]), x, 0.0),
        [1.0, 2.0],
        [INF, INF],
        [INF, 0.0],
    ),
}


@pytest.mark.parametrize("name", CONVENTIONS)
def test_division_and_masking_conventions_give_pytorchs_gradients(name):
    engine_function, torch_function, x0, incoming, expected = CONVENTIONS[name]
    x = Tensor(np.array(x0), requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # the forward warns about 1/0 as numpy does
        y = engine_function(x)
    y.backward(np.array(incoming))
    np.testing.assert_array_equal(x.grad, expected)
    if torch is not None:  # the written-out answers are PyTorch's
        t = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        torch_function(t).backward(torch.tensor(incoming, dtype=torch.float64))
        np.testing.assert_array_equal(t.grad.numpy(), expected)


def test_division_rounds_once_like_numpy_and_pytorch():
    assert (Tensor(0.7) / Tensor(0.1)).item() == 0.7 / 0.1 == 6.999999999999999
    if torch is not None:
        assert (torch.tensor(0.7, dtype=torch.float64) / 0.1).item() == 0.7 / 0.1
