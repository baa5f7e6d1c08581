"""The singular values of the hidden stack's Jacobian J = dz_L/dz_1 at step 0, measured with the engine.

z_l is hidden layer l's pre-activation (its Linear output) and h_l its block's output. J is a product of one
factor per block, measured one block at a time: dh_1/dz_1, dh_l/dh_(l-1) for blocks 2 .. L-1, and
dz_L/dh_(L-1) = W_L^T (for a plain MLP, diag(phi'(z_1)), then diag(phi'(z_l)) W_l^T). For one example, W copies
of the block's input (W = the width) go through the block as one batch whose leaf is that input; one backward
with the identity as the upstream gradient leaves row i of the factor in row i of the leaf's gradient. The
model's own modules compute the norms and the activation, so residual and layer-norm nets are covered; the
blocks run in float64 whatever the model's dtype (a float32 net's Jacobian at its float32 weights), the Linear
weights enter as constants and no parameter's ``.grad`` is changed. The singular values of the product come
from lab/product_svd.py, which keeps it factored: each is accurate to its own relative 1e-7 however many
decades the spectrum spans (a dense product and SVD resolves only about 16 decades below the largest), exact
zeros (rank lost to dead units, phi' = 0) are counted as such, and values it cannot resolve (a layer norm's
exactly null direction) are given as upper bounds.

Batch norm mixes the examples of a batch: here its statistics are those of the whole first batch, held fixed
(the Jacobian of the net as it acts on that batch, without the O(1/batch) path through the statistics); the
running statistics are not changed.

Which examples: the first EXAMPLES of the first training batch. J differs between examples only through the
D_l = diag(phi'(z_l)), whose spectra concentrate at large width, so a few examples pooled show the spectrum;
the cost is linear in their number (per block: a W-row forward and backward, a product and a QR of W x W).

summary.json's ``jacobian`` (``measure``): ``log10_singular_values``, every resolved nonzero value (pooled,
descending, log10: values below float64's 2.2e-308 keep their digits); ``singular_values``, the same as numbers
(down to 2.2e-308; inf above 1.8e308, where an exploding net's product overflows); per example ``rank``
(nonzero values resolved), ``zeros`` (exact zeros) and ``unresolved`` (values known only by a bound), which add
up to the width; ``log10_bounds``, the unresolved values' upper bounds (log10); ``relative_error``, the largest
estimated relative error of a resolved value; ``mean_s2``, ``log10_mean_s2`` and ``std_s2`` over all values
(zeros and unresolved ones as 0; the floats are 0 only if every s < 1e-154); over the nonzero resolved values
``median``, ``max``, ``min`` (null below float64's range) and ``decades`` (log10 of their 95th over their 5th
percentile); ``examples``, ``width``.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from ...engine.tensor import Tensor, linear
from ..theory import mean_field as theory
from ..theory import spectrum, spectrum_density
from . import product_svd

EXAMPLES = 4
MAX_WIDTH = 512  # by default only up to this width: the cost grows like width^3 per layer and example
LOWEST_LOG10 = math.log10(np.finfo(np.float64).tiny)  # values below this are kept as log10 only


def wanted(config) -> bool:
    """Whether a run measures J: ``config.jacobian`` if set, else when depth >= 2 and width <= MAX_WIDTH."""
    if config.jacobian is not None:
        return bool(config.jacobian) and config.depth >= 2
    return config.depth >= 2 and config.width <= MAX_WIDTH


def not_measured(config) -> dict | None:
    """The summary entry of a run that does not measure J (None if it does)."""
    if config.depth < 2:
        return {"applies": False, "reason": "one hidden layer: dz_L/dz_1 is the identity (L = 1)"}
    if not wanted(config):
        reason = "--no-jacobian" if config.jacobian is False else f"width {config.width} > {MAX_WIDTH} (--jacobian)"
        return {"applies": False, "reason": reason}
    return None


def _frozen_batch_norm(norm, stats_):
    """Batch norm applied with fixed statistics (mean, variance) instead of the batch's, through its own weights."""
    mean, variance = stats_
    return lambda z: (z - mean) * ((variance + norm.eps) ** -0.5) * norm.weight + norm.bias


def _constant(tensor) -> Tensor:
    """A float64 copy of a parameter, as a constant (no gradient flows to it)."""
    return Tensor(np.asarray(tensor.data, dtype=np.float64))


def _norms(model, x: np.ndarray) -> list:
    """Per hidden block, the function that normalizes its z (identity, layer norm, or frozen batch norm)."""
    out, h = [], Tensor(np.asarray(x, dtype=np.float64))
    for block in model.blocks:
        z = linear(h, _constant(block.linear.weight), _constant(block.linear.bias))
        if block.norm is None:
            norm = None
        elif hasattr(block.norm, "running_mean"):
            norm = _frozen_batch_norm(block.norm, (z.data.mean(axis=0), z.data.var(axis=0)))
        else:
            norm = block.norm.forward
        out.append(norm)
        a = block.activation(norm(z) if norm else z)
        h = h + a if block.residual else a
    return out


@contextlib.contextmanager
def gradients_kept(model):
    """The norms' weights take part in the backward passes: their ``.grad`` is put back as it was."""
    parameters = model.parameters()
    kept = [p.grad for p in parameters]
    try:
        yield
    finally:
        for p, grad in zip(parameters, kept):
            p.grad = grad


def factors(model, x: np.ndarray, norms=None) -> list[np.ndarray]:
    """J's factors for one example ``x`` (shape (features,)), input side first, float64: J = F[-1] @ ... @ F[0]."""
    blocks = model.blocks
    if len(blocks) < 2:
        raise ValueError(f"dz_L/dz_1 needs at least 2 hidden layers, the model has {len(blocks)}")
    norms = norms if norms is not None else [getattr(b.norm, "forward", None) for b in blocks]
    x = np.asarray(x, dtype=np.float64)
    start = x @ _constant(blocks[0].linear.weight).data + _constant(blocks[0].linear.bias).data
    out = []
    with gradients_kept(model):
        for index, block in enumerate(blocks):
            width = start.shape[-1]
            leaf = Tensor(np.repeat(start[None, :], width, axis=0), requires_grad=True)
            if index == 0:  # z_1 -> h_1: a residual first block adds x, which does not depend on z_1
                z, skip = leaf, Tensor(np.repeat(x[None, :], width, axis=0))
            else:  # h_(l-1) -> z_l, then (but for the last) -> h_l
                z, skip = linear(leaf, _constant(block.linear.weight), _constant(block.linear.bias)), leaf
            if index < len(blocks) - 1:
                a = block.activation(norms[index](z) if norms[index] else z)
                z = skip + a if block.residual else a
            z.backward(np.eye(width))
            out.append(leaf.grad)
            start = z.data[0]
    return out


def jacobian(model, x: np.ndarray, norms=None) -> np.ndarray:
    """J[i, j] = d z_L[i] / d z_1[j] for one example ``x`` (shape (features,)), hidden blocks of equal width."""
    return np.linalg.multi_dot(factors(model, x, norms)[::-1])


def measure(model, batch: np.ndarray, examples: int = EXAMPLES) -> dict:
    """Singular values of J for the first ``examples`` rows of ``batch``, pooled, with a summary (module doc)."""
    with np.errstate(all="ignore"):  # an exploding net gives inf: reported as measured
        norms = _norms(model, batch)
        chains = [factors(model, row, norms) for row in batch[:examples]]
    if not all(np.all(np.isfinite(f)) for chain in chains for f in chain):  # no singular values of inf or nan
        return {"applies": False, "reason": "the Jacobian is not finite (the forward pass overflowed)"}
    spectra = [product_svd.singular_values(chain) for chain in chains]
    return summarize(spectra)


def summarize(spectra: list) -> dict:
    """summary["jacobian"] from the product_svd.Spectrum of each example (fields: the module's docstring)."""
    logs = np.sort(np.concatenate([s.log10 for s in spectra]))[::-1]
    width = len(spectra[0].log10) + len(spectra[0].bounds) + spectra[0].zeros
    count = width * len(spectra)
    with np.errstate(over="ignore", under="ignore"):  # s^2 relative to the largest, zeros included
        values = np.power(10.0, logs)
        scaled = np.zeros(count)
        scaled[: logs.size] = np.power(10.0, 2.0 * (logs - logs[0])) if logs.size else []
        log10_mean_s2 = float(2.0 * logs[0] + math.log10(np.mean(scaled))) if logs.size else -math.inf
        mean_s2 = float(np.power(10.0, log10_mean_s2))
        spread = float(np.std(scaled))
        std_s2 = float(np.power(10.0, 2.0 * logs[0] + math.log10(spread))) if spread > 0 else 0.0
    representable = logs >= LOWEST_LOG10

    def number(log10_value):  # a summary value as a float, or None below float64's range
        return float(np.power(10.0, log10_value)) if log10_value >= LOWEST_LOG10 else None

    return {
        "applies": True,
        "singular_values": [float(v) for v in values[representable]],
        "log10_singular_values": [float(v) for v in logs],
        "examples": len(spectra),
        "width": width,
        "rank": [len(s.log10) for s in spectra],
        "zeros": [int(s.zeros) for s in spectra],
        "unresolved": [len(s.bounds) for s in spectra],
        "log10_bounds": [float(v) for v in np.sort(np.concatenate([s.bounds for s in spectra]))[::-1]],
        "relative_error": float(max(s.relative_error for s in spectra)),
        "mean_s2": mean_s2,
        "log10_mean_s2": log10_mean_s2,
        "std_s2": std_s2,
        "median": number(float(np.median(logs))) if logs.size else None,
        "max": number(float(logs[0])) if logs.size else None,
        "min": number(float(logs[-1])) if logs.size else None,
        "decades": _decades(logs),
    }


def _decades(log10_values: np.ndarray) -> float:
    """The width in decades of the middle 90% of the nonzero singular values (95th over 5th percentile)."""
    if not len(log10_values):
        return math.nan
    high, low = np.quantile(log10_values, 0.95), np.quantile(log10_values, 0.05)
    return float(high - low) if math.isfinite(high) else math.inf


def predict(config, activation, init, sigma_w2: list, dataset_q0: float, sigma_b2: float = 0.0) -> dict:
    """The theory beside the measurement: mean-field mean of s^2, free-probability variance and density of s^2, for
    the model's ``activation`` and ``init`` and its hidden layers' σ_w² (``sigma_w2``, input side first). Of the
    configuration and numbers only, never the model's arrays: a run computes it aside while training changes them."""
    if config.residual or config.norm != "none":
        return {"applies": False, "reason": "mean-field and free-probability theory here cover plain MLPs"}
    try:
        with np.errstate(all="ignore"):  # an overflowing trajectory q gives inf: the theory says so
            prediction = theory.predict(activation, config.depth, sigma_w2, sigma_b2, q0=dataset_q0)
            orthogonal = init.name in spectrum.ORTHOGONAL_INITS
            moments = spectrum.jacobian_moments(activation, prediction.q[:-1], sigma_w2[1:], orthogonal)
            found = spectrum_density.density(activation, prediction.q[:-1], sigma_w2[1:], orthogonal,
                                             moments["mean_s2"], moments["relative_var"])  # fmt: skip
    except Exception as error:  # the laboratory runs even if the theory cannot say anything
        return {"applies": False, "reason": f"{type(error).__name__}: {error}"}
    density = found or {"applies": False, "reason": "the free-probability equations did not converge"}
    return {"applies": True, "weights": "orthogonal" if orthogonal else "i.i.d.", **moments,
            "chi": list(prediction.chi), "density": density}  # fmt: skip
