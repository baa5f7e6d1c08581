"""Finding 4: the fraction of dead units over training for ReLU, Leaky ReLU and ELU, by learning rate."""

from __future__ import annotations

import math

import numpy as np

from ..lab import plots
from ..lab.report import markdown_table, pct
from .common import Context, Finding, last_measured, layer_field, mean, median, paragraphs


def dead_fraction(record: dict) -> float:
    """The fraction of dead units of one record, averaged over the hidden layers."""
    return mean(layer_field(record, "dead_fraction"))


def dead_table(ctx: Context) -> str:
    """Per activation and learning rate: dead units at step 0 and at the end, test accuracy, how the runs ended."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for lr in ctx.sweep.grid["lr"]:
            group = ctx.where(act=act, lr=lr)
            start = median(dead_fraction(ctx.records(r)[0]) for r in group)
            end = median(dead_fraction(last_measured(ctx.records(r))) for r in group)
            statuses = sorted({r["status"] for r in group})
            body.append(
                [act, lr, pct(start), pct(end), pct(median(r["test_accuracy"] for r in group)), ", ".join(statuses)]
            )
    return markdown_table(["activation", "lr", "dead at step 0", "dead at end", "test accuracy", "status"], body)


def dead_figure(ctx: Context) -> str:
    """One panel per learning rate: the dead fraction over training of the first seed's run of each activation."""
    lrs = ctx.sweep.grid["lr"]
    fig, axes = plots.figure(1, len(lrs), figsize=(4 * len(lrs), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    acts = ctx.sweep.grid["act"]
    for ax, lr in zip(axes, lrs):
        for act in acts:
            row = ctx.where(act=act, lr=lr, seed=ctx.sweep.grid["seed"][0])
            if row:
                records = ctx.records(row[0])
                colour = plots.activation_color(act, acts)
                dead = [dead_fraction(r) for r in records]
                ax.plot([r["step"] for r in records], dead, color=colour, label=act)
                if row[0]["status"] == "diverged":  # the point of the finding: where the run stopped, not a gap
                    measured = [v for v in dead if not math.isnan(v)] or [0.0]
                    ax.plot(records[-1]["step"], measured[-1], **{**plots.DIVERGED_MARKER, "color": colour})
        ax.set_title(f"lr = {lr}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("dead fraction (mean over hidden layers)")
    axes[0].plot([], [], **plots.DIVERGED_MARKER, label="diverged (loss nan): the run stops here")
    plots.legend(axes[0], fontsize=7)
    return ctx.figure(fig, "dead_fraction")


def measured(ctx: Context) -> str:
    """ReLU's worst final dead fraction, the others' worst, over completed runs; and the runs that diverged."""
    final_dead = {}
    for act in ctx.sweep.grid["act"]:
        for lr in ctx.sweep.grid["lr"]:
            group = [r for r in ctx.where(act=act, lr=lr) if r["status"] == "completed"]
            if group:
                final_dead[act, lr] = median(dead_fraction(ctx.records(r)[-1]) for r in group)
    relu_worst = max(((v, lr) for (a, lr), v in final_dead.items() if a == "relu"), default=(math.nan, None))
    others = {
        a: max((v for (b, _), v in final_dead.items() if b == a), default=math.nan)
        for a in ctx.sweep.grid["act"]
        if a != "relu"
    }
    diverged = sorted({f"{r['act']} at lr {r['lr']}" for r in ctx.rows if r["status"] == "diverged"})
    return (
        f"**Measured.** ReLU ends with up to {pct(relu_worst[0])} dead units (lr {relu_worst[1]}); in completed runs "
        + ", ".join(f"{a} ends with at most {pct(v)}" for a, v in others.items())
        + (f". Runs that diverged instead of dying: {', '.join(diverged)}." if diverged else ".")
    )


def analyze(ctx: Context) -> str:
    """What a dead unit is, the table, what was measured, and the figure."""
    link = dead_figure(ctx)
    return paragraphs(
        "Dead unit: exactly zero gradient (phi'(z) = 0) for every example of the batch; the fraction is "
        f"averaged over the {ctx.setting('depth')} hidden layers (median over seeds). SGD with momentum 0.9.",
        dead_table(ctx),
        measured(ctx),
        link,
    )


FINDING = Finding(
    "dying_relu",
    "Dying ReLU",
    "A large learning rate pushes ReLU units to negative pre-activations for every input; their gradient is "
    "zero and they never recover. Leaky ReLU and ELU have a non-zero slope there and stay alive.",
    "Maas et al. 2013 (leaky ReLU); Clevert et al. 2016 (ELU); Lu et al. 2019 (dying ReLU).",
    analyze,
)
