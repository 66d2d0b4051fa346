"""A luminescence chain's transitions at a hybrid functional through the ladder's cheap
correction: single points of both electronic states (ground, and the constrained-occupation
excited state) at the two semilocal minima, with no hybrid relaxation.

Each of the four (state, geometry) points is two durable backend steps in the correcting
settings (for GPAW plane waves, which its hybrids need):
1. the semilocal functional (PBE), whose ground state is saved;
2. the hybrid on the same ground state (GPAW: non-self-consistent, reusing it and its
   occupations; a code with self-consistent hybrids recomputes).
Each transition's shift is hybrid minus semilocal in the same settings, so the change of basis
or mode between the chain and the correction cancels, and the shift is added to the chain's
DeltaSCF transitions. The line shape keeps the semilocal CC diagram (hbar omega, S) and moves
with the shift of the ZPL.

SOC cannot enter the total energies (constrained occupations need collinear spin channels;
Protocol refuses excitation with SOC). Where the backend gives SOC level shifts, the cheap
correction of the seed table for gaps, gap(HSE06+SOC) ~ gap(HSE06) + gap(PBE+SOC) - gap(PBE),
is applied to the transitions in its Kohn-Sham form: a vertical transition moves the promoted
electron between two levels of the excited state's own calculation (semilocal, in the
correcting settings), so its SOC shift is estimated as the SOC shift of the electron's level
minus that of the hole's (absorption at the ground minimum, emission at the excited one; the
ZPL and the PL peak take the emission's). An estimate from Kohn-Sham levels, said so wherever
it is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ase import Atoms
from pydantic import Field

from perovdefect.calcs.backend import Backend
from perovdefect.calcs.protocol import Protocol
from perovdefect.documents import Part
from perovdefect.errors import AnalysisError
from perovdefect.optics.documents import DeltaSCFTransitions
from perovdefect.optics.vertical import delta_scf_transitions
from perovdefect.structures.record import StructureRecord
from perovdefect.units import ev_to_nm

#: the folder of a chain's hybrid single points is ROOT/<LEVEL_PREFIX><hybrid>/
LEVEL_PREFIX = "level-"
#: the semilocal transitions in the correcting settings may differ from the chain's by a basis
#: change; beyond this (eV) the two may not describe the same excited state: warned
MAX_REFERENCE_DEVIATION_EV = 0.1
#: the four points: (state, geometry) -> run directory name under ROOT/<hybrid>/
POINTS = (("ground", 0.0), ("excited", 0.0), ("ground", 1.0), ("excited", 1.0))
SOC_NOTE = ("without SOC: constrained occupations need collinear spin channels; the SOC "
            "shift of a Pb-6p-like defect state can be large in lead halides")
SOC_METHOD = ("SOC estimated from Kohn-Sham levels (second variation on the PBE excited "
              "state): shift of the electron's level minus the hole's; not a total energy")
#: below this weight of the SOC state on its collinear level the estimate carries a warning
MIN_SOC_WEIGHT = 0.5


class SocEstimate(Part):
    """The SOC shifts of the two vertical transitions (eV), from Kohn-Sham levels."""

    method: str = SOC_METHOD
    shift_abs_eV: float
    shift_em_eV: float
    #: per transition: {"electron": (band, shift eV, weight), "hole": (...)}
    levels: dict[str, dict[str, tuple[int, float, float]]]
    warnings: list[str] = Field(default_factory=list)


class LevelCorrection(Part):
    """The chain's transitions moved to a hybrid functional (eV; nm)."""

    functional: str
    #: e.g. "HSE06 (non-self-consistent) at the PBE geometries, gpaw pw 400 eV"
    level_of_theory: str
    #: the semilocal functional in the correcting settings, and the hybrid, at the four points
    reference: DeltaSCFTransitions
    hybrid: DeltaSCFTransitions
    energies_eV: dict[str, float]
    shift_abs_eV: float
    shift_zpl_eV: float
    shift_em_eV: float
    #: the chain's DeltaSCF transitions plus the shifts
    corrected_abs_eV: float
    corrected_zpl_eV: float
    corrected_em_eV: float
    #: the chain's PL peak moved by the ZPL shift (line shape of the semilocal CC diagram)
    corrected_pl_peak_eV: float
    corrected_pl_peak_nm: float
    soc: str = SOC_NOTE
    #: the SOC estimate and the transitions with it (None: the backend gives no SOC levels)
    soc_estimate: SocEstimate | None = None
    corrected_soc_abs_eV: float | None = None
    corrected_soc_zpl_eV: float | None = None
    corrected_soc_em_eV: float | None = None
    corrected_soc_pl_peak_eV: float | None = None
    corrected_soc_pl_peak_nm: float | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def level_correction(ground: Atoms, excited: Atoms, record: StructureRecord,
                     backend: Backend, root: Path, excitation: str, functional: str,
                     physics: dict, chain_dscf: DeltaSCFTransitions, chain_pl_peak_eV: float,
                     resources: dict | None = None, log: Callable[[str], None] = print
                     ) -> LevelCorrection:
    """Run (or resume) the eight single points under ROOT and return the correction."""
    from perovdefect.optics.run import step_runner
    step, timings = step_runner(backend, Path(root), resources, log)
    semilocal, hybrid = {}, {}
    for state, f in POINTS:
        rec = StructureRecord((ground if f == 0.0 else excited).copy(), dict(record.metadata))
        exc = excitation if state == "excited" else None
        name = f"{state}{f:+.2f}"
        semilocal[name] = step(rec, Protocol(name=f"pbe-{name}", excitation=exc, **physics),
                               f"pbe-{name}").total_energy_eV
        hybrid[name] = step(rec, Protocol(name=f"{functional.lower()}-{name}",
                                          functional=functional, excitation=exc, **physics),
                            f"{functional.lower()}-{name}", Path(root) / f"pbe-{name}"
                            ).total_energy_eV

    def four(en: dict) -> DeltaSCFTransitions:
        return delta_scf_transitions(en["ground+0.00"], en["excited+0.00"], en["ground+1.00"],
                                     en["excited+1.00"])

    ref, hyb = four(semilocal), four(hybrid)
    soc, soc_missing = soc_estimate(backend, Path(root), excitation, log)
    notes = [f"{functional} correction, {name}: {w}"
             for name, t in (("PBE", ref), (functional, hyb)) for w in t.warnings]
    notes += [] if soc is None else soc.warnings
    for key in ("e_abs_eV", "zpl_eV", "e_em_eV"):
        gap = getattr(ref, key) - getattr(chain_dscf, key)
        if abs(gap) > MAX_REFERENCE_DEVIATION_EV:
            notes.append(f"{functional} correction: the PBE {key[:-3]} in its settings differs "
                         f"from the chain's by {gap:+.3f} eV: the two may not be the same "
                         "excited state")
    shifts = {k: getattr(hyb, k) - getattr(ref, k) for k in ("e_abs_eV", "zpl_eV", "e_em_eV")}
    peak = chain_pl_peak_eV + shifts["zpl_eV"]
    describe = backend.describe(Protocol(functional=functional, **physics))
    with_soc = {"soc": f"{SOC_NOTE} ({soc_missing})"} if soc is None else dict(
        soc=soc.method, soc_estimate=soc,
        corrected_soc_abs_eV=chain_dscf.e_abs_eV + shifts["e_abs_eV"] + soc.shift_abs_eV,
        corrected_soc_zpl_eV=chain_dscf.zpl_eV + shifts["zpl_eV"] + soc.shift_em_eV,
        corrected_soc_em_eV=chain_dscf.e_em_eV + shifts["e_em_eV"] + soc.shift_em_eV,
        corrected_soc_pl_peak_eV=peak + soc.shift_em_eV,
        corrected_soc_pl_peak_nm=ev_to_nm(peak + soc.shift_em_eV))
    return LevelCorrection(
        **with_soc, functional=functional,
        level_of_theory=f"{functional} at the PBE geometries ({describe['code']}"
                        + (f", {describe['basis']})" if describe.get("basis") else ")"),
        reference=ref, hybrid=hyb,
        energies_eV={**{f"PBE {k}": v for k, v in semilocal.items()},
                     **{f"{functional} {k}": v for k, v in hybrid.items()}},
        shift_abs_eV=shifts["e_abs_eV"], shift_zpl_eV=shifts["zpl_eV"],
        shift_em_eV=shifts["e_em_eV"],
        corrected_abs_eV=chain_dscf.e_abs_eV + shifts["e_abs_eV"],
        corrected_zpl_eV=chain_dscf.zpl_eV + shifts["zpl_eV"],
        corrected_em_eV=chain_dscf.e_em_eV + shifts["e_em_eV"],
        corrected_pl_peak_eV=peak, corrected_pl_peak_nm=ev_to_nm(peak), timings_s=timings,
        warnings=notes)


def soc_estimate(backend: Backend, root: Path, excitation: str,
                 log: Callable[[str], None] = print) -> tuple[SocEstimate | None, str]:
    """(estimate, ""): the SOC shifts of absorption and emission from the PBE excited states
    under ROOT (the module docstring says how); (None, why) where the backend gives no SOC
    level shifts or their calculation failed."""
    from perovdefect.calcs.document import ElectronicStructure
    from perovdefect.calcs.occupations import promotion
    from perovdefect.errors import PerovDefectError
    spin = {"up": 0, "down": 1}[excitation.split(":")[0]]
    shifts, levels, notes = {}, {}, []
    for key, f in (("absorption", 0.0), ("emission", 1.0)):
        run = root / f"pbe-excited{f:+.2f}"
        doc = ElectronicStructure.from_json(run / "result.json")
        pair = promotion(doc.occupations[spin][0])
        if pair is None:
            raise AnalysisError(f"{run}: no promoted electron in the excited spin channel")
        hole, electron = pair
        try:
            got = backend.soc_level_shifts(run, spin, [hole, electron])
        except PerovDefectError as exc:
            log(f"  no SOC estimate: {exc}")
            return None, f"no SOC estimate: {exc}"
        shifts[key] = got[electron][0] - got[hole][0]
        levels[key] = {"electron": (electron, *got[electron]), "hole": (hole, *got[hole])}
        notes += [f"{key}: the SOC state taken for the {who} level (band {band}) carries only "
                  f"{w:.2f} of it" for who, (band, _, w) in levels[key].items()
                  if w < MIN_SOC_WEIGHT]
        log(f"  SOC shift of the {key} (KS estimate): {shifts[key]:+.3f} eV")
    return SocEstimate(shift_abs_eV=shifts["absorption"], shift_em_eV=shifts["emission"],
                       levels=levels, warnings=notes), ""
