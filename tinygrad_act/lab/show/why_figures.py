"""The figures that say why, per layer: the gains behind r and the saturated / inactive / dead units
(saturation.png), the gradient's signal and noise across the batch's examples (snr.png), and the histograms of
activations and back-propagated gradients (histograms.png), in the one style of ``plots``.
"""

from __future__ import annotations

import math

import numpy as np

from ..measure.gradient_noise import noise_floor
from ..stats import layer_gains
from . import plots
from .format import fmt, number, pct

GAIN_RANGE = (1e-3, 1e3)  # the per-layer gains of saturation.png: the same axis for every run


def why_per_layer(records: list[dict]):
    """Why, per layer: σ_w² (weights) x E[f'(z)²] (activation) = the factor mean-field theory predicts for
    ||δ||² per layer (< 1 vanishing, > 1 exploding); and, where they reach FRACTION_SHOWN in some layer, the
    saturated, inactive and dead fractions (else no panel for them, and a line saying how small they are)."""
    first, last = records[0], records[-1]
    fractions = _fraction_series(first, last)
    largest = max((float(np.nanmax(v, initial=0)) for v in fractions.values()), default=0.0)
    shown = largest >= FRACTION_SHOWN
    fig, axes = plots.figure(1, 2 if shown else 1, figsize=(11, 4.2) if shown else (7, 4.4), squeeze=False)
    axes = axes[0]
    count = len(first["layers"])
    hidden = np.arange(1, count)
    weight, act = plots.series([first], "weight_gain")[0][:-1], plots.series([first], "activation_gain")[0][:-1]
    ax = axes[0]
    ax.plot(hidden, weight, "s-", ms=3, color="#0072B2", label=r"weights: $\sigma_w^2 = n_{in}\,\mathbb{E}[W^2]$")
    ax.plot(hidden, act, "o-", ms=3, color="#D55E00", label=r"activation: $\mathbb{E}[f'(z)^2]$")
    ax.plot(hidden, weight * act, "-", lw=2.2, color="black", label=r"product $\sigma_w^2\,\mathbb{E}[f'(z)^2]$")
    end = plots.series([last], "weight_gain")[0][:-1] * plots.series([last], "activation_gain")[0][:-1]
    if last is not first:
        ax.plot(hidden, end, ":", lw=1.5, color="black", alpha=0.6, label=f"product at step {last['step']}")
    ax.axhline(1.0, color="grey", lw=1, label=r"1: $\|\delta\|$ kept (< 1 vanishes, > 1 explodes)")
    gains = layer_gains(first)  # the verdict's aggregation (geometric means over the layers r spans)
    mean = number(gains["product"]) if gains else math.nan
    root = math.sqrt(mean) if mean >= 0 else math.nan
    ax.set_title(
        rf"step {first['step']}: mean product {fmt(mean, 3)}, so $\|\delta\|$ $\times${fmt(root, 3)} per layer",
        fontsize=9,
    )
    ax.set_yscale("log")
    ax.set_ylim(*GAIN_RANGE)
    ax.set_ylabel("gain per layer")
    plots.legend(ax, fontsize=7, loc="upper right")
    if shown:
        _fractions(axes[1], fractions, first["step"], last["step"])
    else:
        said = (
            "no saturated, inactive or dead units in any layer, at step 0 or at the end"
            if largest == 0
            else f"saturated, inactive and dead units: at most {pct(largest)} of any layer's, at step 0 and at the end"
        )
        ax.text(0.01, -0.2, said + " (no panel for them)", transform=ax.transAxes, fontsize=8, va="top")
    for ax in axes:
        ax.set_xlabel(r"hidden layer $\ell$")
        ax.grid(alpha=0.3)
        if count > 1:
            plots.layer_ticks(ax, count - 1, output=False)
    return fig, "saturation.png"


def gradient_snr(records: list[dict], batch: int | None = None):
    """The weight gradient's signal and noise per layer (left) and its SNR over the steps (right).

    Left, on the fixed norm range at step 0 and at the end: the signal ||mean g|| (= ||dL/dW||) and the noise
    sqrt(mean ||g_i - mean g||²) across the batch's examples; SNR = (signal / noise)². A vanishing net's signal
    and noise fall together toward the input (a steep pair of lines), a healthy one's stay flat, and the gap
    between the two lines is the SNR. Right: grad_snr of each layer over the steps (log scale), with SNR = 1
    and, given the ``batch`` size, pure noise's 1/(B-1). SNR is scale-free: a vanished layer keeps its SNR."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    snr, count = plots.series(records, "grad_snr"), len(records[0]["layers"])
    layers, steps = np.arange(1, count + 1), [r["step"] for r in records]
    ax = axes[0]
    for record, style in ((records[0], "-"), (records[-1], "--")) if len(records) > 1 else ((records[0], "-"),):
        signal = plots.series([record], "weight_grad_norm")[0]
        with np.errstate(all="ignore"):  # no SNR (a zero gradient): no noise drawn there
            noise = signal / np.sqrt(plots.series([record], "grad_snr")[0])
        plots.draw_profile(ax, layers, signal, "#0072B2", linestyle=style)
        plots.draw_profile(ax, layers, noise, "#D55E00", linestyle=style)
        ax.plot([], [], color="grey", ls=style, label=f"step {record['step']}")
    ax.plot([], [], color="#0072B2", lw=2, label=r"signal $\|\bar g\| = \|\partial L/\partial W_\ell\|$")
    ax.plot([], [], color="#D55E00", lw=2, label=r"noise $(\overline{\|g_i - \bar g\|^2})^{1/2}$ across examples")
    plots.norm_axis(ax, "norm of the weight gradient")
    plots.layer_ticks(ax, count)
    ax.set_xlabel(r"layer $\ell$ (input side first)")
    ax.set_title(r"signal and noise per layer: SNR = (signal / noise)$^2$", fontsize=9)
    plots.legend(ax, fontsize=7, loc="lower right")
    ax = axes[1]
    layer_colors = plots.colormap(plots.LAYER_COLORMAP)
    for index in range(count):
        ax.plot(steps, snr[:, index], lw=1, color=layer_colors(index / max(count - 1, 1)))
    ax.axhline(1.0, color="grey", lw=1, label="SNR = 1: as much noise as signal")
    if batch and batch > 1:
        ax.axhline(noise_floor(batch), color="red", lw=1, ls="--", label=f"1/(B-1) = {fmt(noise_floor(batch), 2)}: "
                   f"pure noise, batch {batch}")  # fmt: skip
    positive = snr[np.isfinite(snr) & (snr > 0)]
    if positive.size:
        ax.set_yscale("log")
        ax.set_ylim(min(positive.min() / 2, 1e-2, noise_floor(batch or 2) / 2), max(positive.max() * 2, 1e2))
    ax.set_ylabel(r"SNR $= \|\bar g\|^2 \,/\, \overline{\|g_i - \bar g\|^2}$ of $\partial L/\partial W_\ell$")
    ax.set_xlabel("step")
    ax.set_title("SNR of each layer over the steps (scale-free: blind to vanishing)", fontsize=9)
    ax.grid(alpha=0.3)
    plots.legend(ax, fontsize=7, loc="upper right")
    bar = plots.colorbar(fig, ax, plots.LAYER_COLORMAP, 0.5, count + 0.5, r"layer $\ell$")
    plots.layer_ticks(bar.ax, count, axis="y")
    return fig, "snr.png"


FRACTION_SHOWN = 0.01  # saturation.png draws the saturated / inactive / dead fractions once one reaches 1%
FRACTIONS = {  # field or (field, minus field) -> label, colour
    ("saturation", "inactive_fraction"): (
        r"saturated: $0 < |f'| < 5\%$ of its max, of (example, unit) pairs",
        "#CC79A7",
    ),
    "inactive_fraction": (r"inactive: $f'(z) = 0$ (ReLU's zero region), of (example, unit) pairs", "#009E73"),
    "dead_fraction": ("dead: units inactive for the whole batch, of units", "#000000"),
}


def _fraction_series(first: dict, last: dict) -> dict:
    """(field, "first" or "last") -> the fraction per hidden layer (saturated counts saturated but not inactive)."""
    found = {}
    for field in FRACTIONS:
        for key, record in (("first", first), ("last", last)):
            if isinstance(field, tuple):
                values = plots.series([record], field[0])[0][:-1] - np.nan_to_num(
                    plots.series([record], field[1])[0][:-1]
                )
            else:
                values = plots.series([record], field)[0][:-1]
            found[field, key] = values
    return found


def _fractions(ax, found: dict, first_step: int, last_step: int) -> None:
    """The fractions that are non-zero, per hidden layer: colour = kind, solid = step 0, dashed = the end."""
    from matplotlib.lines import Line2D

    hidden, handles = None, []
    for field, (label, color) in FRACTIONS.items():
        drawn = False
        for key, style in (("first", "-"), ("last", "--")):
            values = found[field, key]
            hidden = np.arange(1, len(values) + 1)
            if np.nanmax(np.abs(values), initial=0) > 0:
                ax.plot(hidden, values, style, marker="o", ms=3, color=color)
                drawn = True
        if drawn:
            handles.append(Line2D([], [], color=color, lw=2, label=label))
    handles += [Line2D([], [], color="grey", ls="-", label=f"step {first_step}"),
                Line2D([], [], color="grey", ls="--", label=f"step {last_step}")]  # fmt: skip
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction")
    ax.legend(handles=handles, fontsize=7, loc="upper left")


def histogram_figure(arrays: dict):
    """Glorot & Bengio 2010, figs 6-7: activations and log10|δ| of layers 1, L/2 and L at init and at the end.

    Back-propagated values that are exactly 0 (ReLU's inactive units) have no logarithm: they are drawn as their
    own hatched bar left of the axis, at "0", never as a spike at the histogram's lowest bin."""
    acts = arrays["init_activations"]
    depth = len(acts)
    shown = sorted({1, max(1, (depth + 1) // 2), depth})
    fig, axes = plots.figure(2, len(shown), figsize=(11, 5.5), squeeze=False)
    cmap = plots.colormap(plots.STEP_COLORMAP)
    zeros = {key: _zeros(arrays, key) for key in ("init", "end")}
    low, high, zero_at = _delta_range(arrays, zeros)
    for column, layer in enumerate(shown):
        for row, (kind, edges) in enumerate((("activations", "activation_edges"), ("deltas", "delta_log_edges"))):
            ax = axes[row, column]
            for key, shade in (("init", 0.0), ("end", 0.75)):
                counts = arrays[f"{key}_{kind}"][layer - 1].astype(np.float64)
                total = max(counts.sum(), 1.0)
                label = f"step {int(arrays[f'{key}_step'])}"
                if kind == "deltas" and zeros[key] is not None:
                    counts[0] -= zeros[key][layer - 1]  # the first bin without the exact zeros, drawn apart
                    if zero_at is not None:
                        ax.bar(zero_at, zeros[key][layer - 1] / total, width=arrays[edges][1] - arrays[edges][0],
                               fill=False, hatch="//", edgecolor=cmap(shade), lw=1.5)  # fmt: skip
                ax.stairs(counts / total, arrays[edges], color=cmap(shade), lw=1.5, label=label)
            ax.set_title(f"layer {layer}: " + (r"$f(z)$" if row == 0 else r"$\log_{10}|\delta|$"), fontsize=9)
            ax.grid(alpha=0.3)
            if row == 1 and low is not None:
                ax.set_xlim(low, high)
                if zero_at is not None:  # the bar of exact zeros, apart from the log axis by a dotted line
                    ax.axvline(zero_at + arrays[edges][1] - arrays[edges][0], color="grey", lw=0.8, ls=":")
                    ticks = [t for t in ax.get_xticks() if zero_at + 1 < t <= high]
                    ax.set_xticks([zero_at, *ticks], ["0", *(f"{t:g}" for t in ticks)])
    axes[0, 0].set_ylabel("fraction of (example, unit) pairs")
    if any(z is None for z in zeros.values()):  # histograms.npz from before exact zeros were counted apart
        axes[1, 0].set_ylabel("fraction (first bin: zero or below)")
    else:
        axes[1, 0].set_ylabel("fraction" + (" (hatched at 0: exactly 0)" if zero_at is not None else ""))
    axes[0, 0].legend(fontsize=7)
    return fig, "histograms.png"


def _zeros(arrays: dict, key: str):
    """The count of exactly-zero δ per layer at ``key`` (init, end); None in histograms.npz written before it."""
    zeros = arrays.get(f"{key}_delta_zeros")
    return None if zeros is None else np.asarray(zeros, dtype=np.float64)


def _delta_range(arrays: dict, zeros: dict):
    """(low, high, where the zero bar goes or None): the log10|δ| axes span the bins occupied by non-zero values
    (one shared range for the row), and one bin more on the left for the bar of exact zeros if there are any."""
    edges = arrays["delta_log_edges"]
    width, bins = edges[1] - edges[0], len(edges) - 1
    counts = arrays["init_deltas"].astype(np.float64).sum(0) + arrays["end_deltas"].astype(np.float64).sum(0)
    known = all(z is not None for z in zeros.values())
    total_zeros = sum(float(z.sum()) for z in zeros.values()) if known else 0.0
    counts[0] -= total_zeros
    occupied = np.flatnonzero(counts > 0)
    if not occupied.size:
        return (
            (None, None, None)
            if not total_zeros
            else (edges[0] - 3 * width, edges[0] + 3 * width, edges[0] - 2 * width)
        )
    low, high = edges[max(occupied[0] - 1, 0)], edges[min(occupied[-1] + 2, bins)]
    if not total_zeros:
        return low, high, None
    return low - 3 * width, high, low - 2 * width
