"""The typed campaign table `campaign collect` returns and writes: one row per ladder step, the
level analyses, the competing-phase limits, the formation energies of every defect type and the
luminescence results, each part a typed document (no free-form dicts between the stages)."""

from __future__ import annotations

import re

from typing import Any, ClassVar

from pydantic import Field

from perovdefect.calcs.theory import LevelOfTheory
from perovdefect.candidates import CandidateTable
from perovdefect.documents import Document, Part
from perovdefect.errors import ParseError
from perovdefect.levels.model import ModelAnalysis
from perovdefect.optics.run import LuminescenceResult
from perovdefect.thermo.calculations import FormationResult
from perovdefect.thermo.documents import CompetingPhases, DefectThermodynamics
from perovdefect.thermo.ground_state import GroundStateSearch

_CHARGE_SUFFIX = re.compile(r"_q[+-]?\d+$")


def defect_of(label: str) -> str:
    """The defect a structure label names without its charge (V_Br_8d_q+1 -> V_Br_8d,
    Br_Cs_q0 -> Br_Cs); a label without a charge suffix is its own defect."""
    return _CHARGE_SUFFIX.sub("", label)


class StepRow(Part):
    """One ladder step of one structure (host, defect or competing phase)."""

    campaign: str
    model: str
    label: str
    role: str
    charge: int
    step: str
    state: str
    fw_id: int
    run_dir: str | None
    defect: str | None = None  # the defect without its charge (defect rows only)
    #: equivalent sites of the defect per cell (periodic defect rows whose builder says)
    sites_per_cell: float | None = None
    code: str | None = None
    functional: str | None = None
    soc: bool | None = None
    converged: bool | None = None
    gap_eV: float | None = None
    vbm_eV: float | None = None
    cbm_eV: float | None = None
    n_electrons: float | None = None
    total_energy_eV: float | None = None
    custodian_corrections: list | None = None
    #: the level of theory the step's code really used (None: unfinished, or not recorded)
    theory: LevelOfTheory | None = None
    #: s, the step's wall time as it ran (None: unfinished, or finished before it was recorded)
    wall_time_s: float | None = None


class FormationEntry(Part):
    """The formation energies of one defect type of one model (all its charge states), or the
    reason they cannot be computed yet."""

    campaign: str
    model: str
    defect: str | None
    step: str
    result: FormationResult | None = None
    problem: str | None = None


class ConcentrationEntry(Part):
    """Fermi level, carrier and defect concentrations of one periodic model at the campaign's
    synthesis (and quench) temperature, or the reason they cannot be computed."""

    campaign: str
    model: str
    result: DefectThermodynamics | None = None
    problem: str | None = None


class LuminescenceRow(Part):
    """One finished luminescence calculation of a campaign."""

    campaign: str
    model: str
    defect: str
    run_dir: str
    result: LuminescenceResult


class CampaignTable(Document):
    """`perovdefect campaign collect`: everything a campaign computed, typed."""

    REGENERATE_HINT: ClassVar[str] = "run `perovdefect campaign collect` again"
    UNVERSIONED_IS_LEGACY: ClassVar[bool] = True

    project: str
    steps: list[StepRow] = Field(default_factory=list)
    analyses: list[ModelAnalysis] = Field(default_factory=list)
    thermodynamics: dict[str, CompetingPhases] = Field(default_factory=dict)
    formation: list[FormationEntry] = Field(default_factory=list)
    concentrations: list[ConcentrationEntry] = Field(default_factory=list)
    #: energy against distortion of every defect searched (`ground_state_search:`)
    ground_states: list[GroundStateSearch] = Field(default_factory=list)
    luminescence: list[LuminescenceRow] = Field(default_factory=list)
    #: candidate emitters ranked against the measured PL, one table per campaign with a
    #: `pl_nm` (perovdefect.candidates)
    candidates: list[CandidateTable] = Field(default_factory=list)

    @classmethod
    def _upgrade(cls, data: dict[str, Any], source: str) -> dict[str, Any]:
        """Tables of perovdefect before the typed table (no schema_version): the same steps,
        analyses and thermodynamics; their formation entries were all of V_Br (the only
        defect then); their luminescence rows held a summary, not the result: regenerate."""
        if "schema_version" in data:
            return super()._upgrade(data, source)
        if data.get("luminescence"):
            raise ParseError(f"{source}: an older collect table whose luminescence rows hold "
                             f"no result document; {cls.REGENERATE_HINT}")
        data.setdefault("project", "")
        for entry in data.get("formation", []):
            entry.setdefault("defect", "V_Br")
        return data

    def step_wall_times(self) -> dict[str, float]:
        """s, the wall time of each finished backend step that recorded one (ladder steps and
        ground-state search starts; the luminescence chains are not steps), by run directory:
        a resubmitted campaign lists a shared directory once per workflow, counted once."""
        return {r.run_dir or f"fw{r.fw_id}": r.wall_time_s for r in self.steps
                if r.wall_time_s is not None}

    def wall_time_s(self) -> float:
        """s, the summed wall time of step_wall_times."""
        return float(sum(self.step_wall_times().values()))

    def latest_steps(self, campaign: str, model: str, step: str) -> list[StepRow]:
        """The finished rows (with a total energy) of one model at one step, one per structure:
        a resubmitted (changed) campaign shares run directories with the old workflow, whose
        rows come first (Firework order), so the newest wins."""
        latest = {r.label: r for r in self.steps
                  if r.campaign == campaign and r.model == model and r.step == step
                  and r.total_energy_eV is not None}
        return list(latest.values())
