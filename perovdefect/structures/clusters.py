"""Isolated cluster models: [PbBr6]4- octahedron, the Cs4PbBr6 "molecule", and cut-outs of the
crystal around an octahedron or a Br-vacancy site, each in a vacuum box.

No library builds these (doped / pymatgen-analysis-defects work with periodic supercells only),
so the geometry is written here; bond lengths come from the shipped crystal, never retyped.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from ase import Atoms

from perovdefect.errors import StructureError
from perovdefect.structures.crystals import build_crystal
from perovdefect.structures.electrons import electron_counts, formal_charge, spin_multiplicity
from perovdefect.structures.record import StructureRecord

PB_BR_BOND_RANGE_A = (2.7, 3.3)  # accepted Pb-Br bond lengths; the crystals give 2.95-3.05 A
PB_BR_CUTOFF_A = 3.6  # neighbours closer than this count as octahedral Br
DEFAULT_PADDING_A = 6.0
CLUSTER_KINDS = ("pbbr6-octahedron", "cs4pbbr6-molecule", "crystal-cutout")
#: the defects the cluster builders make (build_cluster(..., vacancy=True))
CLUSTER_DEFECTS = ("V_Br",)


@lru_cache(maxsize=4)
def _mean_distances(lattice: str) -> tuple[float, float]:
    """Mean Pb-Br bond and mean nearest Cs-Br distance (A) in the Cs4PbBr6 crystal."""
    crystal = build_crystal("Cs4PbBr6", lattice).to_pymatgen()
    pb_br, cs_br = [], []
    for site in crystal:
        if site.specie.symbol == "Pb":
            pb_br += [n.nn_distance for n in crystal.get_neighbors(site, PB_BR_CUTOFF_A)
                      if n.specie.symbol == "Br"]
        elif site.specie.symbol == "Cs":
            d = [n.nn_distance for n in crystal.get_neighbors(site, 4.5) if n.specie.symbol == "Br"]
            cs_br.append(min(d))
    return float(np.mean(pb_br)), float(np.mean(cs_br))


def _finish(atoms: Atoms, name: str, kind: str, charge: int, padding_A: float,
            extra: dict | None = None) -> StructureRecord:
    """Centre in a vacuum box, check octahedra, attach charge / electron metadata."""
    if padding_A <= 0:
        raise StructureError("padding_A must be positive")
    atoms = atoms.copy()
    atoms.pbc = False
    atoms.center(vacuum=padding_A)
    counts = electron_counts(atoms.get_chemical_symbols(), charge)
    bonds = check_octahedra(atoms)
    meta = {"name": name, "kind": "cluster", "cluster": kind, "parent": "Cs4PbBr6",
            "charge": charge, "formal_charge": formal_charge(atoms.get_chemical_symbols()),
            **counts, "spin_multiplicity": spin_multiplicity(counts["valence_electrons"]),
            "padding_A": padding_A, "pb_br_bonds_A": [round(b, 4) for b in bonds],
            "pb_coordination": coordination(atoms)}
    meta.update(extra or {})
    return StructureRecord(atoms, meta)


def coordination(atoms: Atoms) -> list[int]:
    """Number of Br within PB_BR_CUTOFF_A of each Pb (in atom order)."""
    pos, sym = atoms.positions, np.array(atoms.get_chemical_symbols())
    br = pos[sym == "Br"]
    return [int(np.sum(np.linalg.norm(br - p, axis=1) < PB_BR_CUTOFF_A)) for p in pos[sym == "Pb"]]


def check_octahedra(atoms: Atoms) -> list[float]:
    """All Pb-Br bond lengths (A); raise StructureError if any is outside PB_BR_BOND_RANGE_A or
    a Pb has fewer than 5 / more than 6 Br neighbours."""
    pos, sym = atoms.positions, np.array(atoms.get_chemical_symbols())
    br = pos[sym == "Br"]
    bonds: list[float] = []
    for p in pos[sym == "Pb"]:
        d = np.linalg.norm(br - p, axis=1)
        mine = d[d < PB_BR_CUTOFF_A]
        if not 5 <= len(mine) <= 6:
            raise StructureError(f"a Pb has {len(mine)} Br neighbours (expected 6, or 5 next "
                                 "to a vacancy)")
        lo, hi = PB_BR_BOND_RANGE_A
        if np.any(mine < lo) or np.any(mine > hi):
            raise StructureError(f"Pb-Br bond {mine.min():.3f}-{mine.max():.3f} A outside "
                                 f"{lo}-{hi} A")
        bonds += mine.tolist()
    return bonds


def pbbr6_octahedron(vacancy: bool = False, padding_A: float = DEFAULT_PADDING_A,
                     lattice: str = "pbe", charge: int = -4) -> StructureRecord:
    """Ideal O_h [PbBr6]4- (Pb-Br = the crystal's mean bond); `vacancy` removes the +x Br atom
    (a neutral atom, so [PbBr5] keeps charge -4 by default)."""
    d, _ = _mean_distances(lattice)
    axes = np.vstack([np.eye(3), -np.eye(3)])
    atoms = Atoms("Pb" + "Br6", positions=np.vstack([[0, 0, 0], d * axes]))
    if vacancy:
        del atoms[1]
    name = ("PbBr5_VBr" if vacancy else "PbBr6") + f"_q{charge:+d}"
    return _finish(atoms, name, "pbbr6-octahedron", charge, padding_A,
                   {"vacancy": vacancy, "defect": CLUSTER_DEFECTS[0] if vacancy else None})


def cs4pbbr6_molecule(vacancy: bool = False, padding_A: float = DEFAULT_PADDING_A,
                      lattice: str = "pbe", charge: int = 0) -> StructureRecord:
    """The neutral Cs4PbBr6 "molecule": the octahedron with four Cs over alternate faces (T_d).

    Each Cs sits on a body diagonal s(+-1,+-1,+-1) (even sign parity) at the crystal's mean
    nearest Cs-Br distance r from the three Br of its face: 3s^2 - 2sd + d^2 = r^2.
    `vacancy` removes the +x Br atom (V_Br, neutral atom removed, total charge kept).
    """
    d, r = _mean_distances(lattice)
    s = (d + np.sqrt(3 * r**2 - 2 * d**2)) / 3
    axes = np.vstack([np.eye(3), -np.eye(3)])
    tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    atoms = Atoms("PbBr6Cs4", positions=np.vstack([[0, 0, 0], d * axes, s * tetra]))
    if vacancy:
        del atoms[1]
    name = "Cs4PbBr6_molecule" + ("_VBr" if vacancy else "") + (f"_q{charge:+d}" if charge else "")
    return _finish(atoms, name, "cs4pbbr6-molecule", charge, padding_A,
                   {"vacancy": vacancy, "defect": CLUSTER_DEFECTS[0] if vacancy else None,
                    "cs_pb_distance_A": round(float(s * np.sqrt(3)), 4)})


def crystal_cutout(compound: str = "Cs4PbBr6", radius_A: float = 6.0, pb_index: int | None = None,
                   vacancy_site: int | None = None, padding_A: float = DEFAULT_PADDING_A,
                   lattice: str = "pbe", charge: int | None = None) -> StructureRecord:
    """A cluster cut from the crystal around one octahedron.

    The centre is Pb `pb_index` (default: the first Pb) or, with `vacancy_site` (a Br index of the
    unit cell), the Pb bonded to that Br, which is then removed. Every Pb within `radius_A` of the
    centre is kept with all its Br (whole octahedra), plus every Cs within `radius_A`. The net
    formal charge (Cs+, Pb2+, Br-) is reported; `charge` (default: the formal charge of the pristine
    cut-out, so a vacancy removes a neutral Br atom) sets the electron count.
    """
    crystal = build_crystal(compound, lattice)
    structure = crystal.to_pymatgen()
    symbols = crystal.atoms.get_chemical_symbols()
    if vacancy_site is not None:
        if not 0 <= vacancy_site < len(symbols):
            raise StructureError(f"site index {vacancy_site} out of range (0..{len(symbols) - 1})")
        if symbols[vacancy_site] != "Br":
            raise StructureError(f"site {vacancy_site} is {symbols[vacancy_site]}, not Br: "
                                 "perovdefect builds Br vacancies only")
        neighbours = [n for n in structure.get_neighbors(structure[vacancy_site], PB_BR_CUTOFF_A)
                      if n.specie.symbol == "Pb"]
        centre = min(neighbours, key=lambda n: n.nn_distance).coords
        vacancy_xyz = structure[vacancy_site].coords
    else:
        if pb_index is None:
            pb_index = symbols.index("Pb")
        if symbols[pb_index] != "Pb":
            raise StructureError(f"site {pb_index} is {symbols[pb_index]}, not Pb")
        centre, vacancy_xyz = structure[pb_index].coords, None
    central_br = [n for n in structure.get_sites_in_sphere(centre, PB_BR_CUTOFF_A)
                  if n.specie.symbol == "Br"]
    bond = max(n.nn_distance for n in central_br)
    if radius_A < bond:
        raise StructureError(f"radius {radius_A} A is too small to hold an octahedron "
                             f"(Pb-Br = {bond:.2f} A)")
    in_sphere = structure.get_sites_in_sphere(centre, radius_A)
    positions: list[np.ndarray] = []
    species: list[str] = []

    def add(sym: str, xyz: np.ndarray) -> None:
        if any(np.linalg.norm(xyz - p) < 1e-3 for p in positions):
            return
        positions.append(np.asarray(xyz))
        species.append(sym)

    for site in in_sphere:
        if site.specie.symbol == "Pb":
            add("Pb", site.coords)
            for n in structure.get_sites_in_sphere(site.coords, PB_BR_CUTOFF_A):
                if n.specie.symbol == "Br":
                    add("Br", n.coords)
        elif site.specie.symbol == "Cs":
            add("Cs", site.coords)
    atoms = Atoms(species, positions=np.array(positions) - centre)
    pristine_charge = formal_charge(species)
    if vacancy_xyz is not None:
        d = np.linalg.norm(atoms.positions - (vacancy_xyz - centre), axis=1)
        del atoms[int(np.argmin(d))]
    q = pristine_charge if charge is None else charge
    name = f"{compound}_cutout_r{radius_A:g}" + ("_VBr" if vacancy_xyz is not None else "")
    return _finish(atoms, name, "crystal-cutout", q, padding_A,
                   {"parent": compound, "radius_A": radius_A, "vacancy": vacancy_xyz is not None,
                    "defect": CLUSTER_DEFECTS[0] if vacancy_xyz is not None else None,
                    "n_octahedra": species.count("Pb")})


def build_cluster(kind: str, vacancy: bool = False, **kwargs) -> StructureRecord:
    """Dispatch by kind name: pbbr6-octahedron, cs4pbbr6-molecule, crystal-cutout."""
    key = kind.lower()
    if key == "pbbr6-octahedron":
        return pbbr6_octahedron(vacancy=vacancy, **kwargs)
    if key == "cs4pbbr6-molecule":
        return cs4pbbr6_molecule(vacancy=vacancy, **kwargs)
    if key == "crystal-cutout":
        if vacancy and kwargs.get("vacancy_site") is None:
            compound = kwargs.get("compound", "Cs4PbBr6")
            symbols = build_crystal(compound, kwargs.get("lattice", "pbe")).atoms.get_chemical_symbols()
            kwargs["vacancy_site"] = symbols.index("Br")
        return crystal_cutout(**kwargs)
    raise StructureError(f"unknown cluster kind {kind!r}; known: {', '.join(CLUSTER_KINDS)}")
