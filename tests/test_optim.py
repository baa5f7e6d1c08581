"""Optimizers against hand-written numpy updates (PyTorch's definitions), clipping, hooks and the registry."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinygrad_act.optim import SGD, Adam, clip_grad_norm, global_grad_norm

from tinygrad_act import Tensor, optim

STEPS = 4


def _parameters(dtype=np.float64):
    rng = np.random.default_rng(0)
    return [Tensor(rng.standard_normal((3, 2)).astype(dtype), requires_grad=True), Tensor(np.zeros(2, dtype))]


def _gradient_sequence(shapes, steps=STEPS, dtype=np.float64):
    rng = np.random.default_rng(1)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def _run(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        optimizer.step()
    return [p.data for p in params]


def _reference_sgd(data, grads, lr, momentum, nesterov, weight_decay):
    """torch.optim.SGD (dampening 0), written out."""
    data = [d.copy() for d in data]
    buffers = [None] * len(data)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = g + weight_decay * data[i]
            if momentum:
                buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + g
                g = g + momentum * buffers[i] if nesterov else buffers[i]
            data[i] = data[i] - lr * g
    return data


def _reference_adam(data, grads, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam (amsgrad off), written out: bias-corrected moments, eps outside the square root."""
    data = [d.copy() for d in data]
    m = [np.zeros_like(d) for d in data]
    v = [np.zeros_like(d) for d in data]
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = g + weight_decay * data[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            data[i] = data[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return data


@given(
    lr=st.floats(1e-3, 1.0),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-2, 0.5]),
)
def test_sgd_matches_the_pytorch_update_rule_over_several_steps(lr, momentum, nesterov, weight_decay):
    nesterov = nesterov and momentum > 0
    params = _parameters()
    start = [p.data.copy() for p in params]
    grads = _gradient_sequence([p.shape for p in params])
    optimizer = SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    got = _run(optimizer, params, grads)
    expected = _reference_sgd(start, grads, lr, momentum, nesterov, weight_decay)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@given(
    lr=st.floats(1e-4, 0.5),
    betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]),
    eps=st.sampled_from([1e-8, 1e-3, 0.5]),
    weight_decay=st.sampled_from([0.0, 0.1]),
)
def test_adam_matches_the_pytorch_update_rule_over_several_steps(lr, betas, eps, weight_decay):
    params = _parameters()
    start = [p.data.copy() for p in params]
    grads = _gradient_sequence([p.shape for p in params])
    optimizer = Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    got = _run(optimizer, params, grads)
    expected = _reference_adam(start, grads, lr, *betas, eps, weight_decay)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_adam_first_step_moves_every_weight_by_lr_against_the_gradient_sign():
    params = _parameters()
    start = params[0].data.copy()
    params[0].grad = np.array([[1e-6, -3.0], [250.0, -0.5], [2.0, 7.0]])
    Adam(params[:1], lr=0.01, eps=1e-12).step()
    np.testing.assert_allclose(start - params[0].data, 0.01 * np.sign(params[0].grad), rtol=1e-5)


def test_adam_bias_correction_counts_the_steps_of_each_parameter():
    # PyTorch keeps the step count per parameter: one that first gets a gradient at step 3 is at its step 1.
    a, b = _parameters()
    b.requires_grad = True
    optimizer = Adam([a, b], lr=0.1)
    for _ in range(2):
        a.grad, b.grad = np.ones_like(a.data), None
        optimizer.step()
    a.grad, b.grad = np.ones_like(a.data), np.full(2, 0.5)
    optimizer.step()
    np.testing.assert_allclose(b.data, [-0.1, -0.1], rtol=1e-6)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p, lr=0.1)])
def test_a_parameter_without_gradient_is_left_untouched(make):
    params = _parameters()
    before = params[1].data.copy()
    params[0].grad = np.ones_like(params[0].data)
    make(params).step()
    np.testing.assert_array_equal(params[1].data, before)
    assert not np.array_equal(params[0].data, _parameters()[0].data)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1), lambda p: Adam(p)])
def test_float32_parameters_stay_float32_through_updates(make):
    params = _parameters(np.float32)
    _run(make(params), params, _gradient_sequence([p.shape for p in params], dtype=np.float32))
    assert all(p.data.dtype == np.float32 for p in params)


def test_step_hooks_run_before_and_after_each_update_in_order():
    params = _parameters()
    optimizer = SGD(params, lr=1.0)
    calls = []
    optimizer.register_step_pre_hook(lambda opt: calls.append(("pre", opt.steps, params[0].data.copy())))
    optimizer.register_step_post_hook(lambda opt: calls.append(("post", opt.steps, params[0].data.copy())))
    start = params[0].data.copy()
    params[0].grad = np.ones_like(start)
    optimizer.step()
    optimizer.step()
    assert [(kind, steps) for kind, steps, _ in calls] == [("pre", 0), ("post", 1), ("pre", 1), ("post", 2)]
    np.testing.assert_array_equal(calls[0][2], start)
    np.testing.assert_array_equal(calls[1][2], start - 1)
    np.testing.assert_array_equal(calls[3][2], start - 2)


def test_zero_grad_clears_the_gradients_of_the_optimizer_parameters():
    params = _parameters()
    for p in params:
        p.grad = np.ones_like(p.data)
    SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None for p in params)


# ---- clipping ----------------------------------------------------------------------------------------------------
def _with_grads(*grads):
    params = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = np.array(g, dtype=float)
    return params


def test_clip_grad_norm_returns_the_norm_before_clipping_and_scales_all_gradients_to_max_norm():
    params = _with_grads(np.array([3.0, 0.0]), np.array([[0.0], [4.0]]))  # global norm 5
    total = clip_grad_norm(params, max_norm=1.0)
    assert total == pytest.approx(5.0, rel=1e-15)
    assert global_grad_norm([p.grad for p in params]) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(params[0].grad, [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(params[1].grad, [[0.0], [0.8]], rtol=1e-6)


def test_clip_grad_norm_leaves_gradients_below_max_norm_unchanged():
    params = _with_grads(np.array([0.3, -0.4]))
    assert clip_grad_norm(params, max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(params[0].grad, [0.3, -0.4])


def test_clip_grad_norm_skips_parameters_without_gradient_and_does_not_touch_non_finite_gradients():
    params = _with_grads(np.array([np.inf, 1.0]))
    params.append(Tensor(np.zeros(2), requires_grad=True))
    assert math.isinf(clip_grad_norm(params, max_norm=1.0))
    np.testing.assert_array_equal(params[0].grad, [np.inf, 1.0])
    assert params[1].grad is None


def test_global_grad_norm_survives_overflow_of_the_sum_of_squares_without_warnings():
    # pytest runs with -W error: a RuntimeWarning from numpy fails this test.
    g = np.full(4, 1e30, dtype=np.float32)
    assert global_grad_norm([g]) == pytest.approx(2e30, rel=1e-6)
    assert global_grad_norm([np.full(4, 1e200)]) == math.inf
    assert math.isnan(global_grad_norm([np.array([np.nan, 1.0])]))


# ---- validation and registry -------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr", [0, -1, math.nan, math.inf, "0.1"])
def test_optimizers_reject_a_learning_rate_that_is_not_positive_and_finite(lr):
    with pytest.raises(ValueError, match="lr"):
        SGD(_parameters(), lr=lr)
    with pytest.raises(ValueError, match="lr"):
        Adam(_parameters(), lr=lr)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda p: SGD(p, momentum=-0.1), "momentum"),
        (lambda p: SGD(p, nesterov=True), "nesterov"),
        (lambda p: SGD(p, weight_decay=-1), "weight_decay"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), "beta1"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "beta2"),
        (lambda p: Adam(p, betas=1), "betas"),
        (lambda p: Adam(p, eps=0), "eps"),
        (lambda p: SGD([], lr=0.1), "empty"),
    ],
)
def test_bad_hyperparameters_are_value_errors_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=name):
        make(_parameters())


@pytest.mark.parametrize("make", [lambda p: SGD(p, weight_decay=math.inf), lambda p: Adam(p, weight_decay=math.inf)])
def test_an_infinite_weight_decay_is_refused_by_the_one_number_check(make):
    with pytest.raises(ValueError, match="weight_decay must be a non-negative finite number"):
        make(_parameters())


def test_clip_grad_norm_rejects_a_non_positive_max_norm():
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(_with_grads(np.ones(2)), 0.0)


def test_registry_lists_the_optimizers_and_builds_them_from_spec_strings():
    assert optim.names() == ["adam", "sgd"]
    sgd = optim.get("sgd:momentum=0.9,nesterov=True", _parameters(), lr=0.2)
    assert isinstance(sgd, SGD) and (sgd.lr, sgd.momentum, sgd.nesterov) == (0.2, 0.9, True)
    adam = optim.get("adam", _parameters())
    assert isinstance(adam, Adam) and adam.lr == 1e-3
    with pytest.raises(ValueError, match="rmsprop.*adam, sgd"):
        optim.get("rmsprop", _parameters())
    with pytest.raises(ValueError, match="no parameter 'foo'"):
        optim.get("sgd:foo=1", _parameters())
