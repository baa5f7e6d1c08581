"""The free-probability density of the eigenvalues lambda = s^2 of JJ^T, J = dz_L/dz_1 (lab/spectrum.py's model).

Pennington, Schoenholz & Ganguli 2018 ("The emergence of spectral universality in deep networks"). With the
moment generating function psi_mu(z) = E[z t / (1 - z t)] of a spectrum mu, its inverse chi_mu and the
S-transform S_mu(z) = chi_mu(z) (1 + z) / z, freeness gives S_JJT = prod_l S_(D_l^2) S_(W_l W_l^T), so

    chi_JJT(psi) = psi / (1 + psi) * prod_l [y_l (1 + psi) / psi] * prod_l S_W(psi),   psi_(D_l^2)(y_l) = psi

with S_W = 1/sigma_w2 (orthogonal) or 1 / (sigma_w2 (1 + psi)) (i.i.d. entries, square). For a point x + i eps just
above the real axis, psi = psi_JJT(1 / (x + i eps)) solves chi_JJT(psi) = 1 / (x + i eps); the Stieltjes
transform is G = (1 + psi) / (x + i eps) and the density rho(x) = -Im G / pi. The unknowns (psi, y_1 .. y_L)
are found by Newton's method (the Jacobian is an arrow: each y_l couples to psi only, so a step costs O(L)),
continued from beyond the top of the spectrum (where psi ~ mean * z) downwards along a log grid of x.

Each D_l^2 = phi'(h)^2, h ~ N(0, q_l), is discretised at NODES equal-probability quantiles of h; layers with
the same q (to QDIGITS digits) share one unknown y (at depth, q settles at its fixed point); the sigma_w2 only
scale chi, so they enter as one sum of logs. eps / x is a fraction of the grid's step, and the density at
eps and 2 eps are combined (Richardson) so that the leak of the Lorentzian smoothing cancels to first order;
the remaining error falls like the step squared (a point mass -- a deep linear orthogonal net -- still shows
as a peak narrower than the grid, its mass not resolved). The integral over the grid ("mass") is below 1 where
eigenvalues are 0 (ReLU: half of them) or below LOWEST times the mean (i.i.d. weights at depth).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from . import mean_field as theory
from . import memo

NODES = 64  # quantiles of h per distinct layer
POINTS = 240  # grid points in x at least ...
STEP = 0.15  # ... and at most this far apart in ln x (the density's error grows like the step squared) ...
MAX_POINTS = 600  # ... up to this many
LOWEST = 1e-32  # lambda over the mean: the grid's floor (lower, MAX_POINTS get too coarse: mass 1.05 at 1e-100)
NEWTON_STEPS = 60
BISECTIONS = 10  # a continuation step that fails is halved up to this often
WARMUP = 6  # continuation points above the grid, each half the one before
BELOW = 1e-6  # |1 + psi| below which a point counts as below the whole spectrum (where Newton loses digits)
TOLERANCE = 1e-9
QDIGITS = 3  # layers whose q agree to this many digits share one D^2 (the change of phi'^2 is ~1e-3 or less)
EPS_STEPS = 0.2  # eps / x in grid steps (in log x): smaller and the continuation from point to point jumps branch
_remembered = memo.Remembered(32)  # density's answers (a run asks once; a test session asks for the same runs again)
# _solve's numbers as 0-d arrays: numpy converts a Python number anew at every operation (~0.3 us each, a sixth of
# _solve's time on its small arrays); these hold the same values, converted once
_ONE, _NODES, _I = np.array(1.0 + 0j), np.array(NODES + 0j), np.array(1j)
_PI, _TURN, _TOLERANCE = np.array(math.pi), np.array(2 * math.pi), np.array(TOLERANCE)


def _quantiles(act, q: float) -> np.ndarray:
    """phi'(h)^2 at NODES equal-probability quantile midpoints of h ~ N(0, q)."""
    z = np.array([NormalDist().inv_cdf((j + 0.5) / NODES) for j in range(NODES)])
    return np.asarray(act.derivative(math.sqrt(q) * z), dtype=np.float64) ** 2


def _layers(act, q, sigma_w2):
    """(atoms of D^2, one row per distinct q to QDIGITS significant digits; multiplicity per row; sum log sigma_w2).

    The sigma_w2 only scale: S_W(psi) = 1/sigma_w2 times a function of psi alone, so they enter as one sum.
    """
    keys = {}
    for q_l in q:
        key = float(f"{min(q_l, theory.Q_INFINITY):.{QDIGITS}g}")
        keys[key] = keys.get(key, 0) + 1
    atoms, which = np.unique(np.array([_quantiles(act, k) for k in keys]), axis=0, return_inverse=True)
    count = np.bincount(which.ravel(), weights=list(keys.values()))  # equal rows (ReLU's 0/1 at any q) merged
    return atoms, count, float(np.sum(np.log(sigma_w2)))


def _model(atoms, log_sigma, count, iid: bool) -> tuple:
    """_solve's constants of one density, cast to complex once (not at every point and step): atoms, count,
    (1, *count), 1 - total, total and log_sigma as 0-d arrays, iid."""
    total = float(count.sum())
    weights = np.concatenate([[1.0], count])  # 1 / psi and count / y in one division
    numbers = (np.array(v, dtype=complex) for v in (1.0 - total, total, log_sigma))
    return atoms.astype(complex), count, weights.astype(complex), *numbers, iid


def _solve(x, psi, y, model: tuple):
    """Newton for (psi, y) at the complex points x (shape (k,)) from the guesses psi (k,) and y (k, rows), with the
    constants of ``_model``; returns them, or None if it does not converge."""
    atoms, count, weights, outside, total, log_sigma, iid = model
    log_target = -np.log(x)
    # psi and y side by side in one array (psi, y: views of it), so that one log, one division, one step and one
    # test serve both; the buffers below are filled in place at every step
    unknowns = np.concatenate([psi[:, None], y], axis=1)
    psi, y = unknowns[:, 0], unknowns[:, 1:]
    step, quotients = np.empty_like(unknowns), np.empty((2, *y.shape), complex)
    sums = np.empty((2, *y.shape, NODES), complex)
    for _ in range(NEWTON_STEPS):
        inverse = np.multiply(y[:, :, None], atoms, out=sums[0])
        np.divide(_ONE, np.subtract(_ONE, inverse, out=inverse), out=inverse)  # 1 / (1 - y t)
        np.multiply(np.multiply(atoms, inverse, out=sums[1]), inverse, out=sums[1])  # t / (1 - y t)^2
        # psi of each D^2 at y, E[u / (1 - u)] with u = y t, is E[1 / (1 - u)] - 1; its d/dy is E[t / (1 - u)^2]
        psi_d, dpsi_d = sums.sum(axis=3) / _NODES
        psi_d -= _ONE
        logs, log1p_psi, reciprocals = np.log(unknowns), np.log1p(psi), weights / unknowns
        log_chi = outside * (logs[:, 0] - log1p_psi) + logs[:, 1:] @ count - log_sigma
        one_psi = _ONE + psi
        a = outside * (reciprocals[:, 0] - _ONE / one_psi)
        if iid:
            log_chi, a = log_chi - total * log1p_psi, a - total / one_psi
        r0 = log_chi - log_target
        r0 = r0.real + _I * ((r0.imag + _PI) % _TURN - _PI)  # the logs' branches
        r = psi_d - psi[:, None]
        b = reciprocals[:, 1:]  # count / y
        np.divide(b * r, dpsi_d, out=quotients[0])
        np.divide(b, dpsi_d, out=quotients[1])
        numerator, denominator = quotients.sum(axis=2)
        d_psi = np.divide(-r0 + numerator, a + denominator, out=step[:, 0])
        np.divide(d_psi[:, None] - r, dpsi_d, out=step[:, 1:])  # d_y
        unknowns += step
        if (np.abs(step) <= _TOLERANCE * np.abs(unknowns)).all():
            return psi, y
    return None


def _continue(start, end, state, model, depth: int):
    """(psi, y) at ``end`` from the solution ``state`` at ``start``: directly, or else through the geometric
    midpoint (halving the step up to ``depth`` times, where psi changes fast); None if that does not help."""
    found = _solve(end, *state, model)
    if found is not None and np.isfinite(found[0]).all() and ((1.0 + found[0]) / end).imag.max() <= 0.0:
        return found  # a density -Im G / pi < 0 would be the wrong branch of the equations
    if depth == 0:
        return None
    middle = np.sqrt(start * end)
    halfway = _continue(start, middle, state, model, depth - 1)
    return None if halfway is None else _continue(middle, end, halfway, model, depth - 1)


def _smoothed(grid, eps: np.ndarray, mean: float, atoms, log_sigma, count, iid: bool):
    """-Im G(x (1 + i eps)) / pi along ``grid`` (descending) for each eps (rows), continued from beyond the
    grid's top; None if Newton fails."""
    lead = grid[0] * 2.0 ** np.arange(WARMUP, 0, -1)  # from far above the spectrum down to the grid's top
    psi = np.full(len(eps), mean / lead[0], dtype=complex)  # psi ~ mean z far above
    y = np.tile(mean / lead[0] / atoms.mean(axis=1), (len(eps), 1)).astype(complex)
    shift, model = 1.0 + 1j * eps, _model(atoms, log_sigma, count, iid)
    rho, previous = np.zeros((len(eps), len(grid))), lead[0] * shift
    for i, x in enumerate(np.concatenate([lead, grid])):
        point = x * shift
        if (np.abs(1.0 + psi) < BELOW).all():  # below the spectrum: psi = -1 + x E[1/lambda] + ..., and 1 + psi
            break  # underflows in the logs: nothing more to find
        found = _continue(previous, point, (psi, y), model, BISECTIONS)
        if found is None:
            return None
        (psi, y), previous = found, point
        if i >= WARMUP:
            rho[:, i - WARMUP] = -((1.0 + psi) / point).imag / math.pi
    return rho


def density(act, q, sigma_w2, orthogonal: bool, mean: float, relative_var: float) -> dict | None:
    """The density of lambda = s^2 on a log grid: {"applies", "s2": [...], "density": [...], "mass": integral}.

    ``q``, ``sigma_w2``: as spectrum.jacobian_moments; ``mean`` and ``relative_var``: its mean_s2 and
    relative_var (they place the grid). None where Newton fails (the caller says the theory is not drawn).
    A built-in activation's answers are remembered (the latest 32): the same inputs give the same numbers,
    a fresh copy each time, so a caller may change its own.
    """
    act = theory._activation(act)
    key = (tuple(map(float, q)), tuple(map(float, sigma_w2)), bool(orthogonal), float(mean), float(relative_var))
    found = _remembered(act, key, lambda: _density(act, q, sigma_w2, orthogonal, mean, relative_var))
    return None if found is None else {**found, "s2": list(found["s2"]), "density": list(found["density"])}


def _density(act, q, sigma_w2, orthogonal: bool, mean: float, relative_var: float) -> dict | None:
    """density's computation (``act`` an Activation)."""
    atoms, count, log_sigma = _layers(act, q, sigma_w2)
    if not (mean > 0 and math.isfinite(mean) and np.all(atoms.mean(axis=1) > 0) and math.isfinite(relative_var)):
        return None
    v = max(relative_var, 0.0)
    top = math.log(1.0 + 4.0 * math.sqrt(v) + math.e * v) + 0.05
    bottom = max(math.log(LOWEST), -(top + 6.0 * v))
    points = int(min(MAX_POINTS, max(POINTS, (top - bottom) / STEP)))
    grid = mean * np.exp(np.linspace(top, bottom, points))
    eps = EPS_STEPS * (top - bottom) / points
    with np.errstate(all="ignore"):
        both = _smoothed(grid, np.array([eps, 2 * eps]), mean, atoms, log_sigma, count, not orthogonal)
    if both is None:
        return None
    rho = np.maximum(2.0 * both[0] - both[1], 0.0)  # Richardson: the O(eps) leak of the mass below cancels
    s2, rho = grid[::-1], rho[::-1]
    mass = float(np.sum(0.5 * (rho[1:] + rho[:-1]) * np.diff(s2)))
    return {"applies": True, "s2": [float(v) for v in s2], "density": [float(v) for v in rho], "mass": mass}


def cdf(entry: dict, s2: np.ndarray) -> np.ndarray:
    """The theory's cumulative distribution of lambda at ``s2`` (trapezoids; 0 below the grid, mass above)."""
    grid, rho = np.asarray(entry["s2"]), np.asarray(entry["density"])
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(grid))])
    return np.interp(s2, grid, cumulative, left=0.0, right=cumulative[-1])
