"""Native point defects of a shipped host through pymatgen-analysis-defects' generators:
vacancies of every species, antisites and Voronoi interstitials, each symmetry-distinct with its
Wyckoff label, multiplicity and the charge states the library proposes, placed in the same
supercells `build_vacancies` uses.

Units: lengths in Angstrom (A), charges in elementary charges (e).
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from perovdefect.errors import StructureError
from perovdefect.structures.crystals import SYMPREC, build_crystal
from perovdefect.structures.electrons import electron_counts, spin_multiplicity
from perovdefect.structures.primitive import PrimitiveCell
from perovdefect.structures.record import StructureRecord
from perovdefect.structures.supercells import DEFAULT_MAX_ATOMS
from perovdefect.structures.vacancies import (MAX_ABS_CHARGE, check_charges, distinct_sites,
                                              host_and_cells, supercell_site)

#: Defect families, in the order they are listed.
DEFECT_TYPES: tuple[str, ...] = ("vacancies", "antisites", "interstitials")
_KIND = {"vacancies": "vacancy", "antisites": "antisite", "interstitials": "interstitial"}
#: Two points closer than this (A) modulo the lattice are one position (symmetry orbits).
ORBIT_TOL_A = 1e-2


@dataclass(frozen=True)
class NativeDefect:
    """One symmetry-distinct native defect of a host, as its generator proposes it.

    defect: species-level name (V_Br, Br_Cs, Br_i); label: with the Wyckoff label (and a running
    number for interstitial orbits sharing one) when the host has several such sites (V_Cs_6a,
    Br_i_36f_2), else equal to `defect`. wyckoff / multiplicity: the orbit in the conventional
    cell (pymatgen SpacegroupAnalyzer). generator_multiplicity: the generator's own count (for
    vacancies and antisites the same orbit; for Voronoi interstitials the number of clustered
    Voronoi nodes in the primitive cell, which is not a site multiplicity). frac_coords: in the
    conventional cell; position_A: Cartesian (A), the frame shared by the conventional cell,
    the primitive cell and their supercells. site_index: conventional-cell index of the
    replaced or removed atom (None for interstitials). oxi_state: the defect's oxidation
    state; charges: pmgad's Defect.get_charge_states() (|q| <= MAX_ABS_CHARGE kept).
    """

    kind: str
    defect: str
    label: str
    element: str
    host_element: str | None
    wyckoff: str
    multiplicity: int
    generator_multiplicity: int
    frac_coords: tuple[float, float, float]
    position_A: tuple[float, float, float]
    site_index: int | None
    oxi_state: int
    charges: tuple[int, ...]
    generator: str


def check_types(types: object) -> tuple[str, ...]:
    """Defect families as a tuple from DEFECT_TYPES (a list or a comma-separated string);
    StructureError naming the unknown one."""
    items = [t.strip() for t in types.split(",")] if isinstance(types, str) else list(types)
    bad = [t for t in items if t not in DEFECT_TYPES]
    if bad or not items:
        raise StructureError(f"unknown defect type {bad[0] if bad else ''!r}; known: "
                             f"{', '.join(DEFECT_TYPES)}")
    return tuple(t for t in DEFECT_TYPES if t in items)


def native_defects(compound: str, types: object = DEFECT_TYPES,
                   lattice: str = "pbe") -> list[NativeDefect]:
    """The symmetry-distinct native defects of a shipped compound.

    Vacancies and antisites: pmgad's VacancyGenerator / AntiSiteGenerator on the conventional
    cell (symprec = crystals.SYMPREC, as `distinct_sites`, so V_Br sites and labels are those
    of `build_vacancies`). Interstitials: pmgad's VoronoiInterstitialGenerator (default
    settings) on the primitive cell (Cs4PbBr6: 7 s there, 60 s on the conventional cell), every
    host species at every candidate site; their Wyckoff label and multiplicity come from the
    candidate's orbit under the conventional cell's space group, and a candidate in the orbit
    of an earlier one is dropped. Interstitial charge states use the element's oxidation state
    in the host (pmgad's own default takes the element's common oxidation state of largest
    magnitude, Br +5, and proposes Br_i up to q = +6).
    """
    return [d for family in check_types(types) for d in _family(compound, family, lattice)]


@functools.lru_cache(maxsize=None)
def _family(compound: str, family: str, lattice: str) -> tuple[NativeDefect, ...]:
    """One family's defects, labelled (names never cross families: V_X, X_Y, X_i); cached
    per process (the Voronoi search takes seconds)."""
    crystal = build_crystal(compound, lattice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's oxidation-state and symmetry chatter
        found = _interstitials(crystal) if family == "interstitials" \
            else _site_defects(crystal, family)
    return tuple(_labelled(found))


def _site_defects(crystal: StructureRecord, family: str) -> list[NativeDefect]:
    """Vacancies or antisites from pmgad's generators on the conventional cell."""
    from pymatgen.analysis.defects.generators import AntiSiteGenerator, VacancyGenerator
    structure = crystal.to_pymatgen()
    gen = VacancyGenerator(symprec=SYMPREC) if family == "vacancies" \
        else AntiSiteGenerator(symprec=SYMPREC)
    orbits = {i: s for el in sorted(set(structure.symbol_set))
              for s in distinct_sites(crystal, el) for i in s.orbit}
    out = []
    for d in gen.get_defects(structure):
        index = int(d.defect_site_index)
        site = orbits[index]
        if d.multiplicity != site.multiplicity:
            raise StructureError(f"{crystal.name}: {d.name} at site {index}: generator "
                                 f"multiplicity {d.multiplicity} != Wyckoff {site.wyckoff}")
        host_el = structure[index].specie.symbol
        element = host_el if family == "vacancies" else d.site.specie.symbol
        name = f"V_{host_el}" if family == "vacancies" else f"{element}_{host_el}"
        out.append(_defect(family, name, element, host_el, site.wyckoff, site.multiplicity,
                           int(d.multiplicity), structure[index].coords,
                           structure[index].frac_coords, index, d, type(gen).__name__))
    return out


def _interstitials(crystal: StructureRecord) -> list[NativeDefect]:
    """Voronoi interstitials of every host species (pmgad, primitive cell); Wyckoff label and
    multiplicity from the orbit in the conventional cell."""
    from pymatgen.analysis.defects.core import Interstitial
    from pymatgen.analysis.defects.generators import VoronoiInterstitialGenerator
    from perovdefect.structures.primitive import primitive_cell
    conv = crystal.to_pymatgen()
    prim = primitive_cell(crystal).record.to_pymatgen()
    oxi = host_oxidation_states(crystal)
    elements = sorted(oxi)
    candidates = VoronoiInterstitialGenerator().get_defects(prim, [elements[0]])
    seen: list[np.ndarray] = []
    out = []
    for cand in candidates:
        frac = conv.lattice.get_fractional_coords(cand.site.coords) % 1.0
        if any(_in_orbit(frac, orbit, conv.lattice.matrix) for orbit in seen):
            continue
        orbit = symmetry_orbit(frac, conv)
        seen.append(orbit)
        wyckoff = orbit_wyckoff(orbit, conv)
        for el in elements:
            d = Interstitial(prim, _site(el, cand.site.frac_coords, prim.lattice),
                             multiplicity=cand.multiplicity, oxi_state=oxi[el])
            out.append(_defect("interstitials", f"{el}_i", el, None, wyckoff, len(orbit),
                               int(cand.multiplicity), cand.site.coords, frac, None, d,
                               "VoronoiInterstitialGenerator"))
    return out


def _defect(family: str, name: str, element: str, host_el: str | None, wyckoff: str,
            multiplicity: int, generator_multiplicity: int, position_A: np.ndarray,
            frac: np.ndarray, index: int | None, d, generator: str) -> NativeDefect:
    """A NativeDefect (label filled in later by `_labelled`); position_A (A) and frac (in the
    conventional cell) are one point."""
    charges = tuple(q for q in d.get_charge_states() if abs(q) <= MAX_ABS_CHARGE)
    return NativeDefect(_KIND[family], name, name, element, host_el, wyckoff, multiplicity,
                        generator_multiplicity, tuple(float(x) for x in frac),
                        tuple(float(x) for x in position_A), index, int(round(d.oxi_state)),
                        charges, f"pymatgen-analysis-defects {generator}")


def _labelled(defects: list[NativeDefect]) -> list[NativeDefect]:
    """Labels: the species-level name, plus the Wyckoff label when the host has several sites
    for it, plus a running number for orbits sharing a Wyckoff label (interstitials)."""
    per_name = Counter(d.defect for d in defects)
    per_wyckoff = Counter((d.defect, d.wyckoff) for d in defects)
    running: Counter = Counter()
    out = []
    for d in defects:
        label = d.defect
        if per_name[d.defect] > 1:
            label += f"_{d.wyckoff}"
            if per_wyckoff[(d.defect, d.wyckoff)] > 1:
                running[(d.defect, d.wyckoff)] += 1
                label += f"_{running[(d.defect, d.wyckoff)]}"
        out.append(NativeDefect(**{**d.__dict__, "label": label}))
    return out


def host_oxidation_states(crystal: StructureRecord) -> dict[str, int]:
    """Oxidation state of each element of the host (pymatgen's bond-valence guess, the one
    pmgad's defects use); StructureError when no charge-balanced assignment exists."""
    structure = crystal.to_pymatgen()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure.add_oxidation_state_by_guess(max_sites=-1)
    oxi = {sp.symbol: int(round(sp.oxi_state)) for sp in structure.composition.elements}
    if not any(oxi.values()):
        raise StructureError(f"{crystal.name}: no oxidation states could be assigned")
    return oxi


def _site(element: str, frac: np.ndarray, lattice):
    from pymatgen.core import PeriodicSite
    return PeriodicSite(element, frac, lattice)


def symmetry_orbit(frac: np.ndarray, structure) -> np.ndarray:
    """Fractional positions (n, 3) of the orbit of point `frac` under the space group of
    `structure` (pymatgen SpacegroupAnalyzer operations, symprec = SYMPREC), one per position
    modulo the lattice. Hand-written (a few lines over pymatgen's SymmOps) because pmgad's
    Voronoi multiplicity counts Voronoi nodes, not the orbit (CsPbBr3-cubic 3c: 1;
    CsPbBr3-Pnma 8d: 32)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    ops = SpacegroupAnalyzer(structure, symprec=SYMPREC).get_symmetry_operations()
    orbit: list[np.ndarray] = []
    for op in ops:
        f = np.asarray(op.operate(frac)) % 1.0
        if not orbit or not _in_orbit(f, np.array(orbit), structure.lattice.matrix):
            orbit.append(f)
    return np.array(orbit)


def _in_orbit(frac: np.ndarray, orbit: np.ndarray, cell: np.ndarray) -> bool:
    d = orbit - frac
    d -= np.round(d)
    return bool(np.linalg.norm(d @ cell, axis=1).min() < ORBIT_TOL_A)


def orbit_wyckoff(orbit: np.ndarray, structure) -> str:
    """Wyckoff label of a complete orbit of points in `structure` (conventional setting):
    spglib's label for the orbit added as one dummy species; StructureError unless the
    space group is unchanged and the label's multiplicity is the orbit's size."""
    from pymatgen.core import DummySpecies
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    host_sg = SpacegroupAnalyzer(structure, symprec=SYMPREC).get_space_group_number()
    probe = structure.copy()
    for f in orbit:
        probe.append(DummySpecies("X"), f)
    sga = SpacegroupAnalyzer(probe, symprec=SYMPREC)
    sym = sga.get_symmetrized_structure()
    labels = [w for idx, w in zip(sym.equivalent_indices, sym.wyckoff_symbols)
              if idx[0] >= len(structure)]
    if sga.get_space_group_number() != host_sg or len(labels) != 1 \
            or int(labels[0][:-1]) != len(orbit):
        raise StructureError(f"interstitial orbit of {len(orbit)} sites does not form one "
                             f"Wyckoff position of space group {host_sg}")
    return labels[0]


def select_defects(defects: list[NativeDefect], names: object) -> list[NativeDefect]:
    """Defects whose species-level name (V_Br, Br_i) or label (V_Cs_6a) is in `names` (list or
    comma-separated string); StructureError naming an unknown name and the known ones."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    known = {d.defect for d in defects} | {d.label for d in defects}
    for n in items:
        if n not in known:
            raise StructureError(f"unknown defect {n!r}; known: "
                                 f"{', '.join(sorted({d.label for d in defects}))}")
    return [d for d in defects if d.defect in items or d.label in items]


def defect_name(label: str, charge: int) -> str:
    """`V_Br_q+1`, `Br_i_36f_2_q0`: the label and the charge (same form as V_Br names)."""
    return f"{label}_q{charge:+d}" if charge else f"{label}_q0"


def build_defects(compound: str, types: object = DEFECT_TYPES, names: object = None,
                  min_image_distance_A: float | None = None, target_atoms: int | None = None,
                  charges: tuple[int, ...] | None = None, lattice: str = "pbe",
                  max_atoms: int = DEFAULT_MAX_ATOMS) -> list[StructureRecord]:
    """One supercell per native defect (`native_defects`, optionally `select_defects(names)`)
    and charge state: pmgad's proposed charges, or `charges` for every defect.

    Supercells are those of `build_vacancies` (`host_and_cells`: the primitive cell's, or the
    conventional cell without a size criterion). The defect is made in the host supercell by
    pmgad's Vacancy / Substitution / Interstitial `defect_structure` (interstitial atom first).
    Metadata as for V_Br (name, defect, kind, parent, site_index, primitive_site_index,
    supercell_site_index, wyckoff, multiplicity, supercell_multiplicity, site_frac_coords,
    charge, electron counts, spin multiplicity, supercell data) plus defect_type, defect_label,
    defect_position_A (A, in the supercell; vacancies also vacancy_position_A), oxi_state,
    charges_proposed, generator_multiplicity, generator and the host's oxidation_states.
    """
    defects = native_defects(compound, types, lattice)
    if names is not None:
        defects = select_defects(defects, names)
    if charges is not None:
        charges = check_charges(charges)
    host, crystal, prim = host_and_cells(compound, min_image_distance_A, target_atoms, lattice,
                                         max_atoms)
    oxi = host_oxidation_states(crystal)
    records = []
    for d in defects:
        for q in charges if charges is not None else d.charges:
            rec = defect_supercell(d, host, prim, q)
            rec.metadata.update(parent=crystal.name, oxidation_states=oxi)
            records.append(rec)
    return records


def defect_supercell(d: NativeDefect, host: StructureRecord, prim: PrimitiveCell,
                     charge: int) -> StructureRecord:
    """The defect `d` with charge `charge` (e) in the host supercell (see `build_defects`)."""
    from pymatgen.analysis.defects.core import Interstitial, Substitution, Vacancy
    structure = host.to_pymatgen()
    if d.kind == "interstitial":
        prim_index = sc_index = None
        frac = structure.lattice.get_fractional_coords(d.position_A) % 1.0
        pmg = Interstitial(structure, _site(d.element, frac, structure.lattice),
                           multiplicity=d.multiplicity, oxi_state=d.oxi_state)
        position = structure.lattice.get_cartesian_coords(frac)
    else:
        prim_index = prim.site_map[d.site_index]
        sc_index, _ = supercell_site(host, prim.record, prim_index, d.host_element)
        site = structure[sc_index]
        cls = Vacancy if d.kind == "vacancy" else Substitution
        pmg = cls(structure, _site(d.element, site.frac_coords, structure.lattice),
                  multiplicity=d.multiplicity, oxi_state=d.oxi_state)
        position = site.coords
    new = pmg.defect_structure
    new.remove_oxidation_states()
    atoms = Atoms([s.specie.symbol for s in new], positions=new.cart_coords,
                  cell=new.lattice.matrix, pbc=True)
    return StructureRecord(atoms, _metadata(d, host, prim, charge, atoms, prim_index, sc_index,
                                            position))


def _metadata(d: NativeDefect, host: StructureRecord, prim: PrimitiveCell, charge: int,
              atoms: Atoms, prim_index: int | None, sc_index: int | None,
              position: np.ndarray) -> dict:
    """Record metadata of a defect supercell (see `build_defects`)."""
    counts = electron_counts(atoms.get_chemical_symbols(), charge)
    cells = host.metadata["n_unit_cells"]  # primitive cells (host_and_cells: supercell_of)
    sc_mult, rest = divmod(d.multiplicity * cells, prim.n_per_conventional)
    if rest:
        raise StructureError(f"{d.label}: multiplicity {d.multiplicity} x {cells} cells is "
                             f"not a whole number of sites per supercell")
    meta = dict(host.metadata)
    meta.update({
        "name": defect_name(d.label, charge), "kind": "defect", "defect": d.defect,
        "defect_label": d.label, "defect_type": d.kind, "charge": charge, **counts,
        "spin_multiplicity": spin_multiplicity(counts["valence_electrons"]),
        "site_index": d.site_index, "primitive_site_index": prim_index,
        "supercell_site_index": sc_index if d.kind != "interstitial" else 0,
        "wyckoff": d.wyckoff, "multiplicity": d.multiplicity,
        "supercell_multiplicity": sc_mult, "generator_multiplicity": d.generator_multiplicity,
        "site_frac_coords": list(d.frac_coords),
        "defect_position_A": np.round(position, 5).tolist(), "oxi_state": d.oxi_state,
        "charges_proposed": list(d.charges), "generator": d.generator})
    if d.kind == "vacancy":
        meta["vacancy_position_A"] = meta["defect_position_A"]
    return meta
