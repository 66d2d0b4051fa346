"""A host above the convex hull of its competing phases: refused by default; with an allowed
shift, lowered onto the hull as doped does (CompetingPhasesAnalyzer: e_above_hull + 0.1
meV/atom), its limits cross-checked against doped's on the same energies, and the shift stated
beside every formation energy (`formation --max-host-above-hull`, the campaign's
`thermodynamics.max_host_above_hull_meV_per_atom`, applied by `campaign collect`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from tests.conftest import run_cli

#: Energies per formula unit (eV) of the example campaign workflows/
#: cs4pbbr6_native_defects_gpaw.yaml as it ran on 2026-12-05 (GPAW PBE LCAO sz(dzp), h 0.3 A):
#: at this single-zeta basis Cs4PbBr6 lies 35.4 meV/atom above CsPbBr3 + CsBr (the shipped dzp
#: table has it on the hull). Test inputs, as measured.
PHASES = {"Cs": -0.3587389539161523, "Pb": -1.4417651374926426, "Br": -0.6412367982715007,
          "CsBr": -5.50539527817749, "PbBr2": -7.36688394269844,
          "CsPbBr3": -13.365540267894243, "Cs4PbBr6": -29.492491399453677}
#: the 22-atom host cell and its relaxed V_Br^0 (total energies, eV; same campaign)
E_HOST, E_VBR = -59.28882694912514, -55.017945901077375
LEVEL = {"code": "gpaw", "functional": "PBE", "exact_exchange_fraction": 0.0,
         "screening_inv_A": 0.0, "soc": False}


def test_refused_by_default_and_beyond_the_allowed_shift():
    from perovdefect.errors import UnstableHostError
    from perovdefect.thermo.chempots import host_stability, stability_region
    stab = host_stability("Cs4PbBr6", PHASES)
    assert not stab.stable and stab.energy_above_hull_eV_per_atom == pytest.approx(0.0354,
                                                                                   abs=1e-4)
    with pytest.raises(UnstableHostError, match="35.4 meV/atom above.*no shift onto the hull"):
        stability_region("Cs4PbBr6", PHASES)
    with pytest.raises(UnstableHostError, match="more than the 30 meV/atom allowed"):
        stability_region("Cs4PbBr6", PHASES, max_host_above_hull_eV_per_atom=0.030)


def test_shifted_limits_are_those_doped_finds():
    """Every limit of the shifted region is a vertex of doped's renormalised phase diagram,
    and doped's one limit for an unstable host (its first vertex) is one of ours (to the
    sliver's width); the host's unshifted stability and the shift are kept in the document."""
    pytest.importorskip("doped")
    from doped.chemical_potentials import CompetingPhasesAnalyzer
    from pymatgen.core import Composition
    from pymatgen.entries.computed_entries import ComputedEntry

    from perovdefect.thermo.chempots import HULL_MARGIN_EV_PER_ATOM, stability_region
    region = stability_region("Cs4PbBr6", PHASES, max_host_above_hull_eV_per_atom=0.05)
    e_hull = region.stability.energy_above_hull_eV_per_atom
    assert region.host_shift_eV_per_atom == pytest.approx(e_hull + HULL_MARGIN_EV_PER_ATOM)
    assert not region.stability.stable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cpa = CompetingPhasesAnalyzer("Cs4PbBr6", [ComputedEntry(Composition(f), e)
                                                   for f, e in PHASES.items()],
                                      check_compatibility=False)
        chempots = cpa.chempots
        pd = cpa.intrinsic_phase_diagram
    assert any("not stable with respect to competing phases" in str(w.message) for w in caught)
    refs = {str(el): e.energy_per_atom for el, e in pd.el_refs.items()}
    theirs = [{str(el): mu - refs[str(el)] for el, mu in v.items()}
              for v in pd.get_all_chempots(Composition("Cs4PbBr6")).values()]
    ours = [lim.delta_mu_eV for lim in region.limits]
    # the sliver's twin vertices (~1 meV apart) are one limit, in equilibrium with the
    # decomposition products CsPbBr3 + CsBr and the rich / poor element's phase
    assert [(lim.label, lim.competing_phases) for lim in region.limits] == [
        ("Br-rich", ["Br", "CsBr", "CsPbBr3"]), ("Br-poor", ["CsBr", "CsPbBr3", "Pb"])]
    for mu in ours:
        assert any(all(abs(mu[el] - t[el]) < 1e-6 for el in mu) for t in theirs), mu
    (doped_limit,) = chempots["limits_wrt_el_refs"].values()
    assert any(all(abs(mu[el] - doped_limit[el]) < 2e-3 for el in mu) for mu in ours)
    note = region.shift_note()
    assert "35.4 meV/atom above" in note and "lowered by 35.5 meV/atom" in note


def _table():
    from perovdefect.thermo.chempots import host_stability
    from perovdefect.thermo.documents import CompetingPhases, PhaseEnergy
    return CompetingPhases(
        code="gpaw", level_of_theory="PBE (a=0, w=0/A)", basis="sz(dzp)",
        phases=[PhaseEnergy(formula=f, energy_per_formula_unit_eV=e) for f, e in PHASES.items()],
        stability={"Cs4PbBr6": host_stability("Cs4PbBr6", PHASES)},
        problems={"Cs4PbBr6": "35.4 meV/atom above the hull"})


def _doc(path: Path, symbols: list[str], energy: float) -> str:
    """A minimal GPAW-like result document of one periodic cell at the table's theory."""
    from perovdefect.calcs.document import ElectronicStructure
    doc = ElectronicStructure.model_validate({
        **LEVEL, "converged": True, "total_energy_eV": energy,
        "eigenvalues_eV": [[[-1.0, 1.0]]], "occupations": [[[1.0, 0.0]]],
        "kpoint_weights": [1.0], "nspins": 1, "is_cluster": False, "charge": 0.0,
        "fermi_level_eV": None, "n_electrons": None,
        "structure": {"symbols": symbols, "positions_A": [[0, 0, i] for i in range(len(symbols))],
                      "cell_A": [[9.9, 0, 0], [0, 9.9, 0], [0, 0, 9.9]], "pbc": [True] * 3},
        "settings": {"step": {"basis": "sz(dzp)", "cutoff_eV": None}}})
    doc.to_json(path)
    return str(path)


def test_formation_states_the_shift(tmp_path):
    """`formation --chempots thermodynamics.json`: refused with the option named, then with
    --max-host-above-hull the formation energy at each shifted limit, and the shift in the
    result's chemical_potentials text and warnings."""
    from perovdefect.thermo.calculations import shift_unstable_hosts
    table = _table()
    assert shift_unstable_hosts(table, 0.0) is table
    shifted = shift_unstable_hosts(table, 0.05)
    assert not shifted.problems and "lowered by 35.5 meV/atom" in shifted.notes[-1]
    limits_file = tmp_path / "thermodynamics.json"
    table.to_json(limits_file)
    host_symbols = ["Cs"] * 8 + ["Pb"] * 2 + ["Br"] * 12
    host = _doc(tmp_path / "host.json", host_symbols, E_HOST)
    vac = _doc(tmp_path / "vbr.json", host_symbols[:-1], E_VBR)
    args = ["formation", "--bulk", host, "--defect", vac, "--chempots", str(limits_file),
            "--correction", "none", "--json"]
    r = run_cli(*args)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "35.4 meV/atom above the hull" in r.stderr and "--max-host-above-hull" in r.stderr
    r = run_cli(*args, "--max-host-above-hull", "50")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    mus = shifted.limits("Cs4PbBr6")
    for at_limit in out["diagram"]["formation_energies"]:
        (q0,) = at_limit["formation_energies"]
        assert q0["at_vbm_eV"] == pytest.approx(E_VBR - E_HOST + mus[at_limit["limit"]]["Br"],
                                                abs=1e-6)
    assert "lowered by 35.5 meV/atom" in out["chemical_potentials"]
    assert any("just-stable Cs4PbBr6" in w for w in out["warnings"])


def test_the_shift_is_applied_by_collect_not_run():
    """Changing the allowed shift does not change the competing-phase workflow's identity."""
    from perovdefect.workflows.builder import thermo_key
    from perovdefect.workflows.spec import load_campaign
    spec = load_campaign(Path(__file__).parents[1] / "workflows" /
                         "cs4pbbr6_native_defects_gpaw.yaml")
    other = spec.model_copy(update={"thermodynamics": spec.thermodynamics.model_copy(
        update={"max_host_above_hull_meV_per_atom": 10.0})})
    assert thermo_key(other) == thermo_key(spec)
