"""One flat buffer for all parameters, one for their gradients, and flat optimizer state: one fused update.

``FlatParameters(params)`` copies every parameter into one array and makes each ``param.data`` a view into it;
``grad_views`` are the same slices of one gradient array. An elementwise update (SGD, Adam) computes every
element as it would per parameter, so running it once over the flat arrays is bit-identical to the loop
over parameters, with one numpy call per operation instead of one per parameter and operation.
Optimizer state stays where the optimizer keeps it (``optimizer.state[i][key]``), as views into one flat
array per key (``gather``), so checkpoints and eager steps see exactly what they saw before.
"""

from __future__ import annotations

import operator

import numpy as np

_DATA = operator.attrgetter("data")


class FlatParameters:
    """The parameters' data as views of ``self.data``; ``self.grad`` and ``grad_views`` for their gradients."""

    def __init__(self, params):
        self.params = list(params)
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"flat parameters need one dtype, got {sorted(map(str, dtypes))}")
        sizes = [p.data.size for p in self.params]
        self.bounds = np.cumsum([0, *sizes]).tolist()
        self.data = np.concatenate([p.data.ravel() for p in self.params]) if self.params else np.empty(0)
        self.grad = np.zeros_like(self.data)
        self.scratch = np.empty_like(self.data)  # a fused update's temporary (lr * grad), allocated once
        self.views = self._views(self.data)
        self.grad_views = self._views(self.grad)
        for p, view in zip(self.params, self.views):
            p.data = view
        self._state = {}  # key -> (flat array, its views)

    def _views(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[a:b].reshape(p.data.shape) for p, a, b in zip(self.params, self.bounds, self.bounds[1:])]

    def bound(self) -> bool:
        """True while every parameter's data is still its view (nobody replaced ``param.data``)."""
        return all(map(operator.is_, map(_DATA, self.params), self.views))

    def gather(self, states: list[dict], key: str):
        """The flat array of ``state[key]`` over all parameters (their entries become its views); None if no
        parameter has the key yet, False if only some have it (the caller then updates per parameter)."""
        entries = [state.get(key) for state in states]
        flat, views = self._state.get(key, (None, None))
        if views is not None and all(entry is view for entry, view in zip(entries, views)):
            return flat
        present = sum(entry is not None for entry in entries)
        if present == 0:
            return None
        if present < len(entries):
            return False
        return self.bind(states, key, np.concatenate([np.ravel(entry) for entry in entries]))

    def bind(self, states: list[dict], key: str, flat: np.ndarray) -> np.ndarray:
        """Make ``flat`` the state ``key``: each parameter's ``state[key]`` becomes its view; returns ``flat``."""
        views = self._views(flat)
        for state, view in zip(states, views):
            state[key] = view
        self._state[key] = (flat, views)
        return flat
