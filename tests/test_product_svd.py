"""lab/measure/product_svd.py: the singular values of a long product, each to relative 1e-6 against mpmath however many
decades they span, exact zeros counted exactly, and what it cannot resolve given as a bound."""

import math

import numpy as np
import pytest
from exact_svd import digits_for, log10_singular_values
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_act.lab.measure import product_svd
from tinygrad_act.nn import activations

RELATIVE = 1e-6  # the accuracy promised for every resolved value


def _net(act: str, width: int, depth: int, sigma_w2: float, seed: int = 0, orthogonal=False, dtype=np.float64):
    """J = dz_L/dz_1's factors of a plain MLP at a random input (column convention): diag(phi'(z_1)),
    diag(phi'(z_l)) W_l^T for l = 2 .. L-1, W_L^T; the weights of ``dtype``, the factors in float64."""
    rng, derivative = np.random.default_rng(seed), activations.get(act).derivative
    weights = []
    for _ in range(depth):
        if orthogonal:
            q, r = np.linalg.qr(rng.standard_normal((width, width)))
            weights.append((q * np.sign(np.diag(r)) * math.sqrt(sigma_w2)).astype(dtype))
        else:
            weights.append((rng.standard_normal((width, width)) * math.sqrt(sigma_w2 / width)).astype(dtype))
    h, slopes = rng.standard_normal(width), []
    for w in weights:
        z = h @ w.astype(np.float64)
        slopes.append(derivative(z))
        h = activations.get(act).forward(z)
    middle = [slopes[index][:, None] * weights[index].T.astype(np.float64) for index in range(1, depth - 1)]
    return [slopes[0], *middle, weights[-1].T.astype(np.float64)]


def _relative_errors(measured: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|s / s_exact - 1| from log10 values (capped at e^700: off by hundreds of decades is off)."""
    return np.abs(np.expm1(np.clip((measured - exact) * math.log(10.0), -700.0, 700.0)))


CASES = {  # name: (factors, the decades the spectrum must span at least, and its smallest value at most)
    "tanh over 30 decades": (lambda: _net("tanh", 10, 60, 1.0), 30, 0.0),
    "sigmoid over 30 decades": (lambda: _net("sigmoid", 10, 50, 1.0), 30, -30.0),
    "chaotic tanh over 300 decades": (lambda: _net("tanh", 8, 60, 25.0, seed=1), 300, 0.0),
    "sigmoid below 1e-308": (lambda: _net("sigmoid", 6, 320, 1.0), 100, -308.0),
    "float32 tanh over 30 decades": (lambda: _net("tanh", 10, 60, 1.0, seed=2, dtype=np.float32), 30, 0.0),
    "orthogonal tanh (narrow)": (lambda: _net("tanh", 12, 32, 1.05, orthogonal=True), 0, 0.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_value_matches_mpmath_to_relative_1e_6_however_many_decades(name):
    make, decades, lowest = CASES[name]
    factors = make()
    spectrum = product_svd.singular_values(factors)
    exact = log10_singular_values(factors, digits_for(spectrum.log10))
    assert spectrum.zeros == 0 and spectrum.bounds.size == 0 and np.all(np.isfinite(exact))
    assert spectrum.log10[0] - spectrum.log10[-1] >= decades and spectrum.log10[-1] <= lowest
    assert np.max(_relative_errors(spectrum.log10, exact)) <= RELATIVE
    assert spectrum.relative_error <= RELATIVE  # and the method's own estimate agrees


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case[1] >= 30])
def test_a_plain_float64_svd_of_the_product_misses_these_spectra(name):
    """What the accuracy test guards against: the dense product's SVD is off by more than 1e-6 (most by far)."""
    factors = CASES[name][0]()
    dense = factors[0] if factors[0].ndim == 2 else np.diag(factors[0])
    for factor in factors[1:]:
        dense = factor @ dense
    with np.errstate(divide="ignore"):
        plain = np.log10(np.linalg.svd(dense, compute_uv=False))
    exact = log10_singular_values(factors, digits_for(product_svd.singular_values(factors).log10))
    assert not np.all(_relative_errors(plain, exact) <= RELATIVE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_rank_and_exact_zeros_are_counted_exactly(seed):
    factors = _net("relu", 16, 48, 2.0, seed=seed)
    spectrum = product_svd.singular_values(factors)
    exact = log10_singular_values(factors, digits_for(spectrum.log10))
    rank = int(np.isfinite(exact).sum())
    alive = min(int(np.count_nonzero(f if f.ndim == 1 else f.any(axis=1))) for f in factors[:-1])
    assert len(spectrum.log10) == rank == alive and spectrum.zeros == 16 - rank > 0 and spectrum.bounds.size == 0
    assert np.max(_relative_errors(spectrum.log10, exact[:rank])) <= RELATIVE


def test_an_exactly_null_direction_is_a_bound_never_a_number():
    """A layer norm's Jacobian kills the all-ones direction: in floats that is round-off, reported as a bound."""
    rng, width = np.random.default_rng(5), 10
    centering = np.eye(width) - np.ones((width, width)) / width
    factors = [centering] + [rng.standard_normal((width, width)) / math.sqrt(width) @ centering for _ in range(15)]
    spectrum = product_svd.singular_values(factors)
    exact = log10_singular_values(factors, 700)  # the floats' own round-off product, ~1e-600
    assert spectrum.bounds.size == 1 and spectrum.zeros == 0 and len(spectrum.log10) == width - 1
    assert spectrum.bounds[0] >= exact[-1]
    assert np.max(_relative_errors(spectrum.log10, exact[:-1])) <= RELATIVE


@st.composite
def _products(draw):
    """A chain of 1 to 7 factors of sizes 1 .. 6: dense Gaussian ones whose rows span up to 60 decades, some rows
    and columns exactly zero (dead units), and diagonals with zeros."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=8))
    factors = []
    for rows, columns in zip(sizes[1:], sizes[:-1]):
        if rows == columns and draw(st.booleans()):
            factor = rng.standard_normal(rows) * 10.0 ** rng.uniform(-30, 30, rows)
            factor[rng.random(rows) < 0.2] = 0.0
        else:
            factor = rng.standard_normal((rows, columns)) * 10.0 ** rng.uniform(-30, 30, (rows, 1))
            factor[rng.random(rows) < 0.15] = 0.0
            factor[:, rng.random(columns) < 0.15] = 0.0
        factors.append(factor)
    return factors


@given(_products())
def test_random_products_match_mpmath_and_count_their_zeros(factors):
    spectrum = product_svd.singular_values(factors)
    size = min(factors[0].shape[-1], factors[-1].shape[0])
    assert len(spectrum.log10) + spectrum.bounds.size + spectrum.zeros == size
    exact = log10_singular_values(factors, digits_for(spectrum.log10) + 60)
    rank = int(np.isfinite(exact).sum())
    assert spectrum.zeros == size - rank and spectrum.bounds.size == 0  # zero rows/columns: generic otherwise
    assert np.all(np.diff(spectrum.log10) <= 0)
    if rank:
        assert np.max(_relative_errors(spectrum.log10, exact[:rank])) <= RELATIVE


def test_factors_near_float64s_limits_neither_overflow_nor_underflow():
    rng = np.random.default_rng(3)
    big, small = rng.standard_normal((5, 5)) * 1e300, rng.standard_normal((5, 5)) * 1e-300
    factors = [big, big, small, big, np.full(5, 1e-250)]
    spectrum = product_svd.singular_values(factors)
    exact = log10_singular_values(factors, digits_for(spectrum.log10))
    assert spectrum.log10[0] > 340 and np.max(_relative_errors(spectrum.log10, exact)) <= RELATIVE


def test_scales_in_reverse_order_are_pivoted_back_and_keep_every_value():
    """A factor whose directions come smallest first, then dense factors that mix them: without column pivoting
    the triangular factors would carry ratios of 1e60 and the small values would be lost."""
    rng = np.random.default_rng(8)
    factors = [10.0 ** np.linspace(-40, 40, 6)] + [rng.standard_normal((6, 6)) for _ in range(4)]
    spectrum = product_svd.singular_values(factors)
    exact = log10_singular_values(factors, digits_for(spectrum.log10))
    assert spectrum.bounds.size == 0 and np.max(_relative_errors(spectrum.log10, exact)) <= RELATIVE


def test_bad_factors_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="factor 1 has 3 columns"):
        product_svd.singular_values([np.ones((4, 2)), np.ones((2, 3))])
    with pytest.raises(ValueError, match="finite"):
        product_svd.singular_values([np.array([[1.0, np.inf]])])
    with pytest.raises(ValueError, match="at least one"):
        product_svd.singular_values([])
