"""The terminal report of a run: the layer table, the verdict with its why, the theory, the final line and the files.

Everything fits the terminal (``terminal_width``: ``COLUMNS``, else the terminal's own width, else 100): the
default table shows the columns that tell the story (delta at step 0 and at the end, the weight gradient, the
gains' product, saturated and dead units) and ``wide`` all of them (both gains and the gradient's
signal-to-noise ratio); the log bar gets the columns that are left; every other line is wrapped at word
boundaries. Numbers are written by format.py (``fmt``, ``pct``), the one way a reader sees them.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import textwrap
from collections.abc import Callable

import numpy as np

from ..measure.records import RUN_FILES, layer_name
from ..stats import shown_verdict
from . import time_report
from .format import fmt, fmt_log10, number, pct

DEFAULT_WIDTH = 100  # when the width is unknown (output piped into a file, no terminal)
BAR_WIDTH = (12, 60)  # the log bar's least and largest width in characters
TEXT_WIDTH = 100  # prose (legend, verdict) is wrapped at most this wide, even in a wider terminal: lines stay readable
GAP = "  "  # between two columns


def terminal_width() -> int:
    """``COLUMNS``, else the terminal's width, else DEFAULT_WIDTH (shutil's rule: output piped or redirected)."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def wrap(text: str, width: int, indent: str = "    ") -> str:
    """``text`` wrapped at word boundaries to ``width`` (words are never broken, so a path stays whole); each
    line of ``text`` keeps its own leading spaces, and continuation lines get ``indent`` more."""
    lines = []
    for line in text.split("\n"):
        lead = line[: len(line) - len(line.lstrip(" "))]
        lines += textwrap.wrap(line, width=max(width, 20), subsequent_indent=lead + indent, break_long_words=False,
                               break_on_hyphens=False) or [""]  # fmt: skip
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the layer table: its header, its width, the cell of a layer (at step 0, at the end)."""

    header: str
    width: int
    cell: Callable[[dict, dict], str]
    wide: bool = False  # shown only in the wide table
    legend: str = ""  # what it means, for the legend under the table


def _product(layer: dict) -> float:
    return number(layer.get("weight_gain")) * number(layer.get("activation_gain"))


def columns(last_step: int) -> list[Column]:
    """Every column of the layer table, in order; ``wide`` marks those the default table leaves out."""
    end = f"@{last_step}"
    return [
        Column("layer", 5, lambda a, b: ""),  # filled by layer_table: the layer's name
        Column("delta@0", 8, lambda a, b: fmt(a.get("delta_norm"), 3),
               legend="delta = ||dL/dz|| of each layer's pre-activation over the batch"),
        Column("delta" + end, max(8, len("delta" + end)), lambda a, b: fmt(b.get("delta_norm"), 3)),
        Column("|dW|@0", 8, lambda a, b: fmt(a.get("weight_grad_norm"), 3), legend="|dW| = ||dL/dW||"),
        Column("|dW|" + end, max(8, len("|dW|" + end)), lambda a, b: fmt(b.get("weight_grad_norm"), 3), wide=True),
        Column("σw²@0", 6, lambda a, b: fmt(number(a.get("weight_gain")), 3), wide=True,
               legend="σw² = fan_in·mean(W²), the weights' gain"),
        Column("E[f′²]@0", 8, lambda a, b: fmt(number(a.get("activation_gain")), 3), wide=True,
               legend="E[f′²] = mean f′(z)² over the batch, the activation's gain"),
        Column("σw²·E[f′²]", 10, lambda a, b: fmt(_product(a), 3),
               legend="σw²·E[f′²] = the weights' gain times the activation's gain at step 0, mean-field theory's "
               "factor on delta² per layer (< 1 vanishing, > 1 exploding)"),
        Column("sat", 6, lambda a, b: pct(b.get("saturation")),
               legend="sat = fraction of units in the activation's flat region (at the end)"),
        Column("dead", 6, lambda a, b: pct(b.get("dead_fraction")),
               legend="dead = units with zero gradient for the whole batch (at the end)"),
        Column("snr@0", 7, lambda a, b: fmt(a.get("grad_snr"), 3), wide=True),
        Column("snr" + end, max(7, len("snr" + end)), lambda a, b: fmt(b.get("grad_snr"), 3), wide=True,
               legend="snr = ||mean g||² / mean ||g_i - mean g||² of dW over the batch's examples: < 1 the examples "
               "mostly disagree, whatever the size of delta; pure noise gives about 1/(batch-1); '-' = none (zero "
               "gradient or batch of 1)"),
    ]  # fmt: skip


def layer_table(records: list[dict], width: int | None = None, wide: bool = False) -> str:
    """Per layer: the columns that tell the story (``wide``: all of them) and a log bar of delta at step 0
    in the columns left of ``width`` (default ``terminal_width()``), then the legend, wrapped to ``width``."""
    width = terminal_width() if width is None else width
    first, last = records[0], records[-1]
    count = len(first["layers"])
    shown = [column for column in columns(last["step"]) if wide or not column.wide]
    used = sum(column.width for column in shown) + len(GAP) * len(shown)
    bar_width = min(max(width - used, BAR_WIDTH[0]), BAR_WIDTH[1])
    bars, per_decade = time_report.log_bars([layer["delta_norm"] for layer in first["layers"]], bar_width)
    header = GAP.join(f"{column.header:>{column.width}}" for column in shown) + GAP + "delta@0, log"[:bar_width]
    rows = []
    for index, bar in enumerate(bars):
        a, b = first["layers"][index], last["layers"][index]
        cells = [layer_name(index, count), *(column.cell(a, b) for column in shown[1:])]
        rows.append(GAP.join(f"{cell:>{column.width}}" for cell, column in zip(cells, shown)) + GAP + bar)
    legend = "; ".join(column.legend for column in shown if column.legend)
    legend += f"; bar: delta@0 on a log scale, {per_decade:.3g} characters per decade"
    if not wide:
        legend += "; --wide (WIDE=1) adds both gains, |dW| at the end and the gradient's signal-to-noise ratio"
    rule = "-" * min(max(len(header), *(len(row) for row in rows)), max(width, len(header)))
    return "\n".join([header, rule, *rows, wrap(legend, min(width, TEXT_WIDTH), indent="")])


def verdict_line(
    verdict: str, ratio: float, factor: float, depth: int, dtype: str = "float64", gains: dict | None = None
) -> str:
    """e.g. ``vanishing: layer 1 receives 1.1e-12 of the gradient of layer 20 (x0.25 per layer)``, then why
    when ``gains`` (stats.layer_gains) are given: ``— why: weights' gain 1 x activation's gain 0.054 = ...``."""
    return _verdict_text(verdict, ratio, factor, depth, dtype) + why_clause(gains)


def why_clause(gains: dict | None) -> str:
    """`` — why: weights' gain W x activation's gain A = P per layer on delta² (...)`` from stats.layer_gains;
    for a run with residual connections or normalization, that the gains do not set r; '' without gains."""
    if not gains:
        return ""
    product = number(gains.get("product"))
    if not gains.get("explains_ratio", True):
        implied = f" (x{fmt(math.sqrt(product), 3)} per layer)" if math.isfinite(product) and product >= 0 else ""
        return f" — the layers' gains{implied} do not explain r here: {gains.get('reason', 'not a plain MLP')}"
    if not math.isfinite(product):
        return ""
    return (
        f" — why: weights' gain {fmt(gains['weight'], 3)} x activation's gain {fmt(gains['activation'], 3)} = "
        f"{fmt(product, 3)} per layer on delta², x{fmt(math.sqrt(product), 3)} on delta "
        f"(geometric means over hidden layers: {gains['layers']})"
    )


def _verdict_text(verdict: str, ratio: float, factor: float, depth: int, dtype: str) -> str:
    ratio = number(ratio)  # null: not measured
    if verdict == "exploding" and not math.isfinite(ratio):
        return f"exploding: gradients are not finite (layer 1 / layer {depth} = {ratio})"
    if ratio == 0:
        hint = "; in float32 that happens below 1e-45: try DTYPE=float64" if dtype == "float32" else ""
        return f"{verdict}: layer 1 receives no gradient at all from layer {depth} (it underflowed to exactly 0{hint})"
    share = fmt(ratio, 3)
    what = "of the gradient" if ratio <= 1 else "times the gradient"
    if depth < 2:
        per_layer = "one hidden layer: no per-layer factor"
    elif factor is None or not math.isfinite(factor):
        per_layer = "no per-layer factor"
    else:
        per_layer = f"x{factor:.3g} per layer"
    return f"{verdict}: layer 1 receives {share} {what} of layer {depth} ({per_layer})"


def final_line(summary: dict, depth: int, dtype: str = "float64") -> str:
    """The verdict at the end of training: ``diverged at step N: ...`` for a run that diverged, else from r."""
    if shown_verdict(summary) == "diverged":
        return summary.get("message") or "diverged"
    line = verdict_line(
        summary.get("verdict_final") or "-", summary.get("ratio_final"), summary.get("per_layer_factor_final"), depth,
        dtype, summary.get("gain_final"),
    )  # fmt: skip
    return f"{line}  [step {summary.get('step_final', '-')}, end]"


def jacobian_line(entry: dict | None) -> str | None:
    """``Jacobian dz_L/dz_1 at step 0 (4 examples): rank 49..52 of 128, 316 exact zeros; nonzero s 4.2e-63 .. 1.9
    (median 4.9e-32, middle 90% over 40 decades), mean s^2 0.98, theory 1.00; ...``; None if not measured."""
    if not entry or not entry.get("applies"):
        return None
    logs = np.asarray(entry.get("log10_singular_values", []), dtype=float)
    if "log10_singular_values" not in entry:  # a summary from before the product SVD: its values as they were
        with np.errstate(divide="ignore"):
            logs = np.log10(np.asarray(entry["singular_values"], dtype=float))
        logs = logs[np.isfinite(logs)]
    text = f"Jacobian {entry.get('of', 'dz_L/dz_1')} at step 0 ({entry['examples']} examples"
    if "rank" in entry:
        low, high = min(entry["rank"]), max(entry["rank"])
        text += f"): rank {low}" + (f"..{high}" if high > low else "") + f" of {entry['width']}"
        text += f", {sum(entry['zeros'])} exact zeros"
        if sum(entry["unresolved"]):
            text += f", {sum(entry['unresolved'])} unresolved (< {fmt_log10(max(entry['log10_bounds']))})"
        text += "; nonzero"
    else:
        text += "):"
    if logs.size:
        text += (f" s {fmt_log10(logs.min())} .. {fmt_log10(logs.max())} (median {fmt_log10(np.median(logs))}, "
                 f"middle 90% over {fmt(entry['decades'], 3)} decades)")  # fmt: skip
    mean = entry.get("log10_mean_s2", math.log10(entry["mean_s2"]) if entry["mean_s2"] > 0 else -math.inf)
    text += f", mean s^2 {fmt_log10(mean, 3)}"
    predicted = entry.get("theory") or {}
    if predicted.get("applies"):
        measured_std = entry.get("std_s2")
        if measured_std is None:
            with np.errstate(all="ignore"):  # inf singular values: the spread is inf
                measured_std = float(np.std(np.square(entry["singular_values"])))
        text += (f", theory {fmt(predicted['mean_s2'], 3)}; std of s^2 {fmt(measured_std, 3)}, theory "
                 f"{fmt(math.sqrt(max(predicted['var_s2'], 0.0)), 3)} ({predicted['weights']} weights)")  # fmt: skip
    return text


def _loss(value) -> str:
    """A loss in full (``1.134e+300``), or '-' where none was measured."""
    return "-" if value is None else f"{value:.4g}"


def resumed_line(summary: dict) -> str | None:
    """``resumed from step 600 (resumed 2 times, from steps 300, 600)``; None for a run never resumed."""
    resumed = summary.get("resumed")
    if not isinstance(resumed, dict) or not resumed.get("times"):
        return None
    steps = resumed.get("from_steps") or [resumed.get("from_step")]
    times = resumed["times"]
    if times == 1:
        return f"resumed once, from step {steps[-1]} (its records equal those of a run never stopped)"
    return (
        f"resumed {times} times, from steps {', '.join(str(s) for s in steps)} (its records equal those of a "
        "run never stopped)"
    )


def terminal_report(summary: dict, records: list[dict], config, width: int | None = None, wide: bool = False) -> str:
    """The table, the verdict with the numbers behind it, theory beside measurement, and where the files are,
    every line within ``width`` (default ``terminal_width()``) but the rows of a ``wide`` table."""
    width = terminal_width() if width is None else width
    lines = []
    through_time = (summary.get("through_time") or {}).get("applies")
    if through_time and records and records[0].get("through_time"):
        table, legend = time_report.time_table(records, summary, width, GAP)
        lines += [*table, wrap(legend, min(width, TEXT_WIDTH), indent=""), ""]
    elif records and records[0]["layers"] and records[0]["layers"][0].get("delta_norm") is not None:
        lines += [layer_table(records, width, wide), ""]
    text = []  # lines wrapped at word boundaries
    depth = config.depth
    if through_time:
        text += time_report.lines(summary)
    elif "ratio_init" in summary:
        text.append(
            verdict_line(
                summary.get("verdict") or "-",
                summary["ratio_init"],
                summary.get("per_layer_factor_init"),
                depth,
                config.dtype,
                summary.get("gain_init"),
            )  # fmt: skip
            + "  [step 0, at initialization]"
        )
        theory = summary.get("theory")
        if theory and theory.get("applies"):
            text.append(
                f"  theory (mean field, sigma_w^2={fmt(theory.get('sigma_w2'), 3)}"
                + (f", sigma_b^2={fmt(theory['sigma_b2'], 3)}" if theory.get("sigma_b2") else "")
                + f"): r = {fmt(theory.get('ratio'), 3)}, "
                f"x{fmt(theory.get('per_layer_factor'), 3)} per layer -> {theory.get('verdict')}"
            )
        if config.act.split(":")[0] == "sigmoid" and depth > 1:
            text.append(
                f"  bound: sigmoid' <= 0.25, so {depth - 1} layers shrink the gradient by up to "
                f"0.25^{depth - 1} = {0.25 ** (depth - 1):.1e} (times the weights' own gain)"
            )
        text.append(final_line(summary, depth, config.dtype))
    if jacobian_line(summary.get("jacobian")):
        text.append(jacobian_line(summary.get("jacobian")))
    status = summary["status"]
    text.append("")
    if resumed_line(summary):
        text.append(resumed_line(summary))
    if "test_accuracy" in summary:
        text.append(
            # losses in full (a diverging loss of 1.134e+300 keeps its digits)
            f"train loss {_loss(summary.get('train_loss'))}, accuracy {pct(summary.get('train_accuracy'))}; "
            f"test loss {_loss(summary.get('test_loss'))}, accuracy {pct(summary.get('test_accuracy'))} "
            f"after {summary.get('steps_done', '-')} steps ({fmt(summary.get('wall_time_s'), 3)} s)"
        )
    if status not in ("completed", "diverged"):  # a diverged run's message is its final verdict line above
        text.append(f"status: {status} — {summary.get('message') or '-'}")
    if summary.get("figures_error") or summary.get("figures_skipped"):  # never silent: the files line lacks figures/
        text.append(f"figures: not drawn — {summary.get('figures_error') or summary.get('figures_skipped')}")
    listed = summary.get("files") or list(RUN_FILES)
    text.append(f"files: {summary['path']}/ ({', '.join(listed)})")
    return "\n".join(lines + [wrap(line, min(width, TEXT_WIDTH)) for line in text])
