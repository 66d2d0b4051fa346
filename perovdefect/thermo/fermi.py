"""Self-consistent (equilibrium) Fermi level and defect concentrations at temperature T.

Charge neutrality p - n + sum_d sum_q q c_{d,q}(E_F) = 0 with
  c_{d,q} = N_sites,d g_{d,q} exp(-E_f(d, q, E_F) / k_B T) / V_cell   (dilute, Boltzmann)
  p = int_{E < midgap} g(E) [1 - f(E)] dE / V_cell,  n = int_{E > midgap} g(E) f(E) dE / V_cell
solved by Brent's method. A dozen lines, written here because pymatgen-analysis-defects'
`solve_for_fermi_level` adds per-cell defect charges to carrier densities in cm^-3 (different
units) and py-sc-fermi wants its own input objects; the test suite cross-checks this solver
against py-sc-fermi on the same formation energies and DOS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import constants
from scipy.integrate import trapezoid
from scipy.optimize import brentq
from scipy.special import expit

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
    if isinstance(diagrams, FormationEnergyDiagram):
        diagrams = [diagrams]
    if not diagrams:
        raise AnalysisError("no defects given")
    if temperature_K <= 0:
        raise AnalysisError(f"temperature must be positive, got {temperature_K} K")
    if cell_volume_A3 <= 0:
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
    kt = K_B_EV * temperature_K
    lines = []
    for d in diagrams:
        if d.defect not in sites_per_cell:
            raise AnalysisError(f"no number of sites per cell for {d.defect}")
        degs = (degeneracies or {}).get(d.defect, {})
        at = d.at_limit(limit)
        for fe in at.formation_energies:
            lines.append((d.defect, fe.charge, fe.at_vbm_eV,
                          sites_per_cell[d.defect] * degs.get(fe.charge, 1)))

    def per_cell(ef: float) -> list[float]:
        return [n * np.exp(-(b + q * ef) / kt) for _, q, b, n in lines]

    def net_charge(ef: float) -> float:
        p, n = carrier_densities(ef, temperature_K, e, g, gap)
        return p - n + sum(q * c for (_, q, _, _), c in zip(lines, per_cell(ef)))

    lo, hi = float(e[0]), float(e[-1])
    if net_charge(lo) * net_charge(hi) > 0:
        raise AnalysisError("charge neutrality has no solution inside the DOS energy range")
    ef = brentq(net_charge, lo, hi, xtol=1e-9)
    p, n = carrier_densities(ef, temperature_K, e, g, gap)
    to_cm3 = 1.0 / (cell_volume_A3 * A3_TO_CM3)
    concs = [DefectConcentration(defect=name, charge=q, formation_energy_eV=b + q * ef,
                                 concentration_cm3=float(c * to_cm3))
             for (name, q, b, _), c in zip(lines, per_cell(ef))]
    return FermiLevelSolution(temperature_K=temperature_K, limit=limit,
                              fermi_level_above_vbm_eV=float(ef), electrons_cm3=n * to_cm3,
                              holes_cm3=p * to_cm3, concentrations=concs)
