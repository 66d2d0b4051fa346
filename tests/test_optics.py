"""perovdefect.optics against independent references: nonrad (Delta Q, omega from a PES),
scipy.stats.poisson (T = 0 phonon weights), closed-form moments of the Huang-Rhys
distribution, and the harmonic model's own definitions (S = omega dQ^2 / 2 hbar, SI units
from scipy.constants)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from pymatgen.core import Structure
from scipy import constants, stats
from scipy.integrate import trapezoid

from perovdefect.errors import AnalysisError, ParseError
from perovdefect.optics import (
    CCDiagram,
    DeltaSCFTransitions,
    PLSpectrum,
    cc_diagram,
    cc_diagram_from_geometries,
    charge_transition_energy,
    compare_with_measurement,
    delta_q,
    delta_scf_transitions,
    fit_harmonic,
    huang_rhys_spectrum,
    interpolate_geometries,
    phonon_line_weights,
    pl_spectrum,
)
from perovdefect.units import HC_EV_NM, nm_to_ev


def _geometries() -> tuple[Structure, Structure]:
    cif = resources.files("perovdefect.data").joinpath("structures",
                                                       "CsPbBr3_Pm-3m_mp-600089.cif")
    ground = Structure.from_str(cif.read_text(), fmt="cif") * (2, 1, 1)
    ground.remove_oxidation_states()
    excited = ground.copy()
    rng = np.random.default_rng(7)
    for i in range(len(excited)):
        excited.translate_sites([i], rng.normal(scale=0.04, size=3), frac_coords=False,
                                to_unit_cell=True)
    # one atom displaced across the cell boundary: minimum image must be used
    excited.translate_sites([0], [-0.05, 0.0, 0.0], frac_coords=False, to_unit_cell=True)
    return ground, excited


def _curvature(hbar_omega_eV: float) -> float:
    """omega^2 in eV/(amu A^2) from hbar omega (eV), SI constants from scipy."""
    omega = hbar_omega_eV * constants.e / constants.hbar
    return omega**2 * constants.atomic_mass * 1e-20 / constants.e


def _s_si(hbar_omega_eV: float, dq: float) -> float:
    omega = hbar_omega_eV * constants.e / constants.hbar
    return omega * (dq * np.sqrt(constants.atomic_mass) * 1e-10) ** 2 / (2 * constants.hbar)


# ------------------------------------------------------------------ geometry -----------------
def test_delta_q_matches_nonrad_and_ase():
    from nonrad.ccd import get_dQ
    from pymatgen.io.ase import AseAtomsAdaptor

    ground, excited = _geometries()
    dq = delta_q(ground, excited)
    assert dq == pytest.approx(get_dQ(ground, excited), rel=1e-10)
    a_g, a_e = (AseAtomsAdaptor.get_atoms(s) for s in (ground, excited))
    assert delta_q(a_g, a_e) == pytest.approx(dq, rel=1e-5)  # ASE vs pymatgen masses
    fr = [-0.2, 0.0, 0.3, 0.5, 1.0, 1.2]
    geoms = interpolate_geometries(ground, excited, fr)
    assert len(geoms) == len(fr) and all(isinstance(g, Structure) for g in geoms)
    for f, g in zip(fr, geoms):
        assert delta_q(ground, g) == pytest.approx(abs(f) * dq, rel=1e-6)
    assert delta_q(geoms[4], excited) == pytest.approx(0.0, abs=1e-6)
    ase_geoms = interpolate_geometries(a_g, a_e, fr)
    assert delta_q(a_g, ase_geoms[2]) == pytest.approx(0.3 * delta_q(a_g, a_e), rel=1e-6)


def test_geometry_bad_input():
    ground, excited = _geometries()
    with pytest.raises(AnalysisError, match="at least 5"):
        interpolate_geometries(ground, excited, [0, 0.5, 1])
    other = ground.copy()
    other.remove_sites([0])
    with pytest.raises(AnalysisError, match="same atoms"):
        delta_q(ground, other)
    with pytest.raises(AnalysisError, match="expected a pymatgen"):
        delta_q(ground, "POSCAR")


# --------------------------------------------------------------- CC diagram ------------------
HW_G, HW_E, ZPL = 0.012, 0.010, 2.40   # eV


def _pes(dq: float, fractions_g, fractions_e, noise: float = 0.0):
    qg, qe = np.asarray(fractions_g) * dq, np.asarray(fractions_e) * dq
    eg = 0.5 * _curvature(HW_G) * qg**2 - 100.0
    ee = ZPL + 0.5 * _curvature(HW_E) * (qe - dq) ** 2 - 100.0
    if noise:
        eg = eg + noise * np.cos(2.0 * qg)
    return eg, ee


def test_cc_diagram_harmonic_synthetic():
    from nonrad.ccd import get_omega_from_PES

    ground, excited = _geometries()
    dq = delta_q(ground, excited)
    fg = [-0.2, -0.1, 0.0, 0.1, 0.2, 0.3]
    fe = [0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    eg, ee = _pes(dq, fg, fe)
    ccd = cc_diagram_from_geometries(ground, excited, fg, eg, fe, ee)
    assert ccd.ground.hbar_omega_meV == pytest.approx(1e3 * HW_G, rel=1e-8)
    assert ccd.excited.hbar_omega_meV == pytest.approx(1e3 * HW_E, rel=1e-8)
    assert ccd.huang_rhys_ground == pytest.approx(_s_si(HW_G, dq), rel=1e-6)
    assert ccd.huang_rhys_excited == pytest.approx(_s_si(HW_E, dq), rel=1e-6)
    assert ccd.zpl_eV == pytest.approx(ZPL, abs=1e-9)
    assert ccd.e_abs_eV > ccd.zpl_eV > ccd.e_em_eV
    assert ccd.e_abs_eV - ccd.e_em_eV == pytest.approx(
        ccd.franck_condon_ground_eV + ccd.franck_condon_excited_eV, abs=1e-12)
    assert ccd.franck_condon_ground_eV == pytest.approx(ccd.huang_rhys_ground * HW_G, rel=1e-8)
    assert not ccd.warnings
    # independent: nonrad's omega from the same points (its own curve_fit; sign of omega
    # is arbitrary there)
    w_nonrad = get_omega_from_PES(np.asarray(fg) * dq, eg, Q0=0.0)
    assert ccd.ground.hbar_omega_meV == pytest.approx(1e3 * abs(w_nonrad), rel=1e-4)
    w_nonrad_e = get_omega_from_PES(np.asarray(fe) * dq, ee)
    assert ccd.excited.hbar_omega_meV == pytest.approx(1e3 * abs(w_nonrad_e), rel=1e-4)
    # free minima give the same diagram on exact parabolas
    free = cc_diagram(dq, fg, eg, fe, ee, fix_minima=False)
    assert free.zpl_eV == pytest.approx(ccd.zpl_eV, abs=1e-8)
    assert free.huang_rhys_ground == pytest.approx(ccd.huang_rhys_ground, rel=1e-5)
    assert CCDiagram.from_dict(ccd.to_dict()) == ccd


def test_cc_diagram_flags_anharmonic_and_bad_input():
    dq = 10.0
    fg = np.linspace(-0.3, 0.3, 7)
    fe = np.linspace(0.7, 1.3, 7)
    eg, ee = _pes(dq, fg, fe, noise=0.004)
    assert any("not harmonic" in w for w in cc_diagram(dq, fg, eg, fe, ee).warnings)
    with pytest.raises(AnalysisError, match="at least 3"):
        fit_harmonic([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(AnalysisError, match="curves downwards"):
        fit_harmonic([-1.0, 0.0, 1.0], [0.0, 1.0, 0.0])
    with pytest.raises(AnalysisError, match="positive"):
        cc_diagram(0.0, fg, eg, fe, ee)


# --------------------------------------------------------------- line shape ------------------
def test_phonon_weights_poisson_and_finite_t_moments():
    n, w = phonon_line_weights(3.7, 0.0, 60)
    assert w == pytest.approx(stats.poisson.pmf(n, 3.7), rel=1e-10)
    nbar = 0.8
    n, w = phonon_line_weights(3.7, nbar, 80)
    assert w.sum() == pytest.approx(1.0, abs=1e-10)
    assert (n * w).sum() == pytest.approx(3.7, abs=1e-9)
    var = (n**2 * w).sum() - 3.7**2
    assert var == pytest.approx(3.7 * (2 * nbar + 1), rel=1e-9)
    _, w_cold = phonon_line_weights(3.7, 1e-9, 60)  # continuity to the Poisson limit
    n0, w0 = phonon_line_weights(3.7, 0.0, 60)
    assert w_cold[60:] == pytest.approx(w0, abs=1e-7)


def test_lineshape_normalised_peak_and_width():
    S, hw_meV, zpl = 10.0, 5.0, 2.45
    sp = huang_rhys_spectrum(zpl, S, hw_meV, 0.0, broadening_fwhm_meV=60.0, step_meV=2.0)
    e, y = np.asarray(sp.energies_eV), np.asarray(sp.intensity_per_eV)
    assert trapezoid(y, e) == pytest.approx(1.0, abs=1e-9)
    assert trapezoid(e * y, e) == pytest.approx(zpl - S * hw_meV * 1e-3, abs=1e-6)
    # with broadening >> hbar omega the envelope peaks at the mean, within one grid bin
    assert abs(sp.peak_eV - (zpl - S * hw_meV * 1e-3)) <= e[1] - e[0]
    # variance adds: FWHM of the envelope ~ 2.355 sqrt(S hw^2 + sigma^2)
    sigma = 60e-3 / (2 * np.sqrt(2 * np.log(2)))
    expected = 2 * np.sqrt(2 * np.log(2)) * np.sqrt(S * (hw_meV * 1e-3) ** 2 + sigma**2)
    assert sp.fwhm_eV == pytest.approx(expected, rel=0.03)
    assert sp.fwhm_nm == pytest.approx(HC_EV_NM / (sp.peak_eV - sp.fwhm_eV / 2)
                                       - HC_EV_NM / (sp.peak_eV + sp.fwhm_eV / 2), rel=0.01)
    # heating broadens and keeps the first moment
    hot = huang_rhys_spectrum(zpl, S, hw_meV, 300.0, broadening_fwhm_meV=60.0, step_meV=2.0)
    eh, yh = np.asarray(hot.energies_eV), np.asarray(hot.intensity_per_eV)
    assert trapezoid(eh * yh, eh) == pytest.approx(zpl - S * hw_meV * 1e-3, abs=1e-5)
    assert hot.fwhm_eV > sp.fwhm_eV and hot.mean_phonon_occupation > 1
    # a pure ZPL keeps the profile's own width
    zp = huang_rhys_spectrum(zpl, 0.0, hw_meV, 0.0, broadening_fwhm_meV=20.0, step_meV=0.5)
    assert zp.fwhm_eV == pytest.approx(0.020, rel=0.01)
    lor = huang_rhys_spectrum(zpl, 1.0, 20.0, 10.0, broadening_fwhm_meV=20.0,
                              shape="lorentzian", step_meV=1.0)
    el, yl = np.asarray(lor.energies_eV), np.asarray(lor.intensity_per_eV)
    assert trapezoid(yl, el) == pytest.approx(1.0, abs=1e-9)
    assert PLSpectrum.from_dict(sp.to_dict()) == sp


def test_lineshape_from_ccd_and_comparison_with_measurement():
    dq = 4.0
    fg, fe = np.linspace(-0.2, 0.2, 5), np.linspace(0.8, 1.2, 5)
    eg, ee = _pes(dq, fg, fe)
    ccd = cc_diagram(dq, fg, eg, fe, ee)
    sp = pl_spectrum(ccd, 300.0, broadening_fwhm_meV=30.0)
    assert sp.huang_rhys == ccd.huang_rhys_ground
    e, y = np.asarray(sp.energies_eV), np.asarray(sp.intensity_per_eV)
    assert trapezoid(e * y, e) == pytest.approx(ccd.e_em_eV, abs=1e-5)  # mean = ZPL - S hw
    cmp = compare_with_measurement(sp, 517.0, 14.0)
    assert cmp.measured_peak_eV == pytest.approx(float(nm_to_ev(517.0)))
    assert cmp.peak_deviation_eV == pytest.approx(sp.peak_eV - cmp.measured_peak_eV)
    assert cmp.peak_deviation_nm == pytest.approx(sp.peak_nm - 517.0)
    assert np.sign(cmp.peak_deviation_eV) == -np.sign(cmp.peak_deviation_nm)
    assert cmp.fwhm_deviation_nm == pytest.approx(sp.fwhm_nm - 14.0)
    assert 60 < cmp.measured_fwhm_meV < 70  # 14 nm at 517 nm
    with pytest.raises(AnalysisError, match="holds only"):
        huang_rhys_spectrum(2.4, 5.0, 10.0, 0.0, energies_eV=np.linspace(2.3, 2.5, 400))
    with pytest.raises(AnalysisError, match="too coarse"):
        huang_rhys_spectrum(2.4, 5.0, 10.0, 0.0, broadening_fwhm_meV=2.0, step_meV=5.0)


# --------------------------------------------------------------- vertical --------------------
def test_charge_transition_energy_formula_and_errors():
    # electron excited from a neutral defect level to the CBM at the neutral geometry
    e0, e_plus, cbm, corr = -500.00, -497.10, 4.50, 0.21
    t = charge_transition_energy(e0, e_plus, 0, 1, cbm, correction_eV=corr,
                                 correction_detail="GKFO (pydefect)")
    assert t.delta_energy_eV == pytest.approx(e_plus - e0 + cbm + corr)
    assert t.kind == "absorption" and t.photon_energy_eV == pytest.approx(7.61)
    back = charge_transition_energy(e_plus, e0 + 0.3, 1, 0, cbm, correction_eV=-0.2)
    assert back.kind == "emission"
    assert back.photon_energy_eV == pytest.approx(-(e0 + 0.3 - e_plus - cbm - 0.2))
    with pytest.raises(AnalysisError, match="state the correction"):
        charge_transition_energy(e0, e_plus, 0, 1, cbm, correction_eV=None)
    with pytest.raises(AnalysisError, match="by 1"):
        charge_transition_energy(e0, e_plus, 0, 2, cbm, correction_eV=0.0)


def test_delta_scf_bookkeeping():
    gs_gs, exc_gs, gs_exc, exc_exc = -300.0, -297.2, -299.85, -297.45
    d = delta_scf_transitions(gs_gs, exc_gs, gs_exc, exc_exc)
    assert d.e_abs_eV == pytest.approx(exc_gs - gs_gs)
    assert d.e_em_eV == pytest.approx(exc_exc - gs_exc)
    assert d.zpl_eV == pytest.approx(exc_exc - gs_gs)
    assert d.e_abs_eV > d.zpl_eV > d.e_em_eV and d.consistent
    assert d.e_abs_eV - d.e_em_eV == pytest.approx(
        d.franck_condon_ground_eV + d.franck_condon_excited_eV, abs=1e-12)
    assert DeltaSCFTransitions.from_dict(d.to_dict()) == d
    bad = delta_scf_transitions(gs_gs, exc_gs, gs_gs - 0.1, exc_exc)
    assert not bad.consistent and "ground-state relaxation" in bad.warnings[0]
    assert bad.e_em_nm is None
    DeltaSCFTransitions.from_dict(bad.to_dict())
    with pytest.raises(ParseError):
        DeltaSCFTransitions.from_dict({**d.to_dict(), "e_abs_eV": "high"})
