"""The terminal report of a recurrent run, through time: the step table and the lines under it (report.py prints
them where an MLP's layer table and verdict go).

The table has one row per shown time step t (at most MAX_ROWS, the first and the last always among them): the
gradient ||dL/dh_t|| at training step 0 and at the end, the theory's at step 0 (its profile anchored at the
measured ||dL/dh_T||; for an LSTM the cell state's ||dL/dc_t|| and its carry), an RNN's E[f'²] and saturation, a
gated cell's carry gate (mean, near 1), and a log bar of ||dL/dh_t|| at step 0 (``log_bars``, which the layer
table draws with too). The lines: r_time and its verdict with the per-step factor, the theory (the linearized
factor and Pascanu's condition, or the gates' carry), the gates and W_hh at step 0 and at the end, the final verdict.
"""

from __future__ import annotations

import math

import numpy as np

from ...common.registry import parse_spec
from .format import fmt, fmt_log10, number, pct

MAX_ROWS = 16
MAX_PER_DECADE = 4.0  # a flat profile draws flat bars, not magnified noise
CARRY_GATE = {"lstm": "forget", "gru": "update"}
CELL_NAMES = {"tanh": "tanh RNN", "relu": "ReLU RNN", "lstm": "LSTM", "gru": "GRU"}


def cell_label(spec) -> str:
    """A cell spec as a reader says it: ``LSTM``, ``LSTM (forget_bias=1)``, ``tanh RNN``."""
    name, params = parse_spec(str(spec))
    label = CELL_NAMES.get(name, name)
    return f"{label} ({', '.join(f'{k}={v:g}' for k, v in params.items())})" if params else label


def log_bars(values, width: int) -> tuple[list[str], float]:
    """A bar per value on one log scale, the largest ``width`` characters long ('(zero)' for 0, '(n/a)' for a
    missing or non-finite value), and the characters per decade (at most MAX_PER_DECADE)."""
    logs = [math.log10(v) for v in values if v is not None and v > 0 and math.isfinite(v)]
    low, high = (min(logs), max(logs)) if logs else (0.0, 0.0)
    per_decade = min(MAX_PER_DECADE, (width - 1) / max(high - low, 1e-12))
    bars = []
    for v in values:
        if v is not None and v > 0 and math.isfinite(v):
            bars.append("#" * max(1, round(width + per_decade * (math.log10(v) - high))))
        else:
            bars.append("(zero)" if v == 0 else "(n/a)")
    return bars, per_decade


def shown_steps(steps: int) -> list[int]:
    """The time steps (0-based) a table shows: all up to MAX_ROWS, else MAX_ROWS spread evenly, first and last."""
    if steps <= MAX_ROWS:
        return list(range(steps))
    return sorted({int(round(i)) for i in np.linspace(0, steps - 1, MAX_ROWS)})


def _columns(cell: str, end: int) -> list[tuple]:
    """(header, width, cell(first step entry, last step entry, theory value)) of the table, per cell kind."""
    at_end = f"@{end}"
    columns = [
        ("t", 5, None),
        ("delta@0", 8, lambda a, b, p: fmt(a.get("delta_norm"), 3)),
        ("delta" + at_end, max(8, 5 + len(at_end)), lambda a, b, p: fmt(b.get("delta_norm"), 3)),
        ("theory@0", 8, lambda a, b, p: fmt(p, 3)),
    ]
    if cell == "lstm":
        columns.insert(3, ("cdelta@0", 8, lambda a, b, p: fmt(a.get("cell_delta_norm"), 3)))
    if cell in CARRY_GATE:
        gate = CARRY_GATE[cell]
        columns += [
            (f"{gate[0]}@0", 6, lambda a, b, p: fmt(a.get(f"{gate}_mean"), 2)),
            (f"{gate[0]}{at_end}", max(6, 1 + len(at_end)), lambda a, b, p: fmt(b.get(f"{gate}_mean"), 2)),
            (f"{gate[0]}≈1{at_end}", max(7, 3 + len(at_end)), lambda a, b, p: pct(b.get(f"{gate}_near_1"))),
        ]
    else:
        columns += [
            ("E[f′²]@0", 8, lambda a, b, p: fmt(a.get("activation_gain"), 3)),
            ("sat" + at_end, max(6, 3 + len(at_end)), lambda a, b, p: pct(b.get("saturation"))),
        ]
    return columns


def legend(cell: str, theory: dict, per_decade: float | None = None) -> str:
    """What the step table's columns mean (and its bar's scale, when drawn)."""
    parts = ["delta = ||dL/dh_t|| over the batch at time step t (t = 1 is the first input)"]
    if cell == "lstm":
        parts.append("cdelta = ||dL/dc_t||, the cell state's")
    if theory.get("kind") == "carry":
        parts.append(f"theory = the {theory['gate']} gates' carry, rms of their product from t to T, anchored at "
                     f"the measured {'cdelta' if cell == 'lstm' else 'delta'} of step T")  # fmt: skip
    elif theory.get("applies"):
        parts.append("theory = linearized, ||dL/dh_T|| x prod sqrt(σw² E[f′(z_s)²]) over the later steps s")
    if cell in CARRY_GATE:
        gate = CARRY_GATE[cell]
        parts.append(f"{gate[0]} = mean {gate} gate, {gate[0]}≈1 = fraction saturated toward 1 (σ > 0.987)")
    else:
        parts.append("E[f′²] = mean f′(z_t)² over the batch; sat = fraction of units in the flat region")
    if per_decade is not None:
        parts.append(f"bar: delta@0 on a log scale, {per_decade:.3g} characters per decade")
    return "; ".join(parts)


def time_rows(records: list[dict], summary: dict) -> tuple[list[tuple], list[list[str]], list]:
    """The step table as data: its columns ((header, width) pairs), one row of cells per shown time step, and
    delta@0 of each shown step (for the terminal's bars); report.html tables the same rows."""
    entry = summary["through_time"]
    first, last = records[0]["through_time"], _last_measured(records)["through_time"]
    cell, theory = entry["cell"], entry.get("theory") or {}
    columns = _columns(cell, _last_measured(records)["step"])
    anchor_field = "cell_delta_norm" if cell == "lstm" and theory.get("kind") == "carry" else "delta_norm"
    anchor = number(first[-1].get(anchor_field))
    profile = theory.get("profile") if theory.get("applies") else None
    shown = shown_steps(len(first))
    rows = []
    for t in shown:
        predicted = anchor * profile[t] if profile is not None else math.nan
        rows.append([str(t + 1)] + [make(first[t], last[t], predicted) for _, _, make in columns[1:]])
    return [(name, w) for name, w, _ in columns], rows, [first[t]["delta_norm"] for t in shown]


def time_table(records: list[dict], summary: dict, width: int, gap: str = "  ") -> tuple[list[str], str]:
    """(the table's lines, its legend) over the shown time steps, within ``width`` but for the bar's minimum."""
    columns, rows, deltas = time_rows(records, summary)
    used = sum(w for _, w in columns) + len(gap) * len(columns)
    bar_width = min(max(width - used, 12), 60)
    bars, per_decade = log_bars(deltas, bar_width)
    header = gap.join(f"{name:>{w}}" for name, w in columns) + gap + "delta@0, log"[:bar_width]
    lines = [header, "-" * min(len(header) + bar_width, max(width, len(header)))]
    for cells, bar in zip(rows, bars):
        lines.append(gap.join(f"{c:>{w}}" for c, (_, w) in zip(cells, columns)) + gap + bar)
    entry = summary["through_time"]
    return lines, legend(entry["cell"], entry.get("theory") or {}, per_decade)


def _last_measured(records: list[dict]) -> dict:
    return next((r for r in reversed(records) if r.get("through_time")), records[0])


def verdict_line(verdict: str, ratio: float, factor: float, steps: int, what: str = "the gradient",
                 truncate: int = 0) -> str:  # fmt: skip
    """``vanishing: step 1 receives 2.0e-13 of the gradient at step 50 (x0.55 per step)``; ``truncate``: the run's
    truncated BPTT (its K; 0 = full), which explains an exact 0 when K < T."""
    ratio = number(ratio)
    if verdict == "exploding" and not math.isfinite(ratio):
        return f"exploding: gradients are not finite (step 1 / step {steps} = {ratio})"
    if ratio == 0:
        why = "it underflowed to exactly 0"
        if 0 < truncate < steps:
            why = f"truncated BPTT cuts the graph every {truncate} steps: no gradient crosses a cut"
        return f"{verdict}: step 1 receives nothing of {what} at step {steps} ({why})"
    share = "of" if ratio <= 1 else "times"
    per_step = f"x{factor:.3g} per step" if factor is not None and math.isfinite(factor) else "no per-step factor"
    return f"{verdict}: step 1 receives {fmt(ratio, 3)} {share} {what} at step {steps} ({per_step})"


def theory_lines(entry: dict) -> list[str]:
    """The theory at step 0 beside the measurement (theory/recurrent.py's predict)."""
    theory = entry.get("theory") or {}
    if not theory.get("applies"):
        return [f"  theory: {theory['reason']}"] if theory.get("reason") else []
    said = f"r = {fmt(theory['ratio'], 3)}, x{fmt(theory['factor'], 3)} per step -> {theory['verdict']}"
    if theory["kind"] == "carry":
        measured = entry.get("cell_ratio_init") if theory["compares_with"] == "cell" else entry.get("ratio_init")
        state = "cell state" if theory["compares_with"] == "cell" else "hidden state"
        return [f"  theory (the {theory['gate']} gates' carry, step 0): {said}; measured on the {state}: "
                f"r = {fmt(measured, 3)}"]  # fmt: skip
    pascanu = theory["pascanu"]
    lines = [f"  theory (linearized, σw² = {fmt(theory['sigma_w2'], 3)}, E[f′²] = {fmt(theory['activation_gain'], 3)}"
             f"): {said}"]  # fmt: skip
    relation = "<" if pascanu["condition"] == "vanishing" else ">="
    consequence = "the gradient must vanish" if pascanu["condition"] == "vanishing" else "exploding is possible"
    lines.append(
        f"  Pascanu et al. 2013: ||W_hh|| = {fmt(pascanu['largest_singular_value'], 3)} {relation} 1/γ = "
        f"{fmt(pascanu['threshold'], 3)}, so {consequence}; ||dh_T/dh_1|| <= {fmt_log10(pascanu['log10_bound'])}"
    )
    return lines


def lines(summary: dict) -> list[str]:
    """The verdict, theory, cell state, gates, W_hh and final lines of a recurrent run (to be wrapped)."""
    entry = summary["through_time"]
    steps, cell = entry["steps"], entry["cell"]
    truncate = entry.get("truncate") or 0
    text = [verdict_line(entry["verdict"], entry["ratio_init"], entry["factor_init"], steps, truncate=truncate)
            + "  [step 0, init]"]  # fmt: skip
    text += theory_lines(entry)
    if cell == "lstm":
        text.append(f"  cell state: ||dL/dc_1|| / ||dL/dc_{steps}|| = {fmt(entry['cell_ratio_init'], 3)} at step 0")
    for key, when in (("init", "step 0"), ("final", f"step {entry['step_final']}")):
        gates = entry.get(f"gates_{key}") or {}
        described = [f"{gate} {fmt(gates[f'{gate}_mean'], 2)} (≈0 {pct(gates[f'{gate}_near_0'])}, ≈1 "
                     f"{pct(gates[f'{gate}_near_1'])})" for gate in _gate_names(gates)]  # fmt: skip
        radius, norm = entry[f"spectral_radius_{key}"], entry[f"spectral_norm_{key}"]
        weights = f"W_hh spectral radius {fmt(radius, 3)}, norm {fmt(norm, 3)}"
        text.append(f"  {when}: {weights}" + (f"; gates: {', '.join(described)}" if described else ""))
    if entry["verdict_final"] == "diverged":
        text.append(summary.get("message") or "diverged")
    else:
        final = verdict_line(entry["verdict_final"], entry["ratio_final"], entry["factor_final"], steps,
                             truncate=truncate)  # fmt: skip
        text.append(f"{final}  [step {entry['step_final']}, end]")
    return text


def _gate_names(gates: dict) -> list[str]:
    return [key[: -len("_mean")] for key in gates if key.endswith("_mean")]
