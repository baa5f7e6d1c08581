"""Terminal tables and figures from a run's records, and the one way numbers are written for a reader.

``fmt`` and ``pct`` format every number a person reads (terminal, sweep.md, experiments/README.md);
``markdown_table`` writes every Markdown table.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import plots, rundir
from .stats import shown_verdict

BAR_WIDTH = 28


def number(value) -> float:
    """A logged value as a float: None (not measured) is nan."""
    return math.nan if value is None else float(value)


def fmt(value, digits: int = 2) -> str:
    """Numbers as a reader wants them: 0.93, 1.2e-12, 45%; '-' for missing."""
    value = number(value) if not isinstance(value, str) else value
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    return f"{value:.1e}"


def pct(value) -> str:
    """A fraction as a percentage with one decimal ('-' when missing)."""
    value = number(value)
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table: a header row, the separator, one line per row (cells as ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _layer_name(index: int, count: int) -> str:
    return "out" if index == count - 1 else str(index + 1)


def layer_table(records: list[dict]) -> str:
    """Per layer: delta and weight-gradient norms at step 0 and at the end, saturation, dead units, a log bar."""
    first, last = records[0], records[-1]
    count = len(first["layers"])
    deltas = [layer["delta_norm"] for layer in first["layers"]]
    logs = [math.log10(d) for d in deltas if d is not None and d > 0 and math.isfinite(d)]
    low, high = (min(logs), max(logs)) if logs else (0.0, 0.0)
    # A fixed scale of at most 4 characters per decade: a flat profile draws flat bars, not magnified noise.
    per_decade = min(4.0, (BAR_WIDTH - 1) / max(high - low, 1e-12))
    header = (
        f"{'layer':>5}  {'delta@0':>8}  {'delta@' + str(last['step']):>10}  {'|dW|@0':>8}  "
        f"{'|dW|@' + str(last['step']):>10}  {'sat':>6}  {'dead':>6}  "
        f"delta@0, log scale ({per_decade:.3g} chars per decade)"
    )
    lines = [header, "-" * len(header)]
    for index in range(count):
        a, b = first["layers"][index], last["layers"][index]
        d = a["delta_norm"]
        if d is not None and d > 0 and math.isfinite(d):
            bar = "#" * max(1, round(BAR_WIDTH + per_decade * (math.log10(d) - high)))
        else:
            bar = "(zero)" if d == 0 else "(n/a)"
        sat, dead = b.get("saturation"), b.get("dead_fraction")
        lines.append(
            f"{_layer_name(index, count):>5}  {fmt(d, 3):>8}  {fmt(b.get('delta_norm'), 3):>10}  "
            f"{fmt(a['weight_grad_norm'], 3):>8}  {fmt(b['weight_grad_norm'], 3):>10}  {pct(sat):>6}  {pct(dead):>6}  "
            f"{bar}"
        )
    lines.append(
        "delta = ||dL/dz|| of each layer's pre-activation over the batch, |dW| = ||dL/dW||; sat = fraction of units "
        "in the activation's flat region, dead = units with zero gradient for the whole batch (both at the end)"
    )
    return "\n".join(lines)


def verdict_line(verdict: str, ratio: float, factor: float, depth: int, dtype: str = "float64") -> str:
    """e.g. ``vanishing: layer 1 receives 1.1e-12 of the gradient of layer 20 (x0.25 per layer)``."""
    ratio = number(ratio)  # null: not measured
    if verdict == "exploding" and not math.isfinite(ratio):
        return f"exploding: gradients are not finite (layer 1 / layer {depth} = {ratio})"
    if ratio == 0:
        hint = "; in float32 that happens below 1e-45: try DTYPE=float64" if dtype == "float32" else ""
        return f"{verdict}: layer 1 receives no gradient at all from layer {depth} (it underflowed to exactly 0{hint})"
    share = fmt(ratio, 3)
    what = "of the gradient" if ratio <= 1 else "times the gradient"
    if depth < 2:
        per_layer = "one hidden layer: no per-layer factor"
    elif factor is None or not math.isfinite(factor):
        per_layer = "no per-layer factor"
    else:
        per_layer = f"x{factor:.3g} per layer"
    return f"{verdict}: layer 1 receives {share} {what} of layer {depth} ({per_layer})"


def final_line(summary: dict, depth: int, dtype: str = "float64") -> str:
    """The verdict at the end of training: ``diverged at step N: ...`` for a run that diverged, else from r."""
    if shown_verdict(summary) == "diverged":
        return summary.get("message") or "diverged"
    line = verdict_line(
        summary["verdict_final"], summary["ratio_final"], summary["per_layer_factor_final"], depth, dtype
    )
    return f"{line}  [step {summary['step_final']}, end]"


def terminal_report(summary: dict, records: list[dict], config) -> str:
    """The table, the verdict with the numbers behind it, theory beside measurement, and where the files are."""
    lines = []
    if records and records[0]["layers"] and records[0]["layers"][0].get("delta_norm") is not None:
        lines += [layer_table(records), ""]
    depth = config.depth
    if "ratio_init" in summary:
        lines.append(
            verdict_line(
                summary["verdict"], summary["ratio_init"], summary["per_layer_factor_init"], depth, config.dtype
            )
            + "  [step 0, at initialization]"
        )
        theory = summary.get("theory")
        if theory and theory.get("applies"):
            lines.append(
                f"  theory (mean field, sigma_w^2={fmt(theory['sigma_w2'], 3)}): r = {fmt(theory['ratio'], 3)}, "
                f"x{fmt(theory['per_layer_factor'], 3)} per layer -> {theory['verdict']}"
            )
        if config.act.split(":")[0] == "sigmoid" and depth > 1:
            lines.append(
                f"  bound: sigmoid' <= 0.25, so {depth - 1} layers shrink the gradient by up to "
                f"0.25^{depth - 1} = {0.25 ** (depth - 1):.1e} (times the weights' own gain)"
            )
        lines.append(final_line(summary, depth, config.dtype))
    status = summary["status"]
    lines.append("")
    if "test_accuracy" in summary:
        lines.append(
            # losses in full (a diverging loss of 1.134e+300 keeps its digits)
            f"train loss {summary['train_loss']:.4g}, accuracy {pct(summary['train_accuracy'])}; "
            f"test loss {summary['test_loss']:.4g}, accuracy {pct(summary['test_accuracy'])} "
            f"after {summary['steps_done']} steps ({fmt(summary.get('wall_time_s'), 3)} s)"
        )
    if status not in ("completed", "diverged"):  # a diverged run's message is its final verdict line above
        lines.append(f"status: {status} — {summary['message']}")
    files = summary.get("files") or list(rundir.RUN_FILES)
    lines.append(f"files: {summary['path']}/ ({', '.join(files)})")
    return "\n".join(lines)


# ---- figures ------------------------------------------------------------------------------------------------
def _pick_steps(records: list[dict], count: int = 5) -> list[dict]:
    if len(records) <= count:
        return records
    picks = np.unique(np.linspace(0, len(records) - 1, count).round().astype(int))
    return [records[i] for i in picks]


def _series(records, field):
    """records x layers array of a per-layer field (nan where missing)."""
    return np.array(
        [[np.nan if layer.get(field) is None else layer[field] for layer in r["layers"]] for r in records], dtype=float
    )


def _log_scale(ax, values, axis="y"):
    """Log scale only when there is something positive to show (all-zero gradients stay linear)."""
    values = np.asarray(values, dtype=float)
    if np.any(np.isfinite(values) & (values > 0)):
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def figures(path, records: list[dict], summary: dict) -> list[str]:
    """Draw the run's PNG figures into ``path/figures``; return their relative paths.

    Gradient flow across layers at a few steps, a layer x step heatmap of ||dL/dW||, the update ratio per
    layer, saturation and dead units at the start and the end, and the training curves.
    """
    records = [r for r in records if r["layers"] and r["layers"][0].get("delta_norm") is not None]
    if not records:
        return []
    out = rundir.subdir(path, "figures")
    title = Path(path).name
    if shown_verdict(summary) == "diverged":
        title += f" (diverged: {summary.get('message') or 'non-finite numbers'})"
    written = []
    with np.errstate(all="ignore"):
        for draw in (_gradient_flow, _gradient_heatmap, _update_ratio, _saturation, _training):
            fig, name = draw(records)
            fig.suptitle(title, fontsize=9)
            plots.save(fig, out / name)
            written.append(f"figures/{name}")
    return written


def _gradient_flow(records: list[dict]):
    """||dL/dz|| and ||dL/dW|| across the layers at a few steps."""
    fig, axes = plots.figure(1, 2)
    layer_axis = np.arange(1, len(records[0]["layers"]) + 1)
    for record in _pick_steps(records):
        for ax, field in zip(axes, ("delta_norm", "weight_grad_norm")):
            ax.plot(layer_axis, _series([record], field)[0], marker="o", ms=3, label=f"step {record['step']}")
    for ax, label, field in zip(axes, ("||dL/dz|| (delta norm)", "||dL/dW||_F"), ("delta_norm", "weight_grad_norm")):
        _log_scale(ax, _series(records, field))
        ax.set_xlabel("layer (input side first; last = output)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig, "gradient_flow.png"


def _gradient_heatmap(records: list[dict]):
    """log10 ||dL/dW||, layer x step."""
    grid = np.log10(_series(records, "weight_grad_norm")).T
    steps, count = [r["step"] for r in records], len(records[0]["layers"])
    fig, ax = plots.figure()
    extent = (steps[0], steps[-1] + 1, 0.5, count + 0.5)
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", extent=extent)
    fig.colorbar(image, ax=ax, label="log10 ||dL/dW||")
    ax.set_xlabel("step")
    ax.set_ylabel("layer")
    return fig, "gradient_heatmap.png"


def _update_ratio(records: list[dict]):
    """||dW|| / ||W|| per update for each layer over the steps, with the 1e-3 rule of thumb."""
    from matplotlib import colormaps  # matplotlib only when figures are drawn

    updates, steps, count = _series(records, "update_ratio"), [r["step"] for r in records], len(records[0]["layers"])
    fig, ax = plots.figure(figsize=(8, 4))
    colors = colormaps["viridis"](np.linspace(0, 1, count))
    for index in range(count):
        label = f"layer {_layer_name(index, count)}" if index in (0, count - 1) else None
        ax.plot(steps, updates[:, index], color=colors[index], lw=1, label=label)
    ax.axhline(1e-3, color="red", ls="--", lw=1, label="1e-3 guide")
    _log_scale(ax, updates)
    ax.set_xlabel("step")
    ax.set_ylabel("||dW|| / ||W|| per update")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig, "update_ratio.png"


def _saturation(records: list[dict]):
    """Saturation and dead fraction per hidden layer at the first and the last measured step."""
    fig, axes = plots.figure(1, 2)
    hidden = np.arange(1, len(records[0]["layers"]))
    for ax, field in zip(axes, ("saturation", "dead_fraction")):
        for record, offset in ((records[0], -0.2), (records[-1], 0.2)):
            ax.bar(hidden + offset, _series([record], field)[0][:-1], width=0.4, label=f"step {record['step']}")
        ax.set_ylim(0, 1)
        ax.set_xlabel("hidden layer")
        ax.set_ylabel(field.replace("_", " "))
        ax.legend(fontsize=7)
    return fig, "saturation.png"


def _training(records: list[dict]):
    """Loss and accuracy of the training batches and, where evaluated, of the test set."""
    fig, axes = plots.figure(1, 2)
    steps = [r["step"] for r in records]
    axes[0].plot(steps, [r["loss"] for r in records], label="train batch")
    axes[1].plot(steps, [r["accuracy"] for r in records], label="train batch")
    tests = [r for r in records if r.get("test_loss") is not None]
    if tests:
        axes[0].plot([r["step"] for r in tests], [r["test_loss"] for r in tests], "o-", label="test")
        axes[1].plot([r["step"] for r in tests], [r["test_accuracy"] for r in tests], "o-", label="test")
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("accuracy")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig, "training.png"
