"""Reference crystals shipped with the package, with their space-group check (spglib)."""

from __future__ import annotations

import functools

from dataclasses import dataclass
from importlib import resources

import numpy as np
import spglib
from ase import Atoms

from perovdefect.errors import StructureError
from perovdefect.structures.electrons import electron_counts, spin_multiplicity
from perovdefect.structures.record import StructureRecord, read_structure

SYMPREC = 1e-3  # spglib tolerance (A); the shipped cells are symmetrised to better than this


@dataclass(frozen=True)
class CrystalSpec:
    """A shipped crystal: CIF file, expected space group and the experimental lattice (A, deg)."""

    name: str
    cif: str
    space_group_number: int
    space_group_symbol: str
    formula_unit: str
    experimental_abc_A: tuple[float, float, float]
    source: str


CRYSTALS: dict[str, CrystalSpec] = {
    "Cs4PbBr6": CrystalSpec("Cs4PbBr6", "Cs4PbBr6_R-3c.cif", 167, "R-3c", "Cs4PbBr6",
                            (13.73, 13.73, 17.32), "PBE-relaxed, pymatgen-generated (SOURCES.txt)"),
    "CsPbBr3-Pnma": CrystalSpec("CsPbBr3-Pnma", "CsPbBr3_Pnma.cif", 62, "Pnma", "CsPbBr3",
                                (8.24, 11.74, 8.20), "PBE-relaxed, pymatgen-generated"),
    "CsPbBr3-cubic": CrystalSpec("CsPbBr3-cubic", "CsPbBr3_Pm-3m_mp-600089.cif", 221, "Pm-3m",
                                 "CsPbBr3", (5.87, 5.87, 5.87), "Materials Project mp-600089"),
}
ALIASES = {"cspbbr3": "CsPbBr3-Pnma", "cspbbr3-orthorhombic": "CsPbBr3-Pnma",
           "cspbbr3-pm-3m": "CsPbBr3-cubic", "cs4pbbr6-r-3c": "Cs4PbBr6"}


def crystal_spec(name: str) -> CrystalSpec:
    """Look up a shipped crystal by name (case-insensitive, aliases accepted)."""
    key = {k.lower(): k for k in CRYSTALS}.get(name.lower()) or ALIASES.get(name.lower())
    if key is None:
        raise StructureError(f"unknown compound {name!r}; known: {', '.join(CRYSTALS)}")
    return CRYSTALS[key]


def space_group(atoms: Atoms, symprec: float = SYMPREC) -> tuple[int, str]:
    """(international number, symbol) of a periodic structure from spglib."""
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if dataset is None:
        raise StructureError("spglib could not determine the space group")
    return int(dataset.number), str(dataset.international)


def check_space_group(atoms: Atoms, expected: int, what: str) -> None:
    """Raise StructureError unless spglib finds space group `expected`."""
    number, symbol = space_group(atoms)
    if number != expected:
        raise StructureError(f"{what}: spglib finds space group {symbol} ({number}), "
                             f"expected {expected}")


def build_crystal(name: str, lattice: str = "pbe") -> StructureRecord:
    """A shipped crystal in its conventional cell (a fresh copy each call: the CIF is read and
    its space group checked once per process; a 5000-step campaign builds it hundreds of times).
    """
    record = _build_crystal(name, lattice)
    return record.copy()


@functools.lru_cache(maxsize=None)
def _build_crystal(name: str, lattice: str) -> StructureRecord:
    """A shipped crystal in its conventional cell.

    lattice="pbe" keeps the shipped PBE-relaxed cell; "experimental" rescales a, b, c to the
    experimental values (CrystalSpec.experimental_abc_A) keeping fractional coordinates and angles.
    The space group is checked with spglib on every build.
    """
    spec = crystal_spec(name)
    if lattice not in ("pbe", "experimental"):
        raise StructureError(f"lattice must be 'pbe' or 'experimental', got {lattice!r}")
    with resources.as_file(resources.files("perovdefect.data") / "structures" / spec.cif) as p:
        record = read_structure(p)
    atoms = record.atoms
    if lattice == "experimental":
        frac = atoms.get_scaled_positions()
        lengths = atoms.cell.lengths()
        scale = np.asarray(spec.experimental_abc_A) / lengths
        atoms.set_cell(atoms.cell.array * scale[:, None], scale_atoms=False)
        atoms.set_scaled_positions(frac)
    check_space_group(atoms, spec.space_group_number, f"{spec.name} ({lattice} lattice)")
    counts = electron_counts(atoms.get_chemical_symbols(), 0)
    formula_units = atoms.get_chemical_symbols().count("Pb")
    meta = {"name": spec.name, "kind": "crystal", "parent": spec.name, "lattice": lattice,
            "space_group_number": spec.space_group_number,
            "space_group_symbol": spec.space_group_symbol, "Z": formula_units,
            "source": spec.source, "charge": 0, **counts,
            "spin_multiplicity": spin_multiplicity(counts["valence_electrons"])}
    return StructureRecord(atoms, meta)
