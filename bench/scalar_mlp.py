"""Section ``scalar``: tinygrad_act's Value against micrograd's Value on identical MLP work.

Both engines run the same network (micrograd's MLP: ReLU hidden layers, linear output), with the same
weights, on the same samples; each iteration is zero_grad + forward over a small batch + sum of squared
errors + backward. Each neuron sums ``b + w0*x0 + w1*x1 + ...`` in that order in both engines (micrograd's
``sum(..., self.b)``), inputs are plain floats in both (as in micrograd's README), so both compute the
same loss and gradients, which we check before timing. Python's garbage collector stays enabled during the
timed blocks, as users run both engines; micrograd's graph holds reference cycles (each node's backward
closure refers to the node), so its graphs are freed by the collector, ours by reference counting.
"""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

from tinygrad_act import Value
from tinygrad_act.engine.graph import topological_order

from .common import interleaved_timing, optional_import, paired_ratio, profile_table, profile_top, summarize, table

ARCHITECTURE = (3, (16, 16, 1))  # micrograd's MLP(nin=3, nouts=[16, 16, 1])


def make_problem(nin: int, nouts, n_samples: int, seed: int = 0) -> dict:
    """Weights (per layer: rows of fan_in weights, biases) and samples, as Python floats."""
    rng = np.random.default_rng(seed)
    sizes = [nin, *nouts]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights = rng.uniform(-1.0, 1.0, (fan_out, fan_in)).tolist()  # micrograd's own init range
        biases = rng.uniform(-0.1, 0.1, fan_out).tolist()
        layers.append((weights, biases))
    xs = rng.standard_normal((n_samples, nin)).tolist()
    ys = rng.standard_normal(n_samples).tolist()
    return {"layers": layers, "xs": xs, "ys": ys}


class TinyMLP:
    """micrograd's MLP written with tinygrad_act Values: ReLU on hidden layers, linear output."""

    def __init__(self, layers):
        self.layers = [[([Value(w) for w in row], Value(b)) for row, b in zip(W, bs)] for W, bs in layers]
        self.params = [p for layer in self.layers for ws, b in layer for p in (*ws, b)]

    def __call__(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out = []
            for ws, b in layer:
                act = b
                for w, xi in zip(ws, x):
                    act = act + w * xi
                out.append(act if i == last else act.relu())
            x = out
        return x[0] if len(x) == 1 else x

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()


def micrograd_mlp(problem: dict, micrograd_nn):
    """micrograd's own MLP with our weights copied in."""
    sizes = [len(problem["xs"][0])] + [len(bs) for _, bs in problem["layers"]]
    model = micrograd_nn.MLP(sizes[0], sizes[1:])
    for layer, (W, bs) in zip(model.layers, problem["layers"]):
        for neuron, row, b in zip(layer.neurons, W, bs):
            for w, value in zip(neuron.w, row):
                w.data = value
            neuron.b.data = b
    return model


def squared_error(model, xs, ys):
    """Sum over samples of (model(x) - y)^2: the same expression for both engines."""
    return sum((model(x) - y) ** 2 for x, y in zip(xs, ys))


def training_iteration(model, xs, ys):
    model.zero_grad()
    loss = squared_error(model, xs, ys)
    loss.backward()
    return loss


def check_same_results(ours, theirs, xs, ys, tolerance: float = 1e-9) -> float:
    """Both engines give the same loss and gradients; returns the largest difference (relative to max(1, |x|))."""
    loss_a = training_iteration(ours, xs, ys).data
    loss_b = training_iteration(theirs, xs, ys).data
    worst = abs(loss_a - loss_b) / max(1.0, abs(loss_b))
    for p, q in zip(ours.params, theirs.parameters()):
        assert p.data == q.data, "weights were not copied identically"
        worst = max(worst, abs(p.grad - q.grad) / max(1.0, abs(q.grad)))
    if worst > tolerance:
        raise AssertionError(f"tinygrad_act and micrograd disagree by {worst:.3g} (> {tolerance}): not the same work")
    return worst


def run(options) -> dict:
    """Time both engines; returns every number measured."""
    nin, nouts = ARCHITECTURE
    n_samples = 4 if options.size == "tiny" else 16
    rounds = {"tiny": 2, "quick": 3, "full": 7}[options.size]
    block = {"tiny": 0.01, "quick": 0.3, "full": 0.75}[options.size]
    warmup = {"tiny": 0, "quick": 2, "full": 2}[options.size]  # iterations to reach the gc's steady rhythm
    min_iterations = {"tiny": 1, "quick": 3, "full": 6}[options.size]  # a whole rhythm of full collections
    problem = make_problem(nin, nouts, n_samples)
    xs, ys = problem["xs"], problem["ys"]
    ours = TinyMLP(problem["layers"])
    nodes = len(topological_order(squared_error(ours, xs, ys)))
    micrograd_nn = optional_import("micrograd.nn")

    engines = {"tinygrad_act": ours}
    result = {
        "architecture": f"MLP(nin={nin}, nouts={list(nouts)}), ReLU hidden, linear out",
        "samples_per_iteration": n_samples,
        "graph_nodes_per_iteration": nodes,
        "parameters": len(ours.params),
        "iteration": "zero_grad + forward + sum of squared errors + backward",
        "gc": {
            "thresholds": gc.get_threshold(),
            "tracked_objects_at_start": len(gc.get_objects()),
            "method": "before each timed block: gc.collect() and 2 untimed iterations of the same engine",
        },
    }
    if micrograd_nn is None:
        result["micrograd"] = "not installed (pip install -e '.[bench]')"
    else:
        theirs = micrograd_mlp(problem, micrograd_nn)
        result["max_difference_vs_micrograd"] = check_same_results(ours, theirs, xs, ys)
        engines = {"micrograd": theirs, **engines}

    gc_clock = _GcClock()
    gc.callbacks.append(gc_clock)
    gc_seconds = {}

    def runner(name, model, gc_enabled):
        def run_iterations(n):
            if not gc_enabled:
                gc.disable()
            spent = gc_clock.seconds
            try:
                for _ in range(n):
                    training_iteration(model, xs, ys)
            finally:
                gc.enable()
            gc_seconds[name].append((gc_clock.seconds - spent) / n)

        return run_iterations

    rows = []
    try:
        for gc_mode, gc_enabled in (("gc enabled (default)", True), ("gc disabled in the timed block", False)):
            if not gc_enabled and options.size != "full":
                continue
            gc_seconds.update({name: [] for name in engines})
            runners = {name: runner(name, model, gc_enabled) for name, model in engines.items()}
            timing = interleaved_timing(
                runners, rounds, block, before=gc.collect, warmup=warmup, min_iterations=min_iterations
            )
            seconds = timing["seconds"]
            measured = {}
            for name, samples in seconds.items():
                stats = summarize(samples)
                in_gc = statistics.median(gc_seconds[name][-rounds:])
                measured[name] = {
                    **stats,
                    "us_per_sample": 1e6 * stats["median"] / n_samples,
                    "samples_per_second": n_samples / stats["median"],
                    "ns_per_node": 1e9 * stats["median"] / nodes,
                    "gc_fraction": in_gc / stats["median"],
                    "seconds_per_iteration": samples,
                    "iterations_per_block": timing["iterations_per_block"][name],
                }
            if "micrograd" in seconds:
                measured["speedup_vs_micrograd"] = paired_ratio(seconds["micrograd"], seconds["tinygrad_act"])
            result[gc_mode] = measured
            for name in engines:
                m = measured[name]
                speedup = measured.get("speedup_vs_micrograd") if name == "tinygrad_act" else None
                rows.append(
                    [gc_mode, name, m["us_per_sample"], m["samples_per_second"], m["ns_per_node"]]
                    + [f"{100 * m['gc_fraction']:.0f}%", f"{100 * m['iqr_rel']:.0f}%"]
                    + [None if speedup is None else f"{speedup:.2f}x"]
                )
    finally:
        gc.callbacks.remove(gc_clock)

    print(
        f"scalar: {result['architecture']}, {n_samples} samples/iteration, {nodes} graph nodes/iteration, "
        f"{rounds} rounds alternating engines, medians"
    )
    print(table(["gc", "engine", "us/sample", "samples/s", "ns/node", "in gc", "IQR", "speedup vs micrograd"], rows))
    if options.size != "tiny":
        result["phases"] = phase_times(engines, xs, ys, rounds)
        print("\nphases, gc disabled (ns per graph node, median over rounds alternating engines):")
        print(
            table(
                ["engine", "zero_grad", "forward + loss", "backward"],
                [[name, *(1e9 * t / nodes for t in result["phases"][name].values())] for name in engines],
            )
        )
    if options.profile:
        result["profile"] = profile_top(lambda: [training_iteration(ours, xs, ys) for _ in range(20)])
        result["profile_note"] = "cProfile of 20 tinygrad_act iterations, top functions by own time"
        print(f"\nprofile of tinygrad_act, scalar ({result['profile_note']}):")
        print(profile_table(result["profile"]))
    return result


def phase_times(engines: dict, xs, ys, rounds: int, iterations: int = 5) -> dict:
    """Median seconds per iteration of zero_grad, forward + loss, and backward, with the gc switched off."""
    laps = {name: {"zero_grad": [], "forward": [], "backward": []} for name in engines}
    for r in range(rounds):
        for name in list(engines)[r % 2 :] + list(engines)[: r % 2]:
            model, total = engines[name], dict.fromkeys(laps[name], 0.0)
            gc.collect()
            gc.disable()
            try:
                for _ in range(iterations):
                    t0 = time.perf_counter()
                    model.zero_grad()
                    t1 = time.perf_counter()
                    loss = squared_error(model, xs, ys)
                    t2 = time.perf_counter()
                    loss.backward()
                    t3 = time.perf_counter()
                    for phase, seconds in zip(total, (t1 - t0, t2 - t1, t3 - t2)):
                        total[phase] += seconds
            finally:
                gc.enable()
            for phase, seconds in total.items():
                laps[name][phase].append(seconds / iterations)
    return {name: {phase: statistics.median(v) for phase, v in phases.items()} for name, phases in laps.items()}


class _GcClock:
    """A gc callback that adds up the time spent in Python's cyclic garbage collector."""

    def __init__(self):
        self.seconds, self._start = 0.0, 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start


def loss_and_gradients(engine: str, problem: dict):
    """One iteration on one engine: (loss, gradients in parameter order) as floats (used by the tests)."""
    xs, ys = problem["xs"], problem["ys"]
    if engine == "tinygrad_act":
        model = TinyMLP(problem["layers"])
        loss = training_iteration(model, xs, ys)
        return loss.data, [p.grad for p in model.params]
    model = micrograd_mlp(problem, optional_import("micrograd.nn"))
    loss = training_iteration(model, xs, ys)
    return loss.data, [float(p.grad) for p in model.parameters()]
