"""Issue 3: parsing real VASP outputs (../shared/data/vasp) and bad outputs."""

from __future__ import annotations

import gzip
import re
import json
import warnings

import pytest

from perovdefect.errors import ParseError
from perovdefect.parsers import ElectronicStructure, parse
from tests.conftest import run_cli

CASES = {  # folder: (gap eV, functional, soc, converged, nspins)
    "doped_Cs2AgBiBr6_bulk_supercell": (2.311, "HSE06", False, True, 1),
    "doped_Br2_competing_phase": (2.945, "HSE06", False, True, 1),
    "pmgad_v_N_GaN_q+1": (2.262, "PBEsol", False, True, 2),
    "doped_O2_vasp_ncl": (2.224, "PBE", True, False, 1),
}


@pytest.mark.parametrize("folder", list(CASES))
def test_real_vasp_outputs(shared_data, folder):
    gap, functional, soc, converged, nspins = CASES[folder]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = parse(shared_data / "vasp" / folder)  # a run directory
    assert doc.gap_eV == pytest.approx(gap, abs=0.01)
    assert doc.functional == functional and doc.soc is soc
    assert doc.converged is converged and doc.nspins == nspins
    assert doc.cbm_eV - doc.vbm_eV == pytest.approx(doc.gap_eV)
    if functional == "HSE06":
        assert doc.exact_exchange_fraction == 0.25 and 0.19 < doc.screening_inv_A < 0.21
    if not converged:
        assert any("did not converge" in str(w.message) for w in caught)
        assert doc.warnings
    back = ElectronicStructure.from_dict(json.loads(doc.to_json()))
    assert back.gap_eV == doc.gap_eV and back.eigenvalues_eV == doc.eigenvalues_eV


def test_gan_charge_state_electrons(shared_data, tmp_path):
    """Charge = sum of the valences VASP lists in vasprun.xml's atominfo block - NELECT (no
    POTCAR needed); without that block it stays unknown, never guessed."""
    src = shared_data / "vasp" / "pmgad_v_N_GaN_q+1" / "vasprun.xml.gz"
    doc = parse(src)
    assert doc.n_electrons == 282
    # the folder is pymatgen-analysis-defects' q=+1 run: 16 Ga (ZVAL 13) + 15 N (ZVAL 5) = 283
    raw = gzip.open(src).read().decode()
    zval = {m[0]: float(m[1]) for m in re.findall(
        r"<rc><c>\s*\d+</c><c>(\w+)\s*</c><c>[\d.\s]+</c><c>\s*([\d.]+)</c>", raw)}
    counts = doc.structure.to_atoms().symbols.formula.count()
    assert doc.charge == sum(zval[el] * n for el, n in counts.items()) - 282 == 1.0
    stripped = tmp_path / "vasprun.xml"
    stripped.write_text(re.sub(r'<array name="atomtypes".*?</array>', "", raw, flags=re.S))
    assert parse(stripped).charge is None


def test_truncated_and_malformed_vasprun(shared_data, tmp_path):
    raw = gzip.open(shared_data / "vasp" / "doped_Br2_competing_phase" / "vasprun.xml.gz").read()
    cut = tmp_path / "vasprun.xml"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ParseError, match="vasprun.xml"):
        parse(cut)
    bad = tmp_path / "x" / "vasprun.xml"
    bad.parent.mkdir()
    bad.write_text("<?xml version='1.0'?>\n<modeling><generator>garbage")
    with pytest.raises(ParseError, match="malformed or truncated"):
        parse(bad)
    with pytest.raises(ParseError, match="no such"):
        parse(tmp_path / "missing" / "vasprun.xml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParseError, match="no calculation output"):
        parse(tmp_path / "empty")


def test_qe_output_that_stopped_early(tmp_path):
    out = tmp_path / "pw.out"
    out.write_text("\n     Program PWSCF v.6.7MaX starts on 25Nov2026\n"
                   "     number of electrons       =        92.00\n"
                   "     iteration #  1     ecut=    25.00 Ry     beta= 0.30\n")
    with pytest.raises(ParseError, match="stopped early"):
        parse(out)


def test_cli_parse_json(shared_data):
    r = run_cli("parse", str(shared_data / "vasp" / "doped_Br2_competing_phase" /
                             "vasprun.xml.gz"), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("gap_eV", "vbm_eV", "cbm_eV", "functional", "exact_exchange_fraction", "soc",
                "converged"):
        assert key in d
    assert d["functional"] == "HSE06" and abs(d["gap_eV"] - 2.945) < 0.01
    r = run_cli("parse", str(shared_data / "vasp" / "doped_O2_vasp_ncl"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["converged"] is False
    assert "did not converge" in r.stderr
    r = run_cli("parse", "/nonexistent/vasprun.xml")
    assert r.returncode == 2 and "no such" in r.stderr and "Traceback" not in r.stderr


def test_vasp_projections_localise_the_n_vacancy_states(shared_data):
    """IPR from the real vasprun projections (LORBIT): the empty V_N states of GaN (q=+1) are
    Ga dangling bonds, more localised than the valence band states below them."""
    doc = parse(shared_data / "vasp" / "pmgad_v_N_GaN_q+1", parse_projections=True)
    up = [b for b in doc.band_localization if b.spin == 0]
    # the three valence states just below the occupied defect level (the records now reach
    # 8 eV into the valence band, whose deeper states are more localised)
    valence = [b.ipr for b in up if b.occupation > 0.5][-4:-1]
    defect = [b for b in up if b.occupation < 0.5][:3]
    assert all(b.character["Ga"] > 0.55 for b in defect)
    assert min(b.ipr for b in defect) > 2 * max(valence)
    assert all(1 / 31 <= b.ipr <= 1 for b in doc.band_localization)  # 31-atom cell bounds


def test_real_outcar_shipped_with_ase():
    """A real VASP 5.3.3 OUTCAR (spin-polarised Ni18, Gamma only) that ASE ships in its wheel:
    read from the installed ASE, not copied here."""
    import ase
    import numpy as np
    from pathlib import Path
    outcar = Path(ase.__file__).parent / "test" / "testdata" / "vasp" / "OUTCAR_example_1"
    if not outcar.is_file():
        pytest.skip("this ASE build ships no OUTCAR test data")
    doc = parse(outcar)
    assert doc.code == "vasp" and doc.functional == "PBE" and not doc.soc
    assert doc.converged and doc.nspins == 2 and doc.n_electrons == 180
    occ = np.asarray(doc.occupations)
    assert occ.sum() == pytest.approx(180, abs=0.1)  # electrons in both spin channels
    moment = occ[0].sum() - occ[1].sum()
    assert 15 < moment < 19  # ~0.95 mu_B per Ni atom
    # a metal: partially occupied states at the Fermi level, so no gap (issue 18), and why
    assert doc.gap_eV is None and doc.vbm_eV > doc.fermi_level_eV > doc.cbm_eV
    assert any("partially occupied" in w for w in doc.warnings)
