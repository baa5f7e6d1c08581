"""Section ``recurrent``: one SGD training step of an LSTM over T = 100 steps: tinygrad_act, numpy by hand, PyTorch.

The network (the adding problem's shape): ``nn.LSTM(1, 64)`` over a batch of 32 sequences of 100 steps, a linear
head on the last hidden state h_T, mean squared error, plain SGD; backpropagation through the whole sequence.
Every engine starts from the same float64 weights (cast to the benchmark's dtype) and trains on one fixed batch.

Engines: ``tinygrad_act`` (nn.LSTM, nn.Linear, nn.mse, optim.SGD, as a user writes it); ``numpy``, the same
forward and backward written out by hand with preallocated buffers (the input projection of all steps in one
matmul, sigmoid as (1 + tanh(x/2)) / 2, the gates' derivatives from their outputs, the weight gradients in one
matmul over all steps): the floor for a numpy engine; ``torch`` (torch.nn.LSTM in eager mode: its C++ loop over
the steps) and ``torch loop`` (the same cell written out in Python on torch tensors, step by step, as the
tinygrad_act module does it). Gradients are checked equal to tinygrad_act's to 1e-10 in float64 before any
timing. Ratios are medians of per-round ratios from alternating rounds (bench/common.py), one BLAS/torch thread
unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import numpy as np
from tinygrad_act.optim import SGD

from tinygrad_act import Tensor
from tinygrad_act.nn import LSTM, Linear, mse

from .common import (
    differences_from_first,
    interleaved_timing,
    paired_ratio,
    profile_table,
    profile_top,
    summarize,
    table,
    with_threads,
)

SIZES = {"full": (100, 32, 1, 64), "quick": (100, 32, 1, 64), "tiny": (6, 4, 1, 8)}  # (steps, batch, input, hidden)
TIMING = {"full": (9, 0.3), "quick": (3, 0.1), "tiny": (2, 0.005)}  # rounds, seconds per block
DTYPES = (np.float32, np.float64)
LEARNING_RATE = 1e-3


def make_problem(steps: int, batch: int, features: int, hidden: int, seed: int = 0) -> dict:
    """float64 weights in PyTorch's layout (PyTorch's default U(±1/√H)), a head (H, 1), one batch (B, T, F)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(hidden)
    lstm = {
        "weight_ih_l0": rng.uniform(-bound, bound, (4 * hidden, features)),
        "weight_hh_l0": rng.uniform(-bound, bound, (4 * hidden, hidden)),
        "bias_ih_l0": rng.uniform(-bound, bound, 4 * hidden),
        "bias_hh_l0": rng.uniform(-bound, bound, 4 * hidden),
    }
    head = {"weight": rng.uniform(-bound, bound, (hidden, 1)), "bias": np.zeros(1)}
    x, y = rng.standard_normal((batch, steps, features)), rng.standard_normal((batch, 1))
    return {"lstm": lstm, "head": head, "x": x, "y": y}


def cast(problem: dict, dtype) -> dict:
    """The problem in ``dtype``, every array a copy of its own (engines train in place)."""
    return {
        "lstm": {k: v.astype(dtype) for k, v in problem["lstm"].items()},
        "head": {k: v.astype(dtype) for k, v in problem["head"].items()},
        "x": problem["x"].astype(dtype),
        "y": problem["y"].astype(dtype),
    }


class TinygradActEngine:
    name = "tinygrad_act"

    def __init__(self, problem: dict):
        x = problem["x"]
        hidden, dtype = problem["head"]["weight"].shape[0], x.dtype
        self.lstm = LSTM(x.shape[2], hidden, dtype=dtype)
        self.lstm.load_state_dict(problem["lstm"])
        self.head = Linear(hidden, 1, init="zeros", dtype=dtype)
        self.head.load_state_dict(problem["head"])
        self.params = self.lstm.parameters() + self.head.parameters()
        self.optimizer = SGD(self.params, lr=LEARNING_RATE)
        self.x, self.y = Tensor(x), problem["y"]

    def step(self, lr: float) -> float:
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        outputs, _ = self.lstm(self.x)
        loss = mse(self.head(outputs[:, -1]), self.y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def gradients(self) -> list:
        return [p.grad for p in self.params]


class NumpyEngine:
    """Forward and backward written out; every buffer allocated once; gradients in the LSTM's layout."""

    name = "numpy"

    def __init__(self, problem: dict):
        p, x = problem["lstm"], problem["x"]
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = (
            p[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        )
        self.w_out, self.b_out = problem["head"]["weight"], problem["head"]["bias"]
        self.x, self.y = np.ascontiguousarray(x.transpose(1, 0, 2)), problem["y"]  # time first: (T, B, F)
        steps, batch, features = self.x.shape
        hidden, dtype = self.w_hh.shape[1], x.dtype
        self.gates = np.empty((steps, batch, 4 * hidden), dtype)  # i, f, g, o after their activations
        self.h = np.zeros((steps + 1, batch, hidden), dtype)  # h[0] = 0, h[t + 1] after step t
        self.c = np.zeros((steps + 1, batch, hidden), dtype)
        self.tanh_c = np.empty((steps, batch, hidden), dtype)
        self.d_gates = np.empty_like(self.gates)
        self.dh, self.dc, self.scratch = (np.empty((batch, hidden), dtype) for _ in range(3))
        self.grads = [np.empty_like(a) for a in (self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_out, self.b_out)]

    def step(self, lr: float) -> float:
        loss = self.forward()
        self.backward()
        for parameter, grad in zip((self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_out, self.b_out), self.grads):
            parameter -= lr * grad
        return loss

    def forward(self) -> float:
        steps, batch, features = self.x.shape
        H, gates, h, c = self.w_hh.shape[1], self.gates, self.h, self.c
        # every step's input projection at once: (T·B, F) @ (F, 4H), plus both biases
        np.matmul(self.x.reshape(-1, features), self.w_ih.T, out=gates.reshape(-1, 4 * H))
        gates += self.b_ih + self.b_hh
        for t in range(steps):
            z = gates[t]
            z += h[t] @ self.w_hh.T
            sig = (z[:, : 2 * H], z[:, 3 * H :])
            for block in sig:  # σ(x) = (1 + tanh(x/2)) / 2: one transcendental pass, never overflows
                block *= 0.5
                np.tanh(block, out=block)
                block += 1.0
                block *= 0.5
            np.tanh(z[:, 2 * H : 3 * H], out=z[:, 2 * H : 3 * H])
            i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            np.multiply(f, c[t], out=c[t + 1])
            c[t + 1] += i * g
            np.tanh(c[t + 1], out=self.tanh_c[t])
            np.multiply(o, self.tanh_c[t], out=h[t + 1])
        self.error = h[steps] @ self.w_out + self.b_out - self.y
        return float(np.mean(self.error**2))

    def backward(self) -> None:
        steps, batch, features = self.x.shape
        H, gates, d_gates, h, c = self.w_hh.shape[1], self.gates, self.d_gates, self.h, self.c
        d_prediction = self.error * (2.0 / self.error.size)
        g_ih, g_hh, g_bih, g_bhh, g_wout, g_bout = self.grads
        np.matmul(h[steps].T, d_prediction, out=g_wout)
        np.sum(d_prediction, axis=0, out=g_bout)
        dh, dc, s = self.dh, self.dc, self.scratch
        np.matmul(d_prediction, self.w_out.T, out=dh)
        dc.fill(0)
        for t in range(steps - 1, -1, -1):
            z, dz, tc = gates[t], d_gates[t], self.tanh_c[t]
            i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            di, df, dg, do = dz[:, :H], dz[:, H : 2 * H], dz[:, 2 * H : 3 * H], dz[:, 3 * H :]
            np.multiply(dh, tc, out=do)  # dL/do, then through σ' = o(1 - o) below
            np.multiply(tc, tc, out=s)
            np.subtract(1.0, s, out=s)
            s *= o
            s *= dh
            dc += s  # dL/dc_t: from h_t and from c_{t+1}
            np.multiply(dc, g, out=di)
            np.multiply(dc, i, out=dg)
            np.multiply(dc, c[t], out=df)
            dc *= f  # dL/dc_{t-1} through c_t = f c_{t-1} + i g
            for d, y in ((di, i), (df, f), (do, o)):
                d *= y
                np.subtract(1.0, y, out=s)
                d *= s
            np.multiply(g, g, out=s)
            np.subtract(1.0, s, out=s)
            dg *= s
            np.matmul(dz, self.w_hh, out=dh)
        flat = d_gates.reshape(-1, 4 * H)
        np.matmul(flat.T, h[:steps].reshape(-1, H), out=g_hh)
        np.matmul(flat.T, self.x.reshape(-1, features), out=g_ih)
        np.sum(flat, axis=0, out=g_bih)
        g_bhh[...] = g_bih

    def gradients(self) -> list:
        return list(self.grads)


class TorchEngine:
    """torch.nn.LSTM (batch first) and a linear head, eager."""

    name = "torch"

    def __init__(self, problem: dict, torch):
        self.torch = torch
        x = problem["x"]
        hidden = problem["head"]["weight"].shape[0]
        self.lstm = torch.nn.LSTM(x.shape[2], hidden, batch_first=True).to(
            torch.float64 if x.dtype == np.float64 else torch.float32
        )
        self.lstm.load_state_dict({k: torch.from_numpy(v) for k, v in problem["lstm"].items()})
        self.w_out = torch.from_numpy(problem["head"]["weight"]).requires_grad_()
        self.b_out = torch.from_numpy(problem["head"]["bias"]).requires_grad_()
        self.params = [*self.lstm.parameters(), self.w_out, self.b_out]
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(problem["y"])

    def last_hidden(self):
        return self.lstm(self.x)[0][:, -1]

    def step(self, lr: float) -> float:
        torch = self.torch
        for p in self.params:
            p.grad = None
        loss = ((self.last_hidden() @ self.w_out + self.b_out - self.y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in self.params:
                p.sub_(p.grad, alpha=lr)
        return loss.item()

    def gradients(self) -> list:
        return [p.grad.numpy() for p in self.params]


class TorchLoopEngine(TorchEngine):
    """The same parameters, the cell written out step by step in Python on torch tensors (as ours is)."""

    name = "torch loop"

    def last_hidden(self):
        w_ih, w_hh, b_ih, b_hh = self.params[:4]
        batch, steps, _ = self.x.shape
        H = w_hh.shape[1]
        h = c = self.torch.zeros(batch, H, dtype=self.x.dtype)
        for t in range(steps):
            gates = self.x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            i, f, g, o = (
                gates[:, :H].sigmoid(),
                gates[:, H : 2 * H].sigmoid(),
                gates[:, 2 * H : 3 * H].tanh(),
                gates[:, 3 * H :].sigmoid(),
            )
            c = f * c + i * g
            h = o * c.tanh()
        return h


def make_engines(problem: dict, dtype, torch=None) -> list:
    engines = [TinygradActEngine(cast(problem, dtype)), NumpyEngine(cast(problem, dtype))]
    if torch is not None:
        engines += [TorchEngine(cast(problem, dtype), torch), TorchLoopEngine(cast(problem, dtype), torch)]
    return engines


def check_gradients(problem: dict, torch=None) -> dict:
    """Loss and gradients of every engine against tinygrad_act's in float64 after one step; the differences."""
    engines = make_engines(problem, np.float64, torch)
    return differences_from_first(engines)


def run(options) -> dict:
    """Time every engine in float32 and float64 (``--threads`` BLAS/torch threads, one by default)."""
    return with_threads(options, _run)


def _run(options, torch, threads: int, threads_source: str) -> dict:
    steps, batch, features, hidden = SIZES[options.size]
    problem = make_problem(steps, batch, features, hidden)
    check = check_gradients(problem, torch)
    for name, diff in check.items():
        if max(diff.values()) > 1e-10:
            raise AssertionError(f"{name} and tinygrad_act disagree in float64 by {diff}: not the same network")
    result = {
        "network": f"LSTM({features}, {hidden}) over T = {steps}, batch {batch}, linear head on h_T, MSE, SGD",
        "step": "zero grads + forward over T steps + loss + backward through time + SGD update",
        "threads": {"numpy_blas": threads, "source": threads_source, "torch": torch and torch.get_num_threads()},
        "torch": None if torch is None else torch.__version__,
        "float64_max_relative_difference_vs_tinygrad_act": check,
        "dtypes": [time_engines(problem, dtype, torch, *TIMING[options.size]) for dtype in DTYPES],
    }
    rows = []
    for entry in result["dtypes"]:
        ms = [entry[name]["ms_per_step"] if name in entry else None for name in ENGINES]
        ratios = [entry.get(f"tinygrad_act_over_{name.replace(' ', '_')}") for name in ENGINES[1:]]
        rows.append([entry["dtype"], *ms, *(None if r is None else f"{r:.2f}x" for r in ratios)])
    print(f"recurrent: {result['network']}; medians over alternating rounds; {threads} thread(s)")
    print(f"torch {result['torch'] or 'not run'}: torch = nn.LSTM (its C++ loop), torch loop = the cell in Python")
    headers = ["dtype", *(f"{name} ms" for name in ENGINES), *(f"ours/{name}" for name in ENGINES[1:])]
    print(table(headers, rows))
    if options.profile:
        engine = TinygradActEngine(cast(problem, np.float32))
        result["profile"] = profile_top(lambda: [engine.step(LEARNING_RATE) for _ in range(5)])
        print("\nprofile of tinygrad_act, LSTM step float32, 5 steps, top functions by own time:")
        print(profile_table(result["profile"]))
    return result


ENGINES = ("tinygrad_act", "numpy", "torch", "torch loop")


def time_engines(problem: dict, dtype, torch, rounds: int, block: float) -> dict:
    """Every engine's step in ``dtype``, in alternating rounds: per engine the time per step, and our ratios."""
    engines = make_engines(problem, dtype, torch)
    runners = {e.name: (lambda n, e=e: [e.step(LEARNING_RATE) for _ in range(n)]) for e in engines}
    seconds = interleaved_timing(runners, rounds, block)["seconds"]
    entry = {"dtype": np.dtype(dtype).name}
    for name, samples in seconds.items():
        stats = summarize(samples)
        entry[name] = {**stats, "ms_per_step": 1e3 * stats["median"], "seconds_per_step": samples}
        if name != "tinygrad_act":
            entry[f"tinygrad_act_over_{name.replace(' ', '_')}"] = paired_ratio(seconds["tinygrad_act"], samples)
    return entry
