"""RNN, LSTM and GRU: equal to PyTorch's (where importable) and to finite differences (always), truncated BPTT,
the probes' trace, the recurrent initializers, dtypes and the checks at the boundary."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_act import Tensor, init
from tinygrad_act.common.errors import UsageError
from tinygrad_act.engine.gradcheck import gradcheck
from tinygrad_act.nn import GRU, LSTM, RNN

CELLS = {
    "rnn_tanh": (RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
}
GATED = {"lstm": ("input", "forget", "candidate", "output"), "gru": ("reset", "update", "candidate")}


def make(cell, input_size, hidden_size, **options):
    kind, fixed = CELLS[cell]
    return kind(input_size, hidden_size, **fixed, **options)


def carried(module) -> int:
    return 2 if isinstance(module, LSTM) else 1


def initial_state(module, batch, rng, requires_grad=True):
    """A random initial state of the module's form: h0, or (h0, c0) for an LSTM; each (num_layers, B, H)."""
    shape = (module.num_layers, batch, module.hidden_size)
    parts = tuple(Tensor(rng.standard_normal(shape), requires_grad=requires_grad) for _ in range(carried(module)))
    return parts[0] if len(parts) == 1 else parts


def as_tuple(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def projected_loss(outputs, final, rng):
    """Σ outputs·P + Σ final·Q: every output and final state gets a gradient of its own (random projections)."""
    loss = (outputs * Tensor(rng.standard_normal(outputs.shape))).sum()
    for part in as_tuple(final):
        loss = loss + (part * Tensor(rng.standard_normal(part.shape))).sum()
    return loss


# ---- against PyTorch ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def torch_twin(torch, cell, input_size, hidden_size, num_layers, bias, seed):
    """PyTorch's module (float64, batch first, its own random init from ``seed``) and ours loaded from its state."""
    kind = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        theirs = kind(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=True, **CELLS[cell][1])
    theirs = theirs.double()
    ours = make(cell, input_size, hidden_size, num_layers=num_layers, bias=bias, seed=seed + 1)
    ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    return theirs, ours


def run_torch(torch, module, x, state, rng):
    x = torch.tensor(x.data, requires_grad=True)
    state = None if state is None else tuple(torch.tensor(p.data, requires_grad=True) for p in as_tuple(state))
    outputs, final = module(x, None if state is None else state[0] if len(state) == 1 else state)
    loss = (outputs * torch.tensor(rng.standard_normal(tuple(outputs.shape)))).sum()
    for part in as_tuple(final):
        loss = loss + (part * torch.tensor(rng.standard_normal(tuple(part.shape)))).sum()
    loss.backward()
    return outputs, final, x, state


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", list(CELLS))
@settings(max_examples=5)
@given(
    batch=st.integers(1, 3), steps=st.integers(1, 5), features=st.integers(1, 3), hidden=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_outputs_states_and_every_gradient_equal_pytorchs_to_1e_10(
    torch, cell, num_layers, bias, with_state, batch, steps, features, hidden, seed
):
    theirs, ours = torch_twin(torch, cell, features, hidden, num_layers, bias, seed)
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((batch, steps, features)), requires_grad=True)
    state = initial_state(ours, batch, rng) if with_state else None
    outputs, final = ours(x, state)
    projected_loss(outputs, final, np.random.default_rng(seed + 7)).backward()
    t_outputs, t_final, t_x, t_state = run_torch(torch, theirs, x, state, np.random.default_rng(seed + 7))

    def close(a, b):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-10)

    close(outputs.data, t_outputs)
    for part, t_part in zip(as_tuple(final), as_tuple(t_final)):
        close(part.data, t_part)
    close(x.grad, t_x.grad)
    for part, t_part in zip(as_tuple(state) if with_state else (), t_state or ()):
        close(part.grad, t_part.grad)
    t_parameters = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(t_parameters)
    for name, parameter in ours.named_parameters():
        close(parameter.grad, t_parameters[name].grad)


def test_parameter_names_shapes_and_order_are_pytorchs():
    lstm = LSTM(3, 5, num_layers=2)
    expected = [
        ("weight_ih_l0", (20, 3)), ("weight_hh_l0", (20, 5)), ("bias_ih_l0", (20,)), ("bias_hh_l0", (20,)),
        ("weight_ih_l1", (20, 5)), ("weight_hh_l1", (20, 5)), ("bias_ih_l1", (20,)), ("bias_hh_l1", (20,)),
    ]  # fmt: skip
    assert [(name, p.shape) for name, p in lstm.named_parameters()] == expected
    assert list(lstm.state_dict()) == [name for name, _ in expected]
    assert [name for name, _ in GRU(3, 5, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert GRU(3, 5).weight_hh_l0.shape == (15, 5) and RNN(3, 5).weight_ih_l0.shape == (5, 3)
    assert len(lstm.parameters()) == 8 and lstm.num_parameters() == 20 * (3 + 5 + 2) + 20 * (5 + 5 + 2)


def test_state_dict_round_trip_reproduces_the_outputs():
    source, target = LSTM(2, 3, num_layers=2, seed=1), LSTM(2, 3, num_layers=2, seed=2)
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(target(Tensor(x))[0].data, source(Tensor(x))[0].data)
    with pytest.raises(UsageError, match="weight_ih_l1"):
        LSTM(2, 3).load_state_dict(source.state_dict())


# ---- finite differences (no PyTorch needed) ----------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradients_of_input_state_and_weights_match_finite_differences(cell, bias):
    module = make(cell, 2, 3, num_layers=2, bias=bias, seed=3)
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((2, 4, 2)), requires_grad=True)
    state = as_tuple(initial_state(module, 2, rng))
    names = [name for name, _ in module.named_parameters()]

    def run(x, *tensors):
        state, parameters = tensors[: len(tensors) - len(names)], tensors[len(tensors) - len(names) :]
        for name, parameter in zip(names, parameters):
            setattr(module, name, parameter)
        outputs, final = module(x, state[0] if len(state) == 1 else state)
        return projected_loss(outputs, final, np.random.default_rng(5))

    result = gradcheck(run, [x, *state, *module.parameters()], atol=1e-7, rtol=1e-6)
    assert result, result


# ---- truncated backpropagation through time ----------------------------------------------------------------
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", list(CELLS))
def test_truncated_bptt_gives_exactly_zero_gradient_to_every_step_outside_the_outputs_chunk(cell, num_layers):
    steps, k = 7, 3  # chunks: steps 0-2, 3-5, 6
    alive = {"bias_init": 1.0} if cell == "rnn_relu" else {}  # relu units that never die carry every gradient
    module = make(cell, 2, 3, num_layers=num_layers, truncate=k, seed=0, **alive)
    data = np.random.default_rng(1).standard_normal((2, steps, 2))
    for t in range(steps):
        x = Tensor(data, requires_grad=True)
        outputs, _ = module(x)
        outputs[:, t].sum().backward()
        reached = [s for s in range(steps) if np.any(x.grad[:, s] != 0)]
        chunk = range(t // k * k, t + 1)
        assert reached == list(chunk), (t, reached)  # at most k steps back, never before the chunk
        assert not np.any(x.grad[:, [s for s in range(steps) if s not in chunk]])


@pytest.mark.parametrize("cell", list(CELLS))
def test_truncation_at_or_beyond_the_sequence_length_is_full_bptt_bit_for_bit(cell):
    data = np.random.default_rng(2).standard_normal((3, 5, 2))
    gradients = []
    for truncate in (None, 5, 9):
        module = make(cell, 2, 4, num_layers=2, truncate=truncate, seed=6)
        x = Tensor(data, requires_grad=True)
        outputs, final = module(x)
        projected_loss(outputs, final, np.random.default_rng(3)).backward()
        gradients.append([x.grad, *(p.grad for p in module.parameters())])
    for other in gradients[1:]:
        for a, b in zip(gradients[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", list(CELLS))
def test_truncated_bptt_equals_full_bptt_of_each_chunk_from_its_forward_state(cell):
    """BPTT(k, k) by its definition: chunks of k steps, each run on its own from the state the forward pass
    reached (a constant); the weight gradients add up. Truncation leaves the forward values unchanged."""
    steps, k, rng = 7, 3, np.random.default_rng(4)
    data, projection = rng.standard_normal((2, steps, 2)), rng.standard_normal((2, steps, 3))
    truncated = make(cell, 2, 3, num_layers=2, truncate=k, seed=8)
    outputs, _ = truncated(Tensor(data))
    (outputs * Tensor(projection)).sum().backward()
    full = make(cell, 2, 3, num_layers=2, seed=8)
    np.testing.assert_array_equal(full(Tensor(data))[0].data, outputs.data)
    state = None
    for start in range(0, steps, k):
        chunk_outputs, final = full(Tensor(data[:, start : start + k]), state)
        (chunk_outputs * Tensor(projection[:, start : start + k])).sum().backward()
        state = tuple(part.detach() for part in as_tuple(final))
        state = state[0] if len(state) == 1 else state
    for (name, ours), theirs in zip(truncated.named_parameters(), full.parameters()):
        np.testing.assert_allclose(ours.grad, theirs.grad, rtol=1e-12, atol=1e-14, err_msg=name)


# ---- the probes' trace -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", list(CELLS))
def test_trace_is_kept_only_when_recording_and_leaves_every_number_unchanged(cell):
    module = make(cell, 2, 3, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    plain, _ = module(Tensor(x))
    assert module.trace is None
    module.recording = True
    recorded, final = module(Tensor(x))
    np.testing.assert_array_equal(recorded.data, plain.data)
    trace = module.trace
    expected = {"lstm": ("hidden", "cell", *GATED["lstm"]), "gru": ("hidden", *GATED["gru"])}
    assert trace.names == expected.get(cell, ("hidden", "preactivation"))
    assert len(trace.hidden) == 2 and all(len(layer) == 4 for layer in trace.hidden)
    for t in range(4):
        np.testing.assert_array_equal(trace.hidden[-1][t].data, recorded.data[:, t])
    for layer in range(2):
        np.testing.assert_array_equal(trace.hidden[layer][-1].data, as_tuple(final)[0].data[layer])
    with pytest.raises(KeyError, match="hidden"):
        trace["no_such_gate"]
    module.recording = False
    module(Tensor(x))
    assert module.trace is None


@pytest.mark.parametrize("cell", list(CELLS))
def test_retained_hidden_gradient_is_the_whole_dl_dh_through_outputs_and_later_steps(cell):
    """dL/dh_t from the trace equals the gradient of restarting the module at h_t (c_t held) on the rest."""
    steps, rng = 5, np.random.default_rng(1)
    module = make(cell, 2, 3, seed=2)
    data, projection = rng.standard_normal((2, steps, 2)), rng.standard_normal((2, steps, 3))
    module.recording = True
    outputs, _ = module(Tensor(data))
    trace = module.trace
    for h in trace.hidden[0]:
        h.retain_grad()
    (outputs * Tensor(projection)).sum().backward()
    module.recording = False
    for t in range(steps - 1):
        h = Tensor(trace.hidden[0][t].data[None], requires_grad=True)
        state = (h, Tensor(trace["cell"][0][t].data[None])) if isinstance(module, LSTM) else h
        rest, _ = module(Tensor(data[:, t + 1 :]), state)
        ((rest * Tensor(projection[:, t + 1 :])).sum() + (h[0] * Tensor(projection[:, t])).sum()).backward()
        np.testing.assert_allclose(trace.hidden[0][t].grad, h.grad[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(trace.hidden[0][-1].grad, projection[:, -1])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("cell", list(GATED))
def test_traced_gates_are_the_named_blocks_of_pytorchs_gate_order(cell):
    module = make(cell, 2, 3, seed=5)
    module.recording = True
    x = np.random.default_rng(6).standard_normal((2, 4, 2))
    module(Tensor(x))
    trace, state = module.trace, module.state_dict()
    w_ih, w_hh, b_ih, b_hh = (state[f"{name}_l0"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    h = np.zeros((2, 3))
    for t in range(4):
        from_input, from_hidden = x[:, t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        blocks = [slice(3 * j, 3 * j + 3) for j in range(len(GATED[cell]))]
        if cell == "lstm":
            expected = [sigmoid(from_input[:, b] + from_hidden[:, b]) for b in blocks]
            expected[2] = np.tanh(from_input[:, blocks[2]] + from_hidden[:, blocks[2]])
        else:
            r, z = (sigmoid(from_input[:, b] + from_hidden[:, b]) for b in blocks[:2])
            expected = [r, z, np.tanh(from_input[:, blocks[2]] + r * from_hidden[:, blocks[2]])]
        for name, value in zip(GATED[cell], expected):
            np.testing.assert_allclose(trace[name][0][t].data, value, rtol=1e-12, atol=1e-15, err_msg=name)
        h = trace.hidden[0][t].data
    if cell == "lstm":  # c_t = f c_{t-1} + i g and h_t = o tanh(c_t), from the traced gates
        c = np.zeros((2, 3))
        for t in range(4):
            i, f, g, o = (trace[name][0][t].data for name in GATED[cell])
            c = f * c + i * g
            np.testing.assert_allclose(trace["cell"][0][t].data, c, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(trace.hidden[0][t].data, o * np.tanh(c), rtol=1e-12, atol=1e-15)


def jacobian_through_trace(module, data):
    """∂h_T/∂h_1 (B, H, H) by backward from each unit of the traced h_T, reading the retained h_1.grad."""
    module.recording = True
    module(Tensor(data))
    hidden = module.trace.hidden[0]
    first, last = hidden[0].retain_grad(), hidden[-1]
    rows = []
    for j in range(module.hidden_size):
        first.zero_grad()
        seed = np.zeros(last.shape)
        seed[:, j] = 1.0  # the batch's rows are independent: one backward gives row j of every example
        last.backward(seed, retain_graph=True)
        rows.append(first.grad.copy())
    module.recording = False
    return np.stack(rows, axis=1), module.trace


@pytest.mark.parametrize("cell", list(CELLS))
def test_jacobian_of_last_over_first_hidden_state_from_the_trace_matches_finite_differences(cell):
    module, data = make(cell, 2, 3, seed=9), np.random.default_rng(7).standard_normal((2, 5, 2))
    jacobian, trace = jacobian_through_trace(module, data)
    eps, numeric = 1e-6, np.zeros_like(jacobian)

    def last_state(h):  # run the cell from h_1 (c_1 held) over steps 2..T, as forward does
        state = (Tensor(h), Tensor(trace["cell"][0][0].data)) if isinstance(module, LSTM) else Tensor(h)
        for t in range(1, 5):
            state = module.cell(Tensor(data[:, t]), state)
        return as_tuple(state)[0].data

    for k in range(3):
        step = np.zeros((2, 3))
        step[:, k] = eps
        h1 = trace.hidden[0][0].data
        numeric[:, :, k] = (last_state(h1 + step) - last_state(h1 - step)) / (2 * eps)
    np.testing.assert_allclose(jacobian, numeric, rtol=1e-6, atol=1e-9)


def test_tanh_rnn_jacobian_is_the_product_of_diag_one_minus_h_squared_times_w_hh():
    module, data = RNN(2, 4, seed=3), np.random.default_rng(8).standard_normal((3, 6, 2))
    jacobian, trace = jacobian_through_trace(module, data)
    w_hh = module.weight_hh_l0.data
    for b in range(3):
        product = np.eye(4)
        for h in trace.hidden[0][1:]:
            product = (1 - h.data[b] ** 2)[:, None] * w_hh @ product
        np.testing.assert_allclose(jacobian[b], product, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_is_one_step_of_forward(cell):
    module, x = make(cell, 2, 3, seed=1), np.random.default_rng(2).standard_normal((2, 1, 2))
    outputs, _ = module(Tensor(x))
    zeros = Tensor(np.zeros((2, 3)))
    state = module.cell(x[:, 0], (zeros, zeros) if isinstance(module, LSTM) else zeros)
    np.testing.assert_array_equal(as_tuple(state)[0].data, outputs.data[:, 0])


# ---- initializers ------------------------------------------------------------------------------------------
def blocks(weight, hidden):
    return [weight[j : j + hidden] for j in range(0, len(weight), hidden)]


def test_identity_initializer_is_the_identity_and_irnn_has_identity_recurrence_and_zero_biases():
    np.testing.assert_array_equal(init.get("identity")(4, 4, np.random.default_rng(0)), np.eye(4))
    np.testing.assert_array_equal(init.get("identity:gain=0.5")(3, 2, np.random.default_rng(0)), 0.5 * np.eye(3, 2))
    assert init.get("identity", gain=2.0).variance(3, 2) == pytest.approx(4 * 2 / 6)
    irnn = RNN(2, 4, nonlinearity="relu", recurrent_init="identity", bias_init=0.0, num_layers=2)
    for layer in range(2):
        np.testing.assert_array_equal(getattr(irnn, f"weight_hh_l{layer}").data, np.eye(4))
        assert not np.any(getattr(irnn, f"bias_ih_l{layer}").data) and not np.any(irnn.bias_hh_l1.data)
    for block in blocks(LSTM(2, 3, recurrent_init="identity").weight_hh_l0.data, 3):
        np.testing.assert_array_equal(block, np.eye(3))


def test_forget_bias_sets_the_forget_gates_total_bias_and_leaves_the_rest_as_drawn():
    plain, biased = LSTM(2, 3, num_layers=2, seed=4), LSTM(2, 3, num_layers=2, seed=4, forget_bias=1.0)
    for layer in range(2):
        b_ih, b_hh = (getattr(biased, f"{name}_l{layer}").data for name in ("bias_ih", "bias_hh"))
        np.testing.assert_array_equal(b_ih[3:6], 1.0)
        np.testing.assert_array_equal(b_hh[3:6], 0.0)
        rest = np.r_[0:3, 6:12]
        np.testing.assert_array_equal(b_ih[rest], getattr(plain, f"bias_ih_l{layer}").data[rest])
        np.testing.assert_array_equal(b_hh[rest], getattr(plain, f"bias_hh_l{layer}").data[rest])
    np.testing.assert_array_equal(biased.weight_hh_l1.data, plain.weight_hh_l1.data)


@pytest.mark.parametrize("cell", list(CELLS))
def test_orthogonal_init_makes_each_gates_block_orthogonal(cell):
    module = make(cell, 2, 5, recurrent_init="orthogonal", input_init="orthogonal", num_layers=2, seed=3)
    for layer in range(2):
        for block in blocks(getattr(module, f"weight_hh_l{layer}").data, 5):
            np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-12)
        for block in blocks(module.weight_ih_l0.data, 5):  # (5, 2): orthonormal columns
            np.testing.assert_allclose(block.T @ block, np.eye(2), atol=1e-12)


@pytest.mark.parametrize(
    ("spec", "variance"),
    [("xavier_normal", lambda i, o: 2 / (i + o)), ("xavier_uniform", lambda i, o: 2 / (i + o)),
     ("he_normal", lambda i, o: 2 / i), ("he_uniform:mode=fan_out", lambda i, o: 2 / o)],
)  # fmt: skip
def test_xavier_and_he_draw_each_gate_block_with_fan_in_f_and_fan_out_h(spec, variance):
    lstm = LSTM(300, 200, input_init=spec, recurrent_init=spec, seed=0)
    for weight, fan_in in ((lstm.weight_ih_l0.data, 300), (lstm.weight_hh_l0.data, 200)):
        for block in blocks(weight, 200):
            # five standard errors of the mean of n squares (kurtosis <= 3): a chance failure ~1 in 10^6
            assert abs(np.mean(block**2) / variance(fan_in, 200) - 1) < 5 * np.sqrt(2 / block.size)


def test_default_init_is_pytorchs_uniform_within_one_over_sqrt_hidden():
    gru = GRU(40, 100, num_layers=2, seed=0)
    for name, parameter in gru.named_parameters():
        assert np.abs(parameter.data).max() <= 0.1, name
        assert abs(np.mean(parameter.data**2) / (0.01 / 3) - 1) < 5 * np.sqrt(0.8 / parameter.data.size), name


def test_initialization_is_reproducible_from_a_seed_or_generator_and_never_uses_global_state():
    before = np.random.get_state()[1].copy()  # noqa: NPY002 - reading the global state to prove it untouched
    first = LSTM(3, 4, num_layers=2, recurrent_init="orthogonal", seed=11).state_dict()
    again = LSTM(3, 4, num_layers=2, recurrent_init="orthogonal", seed=np.random.default_rng(11)).state_dict()
    other = LSTM(3, 4, num_layers=2, recurrent_init="orthogonal", seed=12).state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


# ---- dtypes and checks at the boundary ---------------------------------------------------------------------
@pytest.mark.parametrize("cell", list(CELLS))
def test_float32_in_float32_out_outputs_states_and_gradients(cell):
    module = make(cell, 2, 3, num_layers=2, dtype=np.float32, truncate=2)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 2)).astype(np.float32), requires_grad=True)
    state = as_tuple(initial_state(module, 2, rng))
    state = tuple(Tensor(part.data.astype(np.float32), requires_grad=True) for part in state)
    outputs, final = module(x, state[0] if len(state) == 1 else state)
    assert outputs.dtype == np.float32 and all(part.dtype == np.float32 for part in as_tuple(final))
    projected_loss(outputs, final, rng).backward()
    assert x.grad.dtype == np.float32 and all(part.grad.dtype == np.float32 for part in state)
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in module.parameters())


def test_wrong_inputs_and_options_raise_one_clear_error_naming_the_value():
    lstm = LSTM(2, 3, num_layers=2)
    with pytest.raises(ValueError, match=r"\(batch, steps >= 1, 2\), got \(4, 5\)"):
        lstm(Tensor(np.zeros((4, 5))))
    with pytest.raises(ValueError, match="steps >= 1"):
        lstm(Tensor(np.zeros((4, 0, 2))))
    with pytest.raises(TypeError, match="dtype float32.*float64"):
        lstm(Tensor(np.zeros((1, 2, 2), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"\(2, 1, 3\), got \(1, 1, 3\)"):
        lstm(Tensor(np.zeros((1, 2, 2))), (np.zeros((1, 1, 3)), np.zeros((1, 1, 3))))
    with pytest.raises(ValueError, match=r"tuple \(hidden, cell\)"):
        lstm(Tensor(np.zeros((1, 2, 2))), np.zeros((2, 1, 3)))
    with pytest.raises(UsageError, match="unknown nonlinearity 'sigmoid'; choose one of: tanh, relu"):
        RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(UsageError, match="truncate must be a positive integer, got 0"):
        GRU(2, 3, truncate=0)
    with pytest.raises(UsageError, match="forget_bias needs bias=True"):
        LSTM(2, 3, bias=False, forget_bias=1.0)
    with pytest.raises(UsageError, match="unknown initializer 'orthonormal'"):
        GRU(2, 3, recurrent_init="orthonormal")
    with pytest.raises(UsageError, match="dtype"):
        RNN(2, 3, dtype=np.float16)
    with pytest.raises(TypeError):
        RNN(2, 3, 1)  # everything after the two sizes is a keyword: PyTorch's positional order differs
