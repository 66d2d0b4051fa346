"""Cross-correlation histogram of two sorted photon-time arrays (the numeric core of g2).

Hand-written because the correlators of the field are slower for this job: `benchmarks/run.py`
compares this kernel with numpy searchsorted, tttrlib's Correlator and pycorrelate.

How it is fast (measured on 2 cores, 1e7 photons, +-500 ns in 0.1 ns bins): a plain two-pointer
loop (`_histogram_simple`, kept as the reference and for the tail) spends most of its time on
mispredicted branches while it advances the pointer into the second channel, since the
number of steps is random. The fast path:
- advances each pointer by four branch-free conditional steps (a loop only for the rare rest);
- runs four independent pointer chains interleaved in one loop, so the CPU overlaps their load
  latencies (a single chain is latency-bound);
- counts the first two pairs of each window branch-free, sending misses to private spill bins
  (one shared spill bin serialises the increments through memory);
- bins by an exact multiply-shift instead of a 64-bit division;
- splits the photons of channel A into one block per thread (numba prange, private histograms).
The result is identical, bin for bin, to the simple loop (tested).
"""

from __future__ import annotations

import numba
import numpy as np

N_SPILL = 8  # private spill bins: 4 chains x 2 branch-free pair slots


@numba.njit(cache=True)
def _histogram_simple(ta: np.ndarray, tb: np.ndarray, i_start: int, i_stop: int, tmin: int,
                      bin_width: int, nbins: int, hist: np.ndarray) -> None:
    """Add tb - ta pairs with tmin <= tb - ta < tmin + nbins*bin_width for ta[i_start:i_stop]
    to hist (two pointers; every index checked)."""
    tmax = tmin + nbins * bin_width
    nb = tb.size
    if i_start >= i_stop:
        return
    j0 = np.searchsorted(tb, ta[i_start] + tmin)
    for i in range(i_start, i_stop):
        lo = ta[i] + tmin
        while j0 < nb and tb[j0] < lo:
            j0 += 1
        hi = ta[i] + tmax
        j = j0
        while j < nb and tb[j] < hi:
            hist[(tb[j] - lo) // bin_width] += 1
            j += 1


@numba.njit(inline="always")
def _advance(tb: np.ndarray, j: int, lo: int) -> int:
    """First index >= j with tb[index] >= lo: four branch-free steps, then a (rare) loop."""
    j += tb[j] < lo
    j += tb[j] < lo
    j += tb[j] < lo
    j += tb[j] < lo
    while tb[j] < lo:
        j += 1
    return j


@numba.njit(inline="always")
def _count_window(tb: np.ndarray, j: int, lo: int, hi: int, mult: int, shift: int,
                  hist: np.ndarray, spill: int) -> None:
    """Add the pairs tb[j...] < hi (tb[j] >= lo) to hist; bin = ((t - lo) * mult) >> shift.
    The first two are counted branch-free (a miss goes to the spill bins spill, spill + 1)."""
    t0 = tb[j]
    t1 = tb[j + 1]
    k0 = ((t0 - lo) * mult) >> shift
    k1 = ((t1 - lo) * mult) >> shift
    ok1 = t1 < hi
    hist[k0 if t0 < hi else spill] += 1
    hist[k1 if ok1 else spill + 1] += 1
    if ok1:
        j += 2
        while tb[j] < hi:
            hist[((tb[j] - lo) * mult) >> shift] += 1
            j += 1


@numba.njit(cache=True)
def _histogram_block(ta: np.ndarray, tb: np.ndarray, i_start: int, i_stop: int, tmin: int,
                     tmax: int, mult: int, shift: int, nbins: int, hist: np.ndarray) -> None:
    """Fast path for ta[i_start:i_stop]. Caller guarantees ta[i] + tmax <= tb[-2] for every i
    here, so no read passes the end of tb (the window's first index >= hi exists and is at most
    nb - 2; the pair slots read one past the first index >= lo)."""
    n = i_stop - i_start
    seg = n // 4
    s0 = i_start
    s1 = s0 + seg
    s2 = s1 + seg
    s3 = s2 + seg
    if seg > 0:
        j0 = np.searchsorted(tb, ta[s0] + tmin)
        j1 = np.searchsorted(tb, ta[s1] + tmin)
        j2 = np.searchsorted(tb, ta[s2] + tmin)
        j3 = np.searchsorted(tb, ta[s3] + tmin)
        for m in range(seg):
            a0 = ta[s0 + m]
            a1 = ta[s1 + m]
            a2 = ta[s2 + m]
            a3 = ta[s3 + m]
            j0 = _advance(tb, j0, a0 + tmin)
            j1 = _advance(tb, j1, a1 + tmin)
            j2 = _advance(tb, j2, a2 + tmin)
            j3 = _advance(tb, j3, a3 + tmin)
            _count_window(tb, j0, a0 + tmin, a0 + tmax, mult, shift, hist, nbins)
            _count_window(tb, j1, a1 + tmin, a1 + tmax, mult, shift, hist, nbins + 2)
            _count_window(tb, j2, a2 + tmin, a2 + tmax, mult, shift, hist, nbins + 4)
            _count_window(tb, j3, a3 + tmin, a3 + tmax, mult, shift, hist, nbins + 6)
    rest = s0 + 4 * seg
    if rest < i_stop:
        j = np.searchsorted(tb, ta[rest] + tmin)
        for i in range(rest, i_stop):
            j = _advance(tb, j, ta[i] + tmin)
            _count_window(tb, j, ta[i] + tmin, ta[i] + tmax, mult, shift, hist, nbins)


@numba.njit(cache=True, parallel=True)
def _histogram_parallel(ta: np.ndarray, tb: np.ndarray, n_safe: int, n_blocks: int, tmin: int,
                        tmax: int, mult: int, shift: int, nbins: int) -> np.ndarray:
    hists = np.zeros((n_blocks, nbins + N_SPILL), np.int64)
    for b in numba.prange(n_blocks):
        _histogram_block(ta, tb, b * n_safe // n_blocks, (b + 1) * n_safe // n_blocks, tmin,
                         tmax, mult, shift, nbins, hists[b])
    return hists.sum(axis=0)


def exact_multiply_shift(bin_width: int, span: int) -> tuple[int, int] | None:
    """(mult, shift) with (d * mult) >> shift == d // bin_width for all 0 <= d < span, and
    span * mult < 2**63 (int64 arithmetic); None when no such pair exists (very wide windows).

    mult = ceil(2**shift / bin_width) = (2**shift + e) / bin_width with 0 <= e < bin_width; for
    d = q*bin_width + r, d*mult / 2**shift = q + r/bin_width + d*e/(bin_width*2**shift), which
    stays below q + 1 when d*e < 2**shift, guaranteed by 2**shift >= span * bin_width."""
    shift = max(1, int(span * bin_width - 1).bit_length())
    mult = -(-(1 << shift) // bin_width)
    if shift > 62 or span * mult >= 1 << 63:
        return None
    return mult, shift


def cross_correlation_hist(ta: np.ndarray, tb: np.ndarray, tmin: int, bin_width: int,
                           nbins: int, n_threads: int | None = None) -> np.ndarray:
    """Histogram (int64, nbins) of tb - ta over all pairs with
    tmin <= tb - ta < tmin + nbins * bin_width.

    ta, tb: sorted int64 times (any integer unit, e.g. ps); tmin, bin_width in the same unit.
    n_threads: blocks run in parallel (default: numba's thread count)."""
    ta = np.ascontiguousarray(ta, dtype=np.int64)
    tb = np.ascontiguousarray(tb, dtype=np.int64)
    tmin, bin_width, nbins = int(tmin), int(bin_width), int(nbins)
    if bin_width < 1 or nbins < 1:
        raise ValueError(f"bin_width ({bin_width}) and nbins ({nbins}) must be >= 1")
    tmax = tmin + nbins * bin_width
    hist = np.zeros(nbins, np.int64)
    if ta.size == 0 or tb.size == 0:
        return hist
    ms = exact_multiply_shift(bin_width, nbins * bin_width)
    n_safe = 0
    if ms is not None and tb.size >= 2:
        n_safe = int(np.searchsorted(ta, tb[-2] - tmax, side="right"))
    if n_safe > 0:
        threads = numba.get_num_threads() if n_threads is None else max(1, int(n_threads))
        n_blocks = max(1, min(threads, n_safe // 100_000))
        hist += _histogram_parallel(ta, tb, n_safe, n_blocks, tmin, tmax, ms[0], ms[1],
                                    nbins)[:nbins]
    _histogram_simple(ta, tb, n_safe, ta.size, tmin, bin_width, nbins, hist)
    return hist


def cross_correlation_hist_simple(ta: np.ndarray, tb: np.ndarray, tmin: int, bin_width: int,
                                  nbins: int) -> np.ndarray:
    """Reference implementation (plain two-pointer loop, one thread); same result."""
    hist = np.zeros(int(nbins), np.int64)
    _histogram_simple(np.asarray(ta, np.int64), np.asarray(tb, np.int64), 0, len(ta),
                      int(tmin), int(bin_width), int(nbins), hist)
    return hist
