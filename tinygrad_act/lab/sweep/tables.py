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
from ..show.format import fmt, markdown_table, pct
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
# The columns of sweep.md and the sweep's report.html after the grid's own (sweep.csv has them all), with the
# header a reader sees and how the number is written (format.py: fmt, or pct for a fraction shown in percent).
SHOWN = {
    "verdict": ("verdict", str),
    "ratio_init": ("r at init", lambda v: fmt(v, 3)),
    "ratio_final": ("r at end", lambda v: fmt(v, 3)),
    "per_layer_factor_init": ("factor per layer", lambda v: fmt(v, 3)),
    "predicted_per_layer_factor": ("theory: factor per layer", lambda v: fmt(v, 3)),
    "test_loss": ("test loss", lambda v: fmt(v, 3)),
    "test_accuracy": ("test accuracy", pct),
    "status": ("status", str),
}


def write_tables(root: Path, rows: list[dict], keys: list[str]) -> None:
    """sweep.csv (the grid ``keys``, ROW_FIELDS, the initializer "auto" chose, run) and sweep.md (the table a
    reader sees, ``table_cells``)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=[*keys, *ROW_FIELDS, "init_resolved", "run"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write(root / "sweep.csv", text.getvalue())
    files.atomic_write(root / "sweep.md", markdown_table(*table_cells(rows, keys)) + "\n")


def varied(rows: list[dict], keys: list[str]) -> list[str]:
    """The columns that tell the runs apart: the grid ``keys``, and init when the initializer differs between runs
    without being in the grid (``init=auto`` chooses one per activation)."""
    inits = {row.get("init_resolved") for row in rows} - {None}
    return [*keys, "init"] if "init" not in keys and len(inits) > 1 else list(keys)


def _grid_cell(row: dict, key: str) -> str:
    """A grid value as given (depth 100, not 1e+02); an initializer with the one it resolved to, when it differs."""
    resolved = row.get("init_resolved")
    if key == "init":
        given = row.get("init", resolved)
        return str(given) if resolved in (None, given) else f"{given} ({resolved})" if given else str(resolved)
    return str(row.get(key, "-"))


def table_cells(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list]]:
    """The headers and cells of sweep.md and of the sweep's report.html: every varied setting (``varied``), then
    SHOWN, with readable headers and every number written one way (format.py; accuracy in percent)."""
    columns = varied(rows, keys)
    headers = [key.replace("_", " ") for key in columns] + [header for header, _ in SHOWN.values()]
    cells = [[_grid_cell(row, key) for key in columns] + [_shown(row.get(field), write) for field, (_, write) in
              SHOWN.items()] for row in rows]  # fmt: skip
    return headers, cells


def _shown(value, write) -> str:
    return "-" if value is None else write(value)


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
