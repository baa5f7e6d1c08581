"""Finding 9: the seed-to-seed spread of the gradient profile at init, orthogonal vs Gaussian weights."""

from __future__ import annotations

import math

import numpy as np

from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number
from .common import Check, Context, Finding, delta_profile, geometric_median, judged, paragraphs, seed_margin, worst

# "Exactly" in a linear net: r = 1 to float rounding over 50 layers (each product rounds at ~1e-16).
EXACT_WITHIN = 1e-9
# "The same profile for every seed": the spread over seeds of log10(delta_l / delta_L), averaged over layers,
# below 0.02 (2% of a decade, a factor of 1.05); above it the profile "wanders".
SAME_BELOW = 0.02


def _cases(ctx: Context) -> list[tuple[str, str]]:
    return [(act, init) for act in ctx.sweep.grid["act"] for init in ctx.sweep.grid["init"]]


def log_profiles(ctx: Context, act: str, init: str, seeds=None) -> np.ndarray:
    """log10(delta_l / delta_L) at step 0, one row per seed (of ``seeds``; None: all)."""
    return np.array([np.log10(delta_profile(ctx.records(r)[0])) for r in ctx.among(seeds, act=act, init=init)])


def profile_spread(ctx: Context, act: str, init: str, seeds=None) -> float:
    """The std over seeds of log10(delta_l / delta_L), averaged over layers (finite profiles only; nan if none)."""
    profiles = log_profiles(ctx, act, init, seeds)
    finite = profiles[np.all(np.isfinite(profiles), axis=1)] if len(profiles) else profiles
    return float(np.mean(np.std(finite, axis=0))) if len(finite) else math.nan


def spread_row(ctx: Context, act: str, init: str) -> list:
    """r over seeds (median, min, max), the std of log10 r, and the profile spread (std over seeds, mean over layers)."""
    ratios = [number(r["ratio_init"]) for r in ctx.where(act=act, init=init)]
    logs = np.log10([r for r in ratios if r > 0])
    spread = profile_spread(ctx, act, init)
    return [
        act,
        init,
        fmt(geometric_median(ratios), 3),
        fmt(min(ratios, default=math.nan), 3),
        fmt(max(ratios, default=math.nan), 3),
        f"{np.std(logs):.3f}" if len(logs) else "-",
        f"{spread:.3f}",
    ]


def profile_figure(ctx: Context) -> str:
    """One panel per (activation, init): every seed's step-0 delta profile. Its link."""
    cases = _cases(ctx)
    fig, axes = plots.figure(1, len(cases), figsize=(4 * len(cases), 3.5), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (act, init) in zip(axes, cases):
        for profile in log_profiles(ctx, act, init):
            ax.plot(np.arange(1, len(profile) + 1), 10**profile, lw=1)
        ax.set_title(f"{act}, {init}", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("||delta_l|| / ||delta_L|| at step 0")
    return ctx.figure(fig, "profiles")


def _below(bar: float, value: float) -> float:
    """log10(bar / value): how many decades below the bar a value is (+inf at 0, nan if not measured)."""
    return math.inf if value == 0 else math.log10(bar / value) if value > 0 else math.nan


def _exact(ctx: Context, seeds) -> float:
    """In decades: how far below EXACT_WITHIN the largest |r - 1| of the linear orthogonal runs is."""
    linear = [number(r["ratio_init"]) for r in ctx.among(seeds, act="identity", init="orthogonal")]
    return _below(EXACT_WITHIN, max((abs(r - 1) for r in linear), default=math.nan))


def check(ctx: Context) -> Check:
    """Linear + orthogonal: r = 1 within EXACT_WITHIN for every seed; per activation, the orthogonal profile
    spread is below SAME_BELOW and the Gaussian (Xavier-normal) one is not. Margins in decades; their noise is
    the largest change when one seed is left out (each number is itself a statistic over the seeds)."""
    parts = []
    linear = [number(r["ratio_init"]) for r in ctx.where(act="identity", init="orthogonal")]
    if linear:
        worst_error = max(abs(r - 1) for r in linear)
        parts.append(
            judged(
                "orthogonal weights preserve the gradient norm exactly in a linear net (r = 1 for every seed)",
                seed_margin(lambda s: _exact(ctx, s), ctx.seeds, "decades", leave_one_out=True),
                f"max |r - 1| = {worst_error:.1e} over {len(linear)} seeds (allowed: {EXACT_WITHIN:.0e}, float rounding)",
            )
        )
    cases = (("orthogonal", "orthogonal", "is the same for every seed", True),
             ("xavier_normal", "Gaussian (xavier_normal)", "wanders from seed to seed", False))  # fmt: skip
    for init, name, says, same in cases:
        acts = [act for act in ctx.sweep.grid["act"] if ctx.where(act=act, init=init)]
        spreads = {act: profile_spread(ctx, act, init) for act in acts}

        def margin(seeds, init=init, same=same, acts=acts) -> float:  # decades below (same) or above the bar
            sign = 1 if same else -1
            return worst(sign * _below(SAME_BELOW, profile_spread(ctx, a, init, seeds)) for a in acts)

        parts.append(
            judged(
                f"with {name} weights the gradient profile {says} (profile spread "
                f"{'below' if same else 'at least'} {SAME_BELOW:g} decades)",
                seed_margin(margin, ctx.seeds, "decades", leave_one_out=True),
                ", ".join(f"{act}: {s:.3f}" for act, s in spreads.items()),
            )
        )
    return Check(parts)


def analyze(ctx: Context) -> str:
    """The setting, the spread table, what was measured, and the figure."""
    rows = [spread_row(ctx, act, init) for act, init in _cases(ctx)]
    link = profile_figure(ctx)
    head = ["activation", "init", "r (median)", "r min", "r max", "spread of log10 r", "profile spread"]
    return paragraphs(
        f"Depth {ctx.setting('depth')}, width {ctx.setting('width')}, at initialization, {len(ctx.sweep.grid['seed'])} seeds per "
        "row. Spread = standard deviation over seeds of log10 r, and of log10(delta_l/delta_L) averaged over layers.",
        markdown_table(head, rows),
        link,
    )


FINDING = Finding(
    "orthogonal",
    "Orthogonal vs Gaussian initialization",
    "Orthogonal weights preserve the norm of every back-propagated vector exactly in a linear net (dynamical "
    "isometry): the gradient profile is the same for every seed; Gaussian weights of the same variance "
    "give a profile that wanders from seed to seed.",
    "Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017.",
    analyze,
    check,
)
