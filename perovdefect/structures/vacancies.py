"""Br vacancies: symmetry-distinct sites (pymatgen SpacegroupAnalyzer), supercells, charge states.

Units: lengths in Angstrom (A), charges in elementary charges (e).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perovdefect.errors import StructureError
from perovdefect.structures.crystals import SYMPREC, build_crystal
from perovdefect.structures.electrons import electron_counts, spin_multiplicity
from perovdefect.structures.primitive import PrimitiveCell, primitive_cell
from perovdefect.structures.record import StructureRecord
from perovdefect.structures.supercells import (DEFAULT_MAX_ATOMS, build_supercell,
                                               supercell_metadata)

DEFAULT_CHARGES: tuple[int, ...] = (1, 0, -1)
#: Largest |q| (e) accepted for a V_Br charge state (the campaign spec uses the same bound).
MAX_ABS_CHARGE = 4
#: Two positions closer than this (A) after reduction modulo the unit-cell lattice are one site.
SITE_TOL_A = 1e-3


@dataclass(frozen=True)
class DistinctSite:
    """One symmetry-distinct site of the unit cell: representative index, Wyckoff, multiplicity
    and the unit-cell indices of its whole orbit."""

    index: int
    element: str
    wyckoff: str
    multiplicity: int
    frac_coords: tuple[float, float, float]
    orbit: tuple[int, ...] = ()


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
                                tuple(float(x) for x in structure[first].frac_coords),
                                tuple(int(i) for i in indices)))
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


def check_charges(charges: object, what: str = "charges") -> tuple[int, ...]:
    """Charge states (e) as a tuple of ints: whole numbers only, no duplicates, |q| <= 4, at least
    one. Raises StructureError naming `what`."""
    if isinstance(charges, (str, bytes)) or not hasattr(charges, "__iter__"):
        raise StructureError(f"{what} must be a list of integers, got {charges!r}")
    out: list[int] = []
    for q in charges:  # type: ignore[attr-defined]
        if isinstance(q, bool) or not isinstance(q, (int, np.integer, float, np.floating)) \
                or not np.isfinite(q) or int(q) != q:
            raise StructureError(f"{what}: {q!r} is not a whole number of electrons")
        if abs(int(q)) > MAX_ABS_CHARGE:
            raise StructureError(f"{what}: |q| = {abs(int(q))} exceeds {MAX_ABS_CHARGE}")
        if int(q) in out:
            raise StructureError(f"{what}: charge {int(q):+d} given twice")
        out.append(int(q))
    if not out:
        raise StructureError(f"{what}: no charge state given")
    return tuple(out)


def supercell_site(supercell: StructureRecord, unit: StructureRecord, index: int,
                   element: str = "Br") -> tuple[int, int]:
    """(first supercell index, number of copies) of unit-cell site `index` in a supercell of it.

    Supercell atoms are lattice translates of unit-cell atoms: a copy is a supercell atom of the
    same species whose fractional position in the unit-cell lattice equals the site's modulo 1
    (compared in A). Raises StructureError unless the site is `element` and has exactly one copy
    per unit cell, so a wrong mapping can never go unnoticed.
    """
    cell = unit.atoms.cell.array
    if unit.atoms[index].symbol != element:
        raise StructureError(f"unit-cell site {index} is {unit.atoms[index].symbol}, not {element}")
    site_frac = unit.atoms.get_scaled_positions()[index]
    frac = supercell.atoms.positions @ np.linalg.inv(cell) - site_frac
    frac -= np.round(frac)
    dist = np.linalg.norm(frac @ cell, axis=1)
    symbols = np.array(supercell.atoms.get_chemical_symbols())
    hits = np.flatnonzero((dist < SITE_TOL_A) & (symbols == element))
    n_cells = round(len(supercell.atoms) / len(unit.atoms))
    if len(hits) != n_cells or np.any((dist < SITE_TOL_A) & (symbols != element)):
        raise StructureError(f"unit-cell {element} site {index}: {len(hits)} copies in the "
                             f"supercell, expected one per unit cell ({n_cells})")
    return int(hits[0]), len(hits)


def orbit_per_primitive(site: DistinctSite, prim: PrimitiveCell) -> int:
    """Sites of the conventional orbit of `site` in one primitive cell; StructureError unless
    they times the primitive cells per conventional cell give the conventional multiplicity."""
    n = len({prim.site_map[i] for i in site.orbit})
    if n * prim.n_per_conventional != site.multiplicity:
        raise StructureError(f"Wyckoff {site.wyckoff} (x{site.multiplicity}): {n} sites per "
                             f"primitive cell x {prim.n_per_conventional} primitive cells "
                             "does not give the conventional multiplicity")
    return n


def build_host(compound: str, min_image_distance_A: float | None = None,
               target_atoms: int | None = None, lattice: str = "pbe",
               max_atoms: int = DEFAULT_MAX_ATOMS) -> StructureRecord:
    """The pristine host supercell `build_vacancies` removes a site from (campaign supercell
    models use it as their host), built from the primitive cell (`host_and_cells`)."""
    return host_and_cells(compound, min_image_distance_A, target_atoms, lattice, max_atoms)[0]


def host_and_cells(compound: str, min_image_distance_A: float | None = None,
                   target_atoms: int | None = None, lattice: str = "pbe",
                   max_atoms: int = DEFAULT_MAX_ATOMS
                   ) -> tuple[StructureRecord, StructureRecord, PrimitiveCell]:
    """(host supercell, conventional crystal, its primitive cell) for a shipped compound.

    min_image_distance_A (A) or target_atoms search supercells of the primitive cell
    (perovdefect.structures.supercells), refused before any search above `max_atoms` atoms;
    without either the host is the conventional cell itself, atoms as shipped. Either way the
    metadata's supercell_matrix and n_unit_cells refer to the primitive cell (supercell_of =
    "primitive"; primitive_to_conventional: M with conventional lattice = M @ primitive).
    """
    crystal = build_crystal(compound, lattice)
    prim = primitive_cell(crystal)
    if min_image_distance_A is None and target_atoms is None:  # the conventional cell itself
        atoms = crystal.atoms.copy()
        host = StructureRecord(atoms, supercell_metadata(prim.record.metadata,
                                                         prim.to_conventional, atoms))
    else:
        host = build_supercell(prim.record, min_image_distance_A, target_atoms, max_atoms)
    return host, crystal, prim


def build_vacancies(compound: str, min_image_distance_A: float | None = None,
                    target_atoms: int | None = None, charges: tuple[int, ...] = DEFAULT_CHARGES,
                    lattice: str = "pbe", element: str = "Br",
                    max_atoms: int = DEFAULT_MAX_ATOMS) -> list[StructureRecord]:
    """One supercell per symmetry-distinct `element` site and charge state.

    Sites, Wyckoff labels and multiplicities are those of the conventional cell (pymatgen
    SpacegroupAnalyzer). Supercells are those of the primitive cell (`host_and_cells`: Cs4PbBr6
    offers 22, 44, 66, ... atoms); without a size criterion the conventional cell itself is used.
    Charges: whole numbers, |q| <= 4, no duplicates. The conventional representative site is
    mapped to its primitive-cell translate (checked by `primitive_cell`), and that site is located
    in the supercell itself by species and position modulo the primitive lattice
    (`supercell_site`, exactly one copy per primitive cell). Metadata: name (V_Br_q+1, or with
    the Wyckoff label when the compound has several distinct Br sites), parent, site index in the
    conventional cell, the primitive cell and the supercell, Wyckoff label and multiplicity of
    the conventional-cell site, supercell_multiplicity (sites of the crystal's orbit in the
    supercell: multiplicity x supercell volume / conventional volume; a supercell shape with
    less than the full point symmetry may split them into several orbits of its own),
    charge, electron counts, spin multiplicity, supercell matrix and number of unit cells (of
    the primitive cell: supercell_of), image distance (A).
    """
    if element != "Br":
        raise StructureError(f"vacancy requested on a non-Br site ({element}); "
                             "perovdefect builds Br vacancies")
    charges = check_charges(charges)
    supercell, crystal, prim = host_and_cells(compound, min_image_distance_A, target_atoms,
                                              lattice, max_atoms)
    sites = distinct_sites(crystal, element)
    records = []
    for site in sites:
        prim_index = prim.site_map[site.index]
        sc_index, copies = supercell_site(supercell, prim.record, prim_index, element)
        per_primitive = orbit_per_primitive(site, prim)
        label = site.wyckoff if len(sites) > 1 else None
        for q in charges:
            rec = remove_site(supercell, sc_index, q, element)
            rec.metadata.update({
                "name": defect_name(element, q, label), "kind": "defect",
                "parent": crystal.name, "defect": f"V_{element}", "site_index": site.index,
                "primitive_site_index": prim_index,
                "supercell_site_index": sc_index, "wyckoff": site.wyckoff,
                "multiplicity": site.multiplicity,
                "supercell_multiplicity": per_primitive * copies,
                "site_frac_coords": list(site.frac_coords)})
            records.append(rec)
    return records
