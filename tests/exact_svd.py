"""The reference for the product SVD: the singular values of a product of float matrices, from the floats' exact
values multiplied and decomposed by mpmath at as many digits as the spectrum spans (plus a margin)."""

import mpmath as mp
import numpy as np


def log10_singular_values(factors, digits: int) -> np.ndarray:
    """log10 of the singular values of factors[-1] @ ... @ factors[0] (a 1-D factor is a diagonal), descending,
    computed at ``digits`` significant digits; -inf for a value below 10^-(digits - 20) of the largest (zero)."""
    with mp.workdps(digits):
        product = None
        for factor in factors:
            factor = np.asarray(factor, dtype=np.float64)
            matrix = mp.diag(factor.tolist()) if factor.ndim == 1 else mp.matrix(factor.tolist())
            product = matrix if product is None else matrix * product
        values = sorted(mp.svd_r(product, compute_uv=False), reverse=True)
        floor = values[0] * mp.mpf(10) ** (20 - digits) if values[0] > 0 else mp.mpf(0)
        return np.array([float(mp.log10(v)) if v > floor else -np.inf for v in values])


def digits_for(log10_values) -> int:
    """Enough digits for a spectrum with these log10 values: its span in decades plus a margin of 40."""
    finite = np.asarray(log10_values)[np.isfinite(log10_values)]
    return int(finite.max() - finite.min() + 40) if finite.size else 40
