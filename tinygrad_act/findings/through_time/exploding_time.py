"""Finding 12: exploding gradients through time and global-norm clipping: Pascanu's condition and bound, the
linearized factor beside the measured r_time, and what an exploding gradient does to the weights with and without
clipping."""

from __future__ import annotations

import math

from ...lab.show import plots
from ...lab.show.format import fmt, markdown_table, number
from ..common import Check, Context, Finding, Part, paragraphs
from .runs import cell_label, decades, margin, through_time

# Within this of the linearized per-step factor where it exceeds 1 (a 5% error per step compounds to a factor
# 11 over T = 50: the claim is about the rate, which the per-step factor states).
FACTOR_WITHIN = 1.05
# Clipping "prevents the jump": the largest update of an exploding run without clipping is at least this many times
# the same run's with clipping (a run that diverged took an infinite one).
CLIPPING_CUTS = 10.0


def _largest_update(ctx: Context, row: dict) -> float:
    """The largest ||ΔW|| / ||W|| of the recurrent layer's weights over the run's measured steps."""
    updates = [number(r["layers"][0].get("update_ratio")) for r in ctx.records(row) if r.get("layers")]
    updates = [u for u in updates if not math.isnan(u)]
    return max(updates) if updates else math.nan


def _update_text(ctx: Context, row: dict) -> str:
    """``diverged`` or the run's largest ||dW|| / ||W|| of W_hh."""
    return "diverged" if row["status"] == "diverged" else fmt(_largest_update(ctx, row), 2)


def _gain(init: str) -> str:
    return init.split("gain=")[1] if "gain=" in init else "1"


def _exploding(ctx: Context) -> list[dict]:
    """The runs (clip off) whose linearized per-step factor exceeds 1 at init."""
    return [r for r in ctx.rows if not r["clip"] and number(r["predicted_per_layer_factor"]) > 1]


def run_table(ctx: Context) -> str:
    """One row per run: cell, gain, clip, ||W_hh||, Pascanu's bound, r_time and theory, largest update, status."""
    body = []
    for row in ctx.rows:
        entry = through_time(ctx, row)
        pascanu = (entry.get("theory") or {}).get("pascanu") or {}
        body.append([
            cell_label(row["cell"]), _gain(row["init"]), "off" if not row["clip"] else fmt(row["clip"]),
            fmt(pascanu.get("largest_singular_value"), 3), f"1e{pascanu.get('log10_bound', math.nan):.1f}",
            fmt(row["ratio_init"]), fmt(row["predicted_ratio"]), fmt(row["per_layer_factor_init"], 3),
            fmt(row["predicted_per_layer_factor"], 3), fmt(_largest_update(ctx, row), 2), row["status"],
        ])  # fmt: skip
    head = ["cell", "orthogonal gain", "clip", "‖W_hh‖", "Pascanu bound", "r_time at init", "theory r_time",
            "factor per step", "theory factor", "largest update ‖ΔW‖/‖W‖", "status"]  # fmt: skip
    return markdown_table(head, body)


def check(ctx: Context) -> Check:
    """Pascanu's bound holds for every run; where the linearized factor exceeds 1 the gradient explodes at that
    rate; unclipped, an exploding gradient throws the weights off (or the run diverges), clipped, no update does."""
    slack = []
    for row in ctx.rows:
        pascanu = (through_time(ctx, row).get("theory") or {}).get("pascanu") or {}
        bound = number(pascanu.get("log10_bound"))
        slack.append(bound - math.log10(number(row["ratio_init"])) if row["ratio_init"] > 0 else math.inf)
    below = [r for r in ctx.rows if (through_time(ctx, r).get("theory") or {}).get("pascanu", {}).get(
        "condition") == "vanishing"]  # fmt: skip
    large = _exploding(ctx)
    errors = [
        abs(math.log(number(r["per_layer_factor_init"]) / number(r["predicted_per_layer_factor"]))) for r in large
    ]
    grew = min((decades(r["ratio_init"], 1.0) for r in large), default=math.nan)
    error_margin = 100 * (math.log(FACTOR_WITHIN) - max(errors, default=math.nan))
    cuts = []
    for row in large:
        clipped = ctx.where(cell=row["cell"], init=row["init"], clip=1.0)
        if clipped:
            free = math.inf if row["status"] == "diverged" else _largest_update(ctx, row)
            cuts.append((row, clipped[0], decades(free, CLIPPING_CUTS * _largest_update(ctx, clipped[0]))))
    cut_margin = min((cut for _, _, cut in cuts), default=math.nan)
    return Check([
        Part(
            "Pascanu et al.'s bound holds: r_time <= (||W_hh|| gamma)^(T-1) in every run, so where ||W_hh|| gamma < 1 "
            "the gradient must vanish",
            bool(slack) and min(slack) >= 0 and all(r["verdict"] == "vanishing" for r in below),
            f"{len(below)} runs below 1/gamma, all {', '.join(sorted({r['verdict'] for r in below})) or '-'}; "
            f"{margin(min(slack, default=math.nan))} (the tightest run's bound over its r_time)",
        ),
        Part(
            "where the linearized factor sqrt(sigma_w^2 E[f'^2]) exceeds 1 the gradient grows exponentially back "
            f"through time (r_time > 1), at that rate per step (within {100 * (FACTOR_WITHIN - 1):.0f}%)",
            bool(large) and grew > 0 and error_margin >= 0,
            ", ".join(f"{cell_label(r['cell'])} gain {_gain(r['init'])}: x{fmt(r['per_layer_factor_init'], 3)} per "
                      f"step (theory x{fmt(r['predicted_per_layer_factor'], 3)}), r_time {fmt(r['ratio_init'])}"
                      for r in large)
            + f"; {margin(grew)} above 1, {margin(error_margin, 'points of the 5%')}",  # fmt: skip
        ),
        Part(
            "an exploding gradient throws the weights far off in one step, or the run diverges; clipping the global "
            f"norm at 1 prevents it: in each exploding run the largest update is over {CLIPPING_CUTS:g} times the "
            "clipped run's, and no clipped run diverges",
            bool(cuts) and cut_margin > 0 and all(c["status"] != "diverged" for _, c, _ in cuts),
            ", ".join(f"{cell_label(r['cell'])} gain {_gain(r['init'])}: {_update_text(ctx, r)} unclipped, "
                      f"{_update_text(ctx, c)} clipped" for r, c, _ in cuts) + f"; {margin(cut_margin)}",  # fmt: skip
        ),
    ])  # fmt: skip


def figure(ctx: Context) -> str:
    """Left: r_time at init against the gain, measured and linearized theory, with Pascanu's bound; then per cell
    the training loss with and without clipping (a cross where a run diverged)."""
    cells, inits = ctx.sweep.grid["cell"], ctx.sweep.grid["init"]
    fig, axes = plots.figure(1, 1 + len(cells), figsize=(5 + 4 * len(cells), 4.2))
    left, panels = axes[0], axes[1:]
    gains = [float(_gain(i)) for i in inits]
    for cell, ax in zip(cells, panels):
        color = plots.activation_color(cell, cells)
        rows = [ctx.where(cell=cell, init=i, clip=0.0)[0] for i in inits]
        left.plot(gains, [r["ratio_init"] for r in rows], "o-", color=color, label=f"{cell_label(cell)}: measured")
        left.plot(gains, [r["predicted_ratio"] for r in rows], color=color, **plots.THEORY_STYLE)
        bounds = [10 ** number((through_time(ctx, r).get("theory") or {}).get("pascanu", {}).get("log10_bound"))
                  for r in rows]  # fmt: skip
        left.plot(gains, bounds, ":", color=color, lw=1)
        for clip, style in zip(ctx.sweep.grid["clip"], ("-", ":")):
            for init in inits:
                row = ctx.where(cell=cell, init=init, clip=clip)[0]
                records = ctx.records(row)
                losses = [number(r["loss"]) for r in records]
                shade = plots.activation_color(init, inits)
                ax.plot([r["step"] for r in records], losses, style, color=shade, lw=1)
                if row["status"] == "diverged":
                    finite = [v for v in losses if math.isfinite(v)] or [math.nan]
                    ax.plot(records[-1]["step"], finite[-1], **{**plots.DIVERGED_MARKER, "color": shade})
        for init in inits:
            ax.plot([], [], color=plots.activation_color(init, inits), label=f"gain {_gain(init)}")
        ax.plot([], [], "k:", label="clipped at 1")
        ax.plot([], [], **plots.DIVERGED_MARKER, label="diverged (unclipped)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (batch)")
        ax.set_title(cell_label(cell), fontsize=9)
    left.plot([], [], color="grey", **plots.THEORY_STYLE, label="linearized theory")
    left.plot([], [], ":", color="grey", label=r"Pascanu's bound $(\|W_{hh}\|\gamma)^{T-1}$")
    left.axhspan(*plots.HEALTHY_BAND, color="green", alpha=0.08)
    left.set_yscale("log")
    left.set_xlabel("gain of the orthogonal W_hh")
    left.set_ylabel("r_time at init")
    for ax in axes:
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7)
    return ctx.figure(fig, "time")


def analyze(ctx: Context) -> str:
    """The setting, the table and the figure."""
    steps = ctx.setting("seq_len")
    return paragraphs(
        f"Elman RNNs (tanh and ReLU) on the adding problem at T = {steps}, width {ctx.setting('width')}, W_hh "
        "orthogonal times a gain (its largest singular value is the gain), input weights as PyTorch initializes "
        f"them, biases 0, SGD (momentum 0.9, lr {ctx.setting('lr')}) for {ctx.setting('steps')} steps, every step "
        "measured. gamma = 1 bounds both activations' slopes. Theory: the linearized per-step factor from W_hh's "
        "sigma_w^2 and the measured E[f'^2] (lab/theory/recurrent.py); the bound is Pascanu et al.'s.",
        run_table(ctx),
        figure(ctx),
    )


FINDING = Finding(
    "exploding_time",
    "Exploding gradients through time and clipping",
    "A recurrent weight matrix whose largest singular value exceeds 1/gamma can make the gradient through time "
    "explode (below it, the gradient must vanish); an exploding gradient throws the weights far off in one "
    "step, and clipping the gradient's norm prevents that.",
    "Pascanu, Mikolov & Bengio, On the difficulty of training recurrent neural networks, ICML 2013.",
    analyze,
    check,
)
