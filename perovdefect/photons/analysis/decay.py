"""Fluorescence decays: microtime histograms for any photon selection, and Poisson
maximum-likelihood fits of 1 or 2 exponentials reconvolved with the IRF.

Model on the TCSPC period [0, P): exponential decays excited by every earlier pulse (so tails
are included when tau is not << P) seen through either a Gaussian IRF (width and position
fitted; closed-form exponentially modified Gaussian) or a measured IRF histogram (circular FFT
convolution of exp(-t/tau) / (1 - exp(-P/tau)), shift fitted), plus a flat background.
Fitting minimises the Poisson deviance with scipy.optimize.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import erfc, erfcx

from perovdefect.errors import AnalysisError
from perovdefect.photons.stream import PhotonStream


@dataclass
class DecayFit:
    """Fitted lifetimes (ns), amplitude fractions, average lifetimes (ns), IRF, background
    (counts/bin), reduced Poisson deviance and the number of photons fitted."""

    n_exp: int
    tau_ns: list[float]
    fractions: list[float]
    tau_amplitude_avg_ns: float
    tau_intensity_avg_ns: float
    tau_err_ns: list[float] = field(default_factory=list)
    irf_center_ns: float | None = None
    irf_sigma_ns: float | None = None
    background_per_bin: float = 0.0
    reduced_deviance: float = float("nan")
    n_photons: int = 0
    bin_width_ns: float = 0.0
    model: str = "gaussian-irf"

    def to_dict(self) -> dict:
        return asdict(self)


def decay_histogram(stream: PhotonStream, mask: np.ndarray | None = None,
                    bin_width_ns: float = 0.1,
                    micro_ns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(bin starts ns, counts, period ns) of the microtimes of the selected photons (T3 only).
    `micro_ns`: the stream's microtimes in ns when the caller already has them."""
    micro_ns = stream.microtimes_ns() if micro_ns is None else micro_ns
    if mask is not None:
        micro_ns = micro_ns[mask]
    if not stream.sync_rate_hz:
        raise AnalysisError(f"{stream.source}: no sync rate, cannot build a periodic decay")
    period_ns = 1e9 / stream.sync_rate_hz
    res_ns = stream.microtime_resolution_s * 1e9
    factor = max(1, int(round(bin_width_ns / res_ns)))
    width = factor * res_ns
    n_bins = int(np.ceil(period_ns / width))
    counts = np.bincount(np.minimum((micro_ns / width).astype(np.int64), n_bins - 1),
                         minlength=n_bins)
    return np.arange(n_bins) * width, counts, period_ns


def _periodic_decay(t: np.ndarray, tau: float, period: float) -> np.ndarray:
    return np.exp(-t / tau) / (-np.expm1(-period / tau))


def _exgauss(x: np.ndarray, tau: float, sigma: float) -> np.ndarray:
    """Unit-area Gaussian (sigma) convolved with exp(-x/tau) H(x), computed stably:
    0.5 exp(s^2/2tau^2 - x/tau) erfc(b), b = (sigma/tau - x/sigma)/sqrt(2), rewritten with
    erfcx where the exponential would overflow (b > 0)."""
    b = (sigma / tau - x / sigma) / np.sqrt(2.0)
    pos = b > 0
    out = np.empty_like(x)
    out[pos] = 0.5 * np.exp(-0.5 * (x[pos] / sigma) ** 2) * erfcx(b[pos])
    xn = x[~pos]
    out[~pos] = 0.5 * np.exp(0.5 * (sigma / tau) ** 2 - xn / tau) * erfc(b[~pos])
    return out


def _periodic_exgauss(t: np.ndarray, tau: float, center: float, sigma: float,
                      period: float) -> np.ndarray:
    """Decay excited by pulses at center + m*period (all m <= 0, and the next one), seen
    through a Gaussian IRF: g(x0) + g(x0 - P) + sum_{m>=1} g(x0 + mP), with x0 = t - center.
    For m >= 1 the erfc factor is 2, so that sum is exp(s^2/2tau^2 - (x0 + P)/tau) / (1 - q),
    q = exp(-P/tau)."""
    x0 = t - center
    q = np.exp(-period / tau)
    with np.errstate(under="ignore"):
        earlier = np.exp(np.minimum(0.5 * (sigma / tau) ** 2 - (x0 + period) / tau, 700.0)) \
            / (1.0 - q)
    return _exgauss(x0, tau, sigma) + _exgauss(x0 - period, tau, sigma) + earlier


def _model(params: np.ndarray, t: np.ndarray, period: float, n_exp: int,
           irf: np.ndarray | None) -> np.ndarray:
    amps = np.exp(params[:n_exp])
    taus = np.exp(params[n_exp:2 * n_exp])
    bg = np.exp(params[2 * n_exp])
    if irf is None:
        center, sigma = params[2 * n_exp + 1], np.exp(params[2 * n_exp + 2])
        tc = t + (t[1] - t[0]) / 2  # bin centres
        # amplitudes are pre-exponential factors in counts per bin, as in the FFT branch
        shape = sum(a * _periodic_exgauss(tc, tau, center, sigma, period)
                    for a, tau in zip(amps, taus))
        return np.maximum(shape, 0) + bg
    decay = sum(a * _periodic_decay(t, tau, period) for a, tau in zip(amps, taus))
    shift = params[2 * n_exp + 1]
    freq = np.fft.rfftfreq(t.size, d=t[1] - t[0])
    kernel = np.fft.irfft(np.fft.rfft(irf) * np.exp(-2j * np.pi * freq * shift), n=t.size)
    conv = np.fft.irfft(np.fft.rfft(decay) * np.fft.rfft(kernel), n=t.size)
    return np.maximum(conv, 0) + bg


def _deviance(y: np.ndarray, m: np.ndarray) -> float:
    m = np.maximum(m, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / m), 0.0)
    return float(2 * np.sum(term - (y - m)))


def fit_decay(t_ns: np.ndarray, counts: np.ndarray, period_ns: float, n_exp: int = 1,
              irf: np.ndarray | None = None, tau_guess_ns: list[float] | None = None) -> DecayFit:
    """Poisson ML fit of `n_exp` (1 or 2) exponentials reconvolved with the IRF (Gaussian,
    fitted, when `irf` is None; else the measured IRF histogram on the same bins)."""
    y = np.asarray(counts, dtype=float)
    if y.sum() < 50:
        raise AnalysisError(f"too few photons ({int(y.sum())}) for a decay fit (need >= 50)")
    if n_exp not in (1, 2):
        raise AnalysisError("n_exp must be 1 or 2")
    if irf is not None:
        irf = np.asarray(irf, float)
        if irf.shape != y.shape or irf.sum() <= 0:
            raise AnalysisError("measured IRF must be a non-empty histogram on the decay's bins")
        irf = irf / irf.sum()
    dt = float(t_ns[1] - t_ns[0])
    peak = float(t_ns[np.argmax(y)])
    bg0 = max(float(np.median(np.sort(y)[: max(3, y.size // 10)])), 0.1)
    if tau_guess_ns is None:
        tail = y[np.argmax(y):] - bg0
        e_fold = np.argmax(tail < tail[0] / np.e) if np.any(tail < tail[0] / np.e) else tail.size
        tau0 = max(e_fold * dt, 2 * dt)
        tau_guess_ns = [tau0] if n_exp == 1 else [tau0 * 0.3, tau0 * 1.5]
    total = max(y.sum() - bg0 * y.size, y.sum() * 0.5)
    amps0 = [total / n_exp * dt / tau for tau in tau_guess_ns]  # counts/bin at time zero
    p0 = [np.log(max(a, 1e-6)) for a in amps0] + [np.log(t) for t in tau_guess_ns] + \
        [np.log(bg0)]
    p0 += [peak - 0.1, np.log(0.1)] if irf is None else [0.0]

    def nll(p):
        return _deviance(y, _model(p, t_ns, period_ns, n_exp, irf))

    best = minimize(nll, np.asarray(p0), method="Nelder-Mead",
                    options={"maxiter": 3000, "maxfev": 3000, "xatol": 1e-5, "fatol": 1e-4})
    polished = minimize(nll, best.x, method="L-BFGS-B")
    if polished.fun < best.fun:
        best = polished
    p = best.x
    amps = np.exp(p[:n_exp])
    taus = np.exp(p[n_exp:2 * n_exp])
    order = np.argsort(taus)
    amps, taus = amps[order], taus[order]
    # conditional (curvature) errors of tau from the deviance: var = 2 / d2D/dtau2
    errs = []
    for i in range(n_exp):
        k = n_exp + int(order[i])
        h = 1e-3
        pp, pm = p.copy(), p.copy()
        pp[k] += h
        pm[k] -= h
        d2 = (nll(pp) - 2 * best.fun + nll(pm)) / h**2  # in log(tau)
        errs.append(float(taus[i] * np.sqrt(2.0 / d2)) if d2 > 0 else float("nan"))
    frac = amps / amps.sum()
    dof = max(y.size - p.size, 1)
    return DecayFit(
        n_exp=n_exp, tau_ns=[float(x) for x in taus], fractions=[float(f) for f in frac],
        tau_amplitude_avg_ns=float((frac * taus).sum()),
        tau_intensity_avg_ns=float((frac * taus**2).sum() / (frac * taus).sum()),
        tau_err_ns=errs, irf_center_ns=float(p[2 * n_exp + 1]) if irf is None else None,
        irf_sigma_ns=float(np.exp(p[2 * n_exp + 2])) if irf is None else None,
        background_per_bin=float(np.exp(p[2 * n_exp])), reduced_deviance=best.fun / dof,
        n_photons=int(y.sum()), bin_width_ns=dt,
        model="gaussian-irf" if irf is None else "measured-irf")


def flid(stream: PhotonStream, bin_width_s: float = 0.01, irf_offset_ns: float = 0.0,
         micro_ns: np.ndarray | None = None,
         bin_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fluorescence lifetime-intensity distribution: per trace bin, (counts, mean delay after
    the IRF in ns). Bins with no photon get NaN delay. `micro_ns` / `bin_index`: the stream's
    microtimes (ns) and trace-bin index per photon when the caller already has them."""
    from perovdefect.photons.analysis.trace import photon_bin_index
    micro = (stream.microtimes_ns() if micro_ns is None else micro_ns) - irf_offset_ns
    idx = photon_bin_index(stream, bin_width_s) if bin_index is None else bin_index
    n = int(np.ceil(stream.duration_s() / bin_width_s))
    idx = np.minimum(idx, n - 1)
    counts = np.bincount(idx, minlength=n)
    sums = np.bincount(idx, weights=micro, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        delay = np.where(counts > 0, sums / counts, np.nan)
    return counts, delay
