"""The engine's state outside any node: the grad mode (``no_grad()``, ``enable_grad()``, per thread as in PyTorch,
and the cheap test that graph.make runs) and the structure version (what a recorded program relies on).

Every operation asks whether to record a graph. The honest answer is a thread-local read (``_GradMode.enabled``),
about 530 machine instructions, 9% of a Value MLP's forward pass (callgrind, bench/scalar_mlp.py); so
``_switched`` is a plain list that holds one entry per grad-mode block open in any thread. While it is empty (the
usual case) every thread records, and the thread-local is read only inside some block (graph.make:
``if not _switched or _GradMode.enabled``). A speed path, measured; no_grad's meaning is the thread-local's.
"""

from __future__ import annotations

import functools
import threading


class _GradModeState(threading.local):
    enabled = True  # per thread, as in PyTorch: no_grad() in one thread leaves the others recording

    def __init__(self):
        self.saved = []  # the modes to restore, one per block entered in this thread


_GradMode = _GradModeState()
_switched = []  # one entry per grad-mode block open in any thread: while empty every thread records


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()`` (in this thread)."""
    return _GradMode.enabled


class _SetGradMode:
    """Context manager and decorator: the grad mode is ``enabled`` inside; one instance may nest and be shared."""

    def __enter__(self):
        _GradMode.saved.append(_GradMode.enabled)
        _GradMode.enabled = self.enabled
        _switched.append(None)  # list append and pop are atomic: no lock needed between threads
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = _GradMode.saved.pop()
        _switched.pop()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:  # reentrant: the modes to restore are kept per thread, not on the instance
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_SetGradMode):  # noqa: N801 - named like the context managers of PyTorch and the standard library
    """Context manager and decorator: operations inside record no graph."""

    enabled = False


class enable_grad(_SetGradMode):  # noqa: N801
    """Context manager and decorator: operations inside record a graph, even within ``no_grad()``."""

    enabled = True


# ---- the structure version -----------------------------------------------------------------------------------
_structure = [0]


def structure_version() -> int:
    """The count of ``structure_changed()`` calls: a recorded program (nn/step.py) is valid at its own only."""
    return _structure[0]


def structure_changed() -> None:
    """Say that what a forward pass records may have changed though no array shows it: a leaf's requires_grad
    was set (graph.py), a module's attribute assigned (nn/modules.py). Every recorded program is then stale."""
    _structure[0] += 1
