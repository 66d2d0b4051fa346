"""Level analysis of one model (a campaign's host and its defect charge states at the ladder's
final step) as one typed document, the unit the report and `campaign collect` read."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from perovdefect.calcs.document import CalcSummary, ElectronicStructure
from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError
from perovdefect.levels.ingap import DefectLevels, find_in_gap_states, soc_corrected_gap
from perovdefect.levels.pl import compare_with_pl


class DefectAnalysis(DefectLevels):
    """DefectLevels of one defect charge state within a model analysis."""

    charge: int | None = None


class ModelAnalysis(Document):
    """Host and defect levels of one model."""

    REGENERATE_HINT = "re-run the campaign's analysis step (`perovdefect campaign rerun`)"
    UNVERSIONED_IS_LEGACY = True

    campaign: str | None = None
    model: str | None = None
    final_step: str
    host: CalcSummary
    defects: dict[str, DefectAnalysis] = Field(default_factory=dict)
    host_gaps_by_step_eV: dict[str, float | None] = Field(default_factory=dict)
    host_gap_hse06_soc_corrected_eV: float | None = None

    @classmethod
    def _upgrade(cls, data: dict[str, Any], source: str) -> dict[str, Any]:
        """perovdefect 0.1 analysis.json (no schema version, extra label/role/step keys)."""
        if "schema_version" in data:
            return super()._upgrade(data, source)
        for key in ("label", "role", "step", "charge", "key"):
            data.pop(key, None)
        for d in data.get("defects", {}).values():
            for s in d.get("in_gap_states", []):
                s.setdefault("kind", "defect")
        data["host"] = {k: v for k, v in data.get("host", {}).items()
                        if k in CalcSummary.model_fields}
        return data


class StepResultRef(Part):
    """Where one finished step's result lies: what a campaign step hands the level analysis
    (role host or defect; charge relative to the host, e; path of its result.json)."""

    role: str
    label: str
    charge: int
    step: str
    path: str


def analyze_model(results: list[StepResultRef | dict], final_step: str,
                  pl_nm: float | None = None, campaign: str | None = None,
                  model: str | None = None) -> ModelAnalysis:
    """In-gap states of every defect result at `final_step` against the host's. `results`:
    StepResultRefs (or their dicts, as FireWorks passes them; extra keys are ignored)."""
    refs = [r if isinstance(r, StepResultRef) else StepResultRef(
        **{k: r[k] for k in StepResultRef.model_fields}) for r in results]
    final = [r for r in refs if r.step == final_step]
    hosts = [r for r in final if r.role == "host"]
    if not hosts:
        raise AnalysisError(f"no host result at step {final_step!r} among {len(refs)} results")
    host = ElectronicStructure.from_json(hosts[0].path)
    gaps = {r.step: ElectronicStructure.from_json(r.path).gap_eV
            for r in refs if r.role == "host"}
    corrected = None
    if {"pbe", "pbe-soc", "hse06"} <= set(gaps):
        corrected = soc_corrected_gap(gaps["hse06"], gaps["pbe"], gaps["pbe-soc"])
    defects = {}
    for r in sorted((r for r in final if r.role == "defect"), key=lambda r: r.charge):
        levels = find_in_gap_states(host, ElectronicStructure.from_json(r.path))
        if pl_nm and levels.transitions_eV:
            levels.pl_comparison = compare_with_pl(levels.transitions_eV, pl_nm)
        defects[r.label] = DefectAnalysis(charge=r.charge, **levels.model_dump())
    return ModelAnalysis(campaign=campaign, model=model, final_step=final_step,
                         host=host.calc_summary(), defects=defects, host_gaps_by_step_eV=gaps,
                         host_gap_hse06_soc_corrected_eV=corrected)
