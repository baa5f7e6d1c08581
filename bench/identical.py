"""Are a change's logged numbers bit-identical? Runs a fixed set of native configurations and compares them with
the runs of another checkout (the code before the change).

    .venv/bin/python -m bench.identical run DIR          # this checkout's runs into DIR (one per configuration)
    .venv/bin/python -m bench.identical compare OLD NEW  # metrics.jsonl, metrics.csv and summary.json equal?

Equal means: the same text, line for line as written, once the timing fields (``time`` of a record, the ``time``
column of the CSV, ``wall_time_s`` of the summary) are cut out; histograms.npz equal array by array. Every other number,
to the last bit (the JSON writes each float's shortest repr, so equal text is equal bits). Exit status 1 if any
configuration differs, naming it and the first difference.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from .common import REPO

SHORT = ["--steps", "120", "--no-figures", "--no-jacobian", "--no-progress"]
CONFIGS = {  # name -> the experiment's options (each run short: what matters is every measured field)
    "sigmoid-d20": ["--depth", "20", "--act", "sigmoid"],
    "tanh": ["--depth", "10", "--act", "tanh"],
    "relu": ["--depth", "10", "--act", "relu", "--init", "he_normal"],
    "gelu-float32": ["--depth", "8", "--act", "gelu", "--dtype", "float32"],
    "batch-norm": ["--depth", "8", "--act", "tanh", "--norm", "batch", "--log-every", "1", "--steps", "30"],
    "layer-norm-clip": ["--depth", "8", "--act", "tanh", "--norm", "layer", "--clip", "0.5"],
    "residual": ["--depth", "8", "--act", "relu", "--residual"],
    "float32-d20": ["--depth", "20", "--act", "sigmoid", "--dtype", "float32"],
    "clip-float32": ["--depth", "10", "--act", "tanh", "--clip", "0.1", "--dtype", "float32"],
    "adam": ["--depth", "6", "--act", "elu", "--optimizer", "adam", "--lr", "0.001"],
    "rnn-adding": ["--model", "rnn", "--cell", "lstm", "--data", "adding", "--seq-len", "20", "--steps", "60"],
    "diverging": ["--depth", "10", "--act", "relu", "--init", "he_normal", "--lr", "40"],
    "diverging-float32": ["--depth", "10", "--act", "elu", "--lr", "200", "--dtype", "float32"],
    # the Jacobian at step 0 and its theory in summary.json (product_svd, mean_field, spectrum_density)
    "jacobian-sigmoid-d20": ["--depth", "20", "--act", "sigmoid", "--jacobian"],
    "jacobian-relu-orthogonal": ["--depth", "10", "--act", "relu", "--init", "orthogonal", "--jacobian"],
}


def run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, options in CONFIGS.items():
        command = [sys.executable, "-m", "tinygrad_act", "experiment", *SHORT, *options, "--out", str(out / name)]
        done = subprocess.run([*command, "--force"], cwd=REPO, capture_output=True, text=True)
        status = json.loads((out / name / "summary.json").read_text())["status"]
        print(f"{name}: exit {done.returncode}, {status}")


def _jsonl(path: Path) -> list:
    """The lines as written, the ``time`` field cut out of each."""
    return [re.sub(r'"time": [^,}]*(, )?', "", line) for line in path.read_text().splitlines()]


def _csv(path: Path) -> list:
    """The lines as written (bytes, line ends included), the ``time`` column cut out of each."""
    lines = path.read_bytes().decode().split("\r\n")
    column = lines[0].split(",").index("time")
    return [",".join(f for i, f in enumerate(line.split(",")) if i != column) for line in lines]


def _summary(path: Path) -> list:
    summary = json.loads(path.read_text())
    summary.pop("wall_time_s", None)
    return [json.dumps(summary, sort_keys=True)]


def _histograms(path: Path) -> list:
    if not path.exists():
        return []
    with np.load(path) as arrays:
        return [f"{key} {arrays[key].dtype} {arrays[key].tobytes().hex()}" for key in sorted(arrays.files)]


READERS = {"metrics.jsonl": _jsonl, "metrics.csv": _csv, "summary.json": _summary, "histograms.npz": _histograms}


def compare(old: Path, new: Path) -> bool:
    same = True
    for name in CONFIGS:
        differences = []
        for file, read in READERS.items():
            a, b = read(old / name / file), read(new / name / file)
            if a != b:
                first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                differences.append(f"{file} line {first + 1} ({len(a)} vs {len(b)} lines)")
        records = len(_jsonl(new / name / "metrics.jsonl"))
        print(f"{name}: {'identical' if not differences else 'DIFFERS: ' + '; '.join(differences)} ({records} records)")
        same = same and not differences
    return same


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "run":
        run(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return 0 if compare(Path(argv[1]), Path(argv[2])) else 1
    print(__doc__.split("\n\n")[1])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
