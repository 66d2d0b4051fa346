"""Luminescence by the charge-state route, through any backend (as atomate2's
ConfigurationCoordinateMaker and pymatgen-analysis-defects' ccd do it): the defect relaxed in
two charge states q_initial and q_final, both charge states computed at geometries interpolated
between the two minima, the host's band edge for the carrier, then the same CC diagram, line
shape and comparison as the DeltaSCF chain (perovdefect.optics.assemble).

Emission: q_initial with a carrier at the band edge -> q_final (V_Br^+ + e(CBM) -> V_Br^0 is
charges (1, 0)). Each step is a durable backend step in its own directory under ROOT:
relax-q{q}, cc-q{q}{f:+.2f} for both charges, host (the band edge); the result is
ROOT/luminescence.json (a LuminescenceResult with its charge_route)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from perovdefect.calcs.backend import Backend
from perovdefect.calcs.protocol import Protocol
from perovdefect.errors import AnalysisError
from perovdefect.optics.assemble import assemble
from perovdefect.optics.geometry import interpolate_geometries
from perovdefect.optics.routes import ChargeRoute
from perovdefect.optics.run import (FRACTIONS, PERIODIC_KPOINTS, RESULT, LuminescenceResult,
                                    image_distance_A, step_runner)
from perovdefect.structures.record import StructureRecord

NO_CORRECTION = ("no finite-size correction applied (E_corr(q_initial) - E_corr(q_final) of "
                 "the two relaxed charged cells, e.g. eFNV): ZPL, absorption and emission "
                 "lack it; Delta Q, hbar omega and S do not depend on it")


def band_edge(q_initial: int, q_final: int) -> str:
    """The host band the carrier comes from: an electron from the CBM when the defect gains
    one (q_final = q_initial - 1), a hole from the VBM when it loses one."""
    if abs(q_initial - q_final) != 1:
        raise AnalysisError(f"the charge route changes the charge by one carrier, got "
                            f"{q_initial:+d} -> {q_final:+d}")
    return "cbm" if q_initial > q_final else "vbm"


def describe(q_initial: int, q_final: int) -> str:
    """e.g. 'q+1 + e(CBM) -> q+0'."""
    carrier = "e(CBM)" if band_edge(q_initial, q_final) == "cbm" else "h(VBM)"
    return f"q{q_initial:+d} + {carrier} -> q{q_final:+d}"


def _edge_from_host(doc, edge: str, source: str) -> float:
    value = doc.cbm_eV if edge == "cbm" else doc.vbm_eV
    if doc.gap_eV is None or value is None:
        raise AnalysisError(f"{source}: the host calculation has no band gap, so no "
                            f"{edge.upper()} for the carrier ({'; '.join(doc.warnings) or '-'})")
    return float(value)


def run_charge_luminescence(initial: StructureRecord, final: StructureRecord,
                            backend: Backend, root: str | Path,
                            host: StructureRecord | None = None,
                            band_edge_eV: float | None = None,
                            correction_eV: float | None = None, correction_detail: str = "",
                            fractions: tuple[float, ...] = FRACTIONS,
                            temperature_K: float = 295.0, broadening_fwhm_meV: float = 20.0,
                            measured_peak_nm: float | None = None,
                            measured_fwhm_nm: float | None = None,
                            resources: dict | None = None,
                            log: Callable[[str], None] = print, **physics) -> LuminescenceResult:
    """Run (or resume) the charge-state route of the defect records `initial` (charge q_i) and
    `final` (q_f, same atoms) under ROOT. The band edge is `band_edge_eV` or that of a static
    step of `host` with the same physics; `correction_eV` = E_corr(q_i) - E_corr(q_f) (None:
    none applied, said in the warnings)."""
    q_i, q_f = initial.charge, final.charge
    edge = band_edge(q_i, q_f)
    if initial.is_cluster or final.is_cluster:
        raise AnalysisError("the charge route needs a periodic cell: the carrier comes from a "
                            "band edge of the host crystal (use the DeltaSCF route for clusters)")
    if initial.atoms.get_chemical_symbols() != final.atoms.get_chemical_symbols():
        raise AnalysisError("the two charge states must hold the same atoms in the same order")
    if host is None and band_edge_eV is None:
        raise AnalysisError("the charge route needs the host (its band edge) or band_edge_eV")
    if 0.0 not in fractions or 1.0 not in fractions:
        raise AnalysisError("the interpolation fractions must include 0 (ground minimum) and "
                            "1 (excited minimum)")
    root = Path(root)
    physics = {k: v for k, v in physics.items() if k != "charge"}
    if not physics.get("kpoints") and not physics.get("kpoint_density_inv_A"):
        physics["kpoints"] = PERIODIC_KPOINTS
    step, timings = step_runner(backend, root, resources, log)

    minima = {}
    for rec, q in ((final, q_f), (initial, q_i)):
        name = f"relax-q{q:+d}"
        step(rec, Protocol(name=name, task="relax", **physics), name)
        minima[q] = backend.relaxed_structure(root / name, rec)
        if minima[q] is None:
            raise AnalysisError(f"{backend.name} left no relaxed structure in {root / name}")
    geoms = interpolate_geometries(minima[q_f].atoms, minima[q_i].atoms, fractions)
    energies: dict[int, list[float]] = {q_f: [], q_i: []}
    for f, atoms in zip(fractions, geoms):
        for rec, q in ((final, q_f), (initial, q_i)):
            point = StructureRecord(atoms.copy(), dict(rec.metadata))
            energies[q].append(step(point, Protocol(name=f"cc-q{q:+d}", **physics),
                                    f"cc-q{q:+d}{f:+.2f}").total_energy_eV)
    source = "given (band_edge_eV)"
    if band_edge_eV is None:
        doc = step(host, Protocol(name="host", **physics), "host")
        band_edge_eV = _edge_from_host(doc, edge, str(root / "host"))
        source = f"{edge.upper()} of the host step {root / 'host'}"
    offset = (q_i - q_f) * band_edge_eV + (correction_eV or 0.0)
    route = ChargeRoute(charge_initial=q_i, charge_final=q_f, band_edge=edge,
                        band_edge_eV=band_edge_eV, band_edge_source=source,
                        correction_eV=correction_eV,
                        correction_detail=correction_detail or ("" if correction_eV is None
                                                                else "given"),
                        initial_offset_eV=offset)
    static = Protocol(**physics)
    result = assemble(
        minima[q_f].atoms, minima[q_i].atoms, fractions, energies[q_f], fractions,
        [e + offset for e in energies[q_i]], temperature_K=temperature_K,
        broadening_fwhm_meV=broadening_fwhm_meV, measured_peak_nm=measured_peak_nm,
        measured_fwhm_nm=measured_fwhm_nm,
        warnings=[NO_CORRECTION] if correction_eV is None else [],
        structure=final.name, model="periodic", n_atoms=len(final.atoms), charge=q_f,
        image_distance_A=image_distance_A(final.atoms),
        kpoints=list(static.kpoints) if static.kpoints else None, code=backend.name,
        level_of_theory=static.label, excitation=describe(q_i, q_f), charge_route=route,
        timings_s=timings)
    result.warnings.append("no radiative lifetime on the charge route (the dipole between the "
                           "band-edge carrier and the defect state is not computed)")
    result.to_json(root / RESULT, indent=1)
    return result
