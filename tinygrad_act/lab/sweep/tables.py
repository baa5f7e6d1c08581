"""A sweep's outputs: sweep.csv and sweep.md (one row per run) and its figures, each written whole.

Figures (drawn by figures.py in the one style of show/plots.py, no pyplot): r against depth, a heatmap of log10 r
per init, and each run's step-0 delta profile. Diverged and vanished runs are marked, never left out.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ...common import files
from ...common.errors import RunDirError
from ..show import plots
from ..show.format import fmt, markdown_table
from . import figures as sweep_figures

# A sweep's row: the grid values, these fields of the run's summary (sweep.collect), and the run's name.
ROW_FIELDS = [
    "status",
    "verdict",
    "verdict_final",
    "ratio_init",
    "ratio_final",
    "per_layer_factor_init",
    "per_layer_factor_final",
    "predicted_ratio",
    "predicted_per_layer_factor",
    "final_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "steps_done",
    "wall_time_s",
]
# The columns of sweep.md after the grid's own (sweep.csv has them all).
SHOWN = [
    "verdict",
    "ratio_init",
    "ratio_final",
    "per_layer_factor_init",
    "predicted_per_layer_factor",
    "test_loss",
    "test_accuracy",
    "status",
]


def write_tables(root: Path, rows: list[dict], keys: list[str]) -> None:
    """sweep.csv (the grid ``keys``, ROW_FIELDS, run) and sweep.md (a Markdown table, numbers by report.fmt)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=[*keys, *ROW_FIELDS, "run"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write(root / "sweep.csv", text.getvalue())
    files.atomic_write(root / "sweep.md", markdown_table(*table_cells(rows, keys)) + "\n")


def table_cells(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list]]:
    """The headers and cells of sweep.md (and of the sweep's report.html): the grid keys, then SHOWN."""
    shown = [*keys, *SHOWN]
    # Grid values are shown as given (depth 100, not 1e+02); measured numbers as everywhere else (report.fmt).
    cells = [[fmt(row.get(c), 3) if row.get(c) is None or isinstance(row.get(c), float) else row[c] for c in shown]
             for row in rows]  # fmt: skip
    return shown, cells


def figures(root: Path, rows: list[dict], keys: list[str]) -> list[str]:
    """Draw the sweep's figures (figures.py) into ``root/figures``; return their relative paths.

    r against depth and the heatmap need depth in the grid (the heatmap also act); the profiles are always drawn.
    """
    if not rows:
        return []
    out = files.subdir(root, "figures")
    drawn = {}
    if "depth" in keys:
        drawn["ratio_vs_depth.png"] = sweep_figures.ratio_vs_depth(rows, keys)
        if "act" in keys:
            drawn["ratio_heatmap.png"] = sweep_figures.ratio_heatmap(rows, keys)
    first_records = {row["run"]: _step_zero(root / "runs" / row["run"]) for row in rows}
    drawn["delta_profiles.png"] = sweep_figures.delta_profiles(rows, keys, first_records)
    for name, fig in drawn.items():
        plots.save(fig, out / name)
    return [f"figures/{name}" for name in drawn]


def _step_zero(run_dir: Path) -> dict | None:
    """The run's step-0 record (files.read_records), or None if it has none."""
    try:
        records = files.read_records(run_dir)
    except RunDirError:  # no metrics.jsonl (the run is elsewhere) or a damaged one
        return None
    first = records[0] if records else None
    return first if isinstance(first, dict) and isinstance(first.get("layers"), list) else None
