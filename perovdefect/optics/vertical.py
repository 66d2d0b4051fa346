"""Vertical transitions by total-energy differences.

* Periodic cells, charge change at frozen geometry (the excited carrier taken from or given to a
  band edge), with a correction term the caller supplies (GKFO: Gake, Kumagai, Freysoldt, Oba,
  PRB 101, 020102(R) (2020), as computed by pydefect):
      dE = E(q_f; R_i) - E(q_i; R_i) + (q_f - q_i) E_edge + E_corr
  e.g. emission of a donor-bound electron recombining with a hole at the VBM: q_i = q,
  q_f = q + 1, E_edge = E_VBM, dE < 0 and the photon carries -dE. Absorption (an electron
  excited from the defect to the CBM): q_f = q_i + 1, E_edge = E_CBM, dE > 0.
* Isolated clusters, DeltaSCF (constrained occupations) at the two relaxed geometries:
      E_abs = E_exc(R_gs) - E_gs(R_gs), E_em = E_exc(R_exc) - E_gs(R_exc),
      ZPL = E_exc(R_exc) - E_gs(R_gs).
"""

from __future__ import annotations

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.optics.documents import DeltaSCFTransitions, VerticalTransition
from perovdefect.units import ev_to_nm


def charge_transition_energy(energy_initial_eV: float, energy_final_eV: float,
                             charge_initial: int, charge_final: int, band_edge_eV: float,
                             *, correction_eV: float | None,
                             correction_detail: str = "") -> VerticalTransition:
    """Vertical charge-changing transition at the initial state's frozen geometry.

    Args:
        energy_initial_eV: total energy E(q_i; R_i) of the relaxed initial state (eV).
        energy_final_eV: total energy E(q_f; R_i) at the same, frozen geometry (eV).
        charge_initial / charge_final: q_i, q_f (differ by exactly 1).
        band_edge_eV: the band edge that gives or takes the carrier (VBM or CBM, eV, on the
            total energies' scale).
        correction_eV: E_corr, the finite-size correction difference for this transition
            (e.g. GKFO from pydefect); required, 0.0 only when stated.
        correction_detail: where the correction came from.
    """
    if correction_eV is None:
        raise AnalysisError("state the correction term E_corr (eV) of the vertical transition "
                            "(GKFO for periodic cells; 0.0 only if none applies)")
    if abs(int(charge_final) - int(charge_initial)) != 1:
        raise AnalysisError(f"a one-carrier vertical transition changes the charge by 1, got "
                            f"{charge_initial} -> {charge_final}")
    vals = [energy_initial_eV, energy_final_eV, band_edge_eV, correction_eV]
    if not np.all(np.isfinite(vals)):
        raise AnalysisError("energies must be finite")
    de = (energy_final_eV - energy_initial_eV + (charge_final - charge_initial) * band_edge_eV
          + correction_eV)
    if de == 0:
        raise AnalysisError("zero transition energy")
    photon = abs(de)
    return VerticalTransition(charge_initial=int(charge_initial),
                              charge_final=int(charge_final),
                              energy_initial_eV=energy_initial_eV,
                              energy_final_eV=energy_final_eV, band_edge_eV=band_edge_eV,
                              correction_eV=float(correction_eV),
                              correction_detail=correction_detail or "supplied by the caller",
                              delta_energy_eV=float(de), photon_energy_eV=float(photon),
                              photon_nm=float(ev_to_nm(photon)),
                              kind="absorption" if de > 0 else "emission")


def delta_scf_transitions(e_ground_at_ground_eV: float, e_excited_at_ground_eV: float,
                          e_ground_at_excited_eV: float, e_excited_at_excited_eV: float
                          ) -> DeltaSCFTransitions:
    """DeltaSCF bookkeeping of a cluster: four total energies (eV), the ground (gs) and excited
    (exc) electronic states each at the relaxed ground and excited geometries.

    E_abs >= ZPL >= E_em holds when both geometries are minima of their own surfaces; if not,
    `consistent` is False and `warnings` says which relaxation is suspect.
    """
    vals = [e_ground_at_ground_eV, e_excited_at_ground_eV, e_ground_at_excited_eV,
            e_excited_at_excited_eV]
    if not np.all(np.isfinite(vals)):
        raise AnalysisError("energies must be finite")
    e_abs = e_excited_at_ground_eV - e_ground_at_ground_eV
    e_em = e_excited_at_excited_eV - e_ground_at_excited_eV
    zpl = e_excited_at_excited_eV - e_ground_at_ground_eV
    fc_g = e_ground_at_excited_eV - e_ground_at_ground_eV
    fc_e = e_excited_at_ground_eV - e_excited_at_excited_eV
    warnings = []
    if fc_g < 0:
        warnings.append(f"the ground state is {-fc_g:.3f} eV lower at the excited geometry: the "
                        "ground-state relaxation is not at its minimum")
    if fc_e < 0:
        warnings.append(f"the excited state is {-fc_e:.3f} eV lower at the ground geometry: "
                        "the excited-state relaxation is not at its minimum")
    if e_em <= 0 or e_abs <= 0:
        warnings.append("a non-positive transition energy: the excited state is not above the "
                        "ground state (wrong occupation constraint?)")
    if warnings:
        nm_abs = nm_em = None
    else:
        nm_abs, nm_em = float(ev_to_nm(e_abs)), float(ev_to_nm(e_em))
    return DeltaSCFTransitions(e_abs_eV=e_abs, e_em_eV=e_em, zpl_eV=zpl,
                               franck_condon_ground_eV=fc_g, franck_condon_excited_eV=fc_e,
                               stokes_shift_eV=e_abs - e_em, e_abs_nm=nm_abs, e_em_nm=nm_em,
                               consistent=not warnings, warnings=warnings)
