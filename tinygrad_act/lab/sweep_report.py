"""A sweep's outputs: sweep.csv and sweep.md (one row per run) and its figures, each written whole.

Figures: r against depth (a band over the other parameters), a heatmap activation x depth of log10 r, and
each run's step-0 delta profile. Diverged runs are marked (a cross; "div" in the heatmap; a dashed profile),
never left out. Drawn through ``plots`` (no pyplot): the caller's backend and figures are left alone.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ..common.errors import RunDirError
from . import plots, rundir
from .report import fmt, markdown_table, number

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
    rundir.atomic_write(root / "sweep.csv", text.getvalue())
    rundir.atomic_write(root / "sweep.md", markdown_table(*table_cells(rows, keys)) + "\n")


def table_cells(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list]]:
    """The headers and cells of sweep.md (and of the sweep's report.html): the grid keys, then SHOWN."""
    shown = [*keys, *SHOWN]
    # Grid values are shown as given (depth 100, not 1e+02); measured numbers as everywhere else (report.fmt).
    cells = [[fmt(row.get(c), 3) if row.get(c) is None or isinstance(row.get(c), float) else row[c] for c in shown]
             for row in rows]  # fmt: skip
    return shown, cells


def figures(root: Path, rows: list[dict], keys: list[str]) -> list[str]:
    """Draw the sweep's figures into ``root/figures``; return their relative paths.

    r against depth and the heatmap need depth in the grid (the heatmap also act); the profiles are always drawn.
    """
    if not rows:
        return []
    out = rundir.subdir(root, "figures")
    drawn = []
    if "depth" in keys:
        drawn.append(_ratio_vs_depth(out, rows, keys))
        if "act" in keys:
            drawn.append(_ratio_heatmap(out, rows))
    drawn.append(_delta_profiles(out, root, rows, keys))
    return [f"figures/{name}" for name in drawn]


def _label(row: dict, keys: list[str]) -> str:
    """What a line stands for: the grid values other than depth and seed."""
    return ", ".join(f"{row[k]}" for k in keys if k not in ("depth", "seed")) or "all"


def _log_ratio(row: dict) -> float:
    """log10 r at step 0; nan where r is 0 or not finite (no place on a log axis)."""
    r = number(row.get("ratio_init"))
    return math.log10(r) if r > 0 and math.isfinite(r) else math.nan


def _diverged(row: dict) -> bool:
    return row.get("status") == "diverged"


def _ratio_vs_depth(out: Path, rows: list[dict], keys: list[str]) -> str:
    """r at step 0 against depth: the median line and the min-max band per label; a cross per diverged run."""
    fig, ax = plots.figure(figsize=(8, 5))
    crossed = False
    for label in dict.fromkeys(_label(r, keys) for r in rows):
        group = [r for r in rows if _label(r, keys) == label]
        depths = sorted({r["depth"] for r in group})
        # r = 0 or non-finite has no place on a log axis: such runs are left out, a depth with none is a gap
        logs = [[_log_ratio(r) for r in group if r["depth"] == d] for d in depths]
        values = [[10**x for x in v if not np.isnan(x)] for v in logs]
        median = [np.median(v) if v else np.nan for v in values]
        line = ax.plot(depths, median, marker="o", label=label)[0]
        low, high = [min(v) if v else np.nan for v in values], [max(v) if v else np.nan for v in values]
        ax.fill_between(depths, low, high, color=line.get_color(), alpha=0.2)
        for r in filter(_diverged, group):  # at its r when that was measured, else on the top edge of the plot
            x = _log_ratio(r)
            if np.isnan(x):
                ax.plot(r["depth"], 0.97, "x", color=line.get_color(), ms=9, mew=2, transform=ax.get_xaxis_transform())
            else:
                ax.plot(r["depth"], 10**x, "x", color=line.get_color(), ms=9, mew=2)
            crossed = True
    ax.set_xscale("linear")
    ax.set_yscale("log")
    ax.axhspan(1e-2, 1e2, color="green", alpha=0.06, label="healthy band")
    if crossed:
        ax.plot([], [], "x", color="black", ms=9, mew=2, label="diverged run")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("r = ||delta_1|| / ||delta_L|| at step 0")
    plots.legend(ax, fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    plots.save(fig, out / "ratio_vs_depth.png")
    return "ratio_vs_depth.png"


def _ratio_heatmap(out: Path, rows: list[dict]) -> str:
    """log10 r at step 0, activation x depth (median over the other parameters); "n div" counts diverged runs."""
    acts = list(dict.fromkeys(r["act"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    grid = np.full((len(acts), len(depths)), np.nan)
    lost = np.zeros((len(acts), len(depths)), dtype=int)
    for i, a in enumerate(acts):
        for j, d in enumerate(depths):
            cell = [r for r in rows if r["act"] == a and r["depth"] == d]
            values = [_log_ratio(r) for r in cell]
            grid[i, j] = np.nanmedian(values) if values and not np.all(np.isnan(values)) else np.nan
            lost[i, j] = sum(_diverged(r) for r in cell)
    fig, ax = plots.figure(figsize=(1.2 * len(depths) + 3, 0.45 * len(acts) + 2))
    image = ax.imshow(grid, cmap="RdBu", vmin=-12, vmax=12, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        text = "-" if np.isnan(v) else f"{v:.1f}"
        if lost[i, j]:
            text += f"\n{lost[i, j]} div"
        ax.text(j, i, text, ha="center", va="center", fontsize=8 if not lost[i, j] else 7)
    ax.set_xticks(range(len(depths)), depths)
    ax.set_yticks(range(len(acts)), acts)
    ax.set_xlabel("depth" + ("  (n div = runs that diverged)" if lost.any() else ""))
    fig.colorbar(image, ax=ax, label="log10 r at step 0 (median over other parameters)")
    plots.save(fig, out / "ratio_heatmap.png")
    return "ratio_heatmap.png"


def _delta_profiles(out: Path, root: Path, rows: list[dict], keys: list[str]) -> str:
    """Each run's ||delta_l|| / ||delta_L|| over the hidden layers at step 0 (dashed: the run diverged later)."""
    fig, ax = plots.figure(figsize=(8, 5))
    for row in rows:
        first = _step_zero(root / "runs" / row["run"])
        if first is None:
            continue
        deltas = np.array([number(layer.get("delta_norm")) for layer in first["layers"][:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):  # a vanished last delta (0) leaves no profile
            profile = deltas / deltas[-1]
        label = f"{_label(row, keys)}, depth {row.get('depth', '')}" if row.get("seed", 0) in (0, None) else None
        if label and _diverged(row):
            label += " (diverged)"
        ax.plot(np.arange(1, len(deltas) + 1), profile, "--" if _diverged(row) else "-", lw=1, alpha=0.8, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer (input side first)")
    ax.set_ylabel("||delta_l|| / ||delta_L|| at step 0")
    plots.legend(ax, fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    plots.save(fig, out / "delta_profiles.png")
    return "delta_profiles.png"


def _step_zero(run_dir: Path) -> dict | None:
    """The run's step-0 record (rundir.read_records), or None if it has none."""
    try:
        records = rundir.read_records(run_dir)
    except RunDirError:  # no metrics.jsonl (the run is elsewhere) or a damaged one
        return None
    first = records[0] if records else None
    return first if isinstance(first, dict) and isinstance(first.get("layers"), list) else None
