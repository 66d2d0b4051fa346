"""The report's headline: the predicted emission (a total-energy DeltaSCF result with its line
shape and radiative lifetime) beside the measured PL and the measured per-level lifetimes.

A Kohn-Sham level is never the headline: it is a screen (perovdefect.levels), shown in its own
section. Units: eV, nm, ns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from perovdefect.documents import Part
from perovdefect.report.particles import LevelRow

if TYPE_CHECKING:
    from perovdefect.report.model import PLReference


class MeasuredLifetime(Part):
    """A lifetime of the photon analysis: the median over particles of one kind of level."""

    level: str
    tau_ns: float
    n_particles: int


class EmissionHeadline(Part):
    """Predicted emission of one luminescence result beside the measurement (deviation =
    predicted - measured; ratio = predicted / measured)."""

    structure: str
    model: str
    n_atoms: int | None = None
    level_of_theory: str
    #: how the number came to the report: "computed" (a run given to the report) or the
    #: shipped result's provenance (command that regenerates it, date, wall time)
    origin: str
    predicted_peak_eV: float
    predicted_peak_nm: float
    predicted_fwhm_nm: float
    measured_peak_nm: float | None = None
    measured_fwhm_nm: float | None = None
    peak_deviation_nm: float | None = None
    radiative_lifetime_ns: float | None = None
    lifetime_note: str | None = None
    measured_lifetimes: list[MeasuredLifetime] = []
    lifetime_ratios: dict[str, float] = {}
    limitations: list[str] = []
    #: the PL peak moved by a hybrid's single points at the PBE minima (None: not run), and
    #: what it is (functional, settings, the shifts, and the SOC estimate where there is one)
    hybrid_peak_nm: float | None = None
    hybrid_note: str | None = None


def measured_lifetimes(level_rows: list[list[LevelRow]]) -> list[MeasuredLifetime]:
    """Median lifetime (ns) of the brightest emitting level ("ON") and, where a particle has
    more than one emitting level, of its dimmest ("GRAY"), over the particles."""
    on, gray = [], []
    for rows in level_rows:
        emitting = [r for r in rows if r.kind == "emitting" and r.tau_ns]
        if not emitting:
            continue
        emitting.sort(key=lambda r: r.counts_per_bin)
        on.append(emitting[-1].tau_ns)
        if len(emitting) > 1:
            gray.append(emitting[0].tau_ns)
    return [MeasuredLifetime(level=name, tau_ns=float(np.median(v)), n_particles=len(v))
            for name, v in (("ON (brightest level)", on), ("GRAY (dimmest emitting level)",
                                                          gray)) if v]


def emission_headline(lum, pl_reference: PLReference | None,
                      lifetimes: list[MeasuredLifetime]) -> EmissionHeadline:
    """The headline of one LuminescenceResult `lum` (see perovdefect.optics.run)."""
    s = lum.summary()
    measured_nm = pl_reference.pl_nm if pl_reference else None
    measured_fwhm = pl_reference.fwhm_nm if pl_reference else None
    if lum.comparison is not None:
        measured_nm = lum.comparison.measured_peak_nm
        measured_fwhm = lum.comparison.measured_fwhm_nm
    tau = s.get("radiative_lifetime_ns")
    prov = getattr(lum, "provenance", None)
    origin = "computed" if prov is None else (
        f"shipped result computed {prov.computed_on} in {prov.wall_time_s / 60:.0f} min on "
        f"{prov.cores} cores; regenerate with: {prov.command}")
    limitations = []
    if lum.model == "cluster":
        limitations.append("isolated cluster: its free surface atoms relax far more than in "
                           "the crystal (Delta Q and the width are overestimated)")
    else:
        limitations.append(f"periodic supercell of {lum.n_atoms} atoms (images "
                           f"{lum.image_distance_A:.1f} A apart), Gamma only; not converged "
                           "with the cell size unless a larger cell agrees")
    lc = getattr(lum, "level_correction", None)
    if lc is None:
        limitations.append(f"{lum.level_of_theory} total energies (semilocal: no HSE06/SOC in "
                           "the relaxation); 1D CC model with harmonic fits")
    else:
        limitations.append(f"{lum.level_of_theory} relaxations and CC diagram, "
                           f"{lc.functional} only as single points at the PBE minima; "
                           f"{lc.soc}; 1D CC model with harmonic fits")
    hybrid_note = None if lc is None else (
        f"{lc.level_of_theory}: ZPL {lc.corrected_zpl_eV:.3f} eV ({lc.shift_zpl_eV:+.3f}), "
        f"emission {lc.corrected_em_eV:.3f} eV ({lc.shift_em_eV:+.3f}); PBE line shape"
        + ("" if lc.soc_estimate is None else
           f"; +SOC (estimate): emission {lc.corrected_soc_em_eV:.3f} eV, PL peak "
           f"{lc.corrected_soc_pl_peak_nm:.1f} nm ({lc.soc})"))
    return EmissionHeadline(
        structure=lum.structure, model=lum.model, n_atoms=lum.n_atoms,
        level_of_theory=lum.level_of_theory, origin=origin,
        predicted_peak_eV=s["predicted_pl_peak_eV"], predicted_peak_nm=s["predicted_pl_peak_nm"],
        predicted_fwhm_nm=s["predicted_pl_fwhm_nm"], measured_peak_nm=measured_nm,
        measured_fwhm_nm=measured_fwhm,
        peak_deviation_nm=None if measured_nm is None else
        s["predicted_pl_peak_nm"] - measured_nm,
        radiative_lifetime_ns=tau, lifetime_note=s.get("radiative_note"),
        measured_lifetimes=lifetimes,
        lifetime_ratios={m.level: tau / m.tau_ns for m in lifetimes} if tau else {},
        limitations=limitations, hybrid_note=hybrid_note,
        hybrid_peak_nm=None if lc is None else lc.corrected_pl_peak_nm)


def pick_headline_result(results: list) -> Any | None:
    """The luminescence result to headline: a periodic one before a cluster (the crystal is
    the physical model), the largest cell among them."""
    if not results:
        return None
    return max(results, key=lambda r: (r.model == "periodic", r.n_atoms or 0))
