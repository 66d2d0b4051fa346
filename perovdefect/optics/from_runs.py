"""A luminescence result from finished single points made elsewhere (any backend's outputs, read
by perovdefect.parsers.parse): the tree of a pymatgen-analysis-defects / atomate2 CC diagram
(one directory per geometry per charge state), a DeltaSCF chain, or perovdefect's own run
folders, recognised from the calculations themselves, never from folder names.

* The two states: two charge states (the charge route; which one emits is given) or, at one
  charge, the ground state and the constrained-occupation excited state, told apart by the
  occupations (an empty band below an occupied one in a spin channel: a promotion).
* The two minima: the lowest-energy calculation of each state (as HarmonicDefect does); each
  state's own parabola must bottom out there (within MINIMUM_TOL of the path), else its
  relaxed minimum is missing from the tree.
* The path: every geometry's mass-weighted displacement from the ground minimum, projected on
  the line to the excited minimum, gives its fraction f (0 ground, 1 excited; minimum image);
  a geometry farther than OFF_PATH_TOL from that line is not on one linear path.
* One code, one level of theory, one cell and one set of atoms throughout.
Then the CC diagram, line shape and comparison as for the DeltaSCF chain (optics.assemble),
and the radiative lifetime of the excited minimum where its run kept what its backend needs
for transition dipoles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.occupations import promotion
from perovdefect.errors import AnalysisError, ParseError
from perovdefect.optics.assemble import assemble
from perovdefect.optics.level_correction import LEVEL_PREFIX
from perovdefect.optics.routes import ChargeRoute, RunPoint, RunsSource
from perovdefect.optics.run import LuminescenceResult, image_distance_A

#: a geometry farther than this fraction of Delta Q (+ OFF_PATH_ABS) from the line through the
#: two minima is off the path (codes print fractional positions to ~1e-8)
OFF_PATH_REL, OFF_PATH_ABS = 1e-3, 1e-4
#: a state's parabola must have its minimum within this fraction of the path of its lowest
#: calculation, else the relaxed minimum is missing
MINIMUM_TOL = 0.1
SPINS = ("up", "down")


@dataclass
class Run:
    """One finished calculation of the tree."""

    source: Path
    doc: ElectronicStructure
    state: str = ""
    fraction: float = 0.0
    off_path: float = 0.0

    @property
    def energy(self) -> float:
        return float(self.doc.total_energy_eV)


def _is_run_dir(d: Path) -> bool:
    from perovdefect.calcs.backend import registered_classes
    from perovdefect.parsers.detect import DOCUMENT
    names = {DOCUMENT, *(n for cls in registered_classes() for n in cls.output_files)}
    return any((d / n).is_file() for n in names)


def find_runs(root: Path, exclude: Path | None = None) -> list[Run]:
    """Every directory under ROOT (itself included) holding a calculation output, parsed
    (`exclude`: a directory left out, e.g. the host run given apart; the hybrid single points
    of a chain, ROOT/.../level-HYBRID/, are left out too)."""
    import warnings

    from perovdefect.parsers import parse
    if not root.is_dir():
        raise AnalysisError(f"{root}: not a directory")
    runs = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for d in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        if not _is_run_dir(d) or (skip is not None and d.resolve() == skip):
            continue
        if any(part.startswith(LEVEL_PREFIX) for part in d.relative_to(root).parts):
            continue  # a chain's hybrid single points: another level of theory, not the path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                doc = parse(d)
        except ParseError as exc:
            raise AnalysisError(f"{d}: unreadable calculation ({exc})") from None
        if doc.total_energy_eV is None or doc.structure is None:
            raise AnalysisError(f"{d}: the calculation gives no total energy or structure")
        runs.append(Run(d, doc))
    if not runs:
        raise AnalysisError(f"{root}: no finished calculation found (no result.json or code "
                            "output in its directories)")
    return runs


def check_consistent(runs: list[Run]) -> None:
    """One code and level of theory, the same atoms and cell in every run."""
    ref = runs[0]
    for r in runs[1:]:
        diff = ref.doc.theory_differences(r.doc)
        if diff:
            raise AnalysisError(f"mixed levels of theory: {ref.source} and {r.source} "
                                f"({'; '.join(diff)}); a CC diagram needs one")
        a, b = ref.doc.structure, r.doc.structure
        if a.symbols != b.symbols:
            raise AnalysisError(f"{r.source} holds other atoms (or another order) than "
                                f"{ref.source} (a host run? give it apart with `host`)")
        if not np.allclose(a.cell_A, b.cell_A, atol=1e-4) or a.pbc != b.pbc:
            raise AnalysisError(f"{r.source} has another cell than {ref.source}")


def split_states(runs: list[Run], charges: tuple[int, int] | None
                 ) -> tuple[str, str, str]:
    """Label every run with its state; ("delta-scf" | "charge", ground label, excited label)."""
    found = sorted({r.doc.charge for r in runs}, key=lambda q: (q is None, q))
    if None in found and len(found) > 1:
        raise AnalysisError("some calculations give their charge and others do not: "
                            f"{next(r.source for r in runs if r.doc.charge is None)}")
    qs = [int(round(q)) for q in found if q is not None]
    if len(qs) > 2:
        raise AnalysisError(f"more than two charge states in the tree ({qs})")
    if len(qs) == 2:
        if charges is None or sorted(charges) != sorted(qs):
            raise AnalysisError(f"two charge states {qs} found: say which emits with "
                                "`charges` (initial and final charge, e.g. 1,0 for q+1 + "
                                "e(CBM) -> q0)")
        for r in runs:
            r.state = f"q{int(round(r.doc.charge)):+d}"
        return "charge", f"q{charges[1]:+d}", f"q{charges[0]:+d}"
    if charges is not None:
        raise AnalysisError(f"`charges` {charges} given, but the tree holds one charge state "
                            f"({qs[0] if qs else 'unknown'})")
    for r in runs:
        r.state = "excited" if _promoted(r.doc) else "ground"
    return "delta-scf", "ground", "excited"


def _promoted(doc: ElectronicStructure) -> tuple[str, int, int] | None:
    """(spin, hole band, electron band) of a constrained-occupation excited state."""
    occ = np.asarray(doc.occupations, float)  # 0..1 per state (or spinor)
    for s in range(occ.shape[0]):
        p = promotion(occ[s][0])
        if p is not None:
            return SPINS[s], p[0], p[1]
    return None


def _arrays(doc: ElectronicStructure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    atoms = doc.structure.to_atoms()
    return atoms.positions, atoms.get_masses(), np.asarray(doc.structure.cell_A, float)


def _displacement(a: ElectronicStructure, b: ElectronicStructure) -> np.ndarray:
    """Mass-weighted displacement b - a (amu^1/2 A), minimum image in periodic cells."""
    ra, m, cell = _arrays(a)
    d = _arrays(b)[0] - ra
    if all(a.structure.pbc):
        frac = d @ np.linalg.inv(cell)
        d = (frac - np.round(frac)) @ cell
    return np.sqrt(m)[:, None] * d


def place_on_path(runs: list[Run], ground: Run, excited: Run) -> float:
    """Fraction and off-path distance of every run; Delta Q (amu^1/2 A)."""
    axis = _displacement(ground.doc, excited.doc)
    dq = float(np.linalg.norm(axis))
    if dq < OFF_PATH_ABS:
        raise AnalysisError(f"missing minimum: the lowest-energy {ground.state} and "
                            f"{excited.state} calculations ({ground.source}, {excited.source}) "
                            "are at the same geometry (Delta Q = 0): one relaxed minimum is not "
                            "in the tree, or that relaxation never left the other minimum")
    tol = OFF_PATH_REL * dq + OFF_PATH_ABS
    for r in runs:
        x = _displacement(ground.doc, r.doc)
        r.fraction = float(np.sum(x * axis) / dq ** 2)
        r.off_path = float(np.linalg.norm(x - r.fraction * axis))
        if r.off_path > tol:
            raise AnalysisError(f"geometries not on one linear path: {r.source} lies "
                                f"{r.off_path:.4f} amu^1/2 A off the line from the {ground.state} "
                                f"minimum ({ground.source}) to the {excited.state} minimum "
                                f"({excited.source}), Delta Q {dq:.4f}")
    return dq


def check_minimum(runs: list[Run], lowest: Run, dq: float) -> None:
    """The state's parabola (free minimum) must bottom out at its lowest calculation."""
    f = np.array([r.fraction for r in runs])
    e = np.array([r.energy for r in runs])
    n_geometries = np.unique(np.round(f, 6)).size
    if n_geometries < 3:
        raise AnalysisError(f"the {lowest.state} state was computed at {n_geometries} "
                            "geometries; a CC diagram needs at least 3 per state")
    c2, c1, _ = np.polyfit(f, e, 2)
    if c2 <= 0:
        raise AnalysisError(f"the {lowest.state}-state energies have no minimum along the path "
                            "(the surface curves downwards)")
    f_min = -c1 / (2 * c2)
    if abs(f_min - lowest.fraction) > MINIMUM_TOL:
        raise AnalysisError(f"missing minimum: the {lowest.state}-state energies fall towards "
                            f"f = {f_min:.2f} of the path, beyond its lowest calculation "
                            f"({lowest.source}, f = {lowest.fraction:.2f}); its relaxed minimum "
                            "is not in the tree")


def luminescence_from_runs(root: str | Path, charges: tuple[int, int] | None = None,
                           host: str | Path | None = None, band_edge_eV: float | None = None,
                           correction_eV: float | None = None, temperature_K: float = 295.0,
                           broadening_fwhm_meV: float = 20.0,
                           measured_peak_nm: float | None = None,
                           measured_fwhm_nm: float | None = None,
                           log: Callable[[str], None] = lambda m: None) -> LuminescenceResult:
    """The luminescence result of the finished calculations under ROOT (module docstring).
    The charge route needs `charges` (q_initial, q_final) and the band edge: `host` (a run of
    the host at the same level of theory) or `band_edge_eV`; `correction_eV` = E_corr(q_i) -
    E_corr(q_f). Every inconsistency is one AnalysisError."""
    root = Path(root)
    if charges is not None and host is None and band_edge_eV is None:
        raise AnalysisError("the charge route needs the host's band edge: give `host` (a run "
                            "of the host at the same level of theory) or `band_edge_eV`")
    host_dir = None
    if host is not None:
        host_dir = Path(host) if Path(host).is_dir() else Path(host).parent
    runs = find_runs(root, host_dir)
    check_consistent(runs)
    route, g_state, x_state = split_states(runs, charges)
    by_state = {s: [r for r in runs if r.state == s] for s in (g_state, x_state)}
    for s, rs in by_state.items():
        if not rs:
            what = ("constrained-occupation (excited-state)" if s == "excited" else s)
            raise AnalysisError(f"missing minimum: no {what} calculation in {root}")
    ground = min(by_state[g_state], key=lambda r: r.energy)
    excited = min(by_state[x_state], key=lambda r: r.energy)
    dq = place_on_path(runs, ground, excited)
    for s, lowest in ((g_state, ground), (x_state, excited)):
        check_minimum(by_state[s], lowest, dq)
    log(f"  {len(runs)} calculations: {len(by_state[g_state])} {g_state}, "
        f"{len(by_state[x_state])} {x_state}; Delta Q {dq:.4f} amu^1/2 A")
    offset, route_part, notes = 0.0, None, []
    if route == "charge":
        route_part = _charge_route(charges, ground.doc, host, band_edge_eV, correction_eV)
        offset = route_part.initial_offset_eV
        if correction_eV is None:
            from perovdefect.optics.charge_route import NO_CORRECTION
            notes.append(NO_CORRECTION)
    g, x = (_one_per_geometry(by_state[st], notes, root) for st in (g_state, x_state))
    doc = ground.doc
    atoms = doc.structure.to_atoms()
    periodic = all(atoms.pbc)
    result = assemble(
        atoms, excited.doc.structure.to_atoms(), [r.fraction for r in g],
        [r.energy for r in g], [r.fraction for r in x], [r.energy + offset for r in x],
        temperature_K=temperature_K, broadening_fwhm_meV=broadening_fwhm_meV,
        measured_peak_nm=measured_peak_nm, measured_fwhm_nm=measured_fwhm_nm, warnings=notes,
        structure=f"{atoms.get_chemical_formula()} ({root.resolve().name})",
        model="periodic" if periodic else "cluster",
        n_atoms=len(atoms), charge=int(round(doc.charge or 0)),
        image_distance_A=image_distance_A(atoms) if periodic else None, code=doc.code,
        level_of_theory=doc.level_of_theory, excitation=_excitation(route, excited.doc,
                                                                    charges),
        charge_route=route_part,
        from_runs=RunsSource(root=str(root), route=route, ground_state=g_state,
                             excited_state=x_state, ground_minimum=str(ground.source),
                             excited_minimum=str(excited.source),
                             points=[RunPoint(state=r.state, fraction=r.fraction,
                                              energy_eV=r.energy, source=str(r.source),
                                              off_path_amu05_A=r.off_path)
                                     for r in sorted(runs, key=lambda r: (
                                         r.state != g_state, r.fraction, str(r.source)))]))
    if route == "delta-scf":
        _add_radiative(result, excited, log)
    else:
        result.warnings.append("no radiative lifetime on the charge route (the dipole between "
                               "the band-edge carrier and the defect state is not computed)")
    return result


def _one_per_geometry(runs: list[Run], notes: list[str], root: Path) -> list[Run]:
    """The runs of one state sorted along the path, one per geometry: of two at the same
    geometry (a relaxation and the static at its minimum) the lower energy is kept."""
    out: list[Run] = []
    for r in sorted(runs, key=lambda r: (r.fraction, r.energy)):
        if out and abs(r.fraction - out[-1].fraction) < 1e-6:
            a, b = (x.source.relative_to(root) for x in (r, out[-1]))
            notes.append(f"{a} and {b}: one {r.state} geometry computed twice "
                         f"({1e3 * (r.energy - out[-1].energy):+.2f} meV apart); the lower "
                         "energy is used")
            continue
        out.append(r)
    return out


def _excitation(route: str, doc: ElectronicStructure, charges) -> str:
    if route == "charge":
        from perovdefect.optics.charge_route import describe
        return describe(*charges)
    spin, hole, electron = _promoted(doc)
    return (f"{spin}:homo->lumo" if electron == hole + 1
            else f"{spin}:band {hole}->band {electron}")


def _charge_route(charges, final: ElectronicStructure, host, band_edge_eV, correction_eV
                  ) -> ChargeRoute:
    from perovdefect.optics.charge_route import band_edge
    q_i, q_f = charges
    edge = band_edge(q_i, q_f)
    if band_edge_eV is not None:
        value, source = float(band_edge_eV), "given by the user"
    elif host is not None:
        from perovdefect.optics.charge_route import _edge_from_host
        from perovdefect.parsers import parse
        hdoc = parse(host)
        diff = hdoc.theory_differences(final)
        if diff:
            raise AnalysisError(f"{host}: the host is at another level of theory than the "
                                f"defect runs ({'; '.join(diff)})")
        value, source = _edge_from_host(hdoc, edge, str(host)), f"{edge.upper()} of {host}"
    else:
        raise AnalysisError("the charge route needs the host's band edge: give `host` (a run "
                            "of the host at the same level of theory) or `band_edge_eV`")
    return ChargeRoute(charge_initial=q_i, charge_final=q_f, band_edge=edge,
                       band_edge_eV=value, band_edge_source=source, correction_eV=correction_eV,
                       correction_detail="given" if correction_eV is not None else "",
                       initial_offset_eV=(q_i - q_f) * value + (correction_eV or 0.0))


def _add_radiative(result: LuminescenceResult, excited: Run, log) -> None:
    """The radiative lifetime of the excited minimum (the DeltaSCF chain's rule, run._radiative)
    where its run kept what its backend needs; otherwise the reason goes to the warnings."""
    from perovdefect.optics.run import _radiative
    spin = result.excitation.split(":")[0]
    radiative, why = _radiative(excited.source, f"{spin}:homo->lumo", result.cc.e_em_eV, log)
    result.radiative = radiative
    result.warnings.extend(why)
