"""Typed result documents of the luminescence analysis (pydantic, see perovdefect.documents).

Energies in eV (phonon energies in meV where named so), Q in amu^1/2 A, wavelengths in nm,
temperatures in K.
"""

from __future__ import annotations

from typing import Literal

from perovdefect.documents import Document, Part


class HarmonicFit(Part):
    """E(Q) = e0 + 1/2 omega^2 (Q - q0)^2 fitted to one potential-energy surface."""

    hbar_omega_meV: float
    q0_amu05_A: float
    e0_eV: float
    minimum_fixed: bool
    n_points: int
    rms_residual_meV: float


class CCDiagram(Document):
    """One-dimensional configuration-coordinate diagram (ground and excited surfaces).

    zpl_eV is the difference of the two minima (no zero-point-energy term); E_abs = ZPL +
    FC_excited, E_em = ZPL - FC_ground, so E_abs - E_em = FC_ground + FC_excited.
    S = omega DeltaQ^2 / (2 hbar); FC = S hbar omega on each surface.
    """

    delta_q_amu05_A: float
    ground: HarmonicFit
    excited: HarmonicFit
    huang_rhys_ground: float
    huang_rhys_excited: float
    franck_condon_ground_eV: float
    franck_condon_excited_eV: float
    zpl_eV: float
    e_abs_eV: float
    e_em_eV: float
    warnings: list[str] = []


class Broadening(Part):
    """Line profile given to every phonon line (FWHM in meV)."""

    shape: Literal["gaussian", "lorentzian"]
    fwhm_meV: float


class PLSpectrum(Document):
    """Predicted 1D Huang-Rhys line shape, normalised to unit area over energy (1/eV)."""

    temperature_K: float
    zpl_eV: float
    huang_rhys: float
    hbar_omega_meV: float
    broadening: Broadening
    photon_energy_exponent: int
    energies_eV: list[float]
    intensity_per_eV: list[float]
    peak_eV: float
    peak_nm: float
    fwhm_eV: float
    fwhm_nm: float
    mean_phonon_occupation: float


class PLComparison(Part):
    """Predicted PL peak and width beside a measured one (deviation = predicted - measured)."""

    predicted_peak_eV: float
    predicted_peak_nm: float
    measured_peak_eV: float
    measured_peak_nm: float
    peak_deviation_eV: float
    peak_deviation_nm: float
    predicted_fwhm_meV: float
    predicted_fwhm_nm: float
    measured_fwhm_meV: float
    measured_fwhm_nm: float
    fwhm_deviation_meV: float
    fwhm_deviation_nm: float


class VerticalTransition(Document):
    """Vertical (frozen-geometry) charge-changing transition energy.

    delta_E = E(q_f; R_i) - E(q_i; R_i) + (q_f - q_i) E_edge + E_corr, photon = |delta_E|.
    """

    charge_initial: int
    charge_final: int
    energy_initial_eV: float
    energy_final_eV: float
    band_edge_eV: float
    correction_eV: float
    correction_detail: str
    delta_energy_eV: float
    photon_energy_eV: float
    photon_nm: float
    kind: Literal["absorption", "emission"]
    formula: str = ("dE = E(q_f; R_i) - E(q_i; R_i) + (q_f - q_i) E_edge + E_corr "
                    "(GKFO: Gake, Kumagai, Freysoldt, Oba, PRB 101, 020102(R) (2020); "
                    "as in pydefect)")


class DeltaSCFTransitions(Document):
    """DeltaSCF (constrained occupation) transitions of an isolated cluster at two geometries."""

    e_abs_eV: float
    e_em_eV: float
    zpl_eV: float
    franck_condon_ground_eV: float
    franck_condon_excited_eV: float
    stokes_shift_eV: float
    #: None when the transitions are inconsistent (see warnings)
    e_abs_nm: float | None
    e_em_nm: float | None
    consistent: bool
    warnings: list[str] = []
