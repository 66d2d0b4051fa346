"""Self-consistent (equilibrium) Fermi level and defect concentrations at temperature T, and
the frozen-defect Fermi level of a sample quenched from T to T2.

Charge neutrality p - n + sum_d sum_q q c_{d,q}(E_F) = 0 with
  c_{d,q} = N_sites,d g_{d,q} exp(-E_f(d, q, E_F) / k_B T) / V_cell   (dilute, Boltzmann)
  p = int_{E < midgap} g(E) [1 - f(E)] dE / V_cell,  n = int_{E > midgap} g(E) f(E) dE / V_cell
solved by Brent's method. Frozen defects (quenched to T2): each defect's total C_d stays at its
value at T and only its charge states re-equilibrate,
  c_{d,q} = C_d g_q exp(-E_f(d, q, E_F)/k_B T2) / sum_q' g_q' exp(-E_f(d, q', E_F)/k_B T2),
with the carriers at T2. A dozen lines, written here because pymatgen-analysis-defects'
`solve_for_fermi_level` adds per-cell defect charges to carrier densities in cm^-3 (different
units) and py-sc-fermi wants its own input objects; the test suite cross-checks both modes
against py-sc-fermi (its fixed-concentration species for the frozen case) on the same
formation energies and DOS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import constants
from scipy.integrate import trapezoid
from scipy.optimize import brentq
from scipy.special import expit, softmax

from perovdefect.errors import AnalysisError
from perovdefect.thermo.documents import (
    DefectConcentration,
    FermiLevelSolution,
    FormationEnergyDiagram,
)

K_B_EV = constants.k / constants.e  # Boltzmann constant, eV/K
A3_TO_CM3 = 1e-24


def carrier_densities(fermi_level_eV: float, temperature_K: float, energies_eV: np.ndarray,
                      dos: np.ndarray, band_gap_eV: float) -> tuple[float, float]:
    """Holes and electrons per cell: DOS (states/eV/cell, VBM at 0) below/above mid-gap."""
    kt = K_B_EV * temperature_K
    mid = band_gap_eV / 2
    val, con = energies_eV <= mid, energies_eV > mid
    # Fermi-Dirac occupation f(E) = expit((E_F - E)/kT); empty states 1 - f = expit((E - E_F)/kT)
    p = trapezoid(dos[val] * expit((energies_eV[val] - fermi_level_eV) / kt), energies_eV[val])
    n = trapezoid(dos[con] * expit((fermi_level_eV - energies_eV[con]) / kt), energies_eV[con])
    return float(p), float(n)


def solve_fermi_level(
    diagrams: FormationEnergyDiagram | Sequence[FormationEnergyDiagram],
    limit: str,
    temperature_K: float,
    dos_energies_eV: ArrayLike,
    dos_states_per_eV: ArrayLike,
    cell_volume_A3: float,
    sites_per_cell: Mapping[str, float],
    degeneracies: Mapping[str, Mapping[int, int]] | None = None,
) -> FermiLevelSolution:
    """Equilibrium Fermi level (above the VBM, eV) and concentrations (cm^-3).

    Args:
        diagrams: formation-energy diagrams of the defects present (one per defect).
        limit: chemical-potential limit label present in every diagram.
        temperature_K: temperature (K), > 0.
        dos_energies_eV: host DOS energies with the VBM at 0 (eV), increasing, spanning the
            valence band below 0 and the conduction band above the gap.
        dos_states_per_eV: host DOS per cell (states/eV, spin included).
        cell_volume_A3: volume of the cell the DOS refers to (A^3).
        sites_per_cell: defect name -> number of sites of that defect in that cell.
        degeneracies: defect name -> charge -> degeneracy g (default 1).
    """
    diagrams = _diagrams(diagrams)
    e, g = _check(diagrams, temperature_K, dos_energies_eV, dos_states_per_eV, cell_volume_A3)
    for d in diagrams:
        if d.defect not in sites_per_cell:
            raise AnalysisError(f"no number of sites per cell for {d.defect}")
    kt = K_B_EV * temperature_K
    lines = _lines(diagrams, limit, degeneracies)
    log_n = np.array([np.log(sites_per_cell[name] * deg) for name, _, _, deg in lines])
    b = np.array([x[2] for x in lines])
    q = np.array([x[1] for x in lines])

    def per_cell(ef: float) -> np.ndarray:
        return _exp(log_n - (b + q * ef) / kt)

    return _solve(diagrams, limit, temperature_K, e, g, cell_volume_A3, lines, per_cell,
                  "equilibrium")


def solve_frozen_fermi_level(
    diagrams: FormationEnergyDiagram | Sequence[FormationEnergyDiagram],
    limit: str,
    temperature_K: float,
    dos_energies_eV: ArrayLike,
    dos_states_per_eV: ArrayLike,
    cell_volume_A3: float,
    total_concentrations_cm3: Mapping[str, float],
    degeneracies: Mapping[str, Mapping[int, int]] | None = None,
) -> FermiLevelSolution:
    """Fermi level (above the VBM, eV) with each defect's total concentration frozen.

    The totals (cm^-3, e.g. the equilibrium ones at the synthesis temperature) stay fixed; the
    charge states of each defect and the carriers re-equilibrate at `temperature_K` (the
    temperature the sample is quenched to). Other arguments as solve_fermi_level.
    """
    diagrams = _diagrams(diagrams)
    e, g = _check(diagrams, temperature_K, dos_energies_eV, dos_states_per_eV, cell_volume_A3)
    per_cell_total = {}
    for d in diagrams:
        c = total_concentrations_cm3.get(d.defect)
        if c is None or not np.isfinite(c) or c < 0:
            raise AnalysisError(f"{d.defect}: a frozen total concentration (cm^-3, finite, "
                                f">= 0) is needed, got {c}")
        per_cell_total[d.defect] = c * cell_volume_A3 * A3_TO_CM3
    kt = K_B_EV * temperature_K
    lines = _lines(diagrams, limit, degeneracies)
    groups = [np.array([i for i, x in enumerate(lines) if x[0] == d.defect]) for d in diagrams]
    totals = [per_cell_total[d.defect] for d in diagrams]
    log_g = np.array([np.log(x[3]) for x in lines])
    b = np.array([x[2] for x in lines])
    q = np.array([x[1] for x in lines])

    def per_cell(ef: float) -> np.ndarray:
        out = np.empty(len(lines))
        w = log_g - (b + q * ef) / kt
        for idx, total in zip(groups, totals):
            out[idx] = total * softmax(w[idx])  # Boltzmann fractions of the fixed total
        return out

    return _solve(diagrams, limit, temperature_K, e, g, cell_volume_A3, lines, per_cell,
                  "frozen")


def _diagrams(diagrams) -> list[FormationEnergyDiagram]:
    if isinstance(diagrams, FormationEnergyDiagram):
        diagrams = [diagrams]
    diagrams = list(diagrams)
    if not diagrams:
        raise AnalysisError("no defects given")
    names = [d.defect for d in diagrams]
    if len(set(names)) != len(names):
        raise AnalysisError(f"a defect given twice among {names}")
    return diagrams


def _check(diagrams, temperature_K, dos_energies_eV, dos_states_per_eV, cell_volume_A3
           ) -> tuple[np.ndarray, np.ndarray]:
    """The DOS as arrays, after checking the temperature, volume and DOS grid."""
    if not (np.isfinite(temperature_K) and temperature_K > 0):
        raise AnalysisError(f"temperature must be positive, got {temperature_K} K")
    if not (np.isfinite(cell_volume_A3) and cell_volume_A3 > 0):
        raise AnalysisError("cell volume must be positive (A^3)")
    e = np.asarray(dos_energies_eV, float)
    g = np.asarray(dos_states_per_eV, float)
    if e.shape != g.shape or e.ndim != 1 or e.size < 10:
        raise AnalysisError("DOS energies and values must be 1-D arrays of the same length "
                            "(>= 10 points)")
    if np.any(np.diff(e) <= 0):
        raise AnalysisError("DOS energies must increase")
    gap = diagrams[0].band_gap_eV
    if not (e[0] < 0 and e[-1] > gap):
        raise AnalysisError(f"the DOS must span below the VBM (0) and above the CBM ({gap} eV)")
    return e, g


def _lines(diagrams, limit, degeneracies) -> list[tuple[str, int, float, int]]:
    """(defect, charge, formation energy at the VBM (eV), degeneracy) of every charge state."""
    lines = []
    for d in diagrams:
        degs = (degeneracies or {}).get(d.defect, {})
        for fe in d.at_limit(limit).formation_energies:
            deg = degs.get(fe.charge, 1)
            if deg < 1:
                raise AnalysisError(f"{d.defect} q={fe.charge:+d}: degeneracy must be >= 1")
            lines.append((d.defect, fe.charge, fe.at_vbm_eV, deg))
    return lines


def _exp(x: np.ndarray) -> np.ndarray:
    """exp, clipped so far-off trial Fermi levels give huge but finite numbers (no inf)."""
    return np.exp(np.clip(x, -745.0, 700.0))


def _solve(diagrams, limit, temperature_K, e, g, cell_volume_A3, lines, per_cell, mode
           ) -> FermiLevelSolution:
    """Brent's root of the net charge per cell over the DOS range, and the document."""
    gap = diagrams[0].band_gap_eV
    q = np.array([x[1] for x in lines], float)

    def net_charge(ef: float) -> float:
        p, n = carrier_densities(ef, temperature_K, e, g, gap)
        return p - n + float(q @ per_cell(ef))

    lo, hi = float(e[0]), float(e[-1])
    if net_charge(lo) * net_charge(hi) > 0:
        raise AnalysisError("charge neutrality has no solution inside the DOS energy range")
    ef = brentq(net_charge, lo, hi, xtol=1e-9)
    p, n = carrier_densities(ef, temperature_K, e, g, gap)
    to_cm3 = 1.0 / (cell_volume_A3 * A3_TO_CM3)
    c = per_cell(ef) * to_cm3
    concs = [DefectConcentration(defect=name, charge=qq, formation_energy_eV=b + qq * ef,
                                 concentration_cm3=float(ci))
             for (name, qq, b, _), ci in zip(lines, c)]
    totals = {d.defect: float(sum(x.concentration_cm3 for x in concs if x.defect == d.defect))
              for d in diagrams}
    method = ("charge neutrality: p - n + sum_q q c_q = 0 (brentq)" if mode == "equilibrium"
              else "charge neutrality with each defect's total fixed, charge states and "
                   "carriers re-equilibrated (brentq)")
    return FermiLevelSolution(temperature_K=temperature_K, limit=limit,
                              fermi_level_above_vbm_eV=float(ef), electrons_cm3=n * to_cm3,
                              holes_cm3=p * to_cm3, concentrations=concs, method=method,
                              mode=mode, total_concentrations_cm3=totals)
