"""TensorBoard event files for a watched model (``watch(model, tensorboard=True)``): ``RUN_DIR/tensorboard/``,
written by lab/run/tensorboard.py as a native run's are (its tags, histograms at measured steps at most one every
``HIST_EVERY`` steps, the settings and the verdict as text, the HParams entry), through what its writer reads of a
probe (``Probe``) and of a run's settings (``Settings``). tensorboardX is imported there, only when asked for.

A record is written when its update ratio is known (the next ``lab.step``): the weights TensorBoard then draws are
those after the measured step's update, as a native run's; the weight gradients drawn are the measured step's own
(copied then: the next backward pass overwrites them).
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from ..common.errors import RunDirError, UsageError
from ..lab.run import tensorboard
from ..lab.show import report

HIST_EVERY = 10  # the native default (lab/settings.py's hist_every)


@dataclasses.dataclass
class Settings:
    """What TensorBoard's text and HParams views show of a watched model, and what its writer reads (``hist_every``,
    ``steps``: 0, a user's loop says no number of steps in advance, so no step is taken for the last)."""

    engine: str
    module: str
    parameters: int
    log_every: int
    hist_every: int = HIST_EVERY
    steps: int = 0


class Probe:
    """The probe TensorBoardLog reads: ``layers`` (each ``weight.data`` and ``weight.grad`` as numpy, set before each
    record is written), ``histograms`` and ``activation_range`` (the watch's statistics.Histograms)."""

    def __init__(self, histograms):
        self._histograms = histograms
        self.layers = []

    @property
    def histograms(self) -> dict:
        return self._histograms.histograms

    @property
    def activation_range(self):
        return self._histograms.activation_range


def settings(watch) -> Settings:
    """The watched model's Settings."""
    parameters = sum(p.numel() for p in watch.model.parameters())
    return Settings("torch (watch)", type(watch.model).__name__, parameters, watch.every)


def open_log(watch, probe: Probe):
    """A TensorBoardLog for the watched model's run directory (tensorboardX required: UsageError saying how)."""
    return tensorboard.TensorBoardLog(watch.path, probe, settings(watch))


def layers(weights: list, grads: list) -> list:
    """The probe's ``layers`` from numpy weights now and the measured step's gradient copies, in record order."""
    return [types.SimpleNamespace(weight=types.SimpleNamespace(data=w, grad=g)) for w, g in zip(weights, grads)]


def copies(grads: list) -> list:
    """Copies of the measured step's weight gradients (None stays None)."""
    return [None if g is None else np.array(g) for g in grads]


def finish(watch, summary: dict, config) -> dict:
    """The verdict (the terminal's report) and the HParams entry: {} or {"tensorboard_error": ...} (an optional
    viewer never loses the run); ``config``: the lab Config the summary was made with (depth, dtype, act)."""
    text = report.terminal_report({**summary, "path": str(watch.path)}, watch.records, config,
                                  width=report.DEFAULT_WIDTH)  # fmt: skip
    try:
        tensorboard.finish(watch.path, settings(watch), summary, "```\n" + text + "\n```")
    except (RunDirError, UsageError) as error:
        return {"tensorboard_error": str(error)}
    return {}
