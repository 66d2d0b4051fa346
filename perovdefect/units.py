"""Unit conversions with constants from scipy.constants (never retyped)."""

from __future__ import annotations

import numpy as np
from scipy import constants

#: h*c in eV*nm (from CODATA via scipy.constants).
HC_EV_NM: float = constants.h * constants.c / constants.e * 1e9


def ev_to_nm(energy_eV: float | np.ndarray) -> float | np.ndarray:
    """Photon energy (eV) to vacuum wavelength (nm)."""
    energy = np.asarray(energy_eV, dtype=float)
    if np.any(energy <= 0):
        raise ValueError("photon energy must be positive (eV)")
    out = HC_EV_NM / energy
    return float(out) if out.ndim == 0 else out


def nm_to_ev(wavelength_nm: float | np.ndarray) -> float | np.ndarray:
    """Vacuum wavelength (nm) to photon energy (eV)."""
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(wl <= 0):
        raise ValueError("wavelength must be positive (nm)")
    out = HC_EV_NM / wl
    return float(out) if out.ndim == 0 else out


def fwhm_nm_to_meV(center_nm: float, fwhm_nm: float) -> float:
    """Width of a peak in nm at centre `center_nm` converted to meV (|dE| = hc/lambda^2 dlambda)."""
    lo, hi = center_nm - fwhm_nm / 2, center_nm + fwhm_nm / 2
    return float((nm_to_ev(lo) - nm_to_ev(hi)) * 1e3)
