"""Br vacancies: symmetry-distinct sites (pymatgen SpacegroupAnalyzer), supercells, charge states."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perovdefect.errors import StructureError
from perovdefect.structures.crystals import SYMPREC, build_crystal
from perovdefect.structures.electrons import electron_counts, spin_multiplicity
from perovdefect.structures.record import StructureRecord
from perovdefect.structures.supercells import build_supercell

DEFAULT_CHARGES: tuple[int, ...] = (1, 0, -1)


@dataclass(frozen=True)
class DistinctSite:
    """One symmetry-distinct site of the unit cell: representative index, Wyckoff, multiplicity."""

    index: int
    element: str
    wyckoff: str
    multiplicity: int
    frac_coords: tuple[float, float, float]


def distinct_sites(record: StructureRecord, element: str = "Br") -> list[DistinctSite]:
    """Symmetry-distinct sites of `element` in a crystal record (unit cell), with Wyckoff labels."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    structure = record.to_pymatgen()
    sym = SpacegroupAnalyzer(structure, symprec=SYMPREC).get_symmetrized_structure()
    out = []
    for indices, wyckoff in zip(sym.equivalent_indices, sym.wyckoff_symbols):
        first = indices[0]
        if structure[first].specie.symbol != element:
            continue
        out.append(DistinctSite(int(first), element, wyckoff, len(indices),
                                tuple(float(x) for x in structure[first].frac_coords)))
    if not out:
        raise StructureError(f"no {element} sites in {record.name}")
    return out


def defect_name(element: str, charge: int, wyckoff: str | None = None) -> str:
    """`V_Br_q+1`, or `V_Br_36f_q0` when the Wyckoff label is needed to tell sites apart."""
    site = f"_{wyckoff}" if wyckoff else ""
    return f"V_{element}{site}_q{charge:+d}" if charge else f"V_{element}{site}_q0"


def remove_site(record: StructureRecord, index: int, charge: int = 0,
                element: str = "Br") -> StructureRecord:
    """A copy of `record` without site `index`, which must be `element` (a Br vacancy)."""
    atoms = record.atoms
    if not 0 <= index < len(atoms):
        raise StructureError(f"site index {index} out of range (0..{len(atoms) - 1})")
    found = atoms[index].symbol
    if found != element:
        raise StructureError(f"site {index} is {found}, not {element}: perovdefect builds "
                             f"{element} vacancies only")
    new = atoms.copy()
    del new[index]
    counts = electron_counts(new.get_chemical_symbols(), charge)
    meta = dict(record.metadata)
    meta.update({"charge": charge, **counts,
                 "spin_multiplicity": spin_multiplicity(counts["valence_electrons"]),
                 "vacancy_position_A": atoms.positions[index].round(5).tolist()})
    return StructureRecord(new, meta)


def build_vacancies(compound: str, min_image_distance_A: float | None = None,
                    target_atoms: int | None = None, charges: tuple[int, ...] = DEFAULT_CHARGES,
                    lattice: str = "pbe", element: str = "Br") -> list[StructureRecord]:
    """One supercell per symmetry-distinct `element` site and charge state.

    Without a size criterion the conventional cell itself is used. Metadata: name (V_Br_q+1, or
    with the Wyckoff label when the compound has several distinct Br sites), parent, site index
    in the unit cell, Wyckoff, multiplicity, charge, electron counts, spin multiplicity and the
    supercell's image distance (A).
    """
    if element != "Br":
        raise StructureError(f"vacancy requested on a non-Br site ({element}); "
                             "perovdefect builds Br vacancies")
    crystal = build_crystal(compound, lattice)
    sites = distinct_sites(crystal, element)
    if min_image_distance_A is None and target_atoms is None:
        supercell = build_supercell(crystal, min_image_distance_A=1e-6)
    else:
        supercell = build_supercell(crystal, min_image_distance_A, target_atoms)
    records = []
    for site in sites:
        # the supercell keeps the unit cell's atoms at their Cartesian positions: find the
        # representative there by position, not by index
        target = crystal.atoms.positions[site.index]
        sc_index = int(np.argmin(np.linalg.norm(supercell.atoms.positions - target, axis=1)))
        label = site.wyckoff if len(sites) > 1 else None
        for q in charges:
            rec = remove_site(supercell, sc_index, q, element)
            rec.metadata.update({
                "name": defect_name(element, q, label), "kind": "defect",
                "parent": crystal.name, "defect": f"V_{element}", "site_index": site.index,
                "supercell_site_index": sc_index, "wyckoff": site.wyckoff,
                "multiplicity": site.multiplicity, "site_frac_coords": list(site.frac_coords)})
            records.append(rec)
    return records
