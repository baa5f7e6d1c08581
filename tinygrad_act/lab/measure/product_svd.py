"""The singular values of a long product J = A_L ... A_2 A_1, each accurate to its own relative precision however
many decades they span, with exact zeros counted and values it cannot resolve given as bounds. Pure numpy.

Why not ``np.linalg.svd(A_L @ ... @ A_1)``: a float64 SVD is backward stable in norm, so every singular value
carries an absolute error of about eps * s_max (eps = 2.2e-16). Values under ~1e-16 of the largest come out as
round-off, and forming the product first loses them already (a deep net's Jacobian spans 10 to 300 decades), and
values under 1e-308 underflow to 0. Extended precision only moves that floor (x87 long double: 3 more digits;
mpmath at hundreds of digits: minutes per matrix at width 128).

The method keeps the product factored, as Stewart's graded QR decomposition of products (ETNA 3, 1995) and the
pre-pivoted QR recurrence of quantum Monte Carlo (Bai, Lee, Li & Xu, "Stable solutions of linear systems
involving long chain of matrix multiplications", Linear Algebra Appl. 435, 2011):

1. The partial product M_k = A_k ... A_1 is held as U diag(2^e) T: U with orthonormal columns, e integer
   exponents (so nothing underflows: 2^e is never formed) and T with rows of unit norm. Multiplying by A_(k+1):
   X = A_(k+1) U, then Householder QR of X diag(2^e) with its columns sorted by their scaled norms (pre-pivoting)
   and its rows by their scale (Powell & Reid's row sorting, so rows graded by a tiny phi' keep their digits);
   column scaling commutes with Householder QR, so the QR is of X itself and the exponents pass to R. Then
   R diag(2^e) = diag(r_ii 2^e) N with N unit upper triangular (entries r_ij 2^(e_j - e_i) / r_ii, bounded
   thanks to the sorting), and T <- N T. Each step perturbs M by a small *relative* amount along every
   direction that QR keeps at its own scale, which is why the small values survive.
2. Exact zeros: a factor's zero rows (a dead unit: phi' = 0) and zero columns are removed exactly (a zero column
   is applied as a selection first), and a state direction that X maps to exactly 0 is dropped. The rank is the
   state's size at the end; the rest are exact zeros of J (rank(AB) <= rank A).
3. The singular values of diag(2^e) T: PRECONDITION_STEPS QR steps on its transpose (the step of 1 applied
   to T^T diag(2^e): an unshifted QR iteration, after which the coupling of values s_i > s_j has shrunk like
   (s_j / s_i)^steps; Drmac & Veselic precondition Jacobi so), then one-sided Jacobi (Hestenes) on the columns,
   each held as a mantissa vector and an exponent; rotations between columns of different scale are formed from
   the ratio 2^(e_q - e_p) without overflow, in rounds of disjoint pairs taken by their distance from the
   diagonal, until every cosine is below max(m eps, 1e-9 / n). Demmel & Veselic (SIAM J. Matrix Anal. Appl. 13,
   1992): one-sided Jacobi on B diag(d) computes every singular value to relative O(eps cond(B)), whatever d. A
   narrow spectrum (cond(T) 2^(max e - min e) <= PLAIN) needs no Jacobi: a plain SVD is as accurate there.
4. Resolution: a QR step whose new diagonal r_ii is at the round-off level of its column (cancellation, as a
   layer norm's exactly null direction gives) makes that direction's scale unreliable. Each direction carries an
   estimate of its relative error, compounded over the steps (2 m eps max|column on and below i| / |r_ii| each,
   m rows), plus the final SVD's (4 m eps cond(T) + n times Jacobi's last cosine); a value whose estimate
   exceeds RESOLVED is reported only as an upper bound: the computed value times (1 + its estimate).

Alternatives: the product bidiagonalization of Golub, Solna & Van Dooren (SIAM J. Matrix Anal. Appl. 22, 2000)
is accurate in practice too, but chases Householder reflections through every factor for every column (L n
small numpy steps) and is no better proven; mpmath (the tests' reference) does width 16, not 128 at 400 digits.

Cost: per factor one product A U and one Householder QR, about three dense products of A's size; then the
QR steps and Jacobi rounds. Measured (one core, CPU time per product): width 64 and depth 20 (the default run),
0.01 s, of a run's 7 s; width 128, depth 32, 0.06 s; depth 128, 0.2 s; width 512, depth 10, 1.6 s (a dense
product and SVD: 0.25 s). Checked against mpmath in tests/test_product_svd.py: ReLU with exact zeros, tanh and
sigmoid over 30 to 350 decades and below 1e-308, each value to relative 1e-10 where a plain SVD is off by
hundreds of decades.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)
RESOLVED = 1e-7  # a value whose estimated relative error exceeds this is reported as a bound
PRECONDITION_STEPS = 8  # each one QR: they leave Jacobi pairs near the diagonal, a few dozen rounds in all
MAX_SWEEPS = 80  # one-sided Jacobi converges quadratically: 5 to 10 sweeps in practice
PLAIN = 2.0**16  # a spectrum narrower than this (cond(T) times the spread of the scales) needs no Jacobi
LOG10_2 = math.log10(2.0)


class Spectrum(NamedTuple):
    """The singular values of a product: ``log10`` the resolved nonzero ones (descending), ``bounds`` log10 upper
    bounds of those it cannot resolve (descending), ``zeros`` the exact zeros, ``relative_error`` the largest
    estimated relative error of a resolved value. len(log10) + len(bounds) + zeros = min(rows, columns)."""

    log10: np.ndarray
    bounds: np.ndarray
    zeros: int
    relative_error: float


class _State(NamedTuple):
    """M = u diag(2^exponent) t; ``error``: per row of t, log(1 + the estimated relative error of its scale)
    (the errors of successive steps compound)."""

    u: np.ndarray
    exponent: np.ndarray
    t: np.ndarray
    error: np.ndarray


def singular_values(factors) -> Spectrum:
    """The singular values of factors[-1] @ ... @ factors[0]; a factor is a 2-D array or a 1-D diagonal."""
    factors = [np.asarray(a, dtype=np.float64) for a in factors]
    if not factors:
        raise ValueError("need at least one factor")
    for index, a in enumerate(factors):
        if a.ndim not in (1, 2) or not np.isfinite(a).all():
            raise ValueError(f"factor {index} must be a finite 1-D (diagonal) or 2-D array, got shape {a.shape}")
        inner = factors[index - 1].shape[0] if index else None
        if index and a.shape[-1] != inner:
            raise ValueError(f"factor {index} has {a.shape[-1]} columns, the product so far {inner} rows")
    columns, rows = factors[0].shape[-1], factors[-1].shape[0]
    state = _State(np.eye(columns), np.zeros(columns, np.int64), np.eye(columns), np.zeros(columns))
    for a in factors:
        state = _multiply(state, a)
    for _ in range(PRECONDITION_STEPS):  # (diag(2^e) t)^T = t^T diag(2^e): the same step, from the other side
        rank = len(state.exponent)
        state = _triangularize(state.t.T, state._replace(t=np.eye(rank)))
    log2, jacobi_error = _jacobi(state.t.T, state.exponent)
    error = state.error + np.log1p(jacobi_error)
    resolved = error <= math.log1p(RESOLVED)
    bounds = log2[~resolved] + error[~resolved] / math.log(2.0)
    return Spectrum(
        np.sort(log2[resolved])[::-1] * LOG10_2,
        np.sort(bounds)[::-1] * LOG10_2,
        min(rows, columns) - len(log2),
        float(np.expm1(np.max(error[resolved], initial=0.0))),
    )


def _multiply(state: _State, a: np.ndarray) -> _State:
    """The state of a M from that of M: a diagonal scales u's rows; a dense a's zero columns are a selection.
    a's largest entry is scaled to [0.5, 1) by a power of two, which the exponents take: no product overflows."""
    _, scale = np.frexp(np.abs(a).max(initial=0.0))
    a, state = np.ldexp(a, -scale), state._replace(exponent=state.exponent + scale)
    if a.ndim == 1:
        return _triangularize(a[:, None] * state.u, state)
    used = (a != 0).any(axis=0)
    if not used.all():  # coordinates a ignores: keep only the others, exactly, before a mixes them
        state = _triangularize(state.u[used], state)
        a = a[:, used]
    return _triangularize(a @ state.u, state)


def _triangularize(x: np.ndarray, state: _State) -> _State:
    """The state of x diag(2^e) t (x: the new factor times u) by a row- and column-sorted Householder QR."""
    kept = (x != 0).any(axis=0)  # a direction x maps to exactly 0 is an exact zero of the product
    x, exponent, t, error = x[:, kept], state.exponent[kept], state.t[kept], state.error[kept]
    rows = np.flatnonzero((x != 0).any(axis=1))  # zero rows: outputs that are exactly 0 (dead units)
    if x.shape[1] == 0 or rows.size == 0:
        return _State(np.zeros((x.shape[0], 0)), np.zeros(0, np.int64), np.zeros((0, t.shape[1])), np.zeros(0))
    with np.errstate(divide="ignore"):
        magnitude = np.log2(np.abs(x[rows])) + exponent
    columns = np.argsort(-(np.log2(_norm(x, axis=0)) + exponent), kind="stable")
    rows = rows[np.argsort(-magnitude.max(axis=1), kind="stable")]
    z = x[rows[:, None], columns]
    q, r = np.linalg.qr(z)
    k = r.shape[0]
    # per column i: max |z| on and under row i (the running maximum from the bottom row up, at row i)
    below = np.maximum.accumulate(np.abs(z[::-1]), axis=0)[::-1].diagonal().copy()
    below = np.where(below > 0, below, _norm(z[:, :k], axis=0))
    diagonal = r.diagonal().copy()
    lost = diagonal == 0  # a direction cancelled exactly inside QR: its scale is round-off
    diagonal[lost] = EPS * below[lost]
    step_error = 2.0 * z.shape[0] * EPS * below / np.abs(diagonal)
    shift = exponent[columns]
    ratio = np.minimum(np.maximum(shift[None, :] - shift[:k, None], -2200), 2200).astype(np.int32)
    n = np.ldexp(r / diagonal[:, None], ratio)  # r is upper triangular: 0 * 2^ratio stays 0
    t_new = n @ t[columns]
    mantissa, exponent_row = np.frexp(_norm(t_new, axis=1))
    scale, exponent_diagonal = np.frexp(np.abs(diagonal))
    t_new = np.ldexp(t_new, -exponent_row[:, None]) * (scale * np.sign(diagonal))[:, None]
    u = np.zeros((x.shape[0], k))
    u[rows] = q
    new_exponent = shift[:k] + exponent_diagonal + exponent_row
    return _State(u, new_exponent.astype(np.int64), t_new, error[columns][:k] + np.log1p(step_error))


def _norm(x: np.ndarray, axis: int) -> np.ndarray:
    """np.linalg.norm(x, axis=axis) of a real array, by its own steps without its argument handling (per step)."""
    return np.sqrt(np.add.reduce(x * x, axis=axis))


def _rounds(visit: np.ndarray):
    """The pairs (i, j > i) marked in ``visit`` as rounds of disjoint pairs, in whichever of two orders needs
    fewer rounds: by offset d = j - i (two rounds per offset: i in blocks [2kd, 2kd + d), then the others), few
    once the QR steps have left the marked pairs near the diagonal; or a round robin's n - 1 (a wide cluster)."""
    rows, columns = np.nonzero(np.triu(visit, 1))
    offsets = columns - rows
    distinct = np.unique(offsets)
    n = len(visit) + len(visit) % 2
    if 2 * len(distinct) <= n - 1:
        for d in distinct:
            at = rows[offsets == d]
            for parity in (0, 1):
                p = at[(at // d) % 2 == parity]
                if p.size:
                    yield p, p + d
        return
    players = np.arange(n)  # the circle method: player 0 stays, the others turn one place per round
    for _ in range(n - 1):
        p, q = players[: n // 2], players[n // 2 :][::-1]
        p, q = np.minimum(p, q), np.maximum(p, q)
        chosen = q < len(visit)
        p, q = p[chosen], q[chosen]
        chosen = visit[p, q]
        if chosen.any():
            yield p[chosen], q[chosen]
        players = np.concatenate([players[:1], players[-1:], players[1:-1]])


def _jacobi(h: np.ndarray, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log2 of the singular values of h diag(2^exponent) (h: unit columns), per column, and their relative
    error estimate: 4 m eps cond(h) for one-sided Jacobi (Demmel & Veselic; inf if it did not converge) plus
    n times the cosine it stops at, or, when cond(h) 2^(max - min exponent) <= PLAIN (a narrow spectrum), a
    plain SVD's 4 m eps times that."""
    m, count = h.shape
    if count == 0:
        return np.zeros(0), np.zeros(0)
    with np.errstate(divide="ignore"):
        condition = np.linalg.cond(h) if count > 1 else 1.0
    spread = condition * 2.0 ** min(int(exponent.max() - exponent.min()), 1000)
    if spread <= PLAIN:  # every value within ~1e-8 of its own size already: no need for Jacobi's sweeps
        top = int(exponent.max())
        s = np.linalg.svd(np.ldexp(h, (exponent - top).astype(np.int32)[None, :]), compute_uv=False)
        return np.log2(s) + top, np.full(count, 4.0 * m * EPS * spread)
    # Columns as rows (contiguous to gather); stop when every cosine is below ``tolerance``: then each column's
    # norm is its singular value to relative count * tolerance (Ostrowski on D (I + E) D, |E_ij| <= tolerance).
    rows, exponent = np.ascontiguousarray(h.T), exponent.copy()
    tolerance = max(m * EPS, RESOLVED / (100.0 * count))
    for _ in range(MAX_SWEEPS):
        mantissa, shift = np.frexp(_norm(rows, axis=1))  # mantissas back near 1, exponents carry scale
        shift = np.where(mantissa > 0, shift, 0)
        rows = np.ldexp(rows, -shift[:, None])
        exponent += shift
        gram = rows @ rows.T  # the cosines between columns (scale-free): which pairs this sweep must visit
        diagonal = np.sqrt(np.diagonal(gram))
        visit = np.abs(gram) > tolerance * np.outer(diagonal, diagonal)
        np.fill_diagonal(visit, False)
        if not visit.any():
            break
        for p, q in _rounds(visit):
            _rotate(rows, exponent, p, q)
    else:
        condition = math.inf
    with np.errstate(divide="ignore"):
        log2 = np.log2(_norm(rows, axis=1)) + exponent
    return log2, np.full(count, 4.0 * m * EPS * condition + count * tolerance)


def _rotate(rows: np.ndarray, exponent: np.ndarray, p: np.ndarray, q: np.ndarray) -> None:
    """One round of Jacobi rotations on the disjoint pairs (p, q) of columns (held as ``rows``), in place.

    Columns x = 2^E h_p, y = 2^F h_q with E >= F and rho = 2^(F - E): Hestenes's t = tan(angle) is rho tau with
    tau = sign(z) / (|z| + sqrt(rho^2 + z^2)), z = (rho^2 |h_q|^2 - |h_p|^2) / (2 h_p.h_q), all of moderate size;
    then x' = 2^E c (h_p - rho^2 tau h_q), y' = 2^F c (tau h_p + h_q), c = 1 / sqrt(1 + (rho tau)^2).
    """
    swap = exponent[q] > exponent[p]
    p, q = np.where(swap, q, p), np.where(swap, p, q)
    hp, hq = rows[p], rows[q]
    a, b, g = np.einsum("ij,ij->i", hp, hp), np.einsum("ij,ij->i", hq, hq), np.einsum("ij,ij->i", hp, hq)
    g = np.where(g == 0, TINY, g)  # orthogonal by now: z = +-inf and an angle of 0, never 0 / 0
    rho = np.ldexp(1.0, np.maximum(exponent[q] - exponent[p], -1100).astype(np.int32))
    with np.errstate(over="ignore", divide="ignore"):  # z = inf: tau = 0; 1 / rho is used only where z == 0
        z = (rho * rho * b - a) / (2.0 * g)
        tau = np.where(z == 0, 1.0 / rho, np.sign(z) / (np.abs(z) + np.sqrt(rho * rho + z * z)))
    c = 1.0 / np.sqrt(1.0 + (rho * tau) ** 2)
    rows[p] = c[:, None] * (hp - (rho * rho * tau)[:, None] * hq)  # mantissas stay within ~2
    rows[q] = c[:, None] * (tau[:, None] * hp + hq)
