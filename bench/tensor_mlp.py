"""Section ``tensor``: one SGD training step of a deep tanh MLP in tinygrad_act, hand-written numpy and PyTorch.

The network: ``depth`` hidden layers of ``width`` tanh units, a linear output of ``CLASSES`` logits, softmax
cross-entropy averaged over the batch, plain SGD. Every engine starts from the same float64 weights (cast to
the benchmark's dtype) and trains on the same fixed batch. The hand-written numpy version has its forward and
backward written out with preallocated buffers: the practical floor for any numpy-based engine. Its gradients
(and PyTorch's) are checked against tinygrad_act's in float64 before anything is timed.

FLOPs per step are counted as 6·B·Σ fan_in·fan_out (forward, dL/dW and dL/dx matmuls; the first layer's
dL/dx, which no engine computes, is counted too: under 1% of the total here). The ceiling is a large square
matmul with the same BLAS threads, timed as one more "engine" in the same alternating rounds, so that it
sees the same machine load as the steps it is compared with.

Threads: one by default (``--threads``) for numpy's BLAS and torch alike. On this shared 2-core machine, two
OpenMP/OpenBLAS threads that busy-wait for each other while a neighbour's process holds a core made a torch
step swing from 7 to 98 ms between identical blocks; one thread gives stable, comparable figures.

Memory: an engine that allocates its arrays in every step (ours eager) depends on the state of glibc's malloc.
Its trim threshold is twice the largest mmapped block freed so far (128 kB before any): in a fresh process the
20x256 float32 eager step frees its ~130 kB arrays at its end, malloc gives the heap back to the OS, and the next
step faults it in again: 1,100-2,100 minor page faults a step, 19-20 ms of CPU against 15-16 ms once an 8 MB
array has been freed or with MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_ set (resource.getrusage and
strace, 2026-12-07). Here the ceiling's random matrices are such arrays, freed before any step is timed: the
figures are those of a process whose allocator has grown; in a fresh process that size's eager step can be a
fifth to a third slower (the floors allocate nothing in a step; the captured step neither).
"""

from __future__ import annotations

import itertools

import numpy as np
from tinygrad_act.optim import SGD

from tinygrad_act import Tensor
from tinygrad_act.nn import MLP, cross_entropy
from tinygrad_act.nn.step import Step

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

CONFIGS = ((20, 64, 64), (20, 256, 128), (20, 1024, 256), (50, 128, 128))  # (depth, width, batch)
BIG = (20, 1024, 256)  # slow: fewer rounds, and left out of --quick
DTYPES = (np.float32, np.float64)
IN_FEATURES = 32
CLASSES = 10
LEARNING_RATE = 1e-3


def make_problem(depth: int, width: int, batch: int, seed: int = 0) -> dict:
    """float64 weights (fan_in, fan_out), LeCun-normal so tanh neither saturates nor dies; one batch of data."""
    rng = np.random.default_rng(seed)
    sizes = [IN_FEATURES] + [width] * depth + [CLASSES]
    weights = [rng.standard_normal((i, o)) / np.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [0.1 * rng.standard_normal(o) for o in sizes[1:]]
    x = rng.standard_normal((batch, IN_FEATURES))
    y = rng.integers(0, CLASSES, batch)
    return {"weights": weights, "biases": biases, "x": x, "y": y}


def flops_per_step(problem: dict) -> int:
    batch = problem["x"].shape[0]
    return 6 * batch * sum(w.shape[0] * w.shape[1] for w in problem["weights"])


def cast(problem: dict, dtype, copy: bool = True) -> dict:
    """The problem in ``dtype``; with ``copy`` every engine gets arrays of its own (they train in place)."""

    def convert(a):
        return a.astype(dtype, copy=copy)

    return {
        "weights": [convert(w) for w in problem["weights"]],
        "biases": [convert(b) for b in problem["biases"]],
        "x": convert(problem["x"]),
        "y": problem["y"],
    }


# ---- tinygrad_act -----------------------------------------------------------------------------------------
def build_tinygrad_act_model(problem: dict):
    """The model as a user builds it: nn.MLP with the problem's weights, nn.cross_entropy, optim.SGD."""
    weights, biases = problem["weights"], problem["biases"]
    dtype = weights[0].dtype
    model = MLP(
        weights[0].shape[0],
        [w.shape[1] for w in weights[:-1]],
        weights[-1].shape[1],
        activation="tanh",
        init="zeros",
        dtype=dtype,
    )
    for layer, W, b in zip(model.layers, weights, biases):
        layer.weight.data, layer.bias.data = W, b
    return model


class TinygradActEngine:
    name = "tinygrad_act"

    def __init__(self, problem: dict):
        self.model = build_tinygrad_act_model(problem)
        self.params = [p for layer in self.model.layers for p in (layer.weight, layer.bias)]
        self.optimizer = SGD(self.params, lr=LEARNING_RATE)
        self.x = Tensor(problem["x"])
        self.y = problem["y"]

    def step(self, lr: float) -> float:
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        loss = cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def gradients(self) -> list:
        return [p.grad for p in self.params]


class CapturedEngine(TinygradActEngine):
    """The same model and optimizer through nn.step.Step, as the laboratory's runner trains: the first step
    records the graph, every later one replays it (preallocated arrays, flat buffers, one fused SGD update)."""

    name = "captured"

    def __init__(self, problem: dict):
        super().__init__(problem)
        self.captured = Step(self.model, self.optimizer)
        self.x = problem["x"]

    def step(self, lr: float) -> float:
        self.optimizer.lr = lr
        loss, _ = self.captured(self.x, self.y)
        self.captured.update()
        return loss


# ---- hand-written numpy: the floor ------------------------------------------------------------------------
class NumpyEngine:
    """Forward and backward written out, every buffer allocated once; gradients in ``grad_*``."""

    name = "numpy"

    def __init__(self, problem: dict):
        self.W, self.b, self.x, self.y = problem["weights"], problem["biases"], problem["x"], problem["y"]
        batch, dtype = self.x.shape[0], self.x.dtype
        self.rows = np.arange(batch)
        self.h = [np.empty((batch, W.shape[1]), dtype) for W in self.W]  # each layer's output (last: logits)
        self.pre = self.h[:-1]  # each hidden layer's input: tanh runs in place, 1 - y^2 needs only its output
        # dL/d(input of a layer), ping-ponged between two buffers per shape, and one scratch buffer per shape
        shapes = {(batch, W.shape[0]) for W in self.W[1:]}
        self.delta = {shape: (np.empty(shape, dtype), np.empty(shape, dtype)) for shape in shapes}
        self.scratch = {shape: np.empty(shape, dtype) for shape in shapes}
        self.grad_W = [np.empty_like(W) for W in self.W]
        self.grad_b = [np.empty_like(b) for b in self.b]
        self.update = {W.shape: np.empty_like(W) for W in self.W}
        self.update.update({b.shape: np.empty_like(b) for b in self.b})

    def step(self, lr: float) -> float:
        W, b, h, last = self.W, self.b, self.h, len(self.W) - 1
        inp = self.x
        for i in range(last + 1):
            out = self.pre[i] if i < last else h[i]  # the layer's input x, before tanh
            np.matmul(inp, W[i], out=out)
            out += b[i]
            if i < last:
                np.tanh(out, out=h[i])
            inp = h[i]
        logits = h[last]
        logits -= logits.max(axis=1, keepdims=True)  # shifted logits: log-softmax is unchanged
        picked = logits[self.rows, self.y]  # a copy: the shifted logit of each true class
        np.exp(logits, out=logits)
        total = logits.sum(axis=1, keepdims=True)
        batch = len(self.rows)
        loss = float(np.mean(np.log(total[:, 0]) - picked))  # -log softmax[y] = log(sum exp) - shifted[y]
        logits /= total  # softmax; dL/dlogits = (softmax - onehot) / batch
        logits[self.rows, self.y] -= 1.0
        logits *= 1.0 / batch
        delta = logits
        for i in range(last, -1, -1):
            inp = self.x if i == 0 else h[i - 1]
            np.matmul(inp.T, delta, out=self.grad_W[i])
            np.sum(delta, axis=0, out=self.grad_b[i])
            if i > 0:
                shape = inp.shape
                d = self.delta[shape][i % 2]  # never the buffer `delta` is read from
                s = self.scratch[shape]
                np.matmul(delta, W[i].T, out=d)
                d *= self.tanh_slope(i - 1, s)
                delta = d
        for params, grads in ((W, self.grad_W), (b, self.grad_b)):
            for p, g in zip(params, grads):
                u = self.update[p.shape]
                np.multiply(g, lr, out=u)
                p -= u
        return loss

    def tanh_slope(self, i: int, s: np.ndarray) -> np.ndarray:
        """tanh' of hidden layer ``i`` into ``s``: 1 - tanh^2 from the saved output (2 passes)."""
        y = self.h[i]
        np.multiply(y, y, out=s)
        return np.subtract(1.0, s, out=s)

    def gradients(self) -> list:
        return [g for pair in zip(self.grad_W, self.grad_b) for g in pair]


class NumpyExactEngine(NumpyEngine):
    """The floor with tanh' as the engine computes it: from the input, exact in the tails (where 1 - y^2 is 0).

    Written here on its own (not imported from the package): tanh'(x) = 4 e^(-2|x|) / (1 + e^(-2|x|))^2, in the
    fewest passes we know: -2|x| may overflow to -inf past half the largest float (then e^-inf = 0, as it is from
    |x| = 52 in float32, 373 in float64), a warning silenced rather than a clip of |x| (np.minimum is a slow pass).
    The forward keeps each hidden layer's input x (matmul + bias) in an array of its own, as the engine does.
    """

    name = "numpy exact"

    def __init__(self, problem: dict):
        super().__init__(problem)
        self.pre = [np.empty_like(h) for h in self.h[:-1]]
        self.denominator = {shape: np.empty(shape, self.x.dtype) for shape in self.scratch}

    def tanh_slope(self, i: int, s: np.ndarray) -> np.ndarray:
        """4 e^(-2|x|) / (1 + e^(-2|x|))^2 of hidden layer ``i``'s input into ``s`` (7 passes)."""
        d = self.denominator[s.shape]
        np.absolute(self.pre[i], out=s)
        with np.errstate(over="ignore"):
            np.multiply(s, -2.0, out=s)
        np.exp(s, out=s)
        np.add(s, 1.0, out=d)
        np.multiply(d, d, out=d)
        np.multiply(s, 4.0, out=s)
        return np.divide(s, d, out=s)


# ---- PyTorch eager --------------------------------------------------------------------------------------
class TorchEngine:
    name = "torch"

    def __init__(self, problem: dict, torch):
        self.torch = torch
        self.params = []
        for W, b in zip(problem["weights"], problem["biases"]):
            self.params += [torch.from_numpy(W).requires_grad_(), torch.from_numpy(b).requires_grad_()]
        self.x = torch.from_numpy(problem["x"])
        self.y = torch.from_numpy(problem["y"])

    def step(self, lr: float) -> float:
        torch, params = self.torch, self.params
        for p in params:
            p.grad = None
        h = self.x
        for i in range(0, len(params) - 2, 2):
            h = (h @ params[i] + params[i + 1]).tanh()
        logits = h @ params[-2] + params[-1]
        loss = torch.nn.functional.cross_entropy(logits, self.y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=lr)
        return loss.item()

    def gradients(self) -> list:
        return [p.grad.numpy() for p in self.params]


def make_engines(problem: dict, dtype, torch=None, copy: bool = True) -> list:
    kinds = (TinygradActEngine, CapturedEngine, NumpyEngine, NumpyExactEngine)
    engines = [kind(cast(problem, dtype, copy)) for kind in kinds]
    if torch is not None:
        engines.append(TorchEngine(cast(problem, dtype, copy), torch))
    return engines


def check_gradients(problem: dict, dtype, torch=None) -> dict:
    """Loss and gradients of every engine against tinygrad_act's after one step; returns the differences."""
    engines = make_engines(problem, dtype, torch)
    return differences_from_first(engines)


CEILING = "matmul ceiling"


def matmul_runner(dtype, n: int):
    """Runs ``k`` n×n by n×n matmuls (2n³ FLOPs each): what the BLAS can do on this machine right now."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)

    def run_matmuls(k):
        for _ in range(k):
            np.matmul(a, b, out=out)

    return run_matmuls


def run(options) -> dict:
    """Time every engine on every (config, dtype); returns every number measured."""
    return with_threads(options, _run)


def _run(options, torch, threads: int, threads_source: str) -> dict:
    if options.size == "tiny":
        configs, ceiling_n, rounds, block = ((2, 16, 8),), 128, 2, 0.005
    elif options.size == "quick":
        configs, ceiling_n, rounds, block = tuple(c for c in CONFIGS if c != BIG), 1024, 3, 0.05
    else:
        configs, ceiling_n, rounds, block = CONFIGS, 1024, 9, 0.25
    result = {
        "network": f"{IN_FEATURES} inputs, depth x (width tanh units), {CLASSES} logits, softmax cross-entropy, SGD",
        "step": "zero grads + forward + loss + backward + SGD update",
        "threads": {"numpy_blas": threads, "source": threads_source, "torch": torch and torch.get_num_threads()},
        "torch": None if torch is None else torch.__version__,
        "ceiling": f"{ceiling_n}x{ceiling_n} matmul, timed as one more engine in the same rounds",
        "configs": [],
    }
    matmuls = {dtype: matmul_runner(dtype, ceiling_n) for dtype in DTYPES}

    # Correctness first: the same network must give the same gradients in every engine.
    check = check_gradients(make_problem(*configs[0]), np.float64, torch)
    result["float64_max_relative_difference_vs_tinygrad_act"] = check
    for name, diff in check.items():
        if max(diff.values()) > 1e-10:
            raise AssertionError(f"{name} and tinygrad_act disagree in float64 by {diff}: not the same network")

    rows = []
    for depth, width, batch in configs:
        problem = make_problem(depth, width, batch)
        flops = flops_per_step(problem)
        for dtype in DTYPES:
            dtype_name = np.dtype(dtype).name
            engines = make_engines(problem, dtype, torch)
            runners = {e.name: (lambda n, e=e: [e.step(LEARNING_RATE) for _ in range(n)]) for e in engines}
            runners[CEILING] = matmuls[dtype]
            big = (depth, width, batch) == BIG  # one step per block; the matmul block still lasts ~0.3 s
            timing = interleaved_timing(runners, 5 if big else rounds, 0.3 if big else block)
            seconds = timing["seconds"]
            ceiling_seconds = seconds.pop(CEILING)
            ceiling_flops = 2 * ceiling_n**3
            entry = {"depth": depth, "width": width, "batch": batch, "dtype": dtype_name, "flops_per_step": flops}
            entry["ceiling_gflops"] = ceiling_flops / summarize(ceiling_seconds)["median"] / 1e9
            for name, samples in seconds.items():
                stats = summarize(samples)
                entry[name] = {
                    **stats,
                    "ms_per_step": 1e3 * stats["median"],
                    "gflops": flops / stats["median"] / 1e9,
                    # per round: (flops / t_engine) / (ceiling_flops / t_matmul), then the median
                    "fraction_of_ceiling": flops / ceiling_flops * paired_ratio(ceiling_seconds, samples),
                    "seconds_per_step": samples,
                    "steps_per_block": timing["iterations_per_block"][name],
                }
            entry["tinygrad_act_over_numpy"] = paired_ratio(seconds["tinygrad_act"], seconds["numpy"])
            entry["captured_over_numpy"] = paired_ratio(seconds["captured"], seconds["numpy"])
            # the honest floor: the same arithmetic as the engine (tanh' exact in the tails), and its own cost
            entry["tinygrad_act_over_numpy_exact"] = paired_ratio(seconds["tinygrad_act"], seconds["numpy exact"])
            entry["captured_over_numpy_exact"] = paired_ratio(seconds["captured"], seconds["numpy exact"])
            entry["exact_tails_cost"] = paired_ratio(seconds["numpy exact"], seconds["numpy"])
            if "torch" in seconds:
                entry["tinygrad_act_over_torch"] = paired_ratio(seconds["tinygrad_act"], seconds["torch"])
            result["configs"].append(entry)
            names = ("tinygrad_act", "captured", "numpy", "numpy exact", "torch")
            ms = [entry[n]["ms_per_step"] if n in entry else None for n in names]
            gf = [entry[n]["gflops"] if n in entry else None for n in ("tinygrad_act", "numpy", "torch")]
            over_torch = entry.get("tinygrad_act_over_torch")
            keys = ("tinygrad_act_over_numpy", "captured_over_numpy", "tinygrad_act_over_numpy_exact")
            ratios = [f"{entry[key]:.2f}x" for key in (*keys, "captured_over_numpy_exact", "exact_tails_cost")]
            rows.append(
                [depth, width, batch, dtype_name, *ms, *ratios]
                + [None if over_torch is None else f"{over_torch:.2f}x", *gf, entry["ceiling_gflops"]]
                + [f"{100 * entry[n]['fraction_of_ceiling']:.0f}%" for n in ("tinygrad_act", "numpy")]
            )

    print(
        f"tensor: training step of a tanh MLP ({IN_FEATURES} inputs, {CLASSES} classes); medians over alternating "
        f"rounds; BLAS threads {threads} ({threads_source}); torch {result['torch'] or 'not run'}"
    )
    print(f"ceiling: a {ceiling_n}x{ceiling_n} matmul timed in the same rounds; % ceil = GFLOP/s over the ceiling's")
    print("floors: numpy = hand-written, tanh' = 1 - y^2 (2 passes); exact = hand-written, tanh' exact in the tails")
    print("as the engine computes it (7 passes); exact/numpy = what exact tails cost the hand-written step")
    print(
        table(
            ["depth", "width", "batch", "dtype", "ours ms", "captured ms", "numpy ms", "exact ms", "torch ms"]
            + ["ours/numpy", "captured/numpy", "ours/exact", "captured/exact", "exact/numpy", "ours/torch"]
            + ["ours GF/s", "numpy GF/s", "torch GF/s", "ceiling GF/s", "ours % ceil", "numpy % ceil"],
            rows,
        )
    )
    if options.profile:
        result["profile"] = {}
        for (depth, width, batch), kind in itertools.product(configs[:2], (TinygradActEngine, CapturedEngine)):
            engine = kind(cast(make_problem(depth, width, batch), np.float32))
            engine.step(LEARNING_RATE)  # the captured engine records here: the profile shows the replays
            steps = 50 if width <= 64 else 10
            key = f"{engine.name} ({depth}, {width}, {batch}) float32, {steps} steps"
            result["profile"][key] = profile_top(lambda e=engine, s=steps: [e.step(LEARNING_RATE) for _ in range(s)])
            print(f"\nprofile of {engine.name}, tensor {key}, top functions by own time:")
            print(profile_table(result["profile"][key]))
    return result
