"""Chemical-potential limits of a host from the total energies of its competing phases.

The convex hull and the host's stability region come from pymatgen (PhaseDiagram,
ChemicalPotentialDiagram), built on formation energies as pymatgen-analysis-defects does; this
module only validates the input, labels the vertices (X-rich / X-poor) and returns documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from pymatgen.analysis.chempot_diagram import ChemicalPotentialDiagram
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element

from perovdefect.errors import AnalysisError, UnstableHostError
from perovdefect.thermo.documents import (
    ChemicalPotentialLimit,
    HostStability,
    PhaseEnergy,
    StabilityRegion,
)

#: Competing phases of the Cs-Pb-Br system the DESIGN names (Cs bcc, Pb fcc, solid Br2, ...).
CS_PB_BR_PHASES: tuple[str, ...] = ("Cs", "Pb", "Br2", "CsBr", "PbBr2", "CsPbBr3", "Cs4PbBr6",
                                    "CsPb2Br5")

#: Two vertices (or a vertex and a hyperplane) closer than this (eV/atom) are the same.
_TOL_EV = 1e-5

#: How far below the hull (eV/atom) a host above it is put when it may be shifted: doped's
#: margin (CompetingPhasesAnalyzer, 0.1 meV/atom), so that the stability region is a thin
#: sliver around the decomposition products rather than a degenerate line.
HULL_MARGIN_EV_PER_ATOM = 1e-4
#: Vertices of a shifted host closer than this (eV) are one limit: its region is a sliver
#: HULL_MARGIN_EV_PER_ATOM wide (times the atoms per formula unit over a stoichiometric
#: coefficient: ~1.5 meV for Cs4PbBr6) around the line where it meets its decomposition
#: products, and the phases in equilibrium at a limit are those of both edges.
_SLIVER_EV = 5e-3


def _phases(phases: Mapping[str, float] | Iterable[PhaseEnergy]) -> list[PhaseEnergy]:
    if isinstance(phases, Mapping):
        out = [PhaseEnergy(formula=f, energy_per_formula_unit_eV=float(e))
               for f, e in phases.items()]
    else:
        out = [p if isinstance(p, PhaseEnergy) else PhaseEnergy.model_validate(p)
               for p in phases]
    if not out:
        raise AnalysisError("no competing phases given")
    for p in out:
        if not np.isfinite(p.energy_per_formula_unit_eV):
            raise AnalysisError(f"{p.formula}: energy must be finite, got "
                                f"{p.energy_per_formula_unit_eV}")
        try:
            Composition(p.formula)
        except (ValueError, KeyError) as exc:
            raise AnalysisError(f"{p.formula!r} is not a chemical formula: {exc}") from None
    return out


def _phase_diagram(host: str, phases: list[PhaseEnergy]) -> tuple[PhaseDiagram, PDEntry]:
    entries = [PDEntry(Composition(p.formula), p.energy_per_formula_unit_eV, name=p.formula)
               for p in phases]
    host_red = Composition(host).reduced_formula
    host_entries = [e for e in entries if e.composition.reduced_formula == host_red]
    if not host_entries:
        raise AnalysisError(f"the host {host} is not among the phases given "
                            f"({[p.formula for p in phases]})")
    elements = Composition(host).elements
    missing = [el.symbol for el in elements
               if not any(e.composition.is_element and e.composition.elements[0] == el
                          for e in entries)]
    if missing:
        raise AnalysisError(f"elemental reference phase(s) missing for {missing}: give the "
                            "total energy of each element's standard phase (e.g. Cs bcc, Pb "
                            "fcc, solid Br2)")
    try:
        pd = PhaseDiagram(entries)
    except ValueError as exc:
        raise AnalysisError(f"cannot build the phase diagram: {exc}") from None
    return pd, min(host_entries, key=lambda e: e.energy_per_atom)


def host_stability(host: str, phases: Mapping[str, float] | Iterable[PhaseEnergy],
                   tolerance_eV_per_atom: float = 1e-6) -> HostStability:
    """Energy above the convex hull (eV/atom) of the host, and what it decomposes into.

    `phases` maps formula -> total energy per formula unit (eV), the host included.
    """
    pd, entry = _phase_diagram(host, _phases(phases))
    decomp, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
    stable = e_hull <= tolerance_eV_per_atom
    products = ({entry.composition.reduced_formula: 1.0} if stable else
                {e.composition.reduced_formula: float(f) for e, f in decomp.items()})
    n_fu = entry.composition.get_reduced_composition_and_factor()[1]
    return HostStability(host=entry.composition.reduced_formula, stable=bool(stable),
                         energy_above_hull_eV_per_atom=float(max(e_hull, 0.0)),
                         decomposition=products,
                         formation_energy_eV_per_formula_unit=float(
                             pd.get_form_energy(entry) / n_fu))


def stability_region(host: str, phases: Mapping[str, float] | Iterable[PhaseEnergy],
                     rich_element: str = "Br",
                     tolerance_eV_per_atom: float = 1e-6,
                     max_host_above_hull_eV_per_atom: float = 0.0) -> StabilityRegion:
    """The host's stability region and its vertices (chemical-potential limits).

    Args:
        host: host formula, e.g. "CsPbBr3".
        phases: formula -> total energy per formula unit (eV) of each competing phase, the host
            and the elemental references (Cs, Pb, Br2) included; or PhaseEnergy parts.
        rich_element: the vertex with the highest mu of this element is labelled
            '<X>-rich', the lowest '<X>-poor' (ties: the first in a deterministic order; for a
            vacancy of X only mu_X enters, so tied vertices give the same formation energy).
        tolerance_eV_per_atom: how far above the hull still counts as stable.
        max_host_above_hull_eV_per_atom: a host at most this far above the hull is shifted
            down onto it (by its energy above the hull plus HULL_MARGIN_EV_PER_ATOM, as doped
            does for an unstable host) and the region is that of the just-stable host; the
            shift is recorded in the document (`host_shift_eV_per_atom`). 0: refused.

    Raises:
        UnstableHostError: the host lies above the hull by more than the allowed shift (the
            message gives the energy above the hull and the decomposition).
    """
    plist = _phases(phases)
    stab = host_stability(host, plist, tolerance_eV_per_atom)
    shift = 0.0
    if not stab.stable:
        e_hull = stab.energy_above_hull_eV_per_atom
        if e_hull > max_host_above_hull_eV_per_atom:
            products = " + ".join(f"{f:.3f} {k}" for k, f in stab.decomposition.items())
            allowed = (f"more than the {max_host_above_hull_eV_per_atom * 1e3:g} meV/atom "
                       "allowed to be shifted onto the hull" if max_host_above_hull_eV_per_atom
                       else "and no shift onto the hull was allowed "
                       "(`max_host_above_hull_meV_per_atom`)")
            raise UnstableHostError(
                f"{stab.host} lies {e_hull * 1e3:.1f} meV/atom above the convex hull of the "
                f"phases given (decomposes into {products} per atom), {allowed}: it has no "
                "stability region, so no chemical-potential limits")
        shift = e_hull + HULL_MARGIN_EV_PER_ATOM
    pd, entry = _phase_diagram(host, _shifted(plist, stab.host, shift))
    # Formation-energy entries (elemental references at 0), as pymatgen-analysis-defects does;
    # the host is forced onto the hull within the tolerance so it has a domain.
    form_entries = []
    for e in pd.stable_entries | {entry}:
        form_entries.append(PDEntry(e.composition, pd.get_form_energy(e),
                                    name=e.composition.reduced_formula))
    cpd = ChemicalPotentialDiagram(form_entries)
    host_red = entry.composition.reduced_formula
    if host_red not in cpd.domains:  # pragma: no cover - guarded by host_stability
        raise UnstableHostError(f"{host_red} has no domain in the chemical-potential diagram")
    elements = [el.symbol for el in cpd.elements]
    if rich_element not in elements:
        raise AnalysisError(f"rich_element {rich_element!r} is not in {elements}")
    ix = elements.index(rich_element)
    verts = np.asarray(cpd.domains[host_red], float)
    verts = verts[~np.any(np.isclose(verts, cpd.default_min_limit), axis=1)]
    verts = sorted(verts, key=lambda v: (-round(v[ix], 6), *np.round(v, 6)))
    # unique vertices (a shifted host's sliver: the pairs across it are one limit)
    tol = _SLIVER_EV if shift else _TOL_EV
    uniq: list[np.ndarray] = []
    for v in verts:
        if not any(np.allclose(v, u, atol=tol) for u in uniq):
            uniq.append(v)
    if not uniq:
        raise AnalysisError(f"{host_red}: the stability region has no finite vertex")
    refs = {el.symbol: float(pd.el_refs[el].energy_per_atom) for el in pd.elements}
    # which other stable phases are in equilibrium at each vertex: their hyperplane
    # sum_i x_i dmu_i = formation energy per atom passes through the vertex
    user_name = {}
    for p in plist:  # report phases by the formula the user gave ("Br2", not "Br")
        user_name.setdefault(Composition(p.formula).reduced_formula, p.formula)
    planes = []
    for e in form_entries:
        name = user_name.get(e.composition.reduced_formula, e.composition.reduced_formula)
        if e.composition.reduced_formula == host_red:
            continue
        frac = np.array([e.composition.get_atomic_fraction(Element(el)) for el in elements])
        planes.append((name, frac, e.energy_per_atom))
    limits = []
    for k, v in enumerate(uniq):
        if k == 0:
            label = f"{rich_element}-rich"
        elif k == len(uniq) - 1:
            label = f"{rich_element}-poor"
        else:
            label = f"vertex-{k}"
        neighbours = sorted({name for name, frac, h in planes
                             if abs(frac @ v - h) < max(1e-4, tol)})
        dmu = {el: float(x) + 0.0 for el, x in zip(elements, v)}  # no -0.0
        limits.append(ChemicalPotentialLimit(
            label=label, competing_phases=neighbours, delta_mu_eV=dmu,
            mu_eV={el: refs[el] + dmu[el] for el in elements}))
    return StabilityRegion(host=host_red, elements=elements,
                           elemental_reference_eV_per_atom=refs, phases=plist,
                           stability=stab, limits=limits, host_shift_eV_per_atom=shift)


def _shifted(phases: list[PhaseEnergy], host: str, shift_eV_per_atom: float
             ) -> list[PhaseEnergy]:
    """The phases with every entry of the host's composition lowered by shift_eV_per_atom
    (eV per atom, times the atoms of the entry's formula unit)."""
    if not shift_eV_per_atom:
        return phases
    red = Composition(host).reduced_formula
    return [p.model_copy(update={"energy_per_formula_unit_eV": p.energy_per_formula_unit_eV -
                                 shift_eV_per_atom * Composition(p.formula).num_atoms})
            if Composition(p.formula).reduced_formula == red else p for p in phases]
