"""TensorBoard event files for a run (``--tensorboard``, ``TENSORBOARD=1``): ``RUN_DIR/tensorboard/``.

An optional viewer beside the primary record (metrics.jsonl and metrics.csv stay the run's truth): every
measured step becomes scalars, histograms come at measured steps (at most one every ``--hist-every`` steps, and
always the last), the settings and the verdict are text, and the run's settings with its final numbers go to
TensorBoard's HParams view, so ``tensorboard --logdir runs/sweep-NAME`` compares a sweep's runs side by side.
Written with tensorboardX (the optional extra ``tensorboard``), so the core stays numpy-only.

Tags (``layer`` is 01, 02, ... for the hidden layers and ``out`` for the output layer, zero-padded to sort):

- ``minibatch/loss``, ``minibatch/accuracy`` (the step's minibatch), ``train/loss``, ``train/accuracy`` (the whole
  training split, on evaluation steps), ``test/loss``, ``test/accuracy``;
- ``gradients/grad_norm``, ``gradients/r`` (stats.first_last_ratio), ``gradients/nonfinite``;
- per layer, what moves the gradient: ``delta_norm``, ``weight_grad_norm``, ``update_ratio``, ``grad_snr``; and
  why (``saturation.png``'s quantities): ``weight_gain`` (σ_w²), ``activation_gain`` (E[f′(z)²]), ``gain_product``
  (their product, mean-field theory's factor on ||δ||² per layer), ``saturation``, ``inactive_fraction``,
  ``dead_fraction``;
- histograms per layer: ``weights`` (W after the step's update), ``weight_grads`` (dL/dW the step used),
  ``activations`` (hidden layers' f(z)) and ``delta_log10`` (log10|δ| of the values that are not exactly 0);
- a recurrent run (``model rnn``): ``gradients/r`` is r_time; its layers are the recurrent layer (``01``: its
  ``weights`` histogram is W_hh) and the readout; ``gates/<gate>_mean``, ``_near_0``, ``_near_1`` average a gated
  cell's gates over the time steps;
- text: ``config`` (every setting) and ``verdict`` (the terminal's verdict lines); HParams: the settings, with
  ``hparams/test_accuracy``, ``hparams/test_loss``, ``hparams/train_loss``, ``hparams/log10_r_init`` and
  ``hparams/log10_r_final`` (in ``tensorboard/hparams/``).

A value that was not measured (None) is left out; nan and inf are written as they are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

import numpy as np

from ...common import files
from ...common.errors import UsageError
from .. import stats
from ..measure.probes import DELTA_LOG_RANGE
from ..measure.records import RunLog

INSTALL = "pip install 'tinygrad_act[tensorboard]' (or pip install tensorboardX)"
SCALARS = {
    "minibatch/loss": "loss",
    "minibatch/accuracy": "accuracy",
    "train/loss": "train_loss",
    "train/accuracy": "train_accuracy",
    "test/loss": "test_loss",
    "test/accuracy": "test_accuracy",
    "gradients/grad_norm": "grad_norm",
    "gradients/nonfinite": "nonfinite",
}
LAYER_SCALARS = ("delta_norm", "weight_grad_norm", "update_ratio", "grad_snr", "weight_gain", "activation_gain",
                 "saturation", "inactive_fraction", "dead_fraction")  # fmt: skip
HPARAM_METRICS = {"hparams/test_accuracy": "test_accuracy", "hparams/test_loss": "test_loss",
                  "hparams/train_loss": "train_loss"}  # fmt: skip


def require():
    """tensorboardX's SummaryWriter; UsageError saying how to install it if it is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError(f"--tensorboard needs the tensorboardX package, which is not installed: {INSTALL}") from None
    return SummaryWriter


def layer_name(index: int, count: int) -> str:
    """``01``, ``02``, ... for hidden layers (zero-padded so TensorBoard sorts them), ``out`` for the last."""
    return "out" if index == count - 1 else f"{index + 1:0{len(str(count))}d}"


def scalars(record: dict) -> dict[str, float]:
    """The tag -> value pairs of one metrics.jsonl record (the one mapping both the writer and tests use)."""
    values = {tag: record.get(key) for tag, key in SCALARS.items()}
    steps = record.get("through_time") or []  # a recurrent run's: r is r_time, and its gates' means over t
    values["gradients/r"] = stats.first_last_ratio(record) if len(record["layers"]) > 2 or steps else None
    for key in (k for k in (steps[0] if steps else {}) if k.endswith(("_mean", "_near_0", "_near_1"))):
        values[f"gates/{key}"] = sum(step[key] for step in steps) / len(steps)
    count = len(record["layers"])
    for index, layer in enumerate(record["layers"]):
        name = layer_name(index, count)
        for key in LAYER_SCALARS:
            values[f"{key}/{name}"] = layer.get(key)
        weight_gain, activation_gain = layer.get("weight_gain"), layer.get("activation_gain")
        if weight_gain is not None and activation_gain is not None:
            values[f"gain_product/{name}"] = weight_gain * activation_gain
    return {tag: float(value) for tag, value in values.items() if value is not None}


def histogram_due(previous: int | None, step: int, every: int, last: int) -> bool:
    """Whether measured ``step`` gets histograms: the first measured step of each window of ``every`` steps
    (``previous``: the measured step before it, None for the first), and the run's ``last`` step."""
    return previous is None or step // every != previous // every or step == last


class TensorBoardLog:
    """A RunLog that also writes each record to TensorBoard, with histograms at the steps ``histogram_due``
    chooses; the run's settings go in as text at the start."""

    def __init__(self, path: Path, probe, config, records: list[dict] | None = None):
        writer_class = require()
        directory = files.subdir(path, "tensorboard")
        self._log, self._probe, self._config = RunLog(path, records), probe, config
        self._previous = records[-1]["step"] if records else None  # the last measured step already logged
        # A resumed run rewrites the steps after its checkpoint: TensorBoard drops the events logged there before.
        # Event files are named by the second they were opened in: a suffix keeps a resumed run's from replacing it.
        purge = {"purge_step": records[-1]["step"] + 1, "filename_suffix": f".resumed{len(records)}"} if records else {}
        with files.os_errors(directory, "writing TensorBoard events to"), _listed(directory):
            self._writer = writer_class(str(directory), **purge)
            if not records:
                self._writer.add_text("config", settings_text(config), 0)

    @property
    def records(self) -> list[dict]:
        """The records written (as RunLog.records)."""
        return self._log.records

    def write(self, record: dict):
        """Append the record to metrics.jsonl/csv (first: the primary record), then its scalars to TensorBoard and,
        at the steps ``histogram_due`` chooses, the layers' histograms."""
        self._log.write(record)
        step = record["step"]
        due = histogram_due(self._previous, step, self._config.hist_every, self._config.steps - 1)
        self._previous = step
        with files.os_errors(Path(self._writer.logdir), "writing TensorBoard events to"):
            for tag, value in scalars(record).items():
                self._writer.add_scalar(tag, value, step)
            if due:
                self._histograms(step)

    def _histograms(self, step: int) -> None:
        """Weights and weight gradients of every layer now; activations and log10|δ| from the probe's counts of
        this step (probes.LayerProbe.histograms), when it measured them."""
        count = len(self._probe.layers)
        with np.errstate(all="ignore"):
            for index, layer in enumerate(self._probe.layers):
                name = layer_name(index, count)
                for kind, values in (("weights", layer.weight.data), ("weight_grads", layer.weight.grad)):
                    finite = None if values is None else values[np.isfinite(values)]
                    if finite is not None and finite.size:
                        self._writer.add_histogram(f"{kind}/{name}", finite.astype(np.float64), step)
        entry = next((e for e in self._probe.histograms.values() if e["step"] == step), None)
        if entry is not None:
            edges = {"activations": np.linspace(*self._probe.activation_range, entry["activations"].shape[1] + 1),
                     "delta_log10": np.linspace(*DELTA_LOG_RANGE, entry["deltas"].shape[1] + 1)}  # fmt: skip
            write_histograms(self._writer, entry, edges, step)

    def close(self):
        """Close metrics.jsonl/csv and flush the event file."""
        self._log.close()
        with files.os_errors(Path(self._writer.logdir), "writing TensorBoard events to"):
            self._writer.close()


def write_histograms(writer, entry: dict, edges: dict, step: int) -> None:
    """One measured step's activation and log10|δ| counts (a probes.LayerProbe.histograms entry) per layer; the
    exact zeros of δ (``delta_zeros``) have no logarithm and are left out of log10|δ|."""
    deltas = np.array(entry["deltas"], dtype=np.float64)
    if "delta_zeros" in entry:
        deltas[:, 0] -= entry["delta_zeros"]
    for kind, counts_by_layer in (("activations", entry["activations"]), ("delta_log10", deltas)):
        for index, counts in enumerate(counts_by_layer):
            _histogram(writer, f"{kind}/{layer_name(index, len(deltas))}", counts, edges[kind], step)


def _histogram(writer, tag: str, counts: np.ndarray, edges: np.ndarray, step: int) -> None:
    """One histogram from counts and bin edges (sum and sum of squares from the bin centres)."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() == 0:
        return
    centres = (edges[:-1] + edges[1:]) / 2
    filled = np.nonzero(counts)[0]
    writer.add_histogram_raw(
        tag, min=float(edges[filled[0]]), max=float(edges[filled[-1] + 1]), num=int(counts.sum()),
        sum=float(counts @ centres), sum_squares=float(counts @ centres**2), bucket_limits=edges[1:].tolist(),
        bucket_counts=counts.tolist(), global_step=step,
    )  # fmt: skip


def settings_text(config) -> str:
    """The run's settings as a Markdown table (TensorBoard's text view renders it)."""
    rows = [f"| {key} | {value} |" for key, value in dataclasses.asdict(config).items()]
    return "\n".join(["| setting | value |", "|---|---|", *rows])


def finish(path: Path, config, summary: dict, verdict: str) -> None:
    """At the run's end: the verdict as text (at the last step) and the settings with the final numbers for the
    HParams view (``tensorboard/hparams/``), so TensorBoard compares the runs of a sweep."""
    writer_class = require()
    directory = files.subdir(path, "tensorboard")
    step = summary.get("step_final") or 0
    hparams = {k: v for k, v in dataclasses.asdict(config).items()
               if isinstance(v, (bool, int, float, str)) and k not in ("out", "tensorboard")}  # fmt: skip
    metrics = {tag: float(summary[key]) for tag, key in HPARAM_METRICS.items() if summary.get(key) is not None}
    for key in ("init", "final"):
        ratio = summary.get(f"ratio_{key}")
        if isinstance(ratio, (int, float)) and ratio > 0 and math.isfinite(ratio):
            metrics[f"hparams/log10_r_{key}"] = math.log10(ratio)
    with (
        files.os_errors(directory, "writing TensorBoard events to"),
        _listed(directory),
        writer_class(str(directory), filename_suffix=".end") as writer,
    ):
        writer.add_text("verdict", verdict, step)
        writer.add_hparams(hparams, metrics, name="hparams", global_step=step)


@contextlib.contextmanager
def _listed(directory: Path):
    """The files and directories tensorboardX creates under ``directory`` in the block (its event files, the
    HParams session's ``hparams/``) go into the run's manifest: a forced rerun removes them, and nothing else."""
    before = set(directory.rglob("*"))
    try:
        yield
    finally:
        for written in sorted(set(directory.rglob("*")) - before):
            files.record(written, directory=written.is_dir())
