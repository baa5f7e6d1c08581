"""Answers of the theory's pure functions remembered: a run, a sweep and a test session ask the same questions again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class Remembered:
    """The latest ``size`` answers of a pure function of a built-in activation and numbers, the oldest dropped
    first: ``remembered(act, key, compute)`` is ``compute()``, computed once per ``(act, *key)``. A user's activation
    may change between calls under one name: its answers are computed every time. The answer itself is shared:
    a caller that may change it copies it. Safe from two threads (a run computes its Jacobian's theory aside,
    run/aside.py): the memory is read and changed under a lock, an answer computed outside it."""

    def __init__(self, size: int):
        self.size, self._answers, self._lock = size, OrderedDict(), threading.Lock()

    def __call__(self, act, key: tuple, compute: Callable):
        if not act.trusted:
            return compute()
        key = (act.spec, *key)
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        answer = compute()  # the same in every thread that computes it: pure
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            if len(self._answers) > self.size:
                self._answers.popitem(last=False)  # the oldest
        return answer

    def __len__(self) -> int:
        return len(self._answers)
