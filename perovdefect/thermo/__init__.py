"""Defect thermodynamics: chemical-potential limits, formation energies and transition levels,
finite-size corrections, equilibrium Fermi level. Code-neutral: numbers and arrays in (eV, A),
typed documents out."""

from perovdefect.thermo.chempots import CS_PB_BR_PHASES, host_stability, stability_region
from perovdefect.thermo.corrections import (
    check_cluster_bound,
    efnv_correction,
    freysoldt_correction,
    isolated_cluster_correction,
    require_bound,
)
from perovdefect.thermo.data import (
    competing_phases,
    dielectric_constant,
    experimental_formation_enthalpy,
)
from perovdefect.thermo.documents import (
    ChemicalPotentialLimit,
    ClusterBoundCheck,
    Correction,
    DefectThermodynamics,
    EfnvCorrection,
    FermiLevelSolution,
    FormationEnergyDiagram,
    FreysoldtCorrection,
    HostStability,
    PhaseEnergy,
    StabilityRegion,
    TransitionLevel,
)
from perovdefect.thermo.fermi import solve_fermi_level, solve_frozen_fermi_level
from perovdefect.thermo.formation import formation_energy_diagram, lower_envelope_kinks

__all__ = [
    "CS_PB_BR_PHASES", "ChemicalPotentialLimit", "ClusterBoundCheck", "Correction",
    "DefectThermodynamics", "EfnvCorrection",
    "FermiLevelSolution", "FormationEnergyDiagram", "FreysoldtCorrection", "HostStability",
    "PhaseEnergy", "StabilityRegion", "TransitionLevel", "check_cluster_bound",
    "competing_phases", "dielectric_constant", "efnv_correction", "experimental_formation_enthalpy",
    "formation_energy_diagram", "freysoldt_correction", "host_stability",
    "isolated_cluster_correction", "lower_envelope_kinks", "require_bound",
    "solve_fermi_level", "solve_frozen_fermi_level", "stability_region",
]
