"""Finding 5: r at init against theory for large init gains, and what global-norm clipping changes."""

from __future__ import annotations

import math

from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number, pct
from .common import Check, Context, Finding, Part, agreement, log_error, paragraphs

# "Grow exponentially as theory says": measured r within a factor of 2 of the mean-field prediction
# factor^(L-1) (|log10(measured / predicted)| < 0.3), where theory's per-layer factor sqrt(chi) exceeds 1.
THEORY_WITHIN = 2.0


def _init_name(init: str) -> str:
    """``xavier_normal:gain=2`` as a reader says it: ``Xavier gain 2``."""
    return init.replace("xavier_normal", "Xavier").replace(":gain=", " gain ")


def run_table(ctx: Context) -> str:
    """One row per run: r at init beside theory, verdict, status, final loss and test accuracy."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for init in ctx.sweep.grid["init"]:
            for clip in ctx.sweep.grid["clip"]:
                for r in ctx.where(act=act, init=init, clip=clip)[:1]:
                    body.append(
                        [
                            act,
                            _init_name(init),
                            "off" if not clip else clip,
                            fmt(r["ratio_init"]),
                            fmt(r["predicted_ratio"]),
                            r["verdict"],
                            r["status"],
                            fmt(r["final_loss"], 3),
                            pct(r["test_accuracy"]),
                        ]
                    )
    head = ["activation", "init", "clip", "r at init", "theory r", "verdict", "status", "final loss", "test accuracy"]
    return markdown_table(head, body)


def loss_figure(ctx: Context) -> str:
    """One panel per activation: the training loss of every run (colour = init, dotted: clipped); a run that
    diverged is drawn to its last finite loss and crossed where it stopped. Its link."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4))
    inits = ctx.sweep.grid["init"]
    for ax, act in zip(axes, ctx.sweep.grid["act"]):
        for init in inits:
            for clip, style in zip(ctx.sweep.grid["clip"], ("-", ":")):
                for row in ctx.where(act=act, init=init, clip=clip)[:1]:
                    records = ctx.records(row)
                    steps, losses = [r["step"] for r in records], [number(r["loss"]) for r in records]
                    colour = plots.activation_color(init, inits)
                    label = f"{_init_name(init)}, clip {clip or 'off'}"
                    ax.plot(steps, losses, style, color=colour, marker="o" if len(steps) < 5 else None, label=label)
                    if row["status"] == "diverged":
                        finite = [v for v in losses if math.isfinite(v)] or [math.nan]
                        ax.plot(steps[-1], finite[-1], **{**plots.DIVERGED_MARKER, "color": colour})
        ax.plot([], [], **plots.DIVERGED_MARKER, label="diverged (loss nan at this step)")
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (batch)")
        plots.legend(ax, fontsize=7)
        ax.grid(alpha=0.3)
    return ctx.figure(fig, "loss")


def check(ctx: Context) -> Check:
    """Where theory's per-layer factor exceeds 1 (chi > 1), r at init exceeds 1 and is within THEORY_WITHIN of
    theory; every clipped run keeps a finite loss (it did not diverge)."""
    large = [r for r in ctx.rows if r["clip"] == 0 and number(r["predicted_per_layer_factor"]) > 1]
    within = [log_error(r["ratio_init"], r["predicted_ratio"]) <= math.log10(THEORY_WITHIN) for r in large]
    clipped = [r for r in ctx.rows if r["clip"] != 0]
    unclipped = {(r["act"], r["init"]): r["status"] for r in ctx.rows if r["clip"] == 0}
    return Check(
        [
            Part(
                f"weights with chi > 1 make gradients grow exponentially toward the input (r > 1, within a factor "
                f"{THEORY_WITHIN:g} of theory's factor^(L-1))",
                bool(large) and all(within) and all(number(r["ratio_init"]) > 1 for r in large),
                ", ".join(
                    f"{r['act']} {_init_name(r['init'])}: factor {fmt(r['predicted_per_layer_factor'], 3)}, "
                    f"r = {fmt(r['ratio_init'])} (theory {fmt(r['predicted_ratio'])})"
                    for r in large
                )
                or "no run has chi > 1",
            ),
            Part(
                "global-norm clipping keeps training finite (no clipped run diverged)",
                bool(clipped) and all(r["status"] != "diverged" for r in clipped),
                ", ".join(
                    f"{r['act']} {_init_name(r['init'])}: {r['status']} with clipping "
                    f"(final loss {fmt(r['final_loss'], 3)}), {unclipped.get((r['act'], r['init']), '-')} without"
                    for r in clipped
                ),
            ),
        ]
    )


def measured(ctx: Context) -> str:
    """Theory against measurement of r at init without clipping."""
    errors = [log_error(r["ratio_init"], r["predicted_ratio"]) for r in ctx.rows if r["clip"] == 0]
    return f"**Measured.** Theory vs measurement of r at init (all runs without clipping): {agreement(errors)}."


def analyze(ctx: Context) -> str:
    """The setting, the table, what was measured, and the figure."""
    link = loss_figure(ctx)
    return paragraphs(
        f"Depth {ctx.setting('depth')}, width {ctx.setting('width')}: Xavier-normal weights scaled by a gain g (sigma_w^2 = g^2 on "
        "the square hidden layers). For ReLU, chi = g^2/2, so g = 2 gives x1.41 per layer; tanh with g >= 2 is in "
        "the chaotic phase. Clip = global gradient-norm clipping at 1.0.",
        run_table(ctx),
        measured(ctx),
        link,
    )


FINDING = Finding(
    "exploding",
    "Exploding gradients and clipping",
    "Weights that are too large (chi > 1) make gradients grow exponentially toward the input; global-norm "
    "clipping bounds each update and keeps training finite.",
    "Pascanu, Mikolov & Bengio, On the difficulty of training recurrent neural networks, ICML 2013.",
    analyze,
    check,
)
