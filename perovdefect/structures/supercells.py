"""Supercells by minimum periodic-image distance or atom-count target (pymatgen / ASE searches)."""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.build import find_optimal_cell_shape, make_supercell

from perovdefect.errors import StructureError
from perovdefect.structures.record import StructureRecord


def image_distance(cell: np.ndarray) -> float:
    """Shortest distance (A) between a point and its periodic images: min |n1 a1 + n2 a2 + n3 a3|.

    The cell is Minkowski/Niggli reduced first (ASE), after which |n_i| <= 1 is sufficient.
    """
    from ase.geometry import minkowski_reduce
    reduced, _ = minkowski_reduce(np.asarray(cell, dtype=float))
    best = np.inf
    for n in itertools.product((-1, 0, 1), repeat=3):
        if n == (0, 0, 0):
            continue
        best = min(best, float(np.linalg.norm(np.asarray(n) @ reduced)))
    return best


def supercell_matrix(atoms: Atoms, min_image_distance_A: float | None = None,
                     target_atoms: int | None = None, max_atoms: int = 2000) -> np.ndarray:
    """Integer transformation matrix P (supercell = P @ cell).

    min_image_distance_A: pymatgen's CubicSupercellTransformation search for the most cubic
    supercell whose images are at least this far apart. target_atoms: ASE's
    find_optimal_cell_shape for about that many atoms (simple-cubic target shape).
    """
    if (min_image_distance_A is None) == (target_atoms is None):
        raise StructureError("give exactly one of min_image_distance_A or target_atoms")
    if min_image_distance_A is not None:
        if min_image_distance_A <= 0:
            raise StructureError("min_image_distance_A must be positive")
        if image_distance(atoms.cell.array) >= min_image_distance_A:
            return np.eye(3, dtype=int)
        from pymatgen.io.ase import AseAtomsAdaptor
        from pymatgen.transformations.advanced_transformations import (
            CubicSupercellTransformation)
        trans = CubicSupercellTransformation(min_length=min_image_distance_A,
                                             max_atoms=max_atoms, force_diagonal=False)
        try:
            trans.apply_transformation(AseAtomsAdaptor.get_structure(atoms))
        except Exception as exc:
            raise StructureError(f"no supercell with image distance >= {min_image_distance_A} A "
                                 f"and <= {max_atoms} atoms: {exc}") from exc
        return np.asarray(trans.transformation_matrix, dtype=int)
    assert target_atoms is not None
    n_cells = max(1, int(round(target_atoms / len(atoms))))
    if n_cells == 1:
        return np.eye(3, dtype=int)
    return np.asarray(find_optimal_cell_shape(atoms.cell, n_cells, "sc", verbose=False), dtype=int)


def build_supercell(record: StructureRecord, min_image_distance_A: float | None = None,
                    target_atoms: int | None = None) -> StructureRecord:
    """Supercell of a crystal record; metadata gains the matrix and the image distance (A)."""
    if record.is_cluster:
        raise StructureError("supercells need a periodic structure, got a cluster")
    P = supercell_matrix(record.atoms, min_image_distance_A, target_atoms)
    atoms = make_supercell(record.atoms, P, wrap=True) if not np.array_equal(
        P, np.eye(3)) else record.atoms.copy()
    factor = int(round(abs(np.linalg.det(P))))
    meta = dict(record.metadata)
    meta.update({"kind": "supercell", "supercell_matrix": P.tolist(),
                 "image_distance_A": round(image_distance(atoms.cell.array), 4),
                 "electrons_total": meta["electrons_total"] * factor,
                 "valence_electrons": meta["valence_electrons"] * factor,
                 "Z": meta.get("Z", 0) * factor})
    return StructureRecord(atoms, meta)
