"""Section ``figures``: the CPU a run's figures cost where they are drawn (lab/show/drawing.py), per figure and share.

The default run (depth 20, sigmoid; 1000 steps, 200 quick; tiny: depth 3, 20 steps) is made once by the command
line (with ``--figures-of RUN_DIR``, that finished run's figures are timed instead); then this process prepares as
a drawing process does (``drawing.prepare``) and forks, as one does at the end of a run, once per share: each fork
renders one of the two renderers' shares (``run_figures.in_share``) and says its CPU seconds. The run waits for the
larger share (both run at once, one a core); their sum is every figure's CPU. Rounds alternate the shares; the
table gives the medians.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinygrad_act.lab.measure.records import read_metrics, read_summary
from tinygrad_act.lab.show import drawing, plots, run_figures

from .common import REPO, table

SIZES = {"full": (20, 1000, 5), "quick": (20, 200, 3), "tiny": (3, 20, 1)}  # depth, steps, rounds


def run(options) -> dict:
    if skipped := plots.unavailable():
        print(skipped)
        return {"skipped": skipped}
    depth, steps, rounds = SIZES[options.size]
    with tempfile.TemporaryDirectory() as tmp:
        path = options.figures_of or _default_run(Path(tmp), depth, steps)
        records, summary = read_metrics(path), read_summary(path)
        config = json.loads((Path(path) / "config.json").read_text())
        depth, steps, names = config["depth"], config["steps"], summary["figures"]
        drawing.prepare()
        measured = {"share 0 (the fork)": (0, drawing.SHARES), "share 1": (1, drawing.SHARES)}
        seconds = {name: [] for name in measured}
        for _ in range(rounds):
            for name, share in measured.items():
                seconds[name].append(_forked(path, records, summary, share))
    medians = {name: float(np.median(values)) for name, values in seconds.items()}
    medians["every figure (the sum)"] = float(np.median(np.sum(list(seconds.values()), axis=0)))
    what = f"{config['act']} run (depth {depth}, {steps} steps)"
    print(f"figures: {len(names)} figures of a {what}, CPU s in a fork of a")
    print("prepared drawing process (lab/show/drawing.py); the run waits for the larger share")
    print(table(["rendered", "CPU s (median)", "rounds"], [[name, value, rounds] for name, value in medians.items()]))
    return {"cpu_seconds": medians, "figures": names, "depth": depth, "steps": steps, "rounds": rounds}


def _default_run(tmp: Path, depth: int, steps: int) -> Path:
    """The default run (``depth``, ``steps``) made by the command line, with its figures, in ``tmp``."""
    path = tmp / f"sigmoid-auto-d{depth}-s0"  # the run's own name: its figures' title
    command = ["experiment", "--depth", str(depth), "--act", "sigmoid", "--steps", str(steps), "--no-progress"]
    subprocess.run([sys.executable, "-m", "tinygrad_act", *command, "--out", str(path)], check=True, cwd=REPO,
                   capture_output=True)  # fmt: skip
    return path


def _forked(path: Path, records: list[dict], summary: dict, share: tuple[int, int]) -> float:
    """CPU seconds of a fork of this process rendering ``share`` of the run's figures, as a renderer does."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            start = time.process_time()
            run_figures.rendered(path, records, summary, share)
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(time.process_time() - start, pipe)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        seconds = pickle.load(pipe)
    os.waitpid(pid, 0)
    return seconds
