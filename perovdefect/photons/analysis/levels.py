"""Binned intensity levels of a blinking trace: user thresholds and a Poisson mixture (EM + BIC)
over trace bins. The primary, photon-by-photon segmentation (Watkins-Yang change points and BIC
levels) is in `perovdefect.photons.analysis.changepoints`.

The Poisson mixture is hand-written: scikit-learn has Gaussian mixtures only."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import gammaln

from perovdefect.errors import AnalysisError


@dataclass
class Level:
    """One intensity level: mean counts per bin, fraction of bins, and the bins' index range
    boundaries in counts/bin (lo <= counts < hi) used to select its photons."""

    mean_counts: float
    fraction: float
    lo: float
    hi: float

    def to_dict(self) -> dict:
        return asdict(self)


def threshold_levels(counts: np.ndarray, thresholds: list[float]) -> list[Level]:
    """Levels between user thresholds (counts/bin)."""
    edges = [-np.inf, *sorted(thresholds), np.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (counts >= lo) & (counts < hi)
        if sel.any():
            out.append(Level(float(counts[sel].mean()), float(sel.mean()), lo, hi))
    return out


def poisson_mixture(counts: np.ndarray, k: int, n_iter: int = 300,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """EM fit of a k-component Poisson mixture: (means, weights, log-likelihood)."""
    x = np.asarray(counts, dtype=float)
    qs = np.quantile(x, (np.arange(k) + 0.5) / k)
    lam = np.maximum(qs, 0.5) * (1 + 0.01 * np.arange(k))
    w = np.full(k, 1.0 / k)
    lgx = gammaln(x + 1)
    ll_old = -np.inf
    for _ in range(n_iter):
        logp = x[:, None] * np.log(lam) - lam - lgx[:, None] + np.log(w)
        m = logp.max(axis=1, keepdims=True)
        ll = float((m[:, 0] + np.log(np.exp(logp - m).sum(axis=1))).sum())
        r = np.exp(logp - m)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-12
        lam = np.maximum((r * x[:, None]).sum(axis=0) / nk, 1e-3)
        w = nk / nk.sum()
        if ll - ll_old < 1e-6 * abs(ll):
            break
        ll_old = ll
    order = np.argsort(lam)
    return lam[order], w[order], ll


def mixture_levels(counts: np.ndarray, max_levels: int = 5,
                   min_fraction: float = 0.01) -> list[Level]:
    """Levels from the Poisson mixture with the number of components chosen by BIC. Boundaries
    between neighbours are where their weighted Poisson likelihoods cross."""
    x = np.asarray(counts, dtype=np.int64)
    if x.size < 10:
        raise AnalysisError("too few trace bins for a mixture model (need >= 10)")
    best = None
    for k in range(1, max_levels + 1):
        lam, w, ll = poisson_mixture(x, k)
        if k > 1 and (w.min() < min_fraction or np.any(np.diff(lam) < 2 * np.sqrt(lam[:-1]))):
            continue  # a component that is too rare or not resolved from its neighbour
        bic = -2 * ll + (2 * k - 1) * np.log(x.size)
        if best is None or bic < best[0]:
            best = (bic, lam, w)
    _, lam, w = best
    bounds = [-np.inf]
    grid = np.arange(int(x.max()) + 2)
    for i in range(len(lam) - 1):
        a = np.log(w[i]) + grid * np.log(lam[i]) - lam[i]
        b = np.log(w[i + 1]) + grid * np.log(lam[i + 1]) - lam[i + 1]
        cross = grid[(b > a) & (grid > lam[i])]
        bounds.append(float(cross[0]) if cross.size else float((lam[i] + lam[i + 1]) / 2))
    bounds.append(np.inf)
    out = []
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        sel = (x >= lo) & (x < hi)
        out.append(Level(float(lam[i]), float(sel.mean()), lo, hi))
    return out
