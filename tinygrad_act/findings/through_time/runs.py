"""What the findings through time share: a run's summary entries, the rule that says a run learned the adding
problem, margins in decades, and the rows a full grid commits (experiments/<name>_full.json).

A run *learned* the adding problem when its test MSE is below LEARNED_BELOW of chance (the MSE of predicting the
train mean, 1/6: R^2 > 0.9), and *stayed at chance* when it is above AT_CHANCE of it. Le, Jaitly & Hinton 2015 judge
their adding runs against that baseline the same way; Hochreiter & Schmidhuber 1997's stricter criterion (every
prediction within 0.04) is the run's accuracy, shown beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

from ...common import files
from ...common.registry import parse_spec
from ...lab.show.format import number
from ...lab.show.time_report import cell_label

__all__ = ["cell_label", "cell_name"]


def cell_name(spec: str) -> str:
    """The cell of a cell spec: ``lstm:forget_bias=1`` -> ``lstm``."""
    return parse_spec(str(spec))[0]


LEARNED_BELOW = 0.1
AT_CHANCE = 0.5


def summary(ctx, row: dict) -> dict:
    """The run's summary.json (cached on the context)."""
    cache = ctx.__dict__.setdefault("_summaries", {})
    if row["run"] not in cache:
        cache[row["run"]] = files.read_json(ctx.root / "runs" / row["run"] / "summary.json") or {}
    return cache[row["run"]]


def through_time(ctx, row: dict) -> dict:
    """The run's summary["through_time"] ({} if it has none)."""
    return summary(ctx, row).get("through_time") or {}


def mse_fraction(entry: dict) -> float:
    """Test MSE over chance MSE of a run's summary (or a committed row: ``test_loss``, ``chance_loss``)."""
    chance = number((entry.get("chance") or {}).get("loss", entry.get("chance_loss")))
    loss = number(entry.get("test_loss"))
    return loss / chance if chance > 0 else math.nan


def decades(value: float, threshold: float) -> float:
    """log10(value / threshold): how many decades ``value`` lies above ``threshold`` (nan if not comparable)."""
    value, threshold = number(value), number(threshold)
    if not (value > 0 and threshold > 0) or math.isnan(value):
        return -math.inf if value == 0 else math.nan
    return math.log10(value / threshold)


def margin(value: float, unit: str = "decades") -> str:
    """``margin +1.3 decades``: how far the deciding number lies on the side where the part holds (< 0: not)."""
    return "margin n/a" if math.isnan(value) else f"margin {value:+.2g} {unit}"


def committed_rows(ctx) -> tuple[list[dict], dict]:
    """The rows and fixed settings of the finding's full grid as committed beside the report
    (``experiments/<name>_full.json``, written by ``make report ONLY=<name> FULL=1``): ([], {}) if there is none.
    The report's context carries them (``ctx.committed``); one without reads the file next to the figures."""
    committed = getattr(ctx, "committed", None)
    if committed is None:
        committed = files.read_json(Path(ctx.figure_dir).parent / f"{ctx.name}_full.json") or {}
    return list(committed.get("rows") or []), dict(committed.get("fixed") or {})


def learning_rows(ctx) -> list[dict]:
    """One row per run of a learning grid, what its finding reads back from the committed table: the grid's
    values, status, r_time at init and at the end, test loss and accuracy, chance and steps done."""
    rows = []
    for row in ctx.rows:
        entry = summary(ctx, row)
        chance = entry.get("chance") or {}
        rows.append({
            **{key: row.get(key) for key in ctx.sweep.grid},
            "status": entry.get("status"),
            "ratio_init": entry.get("ratio_init"),
            "ratio_final": entry.get("ratio_final"),
            "test_loss": entry.get("test_loss"),
            "test_accuracy": entry.get("test_accuracy"),
            "chance_loss": chance.get("loss"),
            "chance_accuracy": chance.get("accuracy"),
            "steps_done": entry.get("steps_done"),
        })  # fmt: skip
    return rows
