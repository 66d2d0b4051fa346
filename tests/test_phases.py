"""Competing phases of the Cs-Pb-Br system: shipped structures, provenance, metadata, bad input."""

from __future__ import annotations

import tomllib
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list
from pymatgen.core import Composition
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from perovdefect.errors import StructureError
from perovdefect.structures import PHASES, build_phase
from perovdefect.structures.record import read_structure
from perovdefect.structures.phases import (SPECS, SYMMETRY_BUILDS, phase_formula, shipped_phases,
                                           symmetry_build)

#: Expected space groups (international symbols; Cmce was written Cmca before 2002).
SPACE_GROUPS = {"Cs": {"Im-3m"}, "Pb": {"Fm-3m"}, "Br2-solid": {"Cmce", "Cmca"},
                "CsBr": {"Pm-3m"}, "PbBr2": {"Pnma"}, "CsPbBr3": {"Pnma"},
                "Cs4PbBr6": {"R-3c"}, "CsPb2Br5": {"I4/mcm"}}
FORMULAS = {"Cs": "Cs", "Pb": "Pb", "Br2": "Br2", "Br2-solid": "Br2", "CsBr": "CsBr",
            "PbBr2": "PbBr2", "CsPbBr3": "CsPbBr3", "Cs4PbBr6": "Cs4PbBr6", "CsPb2Br5": "CsPb2Br5"}
SHIPPED = {"Cs", "Pb", "Br2", "Br2-solid", "CsBr", "PbBr2", "CsPbBr3", "Cs4PbBr6"}
NOT_SHIPPED = set(PHASES) - SHIPPED
#: Shortest distance (A) between the species pair, range accepted (PBE cells or experimental a).
NEAREST = {"Cs": {("Cs", "Cs"): (5.0, 5.6)},  # bcc: a*sqrt(3)/2, a = 5.8-6.2 A
           "Pb": {("Pb", "Pb"): (3.3, 3.7)},  # fcc: a/sqrt(2), a = 4.95 A
           "Br2-solid": {("Br", "Br"): (2.2, 2.45)},  # the Br2 bond
           "CsBr": {("Cs", "Br"): (3.4, 4.2)},  # a*sqrt(3)/2, a = 4.291 A (experimental)
           "PbBr2": {("Pb", "Br"): (2.8, 3.4)},
           "CsPbBr3": {("Pb", "Br"): (2.8, 3.2), ("Cs", "Br"): (3.4, 4.0)},
           "Cs4PbBr6": {("Pb", "Br"): (2.8, 3.2), ("Cs", "Br"): (3.4, 4.0)}}
PERIODIC = sorted(SHIPPED - {"Br2"})
#: Ionic crystals: no two atoms closer than this (A); not the molecular Br2 solid (2.39 A bond).
IONIC_MIN_DISTANCE_A = 2.5
IONIC = ("CsBr", "PbBr2", "CsPbBr3", "Cs4PbBr6")
#: Measured densities (g/cm3) of the phases built by symmetry, a 10 % sanity check of their cells:
#: CsBr 4.43 (Wikipedia "Caesium bromide" infobox, CRC Handbook); PbBr2 6.66 (Wikipedia
#: "Lead(II) bromide" infobox, CRC Handbook 87th ed.); see data/structures/phases/SOURCES.txt.
MEASURED_DENSITY_G_CM3 = {"CsBr": 4.43, "PbBr2": 6.66}


def shortest(atoms, a: str, b: str, cutoff: float = 7.0) -> float:
    sym = np.array(atoms.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    mask = (sym[i] == a) & (sym[j] == b)
    return float(d[mask].min())


def spacegroup(record, symprec: float = 1e-3) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SpacegroupAnalyzer(record.to_pymatgen(), symprec=symprec).get_space_group_symbol()


def test_phase_list_and_what_is_shipped():
    assert PHASES == ("Cs", "Pb", "Br2", "Br2-solid", "CsBr", "PbBr2", "CsPbBr3", "Cs4PbBr6",
                      "CsPb2Br5")
    assert set(SPECS) == set(PHASES)
    assert set(shipped_phases()) == SHIPPED
    for name in PHASES:
        assert phase_formula(name) == FORMULAS[name]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_phase_builds_neutral_with_formula_units(name):
    rec = build_phase(name)
    meta = rec.metadata
    assert meta["name"] == meta["phase"] == name and meta["charge"] == 0
    assert meta["formula"] == FORMULAS[name] == phase_formula(name)
    units = meta["formula_units"]
    assert isinstance(units, int) and units >= 1
    assert Composition(rec.atoms.get_chemical_formula()) == Composition(meta["formula"]) * units
    symbols = rec.atoms.get_chemical_symbols()
    assert meta["electrons_total"] == sum(atomic_numbers[s] for s in symbols)
    assert meta["metallic"] is (name in ("Cs", "Pb"))
    # metals are not spin-polarised (smearing fills an odd count); insulators by parity
    assert meta["spin_multiplicity"] == (1 if meta["metallic"] or
                                         meta["valence_electrons"] % 2 == 0 else 2)
    assert meta["source"]
    assert not np.isnan(rec.atoms.positions).any()


@pytest.mark.parametrize("name", PERIODIC)
def test_crystals_are_primitive_with_expected_space_group(name):
    rec = build_phase(name)
    assert all(rec.atoms.pbc) and not rec.is_cluster and rec.metadata["kind"] == "crystal"
    assert spacegroup(rec) in SPACE_GROUPS[name]
    assert spacegroup(rec, 0.05) in SPACE_GROUPS[name]  # not a fragile near-symmetry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        primitive = SpacegroupAnalyzer(rec.to_pymatgen(), symprec=1e-3).find_primitive()
    assert len(rec.atoms) == len(primitive)
    assert rec.metadata["space_group_symbol"] in SPACE_GROUPS[name]


def test_atoms_per_primitive_cell():
    counts = {name: len(build_phase(name).atoms) for name in SHIPPED}
    assert counts == {"Cs": 1, "Pb": 1, "Br2": 2, "Br2-solid": 4, "CsBr": 2, "PbBr2": 12,
                      "CsPbBr3": 20, "Cs4PbBr6": 22}


@pytest.mark.parametrize("name", sorted(NEAREST))
def test_nearest_neighbour_distances_are_sane(name):
    rec = build_phase(name)
    for (a, b), (lo, hi) in NEAREST[name].items():
        assert lo <= shortest(rec.atoms, a, b) <= hi, (name, a, b)
    _, _, d = neighbor_list("ijd", rec.atoms, 2.0)
    assert len(d) == 0  # no two atoms closer than 2 A


@pytest.mark.parametrize("name", IONIC)
def test_ionic_crystals_have_no_close_contacts(name):
    _, _, d = neighbor_list("ijd", build_phase(name).atoms, IONIC_MIN_DISTANCE_A)
    assert len(d) == 0


@pytest.mark.parametrize("name", sorted(SYMMETRY_BUILDS))
def test_symmetry_built_phases_match_their_cited_parameters(name):
    """The shipped CIF is the cell ase.spacegroup.crystal builds from the cited parameters, with
    the cited composition per formula unit, its experimental lattice and a density within 10 % of
    the measured one."""
    build = SYMMETRY_BUILDS[name]
    spec = SPECS[name]
    assert spec.origin == "cif" and spec.cif == build.cif and spec.lattice == "experimental"
    assert spec.source == build.source
    fresh = symmetry_build(name)
    folder = resources.files("perovdefect.data") / "structures" / "phases"
    with resources.as_file(folder / build.cif) as path:
        shipped = read_structure(path).atoms
    assert np.allclose(shipped.cell.cellpar(), build.cellpar, atol=1e-6)
    assert np.allclose(shipped.cell.cellpar(), fresh.cell.cellpar(), atol=1e-6)
    assert sorted(shipped.get_chemical_symbols()) == sorted(fresh.get_chemical_symbols())
    for sym in set(fresh.get_chemical_symbols()):  # same fractional sites, element by element
        a = shipped.get_scaled_positions()[np.array(shipped.get_chemical_symbols()) == sym]
        b = fresh.get_scaled_positions()[np.array(fresh.get_chemical_symbols()) == sym]
        diff = a[:, None, :] - b[None, :, :]
        diff -= np.round(diff)
        assert np.all(np.linalg.norm(diff, axis=2).min(axis=1) < 1e-6), (name, sym)
    rec = build_phase(name)
    assert rec.metadata["lattice"] == "experimental"
    units = rec.metadata["formula_units"]
    assert Composition(rec.atoms.get_chemical_formula()) == Composition(name) * units
    density = rec.to_pymatgen().density
    assert abs(density / MEASURED_DENSITY_G_CM3[name] - 1) < 0.10, (name, density)


def test_phases_built_by_symmetry_are_exactly_csbr_and_pbbr2():
    assert set(SYMMETRY_BUILDS) == {"CsBr", "PbBr2"}
    with pytest.raises(StructureError, match="not built by symmetry"):
        symmetry_build("CsPbBr3")
    with pytest.raises(StructureError, match="unknown phase"):
        symmetry_build("CsI")


def test_solid_br2_is_a_molecular_crystal():
    atoms = build_phase("Br2-solid").atoms
    i, d = neighbor_list("id", atoms, 5.0)
    first = [np.sort(d[i == k])[:2] for k in range(len(atoms))]
    # every Br has exactly one partner at the bond length; the next contact is >= 0.5 A longer
    assert all(2.2 < bond < 2.45 and nxt > bond + 0.5 for bond, nxt in first)


def test_br2_molecule_is_isolated_in_its_box():
    rec = build_phase("Br2")
    atoms = rec.atoms
    assert not any(atoms.pbc) and rec.is_cluster and rec.metadata["kind"] == "cluster"
    assert atoms.get_chemical_symbols() == ["Br", "Br"]
    assert np.allclose(atoms.cell.array, np.eye(3) * 12.0)
    bond = atoms.get_distance(0, 1)
    assert 2.2 < bond < 2.45 and bond == pytest.approx(rec.metadata["bond_length_A"], abs=1e-4)
    assert bond == pytest.approx(shortest(build_phase("Br2-solid").atoms, "Br", "Br"), abs=1e-6)
    extent = atoms.positions.max(axis=0) - atoms.positions.min(axis=0)
    vacuum = (atoms.cell.lengths() - extent).min()
    assert vacuum >= 9.0 and vacuum == pytest.approx(rec.metadata["vacuum_A"], abs=1e-3)
    assert np.allclose(atoms.positions.mean(axis=0), atoms.cell.lengths() / 2)
    assert rec.metadata["formula_units"] == 1 and rec.metadata["spin_multiplicity"] == 1
    mol = rec.to_pymatgen()
    assert mol.charge == 0 and mol.spin_multiplicity == 1
    big = build_phase("Br2", box_A=20.0).atoms
    assert np.allclose(big.cell.lengths(), 20.0) and big.get_distance(0, 1) == pytest.approx(bond)


@pytest.mark.parametrize("box", [2.0, 3.0, -5.0, float("nan")])
def test_br2_box_too_small_is_a_structure_error(box):
    with pytest.raises(StructureError, match="box_A"):
        build_phase("Br2", box_A=box)


@pytest.mark.parametrize("name", sorted(NOT_SHIPPED))
def test_phases_without_a_citable_file_raise_a_clear_error(name):
    with pytest.raises(StructureError) as info:
        build_phase(name)
    msg = str(info.value)
    assert "\n" not in msg and name in msg and "no structure shipped" in msg
    assert phase_formula(name) == FORMULAS[name]  # still usable on the phase diagram


@pytest.mark.parametrize("bad", ["CsI", "", "Br", "PbBr", "cspbbr3-cubic"])
def test_unknown_phase_is_one_structure_error_listing_known_names(bad):
    with pytest.raises(StructureError) as info:
        build_phase(bad)
    msg = str(info.value)
    assert "\n" not in msg and "unknown phase" in msg
    assert all(name in msg for name in PHASES)
    with pytest.raises(StructureError):
        phase_formula(bad)


def test_names_are_case_insensitive_and_builds_are_fresh_copies():
    a = build_phase("cspbbr3")
    assert a.metadata["name"] == "CsPbBr3"
    a.atoms.positions += 1.0
    a.metadata["charge"] = 5
    b = build_phase("CsPbBr3")
    assert b.metadata["charge"] == 0 and not np.allclose(a.atoms.positions, b.atoms.positions)


def test_shipped_files_have_provenance_and_are_packaged():
    folder = resources.files("perovdefect.data") / "structures" / "phases"
    sources = (folder / "SOURCES.txt").read_text()
    cifs = sorted(p.name for p in folder.iterdir() if p.name.endswith(".cif"))
    assert cifs == sorted(s.cif for s in SPECS.values() if s.cif)
    for cif in cifs:
        assert cif in sources
    assert "mp-1" in sources and "mp-23154" in sources and "e0f220111f5a" in sources
    # the symmetry-built CIFs: every parameter value and its source named in SOURCES.txt
    assert "02791649df47eb9ef0baac436eb280683f09f1ca" in sources and "A2B_oP12_62_2c_c" in sources
    assert "AB_cP2_221_b_a" in sources and "Caesium_bromide" in sources and "PbBr2" in sources
    for build in SYMMETRY_BUILDS.values():
        for value in build.cellpar[:3]:
            assert f"{value:g}" in sources, value
        for site in build.basis:
            for value in site:
                if value not in (0.0, 0.25, 0.5):
                    assert f"{value:g}" in sources, value
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["perovdefect.data"]
    assert "structures/phases/*.cif" in globs and "structures/phases/SOURCES.txt" in globs
