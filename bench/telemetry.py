"""Sections ``telemetry``, ``recurrent_telemetry`` and ``experiment``: what measuring costs, and how long the default
run takes.

``telemetry``: the training step of the default experiment (depth 20, width 64, batch 64, sigmoid, SGD with
momentum, float64, MNIST-1D batches) with the per-layer probe attached and measuring every step, every 10th
step, or not attached at all; the three are timed side by side in alternating rounds. The step is the
runner's (nn/step.py): unmeasured steps replay the captured step, measured ones run eagerly with the probe's
hooks, so the overhead includes the eager step a measurement forces. Overhead = step time with the probe /
step time without it - 1 (median of the per-round ratios).

``recurrent_telemetry``: the same for a recurrent run's step (MODEL=rnn SEQ_LEN=100 DATA=adding, width 64, batch 64)
and each cell, the TimeProbe measuring every step, every 10th step, or not attached, and the same without the
captured step (every step eager): unmeasured steps replay it (nn/step.py), measured ones run eagerly.

``experiment``: the wall time of ``python -m tinygrad_act experiment --depth 20 --act sigmoid`` (what
``make experiment DEPTH=20 ACT=sigmoid`` runs, minus make's own start) in a fresh process, end to end: start-up,
data (cached), 1000 steps, figures; and the training loop alone as the run's summary reports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tinygrad_act.optim import SGD

from tinygrad_act.lab import data
from tinygrad_act.lab.measure.probes import LayerProbe
from tinygrad_act.lab.measure.through_time import TimeProbe
from tinygrad_act.nn import MLP, RecurrentNet
from tinygrad_act.nn.step import Step

from .common import REPO, interleaved_timing, paired_ratio, summarize, table

TARGET = 0.03  # the probe's share of a step when measuring every 10th step (issue 14)
SIZES = {"full": (15, 0.25), "quick": (5, 0.1), "tiny": (2, 0.01)}  # rounds, seconds per block


class Trainer:
    """The default experiment's training step, with the probe measuring every ``log_every`` steps (0: no probe)."""

    def __init__(self, log_every: int, dataset, capture=True, depth: int = 20, width: int = 64, batch: int = 64):
        self.model = MLP(dataset.num_features, [width] * depth, dataset.num_classes, activation="sigmoid", seed=0)
        self.optimizer = SGD(self.model.parameters(), lr=0.02, momentum=0.9)
        if log_every:
            self.probe = LayerProbe(self.model, self.optimizer, lambda step: step % log_every == 0)
        self.batches = data.batches(dataset, batch, np.random.default_rng(0))
        # as the runner: unmeasured steps replay the captured step, measured ones run eagerly
        self.step = Step(self.model, self.optimizer, enabled=capture)

    def steps(self, n: int) -> None:
        for _ in range(n):
            xb, yb = next(self.batches)
            self.step(xb, yb)
            self.step.update()


def run_telemetry(options) -> dict:
    rounds, block = SIZES[options.size]
    dataset = data.load("mnist1d")
    # "no probe, eager": every step eager (capture off), what a measured step costs before the probe's own work
    modes = {"no probe": (0, True), "no probe, eager": (0, False), "every 10 steps": (10, True)}
    modes["every step"] = (1, True)
    trainers = {name: Trainer(every, dataset, capture) for name, (every, capture) in modes.items()}
    timing = interleaved_timing({name: t.steps for name, t in trainers.items()}, rounds, block, min_iterations=20)
    seconds = timing["seconds"]
    base = seconds["no probe"]
    rows, results = [], {}
    for name in modes:
        overhead = paired_ratio(seconds[name], base) - 1
        stats = summarize(seconds[name])
        results[name] = {"step_ms": stats["median"] * 1e3, "overhead": overhead, "iqr_rel": stats["iqr_rel"]}
        rows.append([name, stats["median"] * 1e3, f"{100 * overhead:+.1f}%"])
    print("telemetry: the default experiment's step (depth 20, width 64, batch 64, sigmoid, SGD momentum, float64)")
    print(table(["probe", "ms/step", "overhead vs no probe"], rows))
    target = results["every 10 steps"]["overhead"] <= TARGET
    verdict = "met" if target else "MISSED"
    print(f"target (issue 14): telemetry <= {TARGET:.0%} of a step when measuring every 10 steps: {verdict}")
    return {"modes": results, "target_met": target}


def run_experiment(options) -> dict:
    steps = {"full": 1000, "quick": 1000, "tiny": 20}[options.size]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [
            sys.executable,
            "-m",
            "tinygrad_act",
            "experiment",
            "--depth",
            "20",
            "--act",
            "sigmoid",
            "--steps",
            str(steps),
            "--out",
            str(out),
            "--no-progress",
        ]
        data.load("mnist1d")  # the cache is warm, as for every run after a user's first
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, capture_output=True)
        wall = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
        training = summary["wall_time_s"]
    print(f"experiment: python -m tinygrad_act experiment --depth 20 --act sigmoid ({steps} steps), fresh process")
    print(
        table(
            ["end to end s", "run s (summary.wall_time_s)", "steps/s in the run"], [[wall, training, steps / training]]
        )
    )
    return {"wall_seconds": wall, "run_seconds": training, "steps": steps}


# The default recurrent run: make experiment MODEL=rnn CELL=lstm SEQ_LEN=100 DATA=adding (width 64, batch 64).
RECURRENT_SIZES = {"full": (100, 64), "quick": (100, 64), "tiny": (6, 8)}  # (T, width)


class RecurrentTrainer:
    """A recurrent run's training step (lab/run/recurrent.py's RecurrentNet and nn.Step with MSE, SGD with
    momentum) on adding-problem batches, with the TimeProbe measuring every ``log_every`` steps (0: no probe)."""

    def __init__(self, log_every: int, dataset, cell: str, width: int, batch: int = 64, capture: bool = True):
        self.model = RecurrentNet(dataset.num_features, width, 1, cell=cell, seed=0)
        self.optimizer = SGD(self.model.parameters(), lr=0.02, momentum=0.9)
        if log_every:
            self.probe = TimeProbe(self.model, self.optimizer, lambda step: step % log_every == 0)
        self.batches = data.batches(dataset, batch, np.random.default_rng(0))
        self.step = Step(self.model, self.optimizer, enabled=capture, loss="mse")

    def steps(self, n: int) -> None:
        for _ in range(n):
            xb, yb = next(self.batches)
            self.step(xb, yb)
            self.step.update()


def run_recurrent_telemetry(options) -> dict:
    """The TimeProbe's cost on the default recurrent run's step, for each cell, timed side by side."""
    rounds, block = SIZES[options.size]
    steps, width = RECURRENT_SIZES[options.size]
    dataset = data.load("adding:n_train=1000,n_test=100", seq_len=steps)
    rows, results = [], {}
    for cell in ("tanh", "lstm", "gru"):
        modes = {
            "no probe": (0, True),
            "no probe, eager": (0, False),
            "every 10 steps": (10, True),
            "every step": (1, True),
        }
        trainers = {name: RecurrentTrainer(every, dataset, cell, width, capture=capture)
                    for name, (every, capture) in modes.items()}  # fmt: skip
        timing = interleaved_timing({name: t.steps for name, t in trainers.items()}, rounds, block, min_iterations=5)
        seconds = timing["seconds"]
        results[cell] = {}
        for name in modes:
            overhead = paired_ratio(seconds[name], seconds["no probe"]) - 1
            stats = summarize(seconds[name])
            results[cell][name] = {"step_ms": stats["median"] * 1e3, "overhead": overhead, "iqr_rel": stats["iqr_rel"]}
            rows.append([cell, name, stats["median"] * 1e3, f"{100 * overhead:+.1f}%"])
    print(f"recurrent telemetry: a recurrent run's step (T = {steps}, width {width}, batch 64, SGD momentum, float64)")
    print(table(["cell", "probe", "ms/step", "overhead vs no probe"], rows))
    return {"seq_len": steps, "width": width, "cells": results}
