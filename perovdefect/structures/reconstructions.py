"""Name the bonding reconstruction around a relaxed defect (Pb-Pb dimer, Br3 unit) from its final
bond lengths.

A homonuclear pair counts as bonded when its distance is below BOND_TOLERANCE x twice the
element's covalent radius (pymatgen's CovalentRadius table, the radii ShakeNBreak's Dimer
distortion uses): Pb-Pb < 1.25 x 2.92 = 3.65 A (Pb2 2.93 A, metallic Pb 3.50 A; in the hosts
Pb-Pb >= 5.9 A), Br-Br < 1.25 x 2.40 = 3.00 A (Br2 2.28 A, Br3- 2.5-2.9 A; host Br-Br >= 4.1 A).
Bonded atoms within `radius_A` of the defect form clusters (connected components): two Pb are a
"Pb-Pb dimer", three Br a "Br3 unit", two Br a "Br2 dimer", n atoms otherwise "Br4 cluster" etc.

Units: lengths in Angstrom (A).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

#: Elements whose homonuclear bonds mark a reconstruction in these halides.
BONDING_ELEMENTS: tuple[str, ...] = ("Pb", "Br")
#: A pair is bonded below this factor times the sum of covalent radii.
BOND_TOLERANCE = 1.25
#: Clusters are looked for within this distance (A) of the defect position.
SEARCH_RADIUS_A = 6.0
_NAMES = {("Pb", 2): "Pb-Pb dimer", ("Br", 2): "Br2 dimer", ("Br", 3): "Br3 unit"}


@dataclass(frozen=True)
class Reconstruction:
    """One bonded homonuclear cluster near a defect: name, atom indices, bond lengths (A)."""

    name: str
    element: str
    indices: tuple[int, ...]
    bond_lengths_A: tuple[float, ...]


def bond_cutoff_A(element: str, tolerance: float = BOND_TOLERANCE) -> float:
    """Largest distance (A) counted as an `element`-`element` bond."""
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
    return tolerance * 2.0 * float(CovalentRadius.radius[element])


def find_reconstructions(atoms: Atoms, defect_position_A: Sequence[float],
                         radius_A: float = SEARCH_RADIUS_A,
                         tolerance: float = BOND_TOLERANCE) -> list[Reconstruction]:
    """Bonded homonuclear clusters (BONDING_ELEMENTS) with an atom within `radius_A` (A,
    minimum image) of `defect_position_A`; ASE's neighbour list and scipy's connected
    components."""
    from ase.geometry import get_distances
    from ase.neighborlist import neighbor_list
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    symbols = np.array(atoms.get_chemical_symbols())
    _, near = get_distances(np.asarray(defect_position_A, float)[None], atoms.positions,
                            cell=atoms.cell, pbc=atoms.pbc)
    out = []
    for el in BONDING_ELEMENTS:
        if el not in symbols:
            continue
        cutoffs = {(el, el): bond_cutoff_A(el, tolerance)}
        i, j, d = neighbor_list("ijd", atoms, cutoffs)
        n = len(atoms)
        graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
        _, label = connected_components(graph, directed=False)
        for lab in np.unique(label[i]) if len(i) else []:
            members = np.flatnonzero(label == lab)
            if near[0, members].min() > radius_A:
                continue
            bonds = sorted({round(float(dd), 4) for a, b, dd in zip(i, j, d)
                            if label[a] == lab and a < b})
            name = _NAMES.get((el, len(members)), f"{el}{len(members)} cluster")
            out.append(Reconstruction(name, el, tuple(int(m) for m in members), tuple(bonds)))
    return out


def reconstruction_name(atoms: Atoms, defect_position_A: Sequence[float],
                        radius_A: float = SEARCH_RADIUS_A,
                        tolerance: float = BOND_TOLERANCE) -> str:
    """Name of the reconstruction near the defect: "Pb-Pb dimer", "Br3 unit", ... (joined by
    " + " when several), or "none"."""
    found = find_reconstructions(atoms, defect_position_A, radius_A, tolerance)
    return " + ".join(r.name for r in found) or "none"

