"""`perovdefect parse` and `perovdefect levels`."""

from __future__ import annotations

import warnings

import click

from perovdefect.cli.common import FiniteFloat, echo_json, echo_warning, emit_document


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the ElectronicStructure document.")
@click.option("--full", is_flag=True, help="Include eigenvalue arrays in the JSON.")
@click.option("--projections", is_flag=True, help="Read projections (PROCAR-like) for IPR.")
def parse(path: str, as_json: bool, full: bool, projections: bool) -> None:
    """Parse PATH (vasprun.xml[.gz], OUTCAR[.gz], pw.x output, GPAW result.json or a run dir)."""
    from perovdefect.parsers import parse as parse_path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = parse_path(path, parse_projections=projections)
    for w in doc.warnings:
        echo_warning(w)
    if as_json:
        echo_json(doc.to_dict() if full else doc.summary())
    else:
        gap = ("no gap (highest band partially occupied)" if doc.gap_eV is None else
               f"gap {doc.gap_eV:.3f} eV ({'direct' if doc.direct_gap else 'indirect'})")
        click.echo(f"{doc.source}: {doc.code} {doc.functional}{'+SOC' if doc.soc else ''} "
                   f"(a={doc.exact_exchange_fraction:g}, w={doc.screening_inv_A:g}/A), "
                   f"{gap}, VBM {doc.vbm_eV:.3f} eV, CBM {doc.cbm_eV:.3f} eV, "
                   f"{'converged' if doc.converged else 'NOT CONVERGED'}")


@click.command()
@click.option("--host", required=True, type=click.Path(), help="Host (pristine) output.")
@click.option("--defect", required=True, type=click.Path(), help="Defect output.")
@click.option("--pl-nm", type=FiniteFloat(min=100, max=3000), help="Measured PL peak (nm).")
@click.option("--pl-spectrum", type=click.Path(), help="PL spectrum CSV (nm, intensity) to fit.")
@click.option("--peak-model", type=click.Choice(["gaussian", "voigt"]), default="gaussian")
@click.option("--alignment", type=click.Choice(["auto", "vacuum", "potential", "deep_level",
                                               "none"]), default="auto", show_default=True,
              help="auto: vacuum level for clusters, electrostatic potential for periodic "
                   "cells, the deepest eigenvalue only as a fallback (warned).")
@click.option("--allow-mixed", is_flag=True, help="Compare a host and a defect of different "
              "codes or levels of theory (refused otherwise); the document says so.")
@click.option("--json", "as_json", is_flag=True)
def levels(host: str, defect: str, pl_nm: float | None, pl_spectrum: str | None,
           peak_model: str, alignment: str, allow_mixed: bool, as_json: bool) -> None:
    """Host band edges and the defect's in-gap states (each classified as defect, perturbed
    host or delocalised), optionally against a measured PL."""
    from perovdefect.levels import (compare_with_pl, find_in_gap_states, fit_pl_spectrum,
                                    read_spectrum)
    from perovdefect.parsers import parse as parse_path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the codes' projections give each state its localisation; without them a state
        # near an edge is classified by its energy alone
        result = find_in_gap_states(parse_path(host, parse_projections=True),
                                    parse_path(defect, parse_projections=True), alignment,
                                    allow_mixed=allow_mixed)
    peak = None
    if pl_spectrum:
        wl, y = read_spectrum(pl_spectrum)
        peak = fit_pl_spectrum(wl, y, peak_model, source=pl_spectrum)
    if (pl_nm or peak) and result.transitions_eV:
        result.pl_comparison = compare_with_pl(result.transitions_eV, pl_nm, peak)
    if emit_document(result, None, as_json):
        return
    click.echo(f"host {result.host_functional}: VBM {result.host_vbm_eV:.3f} eV, "
               f"CBM {result.host_cbm_eV:.3f} eV, gap {result.host_gap_eV:.3f} eV "
               f"(alignment: {result.alignment}, shift {result.alignment_shift_eV:+.3f} eV)")
    if not result.in_gap_states:
        click.echo("no in-gap states")
    for s in result.in_gap_states:
        extra = f", IPR {s.ipr:.2f} {s.character}" if s.ipr is not None else ""
        click.echo(f"  {s.kind:14s} spin {s.spin} band {s.band}: VBM + "
                   f"{s.energy_above_vbm_eV:.3f} eV, occupation {s.occupation:.2f}, transition "
                   f"{s.transition_eV:.3f} eV ({s.transition_nm:.0f} nm){extra}")
    if result.verdict:
        click.echo(f"verdict: {result.verdict.text}")
    if result.pl_comparison:
        c = result.pl_comparison
        click.echo(f"PL {c.pl_nm:.1f} nm = {c.pl_eV:.3f} eV; closest defect transition "
                   f"deviates {c.closest.deviation_eV:+.3f} eV" if c.closest else
                   f"PL {c.pl_nm:.1f} nm: no defect transitions to compare")
    for w in result.warnings:
        echo_warning(w)
