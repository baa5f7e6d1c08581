"""Finding 9: the seed-to-seed spread of the gradient profile at init, orthogonal vs Gaussian weights."""

from __future__ import annotations

import math

import numpy as np

from ..lab import plots
from ..lab.report import fmt, markdown_table, number
from .common import Context, Finding, delta_profile, geometric_median, paragraphs


def _cases(ctx: Context) -> list[tuple[str, str]]:
    return [(act, init) for act in ctx.sweep.grid["act"] for init in ctx.sweep.grid["init"]]


def log_profiles(ctx: Context, act: str, init: str) -> np.ndarray:
    """log10(delta_l / delta_L) at step 0, one row per seed."""
    return np.array([np.log10(delta_profile(ctx.records(r)[0])) for r in ctx.where(act=act, init=init)])


def spread_row(ctx: Context, act: str, init: str) -> list:
    """r over seeds (median, min, max), the std of log10 r, and the profile spread (std over seeds, mean over layers)."""
    ratios = [number(r["ratio_init"]) for r in ctx.where(act=act, init=init)]
    logs = np.log10([r for r in ratios if r > 0])
    profiles = log_profiles(ctx, act, init)
    finite = profiles[np.all(np.isfinite(profiles), axis=1)] if len(profiles) else profiles
    spread = float(np.mean(np.std(finite, axis=0))) if len(finite) else math.nan
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


def measured(ctx: Context, rows: list[list]) -> str:
    """Per activation: the spread of log10 r with orthogonal against Gaussian (Xavier-normal) weights."""
    spreads = {(row[0], row[1]): float(row[5]) for row in rows if row[5] != "-"}
    lines = []
    for act in ctx.sweep.grid["act"]:
        o, g = spreads.get((act, "orthogonal")), spreads.get((act, "xavier_normal"))
        if o is not None and g is not None:
            lines.append(f"{act}: spread of log10 r {o:.3f} (orthogonal) vs {g:.3f} (Gaussian)")
    return "**Measured.** " + "; ".join(lines) + "."


def analyze(ctx: Context) -> str:
    """The setting, the spread table, what was measured, and the figure."""
    rows = [spread_row(ctx, act, init) for act, init in _cases(ctx)]
    link = profile_figure(ctx)
    head = ["activation", "init", "r (median)", "r min", "r max", "spread of log10 r", "profile spread"]
    return paragraphs(
        f"Depth {ctx.setting('depth')}, width {ctx.setting('width')}, at initialization, {len(ctx.sweep.grid['seed'])} seeds per "
        "row. Spread = standard deviation over seeds of log10 r, and of log10(delta_l/delta_L) averaged over layers.",
        markdown_table(head, rows),
        measured(ctx, rows),
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
)
