"""Photon-by-photon change points and intensity levels (Watkins and Yang, J. Phys. Chem. B 109,
617 (2005)).

1. Change points: a segment [s0, s1) of duration T holding n photons is split at time tau with
   k photons before it when the generalised log-likelihood ratio of a Poisson process,
       Z = 2 [k ln(k / (tau - s0)) + (n - k) ln((n - k) / (s1 - tau)) - n ln(n / T)],
   maximised over tau (its maximum for a given k lies at a photon time, so both counts at every
   photon are tried), exceeds the critical value of the chosen confidence level for n photons;
   then both halves are searched again (binary segmentation), as in Watkins and Yang.
   Critical values: under a constant rate the photon times are uniform order statistics, so the
   null distribution of max Z depends on n only (and on the end margin `min_photons`). Its
   quantiles were computed by Monte Carlo with this module's own kernel
   (`null_max_statistic`, `tabulate_critical_values`; 10000 streams per n up to 1e4 photons,
   4000 up to 1e5 and 1500 above) and are shipped in `_CRIT_TABLE`; beyond the table they follow the
   Darling-Erdos/Horvath asymptotic form, shifted to agree with the last tabulated n.
2. Levels: segments are grouped into G intensity levels by agglomerative clustering of their
   Poisson likelihoods, refined by expectation-maximisation of a Poisson mixture with the
   segments' durations as exposures, and G is chosen by the Bayesian information criterion
   BIC = 2 ln L - (2G - 1) ln n_segments (Watkins and Yang, section 2.3).

Hand-written: no maintained library implements this photon-by-photon test (ruptures and
changepy work on sampled signals, which is what the binned mixture already does); the scan is a
numba kernel, O(n) per segment, with an exact branch-and-bound over blocks of photons for long
segments (`_scan_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
from scipy.special import gammaln

from perovdefect.errors import AnalysisError

#: End margin of the scan: a change point leaves at least this many photons on either side.
MIN_PHOTONS = 10
#: Confidence levels of the tabulated critical values (columns of _CRIT_TABLE).
_CRIT_CONFIDENCE = (0.69, 0.90, 0.95, 0.99)
#: Photon numbers of the rows (segment sizes n).
_CRIT_N = (25, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 100000, 300000, 1000000)
#: Null quantiles of max Z for MIN_PHOTONS = 10 (rows: _CRIT_N; columns: _CRIT_CONFIDENCE),
#: from `tabulate_critical_values()`.
_CRIT_TABLE = np.array([
    [2.609, 4.977, 6.478, 10.013], [4.153, 6.661, 8.266, 11.41], [4.93, 7.601, 9.157, 12.363],
    [5.435, 8.171, 9.65, 13.372], [6.061, 8.716, 10.228, 13.563], [6.332, 9.035, 10.622, 13.949],
    [6.54, 9.334, 10.928, 14.44], [6.983, 9.776, 11.474, 14.948], [7.189, 9.972, 11.478, 15.2],
    [7.58, 10.301, 11.905, 14.857], [7.924, 10.634, 12.215, 15.855],
    [7.908, 10.519, 12.184, 15.154], [8.376, 11.361, 12.788, 16.555]])
_BLOCK = 32
_BLOCK_MIN = 2000


@numba.njit(cache=True, parallel=True)
def _klnk_table(n: int) -> np.ndarray:
    """k ln k for k = 0..n (0 ln 0 = 0)."""
    out = np.zeros(n + 1)
    for k in numba.prange(1, n + 1):
        out[k] = k * math.log(k)
    return out


@numba.njit(cache=True)
def _scan_range(t, lo, hi, a, n, s0, s1, m, klnk):
    """Max of Z/2 over photons lo..hi-1 of the segment starting at photon a (n photons, times
    [s0, s1)). Returns (max, count k before the split, photon index giving tau)."""
    T = s1 - s0
    base = klnk[n] - n * math.log(T)
    best = -1.0
    best_k = -1
    best_i = -1
    for i in range(lo, hi):
        u = t[i] - s0
        v = s1 - t[i]
        if u <= 0.0 or v <= 0.0:
            continue
        lu = math.log(u)
        lv = math.log(v)
        k = i - a + 1  # photon i before the split
        if k >= m and n - k >= m:
            z = klnk[k] + klnk[n - k] - k * lu - (n - k) * lv - base
            if z > best:
                best, best_k, best_i = z, k, i
        k -= 1  # photon i after the split
        if k >= m and n - k >= m:
            z = klnk[k] + klnk[n - k] - k * lu - (n - k) * lv - base
            if z > best:
                best, best_k, best_i = z, k, i
    return best, best_k, best_i


@numba.njit(cache=True)
def _corner(k, n, lu, lv, base, klnk, m):
    if k < m or n - k < m:
        return -1.0
    return klnk[k] + klnk[n - k] - k * lu - (n - k) * lv - base


@numba.njit(cache=True)
def _scan_bound(t, a, b, s0, s1, m, klnk, block, stop_below):
    """The same maximum as `_scan_range` over the whole segment, exactly, by branch and bound.

    Z/2 = F(k, tau) is convex in tau for fixed k and convex in k for fixed tau, so over a block
    of photons (k in [k_lo, k_hi], tau in [t_lo, t_hi]) it is at most the largest of its four
    corners, which need only the logarithms at the block's two end photons. A block is then
    scanned photon by photon only when its bound exceeds the best exact value found so far and
    `stop_below` (half the critical value: no block can then
    reach it and the decision is already made). In null-like stretches the bound exceeds the
    exact values by ~ block / sqrt(n p (1 - p)), so a few blocks are scanned out of n / block."""
    n = b - a
    T = s1 - s0
    base = klnk[n] - n * math.log(T)
    nb = (n + block - 1) // block
    bound = np.empty(nb)
    best = -1.0
    best_k = -1
    best_i = -1
    for c in range(nb):
        lo = a + c * block
        hi = min(lo + block, b) - 1
        u0 = t[lo] - s0
        v0 = s1 - t[lo]
        u1 = t[hi] - s0
        v1 = s1 - t[hi]
        if u0 <= 0.0 or v1 <= 0.0:
            bound[c] = np.inf  # an end photon on the segment edge: scan this block exactly
            continue
        lu0, lv0, lu1, lv1 = math.log(u0), math.log(v0), math.log(u1), math.log(v1)
        k_lo = lo - a
        k_hi = hi - a + 1
        for k, lu, lv, i in ((k_lo + 1, lu0, lv0, lo), (k_lo, lu0, lv0, lo),
                             (k_hi, lu1, lv1, hi), (k_hi - 1, lu1, lv1, hi)):
            z = _corner(k, n, lu, lv, base, klnk, m)
            if z > best:
                best, best_k, best_i = z, k, i
        kl = max(k_lo, m)
        kh = min(k_hi, n - m)
        if kl > kh:
            bound[c] = -1.0
            continue
        bound[c] = max(_corner(kl, n, lu0, lv0, base, klnk, m),
                       _corner(kh, n, lu0, lv0, base, klnk, m),
                       _corner(kl, n, lu1, lv1, base, klnk, m),
                       _corner(kh, n, lu1, lv1, base, klnk, m))
    for c in range(nb):  # in photon order; the bar rises as better values are found
        if bound[c] <= best or bound[c] < stop_below:
            continue
        lo = a + c * block
        hi = min(lo + block, b)
        z, k, i = _scan_range(t, lo, hi, a, n, s0, s1, m, klnk)
        if z > best:
            best, best_k, best_i = z, k, i
    return best, best_k, best_i


@numba.njit(cache=True)
def _null_max(n: int, reps: int, m: int, seed: int) -> np.ndarray:
    """max Z of `reps` constant-rate streams of n photons on [0, 1)."""
    np.random.seed(seed)
    klnk = _klnk_table(n)
    out = np.empty(reps)
    t = np.empty(n)
    for r in range(reps):
        acc = 0.0  # uniform order statistics as normalised sums of exponentials
        for i in range(n):
            acc += np.random.exponential(1.0)
            t[i] = acc
        acc += np.random.exponential(1.0)
        for i in range(n):
            t[i] /= acc
        z, _, _ = _scan_range(t, 0, n, 0, n, 0.0, 1.0, m, klnk)
        out[r] = 2.0 * z
    return out


def null_max_statistic(n: int, reps: int = 2000, min_photons: int = MIN_PHOTONS,
                       seed: int = 0) -> np.ndarray:
    """Monte Carlo samples of max Z for n photons at a constant rate (the null distribution)."""
    return _null_max(int(n), int(reps), int(min_photons), int(seed))


def tabulate_critical_values(ns=_CRIT_N, confidence=_CRIT_CONFIDENCE,
                             min_photons: int = MIN_PHOTONS) -> np.ndarray:
    """Recompute _CRIT_TABLE (minutes for the largest n)."""
    rows = []
    for n in ns:
        reps = 10_000 if n <= 10_000 else (4000 if n <= 100_000 else 1500)
        z = null_max_statistic(n, reps, min_photons, seed=n)
        rows.append(np.quantile(z, confidence))
    return np.array(rows)


def _asymptotic(n: float, confidence: float) -> float:
    """Darling-Erdos limit for one parameter (Csorgo and Horvath 1997, Thm 1.3.1):
    P(a(ln n) sqrt(Z) - b(ln n) <= x) -> exp(-2 e^-x), a(y) = sqrt(2 ln y),
    b(y) = 2 ln y + ln ln y / 2 - ln Gamma(1/2)."""
    y = math.log(n)
    a = math.sqrt(2 * math.log(y))
    b = 2 * math.log(y) + 0.5 * math.log(math.log(y)) - 0.5 * math.log(math.pi)
    x = -math.log(-0.5 * math.log(confidence))
    return ((x + b) / a) ** 2


@lru_cache(maxsize=64)
def _column(confidence: float) -> np.ndarray:
    conf = np.asarray(_CRIT_CONFIDENCE)
    if not conf[0] <= confidence <= conf[-1]:
        raise AnalysisError(f"change-point confidence must be between {conf[0]} and "
                            f"{conf[-1]}, got {confidence}")
    # interpolate between tabulated levels in -ln(1 - p), where Gumbel-like quantiles are linear
    x = -np.log(1 - conf)
    xi = -math.log(1 - confidence)
    col = np.array([np.interp(xi, x, row) for row in _CRIT_TABLE])
    return np.maximum.accumulate(col)  # quantiles grow with n; removes Monte Carlo wiggles


def critical_value(n: int, confidence: float = 0.95) -> float:
    """Critical value of max Z for a segment of n photons at the given confidence."""
    col = _column(float(confidence))
    ln_n = np.log(_CRIT_N)
    if n <= _CRIT_N[-1]:
        return float(np.interp(math.log(max(n, _CRIT_N[0])), ln_n, col))
    return float(col[-1] + _asymptotic(n, confidence) - _asymptotic(_CRIT_N[-1], confidence))


@dataclass
class ChangePointResult:
    """Change points (photon index where each new segment starts, and time in s), segment
    boundaries (s) and photon index ranges, and the confidence level used."""

    index: np.ndarray
    times_s: np.ndarray
    edges_s: np.ndarray
    photon_edges: np.ndarray
    confidence: float
    min_photons: int

    @property
    def n_segments(self) -> int:
        return int(self.edges_s.size - 1)

    def photons(self) -> np.ndarray:
        return np.diff(self.photon_edges)

    def durations_s(self) -> np.ndarray:
        return np.diff(self.edges_s)


def _scan(t, a, b, s0, s1, m, klnk, crit):
    n = b - a
    if n < 2 * m or s1 <= s0:
        return -1.0, -1, -1
    if n >= _BLOCK_MIN:
        return _scan_bound(t, a, b, s0, s1, m, klnk, _BLOCK, 0.5 * crit)
    return _scan_range(t, a, b, a, n, s0, s1, m, klnk)


def _refine(t, cps, n_all, start, end, confidence, m, klnk, max_passes: int = 3):
    """Each change point is tested again, by the same test, in the segment between its two
    neighbours (as Watkins and Yang do after the binary search), and moved to that segment's
    maximum or removed; passes repeat (at most `max_passes`) over the change points whose
    neighbours moved or went. A change point found in a long parent segment is thereby required
    to be significant in its own neighbourhood too."""
    pts = [[c, x, True] for c, x in cps]  # [photon index, time, to be (re)tested]
    for _ in range(max_passes):
        changed = False
        j = 0
        while j < len(pts):
            if not pts[j][2]:
                j += 1
                continue
            pts[j][2] = False
            a, s0 = (pts[j - 1][0], pts[j - 1][1]) if j > 0 else (0, start)
            b, s1 = (pts[j + 1][0], pts[j + 1][1]) if j + 1 < len(pts) else (n_all, end)
            crit = critical_value(b - a, confidence)
            z, k, i = _scan(t, a, b, s0, s1, m, klnk, crit)
            moved = k < 0 or 2 * z <= crit or (a + int(k), float(t[i])) != tuple(pts[j][:2])
            if moved:
                changed = True
                for nb in (j - 1, j + 1):
                    if 0 <= nb < len(pts):
                        pts[nb][2] = True
            if k < 0 or 2 * z <= crit:
                pts.pop(j)
                continue
            pts[j][:2] = [a + int(k), float(t[i])]
            j += 1
        if not changed:
            break
    return [(c, x) for c, x, _ in pts]


def detect_change_points(times_s: np.ndarray, duration_s: float | None = None,
                         confidence: float = 0.95, min_photons: int = MIN_PHOTONS,
                         start_s: float = 0.0, refine: bool = True) -> ChangePointResult:
    """Watkins-Yang binary segmentation of sorted photon times (s) on [start_s, duration_s),
    then (refine) every change point re-tested between its neighbours."""
    if min_photons < MIN_PHOTONS:
        raise AnalysisError(f"min_photons must be >= {MIN_PHOTONS} (the margin the critical "
                            "values were computed for; larger margins are conservative)")
    t = np.ascontiguousarray(times_s, dtype=np.float64)
    n_all = t.size
    end = float(duration_s) if duration_s else (float(t[-1]) * (1 + 1e-12) if n_all else 1.0)
    end = max(end, float(t[-1]) + 1e-12) if n_all else end
    klnk = _klnk_table(max(n_all, 1))
    cps: list[tuple[int, float]] = []
    stack = [(0, n_all, float(start_s), end)]
    while stack:
        a, b, s0, s1 = stack.pop()
        n = b - a
        if n < 2 * min_photons or s1 <= s0:
            continue
        crit = critical_value(n, confidence)
        z, k, i = _scan(t, a, b, s0, s1, min_photons, klnk, crit)
        if k < 0 or 2 * z <= crit:
            continue
        tau = float(t[i])
        cut = a + int(k)
        cps.append((cut, tau))
        stack += [(a, cut, s0, tau), (cut, b, tau, s1)]
    cps.sort()
    if refine:
        cps = _refine(t, cps, n_all, float(start_s), end, confidence, min_photons, klnk)
    idx = np.array([c for c, _ in cps], np.int64)
    tcp = np.array([x for _, x in cps], float)
    return ChangePointResult(idx, tcp, np.concatenate([[start_s], tcp, [end]]),
                             np.concatenate([[0], idx, [n_all]]).astype(np.int64),
                             confidence, min_photons)


# ----------------------------------------------------------------------------- levels by BIC

@dataclass
class LevelClustering:
    """Rates (counts/s, ascending) of the G levels, each segment's level, BIC of every G."""

    rates_cps: np.ndarray
    weights: np.ndarray
    assignment: np.ndarray
    bic: dict[int, float]


def _segment_loglik(n: np.ndarray, T: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """ln Poisson(n_j; r_m T_j) for every segment j and level m (n_j! kept)."""
    mu = np.maximum(rates[None, :] * T[:, None], 1e-300)
    return n[:, None] * np.log(mu) - mu - gammaln(n + 1)[:, None]


def _ahc_partitions(n: np.ndarray, T: np.ndarray, g_max: int) -> dict[int, np.ndarray]:
    """Agglomerative clustering of segments by rate: merging groups i and j costs
    n_i ln r_i + n_j ln r_j - (n_i + n_j) ln r_ij (loss of log-likelihood); start from groups of
    equal rounded rate to keep it fast; only neighbours in rate are merged (the cheapest merge is
    always between neighbours for a Poisson likelihood). Returns {G: segment -> group}."""
    rate = n / np.maximum(T, 1e-300)
    order = np.argsort(rate)
    gn = n[order].astype(float)
    gT = T[order].astype(float)
    members = [[int(j)] for j in order]

    def f(nn, tt):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(nn > 0, nn * np.log(nn / tt), 0.0)

    def cost(i: np.ndarray) -> np.ndarray:
        return f(gn[i], gT[i]) + f(gn[i + 1], gT[i + 1]) - f(gn[i] + gn[i + 1],
                                                             gT[i] + gT[i + 1])

    out: dict[int, np.ndarray] = {}
    costs = cost(np.arange(gn.size - 1))
    while True:
        G = gn.size
        if G <= g_max:
            lab = np.empty(n.size, np.int64)
            for g, mem in enumerate(members):
                lab[mem] = g
            out[G] = lab
        if G == 1:
            break
        i = int(np.argmin(costs))
        gn[i] += gn[i + 1]
        gT[i] += gT[i + 1]
        gn = np.delete(gn, i + 1)
        gT = np.delete(gT, i + 1)
        members[i] += members.pop(i + 1)
        costs = np.delete(costs, i)
        near = np.array([k for k in (i - 1, i) if 0 <= k < costs.size], dtype=np.int64)
        if near.size:
            costs[near] = cost(near)
    return out


def cluster_levels(photons: np.ndarray, durations_s: np.ndarray, max_levels: int = 6,
                   n_iter: int = 200, min_time_fraction: float = 0.01) -> LevelClustering:
    """Group segments (photons, durations in s) into intensity levels: AHC start, EM of a
    Poisson mixture with exposures, number of levels by the largest BIC among the groupings
    whose every level holds at least `min_time_fraction` of the time and whose neighbouring
    rates differ by at least twice the Poisson spread of one median-length segment's rate,
    2 sqrt(r / T_median) (the binned mixture's two rules, with the median segment as the bin).
    Why: the change-point search places its splits where the rate fluctuates most, so segments
    of one level are overdispersed and BIC alone splits a level into close copies (a handful of
    short segments that straddle an unresolved switch is not a level either)."""
    n = np.asarray(photons, float)
    T = np.asarray(durations_s, float)
    if n.size == 0:
        raise AnalysisError("no segments to group into levels")
    keep_T = np.maximum(T, 1e-12)
    t_med = float(np.median(keep_T))
    parts = _ahc_partitions(n, keep_T, min(max_levels, n.size))
    best = None
    bic_all = {}
    for G in sorted(parts):
        lab = parts[G]
        rates = np.array([n[lab == g].sum() / keep_T[lab == g].sum() for g in range(G)])
        w = np.array([(lab == g).mean() for g in range(G)])
        ll = -np.inf
        for _ in range(n_iter):
            lp = _segment_loglik(n, keep_T, np.maximum(rates, 1e-12)) + np.log(np.maximum(w,
                                                                                          1e-300))
            mx = lp.max(axis=1, keepdims=True)
            new_ll = float((mx[:, 0] + np.log(np.exp(lp - mx).sum(axis=1))).sum())
            r = np.exp(lp - mx)
            r /= r.sum(axis=1, keepdims=True)
            w = r.mean(axis=0)
            rates = (r * n[:, None]).sum(0) / np.maximum((r * keep_T[:, None]).sum(0), 1e-300)
            if new_ll - ll < 1e-9 * abs(new_ll):
                ll = new_ll
                break
            ll = new_ll
        bic = 2 * ll - (2 * G - 1) * math.log(n.size)
        bic_all[G] = bic
        lab_g = np.argmax(r, axis=1)
        share = np.bincount(lab_g, weights=keep_T, minlength=G) / keep_T.sum()
        rs = np.sort(rates)
        if G > 1 and (share.min() < min_time_fraction
                      or np.any(np.diff(rs) < 2 * np.sqrt(np.maximum(rs[:-1], 0) / t_med))):
            continue
        if best is None or bic > best[0]:
            best = (bic, rates, w, lab_g)
    _, rates, w, lab = best
    used = np.unique(lab)  # drop empty components, relabel ascending in rate
    rates, w = rates[used], w[used]
    lab = np.searchsorted(used, lab)
    order = np.argsort(rates)
    remap = np.empty_like(order)
    remap[order] = np.arange(order.size)
    return LevelClustering(rates[order], w[order], remap[lab], bic_all)
