"""One BLAS thread for the laboratory's small matrices, where that is measured faster (threadpoolctl, optional).

numpy's OpenBLAS splits a matrix product over every core; at the laboratory's widths its threads spend more time
waiting for each other than multiplying, and on a shared machine they wait for the core another process holds.
Measured side by side in one process (2 cores under a load of 11, OpenBLAS 0.3.31, float64, wall time of one
product with numpy's 2 threads vs 1): 64x64 @ 64x64 40 vs 26 us, 1000x64 @ 64x64 (an evaluation chunk of the
default run) 5.0 vs 0.40 ms, 64x256 @ 256x256 2.3 vs 0.64 ms, 1000x256 @ 256x256 15.7 vs 14.3 ms. Wider models
keep numpy's threads: there a quiet machine's second core should pay (not measured quiet here). OpenMP's pool is
held to one thread too: PyTorch's (engine torch) spent 1.1 ms instead of 2 us on a 16x3 log_softmax with two.
"""

from __future__ import annotations

import contextlib
import os

SMALL = 256  # the widest layer trained on one BLAS thread
_ENVIRONMENT = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # a count the user set wins


def blas_threads(width: int):
    """A context: one BLAS (and OpenMP) thread while layers up to ``width`` wide train (threadpoolctl installed, no
    thread count set in the environment), else nothing. The numbers are the same either way
    (tests/test_experiment.py)."""
    if width > SMALL or any(os.environ.get(name) for name in _ENVIRONMENT):
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api=None)
