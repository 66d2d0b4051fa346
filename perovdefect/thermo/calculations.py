"""Formation energies and transition levels from finished calculations of any code: the glue
between ElectronicStructure documents and perovdefect.thermo's code-neutral functions.

Checks made before any number is computed (each a clear AnalysisError naming the file):
host and defects of the same code and level of theory, cells of the same size and shape, a
known charge for every defect (from the calculation, or given), distinct charges, the defect's
composition differing from the host's by whole atoms; the FNV correction needs the planar
electrostatic potential in both documents and a dielectric constant. Charged isolated clusters
need no finite-size correction (stated), and one whose highest occupied state lies above the
vacuum level is flagged as unbound."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal, Mapping

import numpy as np
from pydantic import Field

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.theory import compare_levels_of_theory
from perovdefect.documents import Document
from perovdefect.errors import AnalysisError
from perovdefect.thermo.corrections import (check_cluster_bound, freysoldt_correction,
                                            isolated_cluster_correction)
from perovdefect.thermo.chempots import host_stability, stability_region
from perovdefect.thermo.documents import (ClusterBoundCheck, CompetingPhases, Correction,
                                          DefectThermodynamics, FormationEnergyDiagram,
                                          PhaseEnergy, StabilityRegion)
from perovdefect.thermo.formation import formation_energy_diagram

CorrectionKind = Literal["none", "fnv", "efnv"]
#: a site of the host with no defect atom within this distance (A) is the vacancy
VACANCY_MATCH_A = 0.8


class FormationResult(Document):
    """`perovdefect formation --json`: the diagram plus what was checked and applied."""

    diagram: FormationEnergyDiagram
    correction: str
    correction_note: str
    sources: dict[str, str] = Field(default_factory=dict)
    charges_from: dict[str, str] = Field(default_factory=dict)
    cluster_checks: list[ClusterBoundCheck] = Field(default_factory=list)
    defect_site_frac: list[float] | None = None
    chemical_potentials: str = ""
    warnings: list[str] = Field(default_factory=list)
    #: Fermi level and concentrations per limit (`formation --fermi`), else None
    thermodynamics: DefectThermodynamics | None = None


def _name(doc: ElectronicStructure) -> str:
    return str(doc.source or "calculation")


def composition_change(host: ElectronicStructure, defect: ElectronicStructure
                       ) -> dict[str, int]:
    """n_i: atoms added (+) or removed (-) going from the host cell to the defect cell."""
    for doc in (host, defect):
        if doc.structure is None:
            raise AnalysisError(f"{_name(doc)}: the document holds no structure, so the atoms "
                                "added or removed cannot be counted")
    h, d = Counter(host.structure.symbols), Counter(defect.structure.symbols)
    change = {el: d[el] - h[el] for el in sorted(set(h) | set(d)) if d[el] != h[el]}
    if not change:
        raise AnalysisError(f"{_name(defect)}: same composition as the host {_name(host)}: "
                            "not a point defect")
    if sum(abs(n) for n in change.values()) > 2:
        raise AnalysisError(f"{_name(defect)}: differs from the host by {change}: the cell "
                            "is not the host's supercell with one defect (different size?)")
    return change


def check_same_cell(host: ElectronicStructure, defect: ElectronicStructure,
                    tolerance_A: float = 0.05) -> None:
    """Host and defect must be the same cell (same lattice for periodic models)."""
    hc, dc = np.asarray(host.structure.cell_A), np.asarray(defect.structure.cell_A)
    if host.is_cluster != defect.is_cluster:
        raise AnalysisError(f"{_name(defect)} is {'a cluster' if defect.is_cluster else 'periodic'}"
                            f" but the host {_name(host)} is not")
    if not host.is_cluster and not np.allclose(hc, dc, atol=tolerance_A):
        raise AnalysisError(f"{_name(defect)}: its cell differs from the host's (max |delta| "
                            f"{np.abs(hc - dc).max():.3f} A): use the host supercell of the same "
                            "size and shape")


def check_same_theory(host: ElectronicStructure, defect: ElectronicStructure) -> None:
    problems = host.theory_differences(defect)
    if problems:
        raise AnalysisError(f"{_name(defect)}: " + "; ".join(problems) + " from the host: "
                            "formation energies need one code and one level of theory")


def theory_not_compared(host: ElectronicStructure, defects: list[ElectronicStructure]
                        ) -> list[str]:
    """What the level-of-theory check could not compare (one note per kind of gap)."""
    notes = sorted({n for d in defects for n in host.theory_not_compared(d)})
    return [f"level of theory not compared: {n}" for n in notes]


def vacancy_site(host: ElectronicStructure, defect: ElectronicStructure) -> np.ndarray:
    """Fractional coordinates (of the host cell) of the host site missing in the defect cell."""
    from ase.geometry import get_distances
    ha, da = host.structure.to_atoms(), defect.structure.to_atoms()
    _, d = get_distances(ha.positions, da.positions, cell=ha.cell, pbc=ha.pbc)
    nearest = d.min(axis=1)
    missing = np.nonzero(nearest > VACANCY_MATCH_A)[0]
    if len(missing) != 1:
        raise AnalysisError(f"{_name(defect)}: {len(missing)} host sites have no atom within "
                            f"{VACANCY_MATCH_A} A in the defect cell; the FNV correction needs "
                            "one vacancy site")
    frac = ha.get_scaled_positions(wrap=True)[missing[0]] if any(ha.pbc) else \
        np.linalg.solve(ha.cell.array.T, ha.positions[missing[0]])
    return np.asarray(frac)


def formation_from_calculations(
        host: ElectronicStructure, defects: list[ElectronicStructure],
        charges: Mapping[str, int] | None = None,
        chemical_potentials: Mapping[str, Mapping[str, float]] | None = None,
        correction: CorrectionKind = "none", dielectric: float | None = None,
        defect_name: str = "defect") -> FormationResult:
    """Formation energies of every defect document (one per charge) against the host.

    charges: document source -> charge (e), overriding the document's own (which must be known
    otherwise). chemical_potentials: label -> {element: absolute mu (eV/atom), e.g. the
    Br-rich and Br-poor limits of perovdefect.thermo.stability_region}; without them every
    mu_i = 0 eV/atom (the label says so; transition levels do not depend on mu)."""
    if not defects:
        raise AnalysisError("no defect calculations given")
    if host.total_energy_eV is None or host.gap_eV is None or host.gap_eV <= 0:
        raise AnalysisError(f"{_name(host)}: the host needs a total energy and a gap")
    charges = dict(charges or {})
    energies: dict[int, float] = {}
    by_charge: dict[int, ElectronicStructure] = {}
    charges_from: dict[str, str] = {}
    change: dict[str, int] | None = None
    checks: list[ClusterBoundCheck] = []
    for doc in defects:
        name = _name(doc)
        check_same_theory(host, doc)
        check_same_cell(host, doc)
        this = composition_change(host, doc)
        if change is not None and this != change:
            raise AnalysisError(f"{name}: a different defect ({this}) from the others ({change})")
        change = this
        if name in charges:
            q, charges_from[name] = int(charges[name]), "given by the user"
        elif doc.charge is not None:
            # clusters carry their total charge; the defect's is relative to the host's
            q = int(round(doc.charge - (host.charge or 0.0)))
            charges_from[name] = "from the calculation"
        else:
            raise AnalysisError(f"{name}: its charge is unknown (no valence data in the output); "
                                "give it with `charges`")
        if q in energies:
            raise AnalysisError(f"{name}: charge {q:+d} given twice "
                                f"(also {_name(by_charge[q])})")
        if doc.total_energy_eV is None:
            raise AnalysisError(f"{name}: no total energy")
        energies[q], by_charge[q] = doc.total_energy_eV, doc
        if doc.is_cluster and doc.charge and doc.vacuum_level_eV is not None and \
                doc.vbm_eV is not None:  # any charged cluster (total charge, not relative)
            checks.append(check_cluster_bound(int(round(doc.charge)), doc.vbm_eV,
                                              doc.vacuum_level_eV))
    corrections: dict[int, list[Correction]] = {}
    site = None
    if host.is_cluster:
        corrections = {q: [isolated_cluster_correction(q)] for q in energies}
        note = "none needed: isolated clusters have no periodic images"
        kind = "none (isolated cluster)"
    elif not any(energies):  # only q = 0: a periodic correction of charge 0 is zero
        note = "none needed: only neutral defects (no charged images)"
        kind = "none (neutral only)"
    elif correction == "none":
        note = "none applied, as asked: charged periodic cells keep their image error"
        kind = "none"
    elif correction == "fnv":
        if dielectric is None or not np.isfinite(dielectric) or dielectric <= 0:
            raise AnalysisError("the FNV correction needs a positive dielectric constant "
                                "`dielectric`")
        if host.planar_potential is None:
            raise AnalysisError(f"{_name(host)}: no electrostatic potential in the document, "
                                "which FNV needs")
        for q, doc in by_charge.items():
            if doc.planar_potential is None:
                raise AnalysisError(f"{_name(doc)}: no electrostatic potential in the "
                                    "document, which FNV needs")
            site = vacancy_site(host, doc)
            res = freysoldt_correction(q, doc.planar_potential.averages_eV,
                                       host.planar_potential.averages_eV,
                                       doc.structure.cell_A, host.structure.cell_A,
                                       dielectric, site)
            corrections[q] = [res.as_correction()]
        note = f"Freysoldt (FNV), dielectric constant {dielectric:g}"
        kind = "fnv"
    elif correction == "efnv":
        raise AnalysisError("eFNV needs atomic-site potentials, which the documents do not hold "
                            "yet; use `correction` fnv (planar potentials) or none")
    else:
        raise AnalysisError(f"unknown correction {correction!r}: none, fnv or efnv")
    if chemical_potentials:
        mus = {k: dict(v) for k, v in chemical_potentials.items()}
        mu_note = "given limits"
    else:
        mus = {"mu=0 (no chemical potentials given)": {el: 0.0 for el in change}}
        mu_note = ("none given: every mu_i = 0 eV/atom, so formation energies are relative; "
                   "transition levels do not depend on mu")
    diagram = formation_energy_diagram(defect_name, energies, host.total_energy_eV, change,
                                       host.vbm_eV, host.gap_eV, mus, corrections or None)
    warnings = [c.message for c in checks if not c.bound]
    warnings += theory_not_compared(host, defects)
    return FormationResult(diagram=diagram, correction=kind, correction_note=note,
                           sources={str(q): _name(d) for q, d in by_charge.items()},
                           charges_from=charges_from, cluster_checks=checks,
                           defect_site_frac=None if site is None else site.tolist(),
                           chemical_potentials=mu_note, warnings=warnings)


def read_chemical_potentials(path: str | Path, host: ElectronicStructure | None = None,
                             compound: str | None = None) -> dict[str, dict[str, float]]:
    """The limits of read_limits (no host shifted onto the hull)."""
    return read_limits(path, host, compound)[0]


def read_limits(path: str | Path, host: ElectronicStructure | None = None,
                compound: str | None = None, max_host_above_hull_eV_per_atom: float = 0.0
                ) -> tuple[dict[str, dict[str, float]], str | None]:
    """({label: {element: mu_eV_per_atom}}, what they rest on or None) from a JSON or YAML
    file: such a mapping, a StabilityRegion JSON, or a CompetingPhases JSON (a campaign's
    thermodynamics.json, or the shipped table: `shipped`), whose region for `compound`
    (default: the host calculation's formula; give the crystal for a cluster model) is taken;
    its code, level of theory and basis must be the host calculation's (absolute chemical
    potentials are only comparable within one). A host of a CompetingPhases table at most
    max_host_above_hull_eV_per_atom above the hull is shifted onto it, and the note says so."""
    import json

    import yaml
    if str(path) == "shipped":
        path = shipped_limits_path()
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: no such chemical-potential file")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not JSON/YAML ({exc})") from None
    if isinstance(data, dict) and "regions" in data:
        phases = shift_unstable_hosts(CompetingPhases.from_dict(data, source=str(path)),
                                      max_host_above_hull_eV_per_atom)
        if host is None or host.structure is None:
            raise AnalysisError(f"{path}: a competing-phase table needs the host calculation "
                                "(its formula picks the region)")
        return (limits_for(phases, host, compound, str(path)),
                shift_note_for(phases, host, compound))
    note = None
    if isinstance(data, dict) and "limits" in data:
        if data.get("host_shift_eV_per_atom"):
            note = StabilityRegion.from_dict(data, source=str(path)).shift_note()
        data = {lim["label"]: lim["mu_eV"] for lim in data["limits"]}
    ok = isinstance(data, dict) and data and all(
        isinstance(v, dict) and all(isinstance(x, (int, float)) and np.isfinite(x)
                                    for x in v.values()) for v in data.values())
    if not ok:
        raise AnalysisError(f"{path}: expected {{label: {{element: mu_eV}}}} with finite "
                            f"numbers, got {json.dumps(data)[:120]}")
    return {str(k): {str(e): float(x) for e, x in v.items()} for k, v in data.items()}, note


def shift_note_for(phases: CompetingPhases, host: ElectronicStructure,
                   compound: str | None = None) -> str | None:
    """The shift note of the region limits_for takes (None when its host is on the hull)."""
    from pymatgen.core import Composition
    formula = Composition(compound or "".join(host.structure.symbols)).reduced_formula
    region = phases.regions.get(formula)
    return None if region is None else region.shift_note()


def limits_for(phases: CompetingPhases, host: ElectronicStructure, compound: str | None = None,
               source: str = "competing-phase table") -> dict[str, dict[str, float]]:
    """{limit: {element: mu}} of `compound` (default: the host calculation's formula) from a
    competing-phase table, if the table and the host share code, level of theory, basis and
    plane-wave cutoff (absolute chemical potentials only mean something within one; the
    real-space grid and the pseudopotentials are not recorded here: keep them the same)."""
    from pymatgen.core import Composition
    theirs = (phases.code, phases.level_of_theory, (phases.basis, phases.cutoff_eV))
    ours = (host.code, host.level_of_theory, _basis(host))
    if theirs != ours:
        raise AnalysisError(f"{source}: chemical potentials from {theirs}, host {_name(host)} "
                            f"from {ours} (code, level of theory, (basis, cutoff)): absolute "
                            "chemical potentials need one code, level of theory and basis")
    if phases.theory is not None and host.theory is not None:
        # the potentials, cutoff and code inputs too (not the k-mesh: other crystals)
        problems = compare_levels_of_theory(phases.theory, host.theory, same_cell=False)
        if problems:
            raise AnalysisError(f"{source}: host {_name(host)}: " + "; ".join(problems) +
                                ": absolute chemical potentials need one level of theory")
    try:
        formula = Composition(compound or "".join(host.structure.symbols)).reduced_formula
    except (ValueError, KeyError) as exc:
        raise AnalysisError(f"{compound!r} is not a chemical formula ({exc})") from None
    try:
        return phases.limits(formula)
    except AnalysisError as exc:
        hint = "" if compound else " (for a cluster model, name its crystal with `compound`)"
        raise AnalysisError(f"{source}: {exc}{hint}") from None


def shipped_limits_path() -> Path:
    """The shipped competing-phase table (perovdefect/data/thermo/competing_phases_limits.json)."""
    from importlib import resources
    return Path(str(resources.files("perovdefect.data").joinpath(
        "thermo", "competing_phases_limits.json")))


def _basis(doc: ElectronicStructure) -> tuple[str | None, float | None]:
    """(basis, plane-wave cutoff in eV) of a calculation, as its backend recorded the step."""
    step = doc.settings.get("step") or {}
    return step.get("basis"), step.get("cutoff_eV")


def phase_energy(doc: ElectronicStructure) -> PhaseEnergy:
    """A competing phase's total energy per reduced formula unit (eV) from its calculation."""
    from pymatgen.core import Composition
    if doc.structure is None or doc.total_energy_eV is None:
        raise AnalysisError(f"{_name(doc)}: a competing phase needs its structure and total "
                            "energy in the document")
    if not doc.converged:
        raise AnalysisError(f"{_name(doc)}: the calculation did not converge; its total energy "
                            "cannot enter the phase diagram")
    formula, factor = Composition(
        "".join(doc.structure.symbols)).get_reduced_formula_and_factor()
    return PhaseEnergy(formula=formula, energy_per_formula_unit_eV=doc.total_energy_eV / factor,
                       source=_name(doc))


def limits_from_calculations(phases: list[ElectronicStructure], hosts: list[str],
                             rich_element: str = "Br",
                             max_host_above_hull_eV_per_atom: float = 0.0) -> CompetingPhases:
    """Each host's stability and chemical-potential limits from finished competing-phase
    calculations of one code and level of theory (an AnalysisError names the file that
    differs). Of two calculations of one formula (Br2 molecule and solid) the lower energy per
    formula unit enters, as on a convex hull; both are listed. A host at most
    max_host_above_hull_eV_per_atom above the hull is shifted onto it (shift_unstable_hosts)."""
    if not phases:
        raise AnalysisError("no competing-phase calculations given")
    for doc in phases[1:]:
        # different crystals: their k-meshes and grids differ by construction
        problems = phases[0].theory_differences(doc, same_cell=False)
        if problems:
            raise AnalysisError(f"{_name(doc)}: " + "; ".join(problems) + f" from "
                                f"{_name(phases[0])}: the phase diagram needs one code and one "
                                "level of theory")
    energies = [phase_energy(d) for d in phases]
    stability, regions, problems = {}, {}, {}
    for host in hosts:
        stability[host] = host_stability(host, energies)
        if stability[host].stable:
            regions[host] = stability_region(host, energies, rich_element)
        else:
            s = stability[host]
            problems[host] = (f"{s.energy_above_hull_eV_per_atom * 1e3:.1f} meV/atom above the "
                              f"hull (decomposes into {s.decomposition})")
    counts = Counter(e.formula for e in energies)
    notes = [f"{f}: {n} calculations; the lowest energy per formula unit is on the hull"
             for f, n in counts.items() if n > 1]
    basis, cutoff = _basis(phases[0])
    table = CompetingPhases(code=phases[0].code, level_of_theory=phases[0].level_of_theory,
                            basis=basis, cutoff_eV=cutoff, theory=phases[0].theory,
                            phases=energies, stability=stability, regions=regions,
                            problems=problems, notes=notes)
    return shift_unstable_hosts(table, max_host_above_hull_eV_per_atom, rich_element)


def shift_unstable_hosts(table: CompetingPhases, max_host_above_hull_eV_per_atom: float,
                         rich_element: str = "Br") -> CompetingPhases:
    """The table with each host that has no region because it lies at most
    max_host_above_hull_eV_per_atom (eV/atom) above the hull given the region of the host
    shifted onto the hull (perovdefect.thermo.chempots.stability_region), its problem replaced
    by a note that says so; the table itself is returned when nothing is shifted."""
    shifted = {host: stability_region(host, table.phases, rich_element,
                                      max_host_above_hull_eV_per_atom=
                                      max_host_above_hull_eV_per_atom)
               for host in table.problems
               if host in table.stability and table.stability[host].energy_above_hull_eV_per_atom
               <= max_host_above_hull_eV_per_atom}
    if not shifted:
        return table
    return table.model_copy(update={
        "regions": {**table.regions, **shifted},
        "problems": {h: p for h, p in table.problems.items() if h not in shifted},
        "notes": table.notes + [r.shift_note() for r in shifted.values()]})
