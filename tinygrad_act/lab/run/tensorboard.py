"""TensorBoard event files for a run (``--tensorboard``, ``TENSORBOARD=1``): ``RUN_DIR/tensorboard/``.

An optional viewer beside the primary record (metrics.jsonl and metrics.csv stay the run's truth): every
measured step becomes scalars, the probe's histograms become TensorBoard histograms. Written with tensorboardX
(the optional extra ``tensorboard``), so the core stays numpy-only; ``tensorboard --logdir runs`` shows them.

Tags (``layer`` is 1, 2, ... for the hidden layers and ``out`` for the output layer, as in the terminal):

- ``train/loss``, ``train/accuracy`` (the minibatch's), ``test/loss``, ``test/accuracy`` (evaluated steps),
  ``gradients/grad_norm``, ``gradients/r`` (stats.first_last_ratio), ``gradients/nonfinite``;
- ``delta_norm/<layer>``, ``weight_grad_norm/<layer>``, ``update_ratio/<layer>``;
- histograms ``activations/<layer>`` (hidden layers) and ``delta_log10/<layer>`` (log10|δ|) at the first and
  the last measured step (probes.LayerProbe.histograms).

A value that was not measured (None) is left out; nan and inf are written as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...common import files
from ...common.errors import UsageError
from .. import stats
from ..measure.records import RunLog

INSTALL = "pip install 'tinygrad_act[tensorboard]' (or pip install tensorboardX)"
SCALARS = {
    "train/loss": "loss",
    "train/accuracy": "accuracy",
    "test/loss": "test_loss",
    "test/accuracy": "test_accuracy",
    "gradients/grad_norm": "grad_norm",
    "gradients/nonfinite": "nonfinite",
}
LAYER_SCALARS = ("delta_norm", "weight_grad_norm", "update_ratio", "grad_snr")


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
    values["gradients/r"] = stats.first_last_ratio(record) if len(record["layers"]) > 2 else None
    count = len(record["layers"])
    for index, layer in enumerate(record["layers"]):
        for key in LAYER_SCALARS:
            values[f"{key}/{layer_name(index, count)}"] = layer.get(key)
    return {tag: float(value) for tag, value in values.items() if value is not None}


class TensorBoardLog:
    """A RunLog that also writes each record to TensorBoard, and the probe's histograms on ``close``."""

    def __init__(self, path: Path, probe, records: list[dict] | None = None):
        writer_class = require()
        directory = files.subdir(path, "tensorboard")
        self._log, self._probe = RunLog(path, records), probe
        # A resumed run rewrites the steps after its checkpoint: TensorBoard drops the events logged there before.
        purge = {"purge_step": records[-1]["step"] + 1} if records else {}
        with files.os_errors(directory, "writing TensorBoard events to"):
            before = set(directory.iterdir())
            self._writer = writer_class(str(directory), **purge)
            for written in set(directory.iterdir()) - before:  # tensorboardX's own file: the run's manifest lists it
                files.record(written)

    @property
    def records(self) -> list[dict]:
        """The records written (as RunLog.records)."""
        return self._log.records

    def write(self, record: dict):
        """Append the record to metrics.jsonl/csv (first: the primary record), then its scalars to TensorBoard."""
        self._log.write(record)
        with files.os_errors(Path(self._writer.logdir), "writing TensorBoard events to"):
            for tag, value in scalars(record).items():
                self._writer.add_scalar(tag, value, record["step"])

    def close(self):
        """Close metrics.jsonl/csv, write the histograms (first and last measured step), flush the event file."""
        self._log.close()
        with files.os_errors(Path(self._writer.logdir), "writing TensorBoard events to"):
            write_histograms(self._writer, self._probe.histogram_arrays())
            self._writer.close()


def write_histograms(writer, arrays: dict) -> None:
    """Each layer's activation and log10|δ| counts (probes.LayerProbe.histogram_arrays) as TensorBoard histograms."""
    if not arrays:
        return
    steps = {"init": int(arrays["init_step"]), "end": int(arrays["end_step"])}
    if steps["end"] == steps["init"]:
        del steps["end"]
    for key, step in steps.items():
        deltas = arrays[f"{key}_deltas"]
        for kind, counts_by_layer, edges in (("activations", arrays[f"{key}_activations"], arrays["activation_edges"]),
                                             ("delta_log10", deltas, arrays["delta_log_edges"])):  # fmt: skip
            for index, counts in enumerate(counts_by_layer):
                name = layer_name(index, len(deltas))
                _histogram(writer, f"{kind}/{name}", counts, edges, step)


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
