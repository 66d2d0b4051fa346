"""Issue 3: protocol validation and the VASP / Quantum ESPRESSO input sets."""

from __future__ import annotations

import json

import pytest

from perovdefect.calcs.protocol import Protocol, ladder
from perovdefect.calcs.qe.inputs import write_pw_input
from perovdefect.calcs.vasp.inputs import write_vasp_inputs
from perovdefect.errors import ProtocolError
from perovdefect.structures import build_cluster, build_vacancies


def read_incar(path) -> dict:
    from pymatgen.io.vasp import Incar
    return dict(Incar.from_file(path))


def test_protocol_validation_and_properties():
    hse = Protocol(functional="HSE06")
    assert hse.aexx == 0.25 and hse.screening == 0.2 and hse.is_hybrid
    assert Protocol(functional="PBE0").screening == 0.0
    assert Protocol(functional="HSE06", exact_exchange_fraction=0.43).aexx == 0.43
    with pytest.raises(ProtocolError, match="code setting|settings"):
        Protocol.from_dict({"functional": "PBE", "mode": "pw"})  # a GPAW setting, not physics
    with pytest.raises(ProtocolError, match="unknown functional"):
        Protocol(functional="B3LYPX")
    with pytest.raises(ProtocolError, match=r"\[0, 1\]"):
        Protocol(functional="HSE06", exact_exchange_fraction=1.5)
    with pytest.raises(ProtocolError, match="integer"):
        Protocol(charge=0.5)
    with pytest.raises(ProtocolError, match="unknown protocol fields"):
        Protocol.from_dict({"functional": "PBE", "encut": 500})
    assert Protocol.from_dict(hse.as_dict()) == hse


def test_ladders():
    assert [p.label for p in ladder("hse06-soc")] == ["PBE", "PBE", "HSE06", "HSE06+SOC"]
    assert [p.task for p in ladder("hse06-soc")][:2] == ["relax", "static"]
    corr = ladder("hse06-soc-correction", relax=False)
    assert [p.name for p in corr] == ["pbe", "pbe-soc", "hse06"]
    assert all(p.charge == -1 for p in ladder("pbe", charge=-1))
    from perovdefect.levels import soc_corrected_gap
    assert soc_corrected_gap(3.5, 2.9, 2.0) == pytest.approx(2.6)


def test_vasp_hse06_soc_charged_supercell(tmp_path):
    rec = build_vacancies("CsPbBr3-cubic", 12, charges=(1,))[0]
    inputs = write_vasp_inputs(rec, Protocol(functional="HSE06", soc=True), tmp_path)
    incar = read_incar(tmp_path / "INCAR")
    assert incar["LHFCALC"] is True and incar["HFSCREEN"] == 0.2 and incar["AEXX"] == 0.25
    assert incar["ALGO"] in ("Normal", "All", "Damped")
    assert incar["LSORBIT"] is True and incar["ISYM"] == -1
    assert len(incar["MAGMOM"]) == len(rec.atoms)  # one 3-vector per atom (noncollinear)
    assert all(len(m) == 3 for m in incar["MAGMOM"])
    # 8 Cs(9) + 8 Pb(14) + 23 Br(7) = 345 valence electrons, q = +1 -> 344
    assert incar["NELECT"] == 344
    assert incar["NBANDS"] % 2 == 0 and incar["NBANDS"] > 344
    assert inputs.executable == "vasp_ncl"
    assert (tmp_path / "KPOINTS").read_text().split()[-6:-3] == ["1", "1", "1"] or \
        "Gamma" in (tmp_path / "KPOINTS").read_text()
    assert not (tmp_path / "POTCAR").exists() and not inputs.potcar_written
    assert (tmp_path / "POTCAR.spec").read_text().split() == ["Cs_sv", "Pb_d", "Br"]
    meta = json.loads((tmp_path / "perovdefect_inputs.json").read_text())
    assert meta["executable"] == "vasp_ncl" and "PMG_VASP_PSP_DIR" in meta["notes"][0]


def test_vasp_pbe_relax_and_executables(tmp_path):
    crystal_rec = build_vacancies("CsPbBr3-cubic", 12, charges=(0,))[0]
    relax = write_vasp_inputs(crystal_rec, Protocol(task="relax", kpoints=(2, 2, 2)), tmp_path / "r")
    incar = read_incar(tmp_path / "r" / "INCAR")
    assert incar["NSW"] > 0 and incar["IBRION"] == 2 and "LHFCALC" not in incar
    assert incar["ISPIN"] == 2  # V_Br^0 has an odd electron count
    assert relax.executable == "vasp_std"
    cluster = build_cluster("cs4pbbr6-molecule")
    gam = write_vasp_inputs(cluster, Protocol(), tmp_path / "c")
    assert gam.executable == "vasp_gam" and "MAGMOM" not in read_incar(tmp_path / "c" / "INCAR")


def test_qe_hse_soc_input(tmp_path):
    mol = build_cluster("cs4pbbr6-molecule", vacancy=True)
    pp = {"Cs": "Cs.rel-pbe.UPF", "Pb": "Pb.rel-pbe.UPF", "Br": "Br.rel-pbe.UPF"}
    text = write_pw_input(mol, Protocol(functional="HSE06", soc=True), tmp_path, pp).read_text()
    for needle in ("input_dft        = 'hse'", "lspinorb         = .true.",
                   "noncolin         = .true.", "exx_fraction     = 0.25",
                   "assume_isolated  = 'mt'", "tot_charge       = 0.0"):
        assert needle in text
    charged = build_cluster("pbbr6-octahedron")
    text = write_pw_input(charged, Protocol(), tmp_path / "q", pp).read_text()
    assert "tot_charge       = -4.0" in text


def test_qe_refuses_scalar_relativistic_pseudos_with_soc(tmp_path):
    (tmp_path / "Br.pbe.UPF").write_text('<UPF version="2.0.1">\n<PP_HEADER has_so="F" />\n')
    rec = build_cluster("pbbr6-octahedron")
    with pytest.raises(ProtocolError, match="fully relativistic"):
        write_pw_input(rec, Protocol(soc=True), tmp_path / "x",
                       {"Pb": "Pb.rel-pbe.UPF", "Br": "Br.pbe.UPF"}, pseudo_dir=tmp_path)
    with pytest.raises(ProtocolError, match="no pseudopotential"):
        write_pw_input(rec, Protocol(), tmp_path / "y", {"Pb": "Pb.UPF"})
