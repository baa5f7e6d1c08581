"""Finding 7: the mean and std of each layer's activations at init for SELU with LeCun weights, and contrasts."""

from __future__ import annotations

import math

import numpy as np

from ..lab.show import plots
from ..lab.show.format import markdown_table
from ..lab.theory import mean_field as theory
from ..nn import activations
from .common import Check, Context, Finding, Part, judged, layer_field, paragraphs, seed_margin

# "Mean ~0, variance ~1": the domain of Klambauer et al.'s Theorem 1 (mean in [-0.1, 0.1], variance in [0.8, 1.5]),
# which the SELU layer map sends into itself and contracts toward (0, 1).
MEAN_BAND = (-0.1, 0.1)
VARIANCE_BAND = (0.8, 1.5)
DEEP = 30  # "through 30+ layers"


def shown_layers(depth: int) -> list[int]:
    """The layers the table shows: the first, the quarters and the last."""
    return sorted({i for i in (1, depth // 4, depth // 2, 3 * depth // 4, depth) if i >= 1})


def moments(ctx: Context, row: dict) -> tuple[np.ndarray, np.ndarray]:
    """(means, stds) of a run's hidden activations at step 0."""
    first = ctx.records(row)[0]
    return layer_field(first, "act_mean"), layer_field(first, "act_std")


def moment_table(ctx: Context) -> str:
    """Per run: mean / std of the shown layers."""
    shown = shown_layers(ctx.setting("depth"))
    body = []
    for row in ctx.among(ctx.seeds[:1]):
        means, stds = moments(ctx, row)
        body.append([row["act"], row["init"]] + [f"{means[i - 1]:+.2f} / {stds[i - 1]:.2f}" for i in shown])
    return markdown_table(["activation", "init"] + [f"layer {i}: mean / std" for i in shown], body)


def moment_figure(ctx: Context) -> str:
    """Left: every run's activation means per layer; right: their stds (colour = activation, line style and
    marker = init; LeCun and Xavier coincide on square layers, which a note says). Its link."""
    fig, axes = plots.figure(1, 2, figsize=(12, 4.2))
    acts, inits = ctx.sweep.grid["act"], ctx.sweep.grid["init"]
    markers = dict(zip(inits, ("o", "x", "s", "^")))
    for row in ctx.among(ctx.seeds[:1]):
        means, stds = moments(ctx, row)
        layers = np.arange(1, len(means) + 1)
        style = dict(
            color=plots.activation_color(row["act"], acts),
            linestyle=plots.init_linestyle(row["init"], inits),
            marker=markers.get(row["init"]),
            markevery=4,
            markerfacecolor="none",
        )
        axes[0].plot(layers, means, **style)
        axes[1].plot(layers, stds, **style)
    axes[0].set_ylabel("mean of activations at step 0")
    axes[1].set_ylabel("std of activations at step 0")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("hidden layer $l$")
        ax.grid(alpha=0.3)
    colours = {a: plots.activation_color(a, acts) for a in acts}
    styles = {i: plots.init_linestyle(i, inits) for i in inits}
    plots.style_legends(axes[0], colours, styles, loc="upper left", style_loc="center left")
    if {"lecun_normal", "xavier_normal"} <= set(inits):
        fig.text(
            0.01, 0.005, r"LeCun and Xavier normal coincide on the square hidden layers ($\mathrm{Var}\,W = 1/n$ for "
            f"both): their lines overlap (markers {markers['lecun_normal']} and {markers['xavier_normal']}).", fontsize=8,
        )  # fmt: skip
    return ctx.figure(fig, "moments")


def theory_line() -> str:
    """Klambauer et al. (2017): with sigma_w^2 = 1 the variance map has a fixed point where SELU's mean is ~0."""
    selu = activations.get("selu")
    fixed = theory.fixed_point(selu, 1.0)
    mean = theory.mean_activation(selu, fixed.q_star)
    return (
        f"Theory (sigma_w^2 = 1, LeCun): the pre-activation variance has the fixed point q* = "
        f"{fixed.q_star:.4f}, where the SELU output has mean {mean:+.1e}."
    )


def _median_moments(ctx: Context, seeds) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, the median over ``seeds`` of SELU/LeCun's activation mean and variance at step 0."""
    runs = ctx.among(seeds, act="selu", init="lecun_normal")
    pairs = [moments(ctx, r) for r in runs]
    return np.median([m for m, _ in pairs], axis=0), np.median([s**2 for _, s in pairs], axis=0)


def _inside(values: np.ndarray, band: tuple[float, float]) -> float:
    """How far inside the band the values are: the smallest distance to an edge (< 0: outside)."""
    return float(np.min(np.minimum(values - band[0], band[1] - values))) if len(values) else math.nan


def check(ctx: Context) -> Check:
    """SELU with LeCun weights: every layer's activation mean within MEAN_BAND and variance within VARIANCE_BAND
    (medians over seeds, per layer), in a net of at least DEEP layers; margins: the smallest distance to a band's
    edge."""
    if not ctx.where(act="selu", init="lecun_normal"):
        return Check([Part("SELU with LeCun-normal weights is in the sweep", False, "no selu / lecun_normal run")])
    means, variances = _median_moments(ctx, None)
    depth = len(means)
    deep = math.inf if depth >= DEEP else -math.inf  # too shallow a net cannot bear out "through 30+ layers"
    where = f"over all {depth} layers (the claim: {DEEP}+), medians over {len(ctx.seeds)} seed(s)"
    return Check(
        [
            judged(
                f"mean ~0 (within [{MEAN_BAND[0]:g}, {MEAN_BAND[1]:g}]) through {DEEP}+ layers",
                seed_margin(
                    lambda s: min(deep, _inside(_median_moments(ctx, s)[0], MEAN_BAND)), ctx.seeds, "of the mean"
                ),
                f"mean between {np.min(means):+.3f} and {np.max(means):+.3f} {where}",
            ),
            judged(
                f"variance ~1 (within [{VARIANCE_BAND[0]:g}, {VARIANCE_BAND[1]:g}]) through {DEEP}+ layers",
                seed_margin(
                    lambda s: min(deep, _inside(_median_moments(ctx, s)[1], VARIANCE_BAND)),
                    ctx.seeds,
                    "of the variance",
                ),  # fmt: skip
                f"variance between {np.min(variances):.3f} and {np.max(variances):.3f} {where}",
            ),
        ]
    )


def analyze(ctx: Context) -> str:
    """The table, the theory and the measurement for SELU/LeCun (when the sweep has it), and the figure."""
    selu_lecun = ctx.where(act="selu", init="lecun_normal")
    link = moment_figure(ctx)
    return paragraphs(
        f"Mean / std of each hidden layer's activations (over the batch and the units) at initialization, depth "
        f"{ctx.setting('depth')}, width {ctx.setting('width')}, on standardized {ctx.setting('data')} inputs, seed "
        f"{ctx.seeds[0]} (the check takes each layer's median over {len(ctx.seeds)} seeds).",
        moment_table(ctx),
        theory_line() if selu_lecun else "",
        f"The check's bands are the domain of Klambauer et al.'s Theorem 1, which the SELU layer map sends into "
        f"itself; the measured numbers move by a few percent with the finite width {ctx.setting('width')} and batch "
        f"of {ctx.setting('batch_size')}."
        if selu_lecun
        else "",
        link,
    )


FINDING = Finding(
    "selu",
    "SELU self-normalization",
    "With LeCun-normal weights, SELU activations keep mean ~0 and variance ~1 through 30+ layers.",
    "Klambauer et al., Self-normalizing neural networks, NeurIPS 2017.",
    analyze,
    check,
)
