"""Kernel rewrites that save passes must stay bit-identical to the formulas they replace (written here again)."""

import numpy as np
import pytest

from tinygrad_act.engine import kernels


def clipped_sech2(x):
    """The former kernels.sech2: |x| clipped at 400 before e^(-2|x|) (8 passes)."""
    z = np.minimum(np.abs(x), 400)
    z = np.exp(z * -2)
    d = z + 1
    return (z * 4) / (d * d)


def every_kind_of_float(dtype, stride):
    """A stride over every bit pattern of ``dtype`` (both signs, subnormals to the largest float) plus the edges:
    the clip point 400 and its neighbours, where e^(-2|x|) underflows, half the largest float, inf, nan, and
    signalling nans (quiet bit 0): both kernels warn "invalid" on those, the test silences it."""
    info, bits = np.finfo(dtype), np.dtype(f"u{np.dtype(dtype).itemsize}")
    positive = np.arange(0, int(np.array(np.inf, dtype).view(bits)), stride, dtype=bits).view(dtype)
    edges = [400, 51.9, 52, 372.5, 373, 745, info.max / 2, info.max, info.tiny, np.inf, np.nan]
    edges = np.array(edges, dtype)
    with np.errstate(over="ignore"):  # the largest float's neighbour towards inf is inf
        near = [np.nextafter(edges, np.array(s, dtype)) for s in (0, np.inf)]
    signalling = np.array([1, 1 << (info.nmant - 2)], bits) | np.array(np.inf, dtype).view(bits)  # nan bit 0
    values = np.concatenate([positive, edges, *near, signalling.view(dtype)])
    return np.concatenate([values, -values])


@pytest.mark.parametrize(("dtype", "stride"), [(np.float32, 1021), (np.float64, 2**43 + 1)])
def test_sech2_without_the_clip_is_bit_identical(dtype, stride):
    x = every_kind_of_float(dtype, stride)
    with np.errstate(invalid="ignore"):  # signalling nans only (without them, -W error would catch any warning)
        expected = clipped_sech2(x)
        actual = kernels.sech2(x)
        out, scratch = np.empty_like(x), np.empty_like(x)
        in_place = kernels.sech2(x, out, scratch)
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    assert x.size > 500_000
    np.testing.assert_array_equal(actual.view(bits), expected.view(bits))
    assert in_place is out
    np.testing.assert_array_equal(out.view(bits), expected.view(bits))
