"""Issue 21: Fermi level and concentrations (`perovdefect formation --fermi`, and
perovdefect.thermo.concentrations.solve_thermodynamics for the campaign), in equilibrium at the
synthesis temperature and with the defect totals frozen after a quench.

Real inputs: the V_N in GaN set of ../shared/data/vasp (pymatgen-analysis-defects' test runs:
the 32-atom bulk at one k-point and the q=-1, 0, +1, +2 vacancy cells). The chemical potentials
are test inputs, not results: mu_N = -8.3 eV/atom (about half a PBE N2 molecule, "N-rich"),
1.2 eV lower ("Ga-rich", about GaN's formation enthalpy) and an off-region -10.9 eV where the
vacancies outnumber the intrinsic carriers (so that both carriers and defects set E_F).

Reference: py-sc-fermi (its own Brent solve; its fixed-concentration species for the quench)
on a host DOS built in this test from pymatgen's reading of the bulk vasprun.xml (Gaussians of
the same width on another grid), the formation energies of the document, the site count and
the cell volume from pymatgen's structure. Agreement to 1 meV and 1 %.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from perovdefect.errors import AnalysisError
from tests.conftest import run_cli

CHARGES = ("q-1", "q0", "q+1", "q+2")
LIMITS = {"N-rich": {"Ga": -3.0, "N": -8.3}, "Ga-rich": {"Ga": -1.8, "N": -9.5},
          "off-region low mu_N": {"Ga": 0.0, "N": -10.9}}
T_GROWTH, T_QUENCH = 1300.0, 300.0
SMEARING_eV = 0.005


def _runs(shared_data):
    root = shared_data / "vasp"
    return root / "pmgad_v_N_GaN_bulk", [root / f"pmgad_v_N_GaN_{q}" for q in CHARGES]


@pytest.fixture(scope="module")
def gan(shared_data):
    """The parsed bulk and V_N documents and their FormationResult at the three limits."""
    from perovdefect.parsers import parse
    from perovdefect.thermo.calculations import formation_from_calculations
    bulk, defects = _runs(shared_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host, docs = parse(bulk), [parse(d) for d in defects]
    result = formation_from_calculations(host, docs, None, LIMITS, "none", None, "V_N")
    return host, result


@pytest.fixture(scope="module")
def reference_dos(shared_data):
    """(energies above the VBM (eV), states/eV per cell, gap (eV), NELECT, volume (A^3),
    N sites) from pymatgen's Vasprun: the test's own DOS, not perovdefect's."""
    from pymatgen.io.vasp import Vasprun
    bulk, _ = _runs(shared_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vr = Vasprun(str(bulk / "vasprun.xml.gz"), parse_potcar_file=False, parse_dos=False)
    gap, _, vbm, _ = vr.eigenvalue_band_properties
    weights = np.asarray(vr.actual_kpoints_weights)
    eps = np.array([vr.eigenvalues[s][:, :, 0] for s in vr.eigenvalues]) - vbm  # [s][k][n]
    w = np.broadcast_to(weights[None, :, None], eps.shape).ravel()  # ISPIN 2: one e per state
    energies = np.arange(eps.min() - 0.1, eps.max() + 0.1, 0.0007)
    x = (energies[:, None] - eps.ravel()[None, :]) / SMEARING_eV
    dos = (np.exp(-0.5 * x ** 2) * w).sum(axis=1) / (SMEARING_eV * np.sqrt(2 * np.pi))
    s = vr.final_structure
    return (energies, dos, float(gap), float(vr.parameters["NELECT"]), float(s.volume),
            sum(1 for site in s if site.specie.symbol == "N"))


def _sc_fermi(diagrams, limit, temperature_K, ref, nsites, degeneracies=None, fixed=None):
    """py-sc-fermi's Fermi level and concentrations (per cm^3) for one limit; `fixed`: defect
    -> total per cell (frozen) instead of equilibrium."""
    from py_sc_fermi.defect_charge_state import DefectChargeState
    from py_sc_fermi.defect_species import DefectSpecies
    from py_sc_fermi.defect_system import DefectSystem
    from py_sc_fermi.dos import DOS
    energies, dos, gap, nelect, volume, _ = ref
    species = []
    for d in diagrams:
        g = (degeneracies or {}).get(d.defect, {})
        states = {fe.charge: DefectChargeState(fe.charge, degeneracy=g.get(fe.charge, 1),
                                                energy=fe.at_vbm_eV)
                  for fe in d.at_limit(limit).formation_energies}
        species.append(DefectSpecies(d.defect, nsites[d.defect], states,
                                     fixed_concentration=(fixed or {}).get(d.defect)))
    system = DefectSystem(species, DOS(dos, energies, gap, nelect), volume, temperature_K)
    ef, _ = system.get_sc_fermi()
    per_cell = {ds.name: ds.get_concentration(ef, temperature_K) for ds in species}
    return ef, system.concentration_dict(decomposed=True), per_cell


def _assert_matches(sol, ef, conc):
    assert sol.fermi_level_above_vbm_eV == pytest.approx(ef, abs=1e-3)
    assert sol.electrons_cm3 == pytest.approx(conc["n0"], rel=0.01)
    assert sol.holes_cm3 == pytest.approx(conc["p0"], rel=0.01)
    for c in sol.concentrations:
        assert c.concentration_cm3 == pytest.approx(conc[c.defect][c.charge], rel=0.01), c


def _check_against_sc_fermi(thermo, diagrams, ref, nsites, degeneracies=None):
    """Every limit: equilibrium at T and frozen at T2 against py-sc-fermi, whose frozen totals
    are its own equilibrium ones."""
    for lim in thermo.limits:
        ef, conc, per_cell = _sc_fermi(diagrams, lim.limit, thermo.temperature_K, ref, nsites,
                                       degeneracies)
        _assert_matches(lim.equilibrium, ef, conc)
        ef2, conc2, _ = _sc_fermi(diagrams, lim.limit, thermo.quench_temperature_K, ref,
                                  nsites, degeneracies, fixed=per_cell)
        _assert_matches(lim.quenched, ef2, conc2)
        # frozen: the totals are the equilibrium ones, the charge states are not
        for name, total in lim.equilibrium.total_concentrations_cm3.items():
            assert lim.quenched.total_concentrations_cm3[name] == pytest.approx(total, rel=1e-9)


def test_formation_fermi_cli_on_real_gan_matches_py_sc_fermi(shared_data, reference_dos,
                                                              tmp_path):
    from perovdefect.thermo.calculations import FormationResult
    bulk, defects = _runs(shared_data)
    mu = tmp_path / "mu.json"
    mu.write_text(json.dumps(LIMITS))
    out = tmp_path / "formation.json"
    args = ["formation", "--bulk", str(bulk), *[a for d in defects for a in ("--defect", str(d))],
            "--correction", "none", "--name", "V_N", "--chempots", str(mu), "--fermi",
            "--temperature", str(T_GROWTH), "--quench-temperature", str(T_QUENCH)]
    r = run_cli(*args, "--json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    written = json.loads(out.read_text())
    assert printed == written  # --json prints the document -o writes
    result = FormationResult.from_json(out)
    th = result.thermodynamics
    ref = reference_dos
    # the host DOS: built from the bulk run, holding its electrons, and said how
    assert th.host_dos.electrons_below_midgap == pytest.approx(ref[3], abs=1e-3)  # NELECT 288
    assert th.host_dos.smearing_width_eV == SMEARING_eV and th.host_dos.n_kpoints == 1
    assert "0.25 0.25 0.25" in th.host_dos.kpoints and th.host_dos.nspins == 2
    assert th.host_dos.cell_volume_A3 == pytest.approx(ref[4], rel=1e-9)
    assert th.sites_per_cell == {"V_N": ref[5]} == {"V_N": 16}
    assert [lim.limit for lim in th.limits] == list(LIMITS)
    _check_against_sc_fermi(th, [result.diagram], ref, {"V_N": ref[5]})
    # physics: growth at 1300 K in the off-region limit is donor (V_N+) dominated (E_F above
    # mid-gap, n > p); at the N-rich limit the carriers are intrinsic (n = p)
    off = th.at_limit("off-region low mu_N").equilibrium
    assert off.fermi_level_above_vbm_eV > th.host_dos.band_gap_eV / 2 and \
        off.electrons_cm3 > 3 * off.holes_cm3
    rich = th.at_limit("N-rich").equilibrium
    assert rich.electrons_cm3 == pytest.approx(rich.holes_cm3, rel=0.01)
    # the text output: Fermi level per limit and the concentration table
    text = run_cli(*args)
    assert text.returncode == 0, text.stderr
    assert "0.005 eV of the eigenvalues at 1 explicit k-point" in text.stdout
    for lim in th.limits:
        assert f"{lim.quenched.fermi_level_above_vbm_eV:.4f}" in text.stdout
    assert f"{th.limits[0].equilibrium.concentrations[2].concentration_cm3:.3e}" in text.stdout


def test_solve_thermodynamics_two_defects_with_degeneracies(gan, reference_dos):
    """The campaign's entry point on V_N plus a second (synthetic) acceptor on the same host,
    with degeneracies, against py-sc-fermi; and charge neutrality checked by hand."""
    from perovdefect.thermo import formation_energy_diagram
    from perovdefect.thermo.concentrations import solve_thermodynamics
    host, result = gan
    dg = result.diagram
    # an acceptor on the 16 Ga sites: E_f(0) = 2.2 eV, eps(0/-1) = VBM + 1.5 eV
    acc = formation_energy_diagram(
        "X_Ga (synthetic acceptor)", {0: 2.2, -1: 3.7 + dg.vbm_eV}, host_energy_eV=0.0,
        atoms_added={"Ga": -1}, vbm_eV=dg.vbm_eV, band_gap_eV=dg.band_gap_eV,
        limits={k: {"Ga": 0.0} for k in LIMITS})
    assert acc.transition_levels[0].level_above_vbm_eV == pytest.approx(1.5)
    degs = {"V_N": {0: 2}, acc.defect: {-1: 4}}
    th = solve_thermodynamics([result, acc], host, 1100.0, 350.0, degeneracies=degs)
    assert th.sites_per_cell == {"V_N": 16, acc.defect: 16}
    nsites = {"V_N": 16, acc.defect: 16}
    _check_against_sc_fermi(th, [dg, acc], reference_dos, nsites, degs)
    for lim in th.limits:
        for sol in (lim.equilibrium, lim.quenched):
            charge = sol.holes_cm3 - sol.electrons_cm3 + sum(
                c.charge * c.concentration_cm3 for c in sol.concentrations)
            scale = max([sol.holes_cm3, sol.electrons_cm3] +
                        [c.concentration_cm3 for c in sol.concentrations])
            assert abs(charge) < 1e-6 * scale
    assert "degeneracies as given" in " ".join(th.assumptions)


def test_bad_inputs_are_clear_errors(gan, shared_data, tmp_path):
    from perovdefect.thermo import formation_energy_diagram
    from perovdefect.thermo.concentrations import solve_thermodynamics
    host, result = gan
    dg = result.diagram
    with pytest.raises(AnalysisError, match="quench temperature must be a positive"):
        solve_thermodynamics(result, host, 1000.0, float("nan"))
    inter = formation_energy_diagram("N_i", {0: 3.0}, 0.0, {"N": 1}, dg.vbm_eV, dg.band_gap_eV,
                                     {k: {"N": 0.0} for k in LIMITS})
    with pytest.raises(AnalysisError, match="N_i: the number of its sites.*sites_per_cell"):
        solve_thermodynamics([result, inter], host, 1000.0)
    th = solve_thermodynamics([result, inter], host, 1000.0, sites_per_cell={"N_i": 12})
    assert th.sites_from["N_i"] == "given" and th.limits[0].quenched is None
    other = formation_energy_diagram("V_N", {0: 3.0}, 0.0, {"N": -1}, dg.vbm_eV + 0.2,
                                     dg.band_gap_eV, {k: {"N": 0.0} for k in LIMITS})
    with pytest.raises(AnalysisError, match="computed against a host"):
        solve_thermodynamics(other, host, 1000.0)
    bulk, defects = _runs(shared_data)
    base = ["formation", "--bulk", str(bulk), "--defect", str(defects[1]), "--correction",
            "none"]
    mu = tmp_path / "mu.json"
    mu.write_text(json.dumps(LIMITS))
    for extra, message in (
            (["--temperature", "300"], "go with --fermi"),
            (["--fermi", "--chempots", str(mu)], "--fermi needs --temperature"),
            (["--fermi", "--temperature", "300"], "--fermi needs --chempots"),
            (["--fermi", "--chempots", str(mu), "--temperature", "nan"], "not a finite"),
            (["--fermi", "--chempots", str(mu), "--temperature", "-5"], "--temperature"),
            (["--fermi", "--chempots", str(mu), "--temperature", "300", "--dos-smearing", "0"],
             "--dos-smearing")):
        r = run_cli(*base, *extra)
        assert r.returncode != 0 and message in r.stderr, (extra, r.stderr)
        assert "Traceback" not in r.stderr


def test_periodic_host_needed(gan):
    """A cluster host has no band DOS or volume for concentrations: a clear error."""
    from perovdefect.thermo.host_dos import host_density_of_states
    host, _ = gan
    cluster = host.model_copy(update={"is_cluster": True})
    with pytest.raises(AnalysisError, match="periodic host"):
        host_density_of_states(cluster)
    with pytest.raises(AnalysisError, match="smearing"):
        host_density_of_states(host, 0.0)

