"""Sweeps: a grid of runs over any experiment parameters (grid.py), run in local worker processes that stop together
(workers.py) or on a Dask cluster, resumable; their tables and report.html (tables.py) and figures (figures.py).

    from tinygrad_act.lab import sweep
    sweep.run_sweep(sweep.Sweep({"act": ["sigmoid", "relu"], "depth": [5, 20]}), "runs/sweep-mine", jobs=2)
"""

from .grid import Sweep, collect, load_config, prefetch, run_sweep

__all__ = ["Sweep", "collect", "load_config", "prefetch", "run_sweep"]
