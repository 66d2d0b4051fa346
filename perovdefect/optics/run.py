"""A luminescence calculation through any backend with constrained occupations (DeltaSCF):
relaxed ground state, relaxed excited state, energies of both states along the linear
interpolation between the two minima, the CC diagram and the predicted PL line shape.

Each step is one durable backend step in its own directory under ROOT (a rerun recomputes
nothing finished); the result is ROOT/luminescence.json (LuminescenceResult)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pydantic import Field

from perovdefect.calcs.backend import Backend
from perovdefect.calcs.protocol import Protocol
from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError
from perovdefect.optics.documents import CCDiagram, DeltaSCFTransitions, PLComparison, PLSpectrum
from perovdefect.optics.geometry import interpolate_geometries
from perovdefect.optics.level_correction import LEVEL_PREFIX, LevelCorrection
from perovdefect.optics.radiative import OpticalTransition
from perovdefect.optics.routes import ChargeRoute, RunsSource
from perovdefect.structures.record import StructureRecord

RESULT = "luminescence.json"
#: interpolation fractions (0: relaxed ground geometry, 1: relaxed excited geometry); no
#: extrapolation: beyond the two minima MOM can land on another excited state (seen for
#: V_Br in Cs4PbBr6 at f = -0.4, 1.2 eV below the relaxed excited state)
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


#: k-points of every step of a periodic luminescence calculation unless given: the excitation is
#: a localised defect state, and constrained occupations are set at one k-point (Gamma)
PERIODIC_KPOINTS = (1, 1, 1)


class LuminescenceProvenance(Part):
    """Where a shipped (precomputed) luminescence result came from."""

    #: the command that regenerates it
    command: str
    computed_on: str
    wall_time_s: float
    cores: int
    versions: dict[str, str] = Field(default_factory=dict)
    note: str = ""


class LuminescenceResult(Document):
    """Everything `perovdefect luminescence RUN_DIR` prints (eV, meV, nm, amu^1/2 A)."""

    structure: str
    #: the model: "cluster" (isolated, vacuum around it) or "periodic" (a supercell)
    model: str = "cluster"
    n_atoms: int | None = None
    charge: int = 0
    #: shortest distance between periodic images of the defect (A; None for clusters)
    image_distance_A: float | None = None
    kpoints: list[int] | None = None
    code: str
    level_of_theory: str
    excitation: str
    temperature_K: float
    fractions: list[float]
    ground_energies_eV: list[float]
    excited_energies_eV: list[float]
    delta_scf: DeltaSCFTransitions
    cc: CCDiagram
    spectrum: PLSpectrum
    comparison: PLComparison | None = None
    #: spontaneous emission of the relaxed excited state (the promoted electron back into the
    #: hole, at the DeltaSCF emission energy); None where the code or run cannot give it
    radiative: OpticalTransition | None = None
    provenance: LuminescenceProvenance | None = None
    #: the transitions at a hybrid functional (single points at the two minima; None: not run)
    level_correction: LevelCorrection | None = None
    #: the charge-state route's carrier, band edge and correction (None: DeltaSCF)
    charge_route: ChargeRoute | None = None
    #: built from finished runs made elsewhere (`luminescence DIR --from-runs`)
    from_runs: RunsSource | None = None
    #: wall time of each step (s) as run (or as recorded by a step done before)
    timings_s: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    def summary(self) -> dict:
        c, s = self.cc, self.spectrum
        out = {"zpl_eV": c.zpl_eV, "absorption_eV": c.e_abs_eV, "emission_eV": c.e_em_eV,
               "delta_q_amu05_A": c.delta_q_amu05_A,
               "hbar_omega_ground_meV": c.ground.hbar_omega_meV,
               "hbar_omega_excited_meV": c.excited.hbar_omega_meV,
               "huang_rhys_ground": c.huang_rhys_ground,
               "huang_rhys_excited": c.huang_rhys_excited,
               "franck_condon_ground_eV": c.franck_condon_ground_eV,
               "franck_condon_excited_eV": c.franck_condon_excited_eV,
               "predicted_pl_peak_eV": s.peak_eV, "predicted_pl_peak_nm": s.peak_nm,
               "predicted_pl_fwhm_meV": 1e3 * s.fwhm_eV, "predicted_pl_fwhm_nm": s.fwhm_nm,
               "temperature_K": self.temperature_K, "model": self.model,
               "n_atoms": self.n_atoms, "charge": self.charge,
               "image_distance_A": self.image_distance_A}
        if self.radiative is not None:
            r = self.radiative
            out.update(radiative_lifetime_ns=r.radiative_lifetime_ns,
                       oscillator_strength=r.oscillator_strength, dipole_eA=r.dipole_eA,
                       radiative_note=f"{r.method}; n = {r.refractive_index:g} "
                       f"({r.refractive_index_source}), local field {r.local_field}")
        if self.level_correction is not None:
            lc = self.level_correction
            out[f"{lc.functional}_corrected"] = {
                "zpl_eV": lc.corrected_zpl_eV, "absorption_eV": lc.corrected_abs_eV,
                "emission_eV": lc.corrected_em_eV, "pl_peak_eV": lc.corrected_pl_peak_eV,
                "pl_peak_nm": lc.corrected_pl_peak_nm, "shift_zpl_eV": lc.shift_zpl_eV,
                "shift_emission_eV": lc.shift_em_eV, "level_of_theory": lc.level_of_theory,
                "soc": lc.soc}
            if lc.soc_estimate is not None:
                out[f"{lc.functional}+SOC_estimated"] = {
                    "zpl_eV": lc.corrected_soc_zpl_eV, "absorption_eV": lc.corrected_soc_abs_eV,
                    "emission_eV": lc.corrected_soc_em_eV,
                    "pl_peak_eV": lc.corrected_soc_pl_peak_eV,
                    "pl_peak_nm": lc.corrected_soc_pl_peak_nm,
                    "soc_shift_absorption_eV": lc.soc_estimate.shift_abs_eV,
                    "soc_shift_emission_eV": lc.soc_estimate.shift_em_eV,
                    "method": lc.soc_estimate.method}
        if self.comparison is not None:
            out["comparison"] = self.comparison.model_dump()
        if self.charge_route is not None:
            out["charge_route"] = self.charge_route.model_dump()
        return out


def run_luminescence(record: StructureRecord, backend: Backend, root: str | Path,
                     excitation: str, fractions: tuple[float, ...] = FRACTIONS,
                     temperature_K: float = 295.0, broadening_fwhm_meV: float = 20.0,
                     measured_peak_nm: float | None = None,
                     measured_fwhm_nm: float | None = None, resources: dict | None = None,
                     log: Callable[[str], None] = print, hybrid: str | None = None,
                     hybrid_backend: Backend | None = None, hybrid_cutoff_eV: float | None = None,
                     **physics) -> LuminescenceResult:
    """Run (or resume) the whole luminescence calculation of `record` under ROOT; with
    `hybrid` (e.g. "HSE06") also its transitions at that functional, as single points at the
    two minima in ROOT/level-<hybrid>/ through `hybrid_backend` (default: `backend`) at the
    plane-wave cutoff `hybrid_cutoff_eV` (eV; default: the protocol's)."""
    if 0.0 not in fractions or 1.0 not in fractions:
        raise AnalysisError("the interpolation fractions must include 0 (ground minimum) and "
                            "1 (excited minimum)")
    root = Path(root)
    resources = resources or {}
    periodic = not record.is_cluster
    if periodic and not physics.get("kpoints") and not physics.get("kpoint_density_inv_A"):
        physics = {**physics, "kpoints": PERIODIC_KPOINTS}
    ground_p = Protocol(name="relax-ground", task="relax", **physics)
    excited_p = Protocol(name="relax-excited", task="relax", excitation=excitation, **physics)
    backend.check(record, excited_p)
    hybrid_backend = hybrid_backend or backend
    hybrid_physics = {**physics, **({"cutoff_eV": hybrid_cutoff_eV} if hybrid_cutoff_eV else {})}
    if hybrid:  # refused before hours of semilocal work, not after
        hybrid_backend.check(record, Protocol(functional=hybrid, excitation=excitation,
                                              **hybrid_physics))

    step, timings = step_runner(backend, root, resources, log)

    step(record, ground_p, "relax-ground")
    ground = backend.relaxed_structure(root / "relax-ground", record)
    step(ground, excited_p, "relax-excited", root / "relax-ground")  # may start from its state
    excited = backend.relaxed_structure(root / "relax-excited", ground)
    if ground is None or excited is None:
        raise AnalysisError(f"{backend.name} left no relaxed structure under {root}")
    geoms = interpolate_geometries(ground.atoms, excited.atoms, fractions)
    recs = [StructureRecord(atoms, dict(record.metadata)) for atoms in geoms]
    # each surface is walked from its own minimum, each point after the one before it (the
    # first after that minimum's relaxation), whose state a backend may carry
    e_g = _surface(step, recs, fractions, Protocol(name="cc-ground", **physics), "cc-ground",
                   root / "relax-ground", start=0.0)
    e_e = _surface(step, recs, fractions, Protocol(name="cc-excited", excitation=excitation,
                                                   **physics),
                   "cc-excited", root / "relax-excited", start=1.0)
    # one assembly (CC diagram, vertical transitions, line shape) for every route; imported
    # here: optics.assemble builds LuminescenceResult, defined in this module
    from perovdefect.optics.assemble import assemble
    static = Protocol(**physics)
    result = assemble(
        ground.atoms, excited.atoms, fractions, e_g, fractions, e_e,
        temperature_K=temperature_K, broadening_fwhm_meV=broadening_fwhm_meV,
        measured_peak_nm=measured_peak_nm, measured_fwhm_nm=measured_fwhm_nm,
        structure=record.name, model="periodic" if periodic else "cluster",
        n_atoms=len(record.atoms), charge=record.charge,
        image_distance_A=image_distance_A(record.atoms) if periodic else None,
        kpoints=list(static.kpoints) if static.kpoints else None, code=backend.name,
        level_of_theory=static.label, excitation=excitation, timings_s=timings)
    result.radiative, why = _radiative(root / f"cc-excited{1.0:+.2f}", excitation,
                                       result.cc.e_em_eV, log)
    result.warnings.extend(why)
    if hybrid:
        from perovdefect.optics.level_correction import level_correction
        log(f"{hybrid} single points at the two minima ({hybrid_backend.name})")
        result.level_correction = level_correction(
            ground.atoms, excited.atoms, record, hybrid_backend,
            root / f"{LEVEL_PREFIX}{hybrid}",
            excitation, hybrid, hybrid_physics, result.delta_scf, result.spectrum.peak_eV,
            resources, log)
        result.warnings.extend(result.level_correction.warnings)
    result.to_json(root / RESULT, indent=1)
    return result


def _surface(step: Callable, recs: list[StructureRecord], fractions: tuple[float, ...],
             protocol: Protocol, prefix: str, minimum: Path, start: float) -> list[float]:
    """Total energies (eV) of one surface of the CC diagram at `fractions` (in their order),
    run as steps ROOT/<prefix><fraction> outward from the fraction `start` (its minimum) on
    each side: the point there after the relaxation in `minimum`, every other one after its
    neighbour towards `start`."""
    energies: dict[int, float] = {}
    at = [i for i, f in enumerate(fractions) if f == start]
    for side in (-1.0, 1.0):
        out = sorted((i for i, f in enumerate(fractions) if (f - start) * side > 0),
                     key=lambda i: abs(fractions[i] - start))
        before = minimum
        for i in at + out:
            name = f"{prefix}{fractions[i]:+.2f}"
            if i not in energies:
                energies[i] = step(recs[i], protocol, name, before).total_energy_eV
            before = minimum.parent / name
    return [energies[i] for i in range(len(fractions))]


def image_distance_A(atoms) -> float:
    """Shortest distance between periodic images of a cell (A, to 1 mA), as results store it."""
    from perovdefect.structures.supercells import image_distance
    return round(image_distance(atoms.cell.array), 3)


def step_runner(backend: Backend, root: Path, resources: dict | None,
                log: Callable[[str], None]) -> tuple[Callable, dict[str, float]]:
    """(step, timings): step(record, protocol, name[, previous]) runs one durable backend
    step in ROOT/name (after the step in `previous`, whose state it may reuse), logs its
    energy and wall time and returns its document; timings[name] (s) is the wall time as run,
    or for a step done before the wall time its run recorded."""
    timings: dict[str, float] = {}

    def step(rec: StructureRecord, p: Protocol, name: str, previous: Path | None = None):
        t0 = time.perf_counter()
        doc, skipped = backend.execute(rec, p, root / name, resources or {}, previous)
        timings[name] = round(float(doc.settings.get("wall_time_s") or 0.0) if skipped
                              else time.perf_counter() - t0, 1)
        log(f"  {name}: E = {doc.total_energy_eV:.4f} eV, {timings[name]:.0f} s"
            + (" (done before)" if skipped else ""))
        return doc

    return step, timings


def _radiative(run_dir: Path, excitation: str, emission_eV: float,
               log: Callable[[str], None]) -> tuple[OpticalTransition | None, list[str]]:
    """The radiative rate of the relaxed excited state: in its DeltaSCF occupations the
    promoted electron is the `homo` of the excited spin channel and the hole its `lumo`, so
    homo -> lumo is the emission; the photon energy is the total-energy emission (not a
    Kohn-Sham difference). (None, [why]) where the backend or the run cannot give a dipole."""
    from perovdefect.errors import PerovDefectError
    from perovdefect.optics.radiative import radiative_transition
    spin = excitation.split(":")[0]
    try:
        t = radiative_transition(run_dir, "homo", "lumo", spin, energy_eV=emission_eV,
                                 energy_source="DeltaSCF emission energy of the relaxed "
                                               "excited state")
    except PerovDefectError as exc:
        return None, [f"no radiative lifetime: {exc}"]
    if t.radiative_lifetime_ns is not None:
        log(f"  radiative lifetime {t.radiative_lifetime_ns:.3g} ns (n = "
            f"{t.refractive_index:g}), dipole {t.dipole_eA:.3f} e A")
    return t, []
