"""Typed parts saying how a luminescence result was reached when not by the DeltaSCF chain of
perovdefect.optics.run: the charge-state route (two charge states, the carrier at a band
edge) and a result built from finished runs made elsewhere (energies in eV, Q in amu^1/2 A)."""

from __future__ import annotations

from typing import Literal

from perovdefect.documents import Part


class ChargeRoute(Part):
    """The charge-state route (atomate2's ConfigurationCoordinateMaker, pymatgen-analysis-
    defects' ccd): the emission of defect charge q_initial plus a carrier at the host's band
    edge into charge q_final. The ground surface is E(q_final; R); the excited one

        E(q_initial; R) + (q_initial - q_final) E_edge + E_corr

    (an electron taken from the CBM when q_initial > q_final, a hole from the VBM otherwise),
    E_corr = E_corr(q_initial) - E_corr(q_final) the finite-size correction of the two
    relaxed charged cells (None: not applied; ZPL, absorption and emission then lack it,
    Delta Q, hbar omega and S do not depend on it)."""

    charge_initial: int
    charge_final: int
    band_edge: Literal["vbm", "cbm"]
    band_edge_eV: float
    band_edge_source: str
    correction_eV: float | None = None
    correction_detail: str = ""
    #: what was added to every E(q_initial) (eV)
    initial_offset_eV: float


class RunPoint(Part):
    """One finished calculation placed on the path between the two minima."""

    #: "ground" / "excited" (DeltaSCF) or "q+1", "q0", ... (charge route)
    state: str
    #: position along the path from the geometry: 0 the ground minimum, 1 the excited one
    fraction: float
    energy_eV: float
    source: str
    #: mass-weighted distance of the geometry from the line through the two minima
    off_path_amu05_A: float


class RunsSource(Part):
    """Where a result built from finished runs (`perovdefect luminescence DIR --from-runs`)
    came from: the tree, how its two states were told apart, the two minima and every point."""

    root: str
    route: Literal["delta-scf", "charge"]
    ground_state: str
    excited_state: str
    ground_minimum: str
    excited_minimum: str
    points: list[RunPoint]
