"""Tensor: every operation's gradient matches central finite differences (float64), plus the dtype policy,
the array-like surface, broadcasting, indexing and numerical stability.

Inputs near a kink or a tie (relu, abs, max/min, maximum/minimum, clip) are drawn a fixed margin away from
it, so that every test states an exact property rather than a flaky one.
"""

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tinygrad_act import Tensor, activations, concatenate, maximum, minimum, stack, where
from tinygrad_act.engine.gradcheck import gradcheck
from tinygrad_act.engine.tensor import linear

F64 = np.float64


# ---- strategies ------------------------------------------------------------------------------------------
def floats(low=-2.0, high=2.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from_zero(margin=0.05, high=3.0):
    """|x| in [margin, high]: finite differences never straddle the kink of relu or abs."""
    return st.one_of(floats(-high, -margin), floats(margin, high))


def lattice(low_offset, high_offset):
    """0.5 k + u with u in [low_offset, high_offset]: two lattices with disjoint offsets never come closer
    than the gap between their offsets, and a lattice with offsets in (0, 0.5) never hits a multiple of 0.5."""
    return st.builds(lambda k, u: 0.5 * k + u, st.integers(-6, 6), floats(low_offset, high_offset))


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def arrays(shape, elements=None):
    return hnp.arrays(F64, shape, elements=elements if elements is not None else floats())


@st.composite
def distinct_arrays(draw, shape_strategy=nonscalar_shapes):
    """Arrays whose elements are pairwise at least 0.15 apart (no ties for max/min), in random order."""
    shape = draw(shape_strategy)
    size = math.prod(shape)
    order = np.array(draw(st.permutations(range(size))), dtype=F64)
    jitter = draw(hnp.arrays(F64, size, elements=floats(0.0, 0.1)))
    return ((order - size / 2) * 0.25 + jitter).reshape(shape)


@st.composite
def axis_and_keepdims(draw, ndim):
    """None, an int (negative allowed) or a tuple of distinct axes; and keepdims."""
    choices = [st.none()]
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
        choices.append(
            st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(
                lambda axes: tuple(a - ndim if a % 2 else a for a in axes)  # mix positive and negative forms
            )
        )
    return draw(st.one_of(*choices)), draw(st.booleans())


def leaf(array):
    return Tensor(np.array(array, dtype=F64), requires_grad=True)


def assert_gradcheck(fn, *arrays_, **options):
    result = gradcheck(fn, [leaf(a) for a in arrays_], **options)
    assert result.ok, result


# ---- elementwise arithmetic with broadcasting ------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, np.add, floats()),
    "sub": (lambda a, b: a - b, np.subtract, floats()),
    "mul": (lambda a, b: a * b, np.multiply, floats()),
    "div": (lambda a, b: a / b, np.divide, away_from_zero(0.5)),
    "pow": (lambda a, b: a**b, np.power, floats(0.2, 3.0)),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), pair=broadcast_pairs)
def test_binary_op_gradient_matches_finite_differences_under_broadcasting(name, data, pair):
    op, reference, elements = BINARY[name]
    shape_a, shape_b = pair.input_shapes
    a = data.draw(arrays(shape_a, floats(0.2, 3.0) if name == "pow" else floats()))
    b = data.draw(arrays(shape_b, elements))
    out = op(leaf(a), leaf(b))
    assert out.shape == pair.result_shape
    np.testing.assert_allclose(out.data, reference(a, b), rtol=1e-12, atol=1e-300)
    assert_gradcheck(op, a, b)


NUMBER_OPS = {
    "tensor + number": (lambda x, c: x + c, floats(), floats()),
    "number + tensor": (lambda x, c: c + x, floats(), floats()),
    "tensor - number": (lambda x, c: x - c, floats(), floats()),
    "number - tensor": (lambda x, c: c - x, floats(), floats()),
    "tensor * number": (lambda x, c: x * c, floats(), floats()),
    "number * tensor": (lambda x, c: c * x, floats(), floats()),
    "tensor / number": (lambda x, c: x / c, floats(), away_from_zero(0.5)),
    "number / tensor": (lambda x, c: c / x, away_from_zero(0.5), floats()),
    "tensor ** number": (lambda x, c: x**c, floats(0.2, 3.0), floats(-3.0, 3.0)),
    "number ** tensor": (lambda x, c: c**x, floats(), floats(0.2, 3.0)),
}


@pytest.mark.parametrize("name", NUMBER_OPS)
@given(data=st.data(), shape=shapes)
def test_op_with_python_number_on_either_side_matches_numpy_and_finite_differences(name, data, shape):
    op, x_elements, c_elements = NUMBER_OPS[name]
    x = data.draw(arrays(shape, x_elements))
    c = data.draw(c_elements)
    out = op(leaf(x), c)
    np.testing.assert_allclose(out.data, op(x, c), rtol=1e-12, atol=1e-300)
    assert_gradcheck(lambda t: op(t, c), x)


@given(data=st.data(), shape=shapes, exponent=st.integers(-3, 4))
def test_integer_power_of_any_sign_base_matches_finite_differences(data, shape, exponent):
    x = data.draw(arrays(shape, away_from_zero(0.3, 2.0)))
    np.testing.assert_allclose((leaf(x) ** exponent).data, x ** float(exponent), rtol=1e-12)
    assert_gradcheck(lambda t: t**exponent, x)


UNARY = {
    "neg": (lambda t: -t, lambda x: -x, floats()),
    "exp": (lambda t: t.exp(), np.exp, floats(-3.0, 3.0)),
    "log": (lambda t: t.log(), np.log, floats(0.1, 5.0)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, floats(0.1, 5.0)),
    "abs": (lambda t: t.abs(), np.abs, away_from_zero()),
    "tanh": (lambda t: t.tanh(), np.tanh, floats(-4.0, 4.0)),
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), floats(-6.0, 6.0)),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0.0), away_from_zero()),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data(), shape=shapes)
def test_unary_op_matches_numpy_and_finite_differences(name, data, shape):
    op, reference, elements = UNARY[name]
    x = data.draw(arrays(shape, elements))
    np.testing.assert_allclose(op(leaf(x)).data, reference(x), rtol=1e-12, atol=1e-300)
    assert_gradcheck(op, x)


@pytest.mark.parametrize("name", activations.names())
def test_every_registered_activation_on_tensor_matches_its_numpy_forward_and_derivative(name):
    activation = activations.get(name)
    x = np.linspace(-4.0, 4.0, 42).reshape(2, 3, 7)  # the activations' own tests cover the math; this, the wiring
    t = leaf(x)
    out = getattr(t, name)(**activation.params)  # a method, parameters by keyword
    np.testing.assert_allclose(out.data, activation.forward(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(activation(leaf(x)).data, out.data, rtol=1e-12, atol=1e-15)
    out.backward(np.ones(x.shape))
    np.testing.assert_allclose(t.grad, activation.derivative(x), rtol=1e-9, atol=1e-12)
    t32 = Tensor(x.astype(np.float32), requires_grad=True)
    out32 = getattr(t32, name)()
    out32.backward(np.ones(x.shape, np.float32))
    assert out32.dtype == np.float32 and t32.grad.dtype == np.float32


def test_activation_parameters_reach_the_tensor_method():
    t = leaf([-2.0, 3.0])
    out = t.leaky_relu(alpha=0.2)
    out.sum().backward()
    np.testing.assert_allclose(out.data, [-0.4, 3.0])
    np.testing.assert_allclose(t.grad, [0.2, 1.0])


@given(data=st.data(), shapes3=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
def test_where_routes_the_gradient_by_a_broadcast_mask(data, shapes3):
    mask_shape, shape_a, shape_b = shapes3.input_shapes
    mask = data.draw(hnp.arrays(bool, mask_shape))
    a, b = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    np.testing.assert_array_equal(where(mask, leaf(a), leaf(b)).data, np.where(mask, a, b))
    assert_gradcheck(lambda s, t: where(mask, s, t), a, b)


@pytest.mark.parametrize("function", [maximum, minimum], ids=["maximum", "minimum"])
@given(data=st.data(), pair=broadcast_pairs)
def test_maximum_minimum_gradient_matches_finite_differences_away_from_ties(function, data, pair):
    a = data.draw(arrays(pair.input_shapes[0], lattice(0.1, 0.2)))
    b = data.draw(arrays(pair.input_shapes[1], lattice(0.3, 0.4)))  # |a - b| >= 0.1 everywhere
    reference = np.maximum if function is maximum else np.minimum
    np.testing.assert_array_equal(function(leaf(a), leaf(b)).data, reference(a, b))
    assert_gradcheck(function, a, b)
    assert_gradcheck(lambda t: t.maximum(0.0) if function is maximum else t.minimum(0.0), a)


def test_maximum_splits_the_gradient_evenly_at_ties():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 5.0, 0.0])
    maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])


@given(
    data=st.data(),
    shape=shapes,
    low=st.one_of(st.none(), st.integers(-4, 0)),
    high=st.one_of(st.none(), st.integers(0, 4)),
)
def test_clip_passes_the_gradient_inside_the_bounds_only(data, shape, low, high):
    x = data.draw(arrays(shape, lattice(0.1, 0.4)))  # never within 0.1 of a bound (multiples of 0.5)
    low = None if low is None else 0.5 * low
    high = None if high is None else 0.5 * high
    if low is None and high is None:
        high = 1.0
    np.testing.assert_array_equal(leaf(x).clip(low, high).data, np.clip(x, low, high))
    assert_gradcheck(lambda t: t.clip(low, high), x)
    t = leaf(x)
    t.clip(low, high).sum().backward()
    inside = (x >= (-np.inf if low is None else low)) & (x <= (np.inf if high is None else high))
    np.testing.assert_array_equal(t.grad, inside.astype(F64))


# ---- reductions ------------------------------------------------------------------------------------------
def numpy_reduction(name):
    return {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[name]


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@given(data=st.data(), x=distinct_arrays(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
def test_reduction_gradient_matches_finite_differences_for_drawn_axis_and_keepdims(name, data, x):
    axis, keepdims = data.draw(axis_and_keepdims(x.ndim))
    op = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    np.testing.assert_allclose(op(leaf(x)).data, numpy_reduction(name)(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    assert_gradcheck(op, x)


def every_axis_spec(ndim):
    specs = [None, *range(-ndim, ndim)]
    for mask in range(1, 2**ndim):
        axes = tuple(a for a in range(ndim) if mask >> a & 1)
        specs.append(axes)
        specs.append(tuple(a - ndim for a in axes))  # the same axes, written negatively
    return specs


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradient_matches_finite_differences_for_every_axis_combination(name, keepdims):
    x = np.random.default_rng(7).permutation(24).reshape(2, 3, 4) * 0.3 - 3.0  # distinct: no ties
    for axis in every_axis_spec(3):
        op = lambda t, axis=axis: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
        out = op(leaf(x))
        expected = numpy_reduction(name)(x, axis=axis, keepdims=keepdims)
        assert out.shape == expected.shape, axis
        np.testing.assert_allclose(out.data, expected, rtol=1e-12)
        result = gradcheck(op, leaf(x))
        assert result.ok, (axis, result)


def test_max_and_min_share_the_gradient_evenly_between_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = leaf([4.0, -1.0, -1.0])
    y.min().backward()
    np.testing.assert_array_equal(y.grad, [0.0, 0.5, 0.5])


def test_mean_accepts_numpy_integer_axes_like_sum():
    x = leaf(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(x.mean(axis=np.int64(1)).data, [1.0, 4.0])
    np.testing.assert_allclose(x.mean(axis=(np.int64(0),)).data, [1.5, 2.5, 3.5])


# ---- matmul ----------------------------------------------------------------------------------------------
@given(data=st.data(), shapes_=hnp.mutually_broadcastable_shapes(signature="(m?,n),(n,p?)->(m?,p?)", max_side=3))
def test_matmul_gradient_matches_finite_differences_for_1d_2d_and_batched_operands(data, shapes_):
    shape_a, shape_b = shapes_.input_shapes
    a, b = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    out = leaf(a) @ leaf(b)
    assert out.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(out.data, a @ b, rtol=1e-12, atol=1e-12)
    assert_gradcheck(lambda s, t: s @ t, a, b)


def test_power_zero_has_zero_gradient_everywhere_including_at_zero():
    t = leaf([0.0, -1.5, 2.0])
    out = t**0
    np.testing.assert_array_equal(out.data, [1.0, 1.0, 1.0])
    out.sum().backward()
    np.testing.assert_array_equal(t.grad, [0.0, 0.0, 0.0])


def test_matmul_with_an_ndarray_on_either_side_differentiates_the_tensor():
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    assert_gradcheck(lambda t: t @ w, a)
    assert_gradcheck(lambda t: a @ t, w)


# ---- shape operations ------------------------------------------------------------------------------------
@given(data=st.data(), x=arrays(shapes))
def test_reshape_by_tuple_or_ints_matches_finite_differences(data, x):
    size = x.size
    target = data.draw(st.sampled_from([(size,), (-1,), x.shape[::-1], (1, size), (size, 1, 1), ()]))
    if target == () and size != 1:
        target = (size,)
    np.testing.assert_array_equal(leaf(x).reshape(target).data, x.reshape(target))
    np.testing.assert_array_equal(leaf(x).reshape(*target).data, x.reshape(target))
    assert_gradcheck(lambda t: t.reshape(target), x)
    assert_gradcheck(lambda t: t.reshape(*target), x)


@given(data=st.data(), x=arrays(shapes))
def test_transpose_with_any_permutation_including_negative_axes_matches_finite_differences(data, x):
    ndim = x.ndim
    order = data.draw(st.permutations(range(ndim)))
    signs = data.draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    axes = tuple(a - ndim if negative else a for a, negative in zip(order, signs))
    np.testing.assert_array_equal(leaf(x).transpose(axes).data, np.transpose(x, axes))
    np.testing.assert_array_equal(leaf(x).transpose(*axes).data, np.transpose(x, axes))
    assert_gradcheck(lambda t: t.transpose(axes), x)
    assert_gradcheck(lambda t: t.T, x)


@given(data=st.data(), x=arrays(nonscalar_shapes))
def test_basic_indexing_and_slicing_gradient_matches_finite_differences(data, x):
    index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True))
    np.testing.assert_array_equal(leaf(x)[index].data, x[index])
    assert_gradcheck(lambda t: t[index], x)


@given(data=st.data(), x=arrays(nonscalar_shapes))
def test_fancy_indexing_with_repeated_indices_accumulates_the_gradient(data, x):
    index = data.draw(hnp.integer_array_indices(x.shape, result_shape=hnp.array_shapes(max_dims=2, max_side=5)))
    np.testing.assert_array_equal(leaf(x)[index].data, x[index])
    assert_gradcheck(lambda t: t[index], x)
    t = leaf(x)
    t[index].sum().backward()
    counts = np.zeros(x.shape)
    np.add.at(counts, index, 1.0)
    np.testing.assert_array_equal(t.grad, counts)


@given(data=st.data(), x=arrays(nonscalar_shapes))
def test_boolean_mask_and_mixed_indexing_gradient_matches_finite_differences(data, x):
    mask = data.draw(hnp.arrays(bool, x.shape))
    np.testing.assert_array_equal(leaf(x)[mask].data, x[mask])
    assert_gradcheck(lambda t: t[mask], x)
    rows = data.draw(hnp.arrays(np.int64, 3, elements=st.integers(-x.shape[0], x.shape[0] - 1)))
    np.testing.assert_array_equal(leaf(x)[rows, ...].data, x[rows, ...])
    assert_gradcheck(lambda t: t[rows, ...], x)


def test_indexing_with_repeated_integers_sums_the_incoming_gradients():
    x = leaf([10.0, 20.0, 30.0])
    x[[0, 0, 2, 0]].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [7.0, 0.0, 3.0])


@st.composite
def joinable(draw, along_new_axis):
    """1-3 arrays that can be concatenated (or stacked) along a drawn axis, and that axis."""
    base = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    count = draw(st.integers(1, 3))
    ndim = len(base) + (1 if along_new_axis else 0)
    axis = draw(st.integers(-ndim, ndim - 1))
    parts = []
    for _ in range(count):
        shape = list(base)
        if not along_new_axis:
            shape[axis] = draw(st.integers(1, 3))
        parts.append(draw(arrays(tuple(shape))))
    return parts, axis


@given(case=joinable(along_new_axis=False))
def test_concatenate_splits_the_gradient_back_to_each_input(case):
    parts, axis = case
    np.testing.assert_array_equal(concatenate([leaf(p) for p in parts], axis=axis).data, np.concatenate(parts, axis))
    assert_gradcheck(lambda *ts: concatenate(ts, axis=axis), *parts)


@given(case=joinable(along_new_axis=True))
def test_stack_splits_the_gradient_back_to_each_input(case):
    parts, axis = case
    np.testing.assert_array_equal(stack([leaf(p) for p in parts], axis=axis).data, np.stack(parts, axis))
    assert_gradcheck(lambda *ts: stack(ts, axis=axis), *parts)


# ---- softmax ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
@given(data=st.data(), x=arrays(nonscalar_shapes, floats(-5.0, 5.0)))
def test_softmax_family_gradient_matches_finite_differences_along_any_axis(name, data, x):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    shifted = x - x.max(axis=axis, keepdims=True)
    expected_log = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    expected = expected_log if name == "log_softmax" else np.exp(expected_log)
    np.testing.assert_allclose(getattr(leaf(x), name)(axis=axis).data, expected, rtol=1e-12, atol=1e-15)
    assert_gradcheck(lambda t: getattr(t, name)(axis=axis), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(x=arrays(hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), floats(-1e4, 1e4)))
def test_softmax_family_is_stable_for_logits_of_magnitude_1e4(dtype, x):
    t = Tensor(x.astype(dtype), requires_grad=True)
    log_probs = t.log_softmax(axis=1)
    probs = t.softmax(axis=1)
    assert np.all(np.isfinite(log_probs.data)) and np.all(log_probs.data <= 0)
    np.testing.assert_allclose(probs.data.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.exp(log_probs.data), probs.data, atol=1e-6)
    (log_probs.sum() + probs.sum()).backward()
    assert t.grad.dtype == dtype and np.all(np.isfinite(t.grad))
    if dtype is np.float64:
        result = gradcheck(lambda u: u.log_softmax(axis=1), Tensor(x, requires_grad=True), eps=1e-4, atol=1e-4)
        assert result.ok, result


# ---- dtype policy ----------------------------------------------------------------------------------------
def positive(shape, dtype, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape).astype(dtype)


# Each op takes two tensors a (2, 3) and b (3,) holding positive values.
EVERY_OP = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "matmul": lambda a, b: a @ b,
    "neg": lambda a, b: -a,
    "add number": lambda a, b: a + 1.5 + 2,
    "reflected number ops": lambda a, b: 2.5 - a * 3 / 1.5 + 1 / b,
    "number ** tensor": lambda a, b: 2.0**a,
    "tensor ** number": lambda a, b: a**2.5 + b**2 + a**-1,
    "exp": lambda a, b: a.exp(),
    "log": lambda a, b: a.log(),
    "sqrt": lambda a, b: a.sqrt(),
    "abs": lambda a, b: a.abs(),
    "tanh": lambda a, b: a.tanh(),
    "sigmoid": lambda a, b: a.sigmoid(),
    "relu": lambda a, b: a.relu(),
    "sum": lambda a, b: a.sum(axis=0),
    "mean": lambda a, b: a.mean(axis=(0, 1), keepdims=True),
    "max": lambda a, b: a.max(axis=1),
    "min": lambda a, b: a.min(),
    "reshape": lambda a, b: a.reshape(3, 2),
    "transpose": lambda a, b: a.T,
    "getitem": lambda a, b: a[[0, 0], 1:],
    "concatenate": lambda a, b: concatenate([a, b.reshape(1, 3)]),
    "stack": lambda a, b: stack([a[0], b], axis=1),
    "clip": lambda a, b: a.clip(0.8, 1.5),
    "maximum": lambda a, b: maximum(a, b),
    "minimum number": lambda a, b: minimum(a, 1.0),
    "where": lambda a, b: where(a.data > 1.0, a, b),
    "log_softmax": lambda a, b: a.log_softmax(axis=0),
    "softmax": lambda a, b: a.softmax(),
}


@pytest.mark.parametrize("name", EVERY_OP)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_op_keeps_the_dtype_of_its_inputs_in_output_and_gradients(name, dtype):
    a = Tensor(positive((2, 3), dtype, 1), requires_grad=True)
    b = Tensor(positive((3,), dtype, 2), requires_grad=True)
    out = EVERY_OP[name](a, b)
    assert out.dtype == dtype
    out.backward(np.ones(out.shape, dtype=dtype))
    for x in (a, b):
        if x.grad is not None:
            assert type(x.grad) is np.ndarray
            assert x.grad.dtype == dtype and x.grad.shape == x.shape


@pytest.mark.parametrize("scalar", [2, 2.5, np.float64(2.5), np.float32(2.5), np.int64(2)], ids=repr)
def test_scalars_never_upcast_float32_tensors(scalar):
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    outs = [a + scalar, scalar + a, a - scalar, scalar - a, a * scalar, scalar * a, a / scalar, scalar / a, a**scalar]
    outs += [
        scalar**a,
        a.clip(-scalar, scalar),
        a.clip(high=scalar),
        a.maximum(scalar),
        where([True, False, True], a, scalar),
    ]
    for out in outs:
        assert out.dtype == np.float32, out
    sum(o.sum() for o in outs).backward()
    assert a.grad.dtype == np.float32


def test_float32_gradient_agrees_with_the_float64_gradient():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))

    def loss(x, w):
        return (x @ w).tanh().log_softmax(axis=1).sum()

    grads = {}
    for dtype in (np.float32, np.float64):
        tx, tw = Tensor(x.astype(dtype), requires_grad=True), Tensor(w.astype(dtype), requires_grad=True)
        loss(tx, tw).backward()
        grads[dtype] = tw.grad
    assert grads[np.float32].dtype == np.float32
    np.testing.assert_allclose(grads[np.float32], grads[np.float64], rtol=1e-4, atol=1e-5)


def test_mixed_precision_inputs_each_get_a_gradient_of_their_own_dtype():
    a32 = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    b64 = Tensor(np.ones(3), requires_grad=True)
    out = a32 * b64 + a32
    assert out.dtype == np.float64  # numpy promotion between arrays, as in numpy
    out.sum().backward()
    assert a32.grad.dtype == np.float32 and b64.grad.dtype == np.float64
    np.testing.assert_array_equal(b64.grad, [2.0, 2.0, 2.0])


def test_python_lists_and_integers_become_float64_and_float_arrays_keep_their_dtype():
    assert Tensor([1, 2, 3]).dtype == np.float64
    assert Tensor([[1.0, 2.0]]).dtype == np.float64
    assert Tensor(3).dtype == np.float64
    assert Tensor(np.arange(3)).dtype == np.float64
    assert Tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert Tensor([1.0], dtype=np.float32).dtype == np.float32


def test_dtype_argument_converts_a_tensor_argument_too():
    t = Tensor([1.0, 2.0])
    assert Tensor(t, dtype=np.float32).dtype == np.float32
    assert Tensor(t).dtype == np.float64


# ---- array-like surface and gradient buffers -------------------------------------------------------------
def test_tensor_exposes_data_shape_dtype_numpy_item_and_assignable_data():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and t.dtype == np.float64 and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.numpy() is t.data
    assert Tensor([[4.0]]).item() == 4.0 and isinstance(Tensor([[4.0]]).item(), float)
    assert t.T.shape == (3, 2)
    assert t.grad is None
    t.data = np.ones((2, 3))
    (t * 3.0).sum().backward()
    np.testing.assert_array_equal(t.grad, np.full((2, 3), 3.0))


def test_ndarray_on_the_left_defers_to_the_tensor():
    t = leaf([1.0, 2.0])
    for out in (np.ones(2) + t, np.ones(2) * t, np.ones(2) - t, np.ones(2) / t):
        assert isinstance(out, Tensor)
    (np.full(2, 3.0) * t).sum().backward()
    np.testing.assert_array_equal(t.grad, [3.0, 3.0])


@given(x=arrays(shapes))
def test_gradient_has_the_leaf_shape_and_is_an_ndarray_even_for_zero_dimensional_leaves(x):
    a, b = leaf(x), leaf(x + 1.0)
    (a * b).sum().backward()
    assert type(a.grad) is np.ndarray and type(b.grad) is np.ndarray
    assert a.grad.shape == x.shape
    np.testing.assert_array_equal(a.grad, x + 1.0)


def test_backward_on_a_non_scalar_tensor_needs_an_explicit_gradient():
    t = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="explicit gradient"):
        (t * 2.0).backward()
    with pytest.raises(ValueError, match="shape"):
        (t * 2.0).backward(np.ones(3))
    (t * 2.0).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(t.grad, [2.0, 20.0])


def test_backward_on_a_size_one_tensor_seeds_one():
    t = leaf([[3.0]])
    (t * t).backward()
    np.testing.assert_array_equal(t.grad, [[6.0]])


PASS_THROUGH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "add then scale": lambda a, b: (a + b) * 1.0,
    "sums": lambda a, b: a.sum() + b.sum(),
    "where": lambda a, b: where(np.array([True, False]), a, b) + a + b,
    "concatenate": lambda a, b: concatenate([a, b]),
}


@pytest.mark.parametrize("name", PASS_THROUGH)
def test_leaf_gradients_never_alias_each_other_or_the_seed(name):
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    out = PASS_THROUGH[name](a, b)
    seed = np.ones(out.shape)
    out.backward(seed)
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    assert not np.shares_memory(a.grad, seed) and not np.shares_memory(b.grad, seed)
    before = b.grad.copy()
    a.grad += 100.0  # an in-place edit of one gradient ...
    np.testing.assert_array_equal(b.grad, before)  # ... leaves the other untouched
    np.testing.assert_array_equal(seed, np.ones(out.shape))


def test_retained_and_leaf_gradients_do_not_alias():
    x = leaf([1.0, 2.0])
    y = x + 0.0
    y.retain_grad()
    z = y * 1.0
    z.retain_grad()
    z.backward(np.array([1.0, 1.0]))
    grads = [x.grad, y.grad, z.grad]
    for i in range(3):
        for j in range(i):
            assert not np.shares_memory(grads[i], grads[j])
    x.grad += 5.0
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])


def test_empty_batch_flows_through_forward_and_backward_with_empty_gradients():
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    ((x * 2.0).tanh() @ w).log_softmax(axis=1).sum().backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(w.grad, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="empty axis"):
        Tensor(np.zeros((2, 0))).mean(axis=1)


# ---- division: true division, as numpy ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_division_equals_numpys_true_division_bit_for_bit(dtype):
    a = np.array([0.7, 1.0, 3.0, 1e-30, -5.0], dtype=dtype)
    b = np.array([0.1, 3.0, 7.0, 3.0, 0.3], dtype=dtype)
    for out, expected in [
        (Tensor(a) / Tensor(b), a / b),
        (Tensor(a) / 0.1, a / 0.1),
        (0.7 / Tensor(b), 0.7 / b),
        (b / Tensor(a), b / a),
    ]:
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.data, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_is_the_sum_divided_by_the_count_bit_for_bit_as_numpy(dtype):
    x = np.random.default_rng(0).standard_normal((3, 7, 9)).astype(dtype)  # sum * (1/n) rounds twice
    for axis in (None, 0, 1, 2, (1, 2)):
        np.testing.assert_array_equal(Tensor(x).mean(axis=axis).data, np.mean(x, axis=axis, dtype=dtype))


def test_division_gradient_of_tiny_operands_is_finite():
    x, y = leaf(1e-200), leaf(1e-200)
    (x / y).backward()
    assert float(x.grad) == 1e200 and float(y.grad) == -1e200  # -x/y^2 written as -(x/y)/y: y^2 underflows


@pytest.mark.parametrize("zero", [0, 0.0, -0.0, Tensor(0.0), Tensor([0.0, -0.0, 0.0])], ids=repr)
def test_division_by_zero_gives_numpys_inf_and_nan_with_numpys_warning(zero):
    x = np.array([1.0, -2.0, 0.0])
    denominator = zero.data if isinstance(zero, Tensor) else zero
    with np.errstate(all="ignore"):
        expected = x / denominator
    with pytest.warns(RuntimeWarning, match="divide by zero|invalid value"):
        out = leaf(x) / zero
    np.testing.assert_array_equal(out.data, expected)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        np.testing.assert_array_equal((1.0 / Tensor([0.0, -0.0])).data, [np.inf, -np.inf])


def test_division_by_zero_backward_is_silent_and_gives_what_pytorch_gives():
    x, y = leaf([1.0, 0.0]), leaf([0.0, 0.0])
    with np.errstate(divide="ignore", invalid="ignore"):  # the forward warns, as numpy does
        out = x / y
    out.sum().backward()  # -W error: a warning here fails the test
    np.testing.assert_array_equal(x.grad, [np.inf, np.inf])
    np.testing.assert_array_equal(y.grad, [-np.inf, np.nan])


# ---- a zero local derivative passes exactly 0, also for inf and nan --------------------------------------
# name: (operation, input, where the gradient passes)
MASKING = {
    "clip": (lambda x: x.clip(-1.0, 1.0), [-2.0, 0.5, 2.0], [0, 1, 0]),
    "maximum with a number": (lambda x: x.maximum(0.0), [-1.0, 2.0], [0, 1]),
    "minimum with a number": (lambda x: x.minimum(0.0), [1.0, -2.0], [0, 1]),
    "maximum, tensor on the right": (lambda x: maximum(Tensor([0.0, 0.0]), x), [-1.0, 2.0], [0, 1]),
    "minimum, tensor on the right": (lambda x: minimum(Tensor([0.0, 0.0]), x), [1.0, -2.0], [0, 1]),
    "max": (lambda x: x.max(), [1.0, 3.0, 2.0], [0, 1, 0]),
    "min over an axis": (lambda x: x.min(axis=1), [[1.0, 3.0], [4.0, 2.0]], [[1, 0], [0, 1]]),
    "where": (lambda x: where([True, False], x, 0.0), [1.0, 2.0], [1, 0]),
}


@pytest.mark.parametrize("incoming", [np.inf, -np.inf, np.nan], ids=repr)
@pytest.mark.parametrize("name", MASKING)
def test_zero_local_derivative_passes_exactly_zero_even_for_an_inf_or_nan_gradient(name, incoming):
    function, x0, passes = MASKING[name]
    x = leaf(x0)
    y = function(x)
    y.backward(np.full(y.shape, incoming))
    np.testing.assert_array_equal(x.grad, np.where(passes, incoming, 0.0))


def test_clipped_reciprocal_at_the_clipped_point_has_gradient_zero_as_in_pytorch():
    x = leaf([-1.0, 2.0])
    with np.errstate(divide="ignore"):
        y = x.clip(0.0, None) ** -1  # 1/0 = inf, and its gradient -inf reaches the clip
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, -0.25])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_of_an_array_holding_nan_send_the_gradient_to_the_nan_without_a_warning(name):
    x = leaf([[1.0, np.nan, 2.0], [3.0, 3.0, 1.0]])
    getattr(x, name)(axis=1).sum().backward()  # -W error: 0/0 would fail here
    tie = [0.0, 0.5, 0.5] if name == "min" else [0.5, 0.5, 0.0]
    tie = [0.0, 0.0, 1.0] if name == "min" else tie
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0, 0.0], tie])
    x = leaf([1.0, np.nan, np.nan])
    getattr(x, name)().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5])


def test_maximum_with_nan_passes_the_gradient_to_both_sides_as_pytorch():
    a, b = leaf([1.0, np.nan, 2.0]), leaf([1.0, 1.0, np.nan])
    maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 1.0])


# ---- linear equals x @ W + b -----------------------------------------------------------------------------
@given(
    data=st.data(),
    x_shape=st.sampled_from([(3,), (2, 3), (4, 2, 3)]),
    bias_shape=st.sampled_from([None, (5,), (1, 5), (3, 1, 1, 5), ()]),
    dtypes=st.tuples(*[st.sampled_from([np.float32, np.float64])] * 3),
)
def test_linear_equals_the_composed_matmul_plus_bias_in_value_shape_dtype_and_gradients(
    data, x_shape, bias_shape, dtypes
):
    shapes_ = [x_shape, (3, 5)] + ([] if bias_shape is None else [bias_shape])
    elements = st.floats(-2.0, 2.0, width=32)  # exact in float32 and float64
    arrays_ = [data.draw(hnp.arrays(dtype, shape, elements=elements)) for dtype, shape in zip(dtypes, shapes_)]
    fused_leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays_]
    composed_leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays_]
    fused = linear(*fused_leaves)
    x, w = composed_leaves[:2]
    composed = x @ w if bias_shape is None else x @ w + composed_leaves[2]
    assert fused.shape == composed.shape and fused.dtype == composed.dtype
    np.testing.assert_array_equal(fused.data, composed.data)
    projection = np.random.default_rng(0).standard_normal(fused.shape).astype(fused.dtype)
    (fused * projection).sum().backward()
    (composed * projection).sum().backward()
    for a, b in zip(fused_leaves, composed_leaves):
        assert a.grad.shape == b.grad.shape and a.grad.dtype == b.grad.dtype
        rtol = 1e-12 if a.grad.dtype == np.float64 and fused.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(a.grad, b.grad, rtol=rtol, atol=rtol)


# ---- only floating-point tensors require grad ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integer_or_boolean_tensors_refuse_requires_grad_naming_the_dtype(dtype):
    with pytest.raises(TypeError, match=f"only floating-point tensors can require grad, got dtype {np.dtype(dtype)}"):
        Tensor([1, 0, 2], dtype=dtype, requires_grad=True)
    assert Tensor([1, 0, 2], dtype=dtype).dtype == dtype  # without requires_grad they are constants


INTEGER_CONSTANT_OPS = {
    "mul": lambda x, n: x * n,
    "add": lambda x, n: n + x,
    "sub": lambda x, n: n - x,
    "div": lambda x, n: x / n,
    "rdiv": lambda x, n: n / x,
    "pow": lambda x, n: x**n,
    "maximum": lambda x, n: maximum(x, n),
    "matmul": lambda x, n: x @ n.reshape(3, 1),
    "where": lambda x, n: where([True, False, True], n, x),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", INTEGER_CONSTANT_OPS)
def test_integer_constants_give_the_float_side_the_gradient_of_their_float_values(name, dtype):
    op = INTEGER_CONSTANT_OPS[name]
    x_data = np.array([1.5, -0.5, 2.25], dtype=dtype)
    results = []
    for n in (Tensor([2, 3, -1], dtype=np.int32), Tensor([2.0, 3.0, -1.0], dtype=np.float64)):
        x = Tensor(x_data.copy(), requires_grad=True)
        op(x, n).sum().backward()
        results.append(x.grad)
    assert results[0].dtype == dtype
    np.testing.assert_array_equal(results[0], results[1])
