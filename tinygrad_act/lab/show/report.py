"""The terminal report of a run: the layer table, the verdict with its why, the theory, the final line and the files.

Numbers are written by format.py (``fmt``, ``pct``), the one way a reader sees them.
"""

from __future__ import annotations

import math

import numpy as np

from ..measure.records import RUN_FILES, layer_name
from ..stats import shown_verdict
from .format import fmt, fmt_log10, number, pct

BAR_WIDTH = 28


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
        f"{'|dW|@' + str(last['step']):>10}  {'sat':>6}  {'dead':>6}  {'σw²@0':>6}  {'E[f′²]@0':>8}  {'product':>7}  "
        f"{'snr@0':>7}  {'snr@' + str(last['step']):>8}  delta@0, log scale ({per_decade:.3g} chars per decade)"
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
        weight_gain, act_gain = number(a.get("weight_gain")), number(a.get("activation_gain"))
        lines.append(
            f"{layer_name(index, count):>5}  {fmt(d, 3):>8}  {fmt(b.get('delta_norm'), 3):>10}  "
            f"{fmt(a['weight_grad_norm'], 3):>8}  {fmt(b['weight_grad_norm'], 3):>10}  {pct(sat):>6}  {pct(dead):>6}  "
            f"{fmt(weight_gain, 3):>6}  {fmt(act_gain, 3):>8}  {fmt(weight_gain * act_gain, 3):>7}  "
            f"{fmt(a.get('grad_snr'), 3):>7}  {fmt(b.get('grad_snr'), 3):>8}  {bar}"
        )
    lines.append(
        "delta = ||dL/dz|| of each layer's pre-activation over the batch, |dW| = ||dL/dW||; sat = fraction of units "
        "in the activation's flat region, dead = units with zero gradient for the whole batch (both at the end);\n"
        "σw² = fan_in·mean(W²) (the weights' gain) x E[f′²] = mean f'(z)² over the batch (the activation's gain) = "
        "product: mean-field theory's factor on delta² per layer (< 1 vanishing, > 1 exploding; delta x √product);\n"
        "snr = ||mean g||² / mean ||g_i - mean g||² of dW over the batch's examples: < 1 the examples mostly "
        "disagree, whatever the size of delta; pure noise gives about 1/(batch-1); '-' = none (zero gradient or "
        "batch of 1)"
    )
    return "\n".join(lines)


def verdict_line(
    verdict: str, ratio: float, factor: float, depth: int, dtype: str = "float64", gains: dict | None = None
) -> str:
    """e.g. ``vanishing: layer 1 receives 1.1e-12 of the gradient of layer 20 (x0.25 per layer)``, then why
    when ``gains`` (stats.layer_gains) are given: ``— why: weights' gain 1 x activation's gain 0.054 = ...``."""
    return _verdict_text(verdict, ratio, factor, depth, dtype) + why_clause(gains)


def why_clause(gains: dict | None) -> str:
    """`` — why: weights' gain W x activation's gain A = P per layer on delta² (...)`` from stats.layer_gains;
    for a run with residual connections or normalization, that the gains do not set r; '' without gains."""
    if not gains:
        return ""
    product = number(gains.get("product"))
    if not gains.get("explains_ratio", True):
        implied = f" (x{fmt(math.sqrt(product), 3)} per layer)" if math.isfinite(product) and product >= 0 else ""
        return f" — the layers' gains{implied} do not explain r here: {gains.get('reason', 'not a plain MLP')}"
    if not math.isfinite(product):
        return ""
    return (
        f" — why: weights' gain {fmt(gains['weight'], 3)} x activation's gain {fmt(gains['activation'], 3)} = "
        f"{fmt(product, 3)} per layer on delta², x{fmt(math.sqrt(product), 3)} on delta "
        f"(geometric means over hidden layers: {gains['layers']})"
    )


def _verdict_text(verdict: str, ratio: float, factor: float, depth: int, dtype: str) -> str:
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
        summary["verdict_final"], summary["ratio_final"], summary["per_layer_factor_final"], depth, dtype,
        summary.get("gain_final"),
    )  # fmt: skip
    return f"{line}  [step {summary['step_final']}, end]"


def jacobian_line(entry: dict | None) -> str | None:
    """``Jacobian dz_L/dz_1 at step 0 (4 examples): rank 49..52 of 128, 316 exact zeros; nonzero s 4.2e-63 .. 1.9
    (median 4.9e-32, middle 90% over 40 decades), mean s^2 0.98, theory 1.00; ...``; None if not measured."""
    if not entry or not entry.get("applies"):
        return None
    logs = np.asarray(entry.get("log10_singular_values", []), dtype=float)
    if "log10_singular_values" not in entry:  # a summary from before the product SVD: its values as they were
        with np.errstate(divide="ignore"):
            logs = np.log10(np.asarray(entry["singular_values"], dtype=float))
        logs = logs[np.isfinite(logs)]
    text = f"Jacobian dz_L/dz_1 at step 0 ({entry['examples']} examples"
    if "rank" in entry:
        low, high = min(entry["rank"]), max(entry["rank"])
        text += f"): rank {low}" + (f"..{high}" if high > low else "") + f" of {entry['width']}"
        text += f", {sum(entry['zeros'])} exact zeros"
        if sum(entry["unresolved"]):
            text += f", {sum(entry['unresolved'])} unresolved (< {fmt_log10(max(entry['log10_bounds']))})"
        text += "; nonzero"
    else:
        text += "):"
    if logs.size:
        text += (f" s {fmt_log10(logs.min())} .. {fmt_log10(logs.max())} (median {fmt_log10(np.median(logs))}, "
                 f"middle 90% over {fmt(entry['decades'], 3)} decades)")  # fmt: skip
    mean = entry.get("log10_mean_s2", math.log10(entry["mean_s2"]) if entry["mean_s2"] > 0 else -math.inf)
    text += f", mean s^2 {fmt_log10(mean, 3)}"
    predicted = entry.get("theory") or {}
    if predicted.get("applies"):
        measured_std = entry.get("std_s2")
        if measured_std is None:
            with np.errstate(all="ignore"):  # inf singular values: the spread is inf
                measured_std = float(np.std(np.square(entry["singular_values"])))
        text += (f", theory {fmt(predicted['mean_s2'], 3)}; std of s^2 {fmt(measured_std, 3)}, theory "
                 f"{fmt(math.sqrt(max(predicted['var_s2'], 0.0)), 3)} ({predicted['weights']} weights)")  # fmt: skip
    return text


def terminal_report(summary: dict, records: list[dict], config) -> str:
    """The table, the verdict with the numbers behind it, theory beside measurement, and where the files are."""
    lines = []
    if records and records[0]["layers"] and records[0]["layers"][0].get("delta_norm") is not None:
        lines += [layer_table(records), ""]
    depth = config.depth
    if "ratio_init" in summary:
        lines.append(
            verdict_line(
                summary["verdict"],
                summary["ratio_init"],
                summary["per_layer_factor_init"],
                depth,
                config.dtype,
                summary.get("gain_init"),
            )  # fmt: skip
            + "  [step 0, at initialization]"
        )
        theory = summary.get("theory")
        if theory and theory.get("applies"):
            lines.append(
                f"  theory (mean field, sigma_w^2={fmt(theory['sigma_w2'], 3)}"
                + (f", sigma_b^2={fmt(theory['sigma_b2'], 3)}" if theory.get("sigma_b2") else "")
                + f"): r = {fmt(theory['ratio'], 3)}, "
                f"x{fmt(theory['per_layer_factor'], 3)} per layer -> {theory['verdict']}"
            )
        if config.act.split(":")[0] == "sigmoid" and depth > 1:
            lines.append(
                f"  bound: sigmoid' <= 0.25, so {depth - 1} layers shrink the gradient by up to "
                f"0.25^{depth - 1} = {0.25 ** (depth - 1):.1e} (times the weights' own gain)"
            )
        lines.append(final_line(summary, depth, config.dtype))
    if jacobian_line(summary.get("jacobian")):
        lines.append(jacobian_line(summary.get("jacobian")))
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
    listed = summary.get("files") or list(RUN_FILES)
    lines.append(f"files: {summary['path']}/ ({', '.join(listed)})")
    return "\n".join(lines)
