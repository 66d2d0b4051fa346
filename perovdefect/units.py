"""Unit conversions with constants from scipy.constants (never retyped)."""

from __future__ import annotations

import numpy as np
from scipy import constants

#: h*c in eV*nm (from CODATA via scipy.constants).
HC_EV_NM: float = constants.h * constants.c / constants.e * 1e9


def _hc_over(x: float | np.ndarray, what: str) -> float | np.ndarray:
    """hc / x: photon energy (eV) <-> vacuum wavelength (nm) are the same map."""
    arr = np.asarray(x, dtype=float)
    if np.any(arr <= 0):
        raise ValueError(f"{what} must be positive")
    out = HC_EV_NM / arr
    return float(out) if out.ndim == 0 else out


def ev_to_nm(energy_eV: float | np.ndarray) -> float | np.ndarray:
    """Photon energy (eV) to vacuum wavelength (nm)."""
    return _hc_over(energy_eV, "photon energy (eV)")


def nm_to_ev(wavelength_nm: float | np.ndarray) -> float | np.ndarray:
    """Vacuum wavelength (nm) to photon energy (eV)."""
    return _hc_over(wavelength_nm, "wavelength (nm)")


def fwhm_nm_to_meV(center_nm: float, fwhm_nm: float) -> float:
    """Width of a peak in nm at centre `center_nm` converted to meV (|dE| = hc/lambda^2 dlambda)."""
    lo, hi = center_nm - fwhm_nm / 2, center_nm + fwhm_nm / 2
    return float((nm_to_ev(lo) - nm_to_ev(hi)) * 1e3)
