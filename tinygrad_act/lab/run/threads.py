"""One BLAS thread for the laboratory's small matrices, where that is measured faster (threadpoolctl, optional).

numpy's OpenBLAS splits a matrix product over every core; at the laboratory's widths its threads spend more time
waiting for each other than multiplying, and on a shared machine they wait for the core another process holds.
Measured side by side in one process (2 cores under a load of 11, OpenBLAS 0.3.31, float64, wall time of one
product with numpy's 2 threads vs 1): 64x64 @ 64x64 40 vs 26 us, 1000x64 @ 64x64 (an evaluation chunk of the
default run) 5.0 vs 0.40 ms, 64x256 @ 256x256 2.3 vs 0.64 ms, 1000x256 @ 256x256 15.7 vs 14.3 ms. Wider models
keep numpy's threads: there a quiet machine's second core should pay (not measured quiet here). OpenMP's pool is
held to one thread too: PyTorch's (engine torch) spent 1.1 ms instead of 2 us on a 16x3 log_softmax with two.
In a process the laboratory does not own (``watch`` in a user's PyTorch loop) only its own statistics run on one
BLAS thread (``statistics_threads``): watch's overhead at every=10 with numpy's 2 threads was +22% / +76% at
(20, 64, 64) / (20, 256, 128) float32 against +22% / +6% with one (bench/run.py --only watch --quick --threads 2).
"""

from __future__ import annotations

import contextlib
import os

SMALL = 256  # the widest layer trained on one BLAS thread
_ENVIRONMENT = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # a count the user set wins


def _controller(width: int):
    """threadpoolctl's view of the process's thread pools when layers up to ``width`` wide should run on one thread
    (not wider, no thread count set in the environment, threadpoolctl installed), else None."""
    if width > SMALL or any(os.environ.get(name) for name in _ENVIRONMENT):
        return None
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def blas_threads(width: int):
    """A context: one BLAS (and OpenMP) thread while layers up to ``width`` wide train (threadpoolctl installed, no
    thread count set in the environment), else nothing. The numbers are the same either way
    (tests/test_experiment.py)."""
    controller = _controller(width)
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api=None)


def statistics_threads(width: int):
    """A function giving a context that holds numpy's BLAS (not OpenMP: the user's PyTorch keeps its pool) to one
    thread while entered, for models up to ``width`` wide measured inside a process the laboratory does not own
    (watch: a measured step's statistics). The libraries are looked up once here (about 0.5 ms), so that entering
    costs about 11 us; nothing when wider, when a thread count is set in the environment, or without
    threadpoolctl."""
    controller = _controller(width)
    return contextlib.nullcontext if controller is None else lambda: controller.limit(limits=1, user_api="blas")
