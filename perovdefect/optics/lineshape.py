"""Predicted PL line shape of a defect from the one-mode Huang-Rhys model at temperature T.

Line n (phonons emitted minus absorbed) sits at ZPL - n hbar omega (emission) with weight
  w_n = exp(-S (2 nbar + 1)) ((nbar + 1)/nbar)^(n/2) I_n(2 S sqrt(nbar (nbar + 1)))
(nbar the Bose occupation; at T = 0 the Poisson weights S^n e^-S / n!); the weights sum to 1
and their mean is S. Every line is broadened by one Gaussian or Lorentzian of a stated FWHM.
Written here because neither pymatgen-analysis-defects nor nonrad ships a finite-T 1D line shape
(their ccd tools give rates and overlaps); the tests check normalisation and first moment.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import constants, stats
from scipy.integrate import trapezoid
from scipy.special import gammaln, ive

from perovdefect.errors import AnalysisError
from perovdefect.optics.documents import Broadening, CCDiagram, PLComparison, PLSpectrum
from perovdefect.units import ev_to_nm, fwhm_nm_to_meV, nm_to_ev

K_B_EV = constants.k / constants.e
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def bose_occupation(hbar_omega_eV: float, temperature_K: float) -> float:
    """nbar = 1 / (exp(hbar omega / k_B T) - 1); 0 at T = 0."""
    if temperature_K <= 0:
        return 0.0
    return float(1.0 / np.expm1(hbar_omega_eV / (K_B_EV * temperature_K)))


def phonon_line_weights(huang_rhys: float, nbar: float, n_max: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(n, w_n) for n = -n_max..n_max (finite T) or 0..n_max (T = 0)."""
    if huang_rhys < 0:
        raise AnalysisError(f"Huang-Rhys factor must be >= 0, got {huang_rhys}")
    if nbar < 1e-12:
        n = np.arange(0, n_max + 1)
        if huang_rhys == 0:
            return n, (n == 0).astype(float)
        return n, np.exp(n * np.log(huang_rhys) - huang_rhys - gammaln(n + 1))
    n = np.arange(-n_max, n_max + 1)
    x = 2 * huang_rhys * np.sqrt(nbar * (nbar + 1))
    with np.errstate(divide="ignore"):
        logw = (-huang_rhys * (2 * nbar + 1) + x + 0.5 * n * np.log((nbar + 1) / nbar)
                + np.log(ive(np.abs(n), x)))
    return n, np.exp(logw)


def _profile(shape: str, x: np.ndarray, fwhm: float) -> np.ndarray:
    if shape == "gaussian":
        return stats.norm.pdf(x, scale=fwhm / _FWHM_PER_SIGMA)
    return stats.cauchy.pdf(x, scale=fwhm / 2)


def _mass_inside(shape: str, lo: np.ndarray, hi: np.ndarray, fwhm: float) -> np.ndarray:
    dist = (stats.norm(scale=fwhm / _FWHM_PER_SIGMA) if shape == "gaussian"
            else stats.cauchy(scale=fwhm / 2))
    return dist.cdf(hi) - dist.cdf(lo)


def _half_max_width(e: np.ndarray, y: np.ndarray, i: int) -> tuple[float, float]:
    """Energies where y falls to half of y[i] on each side (linear interpolation)."""
    half = y[i] / 2
    j = i
    while j > 0 and y[j] > half:
        j -= 1
    k = i
    while k < len(y) - 1 and y[k] > half:
        k += 1
    if y[j] > half or y[k] > half:
        raise AnalysisError("the energy grid does not contain the half-maximum points")
    lo = e[j] + (half - y[j]) * (e[j + 1] - e[j]) / (y[j + 1] - y[j])
    hi = e[k - 1] + (half - y[k - 1]) * (e[k] - e[k - 1]) / (y[k] - y[k - 1])
    return float(lo), float(hi)


def huang_rhys_spectrum(zpl_eV: float, huang_rhys: float, hbar_omega_meV: float,
                        temperature_K: float, broadening_fwhm_meV: float = 20.0,
                        shape: Literal["gaussian", "lorentzian"] = "gaussian",
                        energies_eV: ArrayLike | None = None, step_meV: float = 1.0,
                        photon_energy_exponent: int = 0) -> PLSpectrum:
    """PL line shape (emission: phonon replicas below the ZPL), unit area over energy.

    Args:
        zpl_eV: zero-phonon line (eV).
        huang_rhys: S of the final (ground) state surface.
        hbar_omega_meV: its phonon energy (meV).
        temperature_K: temperature (K) for the Bose occupation (0 allowed).
        broadening_fwhm_meV: FWHM of the profile given to every line (meV), > 0.
        shape: 'gaussian' or 'lorentzian'.
        energies_eV: the energy grid (increasing); default: covers all lines, `step_meV` apart.
        photon_energy_exponent: multiply by E^k before normalising (0: the line shape; 3: the
            spontaneous-emission rate, ~E^3 times the line shape).
    """
    if zpl_eV <= 0 or hbar_omega_meV <= 0 or broadening_fwhm_meV <= 0:
        raise AnalysisError("ZPL, phonon energy and broadening must be positive")
    if shape not in ("gaussian", "lorentzian"):
        raise AnalysisError(f"shape must be 'gaussian' or 'lorentzian', got {shape!r}")
    hw, fwhm = hbar_omega_meV * 1e-3, broadening_fwhm_meV * 1e-3
    nbar = bose_occupation(hw, temperature_K)
    spread = np.sqrt(huang_rhys * (2 * nbar + 1))
    n_max = int(np.ceil(huang_rhys + 10 * spread + 10))
    n, w = phonon_line_weights(huang_rhys, nbar, n_max)
    lines = zpl_eV - n * hw
    if energies_eV is None:
        pad = (10 if shape == "gaussian" else 50) * fwhm
        lo = max(lines[w > 1e-12].min() - pad, 1e-3)
        e = np.arange(lo, lines[w > 1e-12].max() + pad, step_meV * 1e-3)
    else:
        e = np.asarray(energies_eV, float)
        if e.ndim != 1 or e.size < 10 or np.any(np.diff(e) <= 0) or e[0] <= 0:
            raise AnalysisError("the energy grid must be >= 10 positive, increasing values (eV)")
    if e[1] - e[0] > fwhm / 2:
        raise AnalysisError(f"grid step {1e3 * (e[1] - e[0]):.2f} meV too coarse for a "
                            f"{broadening_fwhm_meV} meV broadening (need <= FWHM/2)")
    inside = float(np.sum(w * _mass_inside(shape, e[0] - lines, e[-1] - lines, fwhm)))
    if inside < 0.99:
        raise AnalysisError(f"the energy grid holds only {100 * inside:.1f} % of the spectrum; "
                            "widen it")
    keep = w > 1e-14
    y = (w[keep, None] * _profile(shape, e[None, :] - lines[keep, None], fwhm)).sum(axis=0)
    if photon_energy_exponent:
        y = y * e**photon_energy_exponent
    y = y / trapezoid(y, e)
    i = int(np.argmax(y))
    lo_e, hi_e = _half_max_width(e, y, i)
    return PLSpectrum(temperature_K=float(temperature_K), zpl_eV=float(zpl_eV),
                      huang_rhys=float(huang_rhys), hbar_omega_meV=float(hbar_omega_meV),
                      broadening=Broadening(shape=shape, fwhm_meV=float(broadening_fwhm_meV)),
                      photon_energy_exponent=int(photon_energy_exponent),
                      energies_eV=e.tolist(), intensity_per_eV=y.tolist(),
                      peak_eV=float(e[i]), peak_nm=float(ev_to_nm(e[i])),
                      fwhm_eV=hi_e - lo_e,
                      fwhm_nm=float(ev_to_nm(lo_e) - ev_to_nm(hi_e)),
                      mean_phonon_occupation=nbar)


def pl_spectrum(ccd: CCDiagram, temperature_K: float, **kwargs) -> PLSpectrum:
    """Emission line shape of a CC diagram: ZPL, S and hbar omega of the ground-state surface
    (the final state of the emission). Keyword arguments go to `huang_rhys_spectrum`."""
    return huang_rhys_spectrum(ccd.zpl_eV, ccd.huang_rhys_ground, ccd.ground.hbar_omega_meV,
                               temperature_K, **kwargs)


def compare_with_measurement(spectrum: PLSpectrum, measured_peak_nm: float,
                             measured_fwhm_nm: float) -> PLComparison:
    """Predicted peak/FWHM beside a measured one (e.g. the single-particle fit: 517 nm, 14 nm)."""
    if measured_fwhm_nm <= 0 or measured_peak_nm <= 0:
        raise AnalysisError("measured peak and FWHM must be positive (nm)")
    meas_e = float(nm_to_ev(measured_peak_nm))
    meas_fwhm_meV = fwhm_nm_to_meV(measured_peak_nm, measured_fwhm_nm)
    return PLComparison(
        predicted_peak_eV=spectrum.peak_eV, predicted_peak_nm=spectrum.peak_nm,
        measured_peak_eV=meas_e, measured_peak_nm=float(measured_peak_nm),
        peak_deviation_eV=spectrum.peak_eV - meas_e,
        peak_deviation_nm=spectrum.peak_nm - float(measured_peak_nm),
        predicted_fwhm_meV=1e3 * spectrum.fwhm_eV, predicted_fwhm_nm=spectrum.fwhm_nm,
        measured_fwhm_meV=meas_fwhm_meV, measured_fwhm_nm=float(measured_fwhm_nm),
        fwhm_deviation_meV=1e3 * spectrum.fwhm_eV - meas_fwhm_meV,
        fwhm_deviation_nm=spectrum.fwhm_nm - float(measured_fwhm_nm))
