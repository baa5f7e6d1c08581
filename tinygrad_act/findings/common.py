"""What every finding shares: the Context an analysis reads its runs through, and the aggregations over runs.

A finding turns its sweep's rows (one per run, from ``lab.sweep.collect``) into a Markdown body. Numbers are
formatted by ``lab.show.format`` and figures drawn and saved by ``lab.show.plots``; the helpers here only aggregate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import files
from ..lab import data
from ..lab.run.config import Config
from ..lab.show import plots
from ..lab.show.format import number

# The findings' figures have always been written at 100 dpi (lab.show.plots.DPI is 110 for run and sweep figures):
# keeping it keeps the report's PNGs as they are.
FIGURE_DPI = 100


class Context:
    """What an analysis sees: the sweep, its rows, its run directories, and where figures go."""

    def __init__(self, name: str, sweep, rows: list[dict], root: Path, figures: Path, committed: dict | None = None):
        self.name, self.sweep, self.rows, self.root, self.figure_dir = name, sweep, rows, root, figures
        self.committed = committed  # the committed table of the finding's full grid (Finding.full), if any
        self._records = {}
        self.memo = {}  # what an analysis computes once per run and reads again (a margin judges every seed)

    def records(self, row) -> list[dict]:
        """A run's metrics.jsonl records (cached; nan/inf restored, None = not measured)."""
        run = row["run"]
        if run not in self._records:
            self._records[run] = files.read_records(self.root / "runs" / run)
        return self._records[run]

    def where(self, **match) -> list[dict]:
        """The rows whose parameters equal the given values."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]

    @property
    def seeds(self) -> list:
        """The sweep's seeds: its grid's, else the one seed every run shares."""
        return list(self.sweep.grid.get("seed", [self.setting("seed")]))

    def among(self, seeds, **match) -> list[dict]:
        """``where(**match)`` among the runs of ``seeds`` (None: every seed), as a margin's judge asks."""
        rows = self.where(**match)
        return rows if seeds is None else [r for r in rows if r.get("seed", self.setting("seed")) in seeds]

    def setting(self, key: str):
        """A run setting every run of the finding shares: its fixed value, else the experiment default."""
        return self.sweep.fixed.get(key, getattr(Config(), key))

    def chance(self) -> float:
        """The test accuracy of guessing: 1 / the number of classes of the runs' data set (nan if not declared)."""
        shape = data.check(self.setting("data"))
        return 1 / shape.classes if shape else math.nan

    def figure(self, fig, suffix: str) -> str:
        """Save a figure under the report's figures/ (whole or not at all) and return its Markdown link."""
        files.make_dir(self.figure_dir)
        name = f"{self.name}_{suffix}.png"
        plots.save(fig, self.figure_dir / name, dpi=FIGURE_DPI)
        return f"![{self.name} {suffix}](figures/{name})"

    def copy_sweep_figure(self, name: str) -> str | None:
        """Copy one of the sweep's own figures next to the report; its Markdown link, or None."""
        source = self.root / "figures" / name
        if not source.exists():
            return None
        files.make_dir(self.figure_dir)
        target = f"{self.name}_{name}"
        files.atomic_write(self.figure_dir / target, source.read_bytes())  # a link at the target is replaced
        return f"![{self.name} {name}](figures/{target})"


# A mean-field prediction of r "agrees" with a measurement within this factor: what the plain-net theory itself
# achieves at the report's width 64 and depth <= 50 (finding 1: worst x1.8 over its 96 runs, median x1.12), so a
# larger miss is a wrong theory, not finite width.
THEORY_WITHIN = 2.0


@dataclass
class Margin:
    """How far a part's deciding number is from its threshold, and how far that distance moves between seeds.

    ``value`` is signed, in ``unit`` (decades, points, layers, ...): >= 0 on the side where the part holds, < 0 on
    the other. ``spread`` is the largest distance of one seed's margin from the margin of all seeds (with
    ``leave_one_out``: of the margin computed without one seed), nan with a single seed. A margin no larger than
    the spread is *within noise*: another seed, or another machine's rounding, could flip the part.
    """

    value: float
    unit: str
    spread: float = math.nan

    @property
    def within_noise(self) -> bool:
        """0 < spread and |value| <= spread (False when the spread is unknown, one seed, or 0: every seed alike)."""
        return bool(self.spread > 0 and abs(self.value) <= self.spread)

    def text(self) -> str:
        """``margin +0.52 decades, seeds' spread 0.05`` (``one seed`` without a spread)."""
        spread = "one seed" if math.isnan(self.spread) else f"seeds' spread {_signless(self.spread)}"
        value = "n/a" if math.isnan(self.value) else f"{self.value:+.3g}"
        return f"margin {value} {self.unit}, {spread}"


def _signless(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2g}"


def seed_margin(judge: Callable, seeds, unit: str, leave_one_out: bool = False) -> Margin:
    """The Margin of ``judge(seeds)`` (the margin computed on the runs of those seeds; ``None`` = all of them),
    with its spread over the seeds: each seed alone, or with ``leave_one_out`` all seeds but one (for numbers
    that are themselves statistics over seeds; three seeds at least). A seed whose margin is nan (no run of it
    counted) is skipped, and so is one infinitely far on the same side (``_distance``)."""
    seeds = list(seeds)
    value = judge(None)
    if len(seeds) < (3 if leave_one_out else 2):  # a statistic over seeds needs two left when one is left out
        return Margin(value, unit)
    subsets = [[s for s in seeds if s != left] for left in seeds] if leave_one_out else [[s] for s in seeds]
    distances = [_distance(judge(subset), value) for subset in subsets]
    distances = [d for d in distances if not math.isnan(d)]
    return Margin(value, unit, max(distances) if distances else math.nan)


def worst(margins) -> float:
    """The smallest of several margins that must all hold; nan if there is none or one is nan (not judged)."""
    margins = [float(m) for m in margins]
    return min(margins) if margins and not any(math.isnan(m) for m in margins) else math.nan


def _distance(a: float, b: float) -> float:
    """|a - b|; 0 if equal; nan (no spread to measure) if either is nan, or infinite on the same side of the
    threshold as the other (an exact zero somewhere: far, but toward holding, or failing, harder)."""
    if a == b:
        return 0.0
    if (math.isinf(a) or math.isinf(b)) and (a >= 0) == (b >= 0):
        return math.nan
    return abs(a - b)


@dataclass
class Part:
    """One testable part of a claim: what it says, whether the runs bear it out, the numbers that decide, and
    the margin by which they decide (``judged`` builds a Part whose ``holds`` is its margin's sign)."""

    says: str
    holds: bool | None  # None: not judged here (the runs that would decide are not in this report)
    numbers: str
    margin: Margin | None = None

    @property
    def status(self) -> str:
        """ "not judged" without a verdict, "within noise" when the margin is inside the seeds' spread, else
        "holds" or "does not hold"."""
        if self.holds is None:
            return NOT_JUDGED
        if self.margin is not None and self.margin.within_noise:
            return "within noise"
        return "holds" if self.holds else "does not hold"


NOT_JUDGED = "not judged"


def judged(says: str, margin: Margin, numbers: str, also: bool = True) -> Part:
    """A Part that holds where its margin is >= 0 and ``also`` (a condition the margin does not measure, e.g.
    finding 10's exact zeros); a nan margin, nothing to judge, does not hold."""
    return Part(says, bool(margin.value >= 0) and also, numbers, margin)


@dataclass
class Check:
    """A claim tested on the runs: its parts, and the status they add up to."""

    parts: list[Part]

    @property
    def status(self) -> str:
        """Over the parts judged: every one alike, its status ("holds", "within noise", "does not hold"); none
        holds: "does not hold"; else "holds partly". A part not judged adds ", N not judged" (none judged: "not
        judged"): the status never speaks for what was not tested."""
        statuses = {part.status for part in self.parts} - {NOT_JUDGED}
        unjudged = sum(part.status == NOT_JUDGED for part in self.parts)
        if not statuses:
            return NOT_JUDGED
        status = statuses.pop() if len(statuses) == 1 else "holds partly" if "holds" in statuses else "does not hold"
        return f"{status}, {unjudged} part{'s' if unjudged > 1 else ''} not judged" if unjudged else status

    def markdown(self) -> str:
        """``**Check: holds partly.**`` and one bullet per part: what it says, its status, why, and its margin."""
        bullets = [
            f"- {p.says}: **{p.status}** ({p.numbers}{'; ' + p.margin.text() if p.margin else ''})" for p in self.parts
        ]
        return "\n".join([f"**Check, computed from the runs: {self.status}.**", "", *bullets])


@dataclass
class Finding:
    """One finding: its name (= its sweep config in experiments/), title, claim, source and analysis.

    ``check(ctx)`` tests the claim on the runs (a Check of its parts), so that the claim printed above a table
    can never contradict it: the report prints the computed status and numbers under the claim.
    """

    name: str
    title: str
    claim: str
    source: str
    analyze: Callable[[Context], str]  # the Markdown body under the claim, source and reproduce line
    check: Callable[[Context], Check] | None = None
    # A grid too heavy for the report's budget: its sweep's name (experiments/<full>.toml), run only by
    # `make report ONLY=<name> FULL=1`, and ``export``, which turns its Context into the rows committed to
    # experiments/<full>.json; the report reads them back as ``ctx.committed`` and shows them, saying so.
    full: str | None = None
    export: Callable[[Context], list[dict]] | None = None


# ---- aggregations over runs -------------------------------------------------------------------------------
def median(values) -> float:
    """The median of the values that are numbers (nan if none)."""
    values = [number(v) for v in values]
    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def geometric_median(values, infinite: bool = False) -> float:
    """Median on a log scale (ratios span many decades); nan if none is positive and finite. With ``infinite``,
    +inf counts (a diverged run's r): the median of [1, inf, inf] is inf."""
    logs = [math.log10(v) for v in map(number, values) if v > 0 and (math.isfinite(v) or infinite)]
    return 10 ** float(np.median(logs)) if logs else math.nan


def mean(values) -> float:
    """The mean of the values that are not nan (nan if none)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def log_error(measured, predicted) -> float:
    """|log10(measured / predicted)|: 0.1 means within 26%, 1 means a factor of 10."""
    m, p = number(measured), number(predicted)
    if not (m > 0 and p > 0 and math.isfinite(m) and math.isfinite(p)):
        return math.nan
    return abs(math.log10(m / p))


def agreement(errors) -> str:
    """A sentence on how far measurement is from theory, from the list of |log10 ratio| errors."""
    errors = [e for e in errors if not math.isnan(e)]
    if not errors:
        return "no run could be compared with theory"
    med, worst = float(np.median(errors)), max(errors)
    return (
        f"median |log10(measured/predicted)| = {med:.2f} (a factor of {10**med:.2f}), "
        f"worst {worst:.2f} (a factor of {10**worst:.2g}) over {len(errors)} runs"
    )


# ---- per-layer statistics of one record ---------------------------------------------------------------------
def last_measured(records: list[dict]) -> dict:
    """The last record with per-layer statistics (a diverged run's final record may have none)."""
    return next((r for r in reversed(records) if r["layers"][0].get("delta_norm") is not None), records[-1])


def layer_field(record: dict, field: str, hidden_only: bool = True) -> np.ndarray:
    """One per-layer statistic of a record as an array (hidden layers only by default)."""
    layers = record["layers"][:-1] if hidden_only else record["layers"]
    return np.array([number(layer.get(field)) for layer in layers])


def relative_to_last(values: np.ndarray) -> np.ndarray:
    """values / values[-1]; nan where the last value is 0 or missing (a profile that vanished entirely)."""
    last = values[-1] if len(values) else math.nan
    return values / last if last and math.isfinite(last) else np.full(len(values), math.nan)


def delta_profile(record: dict) -> np.ndarray:
    """||delta_l|| / ||delta_L|| over the hidden layers of one record: the gradient profile the figures draw."""
    return relative_to_last(layer_field(record, "delta_norm"))


def paragraphs(*parts: str) -> str:
    """A finding's body: its parts (intro, tables, Measured line, figure link) separated by blank lines."""
    return "\n\n".join(parts)
