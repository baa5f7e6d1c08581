"""Answers of the theory's pure functions remembered: a run, a sweep and a test session ask the same questions again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class Remembered:
    """The latest ``size`` answers of a pure function of a built-in activation and numbers, the oldest dropped
    first: ``remembered(act, key, compute)`` is ``compute()``, computed once per ``(act, *key)``. A user's activation
    may change between calls under one name: its answers are computed every time. The answer itself is shared:
    a caller that may change it copies it."""

    def __init__(self, size: int):
        self.size, self._answers = size, OrderedDict()

    def __call__(self, act, key: tuple, compute: Callable):
        if not act.trusted:
            return compute()
        key = (act.spec, *key)
        if key not in self._answers:
            self._answers[key] = compute()
            if len(self._answers) > self.size:
                self._answers.popitem(last=False)  # the oldest
        self._answers.move_to_end(key)
        return self._answers[key]

    def __len__(self) -> int:
        return len(self._answers)
