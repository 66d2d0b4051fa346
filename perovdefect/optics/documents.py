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


class GkfoCorrectionTerms(Part):
    """The GKFO correction of a vertical charge change at frozen geometry (eV), term by term
    as pydefect's GkfoCorrection computes it (Gake, Kumagai, Freysoldt, Oba, PRB 101,
    020102(R) (2020)); q = charge_initial, dq = additional_charge, eps_0 / eps_inf the total
    and electronic dielectric constants (traces / 3 in the alignment term):

    * pc_1st = 2 E_pc(q; eps_0) dq / q (0 for q = 0): the added charge meets the initial
      charge's ionically screened images; E_pc = initial_efnv_point_charge_eV.
    * pc_2nd = -dq^2 x (lattice energy of a point charge screened by eps_inf only).
    * alignment_1st = -dq <V_f - V_i - V_pc(dq; eps_inf)>_far; alignment_2nd = -dq <V_i -
      V_host - V_pc(q; eps_0)>_far (the initial state's eFNV potential offset);
      alignment_3rd = -(eps_inf / eps_0) q <V_f - V_i - V_pc(dq; eps_inf)>_far. <>_far: mean
      over the sites outside the defect region (pydefect: farther than half the largest
      distance between opposite cell faces); V in volts as felt by a positive charge; V_pc
      the potential of the periodic point charge (with its neutralising background) screened
      by the dielectric constant named.

    energy_eV is the sum, E_corr(final) - E_corr(initial), to be added to E_f - E_i.
    """

    charge_initial: int
    additional_charge: int
    dielectric_total: list[list[float]]
    dielectric_electronic: list[list[float]]
    dielectric_source: str
    pc_1st_term_eV: float
    pc_2nd_term_eV: float
    alignment_1st_term_eV: float
    alignment_2nd_term_eV: float
    alignment_3rd_term_eV: float
    energy_eV: float
    #: eFNV of the relaxed initial state (point charge + alignment = its energy)
    initial_efnv_point_charge_eV: float
    initial_efnv_alignment_eV: float
    initial_efnv_energy_eV: float
    #: <V_f - V_i - V_pc(dq; eps_inf)> over the sites outside the defect region (V)
    far_potential_change_V: float
    defect_region_radius_A: float
    n_sampled_sites: int
    defect_frac_coords: list[float]
    #: pydefect's Ewald accuracy parameter (product of the G cutoff and the Gaussian width)
    ewald_accuracy: float
    method: str = ("GKFO (Gake, Kumagai, Freysoldt, Oba, PRB 101, 020102(R) (2020)) via "
                   "pydefect's make_efnv_correction + make_gkfo_correction")


class GkfoTransition(Document):
    """A vertical transition between charge states at frozen geometry in a periodic cell,
    from three calculations (host, relaxed initial state, final state at the initial
    geometry), GKFO-corrected. The carrier goes to or comes from the host's `band_edge`.

    vertical_level_above_vbm_eV: the defect's vertical level eps(q_i/q_f) = -dq (E_f - E_i +
    E_corr) measured from the host VBM (eV); inside the gap (0 .. host_gap_eV) the carrier
    is bound and `transition.kind` is the one `process` names.
    """

    process: str
    band_edge: Literal["vbm", "cbm"]
    transition: VerticalTransition
    correction: GkfoCorrectionTerms
    uncorrected_delta_energy_eV: float
    host_vbm_eV: float
    host_cbm_eV: float
    host_gap_eV: float
    vertical_level_above_vbm_eV: float
    sources: dict[str, str]
    warnings: list[str] = []
