"""The correlation map of two inputs through a wide random network, and its depth scale xi_c.

Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, "Deep information propagation", eqs. 4-9. Two inputs whose
pre-activations have variance q* (the variance map's fixed point, ``theory.fixed_point``) and correlation c
go through one layer to correlation

    c' = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*,   u1 = sqrt(q*) z1,  u2 = sqrt(q*) (c z1 + sqrt(1-c^2) z2)

with z1, z2 independent N(0, 1). c = 1 is always a fixed point; its slope there is chi_1. In the ordered phase
(chi_1 < 1) it is the stable one, c* = 1; in the chaotic phase (chi_1 > 1) the stable fixed point is some
c* < 1. Near c* a perturbation of the correlation shrinks by chi_c = sigma_w2 E[phi'(u1) phi'(u2)] (at c*)
per layer, so information about how two inputs differ survives about xi_c = -1 / ln chi_c layers. The paper
finds that a network trains only if it is shallower than about 6 xi_c (its figure 5 and 6).

The 2-D expectation is a product Gauss-Hermite rule (probabilists' weights exp(-z^2/2)); it assumes phi is
smooth (tanh, sigmoid, erf, ...): a kinked phi (ReLU) converges slowly under it.
"""

from __future__ import annotations

import math

import numpy as np

from ...nn import activations
from . import mean_field as theory

_ORDER = 121  # Gauss-Hermite nodes per dimension: E[tanh(u1) tanh(u2)] to ~1e-12 for q* up to ~50
_Z, _W = np.polynomial.hermite_e.hermegauss(_ORDER)
_W = _W / math.sqrt(2 * math.pi)  # a probability rule: weights sum to 1
# Bisection of the fixed point stops when the bracket is this narrow (in c).
C_TOLERANCE = 1e-12


def _pair_expectation(f, q: float, c: float) -> float:
    """E[f(u1) f(u2)] for (u1, u2) Gaussian with variances q and correlation c, by a product rule."""
    s = math.sqrt(q)
    u1 = s * _Z[:, None]
    u2 = s * (c * _Z[:, None] + math.sqrt(max(1.0 - c * c, 0.0)) * _Z[None, :])
    return float(_W @ (f(u1) * f(u2)) @ _W)


def _act_and_q(act, sigma_w2: float, sigma_b2: float):
    """The activation and the variance map's fixed point q* (0 allowed: the ordered phase with sigma_b2 = 0)."""
    act = act if isinstance(act, activations.Activation) else activations.get(act)
    fixed = theory.fixed_point(act, sigma_w2, sigma_b2)
    if fixed.drift == "to_infinity":
        raise ValueError(
            f"the variance map of {act.name} at sigma_w2={sigma_w2:g}, sigma_b2={sigma_b2:g} grows without bound; "
            "the correlation map needs a finite fixed point q*"
        )
    return act, fixed.q_star


def correlation_map(act, c: float, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """The correlation of two inputs' pre-activations one layer on, from correlation ``c``, at q = q*."""
    act, q = _act_and_q(act, sigma_w2, sigma_b2)
    if q == 0:
        raise ValueError(f"q* = 0 for {act.name} at sigma_w2={sigma_w2:g}, sigma_b2=0: every input maps to 0")
    return (sigma_w2 * _pair_expectation(act.forward, q, c) + sigma_b2) / q


def correlation_fixed_point(act, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """The stable fixed point c* of the correlation map: 1 in the ordered phase, < 1 in the chaotic one.

    In the chaotic phase g(c) = (c' - c) / (1 - c) tends to 1 - chi_1 < 0 as c -> 1; at c = 0 it is
    (sigma_w2 E[phi(u1)] E[phi(u2)] + sigma_b2) / q* >= 0 (for odd phi: sigma_b2 / q*, so c* = 0 when
    sigma_b2 = 0). c* is the root of g in [0, 1) (in [-1, 0) if g(0) < 0), found by bisection.
    """
    act, q = _act_and_q(act, sigma_w2, sigma_b2)
    if theory.chi1(act, q, sigma_w2) <= 1.0:
        return 1.0

    def gap(c):
        return ((sigma_w2 * _pair_expectation(act.forward, q, c) + sigma_b2) / q - c) / (1.0 - c)

    lo, hi = (0.0, 1.0) if gap(0.0) >= 0 else (-1.0, 0.0)
    while hi - lo > C_TOLERANCE:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def chi_c(act, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """chi_c = sigma_w2 E[phi'(u1) phi'(u2)] at the stable c* (Schoenholz et al. 2017, eq. 8); chi_1 if c* = 1."""
    act, q = _act_and_q(act, sigma_w2, sigma_b2)
    c = correlation_fixed_point(act, sigma_w2, sigma_b2)
    if c == 1.0:
        return theory.chi1(act, q, sigma_w2)
    return sigma_w2 * _pair_expectation(act.derivative, q, c)


def correlation_depth_scale(act, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """xi_c = -1 / ln chi_c: the depth over which two inputs' correlation approaches c* by a factor e (eq. 9).

    Infinite at criticality (chi_c = 1), where the correlation approaches 1 only like a power of depth.
    """
    chi = chi_c(act, sigma_w2, sigma_b2)
    return math.inf if chi >= 1.0 else -1.0 / math.log(chi)
