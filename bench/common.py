"""What every benchmark section shares: interleaved timing, machine description, tables, optional engines.

Timing rule (the machine is shared and noisy): engines are measured side by side in one process, in rounds;
each round times one block of iterations of every engine in turn (A B C, then B C A, ...), so that drift in
the machine's speed hits all engines alike. We report the median over rounds of the time per iteration, and
ratios as the median over rounds of the per-round ratio (a paired comparison, robust to slow drift).
"""

from __future__ import annotations

import datetime
import importlib
import math
import os
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def optional_import(name: str):
    """The module, or None when it is not installed (torch, micrograd and threadpoolctl are optional)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# ---- timing ---------------------------------------------------------------------------------------------------
def interleaved_timing(
    runners: dict,
    rounds: int,
    block_seconds: float,
    before=None,
    warmup: int = 0,
    min_iterations: int = 1,
    max_iterations: int = 10_000,
) -> dict:
    """Time ``runners[name](n)`` (which runs ``n`` iterations) in alternating rounds.

    Each engine is first warmed up and calibrated: its block holds as many iterations as fill about
    ``block_seconds`` (at least ``min_iterations``). Before every block, untimed: ``before()`` if given
    (e.g. ``gc.collect``, so that no engine's garbage is collected on another engine's clock), then
    ``warmup`` iterations of the same engine (to reach its steady state again, e.g. its rhythm of garbage
    collections). Returns ``{"seconds": {name: [seconds per iteration, one per round]},
    "iterations_per_block": {name: n}}``.
    """
    names = list(runners)

    def prepare(name, minimum_warmup=0):
        if before is not None:
            before()
        if max(warmup, minimum_warmup):
            runners[name](max(warmup, minimum_warmup))

    iterations = {}
    for name in names:
        prepare(name, minimum_warmup=1)  # first-call allocations, caches, lazy imports
        start = time.perf_counter()
        runners[name](1)
        once = max(time.perf_counter() - start, 1e-7)
        iterations[name] = max(min_iterations, min(max_iterations, round(block_seconds / once)))
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            prepare(name)
            n = iterations[name]
            start = time.perf_counter()
            runners[name](n)
            samples[name].append((time.perf_counter() - start) / n)
    return {"seconds": samples, "iterations_per_block": iterations}


def summarize(samples: list) -> dict:
    """Median and spread (min, max, relative interquartile range) of one engine's per-round times."""
    q = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [samples[0]] * 3
    median = statistics.median(samples)
    return {"median": median, "min": min(samples), "max": max(samples), "iqr_rel": (q[2] - q[0]) / median}


def paired_ratio(numerator: list, denominator: list) -> float:
    """Median over rounds of numerator/denominator measured in the same round."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


# ---- the machine --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> dict:
    """numpy's BLAS as built (name, version) and as loaded (threads, kernel), via threadpoolctl when present."""
    info = {}
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(name=deps.get("name"), version=deps.get("version"))
    except Exception:  # noqa: BLE001 - older numpy: the build description is optional
        pass
    threadpoolctl = optional_import("threadpoolctl")
    if threadpoolctl is not None:
        for pool in threadpoolctl.threadpool_info():
            if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
                info.update(
                    threads=pool.get("num_threads"),
                    kernel=pool.get("architecture"),
                    threading_layer=pool.get("threading_layer"),
                )
                break
    return info


def numpy_blas_threads() -> tuple[int, str]:
    """How many threads numpy's BLAS uses, and how we know it."""
    threads = blas_info().get("threads")
    if threads:
        return int(threads), "threadpoolctl"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), var
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(), "assumed: all cores"


def with_threads(options, body):
    """``body(options, torch, threads, source)`` with numpy's BLAS and torch limited to ``options.threads`` threads
    (0: numpy's default); torch is the module when ``options.torch`` and it is installed, else None."""
    torch = optional_import("torch") if options.torch else None
    threadpoolctl = optional_import("threadpoolctl")
    default_threads, threads_source = numpy_blas_threads()
    threads = options.threads or default_threads
    if threads != default_threads and threadpoolctl is None:
        print(f"threadpoolctl is not installed: numpy's BLAS keeps {default_threads} threads ({threads_source})")
        threads = default_threads
    if torch is not None:
        torch.set_num_threads(threads)
    if threadpoolctl is None:
        return body(options, torch, threads, threads_source)
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        return body(options, torch, threads, "threadpoolctl")


def git_revision() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return commit + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict:
    """Everything a reader needs to compare these numbers with another run."""
    versions = {}
    for dist in ("numpy", "torch", "micrograd", "threadpoolctl"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    env = {k: v for k, v in os.environ.items() if k.endswith(("_NUM_THREADS", "CORETYPE", "L2_SIZE"))}
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": versions,
        "blas": blas_info(),
        "thread_env": env,
        "git": git_revision(),
    }


# ---- printing -------------------------------------------------------------------------------------------------
def table(headers: list, rows: list) -> str:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if _is_numeric(c) else c.ljust(w) for c, w in zip(row, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if magnitude >= 0.1 else f"{value:.3g}"
    return str(value)


def _is_numeric(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
        return True
    except ValueError:
        return text == "-"


def profile_top(fn, top: int = 15) -> list:
    """Run ``fn()`` under cProfile; the ``top`` functions by own time (tottime), as dicts."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler).stats
    total = sum(entry[2] for entry in stats.values())
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.items():
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        rows.append({"function": f"{function} ({where})", "calls": calls, "tottime": tottime, "cumtime": cumtime})
    rows.sort(key=lambda row: row["tottime"], reverse=True)
    for row in rows:
        row["share"] = row["tottime"] / total if total else 0.0
    return rows[:top]


def profile_table(rows: list) -> str:
    return table(
        ["function", "calls", "own s", "own %", "cumulative s"],
        [[r["function"], r["calls"], r["tottime"], f"{100 * r['share']:.1f}%", r["cumtime"]] for r in rows],
    )


def differences_from_first(engines: list) -> dict:
    """One step (lr 0) of every engine: each one's relative loss and largest gradient difference from the first's."""
    losses = [engine.step(0.0) for engine in engines]
    reference = engines[0].gradients()
    return {
        engine.name: {
            "loss": abs(loss - losses[0]) / abs(losses[0]),
            "gradients": max_relative_difference(engine.gradients(), reference),
        }
        for engine, loss in zip(engines[1:], losses[1:])
    }


def max_relative_difference(a: list, b: list) -> float:
    """Largest |a - b| over all arrays, each relative to the largest |b| of its array."""
    worst = 0.0
    for x, y in zip(a, b):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        scale = max(float(np.max(np.abs(y))), 1e-300)
        worst = max(worst, float(np.max(np.abs(x - y))) / scale)
    return worst
