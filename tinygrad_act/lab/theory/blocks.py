"""Mean field of the laboratory's hidden blocks with identity skips and normalization, at initialization.

A block is x_l = [x_(l-1) +] phi(N(a_l)), a_l = x_(l-1) W_l + b_l, with N the identity, layer norm (over a unit's
layer, per example) or batch norm (over the batch, per unit), and the skip only where the widths match (not the
first block). In the wide limit, with weights independent of everything they multiply:

- the input of phi is z ~ N(0, q) with q = sigma_w2 Q_(l-1) + sigma_b2 without a norm, and N(0, 1) with one;
- the norm divides the backward signal by s_l, the scale it divided a_l by: s^2 = sigma_w2 Q_(l-1) + sigma_b2
  (layer norm: a unit's pre-activations over the layer) or sigma_w2 V_(l-1) (batch norm: over the batch, which
  removes each unit's mean over the batch, the bias with it);
- Q, the mean square of x over units, m, its mean, and V, a unit's variance over the batch, follow
  Q_l = [Q_(l-1) + 2 m_(l-1) mu_l +] E[phi(z)^2], m_l = [m_(l-1) +] mu_l, V_l = [V_(l-1) +] Var phi(z)
  (mu_l = E[phi(z)]; a skip adds; the examples of a batch treated as independent);
- backward, G_l = ||dL/dx_l||^2 obeys G_(l-1) = G_l (skip + sigma_w2 E[phi'(z)^2] / s_l^2) (s = 1 without a norm),
  and the measured delta, at a_l, is ||delta_l||^2 = E[phi'(z)^2] G_l / s_l^2.

So r^2 = ||delta_1||^2 / ||delta_L||^2 = (E[phi'_1^2] / s_1^2) / (E[phi'_L^2] / s_L^2) prod_(l=2..L) (skip +
sigma_w2 E[phi'_l^2] / s_l^2). Without skip or norm this is mean_field.predict's product of chi. With skips every
factor exceeds 1: the gradient grows toward the input (sub-exponentially for bounded phi, Yang & Schoenholz
2017, "Mean field residual networks: on the edge of chaos"). With layer norm and no skip the factor is
E[phi'(z)^2] / E[phi(z)^2], z ~ N(0, 1), whatever sigma_w2: below 1 for sigmoid, whose mean 1/2 inflates the
scale the norm divides by. With batch norm and no skip it is E[phi'(z)^2] / Var phi(z): pi / (pi - 1) for ReLU,
Yang et al. 2019's large-batch rate ("A mean field theory of batch normalization"), who show that batch norm
without skips makes gradients explode at initialization for every nonlinearity; the examples of a finite batch
are correlated, which this independent-example form leaves out and which makes the explosion faster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import mean_field

NORMS = ("none", "layer", "batch")


def predict_ratio(act, sigma_w2: Sequence[float], residual: bool, norm: str = "none", q0: float = 1.0,
                  sigma_b2: float = 0.0) -> dict:  # fmt: skip
    """Mean-field r = ||delta_1|| / ||delta_L|| at initialization of the blocks above (module docstring).

    ``sigma_w2``: one per hidden layer, input side first (the first one only scales the input); ``q0``: the
    inputs' mean square, which standardized inputs (mean 0 per feature) also have as their variance over the
    batch. Returns ``ratio``, ``per_layer_factor`` (r^(1/(L-1))) and ``q`` (the variance of each phi input).
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")
    act = mean_field._activation(act)
    kinks = mean_field.kinks(act)
    square, mean, variance = float(q0), 0.0, float(q0)  # Q, m, V of the inputs
    qs, gains, scales = [], [], []
    for layer, s in enumerate(sigma_w2):
        skip = residual and layer > 0
        if norm == "none":
            q, scale = s * square + sigma_b2, 1.0
        else:  # a norm whose scale is 0 (every example alike) divides by its eps: nothing finite to predict
            q, scale = 1.0, (s * square + sigma_b2 if norm == "layer" else s * variance) or math.nan
        q = min(q, mean_field.Q_INFINITY)
        mu = mean_field.expectation(act.forward, q, kinks)
        second = mean_field.expectation(lambda x: act.forward(x) ** 2, q, kinks)
        gains.append(mean_field.expectation(lambda x: act.derivative(x) ** 2, q, kinks))
        qs.append(q)
        scales.append(scale)
        if skip:
            square, mean, variance = square + 2 * mean * mu + second, mean + mu, variance + second - mu * mu
        else:
            square, mean, variance = second, mu, second - mu * mu
    log_r2 = _log(gains[0] / scales[0]) - _log(gains[-1] / scales[-1])
    for s, gain, scale in zip(sigma_w2[1:], gains[1:], scales[1:]):
        log_r2 += _log((1.0 if residual else 0.0) + s * gain / scale)
    depth = len(qs)
    ratio = math.exp(log_r2 / 2)
    return {"ratio": ratio, "per_layer_factor": ratio ** (1 / (depth - 1)) if depth > 1 else 1.0, "q": qs}


def deep_factor(act, norm: str) -> float:
    """The per-layer factor of ||delta|| deep in a plain net with a norm, z ~ N(0, 1) after it, whatever sigma_w2:
    sqrt(E[phi'(z)^2] / E[phi(z)^2]) with layer norm, sqrt(E[phi'(z)^2] / Var phi(z)) with batch norm."""
    if norm not in ("layer", "batch"):
        raise ValueError(f"deep_factor needs a norm, layer or batch; got {norm!r}")
    act = mean_field._activation(act)
    kinks = mean_field.kinks(act)
    gain = mean_field.expectation(lambda x: act.derivative(x) ** 2, 1.0, kinks)
    second = mean_field.expectation(lambda x: act.forward(x) ** 2, 1.0, kinks)
    mean = mean_field.expectation(act.forward, 1.0, kinks) if norm == "batch" else 0.0
    return math.sqrt(gain / (second - mean * mean))


def _log(x: float) -> float:
    """ln x, -inf at 0 (a dead layer), nan for nan."""
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
