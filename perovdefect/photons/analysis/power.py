"""Power series: intensity per level versus <N>, the power-law exponent, lifetimes per level."""

from __future__ import annotations

import numpy as np
from scipy import stats

from perovdefect.errors import AnalysisError


def power_law_exponent(excitation_N: list[float], intensity: list[float]) -> dict:
    """Slope of log(intensity) vs log(<N>) with its standard error. > 1: superlinear
    (photobrightening); ~1 linear; < 1 saturation."""
    x, y = np.asarray(excitation_N, float), np.asarray(intensity, float)
    ok = (x > 0) & (y > 0)
    if ok.sum() < 3:
        raise AnalysisError("a power series needs at least 3 points with positive <N> and "
                            "intensity")
    fit = stats.linregress(np.log(x[ok]), np.log(y[ok]))
    exponent = float(fit.slope)
    return {"exponent": exponent, "exponent_err": float(fit.stderr),
            "prefactor": float(np.exp(fit.intercept)), "n_points": int(ok.sum()),
            "regime": "superlinear (photobrightening)" if exponent - 2 * fit.stderr > 1 else
            ("sublinear (saturation)" if exponent + 2 * fit.stderr < 1 else "linear")}
