"""A recurrent run's figures through time, in the one style of ``plots`` (run_figures.py draws them for a run whose
records carry ``through_time``, beside its update ratios, training curves and Jacobian):

- gradient_time.png: ||dL/dh_t|| over the time steps t at a few training steps (colour = training step) on the
  fixed norm range, with the theory at step 0 dashed (anchored at the measured step T); an LSTM's second panel is
  its cell state's ||dL/dc_t|| with the forget gates' carry;
- gradient_time_heatmap.png: log10 ||dL/dh_t||, time step x training step, on the shared colour scale;
- gates.png (LSTM, GRU): each sigmoid gate's mean over t at step 0 and at the end, its fractions saturated toward
  0 and 1, and the carry gate's mean over the training steps; saturation_time.png (RNN): E[f'(z_t)²] and the
  fraction of saturated units over t at step 0 and at the end.
"""

from __future__ import annotations

import math

import numpy as np

from . import plots
from .format import fmt, number

CARRY_GATE = {"lstm": "forget", "gru": "update"}
SIGMOID_GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update")}


def time_series(records: list[dict], field: str) -> np.ndarray:
    """records x time steps array of a per-step field (nan where missing)."""
    return np.array([[number(s.get(field)) for s in r["through_time"]] for r in records], dtype=float)


def names(cell: str | None = None) -> tuple[str, ...]:
    """The figures through time of a recurrent run of ``cell`` (its name: tanh, lstm, ...), by file stem, in the
    order they are drawn; None: of any cell (gates for LSTM and GRU, saturation_time for the others)."""
    third = ("gates", "saturation_time") if cell is None else ("gates" if cell in CARRY_GATE else "saturation_time",)
    return "gradient_time", "gradient_time_heatmap", *third


def draws(records: list[dict], summary: dict) -> dict:
    """name -> a function drawing that figure through time (returning its Figure and file name): none if no record
    carries ``through_time``."""
    records = [r for r in records if r.get("through_time")]
    if not records:
        return {}
    cell = summary["through_time"]["cell"]
    third = (lambda: gates(records, cell)) if cell in CARRY_GATE else (lambda: saturation_time(records))
    return dict(zip(names(cell), (lambda: gradient_time(records, summary), lambda: gradient_time_heatmap(records),
                                  third)))  # fmt: skip


def _theory(ax, steps, anchor: float, theory: dict, label: str) -> None:
    profile = theory.get("profile")
    if not theory.get("applies") or profile is None or not (0 < anchor < math.inf):
        return
    ax.plot(steps, anchor * np.asarray(profile), color="black", **plots.THEORY_STYLE,
            label=f"{label}, x{fmt(theory['factor'], 3)} per step (step 0)")  # fmt: skip


def gradient_time(records: list[dict], summary: dict):
    """||dL/dh_t|| (an LSTM also ||dL/dc_t||) over t at a few training steps, with the theory dashed."""
    entry = summary["through_time"]
    cell, theory = entry["cell"], entry.get("theory") or {}
    panels = [("delta_norm", r"$\|\partial L/\partial h_t\|$")]
    if cell == "lstm":
        panels.append(("cell_delta_norm", r"$\|\partial L/\partial c_t\|$ (cell state)"))
    fig, axes = plots.figure(1, len(panels), figsize=(6 + 5 * (len(panels) - 1), 4.2), squeeze=False)
    axes = axes[0]
    count = len(records[0]["through_time"])
    steps = np.arange(1, count + 1)
    first, last = records[0]["step"], records[-1]["step"]
    cmap, kinds = plots.colormap(plots.STEP_COLORMAP), set()
    for record in plots.pick_steps(records):
        color = cmap((record["step"] - first) / max(last - first, 1))
        for ax, (field, _) in zip(axes, panels):
            kinds |= plots.draw_profile(ax, steps, time_series([record], field)[0], color)
    label = "theory: the gates' carry" if theory.get("kind") == "carry" else "theory: linearized"
    compared = 1 if cell == "lstm" and theory.get("kind") == "carry" else 0
    anchor = number(records[0]["through_time"][-1].get(panels[compared][0]))
    _theory(axes[compared], steps, anchor, theory, label)
    for ax, (_, name) in zip(axes, panels):
        plots.norm_axis(ax, name)
        ax.set_xlabel(r"time step $t$ (the loss reads $h_T$)")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7, loc="best")
    plots.colorbar(fig, axes[-1], plots.STEP_COLORMAP, first, max(last, first + 1), "training step")
    if kinds:
        axes[0].text(0.01, 0.99, "markers at the edges: zero or beyond the axis", transform=axes[0].transAxes,
                     fontsize=6, color="grey", va="top")  # fmt: skip
    return fig, "gradient_time.png"


def gradient_time_heatmap(records: list[dict]):
    """log10 ||dL/dh_t|| over time step t (rows) and training step (columns), on the shared colour scale."""
    fig, ax = plots.figure(figsize=(8, 4.2))
    steps = [r["step"] for r in records]
    x_edges = np.array([*steps, steps[-1] + max(1, steps[-1] - steps[-2] if len(steps) > 1 else 1)])
    count = len(records[0]["through_time"])
    y_edges = np.arange(count + 1) + 0.5
    low, high = np.log10(plots.NORM_RANGE)
    cmap = plots.colormap(plots.STEP_COLORMAP).with_extremes(under="white", over="red", bad="red")
    with np.errstate(divide="ignore"):
        grid = np.log10(time_series(records, "delta_norm")).T
    image = ax.pcolormesh(x_edges, y_edges, grid, cmap=cmap, vmin=low, vmax=high)
    ax.set_title(r"$\log_{10} \|\partial L/\partial h_t\|$ (white: zero or below, red: not finite)", fontsize=9)
    ax.set_xlabel("training step")
    ax.set_ylabel(r"time step $t$")
    fig.colorbar(image, ax=ax, label=r"$\log_{10}$ of the norm", extend="both")
    return fig, "gradient_time_heatmap.png"


def gates(records: list[dict], cell: str):
    """Each sigmoid gate's mean over t at step 0 and at the end with the carry gate's saturated fractions, and
    the gates' means (over t) along training."""
    fig, (left, right) = plots.figure(1, 2, figsize=(11, 4.2))
    count = len(records[0]["through_time"])
    steps = np.arange(1, count + 1)
    carry = CARRY_GATE[cell]
    names = SIGMOID_GATES[cell]
    for gate in names:
        color = plots.activation_color(gate, list(names))
        for record, style in ((records[0], ":"), (records[-1], "-")):
            left.plot(steps, time_series([record], f"{gate}_mean")[0], style, color=color, lw=1.2)
        right.plot([r["step"] for r in records], np.mean(time_series(records, f"{gate}_mean"), axis=1),
                   color=color, label=f"{gate} gate, mean over t")  # fmt: skip
    end = records[-1]
    near_0, near_1 = (time_series([end], f"{carry}_near_{k}")[0] for k in (0, 1))
    left.fill_between(steps, 1 - near_1, 1, color="#009E73", alpha=0.2,
                      label=f"{carry} gate: fraction near 1 (step {end['step']}), from the top")  # fmt: skip
    left.fill_between(steps, 0, near_0, color="#D55E00", alpha=0.2,
                      label=f"{carry} gate: fraction near 0 (step {end['step']}), from the bottom")  # fmt: skip
    left.plot([], [], "k:", label=f"gate means at step {records[0]['step']}")
    left.plot([], [], "k-", label=f"gate means at step {end['step']}")
    for gate in names:
        left.plot([], [], color=plots.activation_color(gate, list(names)), lw=2, label=gate)
    left.set_xlabel(r"time step $t$")
    left.set_ylabel("gate value (mean over the batch and units)")
    left.set_ylim(0, 1)
    right.set_xlabel("training step")
    right.set_ylabel("gate mean")
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7, loc="best")
    return fig, "gates.png"


def saturation_time(records: list[dict]):
    """An RNN's E[f'(z_t)²] and fraction of saturated units over t, at step 0 and at the end."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    count = len(records[0]["through_time"])
    steps = np.arange(1, count + 1)
    for record, style in ((records[0], ":"), (records[-1], "-")):
        for ax, field in zip(axes, ("activation_gain", "saturation")):
            ax.plot(steps, time_series([record], field)[0], style, label=f"step {record['step']}")
    axes[0].set_ylabel(r"$E[f'(z_t)^2]$ (the activation's gain)")
    axes[1].set_ylabel("fraction of units saturated")
    for ax in axes:
        ax.set_xlabel(r"time step $t$")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7, loc="best")
    return fig, "saturation_time.png"
