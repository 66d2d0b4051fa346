"""`perovdefect report`: the joint theory-experiment report."""

from __future__ import annotations

import click

from perovdefect.cli.common import FiniteFloat, echo_warning, output_dir
from perovdefect.cli.photons import EXCITATION_LIST, MAX_BACKGROUND_CPS

#: what `report` writes into its folder (besides figures/): never replaced without --force
REPORT_FILES = ("report.html", "report.json", "report.pdf")


@click.command()
@click.option("--campaign", type=click.Path(), help="Project folder (embedded LaunchPad), a "
              "`campaign collect` JSON, or a MongoDB my_launchpad.yaml.")
@click.option("--host", type=click.Path(), help="Host output (any code) instead of a campaign.")
@click.option("--defect", "defects", multiple=True, type=click.Path(), help="Defect output(s).")
@click.option("--allow-mixed", is_flag=True, help="Allow a host and defects of different codes "
              "or levels of theory (stated in the report).")
@click.option("--photons", "photon_files", multiple=True, type=click.Path(),
              help="PhotonStats JSON or raw TCSPC files (repeat the option).")
@click.option("--excitation-N", "excitation", type=EXCITATION_LIST,
              help="Comma-separated <N> per photon file (each > 0).")
@click.option("--background-cps", type=FiniteFloat(min=0, max=MAX_BACKGROUND_CPS),
              help="Background per detector for raw files (counts/s, >= 0).")
@click.option("--photon-settings", type=click.Path(exists=True, dir_okay=False),
              help="AnalysisSettings or PhotonStats JSON whose settings analyse the raw photon "
                   "files [default: those of STEM.photonstats.json beside each raw file, else "
                   "the defaults, stated in the report's photon settings].")
@click.option("--population", "population_path", type=click.Path(exists=True),
              help="A `photons population` result: its population.json or its folder.")
@click.option("--formation", "formation_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="FormationResult JSON from `perovdefect formation -o` (repeatable).")
@click.option("--luminescence", "lum_dirs", multiple=True, type=click.Path(exists=True),
              help="Luminescence run directory or its luminescence.json (repeatable).")
@click.option("--pl", "pl_csv", type=click.Path(), help="PL spectrum CSV (nm, intensity).")
@click.option("--pl-model", type=click.Choice(["gaussian", "voigt"]), default="gaussian")
@click.option("--absorption", type=click.Path(), help="Absorption spectrum CSV (nm, A).")
@click.option("--compound", default="Cs4PbBr6", show_default=True,
              help="Compound for the experimental-gap comparison.")
@click.option("--title", default="perovdefect joint report", show_default=True)
@click.option("--from", "from_json", type=click.Path(),
              help="Rebuild a report from its report.json (or its folder) alone: the same "
                   "numbers and figures, no other input.")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite a report already in the output folder.")
def report(campaign, host, defects, allow_mixed, photon_files, formation_files, lum_dirs,
           excitation, background_cps, pl_csv, pl_model,
           absorption, compound, title, out, photon_settings=None,
           population_path=None, force=False, from_json=None) -> None:
    """Computed defect levels beside measured PL and photon statistics, in one HTML report.
    --campaign accepts a `campaign collect` JSON, which needs no FireWorks."""
    from pathlib import Path

    from perovdefect.errors import ReportError
    from perovdefect.levels import fit_pl_spectrum, read_spectrum
    from perovdefect.photons.analysis.pipeline import power_series
    from perovdefect.report import (ReportInputs, analyses_from_documents, build_report,
                                    campaign_extras, load_campaign_results, load_photon_stats)
    output_dir(out, force, "--output", REPORT_FILES)
    if from_json:
        _rebuild(from_json, out)
        return
    inputs = ReportInputs(compound=compound)
    if pl_csv:
        wl, y = read_spectrum(pl_csv)
        peak = fit_pl_spectrum(wl, y, pl_model, source=pl_csv)
        inputs.pl = (wl, y, peak)
        inputs.input_files.append(Path(pl_csv))
    pl_nm = inputs.pl[2].center_nm if inputs.pl else None
    if campaign:
        results = load_campaign_results(campaign)
        inputs.campaign_table = results
        inputs.analyses = list(results.analyses)
        inputs.steps = [row.model_dump() for row in results.steps]
        inputs.formation, inputs.luminescence, inputs.concentrations = \
            campaign_extras(results)
        if not inputs.analyses:
            raise ReportError(f"{campaign}: the campaign has no finished level analysis yet "
                              "(run `perovdefect campaign run` first)")
    elif host:
        if not defects:
            raise ReportError("--host needs at least one --defect")
        inputs.analyses = analyses_from_documents(host, list(defects), pl_nm, allow_mixed,
                                                  inputs.calculations)
        inputs.input_files += [Path(host), *map(Path, defects)]
    if absorption:
        inputs.absorption = read_spectrum(absorption)
        inputs.input_files.append(Path(absorption))
    if photon_files:
        Ns = list(excitation) if excitation else None
        settings = None
        if photon_settings:
            from perovdefect.errors import ParseError
            from perovdefect.photons.stats import AnalysisSettings
            try:
                settings = AnalysisSettings.from_file(photon_settings)
            except ParseError as exc:
                raise ReportError(str(exc)) from None
        notes: list[str] = []
        inputs.photon_stats = load_photon_stats(list(photon_files), Ns, background_cps,
                                                settings, notes)
        inputs.notes += notes
        for note in notes:
            echo_warning(note, "note")
        inputs.input_files += [Path(p) for p in photon_files]
        if Ns and len(Ns) >= 3:
            inputs.power_series = power_series(inputs.photon_stats)
    if population_path:
        from perovdefect.report.population import load_population
        inputs.population, pop_file = load_population(population_path)
        inputs.input_files.append(pop_file)
    if formation_files:
        from perovdefect.thermo.calculations import FormationResult
        inputs.formation += [FormationResult.from_json(f) for f in formation_files]
        inputs.input_files += [Path(f) for f in formation_files]
    if lum_dirs:
        from perovdefect.optics.run import RESULT, LuminescenceResult
        files = [Path(d) / RESULT if Path(d).is_dir() else Path(d) for d in lum_dirs]
        inputs.luminescence += [LuminescenceResult.from_json(f) for f in files]
        inputs.input_files += files
    if inputs.luminescence and inputs.pl is not None:  # the measured spectrum given here wins
        from perovdefect.optics.lineshape import compare_with_measurement
        peak = inputs.pl[2]
        for lum in inputs.luminescence:
            lum.comparison = compare_with_measurement(lum.spectrum, peak.center_nm,
                                                      peak.fwhm_nm)
    if not (inputs.analyses or inputs.photon_stats or inputs.formation or inputs.luminescence
            or inputs.population is not None):
        raise ReportError("nothing to report: give campaign results / documents, formation or "
                          "luminescence results, photon data and/or a population")
    summary = build_report(inputs, out, title)
    click.echo(f"report: {summary['files']['html']} (+ report.json, report.pdf, figures/)")


def _rebuild(source: str, out: str) -> None:
    """`report --from`: the report drawn again from its saved model; an input given beside it
    would be ignored, so it is refused."""
    from click.core import ParameterSource

    from perovdefect.errors import ReportError
    from perovdefect.report import rebuild_report
    ctx = click.get_current_context()
    extra = [p.opts[-1] for p in ctx.command.params
             if p.name not in ("from_json", "out", "force")
             and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)]
    if extra:
        raise ReportError(f"--from rebuilds the report of {source} from it alone: give no "
                          f"other input ({', '.join(extra)})")
    summary = rebuild_report(source, out)
    click.echo(f"report: {summary['files']['html']} (rebuilt from {source}; + report.json, "
               "report.pdf, figures/)")
