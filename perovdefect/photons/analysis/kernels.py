"""Small numba kernels (numeric cores; normalisation and units live in the callers).

The g2 correlator has its own module, `g2_kernel`."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def dead_time_mask(t: np.ndarray, dead: float) -> np.ndarray:
    """Keep-mask: photons closer than `dead` to the previous kept photon are dropped."""
    keep = np.ones(t.size, np.bool_)
    last = -1e300
    for i in range(t.size):
        if t[i] - last < dead:
            keep[i] = False
        else:
            last = t[i]
    return keep


@numba.njit(cache=True)
def split_records(time: np.ndarray, dtime: np.ndarray, channel: np.ndarray, marker: np.ndarray,
                  with_dtime: bool):
    """One pass over ptufile's decoded records: photons (channel >= 0) and markers apart.

    Returns (channel, macrotime, microtime, marker_value, marker_time). Output buffers are
    record-sized and returned as slices (one pass; overflow slots are the only spare memory)."""
    n = channel.size
    ch = np.empty(n, np.int8)
    mac = np.empty(n, np.int64)
    mic = np.empty(n if with_dtime else 0, np.int32)
    mval = np.empty(n, np.int8)
    mtime = np.empty(n, np.int64)
    p = 0
    m = 0
    for i in range(n):
        c = channel[i]
        if c >= 0:
            ch[p] = c
            mac[p] = time[i]
            if with_dtime:
                mic[p] = dtime[i]
            p += 1
        elif marker[i] > 0:
            mval[m] = marker[i]
            mtime[m] = time[i]
            m += 1
    return ch[:p], mac[:p], mic[:p] if with_dtime else mic, mval[:m], mtime[:m]


@numba.njit(cache=True)
def _erfcx(b: float) -> float:
    """exp(b^2) erfc(b) for b > 0 (erfc stays a normal double up to b = 26; the asymptotic
    series beyond)."""
    if b < 25.0:
        return math.exp(b * b) * math.erfc(b)
    ib2 = 1.0 / (b * b)
    return (1.0 - 0.5 * ib2 + 0.75 * ib2 * ib2) / (b * math.sqrt(math.pi))


@numba.njit(cache=True)
def _exgauss1(x: float, tau: float, sigma: float) -> float:
    """Scalar twin of perovdefect.photons.analysis.decay._exgauss (same branches)."""
    b = (sigma / tau - x / sigma) / math.sqrt(2.0)
    s2 = 0.5 * (sigma / tau) ** 2
    if b < -6.0:
        return math.exp(s2 - x / tau)
    if b <= 0.0:
        return 0.5 * math.exp(s2 - x / tau) * math.erfc(b)
    if x < -12.0 * sigma:
        return 0.0
    return 0.5 * math.exp(-0.5 * (x / sigma) ** 2) * _erfcx(b)


@numba.njit(cache=True)
def gauss_irf_deviance(params: np.ndarray, t: np.ndarray, y: np.ndarray, period: float,
                       n_exp: int, ylogy: float) -> float:
    """Poisson deviance of the Gaussian-IRF decay model of `decay._model` (same parameter
    vector: ln amplitudes, ln lifetimes, ln background, IRF centre, ln IRF width) in one pass
    over the bins; `ylogy` = sum of y ln y over y > 0."""
    bg = math.exp(params[2 * n_exp])
    center = params[2 * n_exp + 1]
    sigma = math.exp(params[2 * n_exp + 2])
    if not (sigma > 0.0 and sigma < math.inf):  # an IRF width under- or overflowed
        return math.inf
    half = 0.5 * (t[1] - t[0])
    amps = np.empty(n_exp)
    taus = np.empty(n_exp)
    pref = np.empty(n_exp)
    for j in range(n_exp):
        amps[j] = math.exp(params[j])
        taus[j] = math.exp(params[n_exp + j])
        if not taus[j] > 0.0:
            return math.inf
        # 1/(1 - q), q = exp(-period/tau): a lifetime so long (or an overflowing parameter)
        # that q rounds to 1 is no decay at all; an infinite deviance sends the fit back
        one_minus_q = -math.expm1(-period / taus[j])
        if not one_minus_q > 0.0:
            return math.inf
        pref[j] = 1.0 / one_minus_q
    dev = 0.0
    dt = t[1] - t[0]
    # well after the IRF (b < -6) every term is exp(s2 - x0/tau) (1 + q/(1 - q)): a geometric
    # sequence over the bins, advanced by one multiplication per bin instead of an exp
    geo = np.zeros(n_exp)
    step = np.empty(n_exp)
    for j in range(n_exp):
        step[j] = math.exp(-dt / taus[j])
    for i in range(t.size):
        x0 = t[i] + half - center
        shape = 0.0
        for j in range(n_exp):
            tau = taus[j]
            b = (sigma / tau - x0 / sigma) / math.sqrt(2.0)
            if b < -6.0 and x0 - period < -12.0 * sigma:
                if geo[j] == 0.0:
                    geo[j] = math.exp(0.5 * (sigma / tau) ** 2 - x0 / tau)
                else:
                    geo[j] *= step[j]
                shape += amps[j] * geo[j] * pref[j]  # 1 + q/(1-q) = 1/(1-q)
                continue
            geo[j] = 0.0
            e = 0.5 * (sigma / tau) ** 2 - (x0 + period) / tau
            earlier = math.exp(min(e, 700.0)) * pref[j] if e > -700.0 else 0.0
            shape += amps[j] * (_exgauss1(x0, tau, sigma) + _exgauss1(x0 - period, tau, sigma)
                                + earlier)
        m = max(shape, 0.0) + bg
        if m < 1e-12:
            m = 1e-12
        if y[i] > 0:
            dev -= y[i] * math.log(m)
        dev += m - y[i]
    return 2.0 * (dev + ylogy)


@numba.njit(cache=True)
def level_decay_histograms(level: np.ndarray, microtime: np.ndarray, factor: int, n_bins: int,
                           n_levels: int) -> np.ndarray:
    """Microtime histograms of every level in one pass: row = level, column =
    min(microtime // factor, n_bins - 1)."""
    out = np.zeros((n_levels, n_bins), np.int64)
    for i in range(level.size):
        b = microtime[i] // factor
        if b >= n_bins:
            b = n_bins - 1
        out[level[i], b] += 1
    return out


@numba.njit(cache=True)
def linear_times(macrotime: np.ndarray, a: int, microtime: np.ndarray, b: int) -> np.ndarray:
    """macrotime * a + microtime * b in int64, one pass (arrival times in ps)."""
    out = np.empty(macrotime.size, np.int64)
    for i in range(macrotime.size):
        out[i] = macrotime[i] * a + np.int64(microtime[i]) * b
    return out


@numba.njit(cache=True)
def segment_fill(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per photon: the value (int8) of the segment [edges[j], edges[j+1]) it lies in."""
    out = np.empty(edges[-1], np.int8)
    for j in range(edges.size - 1):
        out[edges[j]:edges[j + 1]] = values[j]
    return out


@numba.njit(cache=True)
def segment_sums(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sum of x over each photon range [edges[j], edges[j+1])."""
    out = np.zeros(edges.size - 1)
    for j in range(edges.size - 1):
        acc = 0.0
        for i in range(edges[j], edges[j + 1]):
            acc += x[i]
        out[j] = acc
    return out


@numba.njit(cache=True)
def split_channels(channel: np.ndarray, t: np.ndarray, a: int, b: int):
    """(times on channel a, times on channel b) in one pass."""
    na = 0
    nb = 0
    for i in range(channel.size):
        if channel[i] == a:
            na += 1
        elif channel[i] == b:
            nb += 1
    ta = np.empty(na, np.int64)
    tb = np.empty(nb, np.int64)
    na = 0
    nb = 0
    for i in range(channel.size):
        if channel[i] == a:
            ta[na] = t[i]
            na += 1
        elif channel[i] == b:
            tb[nb] = t[i]
            nb += 1
    return ta, tb


@numba.njit(cache=True)
def split_levels_channels(level: np.ndarray, channel: np.ndarray, t: np.ndarray, a: int, b: int,
                          n_levels: int):
    """Times of channel a and of channel b grouped by level in one counting and one filling
    pass: (ta, offsets_a, tb, offsets_b); level k's are ta[offsets_a[k]:offsets_a[k + 1]]."""
    ca = np.zeros(n_levels + 1, np.int64)
    cb = np.zeros(n_levels + 1, np.int64)
    for i in range(level.size):
        if channel[i] == a:
            ca[level[i] + 1] += 1
        elif channel[i] == b:
            cb[level[i] + 1] += 1
    for k in range(n_levels):
        ca[k + 1] += ca[k]
        cb[k + 1] += cb[k]
    ta = np.empty(ca[n_levels], np.int64)
    tb = np.empty(cb[n_levels], np.int64)
    pa = ca[:-1].copy()
    pb = cb[:-1].copy()
    for i in range(level.size):
        k = level[i]
        if channel[i] == a:
            ta[pa[k]] = t[i]
            pa[k] += 1
        elif channel[i] == b:
            tb[pb[k]] = t[i]
            pb[k] += 1
    return ta, ca, tb, cb


@numba.njit(cache=True)
def is_sorted(x: np.ndarray) -> bool:
    """True when x is non-decreasing."""
    for i in range(1, x.size):
        if x[i] < x[i - 1]:
            return False
    return True
