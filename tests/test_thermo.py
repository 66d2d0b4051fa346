"""perovdefect.thermo against independent implementations: pymatgen-analysis-defects
(FormationEnergyDiagram, chemical-potential limits), pymatgen's Ewald sum (point-charge
Madelung energy), py-sc-fermi (self-consistent Fermi level). Inputs are synthetic but of
realistic size (PBE-like Cs-Pb-Br energies, a 2x2x2 cubic CsPbBr3 cell)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from pymatgen.core import Composition, Element, Lattice, Structure
from scipy import constants
from scipy.integrate import trapezoid

from perovdefect.errors import AnalysisError, ParseError, UnboundStateError, UnstableHostError
from perovdefect.thermo import (
    FormationEnergyDiagram,
    StabilityRegion,
    check_cluster_bound,
    dielectric_constant,
    efnv_correction,
    formation_energy_diagram,
    freysoldt_correction,
    host_stability,
    isolated_cluster_correction,
    require_bound,
    solve_fermi_level,
    stability_region,
)

# --- synthetic Cs-Pb-Br energies (eV): elemental energies per atom and formation enthalpies ----
MU_REF = {"Cs": -0.853, "Pb": -3.712, "Br": -1.581}
HF = {"CsBr": -3.92, "PbBr2": -2.61}
HF["CsPbBr3"] = HF["CsBr"] + HF["PbBr2"] - 0.11
HF["Cs4PbBr6"] = 4 * HF["CsBr"] + HF["PbBr2"] - 0.17
HF["CsPb2Br5"] = HF["CsBr"] + 2 * HF["PbBr2"] - 0.13


def _phases() -> dict[str, float]:
    out = {"Cs": MU_REF["Cs"], "Pb": MU_REF["Pb"], "Br2": 2 * MU_REF["Br"]}
    for f, h in HF.items():
        c = Composition(f)
        out[f] = h + sum(c[el] * MU_REF[el.symbol] for el in c)
    return out


def _cubic_host() -> Structure:
    cif = resources.files("perovdefect.data").joinpath("structures",
                                                       "CsPbBr3_Pm-3m_mp-600089.cif")
    s = Structure.from_str(cif.read_text(), fmt="cif")
    s.remove_oxidation_states()
    return s


# ----------------------------------------------------------------- chemical potentials -------
def test_stability_region_matches_pmg_defects_vertices():
    from pymatgen.analysis.defects.thermo import FormationEnergyDiagram as PmgFED
    from pymatgen.analysis.defects.core import Vacancy
    from pymatgen.entries.computed_entries import ComputedEntry

    phases = _phases()
    region = stability_region("CsPbBr3", phases)
    assert region.stability.stable
    labels = [lim.label for lim in region.limits]
    assert labels[0] == "Br-rich" and labels[-1] == "Br-poor"
    br = [lim.delta_mu_eV["Br"] for lim in region.limits]
    assert br[0] == pytest.approx(max(br)) and br[-1] == pytest.approx(min(br))
    assert br[0] == pytest.approx(0.0, abs=1e-9) and "Br2" in region.limits[0].competing_phases
    # every vertex satisfies the host's own equilibrium sum_i n_i dmu_i = dH_f(host)
    for lim in region.limits:
        total = lim.delta_mu_eV["Cs"] + lim.delta_mu_eV["Pb"] + 3 * lim.delta_mu_eV["Br"]
        assert total == pytest.approx(HF["CsPbBr3"], abs=1e-6)
        assert all(v <= 1e-9 for v in lim.delta_mu_eV.values())
        assert lim.mu_eV["Br"] == pytest.approx(MU_REF["Br"] + lim.delta_mu_eV["Br"])
    # independent: pymatgen-analysis-defects' own stability region on the same phases
    host = _cubic_host()
    vac = Vacancy(host, host[-1])
    e_host = phases["CsPbBr3"]
    dent = DefectEntry_(vac, host, e_host)
    pd_entries = [ComputedEntry(Composition(f), e) for f, e in phases.items()]
    fed = PmgFED(defect_entries=[dent], pd_entries=pd_entries, vbm=0.0, band_gap=2.3,
                 bulk_entry=ComputedEntry(host.composition.element_composition, e_host),
                 bulk_stability=1e-7)
    theirs = sorted(tuple(round(d[Element(el)], 4) for el in ("Br", "Cs", "Pb"))
                    for d in fed.chempot_limits)
    ours = sorted(tuple(round(lim.delta_mu_eV[el], 4) for el in ("Br", "Cs", "Pb"))
                  for lim in region.limits)
    assert ours == theirs
    # JSON round trip through the project's document mechanism
    again = StabilityRegion.from_dict(region.to_dict())
    assert again == region


def DefectEntry_(defect, structure, energy, charge=0):  # noqa: N802 - helper
    from pymatgen.analysis.defects.thermo import DefectEntry
    from pymatgen.entries.computed_entries import ComputedEntry

    return DefectEntry(defect=defect, charge_state=charge,
                       sc_entry=ComputedEntry(
                           defect.defect_structure.composition.element_composition, energy))


def test_unstable_host_is_refused_clearly():
    phases = _phases()
    phases["CsPbBr3"] += 0.6  # far above CsBr + PbBr2 / Cs4PbBr6 + CsPb2Br5
    stab = host_stability("CsPbBr3", phases)
    assert not stab.stable and stab.energy_above_hull_eV_per_atom > 0.05
    assert "CsPbBr3" not in stab.decomposition
    with pytest.raises(UnstableHostError, match="above the convex hull"):
        stability_region("CsPbBr3", phases)
    with pytest.raises(AnalysisError, match="elemental reference"):
        stability_region("CsPbBr3", {k: v for k, v in _phases().items() if k != "Br2"})
    with pytest.raises(AnalysisError, match="not among"):
        stability_region("CsPbBr3", {"Cs": -0.8, "Pb": -3.7, "Br2": -3.1})


# ----------------------------------------------------------- formation energies --------------
CHARGES_EF0 = {1: 0.31, 0: 2.23, -1: 4.61}   # target E_f(q, E_F=VBM) at Br-rich (eV)
CORR = {1: 0.118, -1: 0.131}                  # FNV-sized corrections (eV)
VBM, GAP = 1.234, 2.30


def _defect_inputs(region: StabilityRegion, n_fu: int = 8):
    e_host = n_fu * _phases()["CsPbBr3"] + 0.0
    mu_br = region.limit("Br-rich").mu_eV["Br"]
    e_def = {q: e_host + (-1) * mu_br + ef - q * VBM - CORR.get(q, 0.0)
             for q, ef in CHARGES_EF0.items()}
    return e_host, e_def


def test_formation_energies_and_levels_match_pmg_defects():
    from pymatgen.analysis.defects.core import Vacancy
    from pymatgen.analysis.defects.thermo import DefectEntry
    from pymatgen.analysis.defects.thermo import FormationEnergyDiagram as PmgFED
    from pymatgen.entries.computed_entries import ComputedEntry

    region = stability_region("CsPbBr3", _phases())
    e_host, e_def = _defect_inputs(region)
    doc = formation_energy_diagram("V_Br", e_def, e_host, {"Br": -1}, VBM, GAP, region,
                                   corrections=CORR)
    # explicit 'none' for the uncorrected neutral state; user corrections carried
    by_q = {s.charge: s for s in doc.charge_states}
    assert [c.name for c in by_q[0].corrections] == ["none"]
    assert by_q[1].correction_total_eV == pytest.approx(CORR[1])
    # slopes equal q
    for lim in region.limits:
        for q in CHARGES_EF0:
            d = doc.formation_energy(q, 1.0, lim.label) - doc.formation_energy(q, 0.0, lim.label)
            assert d == pytest.approx(q, abs=1e-12)

    # independent: pymatgen-analysis-defects on the same numbers
    host = _cubic_host() * (2, 2, 2)
    vac = Vacancy(host, host[-1])
    dents = [DefectEntry(defect=vac, charge_state=q,
                         sc_entry=ComputedEntry(
                             vac.defect_structure.composition.element_composition, e),
                         corrections={"fnv": CORR.get(q, 0.0)})
             for q, e in e_def.items()]
    pd_entries = [ComputedEntry(Composition(f), e) for f, e in _phases().items()]
    fed = PmgFED(defect_entries=dents, pd_entries=pd_entries, vbm=VBM, band_gap=GAP,
                 bulk_entry=ComputedEntry(host.composition.element_composition, e_host),
                 bulk_stability=1e-7)
    for cp in fed.chempot_limits:
        lim = min(region.limits, key=lambda x: sum(abs(x.delta_mu_eV[el.symbol] - v)
                                                   for el, v in cp.items()))
        for ef in np.linspace(-0.2, GAP + 0.2, 13):
            ours = min(doc.formation_energy(q, ef, lim.label) for q in CHARGES_EF0)
            assert ours == pytest.approx(fed.get_formation_energy(ef, cp), abs=1e-3)
        for q, b in fed._get_lines(cp):
            assert doc.formation_energy(int(q), 0.0, lim.label) == pytest.approx(b, abs=1e-3)
        kinks = fed.get_transitions(cp, 0.0, GAP)[1:-1]
        assert [lvl.level_above_vbm_eV for lvl in doc.transition_levels] == pytest.approx(
            [x for x, _ in kinks], abs=1e-3)
    assert [t.charges for t in doc.transition_levels] == [[1, 0]]
    assert doc.transition_levels[0].level_above_vbm_eV == pytest.approx(
        CHARGES_EF0[0] - CHARGES_EF0[1], abs=1e-9)
    assert [t.charges for t in doc.levels_outside_gap] == [[0, -1]]
    assert doc.stable_charge(0.5) == 1 and doc.stable_charge(2.2) == 0
    lim = doc.formation_energies[0]
    assert (lim.stable_charge_at_vbm, lim.stable_charge_at_cbm) == (1, 0)
    # round trip and the requested JSON shape
    d = doc.to_dict()
    assert d["transition_levels"][0] == {"charges": [1, 0],
                                         "level_above_vbm_eV": pytest.approx(1.92)}
    assert FormationEnergyDiagram.from_dict(d) == doc
    with pytest.raises(ParseError):
        FormationEnergyDiagram.from_dict({**d, "transition_levels": [{"charges": [1]}]})


def test_skipped_charge_state_gives_two_electron_level():
    # a negative-U centre: 0 is never stable, the level is (+1/-1) at the mean
    lines = {1: 0.0, 0: 1.5, -1: 2.0}
    doc = formation_energy_diagram("X", {q: b for q, b in lines.items()}, 0.0, {}, 0.0, 3.0,
                                   {"any": {}})
    assert [t.charges for t in doc.transition_levels] == [[1, -1]]
    assert doc.transition_levels[0].level_above_vbm_eV == pytest.approx(1.0)


def test_formation_energy_bad_input():
    with pytest.raises(AnalysisError, match="no chemical potential for"):
        formation_energy_diagram("V_Br", {0: -10.0}, -12.0, {"Br": -1}, 0.0, 2.0,
                                 {"Br-rich": {"Cs": -1.0}})
    with pytest.raises(AnalysisError, match="no total energy"):
        formation_energy_diagram("V_Br", {0: -10.0}, -12.0, {"Br": -1}, 0.0, 2.0,
                                 {"x": {"Br": -1.5}}, corrections={1: 0.1})
    with pytest.raises(AnalysisError, match="no charge states"):
        formation_energy_diagram("V_Br", {}, -12.0, {"Br": -1}, 0.0, 2.0, {"x": {"Br": -1.5}})


# --------------------------------------------------------------- Freysoldt (FNV) ------------
HA_EV = constants.physical_constants["Hartree energy in eV"][0]
BOHR_A = constants.physical_constants["Bohr radius"][0] * 1e10


def _model_planar_potential(q: int, L: float, n: int, eps: float, beta_bohr: float = 1.0):
    """Planar average (electron potential energy, eV) of a periodic array of Gaussian charges
    q exp(-r^2/beta^2) in a cubic cell of side L (A) with a neutralising background, by its own
    Fourier series (G along the axis only), zero average."""
    x = np.arange(n) * L / n
    m = np.arange(1, n // 2)
    g = 2 * np.pi * m / (L / BOHR_A)                      # 1/bohr
    vol = (L / BOHR_A) ** 3
    coef = 4 * np.pi * q * np.exp(-0.25 * beta_bohr**2 * g**2) / (eps * g**2 * vol)  # Ha
    phi = 2 * (coef[:, None] * np.cos(np.outer(2 * np.pi * m / L, x))).sum(axis=0)
    return -phi * HA_EV


def _host_planar(L: float, n: int):
    x = np.arange(n) * L / n
    return -2.0 + 0.7 * np.cos(2 * np.pi * 2 * x / L) + 0.3 * np.sin(2 * np.pi * 4 * x / L)


def _fnv(q: int, L: float, eps: float, offset: float = 0.0, at_centre: bool = False):
    n = int(round(L / 0.1))
    host = [_host_planar(L, n)] * 3
    model = _model_planar_potential(q, L, n, eps)
    if at_centre:  # the same defect, placed at (1/2, 1/2, 1/2)
        model = np.roll(model, n // 2)
    defect = [h + model + offset for h in host]
    lat = Lattice.cubic(L)
    frac = [0.5, 0.5, 0.5] if at_centre else [0.0, 0.0, 0.0]
    return freysoldt_correction(q, defect, host, lat, lat, eps, frac)


def _madelung_point_charge(q: int, L: float, eps: float) -> float:
    """q^2 alpha / (2 eps L) from pymatgen's Ewald sum of one point charge in a neutralising
    background (independent of the Freysoldt code)."""
    from pymatgen.analysis.ewald import EwaldSummation

    s = Structure(Lattice.cubic(L), ["H"], [[0, 0, 0]])
    s.add_oxidation_state_by_element({"H": q})
    return -EwaldSummation(s).total_energy / eps


def test_fnv_on_model_charge_follows_madelung_and_1_over_L():
    eps, q = 6.0, 1
    c10, c20 = _fnv(q, 10.0, eps), _fnv(q, 20.0, eps)
    for c, L in ((c10, 10.0), (c20, 20.0)):
        assert c.electrostatic_eV == pytest.approx(_madelung_point_charge(q, L, eps), rel=0.02)
        # the model charge's potential has no short-range part left: alignment ~ 0
        assert abs(c.alignment_eV) < 0.01
    assert c10.energy_eV > c20.energy_eV > 0
    assert c10.energy_eV / c20.energy_eV == pytest.approx(2.0, rel=0.03)
    # q^2 scaling and a uniform potential offset enters as q * offset
    c10_q2 = _fnv(2, 10.0, eps)
    assert c10_q2.electrostatic_eV == pytest.approx(4 * c10.electrostatic_eV,
                                                          abs=1e-5)  # pmg rounds to 1 ueV
    shifted = _fnv(q, 10.0, eps, offset=0.05)
    assert shifted.alignment_eV - c10.alignment_eV == pytest.approx(q * 0.05, abs=1e-3)
    # translation invariance: the defect at the cell centre gives the same correction
    assert _fnv(q, 10.0, eps, at_centre=True).energy_eV == pytest.approx(c10.energy_eV,
                                                                         abs=2e-3)
    assert c10.as_correction().name == "freysoldt"
    assert _fnv(0, 10.0, eps).energy_eV == 0.0


def test_fnv_bad_input():
    L, n = 10.0, 100
    host = [_host_planar(L, n)] * 3
    lat = Lattice.cubic(L)
    with pytest.raises(AnalysisError, match="charge is required"):
        freysoldt_correction(None, host, host, lat, lat, 5.0, [0, 0, 0])
    with pytest.raises(AnalysisError, match="lattices differ"):
        freysoldt_correction(1, host, host, lat, Lattice.cubic(10.2), 5.0, [0, 0, 0])
    short = [h[:-2] for h in host]
    with pytest.raises(AnalysisError, match="same FFT grid"):
        freysoldt_correction(1, short, host, lat, lat, 5.0, [0, 0, 0])
    with pytest.raises(AnalysisError, match="each of the 3"):
        freysoldt_correction(1, host[:2], host[:2], lat, lat, 5.0, [0, 0, 0])
    with pytest.raises(AnalysisError, match="positive definite"):
        freysoldt_correction(1, host, host, lat, lat, -5.0, [0, 0, 0])


# --------------------------------------------------------------- eFNV (Kumagai-Oba) ---------
def _efnv(q: int, n: int, eps: float, offset: float = 0.0):
    host = _cubic_host() * (n, n, n)
    k = [i for i, s in enumerate(host) if s.specie.symbol == "Br"][0]
    defect = host.copy()
    defect.remove_sites([k])
    base = {"Cs": 31.0, "Pb": 58.0, "Br": 74.0}  # arbitrary host site potentials (V)
    v_host = np.array([base[s.specie.symbol] for s in host])
    v_def = np.delete(v_host, k) + offset
    return efnv_correction(q, defect, host, v_def, v_host, eps), host.lattice.a


def test_efnv_point_charge_term_follows_madelung_and_offset():
    pytest.importorskip("pydefect", reason="eFNV needs the optional pydefect")
    eps, q = 6.0, 1
    c2, l2 = _efnv(q, 2, eps)
    c3, l3 = _efnv(q, 3, eps)
    for c, L in ((c2, l2), (c3, l3)):
        assert c.point_charge_eV == pytest.approx(_madelung_point_charge(q, L, eps), rel=1e-3)
        assert c.n_sampled_sites > 0 and c.defect_region_radius_A > 0
    assert c2.point_charge_eV / c3.point_charge_eV == pytest.approx(l3 / l2, rel=1e-3)
    shifted, _ = _efnv(q, 2, eps, offset=0.05)
    assert shifted.energy_eV - c2.energy_eV == pytest.approx(-q * 0.05, abs=1e-9)
    assert c2.as_correction().name == "efnv"


def test_efnv_bad_input():
    host = _cubic_host() * (2, 2, 2)
    defect = host.copy()
    defect.remove_sites([len(host) - 1])
    v = np.zeros(len(host))
    with pytest.raises(AnalysisError, match="charge is required"):
        efnv_correction(None, defect, host, v[:-1], v, 5.0)
    with pytest.raises(AnalysisError, match="one site potential per atom"):
        efnv_correction(1, defect, host, v, v, 5.0)
    other = host.copy()
    other.scale_lattice(host.volume * 1.05)
    with pytest.raises(AnalysisError, match="lattices differ"):
        efnv_correction(1, defect, other, v[:-1], v, 5.0)


# ------------------------------------------------------------------- clusters ----------------
def test_isolated_cluster_no_correction_and_unbound_flag():
    c = isolated_cluster_correction(-1)
    assert c.name == "none" and c.energy_eV == 0.0 and "isolated cluster" in c.detail
    bound = check_cluster_bound(-1, homo_eV=-1.2, vacuum_level_eV=0.3)
    assert bound.bound and require_bound(bound) is bound
    unbound = check_cluster_bound(-2, homo_eV=0.8, vacuum_level_eV=0.3)
    assert not unbound.bound and unbound.homo_above_vacuum_eV == pytest.approx(0.5)
    assert "UNBOUND" in unbound.message
    with pytest.raises(UnboundStateError, match="above the vacuum level"):
        require_bound(unbound)
    with pytest.raises(AnalysisError):
        check_cluster_bound(-1, float("nan"), 0.0)


# ------------------------------------------------------------------- data --------------------
def test_shipped_dielectric_data_have_sources_or_refuse():
    d = dielectric_constant("CsPbBr3", "total")
    assert d.value > 1 and d.source and d.uncertainty
    with pytest.raises(AnalysisError, match="pass your own value"):
        dielectric_constant("Cs4PbBr6", "total")
    with pytest.raises(AnalysisError, match="no dielectric data"):
        dielectric_constant("GaN")


# ------------------------------------------------------------- Fermi level -------------------
def test_fermi_level_matches_py_sc_fermi():
    from py_sc_fermi.defect_charge_state import DefectChargeState
    from py_sc_fermi.defect_species import DefectSpecies
    from py_sc_fermi.defect_system import DefectSystem
    from py_sc_fermi.dos import DOS

    gap, T, vol = 2.3, 600.0, 210.0
    e = np.linspace(-4.0, gap + 4.0, 6001)
    g = np.where(e < 0, 4.0 * np.sqrt(np.clip(-e, 0, None)), 0.0) + \
        np.where(e > gap, 1.5 * np.sqrt(np.clip(e - gap, 0, None)), 0.0)
    donor = formation_energy_diagram("V_Br", {1: -1.0, 0: 1.0}, 0.0, {}, 0.0, gap,
                                     {"lim": {}})
    acceptor = formation_energy_diagram("V_Cs", {0: 1.8, -1: 2.1}, 0.0, {}, 0.0, gap,
                                        {"lim": {}})
    ours = solve_fermi_level([donor, acceptor], "lim", T, e, g, vol, {"V_Br": 3, "V_Cs": 1})

    mid = np.argmin(np.abs(e - gap / 2))
    nelect = trapezoid(g[:mid], e[:mid])  # py-sc-fermi rescales the DOS to this: no rescaling
    species = [DefectSpecies(d.defect, n, {fe.charge: DefectChargeState(fe.charge, 1,
                                                                        fe.at_vbm_eV)
                                           for fe in d.formation_energies[0].formation_energies})
               for d, n in ((donor, 3), (acceptor, 1))]
    system = DefectSystem(species, DOS(g, e, gap, nelect), vol, T)
    ef_ref, _ = system.get_sc_fermi()
    assert 0.0 < ours.fermi_level_above_vbm_eV < gap
    assert ours.fermi_level_above_vbm_eV == pytest.approx(ef_ref, abs=1e-3)
    ref = system.concentration_dict(decomposed=True)
    ours_q = {(c.defect, c.charge): c.concentration_cm3 for c in ours.concentrations}
    assert ours_q[("V_Br", 1)] == pytest.approx(ref["V_Br"][1], rel=0.05)
    assert ours_q[("V_Cs", -1)] == pytest.approx(ref["V_Cs"][-1], rel=0.05)
    with pytest.raises(AnalysisError, match="sites per cell"):
        solve_fermi_level([donor], "lim", T, e, g, vol, {})
