"""Section ``memory``: the peak memory of training steps, each engine measured in a fresh subprocess.

Method. A child process imports its engine, builds the weights and the batch in the benchmark's dtype and
warms up the BLAS (whose per-thread buffers are not the step's doing); that is the baseline. Then it builds
the engine's model around those same arrays (no copies: the numpy floor allocates its activation, gradient
and update buffers here, tinygrad_act allocates its graph and gradients in the step) and runs two training
steps (the first allocates the gradients, the second shows the steady state). Two measurements, each in its
own process:
- ``rss``: peak resident set size above the baseline. The kernel's high-water mark (VmHWM) is reset to the
  current RSS at the baseline by writing 5 to /proc/self/clear_refs; where that is refused we fall back to
  ru_maxrss, which may hide a peak lower than an earlier transient (the result says which was used).
- ``tracemalloc``: peak of the bytes allocated after the baseline and still alive, counted by Python's
  tracemalloc, to which numpy reports every array buffer: exact and free of allocator effects, but blind to
  PyTorch's allocator (so not run for torch).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys

import numpy as np

from .common import REPO, optional_import, table


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure_in_this_process(engine_name: str, dtype_name: str, depth: int, width: int, batch: int, method: str):
    """The child's work: returns the peak bytes above the baseline (see the module docstring)."""
    from . import tensor_mlp

    torch = optional_import("torch") if engine_name == "torch" else None
    if engine_name == "torch" and torch is None:
        raise SystemExit("torch is not installed")
    dtype = np.dtype(dtype_name)
    problem = tensor_mlp.cast(tensor_mlp.make_problem(depth, width, batch), dtype, copy=False)
    np.ones((64, 64), dtype) @ np.ones((64, 64), dtype)  # BLAS warm-up: thread buffers are not the step's
    if torch is not None:
        warm = torch.ones(64, 64, dtype=getattr(torch, dtype_name))
        warm @ warm
    gc.collect()

    def steps():
        if engine_name == "tinygrad_act":
            engine = tensor_mlp.TinygradActEngine(problem)
        elif engine_name == "numpy":
            engine = tensor_mlp.NumpyEngine(problem)
        else:
            engine = tensor_mlp.TorchEngine(problem, torch)
        for _ in range(2):
            engine.step(tensor_mlp.LEARNING_RATE)

    if method == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        steps()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"peak_bytes": peak, "how": "tracemalloc peak after the baseline"}
    baseline_kib = _status_kib("VmRSS")
    if baseline_kib is not None and _reset_peak_rss():
        steps()
        return {"peak_bytes": 1024 * (_status_kib("VmHWM") - baseline_kib), "how": "VmHWM reset at baseline"}
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_bytes": 1024 * (peak_kib - baseline_kib), "how": "ru_maxrss difference (may underestimate)"}


def measure(engine_name: str, dtype_name: str, depth: int, width: int, batch: int, method: str) -> dict:
    """Run one measurement in a fresh interpreter (the same venv) and return its JSON answer."""
    command = [sys.executable, "-m", "bench.memory", engine_name, dtype_name, str(depth), str(width), str(batch)]
    command.append(method)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(options) -> dict:
    from .tensor_mlp import BIG, CLASSES, IN_FEATURES

    depth, width, batch = {"tiny": (2, 16, 8), "quick": (20, 256, 128), "full": BIG}[options.size]
    engines = ["tinygrad_act", "numpy"] + (["torch"] if options.torch and optional_import("torch") else [])
    result = {"depth": depth, "width": width, "batch": batch, "method": __doc__.split("Method. ")[1], "runs": []}
    rows = []
    for dtype_name in ("float64",) if options.size == "tiny" else ("float32", "float64"):
        itemsize = np.dtype(dtype_name).itemsize
        sizes = [IN_FEATURES] + [width] * depth + [CLASSES]
        parameters = itemsize * sum((i + 1) * o for i, o in zip(sizes[:-1], sizes[1:]))
        activations = itemsize * batch * width * depth
        for engine_name in engines:
            run_entry = {"engine": engine_name, "dtype": dtype_name}
            for method in ("rss", "tracemalloc"):
                if method == "tracemalloc" and engine_name == "torch":
                    continue
                run_entry[method] = measure(engine_name, dtype_name, depth, width, batch, method)
            result["runs"].append(run_entry)
            mb = [run_entry.get(m, {}).get("peak_bytes") for m in ("rss", "tracemalloc")]
            rows.append(
                [engine_name, dtype_name]
                + [None if b is None else b / 2**20 for b in mb]
                + [parameters / 2**20, activations / 2**20]
            )
        by_engine = {r["engine"]: r for r in result["runs"] if r["dtype"] == dtype_name}
        for method in ("rss", "tracemalloc"):
            ours = by_engine["tinygrad_act"].get(method, {}).get("peak_bytes")
            floor = by_engine["numpy"].get(method, {}).get("peak_bytes")
            if ours and floor:
                result[f"{dtype_name}_{method}_tinygrad_act_over_numpy"] = ours / floor
    print(
        f"memory: peak above baseline of 2 training steps at (depth, width, batch) = ({depth}, {width}, {batch}), "
        "each engine in a fresh process"
    )
    print(table(["engine", "dtype", "peak RSS MiB", "tracemalloc MiB", "params MiB", "1 activation/layer MiB"], rows))
    ratios = {k: v for k, v in result.items() if k.endswith("_over_numpy")}
    print("tinygrad_act / numpy: " + ", ".join(f"{k.rsplit('_tinygrad', 1)[0]} {v:.2f}x" for k, v in ratios.items()))
    return result


if __name__ == "__main__":
    engine_arg, dtype_arg, depth_arg, width_arg, batch_arg, method_arg = sys.argv[1:7]
    answer = measure_in_this_process(engine_arg, dtype_arg, int(depth_arg), int(width_arg), int(batch_arg), method_arg)
    print(json.dumps(answer))
