"""Campaign `thermodynamics:` and `luminescence:` blocks: validation, the Fireworks they add, and a
real competing-phase campaign (GPAW PBE LCAO, rlaunch on the embedded LaunchPad) whose limits are
checked against pymatgen's phase diagram and the experimental formation enthalpy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from perovdefect.calcs.gpaw import gpaw_available
from perovdefect.errors import CampaignError
from perovdefect.workflows.spec import load_campaign
from tests.conftest import run_cli

needs_gpaw = pytest.mark.skipif(not gpaw_available(), reason="GPAW not installed")

CLUSTER = {"compound": "Cs4PbBr6", "model": "cluster", "cluster": "pbbr6-octahedron",
           "padding_A": 4.0, "charges": [0]}
BASE = {"name": "thermo", "code": "gpaw", "tier": "pbe", "relax": False, "models": [CLUSTER],
        "settings": {"mode": "lcao", "grid_spacing_A": 0.25}}


def write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


@pytest.mark.parametrize("block, message", [
    ({"thermodynamics": {"phases": ["Cs", "Unobtainium"]}}, "unknown phases"),
    ({"thermodynamics": {"phases": ["Cs", "Pb", "Br2", "CsPb2Br5", "Cs4PbBr6"]}},
     "no structure is shipped for \\['CsPb2Br5'\\]"),
    ({"thermodynamics": {"hosts": ["CsBr"], "phases": ["Cs", "CsBr"]}},
     "elemental reference phase"),
    ({"thermodynamics": {"hosts": ["CsPbBr3"], "phases": ["Cs", "Br2", "CsBr"]}},
     "not among the phases"),
    ({"thermodynamics": {"step": "hse06"}}, "not a static step"),
    ({"thermodynamics": {"relax": ["Cs", "Xx"]}}, "not among the phases"),
    ({"thermodynamics": {"kpoint_density_inv_A": -1}}, "greater than 0"),
    ({"thermodynamics": {"settings": {"no_such_setting": 1}}}, "no_such_setting"),
    ({"luminescence": {"models": ["nope"]}}, "not model labels"),
    ({"luminescence": {"excitation": "sideways"}}, "excitation"),
    ({"luminescence": {}, "models": [{**CLUSTER, "charges": [-1]}]}, "no model with charges? \\[?0"),
])
def test_blocks_refuse_bad_input(tmp_path, block, message):
    with pytest.raises(CampaignError, match=message):
        load_campaign(write(tmp_path, **block))


def test_charged_supercells_need_a_dielectric_constant(tmp_path):
    """Cs4PbBr6 has no shipped dielectric constant: FNV on its charged supercells needs one."""
    model = {"compound": "Cs4PbBr6", "model": "supercell", "charges": [0, 1]}
    with pytest.raises(CampaignError, match="Cs4PbBr6"):
        load_campaign(write(tmp_path, models=[model], thermodynamics={}))
    spec = load_campaign(write(tmp_path, models=[model],
                               thermodynamics={"dielectric": 5.0}))
    assert spec.thermodynamics.dielectric == 5.0
    spec = load_campaign(write(tmp_path, models=[model],
                               thermodynamics={"correction": "none"}))
    assert spec.thermodynamics.correction == "none"


def test_blocks_add_their_fireworks(tmp_path):
    """The competing phases become one more workflow (each phase's ladder up to the
    thermodynamics step, k-points for crystals, Gamma for the molecule, then the limits); the
    luminescence block adds one Firework to its model's workflow."""
    from perovdefect.workflows.campaign import build_workflows, workflow_units
    spec = load_campaign(write(
        tmp_path, thermodynamics={"hosts": ["CsBr"], "phases": ["Cs", "Br2", "CsBr"],
                                  "relax": True, "kpoint_density_inv_A": 2.5},
        luminescence={"temperature_K": 10}))
    units = workflow_units(spec)
    assert [u for u, _ in units] == ["Cs4PbBr6_pbbr6-octahedron", "thermodynamics"]
    wfs = build_workflows(spec, tmp_path / "runs")
    names = sorted(fw.name for fw in wfs[1].fws)
    assert names == sorted([f"thermo/thermodynamics/{p}/{s}" for p in ("Cs", "Br2", "CsBr")
                            for s in ("relax", "pbe")] + ["thermo/thermodynamics/limits"])
    by_name = {fw.name: fw for fw in wfs[1].fws}
    cs = by_name["thermo/thermodynamics/Cs/pbe"].tasks[0]["protocol"]
    br2 = by_name["thermo/thermodynamics/Br2/pbe"].tasks[0]["protocol"]
    assert cs["kpoint_density_inv_A"] == 2.5 and br2["kpoint_density_inv_A"] is None
    limits = by_name["thermo/thermodynamics/limits"]
    assert len(wfs[1].links.parent_links[limits.fw_id]) == 3  # waits for every phase
    lum = [fw for fw in wfs[0].fws if fw.name.endswith("/luminescence")]
    assert len(lum) == 1 and lum[0].tasks[0]["temperature_K"] == 10
    assert lum[0].tasks[0]["excitation"] == "down:homo->lumo"
    # relax only the phases listed (the hosts' cells may be PBE-relaxed already)
    some = load_campaign(write(tmp_path, thermodynamics={
        "hosts": ["CsBr"], "phases": ["Cs", "Br2", "CsBr"], "relax": ["Cs"]}))
    names = sorted(fw.name for fw in build_workflows(some, tmp_path / "r2")[1].fws)
    assert names == ["thermo/thermodynamics/Br2/pbe", "thermo/thermodynamics/Cs/pbe",
                     "thermo/thermodynamics/Cs/relax", "thermo/thermodynamics/CsBr/pbe",
                     "thermo/thermodynamics/limits"]
    # what collect applies (correction, dielectric) does not resubmit the phases; what they
    # run does; the measured PL a luminescence Firework compares with is part of its model
    from perovdefect.workflows.builder import model_key, thermo_key
    t = {"hosts": ["CsBr"], "phases": ["Cs", "Br2", "CsBr"]}
    k0 = thermo_key(load_campaign(write(tmp_path, thermodynamics=t)))
    assert thermo_key(load_campaign(write(tmp_path, thermodynamics={
        **t, "correction": "none", "dielectric": 7.0}))) == k0
    assert thermo_key(load_campaign(write(tmp_path, thermodynamics={
        **t, "kpoint_density_inv_A": 5.0}))) != k0
    a = load_campaign(write(tmp_path, luminescence={}, pl_nm=517))
    b = load_campaign(write(tmp_path, luminescence={}, pl_nm=520))
    assert model_key(a, a.models[0]) != model_key(b, b.models[0])
    # changing only the luminescence block gives the model a new identity (it is resubmitted)
    other = load_campaign(write(tmp_path, thermodynamics={"hosts": ["CsBr"],
                                                          "phases": ["Cs", "Br2", "CsBr"]}))
    assert workflow_units(other)[0][1] != units[0][1]


@needs_gpaw
@pytest.mark.slow
def test_competing_phase_campaign_gives_limits_like_pymatgen(tmp_path):
    """Cs (bcc), Pb (fcc), the Br2 molecule, CsBr and Cs4PbBr6 at PBE (GPAW LCAO) through rlaunch
    beside a cluster model: the limits the campaign writes equal pymatgen's phase diagram built
    here from the raw energies, the formation enthalpy of CsBr is close to experiment, and
    `collect` gives the model's formation energies at those limits (checked by hand here) that
    `report --campaign` draws. Beside it a periodic CsPbBr3 model with two defect types (V_Br
    and V_Cs, the unit cell: a bookkeeping check, not converged physics): the typed table holds
    one formation entry per defect type, equal to `perovdefect formation` on the same runs, and
    the concentrations at a synthesis temperature (the cluster model is refused by name)."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    from perovdefect.thermo.data import experimental_formation_enthalpy
    periodic = {"compound": "CsPbBr3-cubic", "model": "supercell", "defects": ["V_Br", "V_Cs"],
                "charges": [0]}
    camp = write(tmp_path, models=[CLUSTER, periodic],
                 protocol={"kpoint_density_inv_A": 1.5}, thermodynamics={
        "hosts": ["CsBr", "Cs4PbBr6", "CsPbBr3"],
        "phases": ["Cs", "Pb", "Br2", "CsBr", "CsPbBr3", "Cs4PbBr6"],
        "relax": False, "kpoint_density_inv_A": 1.5, "settings": {"smearing_eV": 0.05},
        "temperature_K": 1000})
    proj = tmp_path / "proj"
    for args in (("submit", str(camp)), ("run",)):
        r = run_cli("campaign", *args, "--project", str(proj))
        assert r.returncode == 0, r.stderr
    r = run_cli("campaign", "collect", "--project", str(proj), "-o", str(tmp_path / "res.json"))
    assert r.returncode == 0, r.stderr
    table = json.loads((tmp_path / "res.json").read_text())
    phases = {row["label"]: row for row in table["steps"] if row["role"] == "phase"}
    assert sorted(phases) == ["Br2", "Cs", "Cs4PbBr6", "CsBr", "CsPbBr3", "Pb"]
    assert all(p["converged"] for p in phases.values())
    thermo = table["thermodynamics"]["thermo"]
    # independent: pymatgen's phase diagram from the raw total energies of the step results
    entries = {name: PDEntry(Composition(_formula(Path(p["run_dir"]))), p["total_energy_eV"])
               for name, p in phases.items()}
    pd = PhaseDiagram(list(entries.values()))

    def dh(name: str) -> float:
        e = entries[name]
        return pd.get_form_energy(e) / e.composition.get_reduced_composition_and_factor()[1]
    for host in ("CsBr", "Cs4PbBr6"):
        assert thermo["stability"][host]["formation_energy_eV_per_formula_unit"] == \
            pytest.approx(dh(host), abs=1e-6)
    exp, _ = experimental_formation_enthalpy("CsBr")
    assert dh("CsBr") < 0 and abs(dh("CsBr") - exp) < 1.0, (dh("CsBr"), exp)  # vs -4.2 eV
    refs = thermo["regions"]["CsBr"]["elemental_reference_eV_per_atom"]
    assert refs["Br"] == pytest.approx(phases["Br2"]["total_energy_eV"] / 2, abs=1e-6)
    for host in ("CsBr", "Cs4PbBr6"):
        comp = Composition(host)
        lims = {lim["label"]: lim for lim in thermo["regions"][host]["limits"]}
        assert lims["Br-rich"]["delta_mu_eV"]["Br"] == pytest.approx(0, abs=1e-6)
        assert lims["Br-poor"]["delta_mu_eV"]["Br"] < -1.0
        for lim in lims.values():  # every vertex lies on the host's own plane
            total = sum(comp[el] * lim["delta_mu_eV"].get(el, 0.0) for el in lim["delta_mu_eV"])
            assert total == pytest.approx(dh(host), abs=1e-5), (host, lim["label"])
    assert "Cs" in thermo["regions"]["CsBr"]["limits"][-1]["competing_phases"]
    check_two_defect_types(table, tmp_path)
    # formation energies of the cluster model at the Cs4PbBr6 limits: E_def - E_host + mu_Br
    (form,) = [f for f in table["formation"] if f["model"] == "Cs4PbBr6_pbbr6-octahedron"]
    assert form["model"] == "Cs4PbBr6_pbbr6-octahedron" and "result" in form, form
    res = form["result"]
    assert res["correction"].startswith("none (isolated cluster)")
    steps = {(row["model"], row["label"]): row for row in table["steps"] if row["step"] == "pbe"}
    e_host = steps["Cs4PbBr6_pbbr6-octahedron", "host"]["total_energy_eV"]
    e_def = steps["Cs4PbBr6_pbbr6-octahedron", "V_Br_q0"]["total_energy_eV"]
    mus = {lim["label"]: lim["mu_eV"]["Br"] for lim in thermo["regions"]["Cs4PbBr6"]["limits"]}
    for at_limit in res["diagram"]["formation_energies"]:
        (q0,) = [c for c in at_limit["formation_energies"] if c["charge"] == 0]
        assert q0["at_vbm_eV"] == pytest.approx(e_def - e_host + mus[at_limit["limit"]],
                                                abs=1e-6)
    # the same through `perovdefect formation`, with this campaign's limits and the shipped ones
    from perovdefect.thermo.calculations import shipped_limits_path
    from perovdefect.thermo.documents import CompetingPhases
    run_dirs = {row["label"]: row["run_dir"] for row in table["steps"]
                if row["model"] == "Cs4PbBr6_pbbr6-octahedron" and row["step"] == "pbe"}
    shipped = CompetingPhases.from_json(shipped_limits_path()).limits("Cs4PbBr6")
    limits_json = next((tmp_path / "proj" / "runs").rglob("thermodynamics.json"))
    for chempots, mu_br in ((str(limits_json), mus), ("shipped", {
            k: v["Br"] for k, v in shipped.items()})):
        r = run_cli("formation", "--bulk", run_dirs["host"], "--defect", run_dirs["V_Br_q0"],
                    "--chempots", chempots, "--compound", "Cs4PbBr6", "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        for at_limit in out["diagram"]["formation_energies"]:
            (q0,) = at_limit["formation_energies"]
            assert q0["at_vbm_eV"] == pytest.approx(e_def - e_host + mu_br[at_limit["limit"]],
                                                    abs=1e-6)
    r = run_cli("formation", "--bulk", run_dirs["host"], "--defect", run_dirs["V_Br_q0"],
                "--chempots", "shipped", "--json")  # the cluster's own formula has no limits
    assert r.returncode != 0 and "PbBr6" in r.stderr and "--compound" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("report", "--campaign", str(tmp_path / "res.json"), "-o", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["formation"] and (tmp_path / "rep" / "figures").is_dir()
    assert any("formation" in f.name for f in (tmp_path / "rep" / "figures").iterdir())
    # the thermodynamics.json is a --chempots file for hosts of the same code, theory and basis
    from perovdefect.calcs.document import ElectronicStructure
    from perovdefect.errors import AnalysisError
    from perovdefect.thermo.calculations import read_chemical_potentials
    limits_file = next((tmp_path / "proj" / "runs").rglob("thermodynamics.json"))
    host = ElectronicStructure.from_json(Path(phases["CsBr"]["run_dir"]) / "result.json")
    mu = read_chemical_potentials(limits_file, host)
    assert mu["Br-rich"]["Br"] == pytest.approx(refs["Br"], abs=1e-6)
    other = host.model_copy(update={"settings": {**host.settings, "step": {
        **host.settings["step"], "basis": "szp(dzp)"}}})
    with pytest.raises(AnalysisError, match="basis"):
        read_chemical_potentials(limits_file, other)
    pbe0 = host.model_copy(update={"functional": "PBE0", "exact_exchange_fraction": 0.25})
    with pytest.raises(AnalysisError, match="level of theory"):
        read_chemical_potentials(limits_file, pbe0)


def check_two_defect_types(table: dict, tmp_path: Path) -> None:
    """The periodic CsPbBr3 model: a formation entry per defect type, each equal to `perovdefect
    formation` on the same runs at the campaign's CsPbBr3 limits; the Fermi level and the
    concentrations of both defects at 1000 K; the cluster model refused by name."""
    from perovdefect.workflows.table import CampaignTable
    typed = CampaignTable.from_json(tmp_path / "res.json")
    model = "CsPbBr3-cubic_supercell-unit"
    entries = {f.defect: f for f in typed.formation if f.model == model}
    assert sorted(entries) == ["V_Br", "V_Cs"], typed.formation
    rows = {r.label: r for r in typed.steps if r.model == model and r.step == "pbe"}
    assert {r.defect for r in rows.values()} == {None, "V_Br", "V_Cs"}
    assert rows["V_Br_q0"].sites_per_cell == 3 and rows["V_Cs_q0"].sites_per_cell == 1
    limits_json = next((tmp_path / "proj" / "runs").rglob("thermodynamics.json"))
    for defect, entry in entries.items():
        assert entry.result is not None, entry.problem
        assert entry.result.diagram.defect == defect
        r = run_cli("formation", "--bulk", rows["host"].run_dir, "--defect",
                    rows[f"{defect}_q0"].run_dir, "--chempots", str(limits_json),
                    "--compound", "CsPbBr3", "--name", defect, "--json")
        assert r.returncode == 0, r.stderr
        by_limit = {lim["limit"]: lim["formation_energies"][0]["at_vbm_eV"]
                    for lim in json.loads(r.stdout)["diagram"]["formation_energies"]}
        ours = {lim.limit: lim.formation_energies[0].at_vbm_eV
                for lim in entry.result.diagram.formation_energies}
        assert ours == pytest.approx(by_limit, abs=1e-9) and len(ours) >= 2
    (conc,) = [c for c in typed.concentrations if c.model == model]
    assert conc.result is not None, conc.problem
    assert sorted(conc.result.defects) == ["V_Br", "V_Cs"]
    assert conc.result.sites_per_cell == {"V_Br": 3.0, "V_Cs": 1.0}
    (cluster,) = [c for c in typed.concentrations if c.model != model]
    assert cluster.result is None and "cluster" in cluster.problem


def _formula(run_dir: Path) -> str:
    doc = json.loads((run_dir / "result.json").read_text())
    return "".join(doc["structure"]["symbols"])


def test_shipped_limits_table_is_the_phase_diagram_of_its_energies():
    """The shipped table (scripts/ship_chempot_table.py, GPAW PBE LCAO): its stabilities and
    limits are what pymatgen's phase diagram gives for the phase energies it lists, the binary
    formation enthalpies are near experiment, and it refuses a host of another basis."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    from perovdefect.calcs.document import ElectronicStructure
    from perovdefect.errors import AnalysisError
    from perovdefect.thermo.calculations import read_chemical_potentials, shipped_limits_path
    from perovdefect.thermo.data import experimental_formation_enthalpy
    from perovdefect.thermo.documents import CompetingPhases
    table = CompetingPhases.from_json(shipped_limits_path())
    assert (table.code, table.basis) == ("gpaw", "dzp") and table.level_of_theory.startswith("PBE")
    assert any("ship_chempot_table.py" in n for n in table.notes)
    entries = [PDEntry(Composition(p.formula), p.energy_per_formula_unit_eV)
               for p in table.phases]
    pd = PhaseDiagram(entries)

    def dh(formula: str) -> float:
        e = min((e for e in entries if e.composition.reduced_formula ==
                 Composition(formula).reduced_formula), key=lambda e: e.energy_per_atom)
        return pd.get_form_energy(e) / e.composition.get_reduced_composition_and_factor()[1]
    for formula in ("CsBr", "PbBr2"):
        exp, _ = experimental_formation_enthalpy(formula)
        assert abs(dh(formula) - exp) < 0.6, (formula, dh(formula), exp)
    assert set(table.stability) == {"Cs4PbBr6", "CsPbBr3"}
    for host, stab in table.stability.items():
        entry = next(e for e in entries if e.composition.reduced_formula == host)
        assert stab.energy_above_hull_eV_per_atom == pytest.approx(
            max(pd.get_e_above_hull(entry, allow_negative=True), 0.0), abs=1e-6)
        if not stab.stable:
            assert host in table.problems and host not in table.regions
            continue
        comp = Composition(host)
        limits = table.regions[host].limits
        assert limits[0].label == "Br-rich" and limits[-1].label == "Br-poor"
        for lim in limits:
            assert sum(comp[el] * x for el, x in lim.delta_mu_eV.items()) == pytest.approx(
                dh(host), abs=1e-5)
            assert all(x <= 1e-9 for x in lim.delta_mu_eV.values())
    host = next(h for h in table.regions)
    symbols = [str(el) for el, n in Composition(host).items() for _ in range(int(n))]
    fake = ElectronicStructure.model_validate({
        "code": "gpaw", "functional": "PBE", "exact_exchange_fraction": 0.0,
        "screening_inv_A": 0.0, "soc": False, "converged": True, "total_energy_eV": -1.0,
        "eigenvalues_eV": [[[-1.0, 1.0]]], "occupations": [[[1.0, 0.0]]],
        "kpoint_weights": [1.0], "nspins": 1, "is_cluster": False, "fermi_level_eV": None,
        "n_electrons": None, "charge": 0.0, "source": "host calculation",
        "structure": {"symbols": symbols,
                      "positions_A": [[0, 0, i] for i in range(len(symbols))],
                      "cell_A": [[5, 0, 0], [0, 5, 0], [0, 0, 5]], "pbc": [True] * 3},
        "settings": {"step": {"basis": "dzp", "cutoff_eV": None}}})
    assert read_chemical_potentials("shipped", fake) == table.limits(host)
    with pytest.raises(AnalysisError, match="not a chemical formula"):
        read_chemical_potentials("shipped", fake, compound="cs4pbbr6")
    pw = fake.model_copy(update={"settings": {"step": {"basis": None, "cutoff_eV": 300.0}}})
    with pytest.raises(AnalysisError, match="basis"):
        read_chemical_potentials("shipped", pw)
