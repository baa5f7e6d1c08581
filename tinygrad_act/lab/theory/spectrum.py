"""The spectrum of the input-output Jacobian of a deep net at initialization, by free probability.

Pennington, Schoenholz & Ganguli 2017 ("Resurrecting the sigmoid in deep learning through dynamical isometry")
and 2018 ("The emergence of spectral universality in deep networks"). For the hidden stack of the laboratory's
MLP, J = dz_L/dz_1 = D_1 W_2 D_2 W_3 ... D_(L-1) W_L (row-vector convention, up to transposition), with
D_l = diag(phi'(z_l)) and z_l ~ N(0, q_l) (the mean-field variances of theory.predict). In the wide limit the
factors are asymptotically free, so the S-transform of JJ^T is the product of the factors':

    S_JJT(z) = prod_l S_(D_l^2)(z) S_(W W^T)(z),   S_WWT = 1/sigma_w2 (orthogonal), 1/(sigma_w2 (1 + z)) (i.i.d.)

The first two moments follow from two facts about any S-transform, S(0) = 1/m1 and
S'(0)/S(0) = 1 - m2/m1^2 (expand chi = psi^-1 of the moment series psi(x) = m1 x + m2 x^2 + ...). With
v = m2/m1^2 - 1 (the variance of the eigenvalues over their squared mean), a product of S-transforms multiplies
the means and adds the v's:

    mean(lambda) = prod_l sigma_w2_l E[phi'(z_l)^2]                      (the mean-field product of chi)
    v_JJT        = sum_l (E[phi'^4]/E[phi'^2]^2 - 1) + (number of i.i.d. W) * 1     (orthogonal W adds 0)

which is Pennington et al.'s sigma^2_JJT = L (mu2/mu1^2 - 1 - s1) with s1 = 0 (orthogonal) or -1 (i.i.d.),
per layer. "i.i.d." is any initializer that draws the entries independently, Gaussian or uniform (xavier_uniform,
he_uniform, standard): in the wide limit W W^T follows Marchenko-Pastur whatever the entries' law, given their
variance, so the theory is the same and the label says what it assumes. Checks: a deep linear orthogonal net has
every eigenvalue 1 (v = 0); a product of L Gaussian (Ginibre) matrices has Fuss-Catalan moments, m2/m1^2 = L + 1
(v = L).
"""

from __future__ import annotations

import math

import numpy as np

from . import mean_field as theory

# Initializers whose square weight matrices are (scaled) orthogonal; every other one draws i.i.d. entries.
ORTHOGONAL_INITS = ("orthogonal",)


def weights_label(orthogonal: bool) -> str:
    """The free-probability model's name for the weights: "orthogonal", else "i.i.d." (Gaussian or uniform alike)."""
    return "orthogonal" if orthogonal else "i.i.d."


def derivative_moments(act, q: float) -> tuple[float, float]:
    """(E[phi'(z)^2], E[phi'(z)^4]) for z ~ N(0, q): the first two moments of the spectrum of D^2."""
    act = theory._activation(act)
    kinks = theory.kinks(act)
    return (
        theory.expectation(lambda x: act.derivative(x) ** 2, q, kinks),
        theory.expectation(lambda x: act.derivative(x) ** 4, q, kinks),
    )


def jacobian_moments(act, q, sigma_w2, orthogonal: bool) -> dict:
    """Free-probability mean and variance of the eigenvalues lambda = s^2 of JJ^T, J = dz_L/dz_1.

    ``q``: the variances of z_1 .. z_(L-1) (the layers whose phi' enters J); ``sigma_w2``: those of
    W_2 .. W_L (same length); ``orthogonal``: whether the W are scaled orthogonal (else i.i.d. entries).
    Returns mean_s2, var_s2, relative_var (v = var / mean^2) and the per-layer v of D^2.
    """
    q, sigma_w2 = list(q), list(sigma_w2)
    if len(q) != len(sigma_w2):
        raise ValueError(f"need one sigma_w2 per layer of q, got {len(sigma_w2)} and {len(q)}")
    log_mean, relative, per_layer = 0.0, 0.0, []
    for q_l, s_l in zip(q, sigma_w2):
        m1, m2 = derivative_moments(act, min(q_l, theory.Q_INFINITY))
        if not m1 > 0:
            return {"mean_s2": 0.0, "var_s2": 0.0, "relative_var": math.inf, "d2_relative_var": per_layer}
        v_d = m2 / (m1 * m1) - 1.0
        per_layer.append(v_d)
        log_mean += math.log(s_l * m1)
        relative += v_d + (0.0 if orthogonal else 1.0)
    mean = math.exp(log_mean)
    return {"mean_s2": mean, "var_s2": relative * mean * mean, "relative_var": relative, "d2_relative_var": per_layer}


def fuss_catalan(factors: int, k: int) -> float:
    """The k-th moment of (W_1 ... W_n)(W_1 ... W_n)^T for n = ``factors`` square Ginibre matrices of variance 1/N
    in the wide limit: FC_n(k) = binom((n + 1) k, k) / (n k + 1) (Alageel, Penson & Zyczkowski)."""
    return math.comb((factors + 1) * k, k) / (factors * k + 1)


def simulate(act, q, sigma_w2, orthogonal: bool, width: int, rng) -> np.ndarray:
    """Eigenvalues of JJ^T for one draw of J = D_1 W_2 ... D_(L-1) W_L at ``width``: the Monte-Carlo reference.

    D_l = diag(phi'(sqrt(q_l) g)) with fresh Gaussian g per layer, as the free-probability model assumes.
    """
    act = theory._activation(act)
    jacobian = np.eye(width)
    for q_l, s_l in zip(q, sigma_w2):
        d = act.derivative(math.sqrt(q_l) * rng.standard_normal(width))
        if orthogonal:
            w, r = np.linalg.qr(rng.standard_normal((width, width)))
            w = w * np.sign(np.diag(r)) * math.sqrt(s_l)
        else:
            w = rng.standard_normal((width, width)) * math.sqrt(s_l / width)
        jacobian = jacobian @ (d[:, None] * w)
    return np.linalg.svd(jacobian, compute_uv=False) ** 2
