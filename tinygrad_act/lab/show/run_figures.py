"""A run's figures, in the one style of ``plots``: someone who sees only the picture reads the verdict right.

Every figure's title says what the run was (activation, init, depth, dtype) and its verdict with r. The files
(other code refers to them by name): gradient_flow.png, gradient_heatmap.png, update_ratio.png, saturation.png
(why, per layer: the weights' gain times the activation's gain), snr.png (the gradient's signal-to-noise ratio
across the batch's examples, per layer), training.png, histograms.png and jacobian.png
(the singular values of dz_L/dz_1 at step 0: the nonzero ones over log10 s, exact zeros and unresolved values
counted beside them, a dense SVD's floor, and the theory of their mean square, spread and density).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...common import files
from ..measure.gradient_noise import noise_floor
from ..stats import layer_gains, shown_verdict
from . import plots
from .format import fmt, number
from .jacobian_figure import jacobian_figure

GAIN_RANGE = (1e-3, 1e3)  # the per-layer gains of saturation.png: the same axis for every run


def figures(path, records: list[dict], summary: dict) -> list[str]:
    """Draw the run's PNG figures into ``path/figures``; return their relative paths."""
    written = []
    drawn = drawings(path, records, summary)
    if drawn:
        out = files.subdir(path, "figures")
        for fig, name in drawn:
            plots.save(fig, out / name)
            written.append(f"figures/{name}")
    return written


def drawings(path, records: list[dict], summary: dict) -> list[tuple]:
    """The run's figures as (matplotlib Figure, file name), titled, not saved; no pyplot, no backend touched."""
    measured = [r for r in records if r["layers"] and r["layers"][0].get("delta_norm") is not None]
    if not measured:
        return []
    # A run that diverged on an unmeasured step logged that step's weight gradients only: drawn too, as such.
    diverged = records[-1] if records[-1] is not measured[-1] and records[-1]["layers"] else None
    records = measured
    config = files.read_json(Path(path) / "config.json") or {}
    title = run_title(Path(path).name, config, summary)
    draws = [
        lambda: gradient_flow(records, summary, diverged),
        lambda: gradient_heatmap(records),
        lambda: update_ratio(records),
        lambda: why_per_layer(records),
        lambda: gradient_snr(records, config.get("batch_size")),
        lambda: training(records, (config.get("dataset") or {}).get("classes"), summary),
    ]
    histograms = Path(path) / "histograms.npz"
    if histograms.exists():
        with np.load(histograms) as arrays:
            arrays = dict(arrays)
        draws.append(lambda: histogram_figure(arrays))
    if (summary.get("jacobian") or {}).get("applies"):
        draws.append(lambda: jacobian_figure(summary["jacobian"]))
    drawn = []
    with np.errstate(all="ignore"):
        for draw in draws:
            fig, name = draw()
            fig.suptitle(title, fontsize=9)
            drawn.append((fig, name))
    return drawn


def run_title(name: str, config: dict, summary: dict) -> str:
    """``name: sigmoid, xavier_normal, depth 20, float64 — vanishing at init, r = 1.1e-12 (theory 2e-12)``."""
    init = (config.get("init_resolved") or {}).get("name") or config.get("init")  # "auto" says less than its name
    what = ", ".join(str(v) for v in (config.get("act"), init) if v)
    if config.get("depth") is not None:
        what += f", depth {config['depth']}, {config.get('dtype', 'float64')}"
    verdict = shown_verdict(summary)
    if verdict == "diverged":
        said = f"DIVERGED ({summary.get('message') or 'non-finite numbers'})"
    elif "ratio_init" in summary:
        ratio = summary["ratio_init"]
        said = f"{verdict} at init, $r$ = " + ("0 (the gradient underflowed)" if ratio == 0 else fmt(ratio, 3))
        theory = summary.get("theory") or {}
        if theory.get("applies"):
            said += f" (theory {fmt(theory['ratio'], 3)})"
    else:
        said = verdict or "no verdict"
    return f"{name}: {what} — {said}" if what else f"{name} — {said}"


def _colormap(name: str):
    from matplotlib import colormaps  # matplotlib only when figures are drawn

    return colormaps[name]


def series(records: list[dict], field: str) -> np.ndarray:
    """records x layers array of a per-layer field (nan where missing or not measured)."""
    return np.array([[number(layer.get(field)) for layer in r["layers"]] for r in records], dtype=float)


def pick_steps(records: list[dict], count: int = 5) -> list[dict]:
    """At most ``count`` records spread evenly over the run, the first and the last included."""
    if len(records) <= count:
        return records
    picks = np.unique(np.linspace(0, len(records) - 1, count).round().astype(int))
    return [records[i] for i in picks]


def _colorbar(fig, ax, cmap: str, low: float, high: float, label: str):
    """A colour bar for lines coloured by ``cmap`` over [low, high] (not an image)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(low, high), cmap)
    return fig.colorbar(mappable, ax=ax, label=label)


def draw_profile(ax, layers, values, color, label=None) -> set[str]:
    """One measured profile on a NORM_RANGE axis: zeros and underflows as markers at the bottom edge, values
    above the range at the top edge, non-finite values (divergence) as DIVERGED_MARKER at the top: never dropped.
    Returns the kinds of marker drawn ("underflow", "above", "nonfinite")."""
    values = np.asarray(values, dtype=float)
    inside, below, above = plots.clipped(values)
    ax.plot(layers, inside, marker="o", ms=3, color=color, label=label)
    low, high = plots.NORM_RANGE
    edge = dict(clip_on=False, zorder=5)
    if below.size:
        ax.plot(layers[below], np.full(below.size, low), markeredgecolor=color, **plots.UNDERFLOW_MARKER, **edge)
    nonfinite = np.flatnonzero(~np.isfinite(values) & ~np.isneginf(values))
    large = np.setdiff1d(above, nonfinite)
    if large.size:
        ax.plot(layers[large], np.full(large.size, high), marker="^", linestyle="none", color=color, **edge)
    if nonfinite.size:
        ax.plot(layers[nonfinite], np.full(nonfinite.size, high), **plots.DIVERGED_MARKER, **edge)
    return {kind for kind, where in (("underflow", below), ("above", large), ("nonfinite", nonfinite)) if where.size}


def gradient_flow(records: list[dict], summary: dict, diverged: dict | None = None):
    """||δ|| and ||dL/dW|| across the layers at a few steps, on the fixed range, with the mean-field prediction.

    ``diverged``: the record of an unmeasured step the run diverged at (weight gradients only), drawn as such.
    """
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    count = len(records[0]["layers"])
    layers = np.arange(1, count + 1)
    first, last = records[0]["step"], (diverged or records[-1])["step"]
    cmap, kinds = _colormap(plots.STEP_COLORMAP), set()
    for record in pick_steps(records):
        color = cmap((record["step"] - first) / max(last - first, 1))
        for ax, field in zip(axes, ("delta_norm", "weight_grad_norm")):
            kinds |= draw_profile(ax, layers, series([record], field)[0], color)
    if diverged is not None:
        kinds |= draw_profile(axes[1], layers, series([diverged], "weight_grad_norm")[0], "red",
                              label=f"step {diverged['step']} (diverged)")  # fmt: skip
    _theory_profile(axes[0], records[0], summary, count)
    for ax, label in zip(
        axes, (r"$\|\delta_\ell\| = \|\partial L/\partial z_\ell\|$", r"$\|\partial L/\partial W_\ell\|_F$")
    ):
        plots.norm_axis(ax, label)
        plots.layer_ticks(ax, count)
        ax.set_xlabel(r"layer $\ell$ (input side first)")
        ax.grid(alpha=0.3)
    _marker_legend(axes[1], kinds)
    plots.legend(axes[0], fontsize=7, loc="best")
    _colorbar(fig, axes[1], plots.STEP_COLORMAP, first, max(last, first + 1), "step")
    return fig, "gradient_flow.png"


def _marker_legend(ax, kinds: set[str]) -> None:
    """The measured lines' own labels, then what each edge marker means (only those drawn)."""
    from matplotlib.lines import Line2D

    handles = ax.get_legend_handles_labels()[0]
    if "underflow" in kinds:
        handles.append(Line2D([], [], color="grey", **plots.UNDERFLOW_MARKER, label="zero / below the axis"))
    if "above" in kinds:
        handles.append(Line2D([], [], color="grey", marker="^", linestyle="none", label="above the axis"))
    if "nonfinite" in kinds:
        handles.append(Line2D([], [], **plots.DIVERGED_MARKER, label="not finite (diverged)"))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def _theory_profile(ax, record: dict, summary: dict, count: int) -> None:
    """Mean field: δ_ℓ = δ_L · factor^(L-ℓ), anchored at the last hidden layer's measured δ at step 0."""
    theory = summary.get("theory") or {}
    factor, depth = number(theory.get("per_layer_factor")), count - 1
    anchor = number(record["layers"][depth - 1]["delta_norm"]) if depth >= 1 else math.nan
    if not theory.get("applies") or not math.isfinite(factor) or not (0 < anchor < math.inf):
        return
    hidden = np.arange(1, depth + 1)
    ax.plot(hidden, anchor * factor ** (depth - hidden), color="black", **plots.THEORY_STYLE,
            label=rf"mean-field theory, $\times${fmt(factor, 3)} per layer (step {record['step']})")  # fmt: skip


def gradient_heatmap(records: list[dict]):
    """log10 ||δ|| and log10 ||dL/dW||, layer x step, on one colour scale shared by every run."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    steps, count = [r["step"] for r in records], len(records[0]["layers"])
    x_edges = np.array([*steps, steps[-1] + max(1, steps[-1] - steps[-2] if len(steps) > 1 else 1)])
    y_edges = np.arange(count + 1) + 0.5
    low, high = np.log10(plots.NORM_RANGE)
    cmap = _colormap(plots.STEP_COLORMAP).with_extremes(under="white", over="red", bad="red")
    for ax, field, name in zip(axes, ("delta_norm", "weight_grad_norm"), (r"\|\delta\|", r"\|\partial L/\partial W\|")):
        grid = np.log10(series(records, field)).T
        image = ax.pcolormesh(x_edges, y_edges, grid, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(rf"$\log_{{10}} {name}$ (white: zero, red: not finite)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(r"layer $\ell$")
        plots.layer_ticks(ax, count, axis="y")
    fig.colorbar(image, ax=axes[-1], label=r"$\log_{10}$ of the norm (both panels)", extend="both")
    return fig, "gradient_heatmap.png"


def update_ratio(records: list[dict]):
    """||ΔW|| / ||W|| per update for each layer over the steps, coloured by layer, with the 1e-3 rule of thumb."""
    updates, steps, count = series(records, "update_ratio"), [r["step"] for r in records], len(records[0]["layers"])
    fig, ax = plots.figure(figsize=(8, 4))
    cmap = _colormap(plots.LAYER_COLORMAP)
    for index in range(count):
        ax.plot(steps, updates[:, index], color=cmap(index / max(count - 1, 1)), lw=1)
    ax.axhline(1e-3, color="red", ls="--", lw=1, label=r"$10^{-3}$ rule of thumb")
    if np.any(np.isfinite(updates) & (updates > 0)):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\|\Delta W_\ell\|_F \,/\, \|W_\ell\|_F$ per update")
    plots.legend(ax, fontsize=7)
    ax.grid(alpha=0.3)
    bar = _colorbar(fig, ax, plots.LAYER_COLORMAP, 0.5, count + 0.5, r"layer $\ell$")
    plots.layer_ticks(bar.ax, count, axis="y")
    return fig, "update_ratio.png"


def why_per_layer(records: list[dict]):
    """Why, per layer: σ_w² (weights) x E[f'(z)²] (activation) = the factor mean-field theory predicts for
    ||δ||² per layer (< 1 vanishing, > 1 exploding); and the saturated, inactive and dead fractions."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    count = len(records[0]["layers"])
    hidden = np.arange(1, count)
    first, last = records[0], records[-1]
    weight, act = series([first], "weight_gain")[0][:-1], series([first], "activation_gain")[0][:-1]
    ax = axes[0]
    ax.plot(hidden, weight, "s-", ms=3, color="#0072B2", label=r"weights: $\sigma_w^2 = n_{in}\,\mathbb{E}[W^2]$")
    ax.plot(hidden, act, "o-", ms=3, color="#D55E00", label=r"activation: $\mathbb{E}[f'(z)^2]$")
    ax.plot(hidden, weight * act, "-", lw=2.2, color="black", label=r"product $\sigma_w^2\,\mathbb{E}[f'(z)^2]$")
    end = series([last], "weight_gain")[0][:-1] * series([last], "activation_gain")[0][:-1]
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
    _fractions(axes[1], first, last)
    for ax in axes:
        ax.set_xlabel(r"hidden layer $\ell$")
        ax.grid(alpha=0.3)
        if count > 1:
            plots.layer_ticks(ax, count - 1, output=False)
    return fig, "saturation.png"


def gradient_snr(records: list[dict], batch: int | None = None):
    """grad_snr per layer: across the layers at a few steps, and over the steps for each layer (log scale, the
    line SNR = 1 where signal and noise are equal and, given the ``batch`` size, pure noise's 1/(B-1)). SNR is
    scale-free: a vanished layer keeps its SNR, a noisy one falls to the floor."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4.2))
    snr, count = series(records, "grad_snr"), len(records[0]["layers"])
    layers, steps = np.arange(1, count + 1), [r["step"] for r in records]
    first, last = steps[0], steps[-1]
    step_colors, layer_colors = _colormap(plots.STEP_COLORMAP), _colormap(plots.LAYER_COLORMAP)
    for record in pick_steps(records):
        axes[0].plot(layers, series([record], "grad_snr")[0], marker="o", ms=3,
                     color=step_colors((record["step"] - first) / max(last - first, 1)))  # fmt: skip
    for index in range(count):
        axes[1].plot(steps, snr[:, index], lw=1, color=layer_colors(index / max(count - 1, 1)))
    positive = snr[np.isfinite(snr) & (snr > 0)]
    for ax in axes:
        ax.axhline(1.0, color="grey", lw=1, label="SNR = 1: as much noise as signal")
        if batch and batch > 1:
            ax.axhline(noise_floor(batch), color="red", lw=1, ls="--", label=f"1/(B-1) = {fmt(noise_floor(batch), 2)}: "
                       f"pure noise, batch {batch}")  # fmt: skip
        if positive.size:
            ax.set_yscale("log")
            ax.set_ylim(min(positive.min() / 2, 1e-2, noise_floor(batch or 2) / 2), max(positive.max() * 2, 1e2))
        ax.set_ylabel(r"$\|\bar g\|^2 \,/\, \overline{\|g_i - \bar g\|^2}$ of $\partial L/\partial W_\ell$")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel(r"layer $\ell$ (input side first)")
    plots.layer_ticks(axes[0], count)
    axes[1].set_xlabel("step")
    plots.legend(axes[0], fontsize=7, loc="best")
    _colorbar(fig, axes[0], plots.STEP_COLORMAP, first, max(last, first + 1), "step")
    bar = _colorbar(fig, axes[1], plots.LAYER_COLORMAP, 0.5, count + 0.5, r"layer $\ell$")
    plots.layer_ticks(bar.ax, count, axis="y")
    return fig, "snr.png"


FRACTIONS = (  # field or (field, minus field), label, colour
    (("saturation", "inactive_fraction"), r"saturated ($0 < |f'| < 5\%$ of its max)", "#CC79A7"),
    ("inactive_fraction", r"inactive ($f'(z) = 0$, e.g. ReLU's zero region)", "#009E73"),
    ("dead_fraction", "dead (inactive for the whole batch)", "#000000"),
)


def _fractions(ax, first: dict, last: dict) -> None:
    """The saturated, inactive and dead fractions per hidden layer (step 0 solid, end dashed), where non-zero."""
    hidden, drawn = np.arange(1, len(first["layers"])), False
    for field, label, color in FRACTIONS:
        for record, style in ((first, "-"), (last, "--")):
            if isinstance(field, tuple):
                values = series([record], field[0])[0][:-1] - np.nan_to_num(series([record], field[1])[0][:-1])
            else:
                values = series([record], field)[0][:-1]
            if np.nanmax(np.abs(values), initial=0) > 0:
                ax.plot(hidden, values, style, marker="o", ms=3, color=color, label=f"{label}, step {record['step']}")
                drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no saturated, inactive or dead units", ha="center", transform=ax.transAxes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of (example, unit) pairs; of units for dead")
    plots.legend(ax, fontsize=7)


def training(records: list[dict], classes, summary: dict):
    """Loss and accuracy, with the chance levels (ln C and 1/C) and the divergence marked."""
    fig, axes = plots.figure(1, 2)
    steps = [r["step"] for r in records]
    axes[0].plot(steps, [r["loss"] for r in records], label="train batch")
    axes[1].plot(steps, [r["accuracy"] for r in records], label="train batch")
    tests = [r for r in records if r.get("test_loss") is not None]
    if tests:
        axes[0].plot([r["step"] for r in tests], [r["test_loss"] for r in tests], "o-", label="test")
        axes[1].plot([r["step"] for r in tests], [r["test_accuracy"] for r in tests], "o-", label="test")
    if classes:
        chance = dict(color="grey", ls=":", lw=1.5)
        axes[0].axhline(math.log(classes), label=rf"chance: $\ln {classes}$ = {math.log(classes):.2f}", **chance)
        axes[1].axhline(1 / classes, label=rf"chance: 1/{classes} = {100 / classes:.3g}$\%$", **chance)
    if shown_verdict(summary) == "diverged":
        for ax in axes:
            ax.plot([steps[-1]], [0.98], transform=ax.get_xaxis_transform(), clip_on=False,
                    **plots.DIVERGED_MARKER, label=f"diverged (step {steps[-1]})")  # fmt: skip
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("accuracy")
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7)
    return fig, "training.png"


def histogram_figure(arrays: dict):
    """Glorot & Bengio 2010, figs 6-7: activations and log10|δ| of layers 1, L/2 and L at init and at the end."""
    acts, deltas = arrays["init_activations"], arrays["init_deltas"]
    depth = len(acts)
    shown = sorted({1, max(1, (depth + 1) // 2), depth})
    fig, axes = plots.figure(2, len(shown), figsize=(11, 5.5), squeeze=False)
    cmap = _colormap(plots.STEP_COLORMAP)
    for column, layer in enumerate(shown):
        for row, (kind, edges) in enumerate((("activations", "activation_edges"), ("deltas", "delta_log_edges"))):
            ax = axes[row, column]
            for key, shade in (("init", 0.0), ("end", 0.75)):
                counts = arrays[f"{key}_{kind}"][layer - 1]
                total = max(int(counts.sum()), 1)
                ax.stairs(counts / total, arrays[edges], color=cmap(shade), lw=1.5,
                          label=f"step {int(arrays[f'{key}_step'])}")  # fmt: skip
            ax.set_title(f"layer {layer}: " + (r"$f(z)$" if row == 0 else r"$\log_{10}|\delta|$"), fontsize=9)
            ax.grid(alpha=0.3)
    _trim(axes[1], arrays, deltas.shape[1])
    axes[0, 0].set_ylabel("fraction of (example, unit) pairs")
    axes[1, 0].set_ylabel("fraction (first bin: zero or below)")
    axes[0, 0].legend(fontsize=7)
    return fig, "histograms.png"


def _trim(axes, arrays: dict, bins: int) -> None:
    """The log10|δ| axes span the occupied bins only (one shared range for the row)."""
    occupied = np.flatnonzero((arrays["init_deltas"].sum(0) + arrays["end_deltas"].sum(0)) > 0)
    if occupied.size:
        edges = arrays["delta_log_edges"]
        low, high = edges[max(occupied[0] - 1, 0)], edges[min(occupied[-1] + 2, bins)]
        for ax in axes:
            ax.set_xlim(low, high)
