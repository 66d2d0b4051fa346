"""The report's typed model: everything the report shows, collected from typed documents
(ModelAnalysis, PhotonStats, PowerSeries, PLPeak, FormationResult, LuminescenceResult,
PopulationStats, the campaign's StepRows) before any figure is drawn or any HTML is written.
The model is what report.json holds, and all the figures and the HTML are drawn from it alone:
`perovdefect report --from report.json` rebuilds the same report."""

from __future__ import annotations

import hashlib
import time
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from perovdefect.calcs.theory import LevelOfTheory
from perovdefect.candidates import CandidateTable
from perovdefect.thermo.ground_state import GroundStateSearch
from perovdefect.documents import Document, Part
from perovdefect.errors import ParseError
from perovdefect.levels.model import ModelAnalysis
from perovdefect.levels.pl import PLPeak
from perovdefect.optics.run import LuminescenceResult
from perovdefect.photons.population import PopulationStats
from perovdefect.photons.stats import PhotonStats, PowerSeries
from perovdefect.report.candidates import report_candidates
from perovdefect.report.concentrations import ConcentrationSection, concentration_sections
from perovdefect.report.headline import (EmissionHeadline, emission_headline, measured_lifetimes,
                                         pick_headline_result)
from perovdefect.report.particles import LevelRow, ParticleSummary, level_rows, particle_summary
from perovdefect.report.reference import EXPERIMENTAL_GAP_EV, SEED_DFT
from perovdefect.thermo.calculations import FormationResult
from perovdefect.workflows.table import StepRow

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


class SeedDFT(Part):
    """The seed study's computed numbers (eV) and where they come from."""

    host_gap_eV: float
    mid_gap_state_eV: float
    source: str


class ExperimentalGap(Part):
    """The measured gap of the compound (eV; a range where the literature gives one)."""

    low_eV: float
    high_eV: float
    source: str

    def text(self) -> str:
        return (f"{self.low_eV:.2f}" if self.low_eV == self.high_eV else
                f"{self.low_eV:.2f}-{self.high_eV:.2f}")


class Reference(Part):
    """What the computed levels are compared with besides the measured PL."""

    seed_dft: SeedDFT
    experimental_gap: ExperimentalGap


class PLReference(Part):
    """The measured PL peak the levels and the emission are compared with (a fitted spectrum
    or the PL value the level analyses were given): centre (nm, eV), FWHM (meV, nm)."""

    pl_nm: float
    pl_eV: float
    pl_fwhm_meV: float | None = None
    fwhm_nm: float | None = None


class Spectrum(Part):
    """A measured spectrum as given: wavelengths (nm) and values (intensity or absorbance, in
    the file's units)."""

    wavelength_nm: list[float]
    values: list[float]


class MeasuredPL(Part):
    """The measured PL spectrum and its fitted peak."""

    spectrum: Spectrum
    peak: PLPeak


class Calculation(Part):
    """One calculation behind the report's numbers and the level of theory it really ran at
    (perovdefect.calcs.theory, filled by its backend). run: "model/structure/step" of a
    campaign step or the output's file name; source: its run directory or output file."""

    run: str
    source: str | None = None
    #: None: not recorded (a result written before levels of theory were, or unreadable: note)
    theory: LevelOfTheory | None = None
    note: str | None = None


class Provenance(Part):
    versions: dict[str, str]
    input_files: dict[str, str]
    calculations: list[Calculation] = Field(default_factory=list)


class ReportModel(Document):
    """The report's content (report.json): the rows it shows and the typed documents its
    figures are drawn from."""

    SCHEMA_VERSION: ClassVar[int] = 3
    REGENERATE_HINT: ClassVar[str] = ("build the report again from its inputs with this "
                                      "perovdefect (`perovdefect report`)")

    schema_version: int = 3
    title: str
    created: str
    notes: list[str] = Field(default_factory=list)
    compound: str = "Cs4PbBr6"
    reference: Reference
    host_gaps: list[HostGapRow] = Field(default_factory=list)
    in_gap_states: list[StateRow] = Field(default_factory=list)
    verdicts: dict[str, str] = Field(default_factory=dict)
    level_warnings: list[str] = Field(default_factory=list)
    #: the level analyses (level diagram) and the campaign's step rows (calculations table)
    analyses: list[ModelAnalysis] = Field(default_factory=list)
    steps: list[StepRow] = Field(default_factory=list)
    pl: MeasuredPL | None = None
    pl_reference: PLReference | None = None
    absorption: Spectrum | None = None
    #: one summary, one list of level rows and one PhotonStats per particle or recording
    particles: list[ParticleSummary] = Field(default_factory=list)
    particle_levels: list[list[LevelRow]] = Field(default_factory=list)
    photon_stats: list[PhotonStats] = Field(default_factory=list)
    power_series: PowerSeries | None = None
    formation: list[FormationResult] = Field(default_factory=list)
    #: Fermi levels and concentrations: of each `formation --fermi` result, of each campaign
    #: model (report/concentrations.py)
    concentrations: list[ConcentrationSection] = Field(default_factory=list)
    luminescence: list[LuminescenceResult] = Field(default_factory=list)
    #: energy against distortion of each defect a campaign searched (ground_state_search)
    ground_states: list[GroundStateSearch] = Field(default_factory=list)
    #: candidate emitters ranked against the measured PL (report/candidates.py)
    candidates: list[CandidateTable] = Field(default_factory=list)
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


def step_rows(steps: list[Any]) -> list[StepRow]:
    """The campaign's step rows, typed (StepRow documents or their dicts)."""
    return [s if isinstance(s, StepRow) else StepRow.model_validate(s) for s in steps]


def step_calculations(steps: list[StepRow]) -> list[Calculation]:
    """Per finished campaign step: the level of theory its result document records."""
    from perovdefect.calcs.document import ElectronicStructure
    out = []
    for st in steps:
        path = Path(st.run_dir or "") / "result.json"
        if st.run_dir is None or not path.is_file():
            continue
        run = f"{st.model}/{st.label}/{st.step}"
        try:
            theory = ElectronicStructure.from_json(path).theory
        except ParseError as exc:
            out.append(Calculation(run=run, source=st.run_dir, note=f"unreadable: {exc}"))
            continue
        out.append(Calculation(run=run, source=st.run_dir, theory=theory))
    return out


def _pl_reference(inputs) -> PLReference | None:
    """The fitted PL peak given to the report, else the first the level analyses compared
    with."""
    if inputs.pl is not None:
        peak = inputs.pl[2]
        return PLReference(pl_nm=peak.center_nm, pl_eV=peak.center_eV,
                           pl_fwhm_meV=peak.fwhm_meV, fwhm_nm=peak.fwhm_nm)
    for a in inputs.analyses:
        for d in a.defects.values():
            if d.pl_comparison:
                c = d.pl_comparison
                return PLReference(pl_nm=c.pl_nm, pl_eV=c.pl_eV, pl_fwhm_meV=c.pl_fwhm_meV)
    return None


def _spectrum(xy) -> Spectrum | None:
    if xy is None:
        return None
    return Spectrum(wavelength_nm=[float(x) for x in xy[0]], values=[float(y) for y in xy[1]])


def _levels(analyses: list[ModelAnalysis], exp_gap: ExperimentalGap,
            pl_ref: PLReference | None):
    """(host gap rows, in-gap state rows, verdicts, warnings) of the level analyses."""
    gaps, states, verdicts, warnings = [], [], {}, []
    for a in analyses:
        h = a.host
        gaps.append(HostGapRow(model=a.model, level=h.label, gap_eV=h.gap_eV,
                               experimental_gap_eV=exp_gap.text(),
                               gap_minus_experiment_eV=None if h.gap_eV is None
                               else h.gap_eV - exp_gap.low_eV,
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
                    deviation_from_pl_eV=(s.transition_eV - pl_ref.pl_eV)
                    if (pl_ref and s.kind == "defect") else None,
                    ipr=s.ipr, character=s.character))
    return gaps, states, verdicts, warnings


def collect_model(inputs, title: str) -> ReportModel:
    """The typed report model from ReportInputs (see perovdefect.report.build)."""
    comp_key = "CsPbBr3" if "CsPbBr3" in inputs.compound else "Cs4PbBr6"
    lo, hi, source = EXPERIMENTAL_GAP_EV[comp_key]
    exp_gap = ExperimentalGap(low_eV=lo, high_eV=hi, source=source)
    analyses = analyses_of(inputs.analyses)
    pl_ref = _pl_reference(inputs)
    gaps, states, verdicts, warnings = _levels(analyses, exp_gap, pl_ref)
    files = {str(p): sha256(Path(p)) for p in inputs.input_files if Path(p).is_file()}
    particle_levels = [level_rows(st) for st in inputs.photon_stats]
    headline = pick_headline_result(inputs.luminescence)
    steps = step_rows(inputs.steps)
    return ReportModel(
        title=title, created=time.strftime("%Y-%m-%d %H:%M:%S"), notes=inputs.notes,
        compound=inputs.compound,
        reference=Reference(seed_dft=SeedDFT(**SEED_DFT), experimental_gap=exp_gap),
        host_gaps=gaps, in_gap_states=states, verdicts=verdicts, level_warnings=warnings,
        analyses=analyses, steps=steps,
        pl=None if inputs.pl is None else MeasuredPL(
            spectrum=_spectrum(inputs.pl[:2]), peak=inputs.pl[2]),
        pl_reference=pl_ref, absorption=_spectrum(inputs.absorption),
        particles=[particle_summary(st) for st in inputs.photon_stats],
        particle_levels=particle_levels, photon_stats=list(inputs.photon_stats),
        power_series=inputs.power_series, extra=inputs.extra,
        formation=list(inputs.formation), luminescence=list(inputs.luminescence),
        concentrations=concentration_sections(inputs.formation, inputs.concentrations),
        ground_states=[] if inputs.campaign_table is None else list(
            inputs.campaign_table.ground_states),
        candidates=report_candidates(inputs.campaign_table,
                                     None if inputs.pl is None else inputs.pl[2],
                                     measured_lifetimes(particle_levels)),
        emission=None if headline is None else emission_headline(
            headline, pl_ref, measured_lifetimes(particle_levels)),
        population=inputs.population,
        provenance=Provenance(versions=versions(), input_files=files,
                              calculations=step_calculations(steps) + list(
                                  inputs.calculations)))


def analyses_of(items: list[Any]) -> list[ModelAnalysis]:
    """ModelAnalysis documents from typed documents or plain dicts (validated)."""
    return [a if isinstance(a, ModelAnalysis) else ModelAnalysis.from_dict(a, "campaign results")
            for a in items]
