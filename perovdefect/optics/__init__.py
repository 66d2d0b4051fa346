"""Luminescence from total energies: configuration-coordinate diagrams, Huang-Rhys line shapes
at temperature T, vertical transitions (charge change with a supplied or, from three periodic
calculations, a computed GKFO correction; DeltaSCF for clusters). Code-neutral: energies in eV,
geometries as pymatgen or ASE objects."""

from perovdefect.optics.ccd import (
    cc_diagram,
    cc_diagram_from_geometries,
    fit_harmonic,
    hbar_omega_eV,
    huang_rhys,
)
from perovdefect.optics.documents import (
    CCDiagram,
    DeltaSCFTransitions,
    GkfoCorrectionTerms,
    GkfoTransition,
    HarmonicFit,
    PLComparison,
    PLSpectrum,
    VerticalTransition,
)
from perovdefect.optics.geometry import DEFAULT_FRACTIONS, delta_q, interpolate_geometries
from perovdefect.optics.gkfo import gkfo_vertical_transition
from perovdefect.optics.lineshape import (
    bose_occupation,
    compare_with_measurement,
    huang_rhys_spectrum,
    phonon_line_weights,
    pl_spectrum,
)
from perovdefect.optics.vertical import charge_transition_energy, delta_scf_transitions

__all__ = [
    "CCDiagram", "DEFAULT_FRACTIONS", "DeltaSCFTransitions", "GkfoCorrectionTerms",
    "GkfoTransition", "HarmonicFit", "PLComparison", "PLSpectrum", "VerticalTransition",
    "bose_occupation", "cc_diagram", "cc_diagram_from_geometries", "charge_transition_energy",
    "compare_with_measurement", "delta_q", "delta_scf_transitions", "fit_harmonic",
    "gkfo_vertical_transition", "hbar_omega_eV", "huang_rhys",
    "huang_rhys_spectrum", "interpolate_geometries", "phonon_line_weights", "pl_spectrum",
]
