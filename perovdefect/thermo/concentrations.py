"""Fermi level, carrier and defect concentrations (cm^-3) at every chemical-potential limit:
formation energies plus the host calculation, in equilibrium at the synthesis temperature and,
if asked, quenched to a lower temperature with the defect totals frozen.

The glue between FormationResult / FormationEnergyDiagram documents, the host DOS
(perovdefect.thermo.host_dos) and the neutrality solver (perovdefect.thermo.fermi)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.errors import AnalysisError
from perovdefect.thermo.calculations import FormationResult
from perovdefect.thermo.documents import (
    DefectThermodynamics,
    FermiLevelSolution,
    FormationEnergyDiagram,
    ThermodynamicsAtLimit,
)
from perovdefect.thermo.fermi import (A3_TO_CM3, K_B_EV, solve_fermi_level,
                                      solve_frozen_fermi_level)
from perovdefect.thermo.host_dos import DEFAULT_DOS_SMEARING_eV, host_density_of_states

#: a defect on more than this fraction of its sites breaks the dilute limit (warned)
DILUTE_SITE_FRACTION = 0.01
#: host edges of the diagrams and of the host calculation agree within this (eV)
SAME_HOST_eV = 1e-4

ASSUMPTIONS = [
    "dilute defects: no defect-defect interaction, Boltzmann occupation of the defect sites",
    "formation energies and the band gap as computed (0 K): no vibrational entropy, no "
    "thermal gap change",
    "host bands occupied by Fermi-Dirac statistics; states below mid-gap are the valence band",
]

FormationInput = FormationResult | FormationEnergyDiagram


def solve_thermodynamics(
    formation: FormationInput | Sequence[FormationInput],
    host: ElectronicStructure,
    temperature_K: float,
    quench_temperature_K: float | None = None,
    *,
    sites_per_cell: Mapping[str, float] | None = None,
    degeneracies: Mapping[str, Mapping[int, int]] | None = None,
    dos_smearing_eV: float = DEFAULT_DOS_SMEARING_eV,
) -> DefectThermodynamics:
    """Equilibrium Fermi level and concentrations at `temperature_K` for every limit, and the
    frozen-defect ones at `quench_temperature_K` (defect totals from temperature_K).

    Args:
        formation: the FormationResult(s) or FormationEnergyDiagram(s) of the defects, one per
            defect, all computed against `host` with the same chemical-potential limits.
        host: the bulk (pristine) calculation of the formation energies: its cell volume and
            its eigenvalues (the DOS of the carriers).
        temperature_K: synthesis (equilibrium) temperature (K).
        quench_temperature_K: temperature the sample is quenched to (K), or None.
        sites_per_cell: defect -> equivalent sites in the host cell; by default the host
            atoms of the species a vacancy or antisite removes (needed for interstitials).
        degeneracies: defect -> charge -> degeneracy g (default 1).
        dos_smearing_eV: Gaussian width of each host state in the DOS (eV).
    """
    diagrams, warnings = _diagrams(formation)
    for t, name in ((temperature_K, "temperature"), (quench_temperature_K, "quench temperature")):
        if t is not None and not (np.isfinite(t) and t > 0):
            raise AnalysisError(f"the {name} must be a positive number of K, got {t}")
    _check_same_host(diagrams, host)
    dos = host_density_of_states(host, dos_smearing_eV)
    vol = dos.info.cell_volume_A3
    sites, sites_from = _sites(diagrams, host, sites_per_cell or {})
    degs = {d: {int(q): int(g) for q, g in v.items()} for d, v in (degeneracies or {}).items()}
    args = (dos.energies_eV, dos.states_per_eV, vol)
    out = []
    for label in [x.limit for x in diagrams[0].formation_energies]:
        eq = solve_fermi_level(diagrams, label, temperature_K, *args, sites, degs)
        quenched = None
        if quench_temperature_K is not None:
            quenched = solve_frozen_fermi_level(diagrams, label, quench_temperature_K, *args,
                                                eq.total_concentrations_cm3, degs)
        out.append(ThermodynamicsAtLimit(limit=label, equilibrium=eq, quenched=quenched))
        for sol in (eq, quenched):
            if sol is not None:
                warnings += _solution_warnings(sol, dos.info.band_gap_eV, sites, vol)
    warnings += _dos_warnings(dos.info, temperature_K)
    assumptions = ASSUMPTIONS + [
        "degeneracies g = 1 (spin and orientation not counted)" if not degs else
        "degeneracies as given, 1 for charges not given",
        f"host DOS: {dos.info.smearing} smearing of {dos.info.smearing_width_eV:g} eV of the "
        f"host's eigenvalues at {dos.info.kpoints}; the smearing raises Boltzmann carrier "
        "densities by exp(sigma^2 / 2 (k_B T)^2)"]
    if quench_temperature_K is not None:
        assumptions.append(f"quench: defect totals frozen at their {temperature_K:g} K values, "
                           f"charge states and carriers re-equilibrated at "
                           f"{quench_temperature_K:g} K")
    return DefectThermodynamics(
        temperature_K=temperature_K, quench_temperature_K=quench_temperature_K,
        defects=[d.defect for d in diagrams], sites_per_cell=sites, sites_from=sites_from,
        degeneracies=degs, host_dos=dos.info, limits=out, assumptions=assumptions,
        warnings=warnings)


def _diagrams(formation) -> tuple[list[FormationEnergyDiagram], list[str]]:
    """The diagrams of the inputs, and a warning where no chemical potentials were given."""
    items = [formation] if isinstance(formation, (FormationResult, FormationEnergyDiagram)) \
        else list(formation)
    if not items:
        raise AnalysisError("no formation energies given")
    diagrams, warnings = [], []
    for x in items:
        if isinstance(x, FormationResult):
            if x.chemical_potentials.startswith("none given"):
                warnings.append(f"{x.diagram.defect}: no chemical potentials were given "
                                "(every mu_i = 0 eV/atom): its concentrations mean nothing")
            x = x.diagram
        if not isinstance(x, FormationEnergyDiagram):
            raise AnalysisError(f"expected FormationResult or FormationEnergyDiagram, got "
                                f"{type(x).__name__}")
        diagrams.append(x)
    labels = [[x.limit for x in d.formation_energies] for d in diagrams]
    for d, lab in zip(diagrams[1:], labels[1:]):
        if set(lab) != set(labels[0]):
            raise AnalysisError(f"{d.defect}: chemical-potential limits {lab} differ from "
                                f"{diagrams[0].defect}'s {labels[0]}: give all defects the "
                                "same limits")
    return diagrams, warnings


def _check_same_host(diagrams: list[FormationEnergyDiagram], host: ElectronicStructure) -> None:
    name = host.source or "the host calculation"
    for d in diagrams:
        if host.vbm_eV is None or host.gap_eV is None or \
                abs(d.vbm_eV - host.vbm_eV) > SAME_HOST_eV or \
                abs(d.band_gap_eV - host.gap_eV) > SAME_HOST_eV:
            raise AnalysisError(f"{d.defect}: its formation energies were computed against a "
                                f"host with VBM {d.vbm_eV:.4f} eV and gap {d.band_gap_eV:.4f} eV, "
                                f"not {name} (VBM {host.vbm_eV}, gap {host.gap_eV})")


def _sites(diagrams, host: ElectronicStructure, given: Mapping[str, float]
           ) -> tuple[dict[str, float], dict[str, str]]:
    """Sites per host cell of each defect, and where the number came from."""
    counts = Counter(host.structure.symbols) if host.structure is not None else Counter()
    sites, sites_from = {}, {}
    for d in diagrams:
        if d.defect in given:
            n = float(given[d.defect])
            if not (np.isfinite(n) and n > 0):
                raise AnalysisError(f"{d.defect}: sites per cell must be positive, got {n}")
            sites[d.defect], sites_from[d.defect] = n, "given"
            continue
        removed = [el for el, n in d.atoms_added.items() if n < 0]
        if len(removed) != 1 or d.atoms_added[removed[0]] != -1 or not counts[removed[0]]:
            raise AnalysisError(f"{d.defect}: the number of its sites per host cell cannot be "
                                f"counted from {d.atoms_added} (an interstitial or complex); "
                                "give it with `sites_per_cell`")
        el = removed[0]
        sites[d.defect] = float(counts[el])
        sites_from[d.defect] = (f"the {counts[el]} {el} sites of the host cell (all "
                                f"{el} sites taken as equivalent)")
    return sites, sites_from


def _solution_warnings(sol: FermiLevelSolution, gap_eV: float, sites: Mapping[str, float],
                       volume_A3: float) -> list[str]:
    at = f"{sol.limit}, {sol.temperature_K:g} K ({sol.mode})"
    out = []
    ef = sol.fermi_level_above_vbm_eV
    if not 0.0 <= ef <= gap_eV:
        out.append(f"{at}: the Fermi level ({ef:.3f} eV) lies outside the gap: degenerate "
                   "doping, beyond the dilute model")
    for name, total in sol.total_concentrations_cm3.items():
        fraction = total * volume_A3 * A3_TO_CM3 / sites[name]
        if fraction > DILUTE_SITE_FRACTION:
            out.append(f"{at}: {name} occupies {fraction:.1%} of its sites: the dilute "
                       "(non-interacting) model does not hold")
    return out


def _dos_warnings(info, temperature_K: float) -> list[str]:
    out = []
    if info.n_electrons is not None and abs(info.electrons_below_midgap - info.n_electrons) > 0.01:
        out.append(f"the host DOS holds {info.electrons_below_midgap:.3f} electrons below "
                   f"mid-gap, the run {info.n_electrons:g}: the valence band is incomplete")
    if info.bands_reach_above_cbm_eV < 20 * K_B_EV * temperature_K:
        out.append(f"the host run's bands reach only {info.bands_reach_above_cbm_eV:.2f} eV "
                   "above the CBM: electron densities are underestimated (compute more bands)")
    return out
