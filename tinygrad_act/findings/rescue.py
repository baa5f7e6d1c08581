"""Finding 6: r and accuracy of deep sigmoid/tanh nets, plain and with residual connections and normalization."""

from __future__ import annotations

import numpy as np

from ..lab import stats
from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number, pct
from .common import Check, Context, Finding, Part, delta_profile, paragraphs


def variants(ctx: Context, act: str) -> list[tuple[bool, str, dict]]:
    """(residual, norm, run) of each architecture of one activation, in grid order."""
    found = []
    for residual in ctx.sweep.grid["residual"]:
        for norm in ctx.sweep.grid["norm"]:
            found += [(residual, norm, row) for row in ctx.where(act=act, residual=residual, norm=norm)[:1]]
    return found


def architecture(residual: bool, norm: str) -> str:
    """``plain``, ``residual``, ``layer norm`` or ``residual + layer norm``."""
    parts = ["residual" if residual else "", f"{norm} norm" if norm != "none" else ""]
    return " + ".join(filter(None, parts)) or "plain"


def run_rows(ctx: Context) -> list[list]:
    """One row per run: activation, architecture, r and verdict at init and at the end, test accuracy."""
    return [
        [
            act,
            architecture(residual, norm),
            fmt(r["ratio_init"]),
            r["verdict"],
            fmt(r["ratio_final"]),
            r["verdict_final"],
            pct(r["test_accuracy"]),
        ]
        for act in ctx.sweep.grid["act"]
        for residual, norm, r in variants(ctx, act)
    ]


def profile_figure(ctx: Context) -> str:
    """One panel per activation: the step-0 delta profile of each architecture. Its link."""
    acts = ctx.sweep.grid["act"]
    fig, axes = plots.figure(1, len(acts), figsize=(11, 4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, act in zip(axes, acts):
        for residual, norm, row in variants(ctx, act):
            deltas = delta_profile(ctx.records(row)[0])
            label = ("residual" if residual else "plain") + (f", {norm}" if norm != "none" else "")
            ax.plot(np.arange(1, len(deltas) + 1), deltas, label=label)
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("hidden layer")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7)
    axes[0].set_ylabel(f"||delta_l|| / ||delta_{ctx.setting('depth')}|| at step 0")
    return ctx.figure(fig, "profiles")


def _verdicts(ctx: Context, runs: list[tuple[str, dict]]) -> str:
    """``sigmoid layer norm: r = 1.0e-20, vanishing (per layer 0.39)``; the end's verdict where it differs."""
    said = []
    for name, r in runs:
        shown, end = stats.shown_verdict(r), r["verdict_final"]
        text = f"{name}: r = {fmt(r['ratio_init'])}, {shown}"
        if shown != "healthy":
            text += f" (factor per layer {fmt(r['per_layer_factor_init'], 3)})"
        if end != shown and shown != "diverged":
            text += f"; at the end r = {fmt(r['ratio_final'])}, {end}"
        said.append(text)
    return "; ".join(said)


def check(ctx: Context) -> Check:
    """The plain nets vanish at init; every residual net and every normalized net is healthy at init (the
    project's verdict rule: "restoring flow" = healthy, neither vanishing nor exploding)."""
    runs = [(f"{act} {architecture(res, norm)}", res, norm, r) for act in ctx.sweep.grid["act"]
            for res, norm, r in variants(ctx, act)]  # fmt: skip

    def part(says: str, chosen, verdict: str) -> Part:
        chosen = [(name, r) for name, res, norm, r in runs if chosen(res, norm)]
        ok = bool(chosen) and all(stats.shown_verdict(r) == verdict for _, r in chosen)
        return Part(says, ok, _verdicts(ctx, chosen) or "no such run")

    parts = [
        part("a plain depth-50 sigmoid/tanh MLP vanishes (at init)", lambda res, norm: not res and norm == "none",
             "vanishing"),
        part("identity skips restore flow (every residual net healthy at init)", lambda res, norm: res, "healthy"),
    ]  # fmt: skip
    for kind in (n for n in ctx.sweep.grid["norm"] if n != "none"):
        parts.append(
            part(f"{kind} norm restores flow (healthy at init, without skips)",
                 lambda res, norm, kind=kind: not res and norm == kind, "healthy")
        )  # fmt: skip
    return Check(parts)


def best(ctx: Context) -> str:
    """The best test accuracy and its architecture."""
    top = max(ctx.rows, key=lambda r: number(r["test_accuracy"]))
    return (
        f"**Best test accuracy**: {pct(top['test_accuracy'])} ({top['act']}, "
        f"{architecture(top['residual'], top['norm'])})."
    )


def analyze(ctx: Context) -> str:
    """The setting, the table, what was measured, and the figure."""
    rows = run_rows(ctx)
    link = profile_figure(ctx)
    head = ["activation", "architecture", "r at init", "verdict", "r at end", "verdict at end", "test accuracy"]
    return paragraphs(
        f"Depth {ctx.setting('depth')}, width {ctx.setting('width')}, init auto (Xavier), {ctx.setting('steps')} steps of "
        "SGD with momentum. Normalization sits between each Linear and its activation; the residual connection adds "
        "the block's input to its output.",
        markdown_table(head, rows),
        best(ctx),
        link,
    )


FINDING = Finding(
    "rescue",
    "Rescue by architecture: residual connections and normalization",
    "A depth-50 sigmoid/tanh MLP vanishes; identity skips give the gradient a short path and normalization "
    "re-centres every layer, restoring flow.",
    "He et al., Deep residual learning, CVPR 2016; Ioffe & Szegedy 2015 (batch norm); Ba et al. 2016 (layer norm).",
    analyze,
    check,
)
