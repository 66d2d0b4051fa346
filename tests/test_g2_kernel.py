"""The fast g2 correlator (branch-free, interleaved, multi-threaded) against the plain
two-pointer loop, on the cases that break such kernels: ties, window edges, skewed rates,
one-sided windows, array ends, tiny inputs, windows too wide for the multiply-shift binning."""

from __future__ import annotations

import numpy as np
import pytest

from perovdefect.photons.analysis.g2_kernel import (cross_correlation_hist,
                                                    cross_correlation_hist_simple,
                                                    exact_multiply_shift)


def brute_force(ta, tb, tmin, bw, nbins):
    d = (tb[None, :] - ta[:, None]).ravel()
    d = d[(d >= tmin) & (d < tmin + nbins * bw)]
    return np.bincount((d - tmin) // bw, minlength=nbins)


def test_small_cases_equal_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        na, nb = rng.integers(0, 60, 2)
        ta = np.sort(rng.integers(0, 200, na)).astype(np.int64)  # many ties
        tb = np.sort(rng.integers(0, 200, nb)).astype(np.int64)
        bw = int(rng.choice([1, 2, 3, 7]))
        nbins = int(rng.integers(1, 40))
        tmin = int(rng.integers(-nbins * bw, nbins * bw))
        expect = brute_force(ta, tb, tmin, bw, nbins)
        for threads in (1, 2):
            got = cross_correlation_hist(ta, tb, tmin, bw, nbins, n_threads=threads)
            assert np.array_equal(got, expect), (na, nb, bw, nbins, tmin)
        assert np.array_equal(cross_correlation_hist_simple(ta, tb, tmin, bw, nbins), expect)


@pytest.mark.parametrize("rate_ratio", [0.02, 1.0, 50.0])
@pytest.mark.parametrize("tmin_fraction", [-0.5, 0.0, -1.0, 0.3])
def test_large_streams_equal_the_plain_loop(rate_ratio, tmin_fraction):
    """~4e5 photons, so the fast path runs in several parallel blocks; channel B at 1/50 to 50x
    the rate of A (many or few pointer steps per photon); centred, one-sided and shifted
    windows; ps times with 1 ps ties."""
    rng = np.random.default_rng([int(rate_ratio * 100), int(10 * tmin_fraction) + 20])
    na = 200_000
    nb = int(na * rate_ratio) if rate_ratio < 1 else int(na * min(rate_ratio, 5))
    span = na * 2_000  # mean spacing 2 ns in A
    ta = np.sort(rng.integers(0, span, na)).astype(np.int64)
    tb = np.sort(np.concatenate([rng.integers(0, span, nb), ta[::97] + 3])).astype(np.int64)
    bw, nbins = 100, 400  # +-20 ns in 0.1 ns bins when centred
    tmin = int(tmin_fraction * nbins * bw)
    ref = cross_correlation_hist_simple(ta, tb, tmin, bw, nbins)
    assert ref.sum() > 1000
    for threads in (1, 2, 5):
        assert np.array_equal(cross_correlation_hist(ta, tb, tmin, bw, nbins,
                                                     n_threads=threads), ref)


def test_exact_multiply_shift_binning():
    for bw in (1, 3, 7, 100, 1000, 12_345):
        span = 10_000 * bw
        mult, shift = exact_multiply_shift(bw, span)
        d = np.arange(span, dtype=np.int64)
        assert np.array_equal((d * mult) >> shift, d // bw), bw
    assert exact_multiply_shift(1000, 2**40) is None  # would overflow int64: plain loop


def test_very_wide_window_uses_the_exact_loop():
    rng = np.random.default_rng(5)
    ta = np.sort(rng.integers(0, 2**45, 2000)).astype(np.int64)
    tb = np.sort(rng.integers(0, 2**45, 2000)).astype(np.int64)
    bw, nbins = 2**34, 64  # span 2**40: no int64-safe multiply-shift
    assert np.array_equal(cross_correlation_hist(ta, tb, -32 * bw, bw, nbins),
                          brute_force(ta, tb, -32 * bw, bw, nbins))


def test_bad_binning_is_an_error():
    with pytest.raises(ValueError, match="bin_width"):
        cross_correlation_hist(np.arange(5), np.arange(5), 0, 0, 10)
