"""Section ``engine``: the default-shaped run (depth 20, width 64, sigmoid, batch 64, MNIST-1D, float64, on the CPU)
trained by the numpy engine and by ``engine = "torch"`` (tinygrad_act/torch/engine.py), side by side in alternating
rounds in one process: each engine's run time (summary.json's wall_time_s: training, evaluation, the files; no
figures) and their ratio, torch over numpy, the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import tinygrad_act

from .common import paired_ratio, table

SIZES = {"full": (1000, 3), "quick": (300, 2), "tiny": (20, 1)}  # steps, rounds


def run(options) -> dict:
    if not options.torch:
        print("engine: skipped (torch left out)")
        return {"skipped": "torch left out"}
    steps, rounds = SIZES[options.size]
    seconds = {"numpy": [], "torch": []}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(rounds):
            for engine in seconds:
                out = Path(tmp) / f"{engine}-{index}"
                done = tinygrad_act.run(depth=20, act="sigmoid", steps=steps, engine=engine, figures=False,
                                        progress=False, out=str(out))  # fmt: skip
                seconds[engine].append(done.summary["wall_time_s"])
    ratio = paired_ratio(seconds["torch"], seconds["numpy"])
    medians = {engine: statistics.median(values) for engine, values in seconds.items()}
    print(f"engine: the default run ({steps} steps, no figures), numpy engine vs engine torch (CPU), alternated")
    print(table(["numpy s", "torch s", "torch / numpy"], [[medians["numpy"], medians["torch"], ratio]]))
    return {"steps": steps, "numpy_seconds": medians["numpy"], "torch_seconds": medians["torch"], "ratio": ratio}
