"""Who trains a run's MLP (the ``engine`` setting): a registry of engines, each a ``check`` and a ``build``.

``numpy`` is this package's engine: nn.Step (a captured step, replayed) measured by measure/probes.LayerProbe.
``torch`` trains the same model in PyTorch (tinygrad_act/torch/engine.py), which registers itself here when it is
imported. The lab never imports the adapter (it sits above the lab, and torch is an optional extra): ``get`` imports
it by name, as a plug-in is, the first time a run asks for it. Everything else a run does (the model and its
initial weights, the batches, the theory, the Jacobian, evaluation, checkpoints, the files) is the lab's, whichever
engine trains.

An engine: ``check(config, optimizer_class)`` raises UsageError in one line for a run it cannot train (before
anything is written); ``build(config, model, optimizer, should_log)`` returns the run's training step (nn.Step's
protocol: ``step(xb, yb) -> (loss, logits)``, ``step.update()``, ``step.finite()``, ``step.optimizer``) and its
probe (measure/probes.Probe's: ``measuring``, ``collect``, ``record``, ``state``, histograms).
"""

from __future__ import annotations

import importlib

from ...common.errors import UsageError
from ...nn.step import Step
from ..measure.probes import LayerProbe
from ..settings import ENGINES

ADAPTERS = {"torch": "tinygrad_act.torch.engine"}  # an engine -> the module that registers it when imported
_ENGINES: dict = {}


def register(name: str, engine) -> None:
    """Make ``engine`` (an object with ``check`` and ``build``) the one ``name`` stands for."""
    _ENGINES[name] = engine


def get(config, optimizer_class=None):
    """The engine ``config.engine``, checked against the run (``optimizer_class``: the class the optimizer spec
    names): UsageError in one line if it cannot train it."""
    if config.engine not in _ENGINES and config.engine in ADAPTERS:
        importlib.import_module(ADAPTERS[config.engine])
    if config.engine not in _ENGINES:
        raise UsageError(f"unknown engine {config.engine!r}; choose one of: {', '.join(ENGINES)}")
    engine = _ENGINES[config.engine]
    engine.check(config, optimizer_class)
    return engine


class NumpyEngine:
    """This package's engine, on the CPU."""

    @staticmethod
    def check(config, optimizer_class=None) -> None:
        if config.device != "cpu":
            raise UsageError(f"device {config.device!r} needs engine torch; engine numpy trains on the cpu")

    @staticmethod
    def build(config, model, optimizer, should_log):
        step = Step(model, optimizer, config.clip, enabled=config.capture)  # replayed, measured steps too
        return step, LayerProbe(model, optimizer, should_log, replay=step)


register("numpy", NumpyEngine())
