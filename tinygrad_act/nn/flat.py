"""One flat buffer for all parameters, one for their gradients, and flat optimizer state: one fused update.

``FlatParameters(params)`` copies every parameter into one array and makes each ``param.data`` a view into it;
``grad_views`` are the same slices of one gradient array (a new one per step: ``new_grad``). An elementwise
update (SGD, Adam) computes every element as it would per parameter, so running the optimizer's ``update`` once
over the flat arrays is bit-identical to the loop over parameters, with one numpy call per operation instead of
one per parameter and operation. Optimizer state stays where the optimizer keeps it (``optimizer.state[i][key]``),
as views into one flat array per key (``state``), so checkpoints and eager steps see exactly what they saw before.
"""

from __future__ import annotations

import itertools
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
        self._slices = list(zip(self.params, self.bounds, self.bounds[1:]))
        self.data = np.concatenate([p.data.ravel() for p in self.params]) if self.params else np.empty(0)
        self.scratch = np.empty_like(self.data)  # a fused update's temporary (lr * grad), allocated once
        self.views = self.views_of(self.data)
        self.new_grad()
        for p, view in zip(self.params, self.views):
            p.data = view
        self._state = {}  # key -> (flat array, its views)

    def views_of(self, flat: np.ndarray) -> list[np.ndarray]:
        """Views of ``flat`` (an array like ``data``), one per parameter, shaped as it."""
        # a 1-d parameter's view is the slice itself (a reshape would cost as much again: new_grad runs every step)
        return [flat[a:b] if p.data.ndim == 1 else flat[a:b].reshape(p.data.shape) for p, a, b in self._slices]

    def new_grad(self) -> list[np.ndarray]:
        """A new gradient array ``grad`` and its ``grad_views``: those of the last step stay whoever holds them."""
        self.grad = np.empty_like(self.data)
        self.grad_views = self.views_of(self.grad)
        return self.grad_views

    def bound(self) -> bool:
        """True while every parameter's data is still its view (nobody replaced ``param.data``)."""
        return all(map(operator.is_, map(_DATA, self.params), self.views))

    def gather(self, states: list[dict], key: str):
        """The flat array of ``state[key]`` over all parameters (their entries become its views); None if no
        parameter has the key yet, False if only some have it (the caller then updates per parameter)."""
        entries = list(map(dict.get, states, itertools.repeat(key)))  # every step: in C, not in a Python loop
        flat, views = self._state.get(key, (None, None))
        if views is not None and all(map(operator.is_, entries, views)):
            return flat
        absent = sum(map(operator.is_, entries, itertools.repeat(None)))
        if absent == len(entries):
            return None
        if absent:
            return False
        return self.bind(states, key, np.concatenate([np.ravel(entry) for entry in entries]))

    def bind(self, states: list[dict], key: str, flat: np.ndarray) -> np.ndarray:
        """Make ``flat`` the state ``key``: each parameter's ``state[key]`` becomes its view; returns ``flat``."""
        views = self.views_of(flat)
        for state, view in zip(states, views):
            state[key] = view
        self._state[key] = (flat, views)
        return flat

    def state(self, states: list[dict], schema: dict) -> dict | None:
        """The optimizer's per-parameter ``states`` as one state of the flat arrays (``schema``: {key: True for an
        array of the parameter's shape, False for a number}); None where the parameters' states differ (some
        hold a key others lack, step counts differ): then the optimizer updates them one by one."""
        flat = {}
        for key, shaped in schema.items():
            if shaped:
                array = self.gather(states, key)
                if array is False:
                    return None
                if array is not None:
                    flat[key] = array
            else:
                values = {state.get(key) for state in states}
                if len(values) != 1:
                    return None
                if None not in values:
                    flat[key] = values.pop()
        shaped = [key for key, is_array in schema.items() if is_array]
        return flat if len({key in flat for key in shaped}) <= 1 else None

    def scatter(self, states: list[dict], flat: dict) -> None:
        """After an update of the flat ``state``: new arrays become every parameter's views, numbers are copied."""
        for key, value in flat.items():
            if isinstance(value, np.ndarray):
                if self._state.get(key, (None,))[0] is not value:
                    self.bind(states, key, value)
            else:
                for state in states:
                    state[key] = value
