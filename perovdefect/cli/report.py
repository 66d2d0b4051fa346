"""`perovdefect report`: the joint theory-experiment report."""

from __future__ import annotations

import click


@click.command()
@click.option("--campaign", type=click.Path(), help="Project folder (embedded LaunchPad), a "
              "`campaign collect` JSON, or a MongoDB my_launchpad.yaml.")
@click.option("--host", type=click.Path(), help="Host output (any code) instead of a campaign.")
@click.option("--defect", "defects", multiple=True, type=click.Path(), help="Defect output(s).")
@click.option("--allow-mixed", is_flag=True, help="Allow a host and defects of different codes "
              "or levels of theory (stated in the report).")
@click.option("--photons", "photon_files", multiple=True, type=click.Path(),
              help="PhotonStats JSON or raw TCSPC files (repeat the option).")
@click.option("--excitation-N", "excitation", help="Comma-separated <N> per photon file.")
@click.option("--background-cps", type=float, help="Background per detector for raw files.")
@click.option("--pl", "pl_csv", type=click.Path(), help="PL spectrum CSV (nm, intensity).")
@click.option("--pl-model", type=click.Choice(["gaussian", "voigt"]), default="gaussian")
@click.option("--absorption", type=click.Path(), help="Absorption spectrum CSV (nm, A).")
@click.option("--compound", default="Cs4PbBr6", show_default=True,
              help="Compound for the experimental-gap comparison.")
@click.option("--title", default="perovdefect joint report", show_default=True)
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False))
def report(campaign, host, defects, allow_mixed, photon_files, excitation, background_cps, pl_csv, pl_model,
           absorption, compound, title, out) -> None:
    """Computed defect levels beside measured PL and photon statistics, in one HTML report.
    --campaign accepts a `campaign collect` JSON, which needs no FireWorks."""
    from pathlib import Path

    from perovdefect.errors import ReportError
    from perovdefect.levels import fit_pl_spectrum, read_spectrum
    from perovdefect.photons.analysis.pipeline import power_series
    from perovdefect.report import (ReportInputs, analyses_from_documents, build_report,
                                    load_campaign_results, load_photon_stats)
    inputs = ReportInputs(compound=compound)
    if pl_csv:
        wl, y = read_spectrum(pl_csv)
        peak = fit_pl_spectrum(wl, y, pl_model, source=pl_csv)
        inputs.pl = (wl, y, peak)
        inputs.input_files.append(Path(pl_csv))
    pl_nm = inputs.pl[2].center_nm if inputs.pl else None
    if campaign:
        results = load_campaign_results(campaign)
        inputs.analyses, inputs.steps = results["analyses"], results["steps"]
        if not inputs.analyses:
            raise ReportError(f"{campaign}: the campaign has no finished level analysis yet "
                              "(run `perovdefect campaign run` first)")
    elif host:
        if not defects:
            raise ReportError("--host needs at least one --defect")
        inputs.analyses = analyses_from_documents(host, list(defects), pl_nm, allow_mixed)
        inputs.input_files += [Path(host), *map(Path, defects)]
    if absorption:
        inputs.absorption = read_spectrum(absorption)
        inputs.input_files.append(Path(absorption))
    if photon_files:
        Ns = [float(x) for x in excitation.split(",")] if excitation else None
        inputs.photon_stats = load_photon_stats(list(photon_files), Ns, background_cps)
        inputs.input_files += [Path(p) for p in photon_files]
        if Ns and len(Ns) >= 3:
            inputs.power_series = power_series(inputs.photon_stats)
    summary = build_report(inputs, out, title)
    click.echo(f"report: {summary['files']['html']} (+ report.json, report.pdf, figures/)")
