"""Mean-field signal propagation in wide fully connected nets at initialization.

Poole et al. 2016, "Exponential expressivity in deep neural networks through transient chaos";
Schoenholz et al. 2017, "Deep information propagation".

Conventions (the laboratory's MLP): h^l = x^(l-1) @ W^l + b^l is the pre-activation of hidden layer l = 1..L,
x^l = phi(h^l); W^l has shape (fan_in, fan_out) with entries of variance sigma_w2 / fan_in (so
sigma_w2 = Var(W) * fan_in) and biases of variance sigma_b2 (the MLP starts them at zero: sigma_b2 = 0).
q^l is the variance of one unit of h^l over the random weights; q0 = mean of x_i^2 over the input features.

In the infinitely wide limit the pre-activations are Gaussian, so with z ~ N(0, 1):

    q^1     = sigma_w2 * q0 + sigma_b2
    q^(l+1) = sigma_w2 * E[phi(sqrt(q^l) z)^2] + sigma_b2           (the variance map)
    chi(q)  = sigma_w2 * E[phi'(sqrt(q) z)^2]                        (chi1 at the fixed point q*)
    ||delta^l||^2 ~= chi(q^l) * ||delta^(l+1)||^2,   delta^l = dL/dh^l over the whole batch

so each layer multiplies the gradient norm ||delta|| by sqrt(chi) (``delta_gain``) and its square by chi
(``chi1``). Widths: both maps hold for unequal widths too, because the Frobenius norm sums over the N_l units
what W^(l+1) (entries of variance sigma_w2 / N_l) spreads over them -- the fan_in cancels. What changes with
width is sigma_w2 itself (Xavier gives gain^2 * 2 fan_in / (fan_in + fan_out)), hence per-layer sigma_w2.
The backward map also assumes the backward weights are independent of the forward ones (the "gradient
independence" approximation); finite width adds O(1/sqrt(width)) fluctuations per layer.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ...common import validate
from ...nn import activations
from ...nn import init as initializers
from ..stats import per_layer_factor, verdict
from . import memo

# |ln chi| below this is "critical": the depth scale -1/ln(chi) is then beyond 1000 layers.
CRITICAL_LOG_TOLERANCE = 1e-3
# Iterates beyond these bounds have left for 0 or infinity.
Q_ZERO = 1e-12
Q_INFINITY = 1e12

# ---------------------------------------------------------------------------------------------------------
# Quadrature: E_z[f(sqrt(q) z)] by piecewise Gauss-Legendre on [-Z_CUTOFF, Z_CUTOFF].
# ---------------------------------------------------------------------------------------------------------
Z_CUTOFF = 10.0  # P(|z| > 10) = 1.5e-23: the tails are below double precision even for f growing like x^2
_ORDER = 20
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(_ORDER)
# Panel edges in z (the Gaussian's scale) ...
_Z_EDGES = np.arange(-Z_CUTOFF, Z_CUTOFF + 0.5, 1.0)
# ... and in x = sqrt(q) z (the activation's scale): fine near the origin, where activations bend and
# complex poles (tanh at +-i pi/2) sit, then doubling, so that every panel stays well inside the region
# where the integrand is analytic whatever q is.
_X_EDGES = np.concatenate([np.arange(-4.0, 4.25, 0.5), 2.0 ** np.arange(3, 60), -(2.0 ** np.arange(3, 60))])


def expectation(f: Callable[[np.ndarray], np.ndarray], q: float, kinks: Sequence[float] = ()) -> float:
    """E_z[f(sqrt(q) z)] for z ~ N(0, 1), by piecewise Gauss-Legendre quadrature.

    ``f`` is a numpy function of x = sqrt(q) z; ``kinks`` are the x where f or f' jumps: panel edges are put
    there, so each panel's integrand is smooth and 20-point Gauss-Legendre reaches double precision
    (about 1e-13 relative; plain Gauss-Hermite over a kink is off by ~1e-2). At q = 0 it is the limit
    q -> 0+, (f(0-) + f(0+)) / 2: for ReLU's phi'^2 that is 1/2, not the convention relu'(0) = 0.
    """
    q = validate.number("the variance q", q, 0)
    if q == 0:
        return float(np.mean(np.asarray(f(np.array([-1e-150, 1e-150])), dtype=np.float64)))
    x, w = _gauss_nodes(q, tuple(kinks))
    return float(w @ np.asarray(f(x.copy()), dtype=np.float64))  # a copy: f may change its argument


# Callers ask for several expectations at one q in a row (E[phi^2], E[phi'^2], E[phi'^4] of a layer): the latest
# nodes are remembered. They depend on the values of q and the kinks only (a kink at -0.0 or 0.0 gives equal nodes).
@functools.lru_cache(maxsize=16)
def _gauss_nodes(q: float, kinks: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x = sqrt(q) z and weights (Gaussian density included) of the piecewise rule (read-only arrays)."""
    s = math.sqrt(q)
    x_edges = np.concatenate([_X_EDGES, np.asarray(kinks, dtype=np.float64)]) / s
    edges = np.concatenate([_Z_EDGES, x_edges[np.abs(x_edges) < Z_CUTOFF]])
    edges.sort()  # np.unique's own steps (sort, then drop repeats) without its argument handling
    edges = edges[np.concatenate([[True], edges[1:] != edges[:-1]])]
    half = 0.5 * (edges[1:] - edges[:-1])[:, None]
    z = (0.5 * (edges[1:] + edges[:-1]))[:, None] + half * _GL_NODES
    w = half * _GL_WEIGHTS * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    x, w = (s * z).ravel(), w.ravel()
    x.flags.writeable = w.flags.writeable = False  # shared by every caller: nobody may change them
    return x, w


# ---------------------------------------------------------------------------------------------------------
# Kinks of an activation, found numerically once per Activation object.
# ---------------------------------------------------------------------------------------------------------
_KINK_GRID = np.linspace(-32.0, 32.0, 2**14 + 1)  # spacing 2^-8: 0, +-1, +-2.5, +-3 are grid points
_KINK_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a user's activation: once per object
_builtin_kinks = memo.Remembered(64)  # a built-in's: once per spec (a name asked again is a new object each time)


def kinks(act) -> tuple[float, ...]:
    """Where phi' or phi'' jumps (ReLU, ELU, SELU, softsign, hard_tanh, ...), searched in [-32, 32].

    A jump in phi' shows as an isolated spike in the first differences of phi' on a fine grid, a jump in
    phi'' as one in the second differences; each candidate is then located by zooming in. An activation may
    also declare ``kinks`` itself (an attribute); those are added. 0 is always a panel edge anyway.
    """
    act = _activation(act)
    if act.trusted:
        return _builtin_kinks(act, (), lambda: _search_kinks(act))
    if act not in _KINK_CACHE:
        _KINK_CACHE[act] = _search_kinks(act)
    return _KINK_CACHE[act]


def _search_kinks(act) -> tuple[float, ...]:
    found = set(_detect_kinks(act.derivative))
    found.update(float(k) for k in getattr(act, "kinks", ()) or ())
    return tuple(sorted(found))


def _detect_kinks(derivative) -> list[float]:
    grid = _KINK_GRID
    d = np.asarray(derivative(grid), dtype=np.float64)
    if not np.all(np.isfinite(d)):
        return []
    noise = 1e-9 * max(float(np.max(np.abs(d))), 1e-300)
    found = []
    first = np.abs(np.diff(d))  # first[i] spans grid[i], grid[i+1]
    padded = np.pad(first, 1)
    jumps = np.flatnonzero(first > 10 * np.maximum(padded[:-2], padded[2:]) + noise)
    for i in jumps:
        found.append(_zoom(derivative, grid[max(i - 1, 0)], grid[min(i + 2, grid.size - 1)], order=1))
    second = np.abs(np.diff(d, 2))  # second[i] is centred on grid[i + 1]
    padded = np.pad(second, 2)
    spikes = (second > 10 * np.maximum(padded[:-4], padded[4:]) + noise) & (second >= padded[1:-3])
    spikes &= second >= padded[3:-1]
    for i in np.flatnonzero(spikes):
        if jumps.size and np.min(np.abs(jumps - i)) <= 3:
            continue  # the second differences around a jump of phi' are that jump again
        found.append(_zoom(derivative, grid[i], grid[i + 2], order=2))
    return found


def _zoom(derivative, lo: float, hi: float, order: int) -> float:
    """Narrow [lo, hi] around the largest spike of the order-th differences of phi' until it is ~1e-9 wide."""
    for _ in range(6):
        if hi - lo < 1e-9 * max(1.0, abs(lo)):
            break
        xs = np.linspace(lo, hi, 1025)
        i = int(np.argmax(np.abs(np.diff(np.asarray(derivative(xs), dtype=np.float64), order))))
        lo, hi = xs[max(i - 1, 0)], xs[min(i + order + 1, xs.size - 1)]
    x = 0.5 * (lo + hi)
    return float(round(x, 6) if abs(x - round(x, 6)) < 1e-8 else x)  # report 1.0, not 0.9999999999


def _activation(act):
    return act if isinstance(act, activations.Activation) else activations.get(act)


# ---------------------------------------------------------------------------------------------------------
# The maps
# ---------------------------------------------------------------------------------------------------------
def _check_sigmas(sigma_w2: float, sigma_b2: float) -> None:
    validate.number("sigma_w2", sigma_w2, 0, low_open=True)
    validate.number("sigma_b2", sigma_b2, 0)


def mean_activation(act, q: float) -> float:
    """E[phi(sqrt(q) z)]: the mean of a unit's output (0 for SELU at q = 1, Klambauer et al. 2017)."""
    act = _activation(act)
    return expectation(act.forward, q, kinks(act))


def variance_map(act, q: float, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """The next layer's pre-activation variance (Poole et al. 2016, eq. 3).

    q^(l+1) = sigma_w2 * E_z[phi(sqrt(q^l) z)^2] + sigma_b2.
    """
    act = _activation(act)
    _check_sigmas(sigma_w2, sigma_b2)
    return sigma_w2 * expectation(lambda x: act.forward(x) ** 2, q, kinks(act)) + sigma_b2


def chi1(act, q: float, sigma_w2: float) -> float:
    """The factor of ||delta||^2 per layer (its square root is ``delta_gain``).

    chi(q) = sigma_w2 * E_z[phi'(sqrt(q) z)^2]; chi1 = chi(q*) (Poole et al. 2016, eq. 7; Schoenholz et al.
    2017, eq. 5): < 1 ordered (gradients vanish), > 1 chaotic (they explode), = 1 critical.
    """
    act = _activation(act)
    _check_sigmas(sigma_w2, 0.0)
    return sigma_w2 * expectation(lambda x: act.derivative(x) ** 2, q, kinks(act))


def delta_gain(act, q: float, sigma_w2: float) -> float:
    """The factor of ||delta|| (not squared) per layer: sqrt(chi(q)) = sqrt(sigma_w2 * E[phi'(sqrt(q) z)^2])."""
    return math.sqrt(chi1(act, q, sigma_w2))


def depth_scale(chi: float) -> float:
    """Depth over which ||delta||^2 changes by a factor e (Schoenholz et al. 2017, eq. 14).

    xi = -1 / ln(chi1), given as |1 / ln chi1| so that it is positive in the chaotic phase too (there
    ||delta||^2 grows by e every xi layers); infinite at chi1 = 1.
    """
    if not chi > 0:
        return 0.0
    log = math.log(chi)
    return math.inf if log == 0 else abs(1.0 / log)


def phase(chi: float) -> str:
    """'ordered' (chi1 < 1), 'critical' (|ln chi1| < 1e-3, depth scale beyond 1000 layers) or 'chaotic'."""
    if chi > 0 and abs(math.log(chi)) < CRITICAL_LOG_TOLERANCE:
        return "critical"
    return "ordered" if chi < 1 else "chaotic"


# ---------------------------------------------------------------------------------------------------------
# Fixed point and critical line
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedPoint:
    """Where the variance map goes: q* with drift 'fixed', or 'to_zero' (q* = 0), or 'to_infinity' (q* = inf)."""

    q_star: float
    converged: bool
    drift: str
    iterations: int


def fixed_point(
    act, sigma_w2: float, sigma_b2: float = 0.0, q_start: float = 1.0, *, rtol: float = 1e-12, max_iterations=200
) -> FixedPoint:
    """The fixed point q* = sigma_w2 E[phi(sqrt(q*) z)^2] + sigma_b2 that iterating the map from q_start reaches.

    Poole et al. 2016, eq. 4. Plain iteration first; if it is slow (near criticality it converges like 1/l)
    the root of V(q) - q is bracketed in the direction of the drift and bisected.
    """
    act = _activation(act)
    _check_sigmas(sigma_w2, sigma_b2)
    validate.number("q_start", q_start, 0)

    def gap(q):
        return variance_map(act, q, sigma_w2, sigma_b2) - q

    def result(q, evaluations):
        if q <= Q_ZERO:
            return FixedPoint(0.0, True, "to_zero", evaluations)
        if q >= Q_INFINITY or not math.isfinite(q):
            return FixedPoint(math.inf, False, "to_infinity", evaluations)
        return FixedPoint(float(q), True, "fixed", evaluations)

    q, step = float(q_start), math.inf
    for evaluations in range(1, max_iterations + 1):
        q_next = variance_map(act, q, sigma_w2, sigma_b2)
        # A geometric approach with ratio rho still has step * rho / (1 - rho) to go: stop on that, not on step.
        rho = min(abs(q_next - q) / step, 0.999) if step > 0 else 0.0
        step = abs(q_next - q)
        if not Q_ZERO < q_next < Q_INFINITY or step * max(1.0, rho / (1 - rho)) <= rtol * q_next:
            return result(q_next, evaluations)
        q = q_next
    # Slow drift. g(q) = V(q) - q has the sign of the drift at q; walk in that direction until it flips.
    evaluations = max_iterations
    if gap(q) > 0:
        lo, hi = q, 2 * q
        while (g := gap(hi)) > 0:
            evaluations += 1
            lo, hi = hi, 2 * hi
            if hi >= Q_INFINITY or not math.isfinite(g):
                return result(math.inf, evaluations)
    else:
        lo, hi = q / 2, q
        while gap(lo) < 0:
            evaluations += 1
            lo, hi = lo / 2, lo
            if lo <= Q_ZERO:
                return result(0.0, evaluations)
    while hi - lo > rtol * hi:
        evaluations += 1
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return result(0.5 * (lo + hi), evaluations)


def critical_sigma_w2(act, sigma_b2: float = 0.0, *, q_max: float = 1e4) -> float | None:
    """The sigma_w2 at which chi1(q*) = 1 for this sigma_b2: the edge of chaos (Schoenholz et al. 2017, fig. 1).

    Walks along the curve of fixed points instead of iterating the map for each sigma_w2: every q* > sigma_b2
    is the fixed point of exactly one sigma_w2(q*) = (q* - sigma_b2) / E[phi(sqrt(q*) z)^2], so chi1 = 1 is a
    1-D root in q* (found by bisection). If sigma_b2 = 0 and phi(0) = 0, q* = 0 is a fixed point for every
    sigma_w2 and loses stability at sigma_w2 = 1 / E[phi'(0)^2] (1 for tanh, 2 for ReLU): that is returned.
    Returns None when no q* in (sigma_b2, q_max] is critical (ReLU with sigma_b2 > 0 only reaches chi1 = 1 as
    q* -> infinity).
    """
    act = _activation(act)
    _check_sigmas(1.0, sigma_b2)
    if sigma_b2 == 0 and act.scalar_forward(0.0) == 0:
        return 1.0 / chi1(act, 0.0, 1.0)  # E[phi'^2] at q -> 0+: (phi'(0-)^2 + phi'(0+)^2) / 2

    def on_curve(t):  # t = q* - sigma_b2 > 0; returns (sigma_w2, chi1 - 1) at that fixed point
        q = sigma_b2 + t
        sigma_w2 = t / expectation(lambda x: act.forward(x) ** 2, q, kinks(act))
        return sigma_w2, chi1(act, q, sigma_w2) - 1.0

    ts = np.geomspace(1e-8 * max(sigma_b2, 1.0), q_max, 97)
    signs = [on_curve(t)[1] for t in ts]
    crossing = next((i for i in range(len(ts) - 1) if signs[i] < 0 <= signs[i + 1]), None)
    if crossing is None:
        return None
    lo, hi = ts[crossing], ts[crossing + 1]
    while hi - lo > 1e-13 * hi:
        mid = math.sqrt(lo * hi) if hi > 4 * lo else 0.5 * (lo + hi)
        lo, hi = (mid, hi) if on_curve(mid)[1] < 0 else (lo, mid)
    return float(on_curve(0.5 * (lo + hi))[0])


# ---------------------------------------------------------------------------------------------------------
# Initializers: the sigma_w2 = Var(W) * fan_in they imply (each initializer knows its own Var(W))
# ---------------------------------------------------------------------------------------------------------
def sigma_w2_of_init(init, act, fan_in: int, fan_out: int) -> float:
    """The sigma_w2 = Var(W) * fan_in that an initializer of init.py gives a (fan_in, fan_out) weight matrix.

    Var(W) is the initializer's own (``Initializer.variance``): xavier_* give sigma_w2 = gain^2 2 fan_in /
    (fan_in + fan_out) (Glorot & Bengio 2010), he_* gain^2 fan_in / fan (He et al. 2015), lecun_* 1,
    orthogonal gain^2 fan_in / max(fan_in, fan_out) (Saxe et al. 2014), standard 1/3. ``act`` resolves "auto".
    """
    validate.integer("fan_in", fan_in, 1)
    validate.integer("fan_out", fan_out, 1)
    initializer = initializers.for_activation(init, _activation(act).spec)
    try:
        variance = initializer.variance(fan_in, fan_out)
    except ValueError as error:
        raise ValueError(f"{error}; measure sigma_w2 from the weights instead: sigma_w2_of_weights(W)") from None
    return variance * int(fan_in)


def sigma_w2_of_weights(weight: np.ndarray) -> float:
    """sigma_w2 measured from a (fan_in, fan_out) weight matrix: fan_in * mean(W^2) (the second moment, not Var)."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 2:
        raise ValueError(f"expected a (fan_in, fan_out) weight matrix, got shape {weight.shape}")
    # np.mean's own steps (a float64 sum, then / size) without its argument handling: the probe calls this for
    # every layer of every measured step
    square = np.multiply(weight, weight)
    return float(weight.shape[0] * (np.add.reduce(square, axis=None) / square.size))


# ---------------------------------------------------------------------------------------------------------
# Prediction for a whole MLP, and its comparison with a measurement
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """Mean-field prediction for an MLP with ``depth`` hidden layers (index 0 is hidden layer 1).

    q[l]: variance of the pre-activations of hidden layer l + 1. chi[l]: factor of ||delta||^2 from hidden
    layer l + 2 down to l + 1 (depth - 1 entries). delta_ratios[l]: ||delta^(l+1)|| / ||delta^L||.
    ratio_first_last: r = ||delta^1|| / ||delta^L||. per_layer_factor: r^(1/(L-1)), the geometric mean of
    sqrt(chi) (stats.per_layer_factor; 1 for one layer). fixed_point, chi1 (at q*), depth_scale (at q*) and
    phase use the deep layers' sigma_w2 (the last hidden layer's). verdict: the runner's rule applied to r.
    """

    activation: str
    depth: int
    sigma_w2: tuple
    sigma_b2: float
    q0: float
    q: tuple
    chi: tuple
    delta_ratios: tuple
    per_layer_factor: float
    ratio_first_last: float
    fixed_point: FixedPoint
    chi1: float
    depth_scale: float
    phase: str
    verdict: str

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists, inf stays a float)."""
        out = asdict(self)
        for key in ("sigma_w2", "q", "chi", "delta_ratios"):
            out[key] = list(out[key])
        return out


def predict(act, depth: int, sigma_w2, sigma_b2: float = 0.0, q0: float = 1.0) -> Prediction:
    """Mean-field prediction of per-layer variances and of ||delta|| from the last hidden layer to the first.

    q^1 = sigma_w2[0] q0 + sigma_b2, q^(l+1) = sigma_w2[l] E[phi(sqrt(q^l) z)^2] + sigma_b2 (Poole et al. 2016);
    ||delta^l|| = sqrt(chi^l) ||delta^(l+1)|| with chi^l = sigma_w2[l] E[phi'(sqrt(q^l) z)^2], evaluated along
    the actual trajectory q^l, not only at q* (Schoenholz et al. 2017); r = prod over l = 1..L-1 of sqrt(chi^l).
    ``sigma_w2`` is one number or a list with one per hidden layer (input side first; the first layer's only sets
    q^1, as its fan_in is the input's); for a built model the closest is each hidden Linear's measured
    ``sigma_w2_of_weights(layer.weight.data)``. ``q0`` is the mean of x_i^2 over the input features.
    """
    act = _activation(act)
    depth = validate.integer("depth", depth, 1)
    sigma_w2 = _per_layer(sigma_w2, depth)
    for s in sigma_w2:
        _check_sigmas(s, sigma_b2)
    q0 = validate.number("q0 (mean square of the inputs)", q0, 0)
    key = (depth, tuple(sigma_w2), float(sigma_b2), float(q0))
    return _predicted(act, key, lambda: _predict(act, depth, sigma_w2, sigma_b2, q0))  # frozen: shared safely


# A run asks for the prediction of its initial weights twice (the summary's theory, and the Jacobian's beside its
# spectrum), and near the critical line each costs a few hundred evaluations of the variance map (the fixed point
# converges like 1/l): predict remembers its latest answers for built-in activations (as spectrum_density does).
_predicted = memo.Remembered(32)


def _predict(act, depth: int, sigma_w2: list[float], sigma_b2: float, q0: float) -> Prediction:
    """predict's computation (arguments checked, ``act`` an Activation)."""
    q = [sigma_w2[0] * q0 + sigma_b2]
    for layer in range(1, depth):
        q.append(variance_map(act, q[-1], sigma_w2[layer], sigma_b2) if math.isfinite(q[-1]) else math.inf)
    # The transition from hidden layer l + 1 down to l goes through W^(l+1) and phi'(h^l).
    chi = [chi1(act, min(q[layer], Q_INFINITY), sigma_w2[layer + 1]) for layer in range(depth - 1)]
    delta_ratios = [1.0]
    for c in reversed(chi):
        delta_ratios.append(delta_ratios[-1] * math.sqrt(c))
    delta_ratios.reverse()
    ratio = delta_ratios[0]
    factor = per_layer_factor(ratio, depth) if depth > 1 else 1.0  # one layer: the empty product

    deep = sigma_w2[-1]
    fixed = fixed_point(act, deep, sigma_b2, q_start=min(q[-1], Q_INFINITY) or 1.0)
    chi_star = chi1(act, min(fixed.q_star, Q_INFINITY), deep)
    return Prediction(
        activation=act.spec,
        depth=depth,
        sigma_w2=tuple(sigma_w2),
        sigma_b2=float(sigma_b2),
        q0=q0,
        q=tuple(q),
        chi=tuple(chi),
        delta_ratios=tuple(delta_ratios),
        per_layer_factor=factor,
        ratio_first_last=ratio,
        fixed_point=fixed,
        chi1=chi_star,
        depth_scale=depth_scale(chi_star),
        phase=phase(chi_star),
        verdict=verdict(ratio),
    )


def predict_for_init(act, init: str, in_features: int, hidden: Sequence[int], sigma_b2=0.0, q0=1.0) -> Prediction:
    """``predict`` for an MLP of these widths whose hidden weights come from the initializer ``init``.

    sigma_w2 of layer l = sigma_w2_of_init(init, act, widths[l-1], widths[l]) with widths = [in_features, *hidden].
    """
    widths = [int(in_features), *(int(h) for h in hidden)]
    sigma_w2 = [sigma_w2_of_init(init, act, a, b) for a, b in zip(widths[:-1], widths[1:])]
    return predict(act, len(widths) - 1, sigma_w2, sigma_b2, q0)


def compare(prediction: Prediction, delta_norms: Sequence[float]) -> dict:
    """Predicted beside measured: r, the per-layer factor of ||delta|| and each layer's ||delta^l|| / ||delta^L||.

    ``delta_norms`` are the measured ||dL/dh^l|| of the hidden layers, input side first (the output layer's
    entry left out). log10_error = log10(measured r / predicted r).
    """
    norms = np.asarray(delta_norms, dtype=np.float64)
    if norms.shape != (prediction.depth,):
        raise ValueError(
            f"expected {prediction.depth} hidden-layer delta norms (input side first, output layer left out), "
            f"got {norms.shape[0] if norms.ndim == 1 else norms.shape}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):  # a dead or overflowed net gives 0 or inf: report it
        measured = norms / norms[-1]
    ratio = float(measured[0])
    depth = prediction.depth
    factor = per_layer_factor(ratio, depth) if depth > 1 else 1.0
    predicted = prediction.ratio_first_last
    good = ratio > 0 and predicted > 0 and math.isfinite(ratio) and math.isfinite(predicted)
    return {
        "ratio_predicted": predicted,
        "ratio_measured": ratio,
        "per_layer_factor_predicted": prediction.per_layer_factor,
        "per_layer_factor_measured": factor,
        "log10_error": math.log10(ratio / predicted) if good else math.nan,
        "delta_ratios_predicted": list(prediction.delta_ratios),
        "delta_ratios_measured": [float(m) for m in measured],
        "verdict_predicted": prediction.verdict,
        "verdict_measured": verdict(ratio),
    }


def _per_layer(sigma_w2, depth: int) -> list[float]:
    if np.ndim(sigma_w2) == 0:
        return [float(sigma_w2)] * depth
    values = [float(s) for s in sigma_w2]
    if len(values) != depth:
        raise ValueError(f"sigma_w2 needs one value per hidden layer ({depth}), got {len(values)}")
    return values
