"""Vertical transitions between charge states at frozen geometry in a periodic cell, with the
GKFO finite-size correction (Gake, Kumagai, Freysoldt, Oba, PRB 101, 020102(R) (2020)).

Three finished calculations of the same supercell: the defect-free host, the relaxed initial
charge state q_i, and the final charge state q_f = q_i +- 1 at the initial state's geometry
(frozen: no atom moved). Each must carry its atomic-site potentials
(ElectronicStructure.site_potentials_V). pydefect does the physics: the initial state's eFNV
correction (make_efnv_correction, with the total, electronic + ionic, dielectric constant:
the initial state is relaxed, its images are screened by ions and electrons) and the GKFO
correction of the charge change (make_gkfo_correction: the added charge is screened by the
electrons only, eps_inf). This module checks the inputs, runs the two and does the energy
bookkeeping with perovdefect.optics.vertical.charge_transition_energy:

    dE = E(q_f; R_i) - E(q_i; R_i) + (q_f - q_i) E_edge + E_corr(GKFO)

Which band edge: the carrier that changes the defect's charge comes from or goes to a band of
the host, and that band's edge is E_edge (the host's VBM or CBM; the GKFO alignment terms put
the defect cells' potential on the host's scale). It is a choice of process, not a property
of the charges, so the caller names it:

    q_f = q_i - 1 (an electron joins the defect), e.g. V_Br^+ -> V_Br^0:
        edge CBM: a free electron at the CBM is captured, V_Br^+ + e(CBM) -> V_Br^0 + photon
                  (emission, photon = E_CBM - eps).
        edge VBM: an electron is lifted from the VBM onto the defect, V_Br^+ + photon ->
                  V_Br^0 + h(VBM) (absorption, photon = eps - E_VBM).
    q_f = q_i + 1 (an electron leaves the defect), e.g. V_Br^0 -> V_Br^+:
        edge VBM: the defect's electron recombines with a free hole at the VBM,
                  V_Br^0 + h(VBM) -> V_Br^+ + photon (emission, photon = eps - E_VBM): the
                  donor-bound-electron PL.
        edge CBM: photo-ionisation of the defect's electron into the CBM (absorption,
                  photon = E_CBM - eps).

eps = -dq (E_f - E_i + E_corr) is the defect's vertical level; each process has the kind
named above exactly when eps lies inside the host gap, which the result checks (warnings).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.errors import AnalysisError
from perovdefect.optics.documents import GkfoCorrectionTerms, GkfoTransition
from perovdefect.optics.vertical import charge_transition_energy

#: pydefect's Ewald accuracy: its default (15) leaves 0.3 % of the point-charge energy at
#: eps = 30 (0.09171 against the converged 0.09144 eV, 9-atom CsPbBr3 cell, measured against
#: pymatgen's EwaldSummation); 25 converges it to < 1e-6 eV there
EWALD_ACCURACY = 25.0

#: (dq, edge) -> (process, kind it has when the defect level lies inside the gap)
PROCESSES: dict[tuple[int, str], tuple[str, str]] = {
    (-1, "cbm"): ("an electron from the CBM is captured by the defect", "emission"),
    (-1, "vbm"): ("an electron is lifted from the VBM onto the defect (a hole is left at "
                  "the VBM)", "absorption"),
    (1, "vbm"): ("the defect's electron recombines with a hole at the VBM", "emission"),
    (1, "cbm"): ("the defect's electron is photo-ionised into the CBM", "absorption"),
}


def gkfo_vertical_transition(host: ElectronicStructure, initial: ElectronicStructure,
                             final: ElectronicStructure, band_edge: Literal["vbm", "cbm"], *,
                             dielectric_total: float | ArrayLike | None = None,
                             dielectric_electronic: float | ArrayLike | None = None,
                             compound: str | None = None,
                             position_tolerance_A: float = 1e-3,
                             lattice_tolerance_A: float = 1e-3,
                             ewald_accuracy: float = EWALD_ACCURACY) -> GkfoTransition:
    """GKFO-corrected vertical transition q_i -> q_f at the initial state's frozen geometry.

    Args:
        host / initial / final: the three finished calculations (same code and level of
            theory, same periodic supercell); `final` at exactly the geometry of `initial`.
        band_edge: "vbm" or "cbm", the host band the carrier comes from or goes to (module
            docstring).
        dielectric_total / dielectric_electronic: eps_0 (electronic + ionic) and eps_inf
            (scalar, 3 diagonal values or 3x3); each one not given comes from the shipped data
            (perovdefect.thermo.data) of `compound` (default: the host's reduced formula).
        position_tolerance_A: largest displacement (A) between the initial and final
            geometries still counted as frozen.

    Raises:
        AnalysisError: a non-periodic or unfinished calculation, different cells, charges
            not differing by 1, a final geometry that differs from the initial one, missing
            site potentials, no dielectric constant for the host, pydefect absent.
    """
    edge = str(band_edge).lower()
    if edge not in ("vbm", "cbm"):
        raise AnalysisError(f"band_edge must be 'vbm' or 'cbm', got {band_edge!r}")
    q_i, q_f = _charges(host, initial, final)
    structures = {what: _structure(doc, what) for what, doc in
                  (("host", host), ("initial", initial), ("final", final))}
    _same_cell(structures, lattice_tolerance_A)
    _frozen(structures["initial"], structures["final"], position_tolerance_A,
            f"final calculation {final.source}")
    _same_theory(host, initial, final)
    pots = {what: _site_potentials(doc, what, len(structures[what])) for what, doc in
            (("host", host), ("initial", initial), ("final", final))}
    if host.gap_eV is None or host.vbm_eV is None or host.cbm_eV is None:
        raise AnalysisError(f"host {host.source}: no band gap (partially occupied highest "
                            "band), so no band edge to take the carrier from")
    eps_0, eps_inf, source = resolve_dielectrics(
        compound or structures["host"].composition.reduced_formula, dielectric_total,
        dielectric_electronic)
    terms = gkfo_correction(q_i, q_f - q_i, structures, pots, eps_0, eps_inf, source,
                            ewald_accuracy)
    e_edge = host.vbm_eV if edge == "vbm" else host.cbm_eV
    detail = (f"GKFO via pydefect: pc {terms.pc_1st_term_eV:+.4f} {terms.pc_2nd_term_eV:+.4f},"
              f" alignment {terms.alignment_1st_term_eV:+.4f} "
              f"{terms.alignment_2nd_term_eV:+.4f} {terms.alignment_3rd_term_eV:+.4f} eV "
              f"({source})")
    vt = charge_transition_energy(initial.total_energy_eV, final.total_energy_eV, q_i, q_f,
                                  e_edge, correction_eV=terms.energy_eV,
                                  correction_detail=detail)
    dq = q_f - q_i
    level = -dq * (final.total_energy_eV - initial.total_energy_eV + terms.energy_eV)
    process, kind = PROCESSES[(dq, edge)]
    return GkfoTransition(
        process=f"q {q_i:+d} -> {q_f:+d}: {process}", band_edge=edge, transition=vt,
        correction=terms, uncorrected_delta_energy_eV=vt.delta_energy_eV - terms.energy_eV,
        host_vbm_eV=host.vbm_eV, host_cbm_eV=host.cbm_eV, host_gap_eV=host.gap_eV,
        vertical_level_above_vbm_eV=level - host.vbm_eV,
        sources={"host": str(host.source), "initial": str(initial.source),
                 "final": str(final.source)},
        warnings=_level_warnings(level - host.vbm_eV, host.gap_eV, vt.kind, kind)
        + _run_warnings(host=host, initial=initial, final=final))


def gkfo_correction(charge_initial: int, additional_charge: int, structures: dict,
                    site_potentials_V: dict[str, np.ndarray], dielectric_total: np.ndarray,
                    dielectric_electronic: np.ndarray, dielectric_source: str = "",
                    ewald_accuracy: float = EWALD_ACCURACY) -> GkfoCorrectionTerms:
    """The GKFO correction (eV) from pydefect: the eFNV correction of the initial state
    (make_efnv_correction, eps_0) and the correction of the added charge
    (make_gkfo_correction, eps_0 and eps_inf).

    Args:
        structures / site_potentials_V: "host", "initial" and "final" pymatgen Structures and
            their site potentials (V, felt by a positive charge, one per site).
        dielectric_total / dielectric_electronic: 3x3 eps_0 and eps_inf.
    """
    cr = _pydefect()
    # code-neutral functions (site potentials in, eV out) that pydefect keeps in its cli package
    import pydefect.cli.vasp.make_efnv_correction as efnv_mod
    import pydefect.cli.vasp.make_gkfo_correction as gkfo_mod

    calc = {what: cr(structure=structures[what], energy=0.0, magnetization=0.0,
                     potentials=[float(v) for v in site_potentials_V[what]])
            for what in ("host", "initial", "final")}
    try:
        efnv = efnv_mod.make_efnv_correction(charge_initial, calc["initial"], calc["host"],
                                             np.asarray(dielectric_total, float),
                                             accuracy=ewald_accuracy)
        gkfo = gkfo_mod.make_gkfo_correction(efnv, additional_charge, calc["final"],
                                             calc["initial"],
                                             np.asarray(dielectric_total, float),
                                             np.asarray(dielectric_electronic, float),
                                             accuracy=ewald_accuracy)
    except Exception as exc:  # pydefect raises its own classes (SupercellError, ...)
        raise AnalysisError(f"GKFO correction failed in pydefect: {type(exc).__name__}: "
                            f"{exc}") from None
    far = [s for s in efnv.sites if s.distance > efnv.defect_region_radius]
    return GkfoCorrectionTerms(
        charge_initial=int(charge_initial), additional_charge=int(additional_charge),
        dielectric_total=np.asarray(dielectric_total, float).tolist(),
        dielectric_electronic=np.asarray(dielectric_electronic, float).tolist(),
        dielectric_source=dielectric_source or "given",
        pc_1st_term_eV=float(gkfo.pc_1st_term), pc_2nd_term_eV=float(gkfo.pc_2nd_term),
        alignment_1st_term_eV=float(gkfo.alignment_1st_term),
        alignment_2nd_term_eV=float(gkfo.alignment_2nd_term),
        alignment_3rd_term_eV=float(gkfo.alignment_3rd_term),
        energy_eV=float(gkfo.correction_energy),
        initial_efnv_point_charge_eV=float(efnv.point_charge_correction),
        initial_efnv_alignment_eV=float(efnv.alignment_correction),
        initial_efnv_energy_eV=float(efnv.correction_energy),
        far_potential_change_V=float(gkfo.average_potential_diff_by_addition),
        defect_region_radius_A=float(efnv.defect_region_radius), n_sampled_sites=len(far),
        defect_frac_coords=[float(x) for x in efnv.defect_coords],
        ewald_accuracy=float(ewald_accuracy))


def resolve_dielectrics(compound: str, total: float | ArrayLike | None,
                        electronic: float | ArrayLike | None
                        ) -> tuple[np.ndarray, np.ndarray, str]:
    """(eps_0, eps_inf as 3x3, where they came from): the values given, else the shipped ones
    of `compound`; AnalysisError naming the argument to pass where none is shipped, or where
    eps_inf exceeds eps_0 (swapped?)."""
    from perovdefect.thermo.corrections import _dielectric_tensor
    from perovdefect.thermo.data import dielectric_constant
    out, sources = [], []
    for value, kind, arg in ((total, "total", "`dielectric_total` (eps_0 = electronic + ionic)"),
                             (electronic, "electronic", "`dielectric_electronic` (eps_inf)")):
        if value is None:
            try:
                rec = dielectric_constant(compound, kind)
            except AnalysisError as exc:
                raise AnalysisError(f"no {kind} dielectric constant for {compound} ({exc}): "
                                    f"pass {arg}") from None
            value = rec.value
            sources.append(f"eps {kind} {rec.value:g} (shipped data: {rec.source})")
        else:
            sources.append(f"eps {kind} given")
        out.append(_dielectric_tensor(value))
    if np.trace(out[1]) > np.trace(out[0]):
        raise AnalysisError(f"the electronic dielectric constant (eps_inf, trace/3 "
                            f"{np.trace(out[1]) / 3:g}) exceeds the total one (eps_0, "
                            f"{np.trace(out[0]) / 3:g}): swapped?")
    return out[0], out[1], "; ".join(sources)


def _pydefect():
    """pydefect's CalcResults class, its loggers quietened; AnalysisError when absent."""
    try:
        from vise import user_settings
        user_settings.logger.setLevel(logging.CRITICAL)
        from pydefect.analyzer.calc_results import CalcResults
    except ImportError:
        raise AnalysisError("the GKFO correction needs pydefect: pip install pydefect") from None
    logging.getLogger("pydefect").setLevel(logging.WARNING)
    return CalcResults


def _charges(host: ElectronicStructure, initial: ElectronicStructure,
             final: ElectronicStructure) -> tuple[int, int]:
    for what, doc in (("host", host), ("initial", initial), ("final", final)):
        if doc.charge is None or doc.total_energy_eV is None:
            raise AnalysisError(f"{what} calculation {doc.source}: no "
                                f"{'charge' if doc.charge is None else 'total energy'}")
    if abs(host.charge) > 1e-6:
        raise AnalysisError(f"host calculation {host.source} has charge {host.charge:+g}: the "
                            "host must be the neutral defect-free supercell")
    q_i, q_f = int(round(initial.charge)), int(round(final.charge))
    if abs(q_f - q_i) != 1:
        raise AnalysisError(f"a vertical one-carrier transition changes the charge by 1: "
                            f"initial {initial.source} has q = {q_i:+d}, final "
                            f"{final.source} q = {q_f:+d}")
    return q_i, q_f


def _structure(doc: ElectronicStructure, what: str):
    """The calculation's structure as a pymatgen Structure (periodic cells only)."""
    if doc.structure is None:
        raise AnalysisError(f"{what} calculation {doc.source}: no structure stored; re-parse "
                            "it with this perovdefect")
    if doc.is_cluster or not all(doc.structure.pbc):
        raise AnalysisError(f"{what} calculation {doc.source} is not a periodic cell: the GKFO "
                            "route is for supercells (clusters: DeltaSCF, no correction)")
    from pymatgen.io.ase import AseAtomsAdaptor
    return AseAtomsAdaptor.get_structure(doc.structure.to_atoms())


def _same_cell(structures: dict, tol_A: float) -> None:
    ref = structures["host"].lattice.matrix
    for what in ("initial", "final"):
        delta = np.abs(structures[what].lattice.matrix - ref).max()
        if delta > tol_A:
            raise AnalysisError(f"the {what} cell differs from the host's (max |delta| = "
                                f"{delta:.4f} A): all three calculations must use the same "
                                "supercell")


def _frozen(initial, final, tol_A: float, what: str) -> None:
    """The final geometry must be the initial one: same species in the same order, no atom
    displaced by more than tol_A (minimum image)."""
    if [s.species_string for s in initial] != [s.species_string for s in final]:
        raise AnalysisError(f"{what}: other atoms (or another order) than the initial "
                            "calculation: a vertical transition keeps the initial geometry")
    d = final.frac_coords - initial.frac_coords
    shift = np.linalg.norm((d - np.round(d)) @ initial.lattice.matrix, axis=1)
    if shift.max() > tol_A:
        i = int(np.argmax(shift))
        raise AnalysisError(f"{what}: not at the initial geometry (atom {i} "
                            f"{initial[i].species_string} moved {shift[i]:.4f} A > "
                            f"{tol_A:g} A): run the final charge state at the initial state's "
                            "relaxed geometry, without relaxing it (frozen)")


def _same_theory(*docs: ElectronicStructure) -> None:
    for doc in docs[1:]:
        diff = docs[0].theory_differences(doc)
        if diff:
            raise AnalysisError(f"{doc.source} and {docs[0].source}: {'; '.join(diff)}")


def _site_potentials(doc: ElectronicStructure, what: str, n_sites: int) -> np.ndarray:
    if doc.site_potentials_V is None:
        raise AnalysisError(f"{what} calculation {doc.source} has no site potentials "
                            "(site_potentials_V): rerun it with a backend that stores them")
    pot = np.asarray(doc.site_potentials_V, float)
    if pot.shape != (n_sites,) or not np.all(np.isfinite(pot)):
        raise AnalysisError(f"{what} calculation {doc.source}: need one finite site potential "
                            f"per atom ({n_sites}), got shape {pot.shape}")
    return pot


def _run_warnings(**docs: ElectronicStructure) -> list[str]:
    """Unconverged runs, and odd electron counts run without spin polarisation (a
    half-filled level whose total energy is not the doublet's)."""
    out = []
    for what, doc in docs.items():
        if not doc.converged:
            out.append(f"{what} calculation {doc.source} did not converge")
        n = doc.n_electrons
        if n is not None and abs(n - round(n)) < 1e-6 and round(n) % 2 and doc.nspins == 1 \
                and not doc.soc:
            out.append(f"{what} calculation {doc.source}: {round(n)} electrons, an odd count, "
                       "run without spin polarisation: its total energy is not the doublet's")
    return out


def _level_warnings(level_above_vbm_eV: float, gap_eV: float, kind: str, expected: str
                    ) -> list[str]:
    """Say so when the vertical level lies outside the host gap (the carrier is not bound
    and the process is not the one named)."""
    if 0.0 < level_above_vbm_eV < gap_eV and kind == expected:
        return []
    where = (f"{-level_above_vbm_eV:.3f} eV below the VBM" if level_above_vbm_eV <= 0 else
             f"{level_above_vbm_eV - gap_eV:.3f} eV above the CBM")
    return [f"the vertical level lies {where} (outside the {gap_eV:.3f} eV host gap): the "
            f"carrier is not bound to the defect, so this is a {kind}, not the {expected} "
            "the process names; a larger supercell or another level of theory may bind it"]
