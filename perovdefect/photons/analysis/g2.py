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

from dataclasses import asdict, dataclass, field

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis.g2_kernel import cross_correlation_hist
from perovdefect.photons.stream import PhotonStream


@dataclass
class G2Result:
    """Raw histogram (coincidences per bin; tau in ns), peak areas, g2(0) raw/corrected with
    1-sigma Poisson errors, emitter number M with its error."""

    tau_ns: list[float]
    coincidences: list[int]
    bin_width_ns: float
    period_ns: float | None
    peak_areas: dict[int, float] = field(default_factory=dict)
    area_method: str = "windows"
    g2_0_raw: float | None = None
    g2_0: float | None = None
    g2_0_err: float | None = None
    n_emitters: float | None = None
    n_emitters_err: float | None = None
    rho: tuple[float, float] | None = None
    gate_ns: float = 0.0
    channels: tuple[int, int] = (0, 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _two_detectors(stream: PhotonStream, channels: tuple[int, int] | None) -> tuple[int, int]:
    present = stream.channels()
    if channels is None:
        if len(present) < 2:
            raise AnalysisError(f"{stream.source or 'stream'}: g2 needs two detectors; this "
                                f"recording has photons on channel(s) {present} only")
        counts = stream.photons_per_channel()
        channels = tuple(sorted(sorted(counts, key=counts.get)[-2:]))
    for c in channels:
        if c not in present:
            raise AnalysisError(f"{stream.source or 'stream'}: no photons on channel {c} "
                                f"(present: {present})")
    return channels


def correlate(stream: PhotonStream, window_ns: float = 500.0, bin_width_ns: float = 0.1,
              channels: tuple[int, int] | None = None, gate_ns: float = 0.0,
              mask: np.ndarray | None = None) -> G2Result:
    """Cross-correlation histogram of detector B relative to detector A over +-window_ns."""
    a, b = _two_detectors(stream, channels)
    sel = np.ones(len(stream), bool) if mask is None else mask.copy()
    if gate_ns > 0:
        sel &= stream.microtimes_ns() >= gate_ns
    t = stream.times_ps()
    ta, tb = t[sel & (stream.channel == a)], t[sel & (stream.channel == b)]
    ta.sort()
    tb.sort()
    bw = max(1, int(round(bin_width_ns * 1e3)))
    nbins = int(np.ceil(2 * window_ns * 1e3 / bw))
    tmin = -(nbins // 2) * bw
    hist = cross_correlation_hist(ta, tb, tmin, bw, nbins)
    tau = (tmin + (np.arange(nbins) + 0.5) * bw) / 1e3
    period = 1e9 / stream.sync_rate_hz if stream.sync_rate_hz else None
    return G2Result(tau_ns=tau.tolist(), coincidences=hist.tolist(), bin_width_ns=bw / 1e3,
                    period_ns=period, gate_ns=gate_ns, channels=(a, b))


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


def pulsed_g2_zero(result: G2Result, rho: tuple[float, float] | None = None,
                   n_side: int | None = None, background_area: float | None = None,
                   decay_tau_ns: float | None = None) -> G2Result:
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
    result.peak_areas = areas
    result.g2_0_raw, result.g2_0, result.g2_0_err, result.rho = g_raw, g, err, rho
    if g < 1:
        result.n_emitters = 1.0 / (1.0 - g)
        result.n_emitters_err = err / (1.0 - g) ** 2
    return result


def signal_fraction(stream: PhotonStream, background_cps: float, channel: int) -> float:
    """rho = S / (S + B) for one detector given its background rate (counts/s)."""
    n = int(np.sum(stream.channel == channel))
    total = n / stream.duration_s()
    return float(max(total - background_cps, 0.0) / total) if total > 0 else 0.0


def g2_analysis(stream: PhotonStream, window_ns: float = 500.0, bin_width_ns: float = 0.1,
                gate_ns: float = 0.0, background_cps: float | tuple[float, float] | None = None,
                channels: tuple[int, int] | None = None, mask: np.ndarray | None = None,
                decay_tau_ns: float | None = None) -> G2Result:
    """Correlate, then pulsed g2(0) and M (background-corrected when background_cps is given).

    decay_tau_ns: the emitter's lifetime; when it exceeds a tenth of the laser period the peak
    areas are fitted (Laplace peaks) instead of summed over windows. None: estimated from the
    microtimes (T3 data) by a mono-exponential fit."""
    res = correlate(stream, window_ns, bin_width_ns, channels, gate_ns, mask)
    e0 = None
    if background_cps is not None and res.period_ns:
        bg = background_cps if isinstance(background_cps, tuple) else (background_cps,) * 2
        e0 = background_coincidences(stream, bg, res.channels, gate_ns, mask)
        rho = (signal_fraction(stream, bg[0], res.channels[0]),
               signal_fraction(stream, bg[1], res.channels[1]))
        res.rho = rho
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
                            mask: np.ndarray | None = None, bin_width_s: float = 0.01) -> float:
    """E0: expected zero-delay coincidences involving at least one background count, from the
    trace resolved in bins of bin_width_s (background assumed flat in time and microtime)."""
    from perovdefect.photons.analysis.trace import photon_bin_index
    if not stream.sync_rate_hz:
        raise AnalysisError("background correction of a pulsed g2 needs the sync rate")
    period_s = 1.0 / stream.sync_rate_hz
    keep_frac = max(0.0, 1.0 - gate_ns * 1e-9 / period_s)
    sel = np.ones(len(stream), bool) if mask is None else mask.copy()
    if gate_ns > 0:
        sel &= stream.microtimes_ns() >= gate_ns
    idx = photon_bin_index(stream, bin_width_s)
    n_bins = int(idx.max()) + 1 if idx.size else 1
    ca = np.bincount(idx[sel & (stream.channel == channels[0])], minlength=n_bins)
    cb = np.bincount(idx[sel & (stream.channel == channels[1])], minlength=n_bins)
    n_pulses = bin_width_s / period_s
    ba = background_cps[0] * period_s * keep_frac
    bb = background_cps[1] * period_s * keep_frac
    return float(np.sum(ca * bb + ba * cb - n_pulses * ba * bb))
