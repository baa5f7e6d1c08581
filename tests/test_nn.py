"""Modules, the MLP and the losses: registration, shapes, dtypes, and gradients checked against numpy by hand."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_act import Tensor, activations, no_grad
from tinygrad_act.engine.gradcheck import gradcheck
from tinygrad_act.nn import MLP, BatchNorm1d, LayerNorm, Linear, Module, accuracy, cross_entropy, mse


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- Module: registration, names, modes ----------------------------------------------------------------------
def test_mlp_named_parameters_have_stable_dotted_names_in_registration_order():
    model = MLP(2, [3, 3], 4, activation="tanh", norm="layer", seed=0)
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "blocks.0.linear.weight",
        "blocks.0.linear.bias",
        "blocks.0.norm.weight",
        "blocks.0.norm.bias",
        "blocks.1.linear.weight",
        "blocks.1.linear.bias",
        "blocks.1.norm.weight",
        "blocks.1.norm.bias",
        "output.weight",
        "output.bias",
    ]


def test_parameters_lists_each_parameter_once_even_though_layers_aliases_the_linears():
    model = MLP(2, [3, 3, 3], 2, seed=0)
    params = model.parameters()
    assert len(params) == len({id(p) for p in params}) == 2 * 4
    assert [id(p) for p in params] == [id(p) for _, p in model.named_parameters()]
    assert model.num_parameters() == sum(p.data.size for p in params)


def test_modules_lists_each_submodule_once_in_registration_order():
    model = MLP(2, [3, 3], 2, norm="layer", seed=0)
    modules = list(model.modules())
    assert len(modules) == len({id(m) for m in modules})
    b0, b1 = model.blocks
    assert modules == [model, b0, b0.linear, b0.norm, b0.act, b1, b1.linear, b1.norm, b1.act, model.output]


def test_module_registers_tensors_requiring_grad_and_submodules_in_assignment_order():
    class Net(Module):
        def __init__(self):
            super().__init__()
            self.scale = Tensor(np.ones(2), requires_grad=True)
            self.constant = Tensor(np.ones(2))  # no grad: not a parameter
            self.inner = Linear(2, 2, rng=_rng())
            self.blocks = [Linear(2, 1, rng=_rng()), Linear(1, 1, bias=False, rng=_rng())]
            self.note = "text"

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight"]
    net.scale = 3.0  # reassigning to a non-parameter unregisters it
    assert "scale" not in [n for n, _ in net.named_parameters()]


def test_module_without_super_init_fails_with_a_clear_error():
    class Broken(Module):
        def __init__(self):
            self.weight = Tensor(np.ones(1), requires_grad=True)

    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_zero_grad_clears_every_parameter_gradient():
    model = MLP(2, [3, 3], 2, norm="batch", seed=0)
    cross_entropy(model(Tensor(_rng().standard_normal((5, 2)))), np.array([0, 1, 0, 1, 1])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_and_eval_switch_every_submodule_recursively():
    model = MLP(2, [3, 3], 2, norm="batch", seed=0)
    model.eval()
    assert all(not m.training for m in model.modules())
    assert not model.blocks[1].norm.training
    model.train()
    assert all(m.training for m in model.modules())


def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    layer = Linear(2, 3, rng=_rng())
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append((module, inputs, output)))
    x = Tensor(np.ones((1, 2)))
    out = layer(x)
    assert seen == [(layer, (x,), out)]
    handle.remove()
    layer(x)
    assert len(seen) == 1


# ---- Linear and MLP structure ------------------------------------------------------------------------------
def test_linear_computes_x_at_w_plus_b_with_w_of_shape_in_by_out():
    layer = Linear(3, 5, rng=_rng())
    layer.bias.data = _rng(1).standard_normal(5)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (5,)
    x = _rng(2).standard_normal((4, 3))
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data + layer.bias.data, rtol=1e-14)
    no_bias = Linear(3, 5, bias=False, rng=_rng())
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]


def test_mlp_layers_list_linears_input_side_first_ending_with_the_output_layer():
    model = MLP(7, [5, 4, 3], 2, seed=0)
    assert len(model.layers) == 3 + 1
    assert [layer.weight.shape for layer in model.layers] == [(7, 5), (5, 4), (4, 3), (3, 2)]
    assert model.layers[-1] is model.output
    assert all(layer is block.linear for layer, block in zip(model.layers, model.blocks))
    assert model(Tensor(np.zeros((6, 7)))).shape == (6, 2)


def test_residual_skips_are_added_only_where_input_and_output_widths_match():
    model = MLP(2, [4, 4, 3, 3], 2, activation="tanh", residual=True, seed=0)
    assert [b.residual for b in model.blocks] == [False, True, False, True]
    x = _rng(1).standard_normal((5, 2))
    h = x
    for block in model.blocks:
        a = np.tanh(h @ block.linear.weight.data + block.linear.bias.data)
        h = h + a if block.residual else a
    expected = h @ model.output.weight.data + model.output.bias.data
    np.testing.assert_allclose(model(Tensor(x)).data, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("norm, kind", [("layer", LayerNorm), ("batch", BatchNorm1d), (None, type(None))])
def test_norm_option_puts_a_norm_with_learnable_scale_and_shift_in_each_hidden_block(norm, kind):
    model = MLP(2, [3, 3], 2, norm=norm, seed=0)
    for block in model.blocks:
        assert isinstance(block.norm, kind)
        if norm is not None:
            assert block.norm.weight.requires_grad and block.norm.bias.requires_grad
            np.testing.assert_array_equal(block.norm.weight.data, np.ones(3))
            np.testing.assert_array_equal(block.norm.bias.data, np.zeros(3))


def test_unknown_norm_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match="group.*none, batch, layer"):
        MLP(2, [3], 2, norm="group")


def test_same_seed_gives_identical_weights_and_another_seed_different_ones():
    a, b, c = (MLP(4, [8, 8], 3, activation="relu", seed=s) for s in (5, 5, 6))
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    assert not np.array_equal(a.layers[0].weight.data, c.layers[0].weight.data)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("residual", [False, True])
def test_float32_model_keeps_float32_weights_outputs_and_gradients(norm, residual):
    model = MLP(3, [4, 4], 2, activation="tanh", norm=norm, residual=residual, seed=0, dtype=np.float32)
    x = Tensor(_rng().standard_normal((5, 3)).astype(np.float32))
    logits = model(x)
    loss = cross_entropy(logits, np.array([0, 1, 1, 0, 1]))
    loss.backward()
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    for name, p in model.named_parameters():
        assert p.data.dtype == np.float32, name
        assert p.grad.dtype == np.float32, name
    model.eval()
    with no_grad():
        assert model(x).dtype == np.float32


# ---- normalization layers --------------------------------------------------------------------------------------
def test_layer_norm_standardizes_each_row_then_applies_scale_and_shift():
    norm = LayerNorm(4, eps=0.0)
    norm.weight.data = np.array([1.0, 2.0, 3.0, 4.0])
    norm.bias.data = np.array([0.5, 0.0, -0.5, 1.0])
    x = _rng().standard_normal((3, 4)) * 5 + 2
    expected = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True) * norm.weight.data + norm.bias.data
    np.testing.assert_allclose(norm(Tensor(x)).data, expected, rtol=1e-12)


def test_batch_norm_normalizes_over_the_batch_in_training_and_updates_running_statistics():
    norm = BatchNorm1d(3, momentum=0.1, eps=1e-5)
    x = _rng().standard_normal((6, 3)) * 3 + 1
    out = norm(Tensor(x)).data
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(norm.running_mean, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.running_var, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)


def test_batch_norm_in_eval_mode_uses_running_statistics_and_leaves_them_unchanged():
    norm = BatchNorm1d(3)
    norm.running_mean = np.array([1.0, -2.0, 0.5])
    norm.running_var = np.array([4.0, 0.25, 1.0])
    norm.weight.data = np.array([2.0, 1.0, -1.0])
    norm.bias.data = np.array([0.0, 1.0, 3.0])
    norm.eval()
    x = _rng().standard_normal((5, 3))
    expected = (x - norm.running_mean) / np.sqrt(norm.running_var + norm.eps) * norm.weight.data + norm.bias.data
    np.testing.assert_allclose(norm(Tensor(x)).data, expected, rtol=1e-12)
    np.testing.assert_array_equal(norm.running_mean, [1.0, -2.0, 0.5])
    # A single example works in eval mode (the batch statistics would be degenerate).
    np.testing.assert_allclose(norm(Tensor(x[:1])).data, expected[:1], rtol=1e-12)


def _check_module_gradients(module, x, parameter_owners):
    """gradcheck the module's output with respect to its input and every parameter in ``parameter_owners``."""

    def fn(x, *params):
        for (owner, attribute), leaf in zip(parameter_owners, params):
            setattr(owner, attribute, leaf)
        return module(x)

    leaves = [Tensor(getattr(o, a).data.copy(), requires_grad=True) for o, a in parameter_owners]
    result = gradcheck(fn, [Tensor(x, requires_grad=True), *leaves], atol=1e-7, rtol=1e-5)
    assert result, result


def _perturbed(norm, rng):
    norm.weight.data = 1 + 0.5 * rng.standard_normal(norm.weight.shape)
    norm.bias.data = 0.5 * rng.standard_normal(norm.bias.shape)
    return norm


def test_layer_norm_gradients_pass_gradcheck():
    norm = _perturbed(LayerNorm(4), _rng(1))
    _check_module_gradients(norm, _rng(2).standard_normal((3, 4)), [(norm, "weight"), (norm, "bias")])


def test_batch_norm_gradients_pass_gradcheck_in_training_mode():
    norm = _perturbed(BatchNorm1d(3), _rng(1))
    _check_module_gradients(norm, _rng(2).standard_normal((5, 3)), [(norm, "weight"), (norm, "bias")])


@pytest.mark.parametrize("norm", [None, "layer", "batch"])
def test_residual_mlp_gradients_pass_gradcheck(norm):
    model = MLP(3, [4, 4, 4], 2, activation="tanh", residual=True, norm=norm, seed=3)
    owners = []
    for block in model.blocks:
        owners += [(block.linear, "weight"), (block.linear, "bias")]
        if block.norm is not None:
            _perturbed(block.norm, _rng(7))
            owners += [(block.norm, "weight"), (block.norm, "bias")]
    owners += [(model.output, "weight"), (model.output, "bias")]
    for layer in model.layers:
        layer.bias.data = 0.1 * _rng(8).standard_normal(layer.bias.shape)
    _check_module_gradients(model, _rng(9).standard_normal((5, 3)), owners)


# ---- MLP gradients against a numpy backward written by hand ---------------------------------------------------
def _numpy_mlp_loss_and_grads(x, y, weights, biases, phi, dphi):
    """Forward and backward of a plain MLP with cross-entropy, written out in numpy."""
    hs, zs = [x], []
    for i, (w, b) in enumerate(zip(weights, biases)):
        z = hs[-1] @ w + b
        zs.append(z)
        if i < len(weights) - 1:
            hs.append(phi(z))
    logits = zs[-1]
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    n = len(y)
    loss = -log_p[np.arange(n), y].mean()
    delta = np.exp(log_p)
    delta[np.arange(n), y] -= 1
    delta /= n
    grads_w, grads_b = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        grads_w[i] = hs[i].T @ delta
        grads_b[i] = delta.sum(0)
        if i:
            delta = (delta @ weights[i].T) * dphi(zs[i - 1])
    return loss, grads_w, grads_b


_NUMPY_ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
}


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_mlp_gradients_match_a_hand_written_numpy_backward(act):
    model = MLP(3, [5, 4, 4], 3, activation=act, seed=1)
    rng = _rng(2)
    for layer in model.layers:
        layer.bias.data = 0.3 * rng.standard_normal(layer.bias.shape)
    x = rng.standard_normal((6, 3))
    y = np.array([0, 1, 2, 2, 1, 0])
    loss = cross_entropy(model(Tensor(x)), y)
    loss.backward()
    phi, dphi = _NUMPY_ACTIVATIONS[act]
    ref_loss, ref_w, ref_b = _numpy_mlp_loss_and_grads(
        x, y, [layer.weight.data for layer in model.layers], [layer.bias.data for layer in model.layers], phi, dphi
    )
    assert abs(loss.item() - ref_loss) < 1e-12
    for layer, gw, gb in zip(model.layers, ref_w, ref_b):
        np.testing.assert_allclose(layer.weight.grad, gw, rtol=0, atol=1e-10)
        np.testing.assert_allclose(layer.bias.grad, gb, rtol=0, atol=1e-10)


# ---- losses ----------------------------------------------------------------------------------------------------
def _numpy_cross_entropy(logits, targets):
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -log_p[np.arange(len(targets)), targets].mean()


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-30, 30), min_size=n * 3, max_size=n * 3),
            st.lists(st.integers(0, 2), min_size=n, max_size=n),
        )
    )
)
def test_cross_entropy_and_its_gradient_match_a_numpy_reference(case):
    values, labels = case
    targets = np.array(labels, dtype=np.int64)
    logits = np.array(values).reshape(len(targets), 3)
    t = Tensor(logits, requires_grad=True)
    loss = cross_entropy(t, targets)
    loss.backward()
    np.testing.assert_allclose(loss.item(), _numpy_cross_entropy(logits, targets), rtol=1e-12, atol=1e-12)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    expected = (softmax - np.eye(3)[targets]) / len(targets)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-10, atol=1e-14)


def test_cross_entropy_is_the_mean_over_the_batch():
    logits = np.array([[2.0, 0.0], [0.0, 0.0]])
    loss = cross_entropy(Tensor(logits), np.array([0, 1])).item()
    assert loss == pytest.approx((np.log(1 + np.exp(-2.0)) + np.log(2.0)) / 2, rel=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_finite_and_silent_at_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype=dtype)
    t = Tensor(logits, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss = cross_entropy(t, np.array([1, 1]))  # the first example is wrong by 2e4, the second right
        loss.backward()
    assert loss.dtype == dtype and t.grad.dtype == dtype
    assert loss.item() == pytest.approx(1e4, rel=1e-6)
    assert np.all(np.isfinite(t.grad))
    np.testing.assert_allclose(t.grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize(
    "targets", [np.array([0.0, 1.0]), np.array([0]), np.array([[0, 1]]), np.array([0, 3]), np.array([-1, 0])]
)
def test_cross_entropy_rejects_targets_that_are_not_valid_integer_labels(targets):
    with pytest.raises(ValueError, match="target"):
        cross_entropy(Tensor(np.zeros((2, 3))), targets)


def test_mse_and_its_gradient_match_numpy():
    p = _rng().standard_normal((4, 2))
    target = _rng(1).standard_normal((4, 2))
    t = Tensor(p, requires_grad=True)
    loss = mse(t, target)
    loss.backward()
    assert loss.item() == pytest.approx(np.mean((p - target) ** 2), rel=1e-14)
    np.testing.assert_allclose(t.grad, 2 * (p - target) / p.size, rtol=1e-14)


def test_accuracy_is_the_fraction_of_rows_whose_argmax_is_the_target():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert accuracy(Tensor(logits), np.array([1, 0, 0, 0])) == 0.75
    assert accuracy(logits, np.array([1, 0, 1, 0])) == 1.0


def test_mlp_activation_is_the_registered_activation_object():
    model = MLP(2, [3], 2, activation="leaky_relu", seed=0)
    assert model.activation.name == "leaky_relu"
    assert model.activation.params == activations.get("leaky_relu").params
