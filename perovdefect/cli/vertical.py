"""`perovdefect vertical`: a vertical transition between charge states at frozen geometry in a
periodic cell, GKFO-corrected (thin over perovdefect.optics.gkfo)."""

from __future__ import annotations

import warnings

import click

from perovdefect.cli.common import FiniteFloat, echo_warning, emit_document, output_file

#: dielectric constants accepted (>= 1: vacuum; the largest known static ones are ~1e4)
DIELECTRIC = FiniteFloat(min=1.0, max=1e4)


@click.command()
@click.option("--host", required=True, type=click.Path(exists=True),
              help="Defect-free supercell calculation (run directory or result file).")
@click.option("--initial", required=True, type=click.Path(exists=True),
              help="Relaxed initial charge state, same supercell.")
@click.option("--final", required=True, type=click.Path(exists=True),
              help="Final charge state (initial +- 1) at the initial state's geometry, "
                   "not relaxed.")
@click.option("--edge", type=click.Choice(["vbm", "cbm"]), required=True,
              help="Host band the carrier comes from or goes to: an electron joining the "
                   "defect from the CBM (capture, emission) or the VBM (absorption); one "
                   "leaving it to a VBM hole (emission) or the CBM (photo-ionisation).")
@click.option("--eps-total", type=DIELECTRIC,
              help="Static dielectric constant eps_0 (electronic + ionic); default: the "
                   "shipped value of the host compound.")
@click.option("--eps-electronic", type=DIELECTRIC,
              help="Electronic dielectric constant eps_inf; default: the shipped value.")
@click.option("--compound", help="Compound whose shipped dielectric constants apply "
              "(default: the host's reduced formula).")
@click.option("--json", "as_json", is_flag=True, help="Print the GkfoTransition document.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the GkfoTransition document (JSON).")
@click.option("--force", is_flag=True, help="Overwrite --output.")
def vertical(host, initial, final, edge, eps_total, eps_electronic, compound, as_json, output,
             force) -> None:
    """Vertical charge-changing transition (e.g. V_Br^0 + h(VBM) -> V_Br^+) at frozen
    geometry with the GKFO finite-size correction (pydefect)."""
    import numpy as np

    from perovdefect.optics.gkfo import gkfo_vertical_transition
    from perovdefect.parsers import parse
    output_file(output, force)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        docs = [parse(p) for p in (host, initial, final)]
    result = gkfo_vertical_transition(*docs, edge, dielectric_total=eps_total,
                                      dielectric_electronic=eps_electronic, compound=compound)
    if emit_document(result, output, as_json):
        return
    t, c = result.transition, result.correction
    click.echo(f"{result.process} ({t.kind})")
    click.echo(f"delta_energy_eV {t.delta_energy_eV:.4f} (uncorrected "
               f"{result.uncorrected_delta_energy_eV:.4f}); photon {t.photon_energy_eV:.4f} eV"
               f" = {t.photon_nm:.0f} nm")
    click.echo(f"GKFO correction_eV {c.energy_eV:.4f}: pc {c.pc_1st_term_eV:+.4f} "
               f"{c.pc_2nd_term_eV:+.4f}, alignment {c.alignment_1st_term_eV:+.4f} "
               f"{c.alignment_2nd_term_eV:+.4f} {c.alignment_3rd_term_eV:+.4f}")
    click.echo(f"vertical level VBM + {result.vertical_level_above_vbm_eV:.4f} eV (host gap "
               f"{result.host_gap_eV:.4f} eV); eps_0 {np.trace(c.dielectric_total) / 3:g}, "
               f"eps_inf {np.trace(c.dielectric_electronic) / 3:g} ({c.dielectric_source})")
    for w in result.warnings:
        echo_warning(w)
