"""The joint theory-experiment report in three steps: collect the typed model
(perovdefect.report.model), draw the figures, render HTML / JSON / PDF / PNG
(perovdefect.report.render). Rendering from a results JSON needs no FireWorks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.documents import write_atomic
from perovdefect.errors import ParseError, ReportError
from perovdefect.levels.model import ModelAnalysis
from perovdefect.levels.pl import PLPeak
from perovdefect.report.model import ReportModel, analyses_of, collect_model
from perovdefect.report.render import draw_figures, render_html, write_pdf
from perovdefect.workflows.table import CampaignTable

#: the data series each figure draws (report.figdata), beside the PNG files
FIGURE_DATA = "data.json"


@dataclass
class ReportInputs:
    """Everything the report shows. analyses: ModelAnalysis documents (or their dicts);
    steps: campaign step rows (collect: StepRow documents or their dicts); photon_stats: one
    PhotonStats per particle or recording; pl: (wavelength_nm, intensity, fitted PLPeak);
    calculations: report.model.Calculation rows of outputs given without a campaign (a
    campaign's come from its steps)."""

    analyses: list[Any] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)
    photon_stats: list[Any] = field(default_factory=list)
    power_series: Any = None
    pl: tuple[np.ndarray, np.ndarray, PLPeak] | None = None
    absorption: tuple[np.ndarray, np.ndarray] | None = None
    input_files: list[Path] = field(default_factory=list)
    compound: str = "Cs4PbBr6"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: FormationResult documents (perovdefect formation -o) and LuminescenceResult documents
    formation: list[Any] = field(default_factory=list)
    luminescence: list[Any] = field(default_factory=list)
    #: a PopulationStats (`photons population`), shown in its own section
    population: Any = None
    calculations: list[Any] = field(default_factory=list)
    #: a campaign's ConcentrationEntry rows (Fermi levels and concentrations per model)
    concentrations: list[Any] = field(default_factory=list)
    #: the campaign table itself (its candidate emitters: report/candidates.py)
    campaign_table: CampaignTable | None = None


def load_campaign_results(source: str | Path) -> CampaignTable:
    """Campaign results from a `campaign collect` JSON (no FireWorks needed), a project folder
    (embedded LaunchPad) or a MongoDB my_launchpad.yaml; a JSON table needs no FireWorks."""
    path = Path(source)
    if not path.exists():
        raise ReportError(f"{path}: no such campaign folder, results JSON or LaunchPad file")
    if path.is_dir():
        if not (path / "launchpad_store.json").is_file():
            raise ReportError(f"{path}: not a perovdefect project folder (no "
                              "launchpad_store.json)")
        from perovdefect.workflows.campaign import collect
        return collect(path)
    if path.suffix in (".yaml", ".yml"):
        from perovdefect.workflows.campaign import collect
        return collect(launchpad_file=path)
    try:
        return CampaignTable.from_json(path)
    except ParseError as exc:
        raise ReportError(f"{exc} (not a `perovdefect campaign collect` table)") from None


def campaign_extras(results: CampaignTable) -> tuple[list, list, list]:
    """(FormationResult documents, LuminescenceResult documents, ConcentrationEntry rows) of a
    `campaign collect` table whose campaign has `thermodynamics:` / `luminescence:` blocks
    (empty lists otherwise); a concentration row without a result keeps its problem."""
    return ([f.result for f in results.formation if f.result is not None],
            [row.result for row in results.luminescence], list(results.concentrations))


def analyses_from_documents(host: str | Path, defects: list[str | Path],
                            pl_nm: float | None = None, allow_mixed: bool = False,
                            calculations: list | None = None) -> list[ModelAnalysis]:
    """Level analyses from the outputs of any code (no campaign needed); each output's level
    of theory is appended to `calculations` (report.model.Calculation rows) when given."""
    from perovdefect.levels import compare_with_pl, find_in_gap_states
    from perovdefect.levels.model import DefectAnalysis
    from perovdefect.parsers import parse
    from perovdefect.report.model import Calculation
    host_doc = parse(host)
    if calculations is not None:
        calculations.append(Calculation(run=Path(host).name, source=str(host),
                                        theory=host_doc.theory))
    defects_out = {}
    for d in defects:
        doc = parse(d)
        if calculations is not None:
            calculations.append(Calculation(run=Path(d).name, source=str(d), theory=doc.theory))
        levels = find_in_gap_states(host_doc, doc, allow_mixed=allow_mixed)
        if pl_nm and levels.transitions_eV:
            levels.pl_comparison = compare_with_pl(levels.transitions_eV, pl_nm)
        charge = None if doc.charge is None else int(round(doc.charge))
        defects_out[Path(d).name] = DefectAnalysis(charge=charge, **levels.model_dump())
    return [ModelAnalysis(model=Path(host).name, final_step="documents",
                          host=host_doc.calc_summary(), defects=defects_out)]


def load_photon_stats(paths: list[str | Path], excitation_N: list[float] | None = None,
                      background_cps: float | None = None, settings: Any = None,
                      notes: list[str] | None = None) -> list:
    """PhotonStats JSON files as they are; raw TCSPC files are analysed here with `settings`
    (an AnalysisSettings) when given, else with those of an existing analysis of the same file
    (STEM.photonstats.json beside it), else with the stated defaults; `background_cps` (per
    detector) replaces the settings' background. What was used goes into each PhotonStats'
    settings (origin) and, one line per raw file, into `notes`."""
    from perovdefect.photons.analysis.pipeline import analyze_file
    from perovdefect.photons.stats import PhotonStats
    out = []
    Ns = excitation_N or [None] * len(paths)
    if len(Ns) != len(paths):
        raise ReportError(f"{len(Ns)} excitation levels for {len(paths)} photon files")
    for p, N in zip(paths, Ns):
        p = Path(p)
        if not p.is_file():
            raise ReportError(f"{p}: no such photon file")
        if p.suffix == ".json":
            try:
                stats = PhotonStats.from_json(p)
            except ParseError as exc:
                raise ReportError(str(exc)) from None
            if N is not None:
                stats.excitation_N = N
        else:
            chosen = raw_file_settings(p, settings, background_cps)
            if notes is not None:
                notes.append(f"{p}: analysed with the settings of {chosen.origin}")
            stats = analyze_file(p, chosen, excitation_N=N)
        out.append(stats)
    return out


def raw_file_settings(path: Path, settings: Any = None, background_cps: float | None = None):
    """The AnalysisSettings for re-analysing raw file `path` (see load_photon_stats)."""
    from perovdefect.photons.stats import AnalysisSettings, PhotonStats
    if settings is None:
        existing = path.with_name(f"{path.stem}.photonstats.json")
        if existing.is_file():
            try:
                settings = PhotonStats.from_json(existing).settings.model_copy(
                    update={"origin": f"the existing analysis {existing}"})
            except ParseError as exc:
                raise ReportError(f"{existing}: the existing analysis of {path} cannot be "
                                  f"read ({exc}); give `settings`") from None
        else:
            settings = AnalysisSettings(origin=(
                f"perovdefect's defaults (no settings given and no {existing.name} "
                "beside the file)"))
    if background_cps is not None and background_cps != settings.background_cps_per_detector:
        settings = settings.model_copy(update={
            "background_cps_per_detector": background_cps,
            "origin": f"{settings.origin}, background {background_cps:g} counts/s per detector "
                      "given by the user"})
    return settings


def build_report(inputs: ReportInputs, out_dir: str | Path,
                 title: str = "perovdefect joint report") -> dict:
    """Write OUT/report.html, OUT/report.json, OUT/report.pdf and OUT/figures/*.png; returns
    the report model as a dict (what report.json holds, plus the file paths)."""
    if not (inputs.analyses or inputs.photon_stats or inputs.formation or inputs.luminescence
            or inputs.population is not None):
        raise ReportError("nothing to report: give campaign results / documents, formation or "
                          "luminescence results and/or photon data")
    inputs.analyses = analyses_of(inputs.analyses)
    return write_report(collect_model(inputs, title), out_dir)


def write_report(model: ReportModel, out_dir: str | Path) -> dict:
    """Draw and write a report from its model alone: OUT/report.html, OUT/report.json,
    OUT/report.pdf, OUT/figures/*.png and OUT/figures/data.json (the data each figure draws,
    report.figdata); returns the model as a dict (report.json, with the file paths)."""
    out = Path(out_dir)
    figdir = out / "figures"
    try:
        figdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the report folder ({exc.strerror})") from None
    drawn: dict[str, Any] = {}
    figures = draw_figures(model, drawn)
    for name, data in figures.items():
        (figdir / name).write_bytes(data)
    write_atomic(figdir / FIGURE_DATA, json.dumps(drawn, allow_nan=False))
    (out / "report.html").write_text(render_html(model, figures))
    write_pdf(out / "report.pdf", figures)
    model.files = {"html": str(out / "report.html"), "json": str(out / "report.json"),
                   "pdf": str(out / "report.pdf"), "figures": str(figdir),
                   "figure_data": str(figdir / FIGURE_DATA)}
    model.to_json(out / "report.json", indent=1)
    return model.to_dict()


def load_report_model(source: str | Path) -> ReportModel:
    """The ReportModel of a report.json (or of the report folder holding one); a one-line
    ReportError naming the file for a missing, corrupted, foreign or older one."""
    path = Path(source)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise ReportError(f"{source}: no such report.json (give a report's report.json or "
                          "its folder)")
    try:
        return ReportModel.from_json(path)
    except ParseError as exc:
        text = " ".join(str(exc).split())  # one line whatever the parser said
        if "schema version" not in text:
            text += (" (not a report.json written by this perovdefect; "
                     f"{ReportModel.REGENERATE_HINT})")
        raise ReportError(text) from None


def rebuild_report(source: str | Path, out_dir: str | Path) -> dict:
    """The same report again, drawn from its report.json alone (read whole before anything is
    written, so `out_dir` may be its own folder)."""
    return write_report(load_report_model(source), out_dir)


__all__ = ["ReportInputs", "ReportModel", "analyses_from_documents", "build_report",
           "load_campaign_results", "load_photon_stats", "load_report_model", "raw_file_settings",
           "rebuild_report", "write_report"]
