"""Theory beside the gradient measured through time: what W_hh and the cell's gates say about how ||dL/dh_t|| changes
from the last step T back to the first.

Backpropagation through time multiplies δ_t = dL/dh_t by one Jacobian per step. For the Elman RNN,
h_(t+1) = f(z_(t+1)), z_(t+1) = W_ih x + W_hh h_t + b (PyTorch's layout, W_hh of shape (H, H)):

    δ_t = W_hhᵀ (f'(z_(t+1)) ⊙ δ_(t+1))      (plus the readout's own gradient at t, none before T here)

- Pascanu, Mikolov & Bengio 2013 (section 3.2): ||∂h_(t+1)/∂h_t|| <= ||W_hh|| γ, with γ the bound on |f'|
  (tanh, ReLU: 1). If λ_1 = ||W_hh|| (the largest singular value) is below 1/γ, the gradient from T back to t
  shrinks at least like (λ_1 γ)^(T - t): vanishing is certain (a sufficient condition). λ_1 > 1/γ is necessary for
  exploding, not sufficient. ``pascanu`` gives the condition and the bound.
- The linearized per-step factor: for a δ spread over the units, E||W_hhᵀ (f' ⊙ δ)||² ≈ σ_w² E[f'²] ||δ||², with
  σ_w² = H mean(W_hh²) (mean field, as lab/stats.py's gains for depth) and E[f'(z_s)²] measured at each step s
  (the probe's ``activation_gain``). So ||δ_t|| / ||δ_T|| ≈ Π_(s=t+1..T) sqrt(σ_w² E[f'(z_s)²])
  (``rnn_profile``). It assumes W_hh independent of the states it multiplies: exact in expectation for i.i.d.
  weights at initialization, a guess for orthogonal or identity W_hh, whose single matrix repeats every step.
- Gated cells: the LSTM's cell state is carried by c_(t+1) = f_(t+1) ⊙ c_t + i ⊙ g, so the direct path gives
  ∂c_T/∂c_t = diag(Π_(s=t+1..T) f_s): the product of forget gates is the carry (Hochreiter & Schmidhuber 1997's
  constant error carousel when f = 1; Gers et al. 2000). The GRU's h_(t+1) = (1 - z) ⊙ n + z ⊙ h_t carries h by the
  update gates z alike. ``carry_profile`` is the root mean square over examples and units of that product, the
  factor by which a δ spread over the units shrinks along the carry: the LSTM's is compared with its cell state's
  gradient, the GRU's with its hidden state's.

Everything here is computed from arrays and numbers the caller measured; nothing is trained.
"""

from __future__ import annotations

import math

import numpy as np

from .. import stats

# The gate whose product carries each gated cell's state (nn/recurrent.py's names), and what it carries.
CARRY_GATE = {"lstm": "forget", "gru": "update"}
CARRIED_STATE = {"lstm": "cell", "gru": "hidden"}


def weight_blocks(weight_hh: np.ndarray, gates: tuple) -> dict:
    """Each gate's (H, H) block of W_hh (rows in PyTorch's gate order), by gate name; an RNN's is ``recurrent``."""
    weight_hh = np.asarray(weight_hh, dtype=np.float64)
    hidden = weight_hh.shape[1]
    if weight_hh.shape[0] != hidden * len(gates):
        raise ValueError(f"W_hh of shape {weight_hh.shape} does not hold {len(gates)} blocks of {hidden} rows")
    return {name: weight_hh[i * hidden : (i + 1) * hidden] for i, name in enumerate(gates)}


def spectral(weight: np.ndarray) -> dict:
    """{"spectral_radius": max |eigenvalue|, "spectral_norm": the largest singular value} of a square matrix."""
    weight = np.asarray(weight, dtype=np.float64)
    if not np.all(np.isfinite(weight)):
        return {"spectral_radius": math.nan, "spectral_norm": math.nan}
    return {
        "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(weight)))),
        "spectral_norm": float(np.linalg.norm(weight, 2)),
    }


def sigma_w2(weight: np.ndarray) -> float:
    """σ_w² of a square recurrent block: H mean(W²) (the fan-in times the entries' second moment)."""
    weight = np.asarray(weight, dtype=np.float64)
    return float(weight.shape[1] * np.mean(weight * weight))


def pascanu(spectral_norm: float, gamma: float, steps: int) -> dict:
    """Pascanu et al. 2013's condition for ``steps`` steps: λ_1 against 1/γ, and the bound (λ_1 γ)^(T-1) on
    ||∂h_T/∂h_1|| (as log10: it over- or underflows for long sequences)."""
    product = spectral_norm * gamma
    log10_bound = (steps - 1) * math.log10(product) if product > 0 else -math.inf
    return {
        "largest_singular_value": spectral_norm,
        "gamma": gamma,
        "threshold": 1.0 / gamma,
        # below the threshold the gradient must vanish; above it, it may explode (necessary, not sufficient)
        "condition": "vanishing" if product < 1 else "exploding possible",
        "log10_bound": log10_bound,
    }


def rnn_profile(sigma_w2_value: float, activation_gains) -> np.ndarray:
    """Predicted ||δ_t|| / ||δ_T|| for t = 1..T from σ_w² and the measured E[f'(z_t)²] of each step t = 1..T:
    Π_(s=t+1..T) sqrt(σ_w² E[f'(z_s)²]) (the module docstring); 0 where a step's gain is 0 (every unit off)."""
    gains = np.asarray(activation_gains, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logs = 0.5 * np.log(sigma_w2_value * gains[1:])  # the factor of step s applies from s back to s - 1
    tail = np.concatenate([np.cumsum(logs[::-1])[::-1], [0.0]])
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(tail)


def carry_profile(gates: np.ndarray) -> np.ndarray:
    """The carry from each step t = 1..T to T: the root mean square over examples and units of Π_(s=t+1..T) g_s,
    for carry-gate values ``gates`` of shape (T, batch, H) (the LSTM's forget gates, the GRU's update gates).

    The products are kept as a shared scale (its log10) times values whose largest is 1, so a product of hundreds of
    gates never underflows as a whole; a value below 1e-308 of the largest one is lost, which changes the root mean
    square by less than 1e-600 of it. A gate shut exactly (0) stops the carry: 0 from there on."""
    gates = np.asarray(gates, dtype=np.float64).reshape(len(gates), -1)
    carry = np.empty(len(gates))
    carry[-1] = 1.0
    product, log_scale = np.ones(gates.shape[1]), 0.0
    for t in range(len(gates) - 2, -1, -1):
        product *= gates[t + 1]
        largest = float(np.max(product))
        if largest == 0.0:
            carry[: t + 1] = 0.0
            break
        product /= largest
        log_scale += math.log10(largest)
        with np.errstate(under="ignore"):
            carry[t] = 10.0 ** (log_scale + 0.5 * math.log10(float(np.mean(product * product))))
    return carry


def predict(cell: str, *, sigma_w2_value=None, spectral_norm=None, gamma=1.0, step_gains=None, carry=None) -> dict:
    """The theory of a recurrent layer from what was measured at one step: the predicted profile
    ||δ_t|| / ||δ_T||, t = 1..T, with its ratio (t = 1), per-step factor and verdict (stats.verdict).

    An RNN (``cell`` tanh or relu): the linearized profile from W_hh's σ_w² and ``step_gains``, the measured
    E[f'(z_t)²] of each step, and Pascanu's condition from its ``spectral_norm`` and γ. A gated cell: its carry
    (``carry``, the carry_profile of its measured gates), compared with the state CARRIED_STATE names.
    """
    if cell in CARRY_GATE:
        if carry is None or len(carry) < 2:
            return {"applies": False, "reason": "no carry measured at step 0"}
        profile = np.asarray(carry, dtype=np.float64)
        entry = {"applies": True, "kind": "carry", "gate": CARRY_GATE[cell], "compares_with": CARRIED_STATE[cell]}
    else:
        gains = np.asarray(step_gains if step_gains is not None else [], dtype=np.float64)
        if len(gains) < 2 or not np.all(np.isfinite(gains)) or sigma_w2_value is None:
            return {"applies": False, "reason": "no E[f'^2] per step measured at step 0"}
        profile = rnn_profile(sigma_w2_value, gains)
        entry = {
            "applies": True,
            "kind": "linearized",
            "compares_with": "hidden",
            "sigma_w2": sigma_w2_value,
            "activation_gain": float(np.mean(gains[1:])),
            "pascanu": pascanu(spectral_norm, gamma, len(gains)),
        }
    ratio = float(profile[0])
    entry.update(
        ratio=ratio,
        factor=stats.per_layer_factor(ratio, len(profile)),
        verdict=stats.verdict(ratio),
        profile=[float(v) for v in profile],
    )
    return entry
