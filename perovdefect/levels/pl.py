"""Photoluminescence spectra: read (wavelength nm, intensity) CSV, fit a Gaussian or Voigt peak,
compare computed transitions with the peak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit
from scipy.special import voigt_profile

from perovdefect.errors import AnalysisError
from perovdefect.documents import Document, Part
from perovdefect.units import ev_to_nm, fwhm_nm_to_meV, nm_to_ev

SIGMA_TO_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


class PLPeak(Document):
    """A fitted PL peak: centre (nm, eV), FWHM (nm, meV), amplitude (input units)."""

    model: str
    center_nm: float
    center_eV: float
    fwhm_nm: float
    fwhm_meV: float
    amplitude: float
    center_err_nm: float | None = None
    source: str | None = None


class TransitionDeviation(Part):
    """One computed transition against the measured PL peak."""

    transition_eV: float
    transition_nm: float
    deviation_eV: float
    deviation_nm: float


class PLComparison(Part):
    """Computed transitions against a measured PL peak (eV, nm, meV)."""

    pl_nm: float
    pl_eV: float
    pl_fwhm_meV: float | None = None
    transitions: list[TransitionDeviation] = []
    closest: TransitionDeviation | None = None


def read_spectrum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column CSV (wavelength in nm, intensity); header lines are skipped.

    Raises AnalysisError naming the file when it is missing, empty or not numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: no such spectrum file")
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.replace(";", ",").replace("\t", ",").split(",")
        if len(parts) < 2:
            parts = line.split()
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            continue  # header or comment
    if len(rows) < 5:
        raise AnalysisError(f"{path}: spectrum is empty or has fewer than 5 numeric "
                            "(wavelength_nm, intensity) rows")
    data = np.array(rows)
    order = np.argsort(data[:, 0])
    wl, inten = data[order, 0], data[order, 1]
    if np.any(wl <= 0):
        raise AnalysisError(f"{path}: wavelengths must be positive (nm)")
    return wl, inten


def _gauss(x, a, x0, sigma, c):
    return a * np.exp(-0.5 * ((x - x0) / sigma) ** 2) + c


def _voigt(x, a, x0, sigma, gamma, c):
    return a * voigt_profile(x - x0, sigma, gamma) + c


def fit_pl_spectrum(wavelength_nm: np.ndarray, intensity: np.ndarray, model: str = "gaussian",
                    source: str | None = None) -> PLPeak:
    """Least-squares fit of one peak (+ constant background) in wavelength space."""
    wl, y = np.asarray(wavelength_nm, float), np.asarray(intensity, float)
    if y.max() <= y.min():
        raise AnalysisError(f"{source or 'spectrum'}: flat spectrum, no peak to fit")
    i = int(np.argmax(y))
    half = y.min() + (y.max() - y.min()) / 2
    above = wl[y >= half]
    width0 = max(float(above.max() - above.min()), float(np.median(np.diff(wl))) * 2)
    sigma0 = width0 / SIGMA_TO_FWHM
    try:
        if model == "gaussian":
            p, cov = curve_fit(_gauss, wl, y, p0=[y.max() - y.min(), wl[i], sigma0, y.min()])
            fwhm = abs(p[2]) * SIGMA_TO_FWHM
            amp = p[0]
        elif model == "voigt":
            p, cov = curve_fit(_voigt, wl, y, p0=[(y.max() - y.min()) * sigma0 * 2.5, wl[i],
                                                  sigma0 / 2, sigma0 / 2, y.min()], maxfev=20000)
            fg, fl = abs(p[2]) * SIGMA_TO_FWHM, 2 * abs(p[3])
            fwhm = 0.5346 * fl + np.sqrt(0.2166 * fl**2 + fg**2)  # Olivero-Longbothum
            amp = p[0]
        else:
            raise AnalysisError(f"unknown peak model {model!r}; use gaussian or voigt")
    except RuntimeError as exc:
        raise AnalysisError(f"{source or 'spectrum'}: peak fit failed ({exc})") from exc
    center = float(p[1])
    err = float(np.sqrt(cov[1, 1])) if np.all(np.isfinite(cov)) else None
    return PLPeak(model=model, center_nm=round(center, 3), center_eV=round(nm_to_ev(center), 4),
                  fwhm_nm=round(float(fwhm), 3), fwhm_meV=round(fwhm_nm_to_meV(center, fwhm), 2),
                  amplitude=float(amp), center_err_nm=err, source=source)


def compare_with_pl(transitions_eV: list[float], pl_nm: float | None = None,
                    peak: PLPeak | None = None) -> PLComparison:
    """Deviation of each computed transition from a measured PL energy (eV and nm)."""
    if peak is not None:
        pl_nm = peak.center_nm
    if pl_nm is None or pl_nm <= 0:
        raise AnalysisError("a PL wavelength (nm) or fitted peak is needed")
    pl_eV = float(nm_to_ev(pl_nm))
    rows = [{"transition_eV": round(t, 4), "transition_nm": round(float(ev_to_nm(t)), 1),
             "deviation_eV": round(t - pl_eV, 4),
             "deviation_nm": round(float(ev_to_nm(t)) - pl_nm, 1)} for t in transitions_eV if t > 0]
    best = min(rows, key=lambda r: abs(r["deviation_eV"])) if rows else None
    return PLComparison(pl_nm=round(pl_nm, 2), pl_eV=round(pl_eV, 4),
                        pl_fwhm_meV=peak.fwhm_meV if peak else None, transitions=rows,
                        closest=best)
