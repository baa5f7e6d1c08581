"""The captured training step (nn/step.py, engine/capture.py, nn/flat.py): replay equals eager bit for bit, and
every case where the replay could differ runs eagerly."""

import json

import numpy as np
import pytest

from tinygrad_act.engine import capture
from tinygrad_act.engine.graph import Op, make, no_grad
from tinygrad_act.engine.tensor import Tensor, concatenate, linear, maximum, stack, where
from tinygrad_act.lab.run.config import Config
from tinygrad_act.lab.run.experiment import run
from tinygrad_act.nn import MLP, Activate, Module, activations, optim
from tinygrad_act.nn.flat import FlatParameters
from tinygrad_act.nn.step import Step

FEATURES, CLASSES, BATCH = 6, 3, 8


def _model(act="tanh", norm=None, residual=False, dtype=np.float32, opt="sgd:momentum=0.9", lr=0.05):
    model = MLP(FEATURES, [10, 10, 10], CLASSES, activation=act, norm=norm, residual=residual, seed=3, dtype=dtype)
    return model, optim.get(opt, model.parameters(), lr=lr)


def _batches(dtype, steps, batch=BATCH, scale=1.0):
    rng = np.random.default_rng(7)
    return [
        ((scale * rng.standard_normal((batch, FEATURES))).astype(dtype), rng.integers(0, CLASSES, batch))
        for _ in range(steps)
    ]


def _train(enabled, batches, clip=0.0, lr_type=float, **options):
    """Train through Step; every loss, the replayed flags, and the final state (parameters, buffers, optimizer)."""
    model, optimizer = _model(**options)
    optimizer.lr = lr_type(optimizer.lr)  # np.float64: lr * grad is float64 on float32 data (NEP 50)
    step = Step(model, optimizer, clip, enabled=enabled)
    losses, replayed = [], []
    for xb, yb in batches:
        loss, _ = step(xb, yb)
        losses.append(loss)
        replayed.append(step.replayed)
        if np.isfinite(loss):
            step.update()
    state = {**model.state_dict(), **{f"opt.{k}": v for k, v in optimizer.state_dict().items()}}
    return losses, replayed, state


def _assert_identical(a, b):
    assert np.array_equal(a[0], b[0], equal_nan=True), (a[0], b[0])
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        assert np.array_equal(a[2][name], b[2][name], equal_nan=True), name


CASES = [
    dict(act="tanh"),
    dict(act="tanh", opt="sgd"),
    dict(act="sigmoid", opt="sgd", lr_type=np.float64),
    dict(act="tanh", opt="sgd:momentum=0.9", lr_type=np.float64),
    dict(act="sigmoid", dtype=np.float64),
    dict(act="relu", opt="sgd:momentum=0.9,nesterov=true"),
    dict(act="gelu", opt="adam"),
    dict(act="tanh", norm="layer", opt="adam:weight_decay=0.01", clip=0.3),
    dict(act="sigmoid", norm="batch", residual=True, clip=0.5),
    dict(act="relu", norm="batch", dtype=np.float64, opt="sgd:momentum=0.5,weight_decay=0.001", clip=0.2),
    dict(act="tanh", residual=True, dtype=np.float64, opt="adam", clip=1e-3),
]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_replay_is_bit_identical_to_eager(options):
    dtype = options.get("dtype", np.float32)
    batches = _batches(dtype, 7)
    eager, captured = _train(False, batches, **options), _train(True, batches, **options)
    assert not any(eager[1]) and captured[1] == [False] + [True] * 6  # the first step records, the rest replay
    _assert_identical(eager, captured)


def test_flat_parameters_are_views_and_the_fused_update_matches_the_loop():
    model, optimizer = _model(opt="adam")
    flat = FlatParameters(model.parameters())
    assert all(np.shares_memory(p.data, flat.data) for p in model.parameters()) and flat.bound()
    model.layers[0].weight.data = model.layers[0].weight.data.copy()
    assert not flat.bound()


def test_another_input_shape_runs_eagerly_and_keeps_its_own_program():
    full, partial = _batches(np.float32, 4), _batches(np.float32, 3, batch=5)
    batches = [full[0], full[1], partial[0], full[2], partial[1], partial[2], full[3]]
    eager, captured = _train(False, batches), _train(True, batches)
    # each signature records once, then replays
    assert captured[1] == [False, True, False, True, True, True, True]
    _assert_identical(eager, captured)


def test_hooks_and_grad_mode_make_the_step_eager():
    model, optimizer = _model()
    step = Step(model, optimizer)
    (x0, y0), (x1, y1), (x2, y2) = _batches(np.float32, 3)
    step(x0, y0)
    step.update()
    handle = model.layers[1].register_forward_hook(lambda module, inputs, output: None)
    step(x1, y1)
    assert not step.replayed  # a measured step: the probes attach forward hooks
    handle.remove()
    handle = model.layers[1].weight.register_hook(lambda grad: None)
    step(x1, y1)
    assert not step.replayed
    handle.remove()
    with no_grad(), pytest.raises(RuntimeError, match="does not require grad"):
        step(x2, y2)  # as eager: no graph, no backward
    step(x2, y2)
    assert step.replayed


def test_eval_mode_records_its_own_program():
    batches = _batches(np.float32, 5)
    results = []
    for enabled in (False, True):
        model, optimizer = _model(norm="batch")
        step = Step(model, optimizer, enabled=enabled)
        flags = []
        for i, (xb, yb) in enumerate(batches):
            model.train(i % 2 == 0)  # batch norm: batch statistics in training, running ones in eval
            loss, _ = step(xb, yb)
            flags.append(step.replayed)
            step.update()
            results.append(loss)
        results.append(model.state_dict())
    assert flags == [False, False, True, False, True]  # eval mode's running statistics are constants: eager
    assert results[:5] == results[6:11]
    for name, value in results[5].items():
        assert np.array_equal(value, results[11][name]), name


def test_a_non_finite_loss_runs_the_step_eagerly():
    batches = _batches(np.float64, 6, scale=1.0)
    batches[4] = (np.full_like(batches[4][0], np.inf), batches[4][1])
    options = dict(norm="batch", dtype=np.float64)
    with np.errstate(all="ignore"):  # as the runner: divergence is detected, not warned about
        eager, captured = _train(False, batches, **options), _train(True, batches, **options)
    assert not np.isfinite(captured[0][4]) and captured[1] == [False, True, True, True, False, True]
    _assert_identical(eager, captured)  # batch norm's running statistics too: the replay's effects did not run


class _Custom(Module):
    def __init__(self):
        super().__init__()
        self.inner = MLP(FEATURES, [4], CLASSES, seed=0)

    def forward(self, x):
        return self.inner(x)


def test_models_with_modules_of_their_own_and_operations_without_a_forward_stay_eager():
    model = _Custom()
    step = Step(model, optim.get("sgd", model.parameters(), lr=0.1))
    for xb, yb in _batches(np.float64, 3):
        step(xb, yb)
        assert not step.replayed
        step.update()
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    opaque = make(Tensor, x.data.sum(), (x,), Op("opaque", None, lambda node, g: (np.ones((2, 3)) * g,)))
    with pytest.raises(capture.NotCapturable, match="opaque has no forward"):
        capture.Program(opaque, (x,))


def _records(path):
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("time", None)  # wall clock: the only field that differs (a diverged step's record has none)
    return records


@pytest.mark.parametrize("extra", [dict(act="tanh", clip=0.5), dict(act="relu", norm="batch", residual=True)])
def test_a_run_logs_the_same_numbers_with_capture_on_and_off(tmp_path, monkeypatch, extra):
    replays = []
    original = Step._replay
    monkeypatch.setattr(Step, "_replay", lambda self, *a: replays.append(1) or original(self, *a))
    common = dict(depth=3, width=8, steps=24, log_every=5, eval_every=10, data="spirals:n=200", figures=False)
    for capture_on in (True, False):
        run(Config(**common, **extra, capture=capture_on, out=str(tmp_path / str(capture_on))), progress=False)
    assert len(replays) >= 15  # steps 1-4, 6-9, ... replay; measured and evaluated steps run eagerly
    on, off = tmp_path / "True", tmp_path / "False"
    assert _records(on) == _records(off) and (on / "metrics.jsonl").stat().st_size > 0


GELU = activations.get("gelu")


def _graph(x, c, w, v):
    """Many engine operations at once; x and c are inputs, w and v parameters."""
    h = linear(x, w, v).tanh()
    h = h + (x @ w).sigmoid() * 0.5 - (x @ w).relu() / 3.0
    h = (h * h + 1.0).sqrt().log() ** 2 + (h.exp() / (1.0 + h.abs())).clip(-2.0, 2.0)
    h = where(np.arange(h.shape[1]) % 2 == 0, h, h.softmax(axis=1)).reshape(-1).reshape(h.shape).T.T
    h = concatenate([h[:, :3], maximum(h[:, 3:], h[:, 1:3])], axis=1) ** stack(
        [h[0] * 0 + 1.0, h[1] * 0 + 2.0, h[2] + 3.0]
    )
    h = h / (h.max(axis=1, keepdims=True) - h.min(axis=0) + 4.0) + h[[0, 0, 2]].sum(axis=0) + (x @ w).apply(GELU)
    return (h.log_softmax(axis=1) * c).sum() + h.sum(axis=0).mean()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_program_replays_engine_operations_bit_identically(dtype):
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((4, 5)).astype(dtype), requires_grad=True)
    v = Tensor(rng.standard_normal(5).astype(dtype), requires_grad=True)
    x, c = Tensor(rng.standard_normal((3, 4)).astype(dtype)), Tensor(rng.standard_normal((3, 5)).astype(dtype))
    root = _graph(x, c, w, v)
    program = capture.Program(root, (x, c))
    root.backward()
    program.restore()
    views = {w: np.empty_like(w.data), v: np.empty_like(v.data)}
    for scale in (1.0, 30.0, np.inf):  # inf: non-finite gradients take the engine's own backward
        new_x, new_c = rng.standard_normal((3, 4)).astype(dtype), scale * rng.standard_normal((3, 5)).astype(dtype)
        np.copyto(x.data, new_x)
        np.copyto(c.data, new_c)
        with np.errstate(all="ignore"):
            program.replay_forward()
            program.replay_backward(views)
            w.grad = v.grad = None
            eager = _graph(Tensor(new_x), Tensor(new_c), w, v)
            eager.backward()
        assert np.array_equal(root.data, eager.data, equal_nan=True)
        for param, grad in views.items():
            assert np.array_equal(grad, param.grad, equal_nan=True), scale


def test_effects_run_now_and_again_on_every_replay():
    seen = []
    x = Tensor(np.ones(3), requires_grad=True)
    with capture.recording() as effects:
        mean = x.mean()
        capture.effect(lambda m: seen.append(float(m)), mean)
    capture.effect(lambda m: seen.append(-1.0), mean)  # outside the recording: not replayed
    program = capture.Program(mean, (), effects)
    np.copyto(x.data, [3.0, 3.0, 6.0])
    program.replay_forward()
    program.run_effects()
    assert seen == [1.0, -1.0, 4.0]


def test_a_graph_that_cannot_be_replayed_is_recorded_once_then_runs_eagerly(monkeypatch):
    model, optimizer = _model()
    programs = []
    original = capture.Program.__init__
    monkeypatch.setattr(capture.Program, "__init__", lambda self, *a: programs.append(1) or original(self, *a))
    step = Step(model, optimizer)
    model.layers[-1].bias.requires_grad = False  # a constant now: the graph cannot be captured
    for xb, yb in _batches(np.float32, 4):
        step(xb, yb)
        assert not step.replayed
        step.update()
    assert programs == [1]


# ---- the structure a replay relies on: any change records anew (issue 18, item 7) -----------------------------------
def _relu_block(model):
    model.blocks[1].act = Activate("relu")


def _relu_in_place(model):
    model.blocks[1].act.activation = activations.get("relu")


def _new_weight(model):
    model.layers[1].weight = Tensor(model.layers[1].weight.data * 0.5, requires_grad=True)


def _freeze(model):
    model.layers[1].weight.requires_grad = False


def _unfreeze(model):
    model.layers[1].weight.requires_grad = True


STRUCTURE_CHANGES = {
    "a weight frozen": [(3, _freeze)],
    "a weight frozen, then trained again": [(2, _freeze), (4, _unfreeze)],
    "a bias set to None": [(3, lambda model: setattr(model.layers[2], "bias", None))],
    "an activation module swapped": [(3, _relu_block)],
    "an activation swapped in its module": [(3, _relu_in_place)],
    "residual switched on": [(3, lambda model: setattr(model.blocks[1], "residual", True))],
    "a new Parameter object": [(3, _new_weight)],
    "a block removed from the list": [(3, lambda model: model.blocks.pop(1))],
    "layer norm's eps changed": [(3, lambda model: setattr(model.blocks[0].norm, "eps", 0.5))],
}  # fmt: skip


@pytest.mark.parametrize("name", STRUCTURE_CHANGES)
def test_a_change_of_structure_between_steps_gives_the_eager_numbers(name):
    batches, changes = _batches(np.float64, 7), dict(STRUCTURE_CHANGES[name])
    results = []
    for enabled in (False, True):
        model, optimizer = _model(norm="layer", dtype=np.float64)
        step = Step(model, optimizer, enabled=enabled)
        losses, replayed = [], []
        for i, (xb, yb) in enumerate(batches):
            if i in changes:
                changes[i](model)
            losses.append(step(xb, yb)[0])
            replayed.append(step.replayed)
            step.update()
        results.append((losses, replayed, {**model.state_dict(), **optimizer.state_dict()}))
    (eager_losses, _, eager_state), (losses, replayed, state) = results
    assert losses == eager_losses and state.keys() == eager_state.keys()
    for key in state:
        assert np.array_equal(state[key], eager_state[key]), key
    first = min(changes)
    assert replayed[:first] == [False] + [True] * (first - 1)  # the first records, then it replays until the change


def test_after_a_change_of_structure_the_step_records_again_and_replays_the_new_graph():
    model, optimizer = _model()
    step = Step(model, optimizer)
    flags = []
    for i, (xb, yb) in enumerate(_batches(np.float32, 6)):
        if i == 3:
            _relu_block(model)
        step(xb, yb)
        flags.append(step.replayed)
        step.update()
    assert flags == [False, True, True, False, True, True]


def test_arrays_handed_out_are_never_written_by_a_later_step():
    model, optimizer = _model(norm="batch")
    step = Step(model, optimizer, clip=0.5)
    kept, flags = [], []
    for xb, yb in _batches(np.float32, 5):
        loss, logits = step(xb, yb)
        grads = [p.grad for p in model.parameters()]
        kept.append((logits, logits.data.copy(), grads, [g.copy() for g in grads]))
        flags.append(step.replayed)
        step.update()
    assert flags == [False, True, True, True, True]
    for logits, logits_then, grads, grads_then in kept:
        assert not logits.requires_grad and np.array_equal(logits.data, logits_then)
        assert all(np.array_equal(g, g_then) for g, g_then in zip(grads, grads_then))


def _spiking(limit):
    """tanh, whose derivative is inf where |x| > limit: a finite loss, non-finite gradients."""
    return activations.register(
        "spiking_tanh",
        forward=np.tanh,
        derivative=lambda x: np.where(np.abs(x) > limit, np.inf, 1 / np.cosh(x) ** 2),
        replace=True,
    )


@pytest.mark.parametrize("enabled", [True, False], ids=["replayed", "eager"])
def test_finite_says_whether_every_gradient_of_the_step_is_finite_while_the_loss_is(enabled):
    _spiking(10.0)
    try:
        model = MLP(FEATURES, [10, 10], CLASSES, activation="spiking_tanh", seed=3)
        step = Step(model, optim.get("sgd", model.parameters(), lr=0.01), enabled=enabled)
        batches = _batches(np.float64, 5)
        batches[3] = (batches[3][0] * 1e4, batches[3][1])  # pre-activations past the spike
        finite, replayed = [], []
        with np.errstate(all="ignore"):
            for xb, yb in batches:
                loss, _ = step(xb, yb)
                assert np.isfinite(loss)
                finite.append(step.finite())
                replayed.append(step.replayed)
                if finite[-1]:
                    step.update()
    finally:
        activations.unregister("spiking_tanh")
    assert finite == [True, True, True, False, True]
    assert replayed == ([False, True, True, True, True] if enabled else [False] * 5)


@pytest.mark.parametrize("capture_on", [True, False], ids=["replayed", "eager"])
def test_a_run_stops_on_the_step_where_a_gradient_stops_being_finite(tmp_path, monkeypatch, capture_on):
    spiking = []  # non-empty once two updates are done: from then on f' is inf everywhere, the loss stays finite
    activations.register(
        "late_spike",
        forward=np.tanh,
        derivative=lambda x: np.full_like(x, np.inf) if spiking else 1 / np.cosh(x) ** 2,
        replace=True,
    )
    update = Step.update

    def counting_update(self):
        update(self)
        optimizer_steps = self.optimizer.steps
        if optimizer_steps == 2:
            spiking.append(True)

    monkeypatch.setattr(Step, "update", counting_update)
    try:
        config = Config(depth=2, width=6, steps=20, log_every=10, act="late_spike", data="spirals:n=200",
                        figures=False, capture=capture_on, out=str(tmp_path / "run"))  # fmt: skip
        summary = run(config, progress=False)
    finally:
        activations.unregister("late_spike")
    records = _records(tmp_path / "run")
    assert summary["status"] == "diverged" and summary["steps_done"] == 2  # step 2's update never ran
    assert "diverged at step 2: non-finite gradients" in summary["message"]
    assert records[-1]["step"] == 2 and np.isfinite(records[-1]["loss"]) and records[-1]["nonfinite"] > 0


def test_step_is_public():
    from tinygrad_act.nn import Step as public

    assert public is Step and "bit for bit" in public.__doc__
