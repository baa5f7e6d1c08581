"""A run's records: the fields of each measured step (``STEP_FIELDS``, per layer ``LAYER_FIELDS``) and ``RunLog``,
which appends each record whole to metrics.jsonl and metrics.csv (both or neither, common/files.py's AppendLog).

The probes (probes.py) fill a record; the run (run/experiment.py) logs it. A recurrent run's records also carry
``through_time``, one entry per time step (through_time.py), in metrics.jsonl only: metrics.csv keeps one row per
layer. What is read back, by show/, a resumed run, a sweep or ``Run.load``, passes one schema (``read_metrics``,
``read_summary``; ``SUMMARY_FIELDS`` declared with common/validate.py's Setting): a field of the wrong type is one
line naming the file and the field, never a traceback in whatever reads it later.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ...common import files
from ...common.errors import RunDirError, UsageError, interrupts_deferred
from ...common.files import AppendLog, atomic_write, dumps
from ...common.validate import Setting
from ..settings import DEVICES, ENGINES

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


# ---- reading a run's records and summary back: one schema --------------------------------------------------------
STATUSES = ("completed", "diverged", "interrupted", "failed")
VERDICTS = ("vanishing", "healthy", "exploding", "diverged")


def _measured(name: str, kind=float, **rules) -> Setting:
    """A field of a file read back: null allowed (not measured), a number may be nan or inf (measured so)."""
    return Setting(name, kind, None, optional=True, finite=False, **rules)


_NUMBERS = ("final_loss", "final_accuracy", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "ratio_init",
            "ratio_final", "per_layer_factor_init", "per_layer_factor_final", "wall_time_s")  # fmt: skip
SUMMARY_FIELDS = (
    Setting("status", str, None, choices=STATUSES),
    _measured("message", str),
    *(_measured(name, int, low=0) for name in ("steps_done", "steps_requested", "records", "step_init", "step_final")),
    *(_measured(name) for name in _NUMBERS),
    _measured("verdict", str, choices=VERDICTS),
    _measured("verdict_final", str, choices=VERDICTS),
    *(_measured(name, dict) for name in ("theory", "jacobian", "gain_init", "gain_final", "through_time")),
    *(_measured(name, list, items=str) for name in ("figures", "files")),
    *(
        _measured(name, str)
        for name in ("figures_error", "figures_skipped", "report_html_error", "tensorboard_error", "signal")
    ),  # fmt: skip
    _measured("resumed", dict),
    _measured("engine", str, choices=ENGINES),  # who trained a native run, and where (settings.py)
    _measured("device", str, choices=DEVICES),
)
INNER_FIELDS = {  # the objects inside a summary: field -> the fields its readers use
    "theory": (
        _measured("applies", bool),
        _measured("reason", str),
        *(_measured(name) for name in ("ratio", "per_layer_factor", "sigma_w2", "sigma_b2", "depth_scale")),
        _measured("verdict", str, choices=VERDICTS),
    ),
    "jacobian": (  # measure/jacobian.py's module docstring says what each is
        _measured("applies", bool),
        _measured("reason", str),
        # min, max, median: null below float64's range; the rest never null (report and the figure compute with them)
        *(_measured(name) for name in ("min", "max", "median", "std_s2")),
        Setting("examples", int, None, low=1),
        *(
            Setting(name, float, None, finite=False)
            for name in ("mean_s2", "log10_mean_s2", "decades", "relative_error")
        ),  # fmt: skip
        _measured("singular_values", list, items=float),
        # the exact spectrum's counts and logarithms
        Setting("width", int, None, low=1),
        *(Setting(name, list, None, items=float) for name in ("log10_singular_values", "log10_bounds")),
        *(Setting(name, list, None, items=int) for name in ("rank", "zeros", "unresolved")),  # per example
        _measured("theory", dict),
    ),
    "gain_init": (*(_measured(name) for name in ("weight", "activation", "product")), _measured("reason", str)),
    "resumed": (
        *(_measured(name, int, low=0) for name in ("from_step", "times")),
        _measured("from_steps", list, items=int),
    ),  # fmt: skip
}
INNER_FIELDS["gain_final"] = INNER_FIELDS["gain_init"]
_ENDS = ("init", "final")
INNER_FIELDS["through_time"] = (  # a recurrent run's (through_time.py's summarize; run/recurrent.py adds truncate)
    _measured("applies", bool),
    _measured("reason", str),
    _measured("cell", str),
    _measured("steps", int, low=1),
    _measured("truncate", int, low=0),
    *(_measured(f"{name}_{end}") for name in ("ratio", "factor", "spectral_radius", "spectral_norm", "cell_ratio")
      for end in _ENDS),
    *(_measured(f"step_{end}", int, low=0) for end in _ENDS),
    *(_measured(f"gates_{end}", dict) for end in _ENDS),
    _measured("verdict", str, choices=VERDICTS),
    _measured("verdict_final", str, choices=VERDICTS),
    _measured("theory", dict),
)  # fmt: skip
# What an inner object that ``applies`` must hold: its readers (report, compare, html) use these without a default.
APPLIES_REQUIRED = {
    "theory": ("ratio", "per_layer_factor"),
    "jacobian": ("examples", "min", "max", "median", "mean_s2", "decades", "singular_values"),
    "jacobian.theory": ("mean_s2", "var_s2", "weights"),
    "through_time": ("cell", "steps", "verdict", "verdict_final", *(f"{name}_{end}" for name in ("ratio", "factor",
                     "step", "spectral_radius", "spectral_norm") for end in _ENDS)),
}  # fmt: skip
# The exact spectrum's fields come together (a summary from before it has none of them): once ``rank`` or
# ``log10_singular_values`` is there, report.jacobian_line and jacobian_figure read these too.
_SPECTRUM_REQUIRED = {"rank": ("width", "zeros", "unresolved", "log10_bounds"), "log10_singular_values": ("width",)}
_JACOBIAN_THEORY = (_measured("applies", bool), *(Setting(name, float, None, finite=False) for name in ("mean_s2",
                    "var_s2")), _measured("weights", str))  # fmt: skip
RECORD_FIELDS = (
    Setting("step", int, None, low=0),
    Setting("loss", float, None, finite=False),
    Setting("accuracy", float, None, finite=False),
    Setting("layers", list, None, items=dict),
    _measured("through_time", list, items=dict),  # a recurrent run's, one entry per time step
    *(_measured(name) for name in STEP_FIELDS if name not in ("step", "loss", "accuracy")),
)
_REQUIRED = {"status"}


def _checked(fields, value: dict, where: str, required=()) -> dict:
    """``value``, unchanged, once its fields pass their Settings and the required ones are present (a record read
    back is written again when a run resumes: it keeps its values as they were); fields the schema does not name
    are left alone (a newer version may add some)."""
    for field in fields:
        if field.name in value:
            field.check(value[field.name], where)
        elif field.name in required:
            raise UsageError(f"{where}: {field.name} is missing")
    return value


def check_summary(summary: dict, where: str) -> dict:
    """A summary (summary.json's object) with every field its readers use of the right type, else one line."""
    _checked(SUMMARY_FIELDS, summary, where, _REQUIRED)
    inner = {key: summary.get(key) for key in INNER_FIELDS}
    if isinstance(inner["jacobian"], dict) and inner["jacobian"].get("theory") is not None:
        inner["jacobian.theory"] = inner["jacobian"]["theory"]
    for key, value in inner.items():
        if value is not None:
            required = APPLIES_REQUIRED.get(key, ()) if value.get("applies") else ()
            _checked(INNER_FIELDS.get(key, _JACOBIAN_THEORY), value, f"{where}: {key}", required)
    if inner["jacobian"] is not None and inner["jacobian"].get("applies"):
        _spectrum_consistent(inner["jacobian"], f"{where}: jacobian")
    return summary


def _spectrum_consistent(entry: dict, where: str) -> None:
    """The exact spectrum's fields, present together and adding up: per example ``rank``, ``zeros`` and
    ``unresolved`` (one number each, summing to ``width``), a logarithm per nonzero value and a bound per
    unresolved one."""
    for present, required in _SPECTRUM_REQUIRED.items():
        if present in entry:
            missing = [name for name in required if name not in entry]
            if missing:
                raise UsageError(f"{where}: {missing[0]} is missing (it comes with {present})")
    if "rank" not in entry:
        return
    parts = [entry[name] for name in ("rank", "zeros", "unresolved")]
    if any(len(part) != entry["examples"] for part in parts) or not entry["examples"]:
        raise UsageError(f"{where}: rank, zeros and unresolved must hold one number per example "
                         f"({entry['examples']}), got {parts}")  # fmt: skip
    if any(sum(counts) != entry["width"] for counts in zip(*parts)):
        raise UsageError(f"{where}: an example's rank, zeros and unresolved must add up to the width "
                         f"{entry['width']}, got {parts}")  # fmt: skip
    if "log10_singular_values" in entry and len(entry["log10_singular_values"]) != sum(entry["rank"]):
        raise UsageError(f"{where}: log10_singular_values must hold the {sum(entry['rank'])} nonzero values the "
                         f"ranks count, got {len(entry['log10_singular_values'])}")  # fmt: skip
    if len(entry["log10_bounds"]) != sum(entry["unresolved"]):
        raise UsageError(f"{where}: log10_bounds must hold one bound per unresolved value "
                         f"({sum(entry['unresolved'])}), got {len(entry['log10_bounds'])}")  # fmt: skip


def read_summary(path) -> dict:
    """A run's summary.json, checked (``check_summary``); UsageError in one line naming the file and the field."""
    file = Path(path) / "summary.json"
    return check_summary(files.load_json(file, "a run's summary.json"), str(file))


def read_metrics(path) -> list[dict]:
    """A run's metrics.jsonl, each record checked: step, loss, accuracy and the layers' numbers of the right type
    (a record cut short by a crash at the end is left out, as files.read_records does); UsageError in one line
    naming the file, the line and the field."""
    file = Path(path) / "metrics.jsonl" if Path(path).is_dir() else Path(path)
    try:
        records = files.read_records(file)
    except RunDirError as error:
        raise UsageError(str(error)) from None
    numbers = (int, float, type(None))
    for number, record in enumerate(records, start=1):
        where = f"{file} record {number}"
        _checked(RECORD_FIELDS, record, where, {"step", "loss", "accuracy", "layers"})
        for index, layer in enumerate(record["layers"]):
            for key in LAYER_FIELDS:
                value = layer.get(key)
                if type(value) not in numbers:
                    raise UsageError(f"{where}: layers[{index}].{key} must be a number or null, got {value!r}")
    return records
