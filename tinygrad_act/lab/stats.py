"""The laboratory's rules, each written once: r, the per-layer factor, the verdict, the verdict shown for a run.

r = ||dL/dz|| at the first hidden layer / ||dL/dz|| at the last hidden layer (z: pre-activations, over the
batch). Vanishing if r < 1e-2, exploding if r > 1e2 or a gradient is not finite, healthy otherwise; the
per-layer factor is the geometric mean r^(1/(L-1)).
"""

from __future__ import annotations

import math

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2


def verdict(ratio: float, nonfinite: int = 0) -> str:
    """Our rule: vanishing if r < 1e-2, exploding if r > 1e2 or any gradient is not finite, else healthy."""
    if nonfinite or not math.isfinite(ratio):
        return "exploding"
    if ratio < VANISHING_BELOW:
        return "vanishing"
    if ratio > EXPLODING_ABOVE:
        return "exploding"
    return "healthy"


def first_last_ratio(record: dict) -> float:
    """r = delta_norm(first hidden layer) / delta_norm(last hidden layer) of one logged record."""
    hidden = record["layers"][:-1]
    first, last = hidden[0]["delta_norm"], hidden[-1]["delta_norm"]
    if first is None or last is None or math.isnan(first) or math.isnan(last):
        return math.nan
    if last == 0:  # no gradient reaches the last hidden layer: 0/0 means nothing flows at all
        return math.inf if first > 0 else 0.0
    return first / last


def per_layer_factor(ratio: float, depth: int) -> float:
    """The geometric-mean factor per hidden layer: r^(1/(L-1)) (nan for one layer or a non-finite r)."""
    if depth < 2 or not math.isfinite(ratio) or ratio <= 0:
        return math.nan
    return ratio ** (1.0 / (depth - 1))


def shown_verdict(summary: dict) -> str | None:
    """The one verdict to show for a run: "diverged" if its training diverged, else the step-0 verdict (from r).

    The step-0 verdict judges the gradients at initialization; a run that later diverged is reported as such
    wherever a single verdict stands for the run (terminal, sweep tables, findings), whatever r was at step 0.
    """
    if summary.get("status") == "diverged" or summary.get("verdict_final") == "diverged":
        return "diverged"
    return summary.get("verdict")
