"""A run's records: the fields of each measured step (``STEP_FIELDS``, per layer ``LAYER_FIELDS``) and ``RunLog``,
which appends each record whole to metrics.jsonl and metrics.csv (both or neither, common/files.py's AppendLog).

The probes (probes.py) fill a record; the run (run/experiment.py) logs it; show/ and findings read it back with
``common.files.read_records``. A recurrent run's records also carry ``through_time``, one entry per time step
(through_time.py), in metrics.jsonl only: metrics.csv keeps one row per layer.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ...common.errors import RunDirError, interrupts_deferred
from ...common.files import AppendLog, atomic_write, dumps

RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "summary.json")  # every run has these
LAYER_FIELDS = [
    "weight_grad_norm",
    "bias_grad_norm",
    "delta_norm",
    "act_mean",
    "act_std",
    "saturation",
    "dead_fraction",
    "inactive_fraction",
    "weight_gain",
    "activation_gain",
    "update_ratio",
    "grad_subnormal_fraction",
    "grad_snr",
]
STEP_FIELDS = [
    "step", "loss", "accuracy", "grad_norm", "nonfinite", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "time",
]  # fmt: skip
CSV_FIELDS = [*STEP_FIELDS, "layer", *LAYER_FIELDS]  # one row per layer; a step without a test evaluation: empty


def layer_name(index: int, count: int) -> str:
    """The name of Linear layer ``index`` (0-based) of ``count``: 1, 2, ... and ``out`` for the output layer."""
    return "out" if index == count - 1 else str(index + 1)


class RunLog:
    """metrics.jsonl and metrics.csv, appended one measured step at a time, both or neither."""

    def __init__(self, path: Path, records: list[dict] | None = None):
        """Fresh logs, or (resuming) logs rewritten to hold exactly ``records`` and then appended to."""
        header = _csv_text([dict(zip(CSV_FIELDS, CSV_FIELDS))])
        if records is not None:
            atomic_write(path / "metrics.jsonl", "".join(dumps(record) + "\n" for record in records))
            atomic_write(path / "metrics.csv", header + "".join(_csv_rows(record) for record in records))
        self._jsonl = AppendLog(path / "metrics.jsonl", append=records is not None)
        self._csv = AppendLog(path / "metrics.csv", append=records is not None)
        if records is None:
            self._csv.append(header)
        self.records: list[dict] = list(records or [])

    def write(self, record: dict):
        """Append one measured step to both files (whole lines; on failure neither file keeps it)."""
        line = dumps(record) + "\n"
        rows = _csv_rows(record)
        with interrupts_deferred():  # a Ctrl-C or SIGTERM here waits until the record is whole in both files
            csv_size = self._csv.size
            self._csv.append(rows)
            try:
                self._jsonl.append(line)
            except RunDirError:
                self._csv.truncate(csv_size)
                raise
            self.records.append(record)

    def close(self):
        """Close both files (the records written stay in ``records``)."""
        self._jsonl.close()
        self._csv.close()


def _csv_rows(record: dict) -> str:
    """A record's CSV lines: one per layer, the step's global numbers repeated on each."""
    head = {k: record.get(k) for k in STEP_FIELDS}
    count = len(record["layers"])
    return _csv_text([{**head, **layer, "layer": layer_name(i, count)} for i, layer in enumerate(record["layers"])])


def _csv_text(rows: list[dict]) -> str:
    """CSV lines for ``rows`` (non-finite numbers stay numbers: nan, inf; None is empty)."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore").writerows(rows)
    return buffer.getvalue()
