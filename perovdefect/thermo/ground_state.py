"""The outcome of a ground-state search (ShakeNBreak's distorted starts, each relaxed): relaxed
energy against distortion, the lowest structure, and any reconstruction named from its bonds.

The rule follows ShakeNBreak's `get_energy_lowering_distortions`: a distorted start is a new
ground state only if it relaxes at least `min_energy_lowering_eV` (default ShakeNBreak's
0.05 eV) below the unperturbed start; otherwise the unperturbed relaxation is kept (smaller
differences are within the noise of the relaxation and the rattle)."""

from __future__ import annotations

from pydantic import Field

from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError

#: ShakeNBreak's default min_e_diff (eV) for an energy-lowering distortion
MIN_ENERGY_LOWERING_EV = 0.05
UNPERTURBED = "Unperturbed"


class DistortionResult(Part):
    """One relaxed start. energies in eV; relative_energy_eV: E - E(unperturbed)."""

    distortion: str
    bond_distortion: float | None = None
    num_distorted_neighbours: int | None = None
    energy_eV: float | None = None
    relative_energy_eV: float | None = None
    converged: bool | None = None
    reconstruction: str | None = None
    run_dir: str = ""


class GroundStateSearch(Document):
    """Energy against distortion of one defect in one charge state and the chosen start."""

    campaign: str | None = None
    model: str | None = None
    defect: str
    charge: int
    results: list[DistortionResult]
    lowest: str
    unperturbed_is_lowest: bool
    #: E(unperturbed) - E(chosen) (eV, >= 0)
    energy_lowering_eV: float
    min_energy_lowering_eV: float = MIN_ENERGY_LOWERING_EV
    rule: str = Field(default="the lowest relaxed start if it lies at least "
                      "min_energy_lowering_eV below the unperturbed one (ShakeNBreak's rule), "
                      "else the unperturbed relaxation")


def choose_ground_state(defect: str, charge: int, results: list[DistortionResult],
                        min_energy_lowering_eV: float = MIN_ENERGY_LOWERING_EV,
                        **where: str | None) -> GroundStateSearch:
    """The GroundStateSearch of relaxed starts (one of them the unperturbed one); starts
    without an energy are kept in the list but never chosen. AnalysisError without a relaxed
    unperturbed start."""
    done = [r for r in results if r.energy_eV is not None]
    ref = next((r for r in done if r.distortion == UNPERTURBED), None)
    if ref is None:
        raise AnalysisError(f"{defect} q={charge:+d}: the unperturbed start has no relaxed "
                            "energy, so no distortion can be judged")
    for r in results:
        r.relative_energy_eV = None if r.energy_eV is None else r.energy_eV - ref.energy_eV
    best = min(done, key=lambda r: r.energy_eV)
    lowering = ref.energy_eV - best.energy_eV
    if lowering < min_energy_lowering_eV:
        best, lowering = ref, 0.0
    return GroundStateSearch(defect=defect, charge=charge, results=results, lowest=best.distortion,
                             unperturbed_is_lowest=best is ref, energy_lowering_eV=lowering,
                             min_energy_lowering_eV=min_energy_lowering_eV, **where)
