"""The singular values of the hidden stack's Jacobian J = dz_L/dz_1 at step 0, measured with the engine.

z_l is hidden layer l's pre-activation (its Linear output). For one example, W copies of its z_1 (W = the
width) go through blocks 1 (after its Linear) .. L (up to its Linear) as one batch whose leaf is z_1; one
backward with the identity as the upstream gradient then leaves row i of J in row i of the leaf's gradient
(each row of the batch depends on its own copy only). The model's own modules compute the norms and the
activation, so residual and layer-norm nets are covered; the Linear weights enter as constants, so no weight
gradient is computed (that would double the cost) and no parameter's ``.grad`` is touched.

Batch norm mixes the examples of a batch: here its statistics are those of the whole first batch, held fixed
(the Jacobian of the net as it acts on that batch, without the O(1/batch) path through the statistics); the
running statistics are not changed.

Which examples: the first EXAMPLES of the first training batch. J differs between examples only through the
D_l = diag(phi'(z_l)), whose spectra concentrate at large width, so a few examples pooled show the spectrum;
the cost is linear in their number (one forward and backward of a W-row batch through L - 1 layers each).
"""

from __future__ import annotations

import math

import numpy as np

from ...engine.tensor import Tensor, linear
from ..theory import mean_field as theory
from ..theory import spectrum, spectrum_density

EXAMPLES = 4
MAX_WIDTH = 512  # by default only up to this width: the cost grows like width^3 per layer and example


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


def _norms(model, x: np.ndarray) -> list:
    """Per hidden block, the function that normalizes its z (identity, layer norm, or frozen batch norm)."""
    out, h = [], Tensor(x)
    for block in model.blocks:
        z = linear(h, Tensor(block.linear.weight.data), Tensor(block.linear.bias.data))
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


def jacobian(model, x: np.ndarray, norms=None) -> np.ndarray:
    """J[i, j] = d z_L[i] / d z_1[j] for one example ``x`` (shape (features,)), hidden blocks of equal width."""
    blocks = model.blocks
    norms = norms if norms is not None else [getattr(b.norm, "forward", None) for b in blocks]
    first = blocks[0]
    z1 = x @ first.linear.weight.data + first.linear.bias.data
    width = z1.shape[-1]
    leaf = Tensor(np.repeat(z1[None, :], width, axis=0), requires_grad=True)
    a = first.activation(norms[0](leaf) if norms[0] else leaf)
    h = Tensor(np.repeat(x[None, :], width, axis=0)) + a if first.residual else a
    z = leaf
    for index, block in enumerate(blocks[1:], 1):
        z = linear(h, Tensor(block.linear.weight.data), Tensor(block.linear.bias.data))
        if index == len(blocks) - 1:
            break
        a = block.activation(norms[index](z) if norms[index] else z)
        h = h + a if block.residual else a
    z.backward(np.eye(width, dtype=z.data.dtype))
    return leaf.grad


def measure(model, batch: np.ndarray, examples: int = EXAMPLES) -> dict:
    """Singular values of J for the first ``examples`` rows of ``batch``, pooled, descending, with a summary."""
    with np.errstate(all="ignore"):  # an exploding net gives inf: reported as measured
        norms = _norms(model, batch)
        chosen = batch[:examples]
        matrices = [jacobian(model, row, norms) for row in chosen]
        if not all(np.all(np.isfinite(m)) for m in matrices):  # an SVD of inf or nan has no answer
            return {"applies": False, "reason": "the Jacobian is not finite (the forward pass overflowed)"}
        s = np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) for m in matrices]))[::-1]
        s = s.astype(np.float64)
        return {
            "applies": True,
            "singular_values": [float(v) for v in s],
            "examples": len(chosen),
            "mean_s2": float(np.mean(s**2)),
            "median": float(np.median(s)),
            "max": float(s[0]),
            "min": float(s[-1]),
            "decades": _decades(s),
        }


def _decades(s: np.ndarray) -> float:
    """log10 of the spread of the middle 90% of the singular values (s at 95% over s at 5%): the band's width."""
    high, low = np.quantile(s, 0.95), np.quantile(s, 0.05)
    if not (low > 0 and math.isfinite(high)):
        return math.inf
    return float(math.log10(high / low))


def predict(config, model, dataset_q0: float, sigma_b2: float = 0.0) -> dict:
    """The theory beside the measurement: mean-field mean of s^2, free-probability variance and density of s^2."""
    if config.residual or config.norm != "none":
        return {"applies": False, "reason": "mean-field and free-probability theory here cover plain MLPs"}
    sigma_w2 = [theory.sigma_w2_of_weights(layer.weight.data) for layer in model.layers[:-1]]
    try:
        with np.errstate(all="ignore"):  # an overflowing trajectory q gives inf: the theory says so
            prediction = theory.predict(model.activation, config.depth, sigma_w2, sigma_b2, q0=dataset_q0)
            orthogonal = model.init.name in spectrum.ORTHOGONAL_INITS
            moments = spectrum.jacobian_moments(model.activation, prediction.q[:-1], sigma_w2[1:], orthogonal)
            found = spectrum_density.density(model.activation, prediction.q[:-1], sigma_w2[1:], orthogonal,
                                             moments["mean_s2"], moments["relative_var"])  # fmt: skip
    except Exception as error:  # the laboratory runs even if the theory cannot say anything
        return {"applies": False, "reason": f"{type(error).__name__}: {error}"}
    density = found or {"applies": False, "reason": "the free-probability equations did not converge"}
    return {"applies": True, "weights": "orthogonal" if orthogonal else "gaussian", **moments,
            "chi": list(prediction.chi), "density": density}  # fmt: skip
