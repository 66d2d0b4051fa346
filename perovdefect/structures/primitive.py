"""The primitive cell of a crystal (spglib) and its mapping onto the conventional cell.

Units: lengths in Angstrom (A).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms

from perovdefect.errors import StructureError
from perovdefect.structures.crystals import SYMPREC
from perovdefect.structures.electrons import electron_counts, spin_multiplicity
from perovdefect.structures.record import StructureRecord

#: Two positions closer than this (A) modulo the primitive lattice are one site.
SITE_TOL_A = 1e-3


@dataclass(frozen=True)
class PrimitiveCell:
    """A primitive cell whose atoms are lattice translates of conventional-cell atoms.

    record: the primitive cell (same Cartesian frame as the conventional cell).
    to_conventional: integer matrix M with conventional lattice = M @ primitive lattice (rows are
    lattice vectors), det M = conventional atoms / primitive atoms > 0.
    site_map: conventional atom index -> primitive atom index (the same site up to a primitive
    lattice translation).
    """

    record: StructureRecord
    to_conventional: np.ndarray
    site_map: tuple[int, ...]

    @property
    def n_per_conventional(self) -> int:
        """Primitive cells per conventional cell (det M)."""
        return int(round(abs(np.linalg.det(self.to_conventional))))


def primitive_lattice(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(primitive lattice (A, rows), integer M with cell = M @ primitive, conventional index ->
    spglib's primitive index).

    The lattice is spglib's standard primitive basis in the input frame (standardize_cell with
    to_primitive and no_idealize; for R-3c the obverse rhombohedral vectors, M = [[1,-1,0],
    [0,1,-1],[1,1,1]]); which atoms are translates of each other comes from spglib's
    mapping_to_primitive. A cell that is already primitive keeps its own lattice (M = identity),
    so its supercells are unchanged.
    """
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    dataset = spglib.get_symmetry_dataset(cell, symprec=SYMPREC)
    if dataset is None:
        raise StructureError("spglib could not determine the symmetry (primitive cell)")
    mapping = np.asarray(dataset.mapping_to_primitive, dtype=int)
    if len(set(mapping.tolist())) == len(atoms):
        return atoms.cell.array.copy(), np.eye(3, dtype=int), np.arange(len(atoms))
    standard = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True,
                                       symprec=SYMPREC)
    if standard is None:
        raise StructureError("spglib could not find the primitive cell")
    prim = np.asarray(standard[0], dtype=float)
    if np.linalg.det(prim) < 0:  # keep a right-handed primitive basis (and det M > 0)
        prim = -prim
    M = atoms.cell.array @ np.linalg.inv(prim)
    if not np.allclose(M, np.round(M), atol=1e-6):
        raise StructureError("spglib's primitive lattice is not a sublattice of the cell "
                             f"(M = {np.round(M, 4).tolist()})")
    return prim, np.round(M).astype(int), mapping


def primitive_cell(crystal: StructureRecord) -> PrimitiveCell:
    """The primitive cell of a crystal record, built from the crystal's own atoms.

    spglib supplies the primitive lattice and which conventional atoms are translates of each
    other; the primitive atoms are the first conventional atom of each group, wrapped into the
    primitive cell (hand-written here because spglib's own primitive positions are in its order
    and carry no per-atom link to the input). Raises StructureError unless every group holds
    exactly det M atoms of one species, all at the same position modulo the primitive lattice,
    so a wrong mapping can never go unnoticed.
    """
    atoms = crystal.atoms
    prim, M, mapping = primitive_lattice(atoms)
    n_cells = int(round(np.linalg.det(M)))
    groups = sorted((np.flatnonzero(mapping == k) for k in set(mapping.tolist())),
                    key=lambda g: int(g[0]))
    frac = atoms.positions @ np.linalg.inv(prim)
    site_map = np.empty(len(atoms), dtype=int)
    for j, group in enumerate(groups):
        rep = int(group[0])
        diff = frac[group] - frac[rep]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ prim, axis=1)
        species = {atoms[i].symbol for i in group}
        if len(group) != n_cells or len(species) != 1 or dist.max() > SITE_TOL_A:
            raise StructureError(f"{crystal.name}: primitive site {j} has {len(group)} "
                                 f"conventional copies ({', '.join(sorted(species))}, spread "
                                 f"{dist.max():.2g} A), expected {n_cells} of one species")
        site_map[group] = j
    reps = [int(g[0]) for g in groups]
    if n_cells == 1:  # already primitive: the crystal's atoms as they are
        new = atoms.copy()
    else:
        new = Atoms(atoms.symbols[reps], scaled_positions=frac[reps] % 1.0, cell=prim, pbc=True)
    counts = electron_counts(new.get_chemical_symbols(), 0)
    meta = dict(crystal.metadata)
    meta.update({"cell": "primitive", "primitive_to_conventional": M.tolist(),
                 "Z": meta.get("Z", 0) // n_cells, **counts,
                 "spin_multiplicity": spin_multiplicity(counts["valence_electrons"])})
    return PrimitiveCell(StructureRecord(new, meta), M, tuple(int(j) for j in site_map))
