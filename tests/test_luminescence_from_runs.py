"""Issue 19: `perovdefect luminescence DIR --from-runs` on finished runs made elsewhere.

Real VASP files where the format matters: the V_N in GaN vasprun.xml files of ../shared/data/vasp
(written by VASP 5/6, PBEsol, charges 0 and +1, real relaxed geometries) are copied and their
positions and energies edited (every structure block, every energy tag) to lie on a synthetic
path between the two real minima with harmonic energies chosen here; the folder names are
shuffled so only the geometries can place them. Bad trees (a missing minimum, a geometry off
the path, two levels of theory) give one clear error each. The campaign's own outputs are read
in tests/test_vasp_luminescence.py.
"""

from __future__ import annotations

import gzip
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import luminescence_json, run_cli
from tests.test_vasp_luminescence import curvature, huang_rhys

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
HW_FINAL_MEV, HW_INITIAL_MEV, GAP_EV, EDGE_EV = 30.0, 25.0, 0.8, 5.2


def _read(path: Path) -> ET.ElementTree:
    with gzip.open(path, "rb") as fh:
        return ET.parse(fh)


def _positions(tree: ET.ElementTree) -> tuple[np.ndarray, np.ndarray]:
    """(lattice rows A, fractional positions) of the final structure."""
    final = tree.getroot().find("structure[@name='finalpos']")
    basis = np.array([[float(x) for x in v.text.split()]
                      for v in final.find("crystal/varray[@name='basis']")])
    frac = np.array([[float(x) for x in v.text.split()]
                     for v in final.find("varray[@name='positions']")])
    return basis, frac


def write_point(src: Path, dst: Path, frac: np.ndarray, energy_eV: float,
                edit=None) -> None:
    """A copy of the real vasprun.xml `src` at `dst` with every structure block at the
    fractional positions `frac` and every energy tag at `energy_eV` (`edit`: more changes)."""
    tree = _read(src)
    for calc in tree.getroot().iter("calculation"):  # nothing here reads projections: the
        for big in calc.findall("projected"):         # copies shrink tenfold without them
            calc.remove(big)
        for dos in calc.findall("dos"):
            for big in dos.findall("partial"):
                dos.remove(big)
    for structure in tree.getroot().iter("structure"):
        if structure.get("name") == "primitive_cell":
            continue
        for v, row in zip(structure.find("varray[@name='positions']"), frac):
            v.text = " ".join(f"{x:16.10f}" for x in row) + " "
    for i in tree.getroot().iter("i"):
        if i.get("name") in ("e_fr_energy", "e_wo_entrp", "e_0_energy"):
            i.text = f" {energy_eV:16.8f} "
    if edit:
        edit(tree)
    dst.mkdir(parents=True, exist_ok=True)
    with gzip.open(dst / "vasprun.xml.gz", "wb") as fh:
        tree.write(fh, encoding="ISO-8859-1", xml_declaration=True)


def masses(src: Path) -> np.ndarray:
    from perovdefect.parsers import parse
    return parse(src).structure.to_atoms().get_masses()


@pytest.fixture(scope="module")
def gan_tree(tmp_path_factory, shared_data) -> dict:
    """q0 and q+1 of V_N in GaN on a path between their real relaxed geometries, both charge
    states at the five fractions, in folders named in no useful order."""
    root = tmp_path_factory.mktemp("gan") / "ccd_tree"
    src = {q: shared_data / "vasp" / f"pmgad_v_N_GaN_q{q}" / "vasprun.xml.gz"
           for q in ("0", "+1")}
    lattice, r0 = _positions(_read(src["0"]))
    _, r1 = _positions(_read(src["+1"]))
    d = r1 - r0
    d -= np.round(d)  # minimum image
    m = masses(src["0"])
    dq = float(np.sqrt(np.sum(m[:, None] * (d @ lattice) ** 2)))
    e0 = -200.0
    names = iter(["7", "2", "9", "4", "0", "5", "1", "8", "3", "6"])
    where = {}
    for f in FRACTIONS:
        q_f = e0 + 0.5 * curvature(HW_FINAL_MEV) * (f * dq) ** 2
        q_i = e0 + GAP_EV + 0.5 * curvature(HW_INITIAL_MEV) * ((f - 1) * dq) ** 2
        for q, folder, e in (("0", "charge_a", q_f), ("+1", "charge_b", q_i)):
            where[(q, f)] = Path(folder) / next(names)
            write_point(src[q], root / where[(q, f)], r0 + f * d, e)
    return {"root": root, "dq": dq, "src": src, "lattice": lattice, "r0": r0, "d": d,
            "where": where}


def from_runs(root: Path, *args: str):
    r = run_cli("luminescence", str(root), "--from-runs", *args, "--json")
    return r, (luminescence_json(r.stdout) if r.returncode == 0 else None)


def one_line_error(r, *words: str) -> None:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1, line
    for w in words:
        assert w in line, line


def test_real_vasp_files_charge_route(gan_tree, tmp_path):
    r, out = from_runs(gan_tree["root"], "--charges", "1,0", "--band-edge-eV", str(EDGE_EV),
                       "--correction-eV", "-0.05", "-o", str(tmp_path / "lum.json"))
    assert r.returncode == 0, r.stderr
    dq = gan_tree["dq"]
    assert dq > 0.5  # the real relaxation difference between V_N^+ and V_N^0
    assert out["delta_q_amu05_A"] == pytest.approx(dq, rel=1e-6)
    assert out["hbar_omega_ground_meV"] == pytest.approx(HW_FINAL_MEV, rel=1e-6)
    assert out["hbar_omega_excited_meV"] == pytest.approx(HW_INITIAL_MEV, rel=1e-6)
    assert out["huang_rhys_ground"] == pytest.approx(huang_rhys(HW_FINAL_MEV, dq), rel=1e-6)
    # ZPL = E(+1; R+) + E_CBM + E_corr - E(0; R0)
    assert out["zpl_eV"] == pytest.approx(GAP_EV + EDGE_EV - 0.05, abs=1e-6)
    assert out["charge_route"]["band_edge"] == "cbm" and out["excitation"] == \
        "q+1 + e(CBM) -> q+0"
    assert out["code"] == "vasp" and "PBEsol" in out["level_of_theory"]
    from perovdefect.optics.run import LuminescenceResult
    doc = LuminescenceResult.from_json(tmp_path / "lum.json")
    points = doc.from_runs.points
    assert len(points) == 10 and max(p.off_path_amu05_A for p in points) < 1e-4
    by_dir = {Path(p.source).name: (p.state, round(p.fraction, 6)) for p in points}
    assert by_dir["7"] == ("q+0", 0.0) and by_dir["6"] == ("q+1", 1.0)
    # --output is never overwritten without --force
    r, _ = from_runs(gan_tree["root"], "--charges", "1,0", "--band-edge-eV", "5.2", "-o",
                     str(tmp_path / "lum.json"))
    one_line_error(r, "exists", "--force")
    # two charge states and no --charges: one clear error saying what to give
    r, _ = from_runs(gan_tree["root"])
    one_line_error(r, "--charges")
    r, _ = from_runs(gan_tree["root"], "--charges", "1,0")
    one_line_error(r, "--host", "--band-edge-eV")


def test_charge_route_from_runs_against_pymatgen_analysis_defects(gan_tree):
    """The same edited real files through pymatgen-analysis-defects' HarmonicDefect."""
    import warnings

    from pymatgen.analysis.defects.ccd import HarmonicDefect, get_dQ
    from pymatgen.io.vasp import Vasprun

    from perovdefect.optics.from_runs import luminescence_from_runs
    res = luminescence_from_runs(gan_tree["root"], (1, 0), band_edge_eV=EDGE_EV)
    by_state: dict[str, list] = {}
    for p in res.from_runs.points:
        by_state.setdefault(p.state, []).append(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = {s: [Vasprun(str(Path(p.source) / "vasprun.xml.gz"))
                    for p in sorted(ps, key=lambda p: p.fraction)] for s, ps in by_state.items()}
        hd_f = HarmonicDefect.from_vaspruns(runs["q+0"], charge_state=0, relaxed_index=0,
                                            defect_band=[(140, 0, 0)])
        hd_i = HarmonicDefect.from_vaspruns(runs["q+1"][::-1], charge_state=1, relaxed_index=0,
                                            defect_band=[(140, 0, 0)])
    assert res.cc.delta_q_amu05_A == pytest.approx(
        get_dQ(hd_f.relaxed_structure, hd_i.relaxed_structure), rel=1e-6)
    assert res.cc.ground.hbar_omega_meV == pytest.approx(1e3 * hd_f.omega_eV, rel=1e-6)
    assert res.cc.excited.hbar_omega_meV == pytest.approx(1e3 * hd_i.omega_eV, rel=1e-6)


def _tree_copy(gan_tree, tmp_path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(gan_tree["root"], root)
    return root


def test_bad_trees_give_one_clear_error_each(gan_tree, tmp_path):
    args = ("--charges", "1,0", "--band-edge-eV", str(EDGE_EV))
    # a missing minimum: the relaxed V_N^0 geometry was never computed for V_N^0
    root = _tree_copy(gan_tree, tmp_path / "a")
    shutil.rmtree(root / gan_tree["where"][("0", 0.0)])
    r, _ = from_runs(root, *args)
    one_line_error(r, "missing minimum", "q+0", "not in the tree")
    # a geometry off the path: one atom moved 0.05 A sideways
    root = _tree_copy(gan_tree, tmp_path / "b")
    point = root / gan_tree["where"][("+1", 0.5)]
    frac = gan_tree["r0"] + 0.5 * gan_tree["d"]
    frac[3] += np.linalg.solve(gan_tree["lattice"].T, [0.05, 0.0, 0.0])
    write_point(gan_tree["src"]["+1"], point, frac, -199.0)
    r, _ = from_runs(root, *args)
    one_line_error(r, "not on one linear path", point.name)
    # two levels of theory: one point re-labelled a hybrid (LHFCALC) run

    def hybrid(tree):
        for i in tree.getroot().iter("i"):
            if i.get("name") == "LHFCALC":
                i.text = " T  "

    root = _tree_copy(gan_tree, tmp_path / "c")
    point = root / gan_tree["where"][("0", 0.25)]
    write_point(gan_tree["src"]["0"], point, gan_tree["r0"] + 0.25 * gan_tree["d"],
                -200.0, edit=hybrid)
    r, _ = from_runs(root, *args)
    one_line_error(r, "mixed levels of theory")
    # nothing there at all
    empty = tmp_path / "empty"
    empty.mkdir()
    r, _ = from_runs(empty)
    one_line_error(r, "no finished calculation")
