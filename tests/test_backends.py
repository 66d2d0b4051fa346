"""Issue 10: one Backend contract, a registry of codes (entry points), typed result documents.

The fake code below is a whole backend defined in this test module: registered through a real
entry point (a .dist-info folder on PYTHONPATH, exactly what `pip install` of a plug-in writes),
it runs a campaign through `campaign submit/run/collect` and a report with no change anywhere
else in perovdefect."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from perovdefect.calcs import Backend, Protocol, available_backends, get_backend
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.errors import ParseError, ProtocolError
from perovdefect.structures import build_cluster
from perovdefect.structures.record import StructureRecord
from tests.conftest import REPO, run_cli


class FakeBackend(Backend):
    """A code that "computes" a spectrum from the structure: a valence band of Br levels, a
    conduction band, and for a structure with fewer Br than its host one occupied level 2.4 eV
    above the VBM (the seed's V_Br state). Energies in eV."""

    name = "fakecode"
    capabilities = frozenset({"hybrid", "soc", "relax", "run_here"})
    calc_defaults = {"gap_eV": 3.9, "fail_step": ""}

    def write_inputs(self, record: StructureRecord, protocol: Protocol, directory: Path,
                     previous: Path | None = None) -> None:
        (directory / "input.json").write_text(json.dumps(
            {"symbols": record.atoms.get_chemical_symbols(), "protocol": protocol.as_dict(),
             "vacancy": bool(record.metadata.get("vacancy"))}))

    def run(self, record: StructureRecord, protocol: Protocol, directory: Path,
            resources: dict[str, Any], log: Callable | None = None) -> None:
        job = json.loads((directory / "input.json").read_text())
        if job["protocol"]["name"] == self.settings["fail_step"]:
            raise RuntimeError(f"fakecode crashed in step {job['protocol']['name']}")
        eps = [-8.0, -7.5, -7.0, 0.0, 0.0 + self.settings["gap_eV"], 5.0]
        occ = [1, 1, 1, 1, 0, 0]
        if job["vacancy"]:
            eps.insert(4, 2.4)
            occ.insert(4, 1)
        (directory / "fake.out").write_text(json.dumps({"eps": eps, "occ": occ,
                                                        "protocol": job["protocol"]}))

    def parse(self, directory: Path) -> ElectronicStructure:
        out = json.loads((directory / "fake.out").read_text())
        p = Protocol.from_dict(out["protocol"])
        return ElectronicStructure(
            code=self.name, functional=p.functional, exact_exchange_fraction=p.aexx,
            screening_inv_A=p.screening, soc=p.soc, converged=True, total_energy_eV=-1.0,
            eigenvalues_eV=[[out["eps"]]], occupations=[[out["occ"]]], kpoint_weights=[1.0],
            fermi_level_eV=None, n_electrons=None, charge=p.charge, nspins=1,
            vacuum_level_eV=10.0, is_cluster=True, source=str(directory / "fake.out"))


@pytest.fixture()
def fake_plugin(tmp_path) -> dict:
    """Register FakeBackend as a real entry point: a dist-info folder on PYTHONPATH."""
    site = tmp_path / "site"
    info = site / "perovdefect_fakecode-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: perovdefect-fakecode\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[perovdefect.backends]\nfakecode = tests.test_backends:FakeBackend\n")
    return {"PYTHONPATH": f"{site}:{REPO}"}


def test_registry_lists_the_three_codes_and_refuses_unknown_ones():
    assert {"gpaw", "qe", "vasp"} <= set(available_backends())
    with pytest.raises(ProtocolError, match="unknown code 'castep'.*registered backends"):
        get_backend("castep")


@pytest.mark.parametrize("code", ["gpaw", "qe", "vasp"])
def test_unknown_setting_is_named(code):
    with pytest.raises(ProtocolError, match=r"unknown setting\(s\) \['encutt'\]"):
        get_backend(code, encutt=500)


def test_each_backend_honours_or_refuses_the_hybrid_it_is_given():
    pbe0_half = Protocol(functional="PBE0", exact_exchange_fraction=0.5)
    gpaw = get_backend("gpaw", mode="pw")
    # GPAW's nsc hybrids are fixed (0.25): it refuses 0.5 instead of silently using 0.25
    with pytest.raises(ProtocolError, match="exact-exchange fraction 0.5"):
        gpaw.check(None, pbe0_half)
    assert gpaw.hybrid_name(Protocol(functional="HSE06")) == "HSE06"
    assert gpaw.hybrid_name(Protocol(functional="PBE0")) == "PBE0"
    with pytest.raises(ProtocolError, match="plane-wave mode"):
        get_backend("gpaw").check(None, Protocol(functional="HSE06"))
    # VASP and QE write the fraction they are given
    get_backend("vasp").check(None, pbe0_half)
    with pytest.raises(ProtocolError, match="may not set.*AEXX"):
        get_backend("vasp", incar={"AEXX": 0.3})
    with pytest.raises(ProtocolError, match="pseudopotentials"):
        get_backend("qe").check(None, Protocol())
    with pytest.raises(ProtocolError, match="mode must be lcao or pw"):
        get_backend("gpaw", mode="fd")


def test_kpoint_density_means_the_same_in_every_code(tmp_path):
    """The protocol's k-point density reaches VASP's KPOINTS, QE's K_POINTS and GPAW's job
    as the same mesh (QE ignored it before)."""
    from perovdefect.structures import build_crystal
    rec = build_crystal("CsPbBr3-cubic")
    p = Protocol(kpoint_density_inv_A=3.0)
    vasp_dir, qe_dir, gpaw_dir = tmp_path / "v", tmp_path / "q", tmp_path / "g"
    for d in (vasp_dir, qe_dir, gpaw_dir):
        d.mkdir()
    get_backend("vasp").write_inputs(rec, p, vasp_dir)
    get_backend("qe", pseudopotentials={"Cs": "Cs.UPF", "Pb": "Pb.UPF", "Br": "Br.UPF"}
                ).write_inputs(rec, p, qe_dir)
    get_backend("gpaw").write_inputs(rec, p, gpaw_dir)
    from ase.calculators.calculator import kptdensity2monkhorstpack
    expected = [int(k) for k in kptdensity2monkhorstpack(rec.atoms, 3.0, even=False)]
    assert expected[0] > 1
    kpoints = (vasp_dir / "KPOINTS").read_text().splitlines()
    assert [int(x) for x in kpoints[3].split()] == expected
    qe = (qe_dir / "pw.in").read_text()
    assert re.search(r"K_POINTS automatic\s*\n\s*" + r"\s+".join(map(str, expected)), qe)
    assert json.loads((gpaw_dir / "job.json").read_text())["kpoints"] == expected


def test_fake_code_runs_a_whole_campaign_and_report(tmp_path, fake_plugin):
    env = fake_plugin
    listing = subprocess.run([sys.executable, "-c", "from perovdefect.calcs import "
                              "available_backends as a; print(a())"], capture_output=True,
                             text=True, env={**__import__("os").environ, **env})
    assert "fakecode" in listing.stdout, listing.stderr
    camp = tmp_path / "fake.yaml"
    camp.write_text("name: fake-campaign\ncode: fakecode\ntier: hse06-soc\nrelax: false\n"
                    "pl_nm: 517\nsettings: {gap_eV: 3.9}\nmodels:\n"
                    "  - {compound: Cs4PbBr6, model: cluster, cluster: cs4pbbr6-molecule, "
                    "charges: [0]}\n")
    proj = tmp_path / "proj"
    r = run_cli("campaign", "submit", str(camp), "--project", str(proj), env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("campaign", "run", "--project", str(proj), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    results = tmp_path / "results.json"
    r = run_cli("campaign", "collect", "--project", str(proj), "-o", str(results), env=env)
    assert r.returncode == 0, r.stderr
    table = json.loads(results.read_text())
    assert {s["code"] for s in table["steps"]} == {"fakecode"}
    assert {s["step"] for s in table["steps"]} == {"pbe", "hse06", "hse06-soc"}
    (analysis,) = table["analyses"]
    (defect,) = analysis["defects"].values()
    (state,) = defect["in_gap_states"]
    assert state["kind"] == "defect" and state["energy_above_vbm_eV"] == pytest.approx(2.4)
    r = run_cli("report", "--campaign", str(results), "-o", str(tmp_path / "report"), env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["in_gap_states"][0]["compared_with_pl"]
    assert report["provenance"]["calculations"]  # the backend described its own settings


def test_a_failing_step_is_named_and_the_run_exits_nonzero(tmp_path, fake_plugin):
    """A step whose code crashes: `campaign run` names the FIZZLED step and its error and exits
    1; the steps before it keep their results."""
    camp = tmp_path / "fail.yaml"
    camp.write_text("name: fail-campaign\ncode: fakecode\ntier: hse06\nrelax: false\n"
                    "settings: {fail_step: hse06}\nmodels:\n"
                    "  - {compound: Cs4PbBr6, model: cluster, cluster: cs4pbbr6-molecule, "
                    "charges: [0]}\n")
    proj = tmp_path / "proj"
    assert run_cli("campaign", "submit", str(camp), "--project", str(proj),
                   env=fake_plugin).returncode == 0
    r = run_cli("campaign", "run", "--project", str(proj), env=fake_plugin)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FIZZLED fail-campaign/Cs4PbBr6_cs4pbbr6-molecule/host/hse06" in r.stderr
    assert "fakecode crashed in step hse06" in r.stderr and "campaign rerun" in r.stderr
    assert "Traceback" not in r.stderr
    pbe = proj / "runs" / "fail-campaign" / "Cs4PbBr6_cs4pbbr6-molecule" / "host" / "pbe"
    assert (pbe / "result.json").is_file()


def test_report_from_results_json_without_fireworks(tmp_path, fake_plugin):
    """`perovdefect report --campaign results.json` with FireWorks made unimportable."""
    results = tmp_path / "results.json"
    host = build_cluster("cs4pbbr6-molecule")
    vac = build_cluster("cs4pbbr6-molecule", vacancy=True)
    fake = FakeBackend()
    docs = {}
    for label, rec in (("host", host), ("V_Br_q0", vac)):
        docs[label], _ = fake.execute(rec, Protocol(), tmp_path / label)
    from perovdefect.levels.model import analyze_model
    rows = [{"role": "host", "label": "host", "charge": 0, "step": "pbe",
             "path": str(tmp_path / "host" / "result.json")},
            {"role": "defect", "label": "V_Br_q0", "charge": 0, "step": "pbe",
             "path": str(tmp_path / "V_Br_q0" / "result.json")}]
    analysis = analyze_model(rows, "pbe", 517.0, "c", "m")
    results.write_text(json.dumps({"steps": [], "analyses": [analysis.to_dict()]}))
    code = ("import sys; sys.modules['fireworks'] = None; from perovdefect.cli.main import main; "
            f"sys.argv = ['perovdefect', 'report', '--campaign', {str(results)!r}, '-o', "
            f"{str(tmp_path / 'rep')!r}]; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**__import__("os").environ, **fake_plugin})
    assert r.returncode == 0, r.stderr
    assert "fireworks" not in r.stderr.lower()
    assert (tmp_path / "rep" / "report.html").stat().st_size > 10_000


def test_durable_execute_never_runs_a_finished_step_twice(tmp_path):
    fake = FakeBackend()
    rec = build_cluster("cs4pbbr6-molecule", vacancy=True)
    doc, skipped = fake.execute(rec, Protocol(), tmp_path)
    assert not skipped
    mtime = (tmp_path / "fake.out").stat().st_mtime_ns
    again, skipped = fake.execute(rec, Protocol(), tmp_path)
    assert skipped and again == doc and (tmp_path / "fake.out").stat().st_mtime_ns == mtime
    # other settings: another step, recomputed
    _, skipped = FakeBackend(gap_eV=3.0).execute(rec, Protocol(), tmp_path)
    assert not skipped


def test_code_names_live_only_in_calcs():
    """`grep -rnE '"(gpaw|vasp|qe)"' perovdefect` finds code names only under calcs/."""
    r = subprocess.run(["grep", "-rnE", '"(gpaw|vasp|qe)"', str(REPO / "perovdefect"),
                        "--include=*.py"], capture_output=True, text=True)
    outside = [line for line in r.stdout.splitlines()
               if not line.startswith(str(REPO / "perovdefect" / "calcs"))]
    assert outside == []


def test_import_layers_have_no_cycles():
    """structures -> calcs -> parsers/levels -> workflows -> report -> cli: no module imports
    from a layer above it at module level."""
    import ast
    order = ["structures", "calcs", "parsers", "levels", "thermo", "optics", "workflows",
             "report", "cli"]
    rank = {name: i for i, name in enumerate(order)}
    rank["parsers"] = rank["levels"] = 2
    bad = []
    for path in (REPO / "perovdefect").rglob("*.py"):
        parts = path.relative_to(REPO / "perovdefect").parts
        if parts[0] not in rank:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for mod in mods:
                m = mod.split(".")
                if m[0] == "perovdefect" and len(m) > 1 and m[1] in rank and \
                        rank[m[1]] > rank[parts[0]]:
                    bad.append(f"{path.relative_to(REPO)} imports {mod}")
    assert bad == []


def _es(**kw) -> ElectronicStructure:
    base = dict(code="x", functional="PBE", exact_exchange_fraction=0.0, screening_inv_A=0.0,
                soc=False, converged=True, total_energy_eV=-3.0,
                eigenvalues_eV=[[[-1.0, 0.5, 2.0]]], occupations=[[[1.0, 1.0, 0.0]]],
                kpoint_weights=[1.0], fermi_level_eV=None, n_electrons=4.0, charge=0.0,
                nspins=1)
    return ElectronicStructure(**{**base, **kw})


def test_documents_round_trip_and_validate(tmp_path):
    from perovdefect.levels import find_in_gap_states
    from perovdefect.levels.pl import PLPeak
    doc = _es(band_localization=[{"spin": 0, "k": 0, "band": 1, "energy_eV": 0.5,
                                  "occupation": 1.0, "ipr": 0.4, "character": {"Pb": 1.0}}])
    assert doc.gap_eV == pytest.approx(1.5)
    assert ElectronicStructure.from_json(_write(tmp_path / "es.json", doc.to_json())) == doc
    host = _es(eigenvalues_eV=[[[-1.0, -0.5, 2.5]]])
    lv = find_in_gap_states(host, doc, alignment="none")
    assert type(lv).from_dict(json.loads(lv.to_json())) == lv
    peak = PLPeak(model="gaussian", center_nm=517.0, center_eV=2.398, fwhm_nm=14.0,
                  fwhm_meV=65.0, amplitude=1.0)
    assert PLPeak.from_json(_write(tmp_path / "p.json", peak.to_json())) == peak
    # NaN never reaches the JSON as a bare NaN
    assert "NaN" not in _es(total_energy_eV=float("nan")).to_json()
    # validation on load: a missing field and a mistyped one are one clear ParseError each
    broken = json.loads(doc.to_json())
    del broken["kpoint_weights"]
    with pytest.raises(ParseError, match="kpoint_weights"):
        ElectronicStructure.from_json(_write(tmp_path / "b.json", json.dumps(broken)))
    broken = json.loads(doc.to_json())
    broken["occupations"] = "lots"
    with pytest.raises(ParseError, match="occupations"):
        ElectronicStructure.from_dict(broken, "b.json")
    with pytest.raises(ParseError, match="schema version 99"):
        ElectronicStructure.from_dict({**json.loads(doc.to_json()), "schema_version": 99})


def test_documents_written_by_0_1_still_load():
    """An ElectronicStructure and an analysis.json as perovdefect 0.1 wrote them."""
    from perovdefect.levels.model import ModelAnalysis
    old_es = {k: v for k, v in json.loads(_es().to_json()).items()
              if k not in ("structure", "planar_potential")}
    old_es["schema_version"] = 1
    assert ElectronicStructure.from_dict(old_es).gap_eV == pytest.approx(1.5)
    state = {"spin": 0, "k": 0, "band": 3, "energy_above_vbm_eV": 2.4, "energy_eV": -3.0,
             "occupation": 1.0, "state_to_vbm_eV": 2.4, "cbm_to_state_eV": 1.5,
             "transition_eV": 2.4, "transition_nm": 516.6, "ipr": 0.3,
             "character": {"Pb": 0.6}}
    old_analysis = {
        "final_step": "pbe", "campaign": "c", "model": "m", "label": "analysis",
        "role": "analysis", "charge": 0, "step": "analysis", "key": "k",
        "host": {k: v for k, v in _es().summary().items()},
        "host_gaps_by_step_eV": {"pbe": 3.9},
        "defects": {"V_Br_q0": {"charge": 0, "host_vbm_eV": 0.0, "host_cbm_eV": 3.9,
                                "host_gap_eV": 3.9, "alignment": "vacuum",
                                "alignment_shift_eV": 0.0, "in_gap_states": [state],
                                "defect_gap_eV": 1.0, "host_functional": "PBE",
                                "defect_functional": "PBE", "soc": False,
                                "pl_comparison": None, "warnings": []}}}
    a = ModelAnalysis.from_dict(old_analysis, "analysis.json")
    assert a.defects["V_Br_q0"].in_gap_states[0].kind == "defect"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_planar_potential_and_structure_survive_a_round_trip():
    from ase.build import bulk
    from perovdefect.calcs.document import PlanarPotential, StructureData
    atoms = bulk("Cu", cubic=True)
    doc = _es(structure=StructureData.from_atoms(atoms),
              planar_potential=PlanarPotential(averages_eV=[list(np.linspace(0, 1, 5))] * 3,
                                               cell_A=atoms.cell.array.tolist()))
    back = ElectronicStructure.from_dict(json.loads(doc.to_json()))
    assert back.structure.to_atoms() == atoms
    assert back.planar_potential.averages_eV[0][-1] == 1.0
