"""Defect formation energies, charge-transition levels and the stable charge.

E_f(q, E_F) = E_def(q) - E_host - sum_i n_i mu_i + q (E_VBM + E_F) + E_corr(q)

Hand-written (a few lines of algebra on straight lines) rather than built on
pymatgen-analysis-defects' FormationEnergyDiagram, which needs Defect/ComputedStructureEntry
objects with structures and a phase diagram for every call; the test suite cross-checks these
numbers against that FormationEnergyDiagram built independently on the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.thermo.documents import (
    ChargeFormationEnergy,
    ChargeState,
    ChemicalPotentialLimit,
    Correction,
    FormationEnergiesAtLimit,
    FormationEnergyDiagram,
    StabilityRegion,
    TransitionLevel,
)

NO_CORRECTION = Correction(name="none", energy_eV=0.0, detail="no correction applied")


def lower_envelope_kinks(lines: Mapping[int, float]) -> list[tuple[int, int, float]]:
    """Kinks of min_q (b_q + q x) over the whole real line.

    Args:
        lines: charge q -> intercept b_q (formation energy at E_F = 0, eV).

    Returns:
        [(q_left, q_right, x)], x increasing: below x charge q_left is stable, above q_right.
    """
    if not lines:
        raise AnalysisError("no charge states given")
    qs = sorted(lines, reverse=True)  # at E_F -> -inf the most positive charge is lowest
    current = qs[0]
    kinks: list[tuple[int, int, float]] = []
    x_prev = -np.inf
    while True:
        best: tuple[float, int] | None = None
        for q in qs:
            if q >= current:
                continue
            x = (lines[q] - lines[current]) / (current - q)  # where b_cur + cur x = b_q + q x
            if x < x_prev - 1e-12:
                continue
            # earliest crossing wins; at a common crossing the lowest charge wins
            if best is None or x < best[0] - 1e-12 or (abs(x - best[0]) <= 1e-12 and q < best[1]):
                best = (x, q)
        if best is None:
            return kinks
        x, q = best
        kinks.append((current, q, float(x)))
        current, x_prev = q, x


def _corrections(charges: Sequence[int],
                 corrections: Mapping[int, Sequence[Correction] | Correction | float] | None
                 ) -> dict[int, list[Correction]]:
    out: dict[int, list[Correction]] = {}
    corrections = corrections or {}
    unknown = set(corrections) - set(charges)
    if unknown:
        raise AnalysisError(f"corrections given for charge(s) {sorted(unknown)} that have no "
                            "total energy")
    for q in charges:
        c = corrections.get(q)
        if c is None:
            out[q] = [NO_CORRECTION]
        elif isinstance(c, Correction):
            out[q] = [c]
        elif isinstance(c, (int, float)):
            out[q] = [Correction(name="user", energy_eV=float(c))]
        else:
            out[q] = list(c) or [NO_CORRECTION]
    return out


def formation_energy_diagram(
    defect: str,
    defect_energies_eV: Mapping[int, float],
    host_energy_eV: float,
    atoms_added: Mapping[str, int],
    vbm_eV: float,
    band_gap_eV: float,
    limits: StabilityRegion | Sequence[ChemicalPotentialLimit]
    | Mapping[str, Mapping[str, float]],
    corrections: Mapping[int, Sequence[Correction] | Correction | float] | None = None,
) -> FormationEnergyDiagram:
    """Formation energies of every charge state at every chemical-potential limit.

    Args:
        defect: a name, e.g. "V_Br".
        defect_energies_eV: charge q -> total energy of the defect cell E_def(q) (eV).
        host_energy_eV: total energy of the defect-free cell of the same size (eV).
        atoms_added: n_i, atoms added (+) or removed (-): {"Br": -1} for V_Br.
        vbm_eV: host VBM on the same energy scale as the total energies (eV).
        band_gap_eV: host gap (eV); transition levels in [0, gap] are listed.
        limits: a StabilityRegion, its ChemicalPotentialLimit parts, or
            label -> {element: absolute mu_i (eV/atom)}.
        corrections: charge -> correction(s) (Correction parts, or a float in eV taken as a
            user correction). A charge without one gets the explicit entry name='none'.

    Returns:
        FormationEnergyDiagram with formation energies at E_F = VBM per limit (slope = q),
        transition levels and the corrections applied.
    """
    if not defect_energies_eV:
        raise AnalysisError(f"{defect}: no charge states given")
    charges = sorted(int(q) for q in defect_energies_eV)
    if band_gap_eV <= 0:
        raise AnalysisError(f"band gap must be positive, got {band_gap_eV} eV")
    values = [host_energy_eV, vbm_eV, *defect_energies_eV.values()]
    if not np.all(np.isfinite(values)):
        raise AnalysisError(f"{defect}: energies must be finite")
    corr = _corrections(charges, corrections)
    states = [ChargeState(charge=q, total_energy_eV=float(defect_energies_eV[q]),
                          corrections=corr[q],
                          correction_total_eV=float(sum(c.energy_eV for c in corr[q])))
              for q in charges]
    if isinstance(limits, StabilityRegion):
        limits = limits.limits
    if isinstance(limits, Mapping):
        mus = {str(k): {el: float(x) for el, x in v.items()} for k, v in limits.items()}
    else:
        mus = {lim.label: dict(lim.mu_eV) for lim in limits}
    if not mus:
        raise AnalysisError("no chemical-potential limits given")
    at_limits = []
    ediff = {s.charge: s.total_energy_eV + s.correction_total_eV - host_energy_eV
             for s in states}
    for label, mu in mus.items():
        missing = [el for el in atoms_added if el not in mu]
        if missing:
            raise AnalysisError(f"limit {label!r}: no chemical potential for {missing}")
        shift = sum(n * mu[el] for el, n in atoms_added.items())
        b = {q: ediff[q] - shift + q * vbm_eV for q in charges}
        kinks = lower_envelope_kinks(b)
        at_limits.append(FormationEnergiesAtLimit(
            limit=label, mu_eV=mu,
            formation_energies=[ChargeFormationEnergy(charge=q, at_vbm_eV=b[q])
                                for q in charges],
            stable_charge_at_vbm=_stable(b, kinks, 0.0),
            stable_charge_at_cbm=_stable(b, kinks, band_gap_eV)))
    # levels are independent of mu (it shifts every charge equally): take the first limit
    b0 = {fe.charge: fe.at_vbm_eV for fe in at_limits[0].formation_energies}
    inside, outside = [], []
    for q1, q2, x in lower_envelope_kinks(b0):
        lvl = TransitionLevel(charges=[q1, q2], level_above_vbm_eV=x)
        (inside if 0.0 <= x <= band_gap_eV else outside).append(lvl)
    return FormationEnergyDiagram(defect=defect, host_energy_eV=host_energy_eV,
                                  atoms_added=dict(atoms_added), vbm_eV=vbm_eV,
                                  band_gap_eV=band_gap_eV, charge_states=states,
                                  formation_energies=at_limits, transition_levels=inside,
                                  levels_outside_gap=outside)


def _stable(b: Mapping[int, float], kinks: list[tuple[int, int, float]], x: float) -> int:
    q = max(b)
    for q1, q2, xk in kinks:
        if x > xk:
            q = q2
    return q
