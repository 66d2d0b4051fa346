"""`perovdefect formation` and `perovdefect luminescence`: defect thermodynamics and emission
from finished calculations of any code."""

from __future__ import annotations

import math
import warnings

import click

from perovdefect.cli.common import echo_json


def _charge_pairs(values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        path, sep, q = v.rpartition("=")
        if not sep or not path:
            raise click.BadParameter(f"{v!r}: expected PATH=Q", param_hint="--charge")
        try:
            out[path] = int(q)
        except ValueError:
            raise click.BadParameter(f"{v!r}: the charge must be an integer",
                                     param_hint="--charge") from None
    return out


@click.command()
@click.option("--bulk", required=True, type=click.Path(exists=True),
              help="Host (pristine) calculation: a run directory or output file, any code.")
@click.option("--defect", "defects", required=True, multiple=True, type=click.Path(exists=True),
              help="Defect calculation, one per charge state (repeat the option).")
@click.option("--chempots", help="JSON/YAML {limit: {element: mu_eV_per_atom}} (e.g. Br-rich, "
              "Br-poor), a campaign's thermodynamics.json, or `shipped` (the table shipped with "
              "perovdefect; only for hosts of its code, functional and basis).")
@click.option("--compound", help="With a competing-phase table: the host crystal whose limits "
              "apply (default: the host calculation's formula; give it for cluster models, "
              "e.g. Cs4PbBr6).")
@click.option("--correction", type=click.Choice(["none", "fnv", "efnv"]), default="fnv",
              show_default=True, help="Finite-size correction for periodic cells.")
@click.option("--dielectric", type=click.FloatRange(min=0, min_open=True),
              help="Static dielectric constant (electronic + ionic) for FNV.")
@click.option("--charge", "charge_pairs", multiple=True, metavar="PATH=Q",
              help="Give a defect's charge (overrides / supplies what the output lacks).")
@click.option("--name", "defect_name", default="V_Br", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the FormationResult document (for `perovdefect report --formation`).")
@click.option("--force", is_flag=True, help="Overwrite --output.")
@click.option("--json", "as_json", is_flag=True)
def formation(bulk, defects, chempots, compound, correction, dielectric, charge_pairs,
              defect_name, output, force, as_json) -> None:
    """Formation energies at the chemical-potential limits and charge-transition levels."""
    from perovdefect.parsers import parse
    from perovdefect.thermo.calculations import (formation_from_calculations,
                                                 read_chemical_potentials)
    if dielectric is not None and not math.isfinite(dielectric):
        raise click.BadParameter("must be finite", param_hint="--dielectric")
    given = _charge_pairs(charge_pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = parse(bulk)
        docs = [parse(d) for d in defects]
    unknown = set(given) - set(defects)
    if unknown:
        raise click.BadParameter(f"{sorted(unknown)} is not one of the --defect paths",
                                 param_hint="--charge")
    charges = {str(doc.source): given[d] for d, doc in zip(defects, docs) if d in given}
    mus = read_chemical_potentials(chempots, host, compound) if chempots else None
    from pathlib import Path
    if output and Path(output).exists() and not force:
        raise click.BadParameter(f"{output} exists (give --force to overwrite)",
                                 param_hint="--output")
    result = formation_from_calculations(host, docs, charges, mus, correction, dielectric,
                                         defect_name)
    if output:
        result.to_json(output, indent=1)
    if as_json:
        out = result.to_dict()
        d = out.pop("diagram")
        echo_json({"transition_levels": d["transition_levels"],
                   "formation_energies": d["formation_energies"],
                   "corrections": {str(s["charge"]): s["corrections"]
                                   for s in d["charge_states"]},
                   "correction": result.correction, "correction_note": result.correction_note,
                   "levels_outside_gap": d["levels_outside_gap"], "diagram": d, **out})
        return
    dg = result.diagram
    click.echo(f"{defect_name}: host gap {dg.band_gap_eV:.3f} eV; correction: "
               f"{result.correction_note}; chemical potentials: {result.chemical_potentials}")
    for fe in dg.formation_energies:
        click.echo(f"  {fe.limit}: " + ", ".join(f"q={c.charge:+d} {c.at_vbm_eV:.3f} eV"
                                                 for c in fe.formation_energies)
                   + " (E_F at the VBM)")
    for lvl in dg.transition_levels:
        click.echo(f"  eps({lvl.charges[0]:+d}/{lvl.charges[1]:+d}) = VBM + "
                   f"{lvl.level_above_vbm_eV:.3f} eV")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--compute", is_flag=True, help="Run (or resume) the calculations into RUN_DIR "
              "with the local code first: the relaxed ground and DeltaSCF excited states of "
              "the structure (--structure, or the V_Br cluster) and the CC points.")
@click.option("--structure", "structure_file", type=click.Path(dir_okay=False),
              help="With --compute: any structure file (CIF, POSCAR, extxyz, xyz, JSON), "
                   "periodic (a supercell, Gamma only) or not, e.g. from `perovdefect build "
                   "vacancies`; default: the built-in --cluster model.")
@click.option("--charge", type=click.IntRange(min=-4, max=4),
              help="Net charge (e) of --structure (default: the file's, else 0).")
@click.option("--cluster", type=click.Choice(["cs4pbbr6-molecule", "pbbr6-octahedron"]),
              default="cs4pbbr6-molecule", show_default=True,
              help="With --compute and no --structure.")
@click.option("--padding", type=click.FloatRange(min=2.0, max=20.0), default=5.0,
              show_default=True, help="Vacuum around the cluster (A), with --cluster.")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="A setting of the local code over its quick preset (repeatable; values "
                   "read as YAML, checked by the code's backend), e.g. relax_max_steps=40.")
@click.option("--excitation", type=click.Choice(["down:homo->lumo", "up:homo->lumo"]),
              default="down:homo->lumo", show_default=True,
              help="DeltaSCF promotion (V_Br^0: a Br-p hole and the Pb-6p electron).")
@click.option("--temperature", "temperature_K", type=click.FloatRange(min=0, max=2000),
              default=295.0, show_default=True, help="K")
@click.option("--broadening-meV", "broadening", type=click.FloatRange(min=0, min_open=True,
                                                                      max=1000),
              default=20.0, show_default=True, help="Gaussian FWHM of every phonon line.")
@click.option("--pl-nm", type=click.FloatRange(min=100, max=3000), help="Measured PL peak.")
@click.option("--pl-fwhm-nm", type=click.FloatRange(min=0, min_open=True, max=500),
              help="Measured PL FWHM.")
@click.option("--from-runs", is_flag=True, help="Build the result from the finished single "
              "points under RUN_DIR made elsewhere (any code: the ground and excited or the "
              "two charge states' minima and the geometries between them, recognised from the "
              "calculations themselves).")
@click.option("--charges", metavar="Q_INITIAL,Q_FINAL", help="With --from-runs on two charge "
              "states: which emits, e.g. 1,0 for q+1 + e(CBM) -> q0.")
@click.option("--host", "host_run", type=click.Path(exists=True), help="With --charges: the "
              "host run (same level of theory) whose band edge gives or takes the carrier.")
@click.option("--band-edge-eV", "band_edge", type=float, help="With --charges: the band edge "
              "(eV, the runs' scale) instead of --host.")
@click.option("--correction-eV", "correction", type=float, help="With --charges: E_corr(q_i) - "
              "E_corr(q_f), the finite-size correction difference of the two charged cells.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="With --from-runs: write the LuminescenceResult JSON here.")
@click.option("--force", is_flag=True, help="Overwrite --output.")
@click.option("--json", "as_json", is_flag=True)
def luminescence(run_dir, compute, structure_file, charge, cluster, padding, settings,
                 excitation, temperature_K, broadening, pl_nm, pl_fwhm_nm, from_runs, charges,
                 host_run, band_edge, correction, output, force, as_json) -> None:
    """ZPL, absorption, emission, Delta Q, hbar omega, Huang-Rhys factors and the predicted PL
    peak and FWHM of a luminescence calculation (RUN_DIR/luminescence.json), or of finished
    runs made elsewhere (--from-runs)."""
    from pathlib import Path

    from perovdefect.errors import AnalysisError
    from perovdefect.optics.run import RESULT, LuminescenceResult, run_luminescence
    root = Path(run_dir)
    for v, name in ((temperature_K, "--temperature"), (broadening, "--broadening-meV"),
                    (band_edge, "--band-edge-eV"), (correction, "--correction-eV")):
        if v is not None and not math.isfinite(v):
            raise click.BadParameter("must be finite", param_hint=name)
    if (structure_file or charge is not None or settings) and not compute:
        raise click.UsageError("--structure, --charge and --setting go with --compute")
    if (charges or host_run or band_edge is not None or correction is not None or output) \
            and not from_runs:
        raise click.UsageError("--charges, --host, --band-edge-eV, --correction-eV and "
                               "--output go with --from-runs")
    if from_runs and compute:
        raise click.UsageError("give --compute or --from-runs, not both")
    if from_runs:
        result = _from_runs(root, charges, host_run, band_edge, correction, temperature_K,
                            broadening, pl_nm, pl_fwhm_nm, output, force)
    elif compute:
        from perovdefect.calcs.backend import local_backend
        cls = local_backend()
        overrides = {**cls.presets["quick"], **_key_values(settings, "--setting")}
        record = _luminescence_record(structure_file, charge, cluster, padding)
        result = run_luminescence(record, cls(**overrides), root, excitation,
                                  temperature_K=temperature_K, broadening_fwhm_meV=broadening,
                                  measured_peak_nm=pl_nm, measured_fwhm_nm=pl_fwhm_nm,
                                  log=lambda m: click.echo(m, err=True))
    else:
        if not (root / RESULT).is_file():
            raise AnalysisError(f"{root}: no {RESULT} (run `perovdefect luminescence {root} "
                                "--compute` first)")
        result = LuminescenceResult.from_json(root / RESULT)
        if pl_nm and pl_fwhm_nm:
            from perovdefect.optics.lineshape import compare_with_measurement
            result.comparison = compare_with_measurement(result.spectrum, pl_nm, pl_fwhm_nm)
    s = result.summary()
    if as_json:
        echo_json({**s, "warnings": result.warnings, "excitation": result.excitation,
                   "code": result.code, "level_of_theory": result.level_of_theory})
        return
    size = (f"periodic, {result.n_atoms} atoms, images {result.image_distance_A:.1f} A apart"
            if result.model == "periodic" else "isolated cluster")
    click.echo(f"{result.structure} ({size}; {result.code}, {result.level_of_theory}, "
               f"{result.excitation}):")
    click.echo(f"  ZPL {s['zpl_eV']:.3f} eV, absorption {s['absorption_eV']:.3f} eV, emission "
               f"{s['emission_eV']:.3f} eV, Delta Q {s['delta_q_amu05_A']:.3f} amu^1/2 A")
    click.echo(f"  hbar omega {s['hbar_omega_ground_meV']:.1f} / {s['hbar_omega_excited_meV']:.1f}"
               f" meV, S {s['huang_rhys_ground']:.2f} / {s['huang_rhys_excited']:.2f} "
               "(ground / excited)")
    click.echo(f"  predicted PL at {temperature_K:g} K: {s['predicted_pl_peak_eV']:.3f} eV "
               f"({s['predicted_pl_peak_nm']:.1f} nm), FWHM {s['predicted_pl_fwhm_meV']:.0f} meV "
               f"({s['predicted_pl_fwhm_nm']:.1f} nm)")
    if result.comparison:
        c = result.comparison
        click.echo(f"  vs measured {c.measured_peak_nm:.1f} nm / FWHM {c.measured_fwhm_nm:.1f} "
                   f"nm: peak {c.peak_deviation_eV:+.3f} eV ({c.peak_deviation_nm:+.1f} nm), FWHM "
                   f"{c.fwhm_deviation_meV:+.0f} meV ({c.fwhm_deviation_nm:+.1f} nm)")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


def _from_runs(root, charges, host_run, band_edge, correction, temperature_K, broadening,
               pl_nm, pl_fwhm_nm, output, force):
    """`luminescence RUN_DIR --from-runs`: the result of finished runs (optics.from_runs)."""
    from pathlib import Path

    from perovdefect.errors import AnalysisError
    from perovdefect.optics.from_runs import luminescence_from_runs
    pair = None
    if charges:
        try:
            pair = tuple(int(q) for q in charges.split(","))
        except ValueError:
            pair = ()
        if len(pair) != 2:
            raise AnalysisError(f"--charges {charges!r}: expected Q_INITIAL,Q_FINAL (e.g. 1,0)")
    if output and Path(output).exists() and not force:
        raise AnalysisError(f"--output {output} exists (give --force to overwrite)")
    result = luminescence_from_runs(root, pair, host_run, band_edge, correction,
                                    temperature_K, broadening, pl_nm, pl_fwhm_nm,
                                    log=lambda m: click.echo(m, err=True))
    if output:
        result.to_json(output, indent=1)
    return result


def _key_values(values: tuple[str, ...], option: str) -> dict:
    """KEY=VALUE pairs (values read as YAML scalars) as a dict; a malformed one names `option`."""
    import yaml
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE", param_hint=option)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise click.BadParameter(f"{v!r}: unreadable value", param_hint=option) from None
    return out


def _luminescence_record(structure_file, charge, cluster, padding):
    """The structure of `luminescence --compute`: a file (with --charge) or a built-in cluster."""
    if structure_file is None:
        from perovdefect.structures import build_cluster
        return build_cluster(cluster, vacancy=True, padding_A=padding)
    from perovdefect.structures.record import read_structure
    record = read_structure(structure_file)
    if charge is not None:
        record.metadata["charge"] = int(charge)
    return record
