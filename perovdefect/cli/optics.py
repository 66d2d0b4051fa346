"""`perovdefect transition`: transition dipole, oscillator strength and radiative lifetime between
two Kohn-Sham levels of a finished calculation (thin over perovdefect.optics.radiative)."""

from __future__ import annotations

import warnings

import click

from perovdefect.cli.common import FiniteFloat, echo_warning, emit_document, output_file

#: perovdefect.optics.radiative.LOCAL_FIELD_MODELS (default first), named here so that the CLI
#: starts without importing the analysis (a test checks that the two agree)
LOCAL_FIELDS = ("none", "virtual-cavity", "empty-cavity")


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--initial", default="homo", show_default=True,
              help="Initial band: homo, lumo, homo-N, lumo+N or a 0-based index.")
@click.option("--final", default="lumo", show_default=True, help="Final band (as --initial).")
@click.option("--spin", type=click.Choice(["up", "down"]), default="up", show_default=True)
@click.option("--refractive-index", type=FiniteFloat(min=1.0, max=10.0),
              help="Refractive index of the host (default 1: an isolated system in vacuum).")
@click.option("--refractive-index-source", help="Where the refractive index comes from "
              "(a reference, a measurement); stored in the document.")
@click.option("--local-field", type=click.Choice(LOCAL_FIELDS), default=LOCAL_FIELDS[0],
              show_default=True,
              help="Local-field factor: none (1), virtual-cavity ((n^2+2)/3)^2 or empty-cavity "
                   "(3n^2/(2n^2+1))^2.")
@click.option("--energy-eV", "energy_eV", type=FiniteFloat(min=0, min_open=True, max=20.0),
              help="Photon energy (eV) to use instead "
              "of the Kohn-Sham eigenvalue difference (e.g. a DeltaSCF emission energy).")
@click.option("--degeneracy-tol-eV", "tol_eV", type=FiniteFloat(min=0, max=1.0), default=0.01,
              show_default=True, help="Bands this close to the initial / final band count as "
                                      "sublevels of the same level (0: the single pair).")
@click.option("--json", "as_json", is_flag=True, help="Print the OpticalTransition document.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the OpticalTransition document (JSON).")
@click.option("--force", is_flag=True, help="Overwrite --output.")
def transition(run_dir, initial, final, spin, refractive_index, refractive_index_source,
               local_field, energy_eV, tol_eV, as_json, output, force) -> None:
    """Radiative transition between two bands of the finished calculation in RUN_DIR:
    energy, dipole |<i|e r|f>| (e*A), oscillator strength and spontaneous-emission lifetime."""
    from perovdefect.optics.radiative import radiative_transition
    output_file(output, force)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = radiative_transition(run_dir, initial, final, spin, refractive_index,
                                      refractive_index_source, local_field, energy_eV,
                                      "given (--energy-eV)" if energy_eV is not None else None,
                                      tol_eV)
    if emit_document(result, output, as_json):
        return
    tau = result.radiative_lifetime_ns
    click.echo(f"{result.source}: spin {result.spin} band {result.initial_band} "
               f"({result.initial}) -> {result.final_band} ({result.final}), "
               f"{result.direction}")
    click.echo(f"energy_eV {result.energy_eV:.4f} ({result.energy_source})")
    click.echo(f"dipole_eA {result.dipole_eA:.4f}")
    click.echo(f"oscillator_strength {result.oscillator_strength:.4f}")
    click.echo(f"radiative_lifetime_ns {tau:.4g}" if tau is not None else
               "radiative_lifetime_ns none (dipole-forbidden)")
    click.echo(f"(n = {result.refractive_index:g}: {result.refractive_index_source}; local "
               f"field {result.local_field}, factor {result.local_field_factor:.3f})")
    for w in result.warnings:
        echo_warning(w)
