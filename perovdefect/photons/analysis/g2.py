"""Second-order correlation g2(tau) between two detectors (Hanbury Brown-Twiss).

Pulsed excitation: g2(0) is the area of the zero-delay peak over the mean area of the side
peaks. Areas are either summed over a full laser period centred on each peak ("windows", right
when the lifetime tau << period T), or, when tau is not << T, fitted: the coincidences of two
photons from pulses k apart are distributed as the difference of two exponential delays, a
Laplace peak exp(-|t - kT|/tau) / (2 tau), so the histogram is fitted with sum_k A_k L(t - kT)
by non-negative least squares (no separate flat term: with tau ~ T a comb of equal peaks is
itself nearly flat, and flat background is removed by the E0 correction below); the tails of neighbouring peaks are then
assigned to the peak they belong to (a window sum would count them in the centre).
Background correction: the expected number of coincidences involving a background count in the
zero-delay peak is E0 = sum_i (c_a,i b_b + b_a c_b,i - n_i b_a b_b) over trace bins i (c: counts
per bin, b: background counts per pulse, n_i: pulses per bin), and g2_c = (A_0 - E0) / (A_side -
E0). For a constant signal this is Brouri et al., Opt. Lett. 25, 1294 (2000),
g2_c = (g2 - (1 - rho^2)) / rho^2; resolving the trace keeps it right for a blinking emitter,
whose side peaks grow with <S^2> rather than <S>^2. Time gating drops photons with microtime below a gate, which removes prompt
background and fast multiexciton emission. M = 1 / (1 - g2(0)) for M equal emitters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis.g2_kernel import cross_correlation_hist
from perovdefect.photons.stats import G2
from perovdefect.photons.stream import PhotonStream


def _channel_counts(stream: PhotonStream) -> dict[int, int]:
    """Photons per channel by one bincount (np.unique would sort the whole stream)."""
    if stream.channel.size == 0:
        return {}
    ch = stream.channel
    lo = int(ch.min())
    n = np.bincount(ch.view(np.uint8) if ch.dtype == np.int8 and lo >= 0 else
                    ch.astype(np.int64) - lo)
    off = 0 if (ch.dtype == np.int8 and lo >= 0) else lo
    return {c + off: int(k) for c, k in enumerate(n) if k}


def _two_detectors(stream: PhotonStream, channels: tuple[int, int] | None,
                   counts: dict[int, int] | None = None) -> tuple[int, int]:
    counts = _channel_counts(stream) if counts is None else counts
    present = sorted(counts)
    if channels is None:
        if len(present) < 2:
            raise AnalysisError(f"{stream.source or 'stream'}: g2 needs two detectors; this "
                                f"recording has photons on channel(s) {present} only")
        channels = tuple(sorted(sorted(counts, key=counts.get)[-2:]))
    for c in channels:
        if c not in present:
            raise AnalysisError(f"{stream.source or 'stream'}: no photons on channel {c} "
                                f"(present: {present})")
    return channels


def correlate(stream: PhotonStream, window_ns: float = 500.0, bin_width_ns: float = 0.1,
              channels: tuple[int, int] | None = None, gate_ns: float = 0.0,
              mask: np.ndarray | None = None, times_ps: np.ndarray | None = None,
              channel_counts: dict[int, int] | None = None) -> G2:
    """Cross-correlation histogram of detector B relative to detector A over +-window_ns.
    times_ps: the stream's `times_ps()` when the caller already has them."""
    a, b = _two_detectors(stream, channels, channel_counts)
    sel = None if mask is None else mask.copy()
    if gate_ns > 0:
        g = stream.microtimes_ns() >= gate_ns
        sel = g if sel is None else sel & g
    t = stream.times_ps() if times_ps is None else times_ps
    period = 1e9 / stream.sync_rate_hz if stream.sync_rate_hz else None
    if sel is None:  # one numba pass instead of two masks and two gathers
        from perovdefect.photons.analysis.kernels import split_channels
        ta, tb = split_channels(stream.channel, t, a, b)
        return correlate_times(ta, tb, window_ns, bin_width_ns, period, gate_ns, (a, b))
    ia, ib = stream.channel == a, stream.channel == b
    ia &= sel
    ib &= sel
    return correlate_times(t[ia], t[ib], window_ns, bin_width_ns, period, gate_ns, (a, b))


def correlate_times(ta: np.ndarray, tb: np.ndarray, window_ns: float = 500.0,
                    bin_width_ns: float = 0.1, period_ns: float | None = None,
                    gate_ns: float = 0.0, channels: tuple[int, int] = (0, 1)) -> G2:
    """Cross-correlation histogram of two detectors' arrival times (int64 ps). Unsorted input
    is sorted stably (T3 times are nearly sorted already: timsort's near-linear case); sorted
    input, the usual case for one detector, is used as it is."""
    from perovdefect.photons.analysis.kernels import is_sorted
    ta = np.ascontiguousarray(ta, dtype=np.int64)
    tb = np.ascontiguousarray(tb, dtype=np.int64)
    if not is_sorted(ta):
        ta = np.sort(ta, kind="stable")
    if not is_sorted(tb):
        tb = np.sort(tb, kind="stable")
    bw = max(1, int(round(bin_width_ns * 1e3)))
    nbins = int(np.ceil(2 * window_ns * 1e3 / bw))
    tmin = -(nbins // 2) * bw
    hist = cross_correlation_hist(ta, tb, tmin, bw, nbins)
    tau = (tmin + (np.arange(nbins) + 0.5) * bw) / 1e3
    return G2(tau_ns=tau.tolist(), coincidences=hist.tolist(), bin_width_ns=bw / 1e3,
              stored_bin_ns=bw / 1e3, period_ns=period_ns, gate_ns=gate_ns,
              channels=[int(c) for c in channels],
              photons_per_detector=[int(ta.size), int(tb.size)])


def fitted_peak_areas(tau_ns: np.ndarray, hist: np.ndarray, period_ns: float,
                      decay_tau_ns: float, k_max: int) -> tuple[dict[int, float], np.ndarray]:
    """Peak areas A_k from a non-negative least-squares fit of Laplace peaks (scale
    decay_tau_ns) centred at k*period; peaks just outside the window are included so that their
    tails are not counted in the edge peaks. Flat background stays in the areas, as it does in
    window sums, and is removed by the background correction.

    Returns the areas and their covariance (Poisson, (J^T W J)^-1 over k = -k_max..k_max):
    overlapping peaks anticorrelate, so the errors are larger than sqrt(A_k)."""
    from scipy.optimize import nnls
    bw = float(tau_ns[1] - tau_ns[0])
    ks = list(range(-k_max - 1, k_max + 2))
    cols = [np.exp(-np.abs(tau_ns - k * period_ns) / decay_tau_ns) / (2 * decay_tau_ns) * bw
            for k in ks]
    A = np.column_stack(cols)
    w = 1.0 / np.sqrt(np.maximum(hist, 1.0))  # Poisson weights
    J = A * w[:, None]
    coef, _ = nnls(J, hist * w)
    cov = np.linalg.pinv(J.T @ J)[1:-1, 1:-1]  # drop the two outside peaks
    return {k: float(c) for k, c in zip(ks, coef) if abs(k) <= k_max}, cov


def pulsed_g2_zero(result: G2, rho: Sequence[float] | None = None,
                   n_side: int | None = None, background_area: float | None = None,
                   decay_tau_ns: float | None = None) -> G2:
    """g2(0) from peak areas (full-period windows). Background correction either from the
    expected background coincidences per peak (`background_area`, E0 above) or, for a constant
    signal, from the signal fractions `rho`."""
    if not result.period_ns:
        raise AnalysisError("pulsed g2(0) needs the laser period (sync rate)")
    tau = np.asarray(result.tau_ns)
    hist = np.asarray(result.coincidences)
    T = result.period_ns
    k_max = int(np.floor((tau.max() + result.bin_width_ns / 2 - T / 2) / T))
    if n_side is not None:
        k_max = min(k_max, n_side)
    if k_max < 1:
        raise AnalysisError(f"correlation window must exceed 1.5 laser periods ({1.5 * T:.0f} "
                            "ns) to hold a side peak")
    cov = None
    if decay_tau_ns is not None and decay_tau_ns > 0.1 * T:
        areas, cov = fitted_peak_areas(tau, hist, T, decay_tau_ns, k_max)
        result.area_method = f"laplace-fit (tau {decay_tau_ns:.2f} ns)"
    else:
        areas = {}
        for k in range(-k_max, k_max + 1):
            sel = (tau >= k * T - T / 2) & (tau < k * T + T / 2)
            areas[k] = int(hist[sel].sum())
        result.area_method = "windows"
    side = np.array([areas[k] for k in areas if k != 0], dtype=float)
    if side.sum() == 0:
        raise AnalysisError("no coincidences in the side peaks: too few photons for g2")
    mean_side = side.mean()
    g_raw = areas[0] / mean_side
    if cov is None:
        # Poisson errors of the centre area (sqrt(A0 + 1): finite for an empty centre peak) and
        # of the mean side area, combined in quadrature
        err_raw = float(np.hypot(np.sqrt(areas[0] + 1.0) / mean_side,
                                 g_raw / np.sqrt(side.sum())))
    else:
        # linear error propagation of g = A0 / mean(A_side) with the fit covariance
        ks = sorted(areas)
        grad = np.array([1.0 / mean_side if k == 0 else -g_raw / (mean_side * len(side))
                         for k in ks])
        err_raw = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    g, err = g_raw, err_raw
    if background_area is not None:
        denom = mean_side - background_area
        if denom <= 0:
            raise AnalysisError("background exceeds the side-peak coincidences: check the "
                                "background rate")
        g = (areas[0] - background_area) / denom
        err = float(np.hypot(np.sqrt(areas[0] + 1.0) / denom,
                             g * np.sqrt(side.sum()) / len(side) / denom))
    elif rho is not None:
        r2 = rho[0] * rho[1]
        if not 0 < r2 <= 1:
            raise AnalysisError(f"signal fractions rho must be in (0, 1], got {rho}")
        g = (g_raw - (1 - r2)) / r2
        err = err_raw / r2
    result.peak_areas = {str(k): float(a) for k, a in areas.items()}
    result.g2_0_raw, result.g2_0, result.g2_0_err = float(g_raw), float(g), err
    result.rho = None if rho is None else [float(r) for r in rho]
    if g < 1:
        result.n_emitters = 1.0 / (1.0 - g)
        result.n_emitters_err = err / (1.0 - g) ** 2
    return result


def signal_fraction(stream: PhotonStream, background_cps: float, channel: int,
                    n: int | None = None) -> float:
    """rho = S / (S + B) for one detector given its background rate (counts/s); n: its photons
    when the caller has counted them."""
    n = int(np.sum(stream.channel == channel)) if n is None else n
    total = n / stream.duration_s()
    return float(max(total - background_cps, 0.0) / total) if total > 0 else 0.0


def g2_analysis(stream: PhotonStream, window_ns: float = 500.0, bin_width_ns: float = 0.1,
                gate_ns: float = 0.0, background_cps: float | tuple[float, float] | None = None,
                channels: tuple[int, int] | None = None, mask: np.ndarray | None = None,
                decay_tau_ns: float | None = None, times_ps: np.ndarray | None = None,
                bin_index: np.ndarray | None = None,
                channel_counts: dict[int, int] | None = None,
                active_s: float | None = None) -> G2:
    """Correlate, then pulsed g2(0) and M (background-corrected when background_cps is given).

    decay_tau_ns: the emitter's lifetime; when it exceeds a tenth of the laser period the peak
    areas are fitted (Laplace peaks) instead of summed over windows. None: estimated from the
    microtimes (T3 data) by a mono-exponential fit. times_ps / bin_index: the stream's
    `times_ps()` and 10 ms trace-bin index per photon, channel_counts its photons per
    channel, when the caller already has them; active_s: the time (s) the masked photons span
    (a level's time) for the background correction."""
    res = correlate(stream, window_ns, bin_width_ns, channels, gate_ns, mask, times_ps,
                    channel_counts)
    e0 = None
    if background_cps is not None and res.period_ns:
        bg = background_cps if isinstance(background_cps, tuple) else (background_cps,) * 2
        e0 = background_coincidences(stream, bg, res.channels, gate_ns, mask,
                                     bin_index=bin_index, active_s=active_s,
                                     photons=tuple(res.photons_per_detector))
        cc = channel_counts or {}
        rho = (signal_fraction(stream, bg[0], res.channels[0], cc.get(res.channels[0])),
               signal_fraction(stream, bg[1], res.channels[1], cc.get(res.channels[1])))
        res.rho = list(rho)
    if res.period_ns:
        if decay_tau_ns is None and stream.microtime is not None:
            decay_tau_ns = _lifetime_estimate(stream)
        pulsed_g2_zero(res, res.rho, background_area=e0, decay_tau_ns=decay_tau_ns)
    return res


def _lifetime_estimate(stream: PhotonStream) -> float | None:
    """Mono-exponential lifetime (ns) of all photons, to decide how peak areas are taken."""
    from perovdefect.photons.analysis.decay import decay_histogram, fit_decay
    try:
        t, h, period = decay_histogram(stream, bin_width_ns=0.2)
        return fit_decay(t, h, period, 1).tau_ns[0]
    except AnalysisError:
        return None


def background_coincidences(stream: PhotonStream, background_cps: tuple[float, float],
                            channels: tuple[int, int], gate_ns: float = 0.0,
                            mask: np.ndarray | None = None, bin_width_s: float = 0.01,
                            bin_index: np.ndarray | None = None,
                            active_s: float | None = None,
                            photons: tuple[int, int] | None = None) -> float:
    """E0: expected zero-delay coincidences involving at least one background count
    (background flat in time and microtime). The sum over trace bins i of
    c_a,i b_b + b_a c_b,i - n_i b_a b_b is linear in the counts, so it equals
    N_a b_b + b_a N_b - N_pulses b_a b_b for the selected photons: however the signal blinks,
    only the totals matter. N_pulses: over `active_s` (the selected photons' time, e.g. one
    level's) or the recording's trace bins of bin_width_s. photons: (N_a, N_b) when the caller
    has counted them (the correlation does)."""
    if not stream.sync_rate_hz:
        raise AnalysisError("background correction of a pulsed g2 needs the sync rate")
    period_s = 1.0 / stream.sync_rate_hz
    keep_frac = max(0.0, 1.0 - gate_ns * 1e-9 / period_s)
    if photons is not None:
        n_a, n_b = photons
    else:
        sel = np.ones(len(stream), bool) if mask is None else mask.copy()
        if gate_ns > 0:
            sel &= stream.microtimes_ns() >= gate_ns
        n_a = int(np.count_nonzero(sel & (stream.channel == channels[0])))
        n_b = int(np.count_nonzero(sel & (stream.channel == channels[1])))
    if active_s is None:  # the trace bins up to the last photon (bin_index: unused, kept)
        last = float(stream.macrotime.max()) * stream.macrotime_resolution_s if len(stream) \
            else 0.0
        active_s = (int(np.floor(last / bin_width_s)) + 1) * bin_width_s
    n_pulses = active_s / period_s
    ba = background_cps[0] * period_s * keep_frac
    bb = background_cps[1] * period_s * keep_frac
    return float(n_a * bb + ba * n_b - n_pulses * ba * bb)


def bx_x_ratio(g2_0: float | None, g2_0_err: float | None,
               excitation_N: float | None = None) -> tuple[float | None, float | None, str]:
    """g2(0) of one emitter read as the biexciton-to-exciton quantum-yield ratio
    r = QY_BX/QY_X (Nair, Zhao and Bawendi, Nano Lett. 11, 1136 (2011)).

    With Poisson absorption of mean <N> (P1 = 1 - e^-N pulses excited, P2 = P1 - N e^-N doubly
    excited), the zero-delay peak over the side peaks is g2(0) = 2 r P2 / (P1 + r P2)^2, which
    tends to r at low <N>; with <N> given that relation is inverted (the smaller root), else the
    low-excitation limit r = g2(0) is used. Returns (r, its 1-sigma error, method)."""
    if g2_0 is None:
        return None, None, "no g2(0)"
    if excitation_N is None or excitation_N <= 0:
        return float(g2_0), g2_0_err, "low-excitation limit QY_BX/QY_X = g2(0)"

    p1 = -math.expm1(-excitation_N)
    p2 = p1 - excitation_N * math.exp(-excitation_N)

    slope0 = p1 * p1 / (2 * p2)  # dr/dg at g = 0 (g ~ 2 r P2 / P1^2 for small r)

    def invert(g: float) -> float | None:
        if g <= 0:  # a g2(0) measured below zero: the linear reading keeps the estimate unbiased
            return g * slope0
        a, b, c = g * p2 * p2, 2 * p2 * (g * p1 - 1.0), g * p1 * p1
        disc = b * b - 4 * a * c
        if disc < 0:
            return None
        return (-b - math.sqrt(disc)) / (2 * a)

    r = invert(g2_0)
    if r is None:
        return None, None, (f"g2(0) = {g2_0:.3f} exceeds what one emitter can give at "
                            f"<N> = {excitation_N:g}")
    err = None
    if g2_0_err:
        h = max(1e-4, 1e-3 * abs(g2_0))
        lo, hi = invert(g2_0 - h), invert(g2_0 + h)
        if lo is not None and hi is not None:
            err = abs(hi - lo) / (2 * h) * g2_0_err
    return float(r), err, (f"g2(0) = 2 r P2/(P1 + r P2)^2 inverted at <N> = {excitation_N:g} "
                           "(Poisson absorption)")
