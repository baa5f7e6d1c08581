"""The gradient's signal-to-noise ratio across the examples of a batch, per Linear layer, without per-example passes.

The batch loss is the mean of the examples' losses, so example i's own gradient of a layer's weight is
g_i = B · x_i δ_iᵀ (x_i: the layer's input row, δ_i: the row of δ = dL/dz for the batch loss, W of shape
(in, out)), their mean is the batch gradient G = Σ_i x_i δ_iᵀ, and

    grad_snr = ||G||² / mean_i ||g_i - G||²,    mean_i ||g_i - G||² = mean_i ||g_i||² - ||G||²,
    mean_i ||g_i||² = B · Σ_i ||δ_i||² ||x_i||²     (a rank-one matrix: ||x δᵀ|| = ||x|| ||δ||).

So one pass over δ and x (row norms) and the batch gradient's norm, which the probe already has, give it.

The floor of pure noise: ||G||² estimates ||E g||² with a bias, the noise over B. For examples with no common
direction (independent g_i of mean 0) E||G||² = tr Σ / B and E mean||g_i - G||² = tr Σ (B-1)/B, so the SNR sits
near 1/(B-1) (``noise_floor``): a layer there has no detectable signal; only values well above it do.
SNR is scale-free: a layer whose gradient vanished keeps the SNR of the gradient that reaches it (its δ is
small, not noisy), while a layer whose examples pull in different directions has SNR well below 1
(Cockpit's quantities, Schneider et al. 2021, here per layer).

Conventions, so that no value misleads:
- batch of one example: ``None`` (no spread across one example; the ratio is undefined, not infinite);
- every example's gradient exactly zero (nothing reaches the layer, or its input is zero): ``None``; a
  vanished layer is never reported as a noisy one (SNR 0 would say "all noise");
- the difference mean||g_i||² - ||G||² is a cancellation: when it falls below the rounding bound of the
  batch gradient, 2·B·eps(dtype)·mean||g_i||² (G is a sum of B products in the run's dtype), the examples
  agree to within rounding and the noise is taken at that bound, so the SNR is the largest this dtype can
  resolve (a lower bound on the true one, about 1/(2·B·eps)), never negative, never inf;
- a non-finite gradient (an exploding run): nan.
Row norms are accumulated in float64 (float32 squares of a vanished δ would underflow).
With batch normalization the examples are coupled; g_i is then example i's term of the batch gradient.
"""

from __future__ import annotations

import math

import numpy as np


def noise_floor(batch: int) -> float:
    """1/(B-1): about the SNR of B examples whose gradients share no direction at all (pure noise)."""
    return 1.0 / (batch - 1) if batch > 1 else math.nan


_EPS = {}  # dtype -> machine epsilon (np.finfo is slow to call once per layer)


def _row_squared_norms(rows: np.ndarray) -> np.ndarray:
    """||row_i||² for each row, in float64."""
    if rows.dtype != np.float64:
        rows = rows.astype(np.float64)
    rows = rows.reshape(rows.shape[0], -1)
    return np.einsum("ij,ij->i", rows, rows)


def gradient_snr(inputs: np.ndarray, deltas: np.ndarray, grad_squared_norm: float) -> float | None:
    """||mean g||² / mean_i ||g_i - mean g||² over the batch's examples, g_i = B·x_i δ_iᵀ (see the module docstring).

    ``inputs``: the layer's input (batch rows), ``deltas``: dL/dz of its output for the batch-mean loss,
    ``grad_squared_norm``: ||dL/dW||² of the batch. None for a batch of one or when every g_i is zero.
    """
    batch = deltas.shape[0]
    if batch < 2:
        return None
    signal = float(grad_squared_norm)
    per_example = batch * float(np.dot(_row_squared_norms(deltas), _row_squared_norms(inputs)))  # mean_i ||g_i||²
    if not (math.isfinite(per_example) and math.isfinite(signal)):
        return math.nan
    if per_example == 0:
        return None
    eps = _EPS.get(deltas.dtype)
    if eps is None:
        eps = _EPS[deltas.dtype] = float(np.finfo(deltas.dtype).eps)
    noise = max(per_example - signal, 2 * batch * eps * per_example)
    return signal / noise
