"""Finding 11: the gradient through time of a tanh RNN, an LSTM and a GRU on the adding problem as T grows, at
initialization (the report's runs) and after training (the committed full grid: which learn at T = 50, 100, 200)."""

from __future__ import annotations

import math

from ...lab import stats
from ...lab.show import plots
from ...lab.show.format import fmt, markdown_table, pct
from ..common import Check, Context, Finding, Part, geometric_median, median, paragraphs
from .runs import (
    AT_CHANCE,
    LEARNED_BELOW,
    cell_label,
    cell_name,
    committed_rows,
    decades,
    margin,
    mse_fraction,
    through_time,
)

# "The same factor at every T": the tanh RNN's per-step factor at each T within 5% of its value at the shortest T
# (a per-step factor of 0.55 that drifted by 5% over 4x the steps would change r_time at T = 200 by 4 decades).
FACTOR_WITHIN = 1.05
GATED = ("lstm", "gru")


def _factor(ctx: Context, cell: str, steps: int) -> float:
    """The median per-step factor r_time^(1/(T-1)) at init over the seeds of one cell and T."""
    return median(r["per_layer_factor_init"] for r in ctx.where(cell=cell, seq_len=steps))


def _states(ctx: Context) -> list[tuple[str, str, str]]:
    """(cell, label, field) of each state the table and figure follow: every cell's hidden state (the summary's
    ``ratio_init``), and the LSTM's cell state (``cell_ratio_init``), which its theory, the carry, describes."""
    states = []
    for cell in ctx.sweep.grid["cell"]:
        if cell_name(cell) == "lstm":
            label = cell_label(cell)
            states += [
                (cell, f"{label}, hidden state h", "ratio_init"),
                (cell, f"{label}, cell state c", "cell_ratio_init"),
            ]
        else:
            states.append((cell, cell_label(cell), "ratio_init"))
    return states


def _measured(ctx: Context, cell: str, steps: int, field: str) -> float:
    """r_time at init of one state (geometric median over seeds)."""
    return geometric_median(through_time(ctx, r).get(field) for r in ctx.where(cell=cell, seq_len=steps))


def _theory(ctx: Context, cell: str, steps: int, field: str) -> float:
    """The theory's r_time where it describes this state (the carry: the LSTM's cell state), else nan."""
    if cell_name(cell) == "lstm" and field != "cell_ratio_init":
        return math.nan
    return geometric_median(r["predicted_ratio"] for r in ctx.where(cell=cell, seq_len=steps))


def init_table(ctx: Context) -> str:
    """Per state and T: r_time at init (geometric median over seeds), measured / theory, and the per-step factor."""
    lengths = ctx.sweep.grid["seq_len"]
    head = ["state"] + [f"r_time at T = {t}: measured / theory" for t in lengths] + ["per-step factor (each T)"]
    body = []
    for cell, label, field in _states(ctx):
        cells = [label]
        for steps in lengths:
            cells.append(f"{fmt(_measured(ctx, cell, steps, field))} / {fmt(_theory(ctx, cell, steps, field))}")
        factors = [stats.per_layer_factor(_measured(ctx, cell, t, field), t) for t in lengths]
        cells.append(", ".join(fmt(f, 3) for f in factors))
        body.append(cells)
    return markdown_table(head, body)


def learning_table(rows: list[dict]) -> str:
    """Per cell and T, from the committed full grid: test MSE / chance, accuracy within 0.04, r_time init -> end."""
    lengths = sorted({r["seq_len"] for r in rows})
    head = ["cell"] + [f"T = {t}: MSE / chance, accuracy, r_time init -> end" for t in lengths]
    body = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        cells = [cell_label(cell)]
        for steps in lengths:
            found = [r for r in rows if r["cell"] == cell and r["seq_len"] == steps]
            if not found:
                cells.append("-")
                continue
            r = found[0]
            cells.append(f"{fmt(mse_fraction(r), 2)}, {pct(r['test_accuracy'])}, {fmt(r['ratio_init'])} -> "
                         f"{fmt(r['ratio_final'])}")  # fmt: skip
        body.append(cells)
    return markdown_table(head, body)


def figure(ctx: Context, rows: list[dict]) -> str:
    """r_time at init against T per cell (theory dashed); the full grid's test MSE over chance against T."""
    fig, axes = plots.figure(1, 2 if rows else 1, figsize=(11 if rows else 6, 4.2), squeeze=False)
    left = axes[0][0]
    cells, lengths = ctx.sweep.grid["cell"], ctx.sweep.grid["seq_len"]
    for cell, label, field in _states(ctx):
        color = plots.activation_color(cell, cells)
        style = ":" if field == "cell_ratio_init" else "-"
        left.plot(lengths, [_measured(ctx, cell, t, field) for t in lengths], marker="o", ls=style, color=color,
                  label=label)  # fmt: skip
        left.plot(lengths, [_theory(ctx, cell, t, field) for t in lengths], color=color, **plots.THEORY_STYLE)
    left.plot([], [], color="grey", **plots.THEORY_STYLE, label="theory (linearized; gated cells: the carry)")
    left.axhspan(*plots.HEALTHY_BAND, color="green", alpha=0.08)
    left.set_yscale("log")
    left.set_xlabel("sequence length T")
    left.set_ylabel(r"$r_{time} = \|\partial L/\partial h_1\| / \|\partial L/\partial h_T\|$ at init")
    left.grid(alpha=0.3)
    plots.legend(left, fontsize=7)
    if rows:
        right = axes[0][1]
        for cell in dict.fromkeys(r["cell"] for r in rows):
            found = sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["seq_len"])
            right.plot([r["seq_len"] for r in found], [mse_fraction(r) for r in found], "o-",
                       color=plots.activation_color(cell, ctx.sweep.grid["cell"]), label=cell_label(cell))  # fmt: skip
        right.axhline(LEARNED_BELOW, color="green", ls=":", label=f"learned: below {LEARNED_BELOW:g} of chance")
        right.axhline(1.0, color="grey", ls=":", label="chance (predict the mean)")
        right.set_yscale("log")
        right.set_xlabel("sequence length T")
        right.set_ylabel("test MSE / chance MSE after training (full grid)")
        right.grid(alpha=0.3)
        plots.legend(right, fontsize=7)
    return ctx.figure(fig, "time")


def check(ctx: Context) -> Check:
    """The tanh RNN's per-step factor is the same at every T and its gradient vanishes; from the committed full
    grid: the gated cells learn at every T where the tanh RNN stays at chance, and learning opens the gradient."""
    lengths = ctx.sweep.grid["seq_len"]
    factors = [_factor(ctx, "tanh", t) for t in lengths]
    drift = max(abs(math.log(f / factors[0])) for f in factors) if all(f > 0 for f in factors) else math.nan
    ratios = [geometric_median(r["ratio_init"] for r in ctx.where(cell="tanh", seq_len=t)) for t in lengths]
    vanished = min((decades(stats.VANISHING_BELOW, r) for r in ratios), default=math.nan)
    parts = [
        Part(
            "the tanh RNN's gradient reaching step 1 shrinks by the same factor per step at every T (within "
            f"{100 * (FACTOR_WITHIN - 1):.0f}%): r_time falls exponentially with T",
            drift <= math.log(FACTOR_WITHIN),
            ", ".join(f"T = {t}: x{fmt(f, 3)} per step" for f, t in zip(factors, lengths))
            + f"; {margin(100 * (math.log(FACTOR_WITHIN) - drift), 'points of the 5%')}",
        ),
        Part(
            f"so its gradient vanishes (r_time < {stats.VANISHING_BELOW:g}) at every T",
            vanished > 0,
            ", ".join(f"T = {t}: {fmt(r)}" for r, t in zip(ratios, lengths)) + f"; {margin(vanished)}",
        ),
    ]
    rows, _ = committed_rows(ctx)
    if rows:
        parts += _learning_parts(rows)
    return Check(parts)


def _learning_parts(rows: list[dict]) -> list[Part]:
    """From the committed full grid: which cells learn, and what learning does to r_time."""
    gated = [r for r in rows if cell_name(r["cell"]) in GATED]
    plain = [r for r in rows if cell_name(r["cell"]) == "tanh"]
    learned = [r for r in rows if mse_fraction(r) < LEARNED_BELOW and r["status"] == "completed"]
    gated_margin = min((decades(LEARNED_BELOW, mse_fraction(r)) for r in gated), default=math.nan)
    plain_margin = min((decades(mse_fraction(r), AT_CHANCE) for r in plain), default=math.nan)
    opened = [decades(r["ratio_final"], stats.VANISHING_BELOW) for r in learned]
    return [
        Part(
            f"the LSTM and the GRU learn the adding problem (test MSE below {LEARNED_BELOW:g} of chance) at every T",
            bool(gated) and gated_margin > 0,
            ", ".join(f"{cell_label(r['cell'])} T = {r['seq_len']}: {fmt(mse_fraction(r), 2)}" for r in gated)
            + f"; {margin(gated_margin)}",
        ),
        Part(
            f"the tanh RNN does not: its test MSE stays above {AT_CHANCE:g} of chance at every T",
            bool(plain) and plain_margin > 0,
            ", ".join(f"T = {r['seq_len']}: {fmt(mse_fraction(r), 2)}" for r in plain) + f"; {margin(plain_margin)}",
        ),
        Part(
            f"every run that learned ends with its gradient through time open (r_time >= {stats.VANISHING_BELOW:g} "
            "at the end, from a vanishing r_time at init)",
            bool(learned) and min(opened) > 0,
            ", ".join(
                f"{cell_label(r['cell'])} T = {r['seq_len']}: {fmt(r['ratio_init'])} -> {fmt(r['ratio_final'])}"
                for r in learned
            )
            + f"; {margin(min(opened, default=math.nan))}",  # fmt: skip
        ),
    ]


def analyze(ctx: Context) -> str:
    """The setting, r_time at init against T, the committed full grid's learning table, and the figure."""
    rows, fixed = committed_rows(ctx)
    setting = (
        f"The adding problem (lab/data/sequences.py), width {ctx.setting('width')}, batch {ctx.setting('batch_size')}, "
        f"PyTorch's default initialization (U(-1/sqrt(H), 1/sqrt(H)) for every parameter), the LSTM's forget-gate bias "
        "set to 1 (Gers et al. 2000; Jozefowicz et al. 2015). r_time = ||dL/dh_1|| / "
        "||dL/dh_T|| at step 0, geometric median over the seeds; theory: the linearized factor sqrt(sigma_w^2 "
        "E[f'(z_t)^2]) per step for the tanh RNN, the gates' carry (the product of forget gates, of update gates "
        "for the GRU) for the gated cells (lab/theory/recurrent.py)."
    )
    parts = [setting, init_table(ctx)]
    if rows:
        parts += [
            f"After training (the full grid, committed in `experiments/vanishing_time_full.json`, made by "
            f"`make report ONLY=vanishing_time FULL=1`: {fixed.get('steps', '?')} steps of "
            f"{fixed.get('optimizer', 'sgd')} at lr {fixed.get('lr', '?')}, width {fixed.get('width', '?')}, "
            f"seed {fixed.get('seed', 0)}):",
            learning_table(rows),
        ]
    else:
        parts.append("The learning grid has not been run: `make report ONLY=vanishing_time FULL=1` runs it.")
    gated = [through_time(ctx, r) for r in ctx.rows if cell_name(r["cell"]) in GATED]
    carry = [e.get("theory", {}).get("factor") for e in gated if e.get("theory", {}).get("applies")]
    measured = (
        f"**Measured.** PyTorch's default initialization leaves the gated cells' gates near 1/2, so at init their "
        f"carry shrinks the gradient too (x{fmt(min(carry, default=math.nan), 3)} .. "
        f"x{fmt(max(carry, default=math.nan), 3)} per step): their r_time vanishes at init like the tanh RNN's."
    )
    learned = [r for r in rows if mse_fraction(r) < LEARNED_BELOW]
    if learned:
        measured += (
            " Training opens the gates: every run that learned ends with r_time "
            + ", ".join(f"{fmt(r['ratio_final'])} ({cell_label(r['cell'])}, T = {r['seq_len']})" for r in learned)
            + "."
        )
    parts.append(measured)
    parts.append(figure(ctx, rows))
    return paragraphs(*parts)


FINDING = Finding(
    "vanishing_time",
    "Vanishing gradients through time: tanh RNN, LSTM and GRU on the adding problem",
    "Backpropagated through a tanh RNN, the gradient shrinks by a factor per step, so it reaches the distant past "
    "exponentially weakened and the RNN cannot learn long-range dependencies; the LSTM's gated cell state "
    "(and the GRU's update gate) carries the gradient across the gap, and they learn the adding problem at T = 50, "
    "100 and 200.",
    "Bengio, Simard & Frasconi, Learning long-term dependencies with gradient descent is difficult, IEEE TNN 1994; "
    "Hochreiter & Schmidhuber, Long short-term memory, Neural Computation 1997; Cho et al., EMNLP 2014 (GRU).",
    analyze,
    check,
)
