"""The report's typed model: everything the report shows, collected from typed documents
(ModelAnalysis, PhotonStats, PLPeak) before any figure is drawn or any HTML is written. The
model is what report.json holds."""

from __future__ import annotations

import hashlib
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import Field

from perovdefect.documents import Document, Part
from perovdefect.levels.model import ModelAnalysis
from perovdefect.photons.population import PopulationStats
from perovdefect.report.headline import (EmissionHeadline, emission_headline, measured_lifetimes,
                                         pick_headline_result)
from perovdefect.report.reference import EXPERIMENTAL_GAP_EV, SEED_DFT

PACKAGES = ("perovdefect", "ase", "pymatgen", "spglib", "FireWorks", "ptufile", "numpy",
            "scipy", "matplotlib", "jinja2", "pydantic")


class HostGapRow(Part):
    model: str | None
    level: str
    gap_eV: float | None
    experimental_gap_eV: str
    gap_minus_experiment_eV: float | None
    hse06_soc_corrected_eV: float | None


class StateRow(Part):
    """One classified in-gap state in the report (energies in eV above the host VBM)."""

    model: str | None
    defect: str
    charge: int | None
    spin: int
    kind: str
    basis: str
    energy_above_vbm_eV: float
    occupation: float
    transition_eV: float
    transition_nm: float
    compared_with_pl: bool
    deviation_from_pl_eV: float | None = None
    ipr: float | None = None
    character: dict[str, float] = Field(default_factory=dict)


class Provenance(Part):
    versions: dict[str, str]
    input_files: dict[str, str]
    calculations: dict[str, dict[str, Any]]


class ReportModel(Document):
    """The report's content (report.json)."""

    title: str
    created: str
    notes: list[str] = Field(default_factory=list)
    compound: str = "Cs4PbBr6"
    reference: dict[str, Any] = Field(default_factory=dict)
    host_gaps: list[HostGapRow] = Field(default_factory=list)
    in_gap_states: list[StateRow] = Field(default_factory=list)
    verdicts: dict[str, str] = Field(default_factory=dict)
    level_warnings: list[str] = Field(default_factory=list)
    pl_peak: dict[str, Any] | None = None
    pl_reference: dict[str, Any] | None = None
    particles: list[dict[str, Any]] = Field(default_factory=list)
    particle_levels: list[list[dict[str, Any]]] = Field(default_factory=list)
    power_series: dict[str, Any] | None = None
    formation: list[dict[str, Any]] = Field(default_factory=list)
    luminescence: list[dict[str, Any]] = Field(default_factory=list)
    #: the headline: the predicted emission (total energies, relaxed) beside the measurement
    emission: EmissionHeadline | None = None
    #: a `photons population` document: per-particle rows and fractions (report/population.py)
    population: PopulationStats | None = None
    provenance: Provenance
    extra: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of perovdefect's libraries and of every registered backend's packages."""
    from perovdefect.calcs.backend import backend_packages
    out = {}
    for name in (*PACKAGES, *backend_packages()):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def step_settings(steps: list[dict]) -> dict[str, dict[str, Any]]:
    """Per calculation: what its backend said of its settings (result.json settings.step)."""
    out = {}
    for st in steps:
        path = Path(st.get("run_dir") or "") / "result.json"
        if not path.is_file():
            continue
        try:
            settings = json.loads(path.read_text()).get("settings", {})
        except (OSError, json.JSONDecodeError):
            continue
        desc = settings.get("step") or {"protocol": settings.get("protocol")}
        out[f"{st.get('model')}/{st.get('label')}/{st.get('step')}"] = desc
    return out


def collect_model(inputs, title: str) -> ReportModel:
    """The typed report model from ReportInputs (see perovdefect.report.build)."""
    comp_key = "CsPbBr3" if "CsPbBr3" in inputs.compound else "Cs4PbBr6"
    exp_gap = EXPERIMENTAL_GAP_EV[comp_key]
    exp_text = (f"{exp_gap[0]:.2f}" if exp_gap[0] == exp_gap[1] else
                f"{exp_gap[0]:.2f}-{exp_gap[1]:.2f}")
    pl_ref = None
    if inputs.pl is not None:
        peak = inputs.pl[2]
        pl_ref = {"pl_nm": peak.center_nm, "pl_eV": peak.center_eV,
                  "pl_fwhm_meV": peak.fwhm_meV, "fwhm_nm": peak.fwhm_nm}
    else:
        for a in inputs.analyses:
            for d in a.defects.values():
                if d.pl_comparison and pl_ref is None:
                    pl_ref = d.pl_comparison.model_dump(include={"pl_nm", "pl_eV",
                                                                 "pl_fwhm_meV"})
    gaps, states, verdicts, warnings = [], [], {}, []
    for a in inputs.analyses:
        h = a.host
        gaps.append(HostGapRow(model=a.model, level=h.label, gap_eV=h.gap_eV,
                               experimental_gap_eV=exp_text,
                               gap_minus_experiment_eV=None if h.gap_eV is None
                               else h.gap_eV - exp_gap[0],
                               hse06_soc_corrected_eV=a.host_gap_hse06_soc_corrected_eV))
        for label, d in a.defects.items():
            pick = d.verdict.pl_transition_eV if d.verdict else None
            if d.verdict:
                verdicts[f"{a.model}/{label}"] = d.verdict.text
            warnings += [f"{a.model}/{label}: {w}" for w in d.warnings]
            for s in d.in_gap_states:
                compared = s.kind == "defect" and pick is not None and \
                    abs(s.transition_eV - pick) < 1e-9
                states.append(StateRow(
                    model=a.model, defect=label, charge=d.charge, spin=s.spin, kind=s.kind,
                    basis=s.basis, energy_above_vbm_eV=s.energy_above_vbm_eV,
                    occupation=s.occupation, transition_eV=s.transition_eV,
                    transition_nm=s.transition_nm, compared_with_pl=compared,
                    deviation_from_pl_eV=(s.transition_eV - pl_ref["pl_eV"])
                    if (pl_ref and s.kind == "defect") else None,
                    ipr=s.ipr, character=s.character))
    files = {str(p): sha256(Path(p)) for p in inputs.input_files if Path(p).is_file()}
    particle_levels = [st.level_rows() for st in inputs.photon_stats]
    headline = pick_headline_result(inputs.luminescence)
    return ReportModel(
        title=title, created=time.strftime("%Y-%m-%d %H:%M:%S"), notes=inputs.notes,
        compound=inputs.compound,
        reference={"seed_dft": SEED_DFT, "experimental_gap": list(exp_gap)},
        host_gaps=gaps, in_gap_states=states, verdicts=verdicts, level_warnings=warnings,
        pl_peak=inputs.pl[2].to_dict() if inputs.pl is not None else None, pl_reference=pl_ref,
        particles=[st.summary() for st in inputs.photon_stats],
        particle_levels=particle_levels,
        power_series=_plain(inputs.power_series), extra=inputs.extra,
        formation=[_formation_summary(f) for f in inputs.formation],
        luminescence=[{"structure": lum.structure, "level_of_theory": lum.level_of_theory,
                       **lum.summary(), "warnings": lum.warnings}
                      for lum in inputs.luminescence],
        emission=None if headline is None else emission_headline(
            headline, pl_ref, measured_lifetimes(particle_levels)),
        population=inputs.population,
        provenance=Provenance(versions=versions(), input_files=files,
                              calculations=step_settings(inputs.steps)))


def _formation_summary(f) -> dict[str, Any]:
    d = f.diagram
    return {"defect": d.defect, "correction": f.correction, "correction_note": f.correction_note,
            "chemical_potentials": f.chemical_potentials,
            "transition_levels": [t.model_dump() for t in d.transition_levels],
            "levels_outside_gap": [t.model_dump() for t in d.levels_outside_gap],
            "formation_energies_at_vbm_eV": {fe.limit: {str(c.charge): c.at_vbm_eV
                                                        for c in fe.formation_energies}
                                             for fe in d.formation_energies},
            "stable_charge_at_vbm_cbm": {fe.limit: [fe.stable_charge_at_vbm,
                                                    fe.stable_charge_at_cbm]
                                         for fe in d.formation_energies},
            "warnings": f.warnings}


def _plain(obj: Any) -> Any:
    """A typed part or a dict as plain JSON-compatible data."""
    if obj is None:
        return None
    if hasattr(obj, "model_dump_json"):
        return json.loads(obj.model_dump_json())
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


def analyses_of(items: list[Any]) -> list[ModelAnalysis]:
    """ModelAnalysis documents from typed documents or plain dicts (validated)."""
    return [a if isinstance(a, ModelAnalysis) else ModelAnalysis.from_dict(a, "campaign results")
            for a in items]
