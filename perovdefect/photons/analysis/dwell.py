"""ON/OFF dwell times of a blinking trace and their power-law statistics.

Dwell times: consecutive change-point segments of the same class (ON or OFF) are joined; the
first and last dwell of a recording are cut by its start and end and are left out.
Fits (continuous maximum likelihood, Clauset, Shalizi and Newman, SIAM Rev. 51, 661 (2009)):
- power law p(t) = (alpha - 1) / t_min (t / t_min)^-alpha for t >= t_min, alpha = 1 + n /
  sum ln(t_i / t_min), error (alpha - 1) / sqrt(n); t_min is the candidate that minimises the
  Kolmogorov-Smirnov distance between the tail and its fit (their section 3.3);
- truncated power law p(t) ~ t^-alpha exp(-t / t_c) on the same tail (normalisation by
  numerical integration), errors from the inverse Hessian of the log-likelihood; the two are
  compared by the likelihood ratio (nested at 1/t_c = 0: p = chi2_1.sf(2 dlnL) / 2).
Hand-written rather than the `powerlaw` package so that the fit is vectorised and cheap enough
for the whole analysis to stay within its time budget; the tests compare both on the same data.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, special, stats

from perovdefect.errors import AnalysisError

#: Fewest dwell times in the tail for a fit (and fewest candidates above t_min).
MIN_TAIL = 10


def dwell_times(levels: np.ndarray, edges_s: np.ndarray,
                on_levels: set[int]) -> dict[str, np.ndarray]:
    """ON and OFF dwell times (s) from each segment's level and the segment edges (s)."""
    lev = np.asarray(levels)
    if lev.size == 0:
        return {"on": np.zeros(0), "off": np.zeros(0)}
    on = np.isin(lev, list(on_levels))
    change = np.nonzero(np.diff(on.astype(np.int8)))[0] + 1  # first segment of each new run
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [lev.size]])
    t0 = np.asarray(edges_s)[starts]
    t1 = np.asarray(edges_s)[stops]
    run_on = on[starts]
    inner = np.zeros(starts.size, bool)
    inner[1:-1] = True  # the first and last runs are truncated by the recording
    d = t1 - t0
    return {"on": d[inner & run_on], "off": d[inner & ~run_on]}


def _alpha(tail_logs_sum: float, n: int) -> float:
    return 1.0 + n / tail_logs_sum if tail_logs_sum > 0 else float("inf")


def fit_power_law(x: np.ndarray, t_min: float | None = None,
                  max_candidates: int = 1000) -> dict:
    """Power-law fit with t_min chosen by the KS distance (or given). Times in s."""
    x = np.sort(np.asarray(x, float))
    x = x[x > 0]
    if x.size < MIN_TAIL:
        raise AnalysisError(f"{x.size} dwell times: need >= {MIN_TAIL} for a power-law fit")
    logs = np.log(x)
    n = x.size
    # suffix sums of ln x give sum ln(x_i / x_j) over the tail for every candidate j at once
    suffix = np.cumsum(logs[::-1])[::-1]
    if t_min is None:
        cand = np.unique(np.searchsorted(x, np.unique(x[: n - MIN_TAIL + 1]), side="left"))
        if cand.size > max_candidates:
            cand = cand[np.linspace(0, cand.size - 1, max_candidates).astype(int)]
        best = (np.inf, 0, 0.0)
        for j in cand:
            m = n - j
            s = suffix[j] - m * logs[j]
            a = _alpha(s, m)
            if not np.isfinite(a):
                continue
            cdf = 1.0 - (x[j:] / x[j]) ** (1.0 - a)
            i = np.arange(m)
            d = max(np.max((i + 1) / m - cdf), np.max(cdf - i / m))
            if d < best[0]:
                best = (float(d), int(j), a)
        ks, j, alpha = best
        if not np.isfinite(ks):
            raise AnalysisError("dwell times: no power-law tail found")
    else:
        j = int(np.searchsorted(x, t_min, side="left"))
        m = n - j
        if m < MIN_TAIL:
            raise AnalysisError(f"only {m} dwell times above t_min = {t_min} s")
        alpha = _alpha(suffix[j] - m * logs[j], m)
        cdf = 1.0 - (x[j:] / x[j]) ** (1.0 - alpha)
        i = np.arange(m)
        ks = float(max(np.max((i + 1) / m - cdf), np.max(cdf - i / m)))
    m = n - j
    return {"alpha": float(alpha), "alpha_err": float((alpha - 1) / math.sqrt(m)),
            "t_min_s": float(x[j]), "n_tail": int(m), "ks_distance": float(ks)}


def _upper_gamma(a: float, x: float) -> float:
    """Gamma(a, x) for any real a and x > 0: scipy's regularised gammaincc for a > 0, E1 at
    a = 0, and Gamma(a, x) = (Gamma(a + 1, x) - x^a e^-x) / a below."""
    if a > 0:
        return float(special.gammaincc(a, x) * special.gamma(a))
    if abs(a) < 1e-9:
        return float(special.exp1(x))
    return (_upper_gamma(a + 1.0, x) - x ** a * math.exp(-x)) / a


def _tpl_log_norm(alpha: float, lam: float, t_min: float) -> float:
    """ln of the integral of t^-alpha exp(-lam t) over t >= t_min: lam^(alpha-1)
    Gamma(1 - alpha, lam t_min) in closed form, numerical quadrature (u = ln(t / t_min)) where
    that is not finite and positive."""
    if 1.0 < alpha < 6.0 and lam * t_min > 1e-12 and abs(alpha - round(alpha)) > 1e-6:
        try:
            g = _upper_gamma(1.0 - alpha, lam * t_min)
            if np.isfinite(g) and g > 0:
                return (alpha - 1.0) * math.log(lam) + math.log(g)
        except (OverflowError, ZeroDivisionError, ValueError):
            pass
    def f(u):
        if u > 700.0:
            return 0.0
        z = (1.0 - alpha) * u - lam * t_min * math.expm1(u)
        return math.exp(z) if z > -745.0 else 0.0
    val, _ = integrate.quad(f, 0.0, np.inf, limit=200)
    return (1.0 - alpha) * math.log(t_min) - lam * t_min + math.log(val)


def fit_truncated_power_law(x: np.ndarray, t_min: float) -> dict:
    """ML fit of p(t) ~ t^-alpha exp(-t / t_c) for t >= t_min (s), with errors and the
    likelihood-ratio comparison against the pure power law."""
    x = np.asarray(x, float)
    tail = x[x >= t_min]
    m = tail.size
    if m < MIN_TAIL:
        raise AnalysisError(f"only {m} dwell times above t_min = {t_min} s")
    sl, st = float(np.log(tail).sum()), float(tail.sum())

    def nll(p):
        alpha, lam = p[0], math.exp(p[1])
        return alpha * sl + lam * st + m * _tpl_log_norm(alpha, lam, t_min)

    pl = _alpha(sl - m * math.log(t_min), m)
    best = None
    for lam0 in (0.1 / tail.max(), 1.0 / np.median(tail), 1.0 / tail.mean()):
        r = optimize.minimize(nll, [min(pl, 3.0) * 0.9, math.log(lam0)], method="Nelder-Mead",
                              options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000})
        if best is None or r.fun < best.fun:
            best = r
    alpha, lnlam = best.x
    lam = math.exp(lnlam)
    # Hessian in (alpha, lam) by central differences, then invert for the covariance
    h = np.array([1e-3 * max(abs(alpha), 1.0), 1e-3 * lam])

    def nll_l(a, lm):
        return nll([a, math.log(max(lm, 1e-300))])
    f0 = best.fun
    H = np.zeros((2, 2))
    pts = np.array([alpha, lam])
    for i in range(2):
        for k in range(2):
            ei, ek = np.eye(2)[i] * h[i], np.eye(2)[k] * h[k]
            H[i, k] = (nll_l(*(pts + ei + ek)) - nll_l(*(pts + ei - ek))
                       - nll_l(*(pts - ei + ek)) + nll_l(*(pts - ei - ek))) / (4 * h[i] * h[k])
    try:
        cov = np.linalg.inv(H)
        errs = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        errs = np.array([np.nan, np.nan])
    nll_pl = -(m * math.log((pl - 1) / t_min) - pl * (sl - m * math.log(t_min)))
    d = max(nll_pl - f0, 0.0)
    p = 0.5 * float(stats.chi2.sf(2 * d, 1))
    lam_err = float(errs[1])
    return {"alpha": float(alpha), "alpha_err": float(errs[0]),
            "cutoff_s": float(1.0 / lam), "cutoff_err_s": float(lam_err / lam**2),
            "loglik_ratio_vs_power_law": float(d), "p_value": p,
            "preferred": "truncated power law" if p < 0.05 else "power law"}


def fit_dwell_times(x: np.ndarray) -> dict:
    """Power law (t_min by KS) and truncated power law on the same tail; plus the mean and the
    number of dwell times."""
    x = np.asarray(x, float)
    out = fit_power_law(x)
    try:
        out["truncated"] = fit_truncated_power_law(x, out["t_min_s"])
    except (AnalysisError, ValueError, OverflowError) as exc:  # noqa: PERF203
        out["truncated"] = None
        out["truncated_error"] = str(exc)
    out["n"] = int(x.size)
    out["mean_s"] = float(x.mean())
    return out


def log_binned_density(x: np.ndarray, bins_per_decade: int = 5) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(geometric bin centres in s, probability density per s) on log-spaced bins."""
    x = np.asarray(x, float)
    x = x[x > 0]
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    lo, hi = np.log10(x.min()), np.log10(x.max())
    nb = max(int(np.ceil((hi - lo) * bins_per_decade)), 1)
    edges = np.logspace(lo, hi + 1e-9, nb + 1)
    h, _ = np.histogram(x, edges)
    dens = h / (x.size * np.diff(edges))
    return np.sqrt(edges[:-1] * edges[1:]), dens
