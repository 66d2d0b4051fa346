"""Issue 18, item 1: V_Br supercells from the primitive cell (Cs4PbBr6: 22, 44, 66, ... atoms)
with the conventional cell's Wyckoff labels and multiplicities, checked against pymatgen's
symmetry analysis (SpacegroupAnalyzer) and the local environment of the removed site."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.errors import StructureError
from perovdefect.structures import build_crystal, build_vacancies, image_distance
from perovdefect.structures.primitive import primitive_cell
from perovdefect.structures.vacancies import build_host, supercell_site
from perovdefect.workflows.builder import model_records
from perovdefect.workflows.spec import ModelSpec

CRYSTALS = ("Cs4PbBr6", "CsPbBr3-Pnma", "CsPbBr3-cubic")
#: atoms in the primitive cell: R-3c hexagonal (66) is 3 rhombohedral cells; the perovskites
#: are primitive already
PRIMITIVE_ATOMS = {"Cs4PbBr6": 22, "CsPbBr3-Pnma": 20, "CsPbBr3-cubic": 5}
#: supercells whose lattice keeps the crystal's whole point group: the conventional cells and
#: the 9.5 A cells (Cs4PbBr6: the primitive cell; Pnma: 2 cells; cubic: the bcc 2x cell)
FULL_SYMMETRY = {(name, None): True for name in PRIMITIVE_ATOMS} | {
    ("Cs4PbBr6", 9.5): True, ("CsPbBr3-Pnma", 9.5): True, ("CsPbBr3-cubic", 9.5): True}


def symmetrized(record):
    """pymatgen's symmetrized structure of a periodic record (independent of the code tested)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    return SpacegroupAnalyzer(record.to_pymatgen(), symprec=1e-3).get_symmetrized_structure()


def orbit_of(sym, index: int) -> tuple[str, list[int]]:
    """(Wyckoff label, member indices) of the orbit of site `index` in a symmetrized structure."""
    for group, wyckoff in zip(sym.equivalent_indices, sym.wyckoff_symbols):
        if index in group:
            return wyckoff, list(group)
    raise AssertionError(f"site {index} in no orbit")


def orbit_members(sym, index: int) -> list[int]:
    return orbit_of(sym, index)[1]


def conventional_index(crystal, atoms) -> np.ndarray:
    """For every atom of a supercell, the conventional-cell atom at its position modulo the
    conventional lattice (same species asserted)."""
    from ase.geometry import get_distances
    _, d = get_distances(atoms.positions, crystal.atoms.positions, cell=crystal.atoms.cell,
                         pbc=True)
    index = d.argmin(axis=1)
    assert d.min(axis=1).max() < 1e-3
    assert [crystal.atoms[i].symbol for i in index] == atoms.get_chemical_symbols()
    return index


def environment(atoms, index: int, cutoff_A: float = 7.0) -> list[tuple[str, float]]:
    """Sorted (species, distance in A) of every neighbour of site `index` within cutoff_A,
    periodic images counted (ASE neighbour list)."""
    i, j, d = neighbor_list("ijd", atoms, cutoff_A)
    sym = atoms.get_chemical_symbols()
    return sorted((sym[b], round(float(x), 3)) for a, b, x in zip(i, j, d) if a == index)


def test_cli_gives_the_21_atom_cs4pbbr6_vacancy_cell_at_9p5_A():
    r = CliRunner().invoke(main, ["build", "vacancies", "Cs4PbBr6", "--min-image-distance",
                                  "9.5", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [s["charge"] for s in summary] == [1, 0, -1]
    for s in summary:
        assert s["n_atoms"] == 21 and s["formula"] == "Cs8Pb2Br11"
        assert s["image_distance_A"] >= 9.5
        assert (s["wyckoff"], s["multiplicity"], s["supercell_multiplicity"]) == ("36f", 36, 12)
        assert s["supercell_of"] == "primitive" and s["n_unit_cells"] == 1
        assert s["primitive_to_conventional"] == [[1, -1, 0], [0, 1, -1], [1, 1, 1]]
    text = CliRunner().invoke(main, ["build", "vacancies", "Cs4PbBr6", "--min-image-distance",
                                     "9.5", "--charges", "0"])
    assert text.exit_code == 0 and "21 atoms (1 x primitive cell)" in text.stdout


def test_cs4pbbr6_primitive_cell_is_the_rhombohedral_cell_of_pymatgen():
    """22 atoms, a = 9.88 A, alpha = 88.9 deg: the same lattice as pymatgen's primitive standard
    structure (an independent implementation), a third of the hexagonal cell's volume."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    crystal = build_crystal("Cs4PbBr6")
    prim = primitive_cell(crystal)
    ref = SpacegroupAnalyzer(crystal.to_pymatgen(), symprec=1e-3) \
        .get_primitive_standard_structure()
    atoms = prim.record.atoms
    assert len(atoms) == len(ref) == 22
    assert atoms.cell.cellpar() == pytest.approx([*ref.lattice.abc, *ref.lattice.angles],
                                                 abs=1e-4)
    assert atoms.cell.cellpar()[0] == pytest.approx(9.88, abs=0.01)
    assert atoms.cell.cellpar()[3] == pytest.approx(88.9, abs=0.05)
    assert atoms.get_volume() == pytest.approx(crystal.atoms.get_volume() / 3)
    assert np.allclose(prim.to_conventional @ atoms.cell.array, crystal.atoms.cell.array,
                       atol=1e-8)
    from perovdefect.structures import space_group
    assert space_group(atoms)[0] == 167
    assert prim.record.metadata["Z"] == 2
    assert atoms.get_chemical_formula() == "Br12Cs8Pb2"


@pytest.mark.parametrize("name", CRYSTALS)
def test_primitive_cells_of_the_perovskites_are_the_cells_themselves(name):
    crystal = build_crystal(name)
    prim = primitive_cell(crystal)
    assert len(prim.record.atoms) == PRIMITIVE_ATOMS[name]
    if PRIMITIVE_ATOMS[name] == len(crystal.atoms):
        assert np.array_equal(prim.to_conventional, np.eye(3))
        assert np.allclose(prim.record.atoms.positions, crystal.atoms.positions)


@pytest.mark.parametrize("d", [None, 9.5, 14.0])
@pytest.mark.parametrize("name", CRYSTALS)
def test_labels_multiplicities_and_removed_site_against_pymatgen(name, d):
    """Labels and multiplicities equal pymatgen's analysis of the conventional cell; the removed
    site is in the same orbit of the host supercell (same Wyckoff letter, orbit size =
    supercell_multiplicity) and has the representative site's local environment."""
    crystal = build_crystal(name)
    conv = symmetrized(crystal)
    expected = {w: len(g) for g, w in zip(conv.equivalent_indices, conv.wyckoff_symbols)
                if crystal.atoms[g[0]].symbol == "Br"}
    host = build_host(name, d)
    recs = build_vacancies(name, d, charges=(0,))
    assert {r.metadata["wyckoff"]: r.metadata["multiplicity"] for r in recs} == expected
    host_sym = symmetrized(host)
    for r in recs:
        m = r.metadata
        assert m["supercell_of"] == "primitive"
        assert len(host.atoms) == m["n_unit_cells"] * PRIMITIVE_ATOMS[name] == len(r.atoms) + 1
        if d is not None:
            assert m["image_distance_A"] >= d
        assert m["image_distance_A"] == pytest.approx(image_distance(r.atoms.cell.array),
                                                      abs=1e-3)
        k = m["supercell_site_index"]
        assert host.atoms[k].symbol == "Br"
        assert np.allclose(host.atoms.positions[k], m["vacancy_position_A"], atol=1e-4)
        # the defect cell is the host without atom k
        keep = [i for i in range(len(host.atoms)) if i != k]
        assert np.allclose(r.atoms.positions, host.atoms.positions[keep])
        assert conv.wyckoff_symbols[[i for i, g in enumerate(conv.equivalent_indices)
                                     if m["site_index"] in g][0]] == m["wyckoff"]
        # count: host atoms on the conventional orbit (position modulo the conventional lattice)
        in_orbit = np.flatnonzero(np.isin(conventional_index(crystal, host.atoms),
                                          orbit_members(conv, m["site_index"])))
        assert k in in_orbit and len(in_orbit) == m["supercell_multiplicity"]
        assert m["supercell_multiplicity"] * len(crystal.atoms) == \
            m["multiplicity"] * len(host.atoms)  # the same sites per volume
        # symmetry of the supercell itself (spglib keeps only operations that map its lattice
        # onto itself): the removed site's orbit lies inside the crystal orbit, with the same
        # Wyckoff letter, and is all of it when the supercell keeps the full point group
        wyckoff, group = orbit_of(host_sym, k)
        assert wyckoff[-1] == m["wyckoff"][-1]
        assert set(group) <= set(in_orbit.tolist())
        if FULL_SYMMETRY.get((name, d)):
            assert len(group) == m["supercell_multiplicity"]
        assert environment(host.atoms, k) == environment(crystal.atoms, m["site_index"])
    # every Br of the host belongs to exactly one of the orbits
    assert sum(r.metadata["supercell_multiplicity"] for r in recs) == \
        host.atoms.get_chemical_symbols().count("Br")


def test_cs4pbbr6_offers_22_44_66_atom_cells():
    sizes = {}
    for target in (22, 44, 66, 88):
        rec = build_vacancies("Cs4PbBr6", target_atoms=target, charges=(0,))[0]
        sizes[target] = len(rec.atoms) + 1
        assert rec.metadata["n_unit_cells"] == target // 22
        assert rec.metadata["supercell_multiplicity"] == 12 * (target // 22)
    assert sizes == {22: 22, 44: 44, 66: 66, 88: 88}
    # larger distances: 44 atoms from 9.9 A to the hexagonal a (13.85 A), then 88
    for d, n in [(9.88, 22), (12.0, 44), (13.8, 44), (13.9, 88)]:
        rec = build_vacancies("Cs4PbBr6", d, charges=(0,))[0]
        assert len(rec.atoms) + 1 == n and rec.metadata["image_distance_A"] >= d


def test_the_conventional_cell_stays_the_default():
    crystal = build_crystal("Cs4PbBr6")
    host = build_host("Cs4PbBr6")
    assert np.allclose(host.atoms.positions, crystal.atoms.positions)
    assert np.allclose(host.atoms.cell.array, crystal.atoms.cell.array)
    prim = primitive_cell(crystal).record.atoms.cell.array
    assert np.allclose(np.array(host.metadata["supercell_matrix"]) @ prim, crystal.atoms.cell.array)
    assert host.metadata["n_unit_cells"] == 3
    (rec,) = build_vacancies("Cs4PbBr6", charges=(0,))
    assert len(rec.atoms) == 65 and rec.metadata["supercell_multiplicity"] == 36


def test_campaign_supercell_models_use_the_primitive_cells():
    host, defects = model_records(ModelSpec(compound="Cs4PbBr6", model="supercell",
                                            min_image_distance_A=9.5, charges=[0, 1]))
    assert len(host.atoms) == 22 and host.metadata["supercell_of"] == "primitive"
    assert [len(r.atoms) for _, r in defects] == [21, 21]
    for _, r in defects:
        assert np.allclose(r.atoms.cell.array, host.atoms.cell.array)


def test_a_wrong_site_mapping_is_refused(monkeypatch):
    """The safety checks: a supercell of another cell, or spglib groups that are not lattice
    translates of one site, raise StructureError instead of removing a wrong atom."""
    host = build_host("Cs4PbBr6", 12.0)
    other = primitive_cell(build_crystal("Cs4PbBr6", "experimental")).record  # scaled lattice
    with pytest.raises(StructureError, match="copies in the supercell"):
        supercell_site(host, other, 10)
    import perovdefect.structures.primitive as primitive
    real = primitive.primitive_lattice

    def shuffled(atoms):
        prim, M, mapping = real(atoms)
        return prim, M, np.roll(mapping, 1)
    monkeypatch.setattr(primitive, "primitive_lattice", shuffled)
    with pytest.raises(StructureError, match="conventional copies"):
        primitive_cell(build_crystal("Cs4PbBr6"))
