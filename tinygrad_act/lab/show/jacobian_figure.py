"""jacobian.png: the singular values of a run's Jacobian dz_L/dz_1 at step 0 (lab/jacobian.py), with the theory.

The nonzero values are drawn as a histogram of log10 s on a linear axis labelled in powers of ten (they are
accurate to relative 1e-7 however small, lab/product_svd.py, and may lie below float64's 1e-308). Exact zeros
(rank lost to dead units) and values known only by an upper bound get bars of their own, never a place on the
axis; a dense float64 SVD's floor (eps times the largest value) is marked, so that what lies beneath it reads
as measured here and not as round-off.
"""

from __future__ import annotations

import math

import numpy as np

from ..theory import spectrum_density
from . import plots
from .format import fmt, fmt_log10

# What the spectrum is of: the hidden stack's dz_L/dz_1, or through time a recurrent layer's state ds_T/ds_1.
PRODUCTS = {None: r"\partial z_L / \partial z_1", "ds_T/ds_1": r"\partial s_T / \partial s_1"}


def jacobian_figure(entry: dict):
    """The singular values of J = dz_L/dz_1 at step 0 (all examples pooled): the nonzero ones as a histogram of
    log10 s (each to relative 1e-7 however small, lab/product_svd.py), exact zeros and values known only by a
    bound as bars of their own beside it, never as tiny numbers; where a dense float64 SVD would stop (eps s_max);
    and the theory: sqrt of the mean-field mean s^2, free probability's one std of s^2 and its density, dashed."""
    logs, total = _jacobian_logs(entry)
    zeros, unresolved = sum(entry.get("zeros", [0])), sum(entry.get("unresolved", [0]))
    if zeros or unresolved:
        fig, (side, ax) = plots.figure(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 6]})
        _not_in_the_histogram(side, zeros, unresolved, entry.get("log10_bounds") or [])
    else:
        fig, ax = plots.figure(figsize=(8, 4))
    if logs.size:
        span = max(float(logs.max() - logs.min()), 1.0)
        edges = np.linspace(logs.min() - 0.02 * span, logs.max() + 0.02 * span, 41)
        ax.hist(
            logs, bins=edges, color="#0072B2", alpha=0.75, label=f"measured, nonzero ({entry['examples']} examples)"
        )
        _density_counts(ax, entry, edges, total)
        _dense_svd_floor(ax, float(logs.max()), edges)
    else:
        ax.text(0.5, 0.5, "no nonzero singular value: J = 0", transform=ax.transAxes, ha="center")
    mean = entry.get("log10_mean_s2", math.log10(entry["mean_s2"]) if entry["mean_s2"] > 0 else -math.inf)
    if math.isfinite(mean):
        ax.axvline(mean / 2, color="#0072B2", lw=1.5, label=r"measured $\sqrt{\overline{s^2}}$ (zeros included)")
    predicted = entry.get("theory") or {}
    if predicted.get("applies") and predicted["mean_s2"] > 0:
        mean, std = predicted["mean_s2"], math.sqrt(max(predicted["var_s2"], 0.0))
        ax.axvline(math.log10(mean) / 2, color="black", **plots.THEORY_STYLE,
                   label=rf"theory $\sqrt{{E[s^2]}}$ = {fmt(math.sqrt(mean), 3)} (mean field)")  # fmt: skip
        if mean - std > 0:
            ax.axvspan(math.log10(mean - std) / 2, math.log10(mean + std) / 2, color="grey", alpha=0.2,
                       label=rf"theory $s^2$ within one std ({predicted['weights']} W, free probability)")  # fmt: skip
    _power_ticks(ax)
    ax.set_xlabel(rf"nonzero singular value $s$ of ${PRODUCTS.get(entry.get('of'), PRODUCTS[None])}$ (log scale)")
    ax.set_ylabel("count")
    ax.set_title(_jacobian_title(entry, total, logs), fontsize=9)
    ax.grid(alpha=0.3)
    plots.legend(ax, fontsize=7, loc="best")
    return fig, "jacobian.png"


def _jacobian_logs(entry: dict) -> tuple[np.ndarray, int]:
    """(log10 of the nonzero singular values, how many values in all); from the values of an older summary."""
    if "log10_singular_values" in entry:
        return np.asarray(entry["log10_singular_values"], dtype=float), entry["width"] * entry["examples"]
    s = np.asarray(entry["singular_values"], dtype=float)
    with np.errstate(divide="ignore"):
        logs = np.log10(s[(s > 0) & np.isfinite(s)])
    return logs, len(s)


def _jacobian_title(entry: dict, total: int, logs: np.ndarray) -> str:
    if "rank" not in entry:
        return f"{total} singular values, middle 90% span {fmt(entry['decades'], 3)} decades"
    low, high = min(entry["rank"]), max(entry["rank"])
    rank = f"{low}" if low == high else f"{low}..{high}"
    spread = f"; the nonzero middle 90% spans {fmt(entry['decades'], 3)} decades" if logs.size else ""
    return f"{total} singular values ({entry['examples']} examples): rank {rank} of {entry['width']}{spread}"


def _not_in_the_histogram(ax, zeros: int, unresolved: int, bounds: list) -> None:
    """Exact zeros and unresolved values (below a bound) as bars of their own: counted, never placed on the axis."""
    bars = [("exact\nzeros", zeros, "#555555", "")]
    if unresolved:
        bars.append((f"unresolved\n< {fmt_log10(max(bounds))}" if bounds else "unresolved", unresolved, "white", "//"))
    bars = [bar for bar in bars if bar[1]]
    drawn = ax.bar(range(len(bars)), [count for _, count, _, _ in bars], color=[c for _, _, c, _ in bars],
                   edgecolor="#555555", width=0.6)  # fmt: skip
    for bar, (_, count, _, hatch) in zip(drawn, bars):
        bar.set_hatch(hatch)
        ax.annotate(str(count), (bar.get_x() + bar.get_width() / 2, count), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(bars)), [label for label, _, _, _ in bars], fontsize=7)
    ax.set_xlim(-0.7, len(bars) - 0.3)
    ax.set_ylabel("count")
    ax.set_title("not on the axis", fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def _dense_svd_floor(ax, top: float, edges: np.ndarray) -> None:
    """Where a float64 SVD of the dense product stops resolving (eps times the largest value): a line when the
    spectrum reaches it, else named in the legend; what lies beneath is measured only because J stays factored."""
    floor = top + math.log10(float(np.finfo(np.float64).eps))
    label = r"a dense float64 SVD's floor ($\epsilon\,s_{max}$)"
    if floor >= edges[0]:
        ax.axvline(floor, color="#D55E00", ls=":", lw=1.5, label=label)
    else:
        ax.plot([], [], color="#D55E00", ls=":", lw=1.5, label=f"{label}: {fmt_log10(floor)}, off the axis")


def _power_ticks(ax) -> None:
    """log10 values on a linear axis, labelled as powers of ten (an axis that reaches below float64's range)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"$10^{{{value:.0f}}}$"))


def _density_counts(ax, entry: dict, edges: np.ndarray, count: int) -> None:
    """The free-probability density of s^2 as expected counts per bin of log10 s (count * its mass in the bin)."""
    density = (entry.get("theory") or {}).get("density") or {}
    if density.get("applies"):
        with np.errstate(under="ignore"):
            expected = count * np.diff(spectrum_density.cdf(density, 10.0 ** (2.0 * edges)))
        lowest = fmt(math.sqrt(density["s2"][0]), 2)  # the solver's grid ends there: no prediction below
        ax.stairs(expected, edges, color="black", lw=1.2, ls="--",
                  label=f"theory density ({entry['theory']['weights']} W, free probability; s > {lowest})")  # fmt: skip
