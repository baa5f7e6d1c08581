"""Finding 5: r at init against theory for large init gains, and what global-norm clipping changes."""

from __future__ import annotations

import math

from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number, pct
from .common import (
    THEORY_WITHIN,
    Check,
    Context,
    Finding,
    Margin,
    agreement,
    geometric_median,
    judged,
    log_error,
    median,
    paragraphs,
    seed_margin,
    worst,
)


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
    theory (the geometric medians over seeds); every clipped run keeps a finite loss (it did not diverge)."""
    large = [(a, i) for a in ctx.sweep.grid["act"] for i in ctx.sweep.grid["init"]
             if median(number(r["predicted_per_layer_factor"]) for r in ctx.where(act=a, init=i, clip=0.0)) > 1]  # fmt: skip

    def ratios(act: str, init: str, seeds) -> tuple[float, float]:
        group = ctx.among(seeds, act=act, init=init, clip=0.0)
        return geometric_median(r["ratio_init"] for r in group), geometric_median(r["predicted_ratio"] for r in group)

    def grows(seeds) -> float:  # in decades: r above 1, and within THEORY_WITHIN of theory
        band = math.log10(THEORY_WITHIN)
        pairs = [ratios(a, i, seeds) for a, i in large]
        return worst(min(math.log10(r), band - log_error(r, p)) if r > 0 else math.nan for r, p in pairs)

    clipped = [r for r in ctx.rows if r["clip"] != 0]
    finite = [r for r in clipped if r["status"] != "diverged"]
    return Check(
        [
            judged(
                f"weights with chi > 1 make gradients grow exponentially toward the input (r > 1, within a factor "
                f"{THEORY_WITHIN:g} of theory's factor^(L-1))",
                seed_margin(grows, ctx.seeds, "decades") if large else Margin(math.nan, "decades"),
                ", ".join(
                    f"{a} {_init_name(i)}: factor {fmt(median(r['predicted_per_layer_factor'] for r in ctx.where(act=a, init=i, clip=0.0)), 3)}, "
                    f"r = {fmt(ratios(a, i, None)[0])} (theory {fmt(ratios(a, i, None)[1])})"
                    for a, i in large
                )
                or "no run has chi > 1",
            ),
            judged(
                "global-norm clipping keeps training finite (no clipped run diverged)",
                seed_margin(lambda s: _diverged_clipped(ctx, s), ctx.seeds, "runs"),
                f"{len(finite)} of {len(clipped)} clipped runs finite; " + _clipping_text(ctx),
            ),
        ]
    )


def _diverged_clipped(ctx: Context, seeds) -> float:
    """Minus the number of clipped runs of ``seeds`` that diverged (0 holds: none did; nan: no clipped run)."""
    clipped = [r for r in ctx.among(seeds) if r["clip"] != 0]
    return float(-sum(r["status"] == "diverged" for r in clipped)) if clipped else math.nan


def _clipping_text(ctx: Context) -> str:
    """Per (activation, init): how the clipped runs ended (their final losses) and how the unclipped ones did."""
    said = []
    for act in ctx.sweep.grid["act"]:
        for init in ctx.sweep.grid["init"]:
            clipped = [r for r in ctx.where(act=act, init=init) if r["clip"] != 0]
            free = [r for r in ctx.where(act=act, init=init) if r["clip"] == 0]
            if not clipped:
                continue
            losses = sorted(number(r["final_loss"]) for r in clipped if r["status"] != "diverged")
            span = "" if not losses else f" (final loss {fmt(losses[0], 3)}" + (
                f" to {fmt(losses[-1], 3)})" if len(losses) > 1 else ")")  # fmt: skip
            said.append(
                f"{act} {_init_name(init)}: {_statuses(clipped)} with clipping{span}, {_statuses(free)} without"
            )
    return "; ".join(said)


def _statuses(rows: list[dict]) -> str:
    """``3 completed`` or ``1 completed, 2 diverged``."""
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no run"


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
        f"the chaotic phase. Clip = global gradient-norm clipping at 1.0. {ctx.setting('steps')} steps; the table and "
        f"the figure show seed {ctx.seeds[0]}, the check takes the geometric medians of r over {len(ctx.seeds)} seeds. "
        f"Theory's band, x{THEORY_WITHIN:g}: what the plain-net mean field achieves at this width over finding 1's "
        "96 runs (worst x1.8), so a larger miss would be the theory's, not finite width's.",
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
