"""Issues 2 and 13: crystals, supercells, Br vacancies, cluster models, exports and bad input."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from ase.data import atomic_numbers
from ase.geometry import get_distances

from perovdefect.errors import StructureError
from perovdefect.structures import (build_cluster, build_crystal, build_supercell,
                                    build_vacancies, distinct_sites, image_distance,
                                    read_structure, remove_site, space_group)
from perovdefect.structures.clusters import coordination
from perovdefect.structures.primitive import primitive_cell
from perovdefect.structures.supercells import min_cells_for_distance
from perovdefect.structures.vacancies import build_host
from tests.conftest import run_cli

EXPECTED = {  # name: (space group, formula unit counts per Z, Z, {wyckoff: multiplicity} of Br)
    "Cs4PbBr6": (167, {"Cs": 4, "Pb": 1, "Br": 6}, 6, {"36f": 36}),
    "CsPbBr3-Pnma": (62, {"Cs": 1, "Pb": 1, "Br": 3}, 4, {"8d": 8, "4c": 4}),
    "CsPbBr3-cubic": (221, {"Cs": 1, "Pb": 1, "Br": 3}, 1, {"3d": 3}),
}


def pb_br_distances(atoms) -> list[float]:
    """Every Pb-Br distance below 3.6 A, counting periodic images (ASE neighbour list)."""
    from ase.neighborlist import neighbor_list
    sym = np.array(atoms.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", atoms, 3.6)
    return d[(sym[i] == "Pb") & (sym[j] == "Br")].tolist()


@pytest.mark.parametrize("lattice", ["pbe", "experimental"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_crystal_space_group_formula_and_octahedra(name, lattice):
    sg, unit, z, _ = EXPECTED[name]
    rec = build_crystal(name, lattice)
    assert space_group(rec.atoms)[0] == sg
    symbols = rec.atoms.get_chemical_symbols()
    assert {el: symbols.count(el) for el in unit} == {el: n * z for el, n in unit.items()}
    assert rec.metadata["Z"] == z
    d = pb_br_distances(rec.atoms)
    assert len(d) == 6 * z  # every Pb octahedrally coordinated
    assert 2.9 <= min(d) and max(d) <= 3.1


def test_experimental_lattice_values_and_fractional_coordinates():
    pbe, exp = build_crystal("Cs4PbBr6"), build_crystal("Cs4PbBr6", "experimental")
    assert exp.atoms.cell.lengths() == pytest.approx([13.73, 13.73, 17.32])
    assert np.allclose(pbe.atoms.get_scaled_positions(), exp.atoms.get_scaled_positions())
    assert build_crystal("CsPbBr3-Pnma", "experimental").atoms.cell.lengths() == pytest.approx(
        [8.24, 11.74, 8.20])
    assert build_crystal("CsPbBr3-cubic", "experimental").atoms.cell.lengths()[0] == \
        pytest.approx(5.87)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_distinct_br_sites_wyckoff_and_multiplicity(name):
    sites = distinct_sites(build_crystal(name))
    assert {s.wyckoff: s.multiplicity for s in sites} == EXPECTED[name][3]


def test_supercell_image_distance_and_atom_target():
    cubic = build_crystal("CsPbBr3-cubic")
    assert image_distance(cubic.atoms.cell.array) == pytest.approx(6.017334, abs=1e-4)
    sc = build_supercell(cubic, min_image_distance_A=12)
    assert sc.metadata["image_distance_A"] >= 12
    assert len(sc.atoms) == 40 and sc.metadata["valence_electrons"] == 8 * 44
    assert space_group(sc.atoms)[0] == 221
    sc2 = build_supercell(cubic, target_atoms=135)
    assert len(sc2.atoms) == 135  # 27 cells, 3x3x3 is the ideal simple-cubic shape
    assert sc2.metadata["image_distance_A"] == pytest.approx(3 * 6.017334, abs=1e-3)
    hexa = build_supercell(build_crystal("Cs4PbBr6"), min_image_distance_A=16)
    assert hexa.metadata["image_distance_A"] >= 16


@pytest.mark.parametrize("name", list(EXPECTED))
def test_vacancies_counts_charges_and_electrons(name):
    recs = build_vacancies(name, min_image_distance_A=12)
    n_sites = len(EXPECTED[name][3])
    assert len(recs) == 3 * n_sites
    for r in recs:
        m = r.metadata
        pristine = r.atoms.get_chemical_symbols() + ["Br"]
        zval = {"Cs": 9, "Pb": 14, "Br": 7}
        assert m["valence_electrons"] == sum(zval[s] for s in pristine) - 7 - m["charge"]
        assert m["electrons_total"] == sum(atomic_numbers[s] for s in pristine) - 35 - m["charge"]
        assert m["spin_multiplicity"] == (2 if m["valence_electrons"] % 2 else 1)
        assert m["multiplicity"] == EXPECTED[name][3][m["wyckoff"]]
        assert m["image_distance_A"] >= 12
        assert r.name.endswith({1: "_q+1", 0: "_q0", -1: "_q-1"}[m["charge"]])
        assert r.atoms.get_chemical_symbols().count("Br") == \
            build_host(name, 12).atoms.get_chemical_symbols().count("Br") - 1
    assert {r.name for r in build_vacancies("Cs4PbBr6")} == {"V_Br_q+1", "V_Br_q0", "V_Br_q-1"}


def test_cluster_octahedron_and_molecule_charges():
    octa = build_cluster("pbbr6-octahedron")
    assert octa.charge == -4 and octa.metadata["formal_charge"] == -4
    assert octa.atoms.get_chemical_formula() == "Br6Pb"
    assert octa.metadata["valence_electrons"] == 14 + 6 * 7 + 4
    mol = build_cluster("cs4pbbr6-molecule")
    assert mol.charge == 0 and mol.metadata["formal_charge"] == 0  # neutral molecule
    assert mol.metadata["spin_multiplicity"] == 1
    pos = mol.atoms.positions
    sym = np.array(mol.atoms.get_chemical_symbols())
    pb = pos[sym == "Pb"][0]
    cs_dist = np.linalg.norm(pos[sym == "Cs"] - pb, axis=1)
    assert np.ptp(cs_dist) < 1e-6  # four equivalent Cs (T_d)
    assert np.linalg.norm((pos[sym == "Cs"] - pb).sum(axis=0)) < 1e-6  # no dipole
    pmg = mol.to_pymatgen()
    from pymatgen.symmetry.analyzer import PointGroupAnalyzer
    assert PointGroupAnalyzer(pmg).sch_symbol == "Td"
    for r in (octa, mol):
        assert all(2.9 <= b <= 3.1 for b in pb_br_distances(r.atoms))
        assert not r.atoms.pbc.any()
        extent = r.atoms.positions.max(0) - r.atoms.positions.min(0)
        assert np.allclose(r.atoms.cell.lengths(), extent + 12.0)  # 6 A padding each side


def test_vacancy_clusters_keep_charge_and_lose_one_br():
    mol = build_cluster("cs4pbbr6-molecule", vacancy=True)
    assert mol.atoms.get_chemical_formula() == "Br5Cs4Pb"
    assert mol.charge == 0 and mol.metadata["formal_charge"] == +1
    assert mol.metadata["valence_electrons"] == 92 - 7
    assert mol.metadata["spin_multiplicity"] == 2
    assert coordination(mol.atoms) == [5]
    octa = build_cluster("pbbr6-octahedron", vacancy=True)
    assert octa.charge == -4 and octa.atoms.get_chemical_formula() == "Br5Pb"
    assert octa.name == "PbBr5_VBr_q-4"
    assert build_cluster("pbbr6-octahedron", charge=-3).name == "PbBr6_q-3"


def test_crystal_cutout_whole_octahedra_and_charge():
    cut = build_cluster("crystal-cutout", radius_A=7.0)
    assert coordination(cut.atoms) == [6] * cut.metadata["n_octahedra"]
    sym = cut.atoms.get_chemical_symbols()
    assert cut.metadata["formal_charge"] == sym.count("Cs") + 2 * sym.count("Pb") - sym.count("Br")
    big = build_cluster("crystal-cutout", compound="CsPbBr3-cubic", radius_A=6.1)
    assert set(coordination(big.atoms)) == {6}
    assert big.metadata["n_octahedra"] == 7  # the centre and its 6 corner-sharing neighbours
    vac = build_cluster("crystal-cutout", vacancy=True, radius_A=7.0)
    assert len(vac.atoms) == len(cut.atoms) - 1 and 5 in coordination(vac.atoms)
    assert vac.charge == cut.charge


@pytest.mark.parametrize("suffix", [".cif", ".vasp", ".extxyz", ".xyz", ".json"])
def test_round_trip_every_export_format(tmp_path, suffix):
    for rec in (build_vacancies("CsPbBr3-cubic", 12, charges=(0,))[0],
                build_cluster("cs4pbbr6-molecule", vacancy=True)):
        path = rec.write(tmp_path / f"s{suffix}")
        back = read_structure(path)
        assert sorted(back.atoms.get_chemical_symbols()) == sorted(rec.atoms.get_chemical_symbols())
        assert np.allclose(back.atoms.cell.array, rec.atoms.cell.array, atol=1e-4)
        a = np.sort(np.round(back.atoms.get_scaled_positions(wrap=True), 4) % 1, axis=0)
        b = np.sort(np.round(rec.atoms.get_scaled_positions(wrap=True), 4) % 1, axis=0)
        assert np.allclose(a, b, atol=2e-4)
        if suffix in (".extxyz", ".xyz", ".json"):
            assert back.metadata["charge"] == rec.metadata["charge"]
            assert back.metadata["valence_electrons"] == rec.metadata["valence_electrons"]
    assert build_cluster("pbbr6-octahedron").to_pymatgen().charge == -4
    assert len(build_crystal("Cs4PbBr6").to_pymatgen()) == 66


def test_bad_input_errors(tmp_path):
    with pytest.raises(StructureError, match="unknown compound"):
        build_crystal("CsSnI3")
    with pytest.raises(StructureError, match="impossible charge"):
        build_cluster("pbbr6-octahedron", charge=61)
    with pytest.raises(StructureError, match="too small to hold an octahedron"):
        build_cluster("crystal-cutout", radius_A=2.0)
    with pytest.raises(StructureError, match="not Br"):
        remove_site(build_crystal("CsPbBr3-cubic"), 0)  # site 0 is Cs
    with pytest.raises(StructureError, match="non-Br"):
        build_vacancies("Cs4PbBr6", element="Cs")
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 5\nloop_\n_atom_site_label\nthis is not a cif\n")
    with pytest.raises(StructureError, match="broken.cif"):
        read_structure(bad)
    with pytest.raises(StructureError, match="unknown element"):
        from perovdefect.structures.electrons import electron_counts
        electron_counts(["Xx"], 0)


def test_cli_build_commands(tmp_path):
    r = run_cli("build", "crystal", "Cs4PbBr6", "-o", str(tmp_path / "c.cif"))
    assert r.returncode == 0, r.stderr
    assert space_group(read_structure(tmp_path / "c.cif").atoms)[0] == 167
    r = run_cli("build", "vacancies", "Cs4PbBr6", "--min-image-distance", "12", "-o",
                str(tmp_path / "v"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert [s["charge"] for s in summary] == [1, 0, -1]
    assert all(s["wyckoff"] == "36f" and s["multiplicity"] == 36 for s in summary)
    assert all(s["image_distance_A"] >= 12 for s in summary)
    assert len(list((tmp_path / "v").glob("V_Br_*.vasp"))) == 3
    r = run_cli("build", "cluster", "cs4pbbr6-molecule", "--vacancy", "-o",
                str(tmp_path / "m.xyz"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["valence_electrons"] == 85
    for args, msg in [(("build", "crystal", "Nope"), "unknown compound"),
                      (("build", "cluster", "crystal-cutout", "--radius", "1"), "too small"),
                      (("build", "cluster", "crystal-cutout", "--vacancy-site", "0"), "not Br"),
                      (("build", "cluster", "pbbr6-octahedron", "--charge", "99"), "impossible")]:
        r = run_cli(*args)
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr


# --- issue 13: vacancy sites found in the supercell itself, sizes checked before any search ----

SIZES_A = (8, 14, 20, 30)
#: Pb atoms bonded to one Br: 1 in 0D Cs4PbBr6 (isolated octahedra), 2 in the corner-sharing
#: CsPbBr3 networks (every Br bridges two octahedra). Removing a Br leaves that many 5-fold Pb.
PB_PER_BR = {"Cs4PbBr6": 1, "CsPbBr3-Pnma": 2, "CsPbBr3-cubic": 2}


def pb_coordinations(atoms) -> list[int]:
    """Number of Br within 3.6 A of every Pb, periodic images counted (ASE neighbour list)."""
    from ase.neighborlist import neighbor_list
    sym = np.array(atoms.get_chemical_symbols())
    i, j = neighbor_list("ij", atoms, 3.6)
    sel = (sym[i] == "Pb") & (sym[j] == "Br")
    return np.bincount(i[sel], minlength=len(atoms))[sym == "Pb"].tolist()


def periodic_distances(point, atoms) -> np.ndarray:
    """Minimum-image distances (A) from a Cartesian point to every atom."""
    _, d = get_distances([point], atoms.positions, cell=atoms.cell, pbc=True)
    return d[0]


def unit_cell_wyckoff(crystal, point) -> tuple[str, int]:
    """(Wyckoff label, multiplicity) of the unit-cell atom at `point` modulo the lattice, from
    pymatgen's symmetrized structure, independent of the code under test."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    index = int(np.argmin(periodic_distances(point, crystal.atoms)))
    assert periodic_distances(point, crystal.atoms)[index] < 1e-3
    sym = SpacegroupAnalyzer(crystal.to_pymatgen(), symprec=1e-3).get_symmetrized_structure()
    for group, wyckoff in zip(sym.equivalent_indices, sym.wyckoff_symbols):
        if index in group:
            return wyckoff, len(group)
    raise AssertionError("site not found in any orbit")


def all_hnf(n: int):
    """Every sublattice of index n, once (lower-triangular Hermite normal forms)."""
    for a in (k for k in range(1, n + 1) if n % k == 0):
        for c in (k for k in range(1, n // a + 1) if (n // a) % k == 0):
            for b in range(a):
                for d in range(a):
                    for e in range(c):
                        yield np.array([[a, 0, 0], [b, c, 0], [d, e, n // (a * c)]])


@pytest.mark.parametrize("d", SIZES_A)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_vacancy_removes_a_br_with_the_unit_cell_wyckoff_site_at_every_size(name, d):
    crystal = build_crystal(name)
    host = build_host(name, min_image_distance_A=d)  # supercell of the primitive cell (issue 18)
    recs = build_vacancies(name, min_image_distance_A=d, charges=(0,))
    assert {r.metadata["wyckoff"] for r in recs} == set(EXPECTED[name][3])
    host_symbols = host.atoms.get_chemical_symbols()
    for r in recs:
        m = r.metadata
        assert m["image_distance_A"] >= d
        assert m["image_distance_A"] == pytest.approx(image_distance(r.atoms.cell.array), abs=1e-3)
        assert np.allclose(r.atoms.cell.array, host.atoms.cell.array)
        # the host has a Br at the vacancy position, the defect supercell has no atom near it
        point = np.array(m["vacancy_position_A"])
        dist = periodic_distances(point, host.atoms)
        assert dist.min() < 1e-3 and host_symbols[int(np.argmin(dist))] == "Br"
        assert periodic_distances(point, r.atoms).min() > 2.5
        sym = r.atoms.get_chemical_symbols()
        assert {el: sym.count(el) for el in ("Cs", "Pb")} == \
            {el: host_symbols.count(el) for el in ("Cs", "Pb")}
        assert sym.count("Br") == host_symbols.count("Br") - 1
        # the removed site belongs to the unit-cell orbit named in the metadata
        assert unit_cell_wyckoff(crystal, point) == (m["wyckoff"], m["multiplicity"])
        assert m["multiplicity"] == EXPECTED[name][3][m["wyckoff"]]
        # chemistry: only the Pb bonded to the removed Br lose a neighbour
        cn = sorted(pb_coordinations(r.atoms))
        k = PB_PER_BR[name]
        assert cn == [5] * k + [6] * (len(cn) - k)


@pytest.mark.parametrize("target", [50, 200, 1000])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_vacancy_by_atom_target_removes_a_br(name, target):
    for r in build_vacancies(name, target_atoms=target, charges=(0,)):
        n_unit = len(primitive_cell(build_crystal(name)).record.atoms)  # issue 18: primitive
        assert len(r.atoms) + 1 == max(1, round(target / n_unit)) * n_unit
        assert r.metadata["image_distance_A"] == pytest.approx(
            image_distance(r.atoms.cell.array), abs=1e-3)
        cn = sorted(pb_coordinations(r.atoms))
        assert cn == [5] * PB_PER_BR[name] + [6] * (len(cn) - PB_PER_BR[name])


@pytest.mark.parametrize("name,d,n_cells", [
    ("Cs4PbBr6", 14, 3),       # sqrt3 x sqrt3 in plane (24.0 A) x c (17.4 A), not 2x2x1 (4 cells)
    ("CsPbBr3-Pnma", 12, 4),
    ("CsPbBr3-cubic", 14, 12),
    ("CsPbBr3-cubic", 2 * math.sqrt(2) * 6.017334 - 1e-4, 16),  # fcc 2x: meets the packing bound
])
def test_min_image_supercell_has_the_fewest_cells(name, d, n_cells):
    crystal = build_crystal(name)
    cell = crystal.atoms.cell.array
    sc = build_supercell(crystal, min_image_distance_A=d)
    assert sc.metadata["n_unit_cells"] == n_cells
    assert len(sc.atoms) == n_cells * len(crystal.atoms)
    assert sc.metadata["image_distance_A"] >= d
    # brute force over every sublattice with fewer cells: all have images closer than d
    for n in range(1, n_cells):
        assert max(image_distance(H @ cell) for H in all_hnf(n)) < d
    assert min_cells_for_distance(cell, d) <= n_cells


def test_packing_bound_is_exact_for_the_fcc_supercell_of_the_cubic_perovskite():
    a = 6.017334
    for k in (1, 2, 3):  # fcc supercell [[0,k,k],[k,0,k],[k,k,0]]: 2k^3 cells, images sqrt2 k a
        d = math.sqrt(2) * k * a
        assert min_cells_for_distance(build_crystal("CsPbBr3-cubic").atoms.cell.array,
                                      d - 1e-6) == 2 * k**3


@pytest.mark.parametrize("request_", [{"min_image_distance_A": 1000.0},
                                      {"min_image_distance_A": 1e4},
                                      {"target_atoms": 100000}])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_huge_requests_are_refused_before_any_search(name, request_):
    start = time.perf_counter()
    with pytest.raises(StructureError, match=r"needs at least [\d,]+ atoms .*limit of 5,000 atoms"):
        build_vacancies(name, **request_)
    assert time.perf_counter() - start < 1.0


def test_max_atoms_limits_the_search():
    cubic = build_crystal("CsPbBr3-cubic")
    assert len(build_supercell(cubic, 14, max_atoms=60).atoms) == 60  # 12 cells are needed
    with pytest.raises(StructureError, match="no supercell with image distance >= 14 A"):
        build_supercell(cubic, 14, max_atoms=59)  # passes the packing bound (45), search fails
    with pytest.raises(StructureError, match="needs at least 45 atoms"):
        build_supercell(cubic, 14, max_atoms=44)
    big = build_vacancies("Cs4PbBr6", 60, charges=(0,))  # near the 5000-atom default
    assert len(big[0].atoms) < 5000 and big[0].metadata["image_distance_A"] >= 60


@pytest.mark.parametrize("kwargs,match", [
    ({"min_image_distance_A": float("nan")}, "finite"),
    ({"min_image_distance_A": float("inf")}, "finite"),
    ({"min_image_distance_A": -5.0}, "finite number > 0"),
    ({"min_image_distance_A": 0.0}, "finite number > 0"),
    ({"target_atoms": 0}, ">= 1"),
    ({"target_atoms": -10}, ">= 1"),
    ({"target_atoms": 2.5}, "whole number"),
    ({"target_atoms": True}, "whole number"),
    ({"min_image_distance_A": 12, "target_atoms": 100}, "exactly one"),
    ({"min_image_distance_A": 12, "max_atoms": 0}, "max_atoms"),
    ({"charges": (1, 1)}, "given twice"),
    ({"charges": (0.5,)}, "whole number"),
    ({"charges": (5,)}, "exceeds 4"),
    ({"charges": ()}, "no charge"),
    ({"charges": "1,0"}, "list of integers"),
])
def test_bad_sizes_and_charges_are_refused(kwargs, match):
    with pytest.raises(StructureError, match=match):
        build_vacancies("CsPbBr3-cubic", **kwargs)
