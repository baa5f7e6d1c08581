"""Finding 4: the fraction of dead units over training for ReLU, Leaky ReLU and ELU, by learning rate."""

from __future__ import annotations

import math

import numpy as np

from ..lab import stats
from ..lab.run.config import Config
from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, pct
from .common import (
    Check,
    Context,
    Finding,
    Part,
    judged,
    last_measured,
    layer_field,
    mean,
    median,
    paragraphs,
    seed_margin,
    worst,
)

# "Stays alive": fewer than 1% of the units dead at the end. With a non-zero slope a unit is dead (its
# gradient exactly 0 for the whole batch) only where the slope underflows, e.g. ELU's exp(z) for z < -745.
ALIVE_BELOW = 0.01
# "Never recover": the dead fraction at the end is within 5 points of its peak over training. The fraction is
# measured on one batch of 64 (dead = zero gradient for every example of it), so a new batch moves it by a
# few points.
RECOVERY_TOLERANCE = 0.05
# "A large learning rate": larger than the project's default (and the grid's smallest), 0.02.
DEFAULT_LR = Config().lr


def dead_fraction(record: dict) -> float:
    """The fraction of dead units of one record, averaged over the hidden layers."""
    return mean(layer_field(record, "dead_fraction"))


def diverged(row: dict) -> bool:
    """Whether the run diverged (lab/stats.py, shown_verdict): its dead fraction is then float underflow in a
    blown-up network, not dying, and is not counted."""
    return stats.shown_verdict(row) == "diverged"


def dead_at_end(ctx: Context, act: str, lr, seeds=None) -> float:
    """The median dead fraction at the end over the runs of ``seeds`` (None: all) that did not diverge (nan if
    all did)."""
    rows = ctx.among(seeds, act=act, lr=lr)
    return median(dead_fraction(last_measured(ctx.records(r))) for r in rows if not diverged(r))


def dead_table(ctx: Context) -> str:
    """Per activation and learning rate: dead units at step 0 and at the end (runs that did not diverge), test
    accuracy, how the runs ended."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for lr in ctx.sweep.grid["lr"]:
            group = ctx.where(act=act, lr=lr)
            start = median(dead_fraction(ctx.records(r)[0]) for r in group)
            end = dead_at_end(ctx, act, lr)
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


def _recovery(ctx: Context, row: dict) -> float:
    """How far a run's dead fraction fell from its peak over training to its end."""
    dead = [v for v in (dead_fraction(r) for r in ctx.records(row)) if not math.isnan(v)]
    return max(dead) - dead[-1] if dead else math.nan


def _points(fraction: float) -> str:
    """A difference of two fractions in percentage points: ``9.4 points``."""
    return f"{100 * fraction:.1f} points"


def _largest(values) -> float:
    """The largest of the values that are numbers (nan if none: every run of them diverged)."""
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def _relu_parts(ctx: Context) -> list[Part]:
    """A large lr kills ReLU units (dead at the end never falls as the lr grows); they never recover (at every
    lr above the default, the median of peak minus end within RECOVERY_TOLERANCE)."""
    lrs, seeds = ctx.sweep.grid["lr"], ctx.seeds
    ends = [(lr, dead_at_end(ctx, "relu", lr)) for lr in lrs]
    large = [lr for lr in lrs if lr > DEFAULT_LR]

    def grows(s) -> float:  # the smallest rise of dead-at-end from one lr to the next, in points
        measured = [d for d in (dead_at_end(ctx, "relu", lr, s) for lr in lrs) if not math.isnan(d)]
        return worst(100 * (b - a) for a, b in zip(measured, measured[1:])) if len(measured) > 1 else math.nan

    def recovery(lr, s) -> float:
        return median(_recovery(ctx, r) for r in ctx.among(s, act="relu", lr=lr) if not diverged(r))

    def never_recover(s) -> float:  # the tolerance minus the largest recovery, in points
        return 100 * (RECOVERY_TOLERANCE - _largest(recovery(lr, s) for lr in large)) if large else math.nan

    runs = [r for r in ctx.where(act="relu") if r["lr"] > DEFAULT_LR and not diverged(r)]
    small = [r for r in ctx.where(act="relu") if r["lr"] <= DEFAULT_LR and not diverged(r)]
    return [
        judged(
            "a large learning rate kills ReLU units (dead at the end grows with the learning rate)",
            seed_margin(grows, seeds, "points"),
            ", ".join(f"{pct(d)} at lr {lr}" for lr, d in ends),
        ),
        judged(
            f"killed ReLU units never recover (at lr > {DEFAULT_LR:g}, dead at the end within "
            f"{100 * RECOVERY_TOLERANCE:g} points of its peak)",
            seed_margin(never_recover, seeds, "points"),
            "peak minus end: "
            + ", ".join(f"{_points(_recovery(ctx, r))} (lr {r['lr']} seed {r['seed']})" for r in runs)
            + (f"; at lr {DEFAULT_LR:g} up to {_points(max(_recovery(ctx, r) for r in small))}" if small else ""),
        ),
    ]


def _alive_part(ctx: Context, act: str) -> Part:
    """At every lr, the median dead fraction at the end of the runs of ``act`` that did not diverge is below
    ALIVE_BELOW; where not, why, from the worst run's loss."""
    ended = [r for r in ctx.where(act=act) if not diverged(r)]
    dead = {(r["lr"], r["seed"]): dead_fraction(last_measured(ctx.records(r))) for r in ended}
    worst_run = max(dead, key=lambda k: dead[k], default=None)
    numbers = (
        f"at most {pct(dead[worst_run])} dead (lr {worst_run[0]} seed {worst_run[1]})" if worst_run else "no run ended"
    )
    if worst_run and not dead[worst_run] < ALIVE_BELOW:
        run = next(r for r in ended if (r["lr"], r["seed"]) == worst_run)
        numbers += (
            f" in a run whose loss blew up to {fmt(run['final_loss'])} without going non-finite (test accuracy "
            f"{pct(run['test_accuracy'])})"
        )
    gone = [f"lr {r['lr']} seed {r['seed']}" for r in ctx.where(act=act) if diverged(r)]
    numbers += f"; diverged, not counted: {', '.join(gone)}" if gone else ""

    def alive(s) -> float:  # the bar minus the largest median dead fraction at the end, in points
        return 100 * (ALIVE_BELOW - _largest(dead_at_end(ctx, act, lr, s) for lr in ctx.sweep.grid["lr"]))

    return judged(f"{act} stays alive (under {pct(ALIVE_BELOW)} dead at the end)", seed_margin(alive, ctx.seeds, "points"),
                  numbers)  # fmt: skip


def check(ctx: Context) -> Check:
    """ReLU: a large lr kills units that never recover; every other activation of the grid stays alive."""
    acts = ctx.sweep.grid["act"]
    parts = _relu_parts(ctx) if "relu" in acts else []
    return Check(parts + [_alive_part(ctx, act) for act in acts if act != "relu"])


def analyze(ctx: Context) -> str:
    """What a dead unit is, the table, what was measured, and the figure."""
    link = dead_figure(ctx)
    return paragraphs(
        "Dead unit: exactly zero gradient (phi'(z) = 0) for every example of the batch; the fraction is "
        f"averaged over the {ctx.setting('depth')} hidden layers (median over seeds). SGD with momentum 0.9. "
        "A run that diverged has no dead fraction at the end ('-'): its zero gradients are float underflow in a "
        "blown-up network, not dying.",
        dead_table(ctx),
        link,
    )


FINDING = Finding(
    "dying_relu",
    "Dying ReLU",
    "A large learning rate pushes ReLU units to negative pre-activations for every input; their gradient is "
    "zero and they never recover. Leaky ReLU and ELU have a non-zero slope there and stay alive.",
    "Maas et al. 2013 (leaky ReLU); Clevert et al. 2016 (ELU); Lu et al. 2019 (dying ReLU).",
    analyze,
    check,
)
