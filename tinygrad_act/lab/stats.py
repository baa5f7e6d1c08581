"""The laboratory's rules, each written once: r, the per-layer factor, the verdict, the verdict shown for a run,
and why (the layers' gains).

r = ||dL/dz|| at the first hidden layer / ||dL/dz|| at the last hidden layer (z: pre-activations, over the
batch). Vanishing if r < 1e-2, exploding if r > 1e2 or a gradient is not finite, healthy otherwise; the
per-layer factor is the geometric mean r^(1/(L-1)).

Through time (a recurrent net's record, which carries ``through_time``: one entry per time step), r is
r_time = ||dL/dh_1|| / ||dL/dh_T|| over the batch, with the same verdict rule; the per-step factor is
r_time^(1/(T-1)) (``per_layer_factor`` with T for L).

Why: in mean field, δ_ℓ = (δ_{ℓ+1} W_{ℓ+1}ᵀ) ⊙ f'(z_ℓ) gives ||δ_ℓ||² ≈ ||δ_{ℓ+1}||² · σ_w²(ℓ+1) · E[f'(z_ℓ)²], so
r² ≈ Π_{ℓ=1}^{L-1} σ_w²(ℓ+1) E[f'(z_ℓ)²]: the weights of hidden layers 2..L and the activations of hidden
layers 1..L-1. ``layer_gains`` takes the geometric mean of each over exactly those layers; their product is
the geometric mean of the per-layer products, so r ≈ product^((L-1)/2) and the per-layer factor ≈ √product.
"""

from __future__ import annotations

import math

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2
# The gains explain r when the r they imply is within 10% per layer of it, or a factor 2 overall (finite width
# makes a few layers fluctuate; trained weights no longer independent of the activations break it entirely).
GAINS_AGREE_PER_LAYER = 1.1
GAINS_AGREE_OVERALL = 2.0


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
    """r = delta_norm(first hidden layer) / delta_norm(last hidden layer) of one logged record; for a record
    through time, r_time = delta_norm(first step) / delta_norm(last step)."""
    if record.get("through_time"):
        steps = record["through_time"]
        first, last = steps[0]["delta_norm"], steps[-1]["delta_norm"]
    else:
        hidden = record["layers"][:-1]
        if not hidden:  # the output layer alone (a watched model's recurrent part not followed): no r
            return math.nan
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


def _geometric_mean(values: list[float]) -> float:
    """exp(mean log v); 0 if any v is 0 (a dead layer stops everything), nan if any is negative or not finite."""
    if any(not math.isfinite(v) or v < 0 for v in values):
        return math.nan
    if any(v == 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def layer_gains(record: dict, residual: bool = False, norm: str = "none") -> dict | None:
    """Why r is what it is: the geometric means of the weights' gain σ_w² (hidden layers 2..L) and of the
    activation's gain E[f'(z)²] (layers 1..L-1), their product (the mean factor on ||δ||² per layer) and the r
    it implies, product^((L-1)/2). None for fewer than 2 hidden layers or a record without the gains.

    ``explains_ratio`` says whether the gains explain the record's measured r (GAINS_AGREE_*); if not, the
    ``reason``. With residual connections or normalization (``norm`` other than "none") they never do: the skip
    carries δ past the product, a norm rescales δ.
    """
    hidden = record["layers"][:-1]
    depth = len(hidden)
    if depth < 2:
        return None
    weights = [layer.get("weight_gain") for layer in hidden[1:]]
    activations = [layer.get("activation_gain") for layer in hidden[:-1]]
    if any(v is None for v in weights + activations):
        return None
    weight, activation = _geometric_mean(weights), _geometric_mean(activations)
    product = weight * activation
    gains = {
        "weight": weight,
        "activation": activation,
        "product": product,
        "ratio": product ** ((depth - 1) / 2) if product >= 0 else math.nan,
        "layers": f"weights 2..{depth}, activations 1..{depth - 1}",  # the hidden layers averaged
    }
    reasons = ["the skip connections carry delta past them"] if residual else []
    reasons += [f"{norm} norm rescales delta between layers"] if norm != "none" else []
    if not reasons and not _agrees(gains["ratio"], first_last_ratio(record), depth):
        reasons = ["they imply another r (mean field assumes weights independent of the activations)"]
    gains["explains_ratio"] = not reasons
    if reasons:
        gains["reason"] = " and ".join(reasons)
    return gains


def _agrees(implied: float, measured: float, depth: int) -> bool:
    """Whether the r the gains imply is the measured r (an underflowed r = 0 agrees with a vanishing one)."""
    if measured == 0:
        return implied < VANISHING_BELOW
    if not (0 < measured < math.inf and 0 < implied < math.inf):
        return False
    tolerance = max(math.log(GAINS_AGREE_OVERALL), (depth - 1) * math.log(GAINS_AGREE_PER_LAYER))
    return abs(math.log(implied / measured)) <= tolerance
