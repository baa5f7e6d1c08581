"""Finding 6: r and accuracy of deep sigmoid/tanh nets, plain and with residual connections and normalization,
each judged against its own mean field (lab/theory/blocks.py)."""

from __future__ import annotations

import math

import numpy as np

from ..common import files
from ..lab import stats
from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number, pct
from ..lab.theory import blocks
from .common import (
    THEORY_WITHIN,
    Check,
    Context,
    Finding,
    delta_profile,
    geometric_median,
    judged,
    layer_field,
    log_error,
    paragraphs,
    seed_margin,
    worst,
)

ARCHITECTURES = {  # the parts of the claim: which nets, judged how
    "plain": lambda residual, norm: not residual and norm == "none",
    "residual": lambda residual, norm: residual,
    "layer norm": lambda residual, norm: not residual and norm == "layer",
    "batch norm": lambda residual, norm: not residual and norm == "batch",
}


def variants(ctx: Context, act: str, seeds=None) -> list[tuple[bool, str, list[dict]]]:
    """(residual, norm, runs of ``seeds``) of each architecture of one activation, in grid order."""
    found = []
    for residual in ctx.sweep.grid["residual"]:
        for norm in ctx.sweep.grid["norm"]:
            runs = ctx.among(seeds, act=act, residual=residual, norm=norm)
            found += [(residual, norm, runs)] if runs else []
    return found


def architecture(residual: bool, norm: str) -> str:
    """``plain``, ``residual``, ``layer norm`` or ``residual + layer norm``."""
    parts = ["residual" if residual else "", f"{norm} norm" if norm != "none" else ""]
    return " + ".join(filter(None, parts)) or "plain"


def input_variance(ctx: Context) -> float:
    """The inputs' mean square q0, from a plain run's theory block (1.0, standardized inputs, if none has one)."""
    if "q0" not in ctx.memo:
        ctx.memo["q0"] = 1.0
        for row in ctx.rows:
            theory = (files.read_json(ctx.root / "runs" / row["run"] / "summary.json") or {}).get("theory") or {}
            if theory.get("input_variance") is not None:
                ctx.memo["q0"] = float(theory["input_variance"])
                break
    return ctx.memo["q0"]


def theory_ratio(ctx: Context, row: dict) -> float:
    """The mean-field r of this run's architecture (lab/theory/blocks.py) from its own step-0 weight gains."""
    key = ("blocks", row["run"])
    if key not in ctx.memo:
        sigma_w2 = list(layer_field(ctx.records(row)[0], "weight_gain"))
        found = np.all(np.isfinite(sigma_w2))
        q0 = input_variance(ctx)
        ctx.memo[key] = (
            blocks.predict_ratio(row["act"], sigma_w2, row["residual"], row["norm"], q0)["ratio"] if found else math.nan
        )
    return ctx.memo[key]


def ratio_or_inf(row: dict, field: str = "ratio_init") -> float:
    """A run's r, +inf where its training diverged: a diverged run never counts as holding."""
    return math.inf if stats.shown_verdict(row) == "diverged" else number(row[field])


def measured(ctx: Context, seeds=None) -> list[dict]:
    """One entry per (activation, architecture): the geometric medians over ``seeds`` of r at init, of theory's
    r and of r at the end, and the median test accuracy."""
    out = []
    for act in ctx.sweep.grid["act"]:
        for residual, norm, runs in variants(ctx, act, seeds):
            out.append(
                {
                    "act": act, "residual": residual, "norm": norm, "runs": runs,
                    "name": f"{act} {architecture(residual, norm)}",
                    "ratio": geometric_median((ratio_or_inf(r) for r in runs), infinite=True),
                    "theory": geometric_median(theory_ratio(ctx, r) for r in runs),
                    "end": geometric_median((ratio_or_inf(r, "ratio_final") for r in runs), infinite=True),
                    "accuracy": float(np.median([number(r["test_accuracy"]) for r in runs])),
                }
            )  # fmt: skip
    return out


def run_rows(ctx: Context) -> list[list]:
    """One row per (activation, architecture): r at init beside its theory, verdicts, r at the end, accuracy."""
    return [
        [
            m["act"],
            architecture(m["residual"], m["norm"]),
            f"{fmt(m['ratio'])} / {fmt(m['theory'])}",
            _verdict(m["ratio"]),
            fmt(m["end"]),
            _verdict(m["end"]),
            pct(m["accuracy"]),
        ]
        for m in measured(ctx)
    ]


def _verdict(ratio: float) -> str:
    """The verdict of a median r; ``diverged`` where most runs diverged (the median is inf)."""
    return "diverged" if ratio == math.inf else stats.verdict(ratio)


def profile_figure(ctx: Context) -> str:
    """One panel per activation: the step-0 delta profile of each architecture (the first seed). Its link."""
    acts = ctx.sweep.grid["act"]
    fig, axes = plots.figure(1, len(acts), figsize=(11, 4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, act in zip(axes, acts):
        for residual, norm, runs in variants(ctx, act, ctx.seeds[:1]):
            deltas = delta_profile(ctx.records(runs[0])[0])
            label = ("residual" if residual else "plain") + (f", {norm}" if norm != "none" else "")
            ax.plot(np.arange(1, len(deltas) + 1), deltas, label=label)
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("hidden layer")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7)
    axes[0].set_ylabel(f"||delta_l|| / ||delta_{ctx.setting('depth')}|| at step 0")
    return ctx.figure(fig, "profiles")


def _decades(value: float) -> float:
    """log10 of a ratio, +-inf at inf and 0, nan if unmeasured."""
    if math.isnan(value):
        return math.nan
    return math.inf if value == math.inf else (math.log10(value) if value > 0 else -math.inf)


def _follows_theory(m: dict) -> float:
    """In decades: how far inside THEORY_WITHIN of its mean-field r the measured r is (a diverged run: -inf)."""
    if m["ratio"] == math.inf:
        return -math.inf
    return math.log10(THEORY_WITHIN) - log_error(m["ratio"], m["theory"])


RULES = {  # (what the part says, its margin for one (activation, architecture), in decades)
    "plain": (
        f"plain nets follow mean field (r within x{THEORY_WITHIN:g} of its prediction), so sigmoid vanishes "
        f"(r < {fmt(stats.VANISHING_BELOW)})",
        lambda m: min(
            _follows_theory(m), -_decades(m["ratio"] / stats.VANISHING_BELOW) if m["act"] == "sigmoid" else math.inf
        ),  # fmt: skip
    ),
    "residual": (
        "no residual net vanishes: the gradient grows toward the input (r > 1) as the residual mean field "
        f"predicts (within x{THEORY_WITHIN:g}; Yang & Schoenholz 2017)",
        lambda m: min(_decades(m["ratio"]), _follows_theory(m)),
    ),
    "layer norm": (
        f"layer norm follows its mean field (within x{THEORY_WITHIN:g}): it fixes the scale, not sigmoid's mean",
        _follows_theory,
    ),
    "batch norm": (
        "batch norm without skips makes gradients grow toward the input at initialization (r > 1; Yang et al. "
        "2019), and training brings r back into the healthy band",
        lambda m: min(
            _decades(m["ratio"]), _decades(m["end"] / stats.VANISHING_BELOW), _decades(stats.EXPLODING_ABOVE / m["end"])
        ),  # fmt: skip
    ),
}


def check(ctx: Context) -> Check:
    """Each kind of net against its own theory (RULES): plain and layer-norm nets and residual nets against their
    mean field (lab/theory/blocks.py), batch norm without skips against Yang et al. 2019's explosion. Margins in
    decades, on the geometric medians over seeds."""
    everything = measured(ctx)
    parts = []
    for kind, (says, rule) in RULES.items():
        chosen = [m for m in everything if ARCHITECTURES[kind](m["residual"], m["norm"])]
        if not chosen:
            continue

        def margin(seeds, kind=kind, rule=rule) -> float:
            return worst(rule(m) for m in measured(ctx, seeds) if ARCHITECTURES[kind](m["residual"], m["norm"]))

        numbers = "; ".join(
            f"{m['name']}: r = {fmt(m['ratio'])} (theory {fmt(m['theory'])}"
            + (f", at the end {fmt(m['end'])})" if kind == "batch norm" else ")")
            for m in chosen
        )
        parts.append(judged(says, seed_margin(margin, ctx.seeds, "decades"), numbers))
    return Check(parts)


def best(ctx: Context) -> str:
    """The best median test accuracy and its architecture."""
    top = max(measured(ctx), key=lambda m: m["accuracy"])
    return f"**Best test accuracy** (median over seeds): {pct(top['accuracy'])} ({top['name']})."


def analyze(ctx: Context) -> str:
    """The setting, the table, what was measured, and the figure."""
    rows = run_rows(ctx)
    link = profile_figure(ctx)
    head = ["activation", "architecture", "r at init: measured / theory", "verdict", "r at end", "verdict at end",
            "test accuracy"]  # fmt: skip
    return paragraphs(
        f"Depth {ctx.setting('depth')}, width {ctx.setting('width')}, init auto (Xavier), {ctx.setting('steps')} steps of "
        f"SGD with momentum, {len(ctx.seeds)} seeds (geometric medians of r, median accuracy). Normalization sits "
        "between each Linear and its activation; the residual connection adds the block's input to its output "
        "(not around the first block, whose widths differ).",
        markdown_table(head, rows),
        "*Theory* is the mean field of each block (`lab/theory/blocks.py`): with a skip, ||dL/dx||^2 gains a factor "
        "1 + sigma_w^2 E[phi'^2] / s^2 per block, so a residual net cannot vanish and its gradient grows toward the "
        "input (Yang & Schoenholz 2017); a norm divides the backward signal by the scale s it divided the forward one "
        "by, so layer norm gives sqrt(E[phi'(z)^2] / E[phi(z)^2]) per layer, z ~ N(0, 1), whatever sigma_w^2: "
        + ", ".join(f"{fmt(blocks.deep_factor(act, 'layer'), 3)} for {act}" for act in ctx.sweep.grid["act"])
        + " (sigmoid's mean 1/2 inflates the scale the norm divides by). Batch norm without skips makes gradients "
        "explode at initialization for every nonlinearity, a known result (Yang, Pennington, Rao, Sohl-Dickstein & "
        "Schoenholz 2019, *A mean field theory of batch normalization*, ICLR): its *theory* column is the "
        "large-batch, independent-example form of their rate (pi / (pi - 1) per layer in ||delta||^2 for ReLU), "
        "which leaves out the correlation between a batch's examples that makes the real explosion faster, so that "
        "part is judged on the direction (r > 1) only.",
        best(ctx),
        link,
    )


FINDING = Finding(
    "rescue",
    "Rescue by architecture: residual connections and normalization",
    "A plain depth-50 sigmoid MLP vanishes (tanh at its Xavier init loses only what its mean field predicts). "
    "Identity skips give the gradient a short path: no residual net vanishes, and theory expects its gradient to "
    "grow toward the input. Layer norm fixes each layer's scale and follows its own mean field, which keeps tanh "
    "healthy but not sigmoid. Batch norm without skips makes gradients explode at initialization (a known result, "
    "Yang et al. 2019), which training undoes.",
    "He et al., Deep residual learning, CVPR 2016; Ioffe & Szegedy 2015 (batch norm); Ba et al. 2016 (layer norm); "
    "Yang & Schoenholz, Mean field residual networks: on the edge of chaos, NeurIPS 2017; Yang et al., A mean "
    "field theory of batch normalization, ICLR 2019.",
    analyze,
    check,
)
