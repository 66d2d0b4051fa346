"""`perovdefect formation` and `perovdefect luminescence`: defect thermodynamics and emission
from finished calculations of any code."""

from __future__ import annotations

import warnings

import click

from perovdefect.cli.common import (FiniteFloat, NumberList, echo_warning, emit_document,
                                    output_file)
from perovdefect.structures.vacancies import MAX_ABS_CHARGE


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
@click.option("--max-host-above-hull", "max_above_hull", type=FiniteFloat(min=0, max=500),
              default=0.0, show_default=True, metavar="MEV_PER_ATOM",
              help="With a competing-phase table: a host at most this far above the hull "
                   "(meV/atom) is shifted down onto it (doped's treatment of an unstable "
                   "host) and the shift is stated beside the result; 0: refused.")
@click.option("--correction", type=click.Choice(["none", "fnv", "efnv"]), default="fnv",
              show_default=True, help="Finite-size correction for periodic cells.")
@click.option("--dielectric", type=FiniteFloat(min=1.0, max=1e4),
              help="Static dielectric constant (electronic + ionic) for FNV.")
@click.option("--charge", "charge_pairs", multiple=True, metavar="PATH=Q",
              help="Give a defect's charge (overrides / supplies what the output lacks).")
@click.option("--name", "defect_name", default="V_Br", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the FormationResult document (for `perovdefect report --formation`).")
@click.option("--force", is_flag=True, help="Overwrite --output.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--fermi", is_flag=True, help="Also the equilibrium Fermi level, electron and "
              "hole densities and the defect's concentration per charge state (cm^-3) at "
              "--temperature for each limit (needs --chempots), with the host DOS from --bulk.")
@click.option("--temperature", "temperature_K", type=FiniteFloat(min=0, min_open=True, max=1e4),
              help="With --fermi: the equilibrium (synthesis) temperature (K).")
@click.option("--quench-temperature", "quench_K", type=FiniteFloat(min=0, min_open=True,
                                                                   max=1e4),
              help="With --fermi: also the frozen-defect Fermi level after quenching to this "
                   "temperature (K): defect totals fixed at their --temperature values, charge "
                   "states and carriers re-equilibrated.")
@click.option("--sites", "sites", type=FiniteFloat(min=0, min_open=True),
              help="With --fermi: equivalent defect sites in the host cell (default: the host "
                   "atoms of the removed species; needed for interstitials).")
@click.option("--dos-smearing", "dos_smearing", type=FiniteFloat(min=0, min_open=True, max=1.0),
              default=0.005, show_default=True,
              help="With --fermi: Gaussian width (eV) of each host state in the carrier DOS.")
def formation(bulk, defects, chempots, compound, max_above_hull, correction, dielectric,
              charge_pairs, defect_name, output, force, as_json, fermi, temperature_K, quench_K,
              sites, dos_smearing) -> None:
    """Formation energies at the chemical-potential limits and charge-transition levels;
    with --fermi also the Fermi level and the concentrations at synthesis and after a quench."""
    from perovdefect.parsers import parse
    from perovdefect.thermo.calculations import formation_from_calculations, read_limits
    from perovdefect.thermo.model_formation import with_limits_note
    output_file(output, force)
    _check_fermi_options(fermi, temperature_K, quench_K, sites, chempots)
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
    mus, note = read_limits(chempots, host, compound, max_above_hull * 1e-3) if chempots \
        else (None, None)
    result = with_limits_note(formation_from_calculations(
        host, docs, charges, mus, correction, dielectric, defect_name), note)
    if fermi:
        from perovdefect.thermo.concentrations import solve_thermodynamics
        result.thermodynamics = solve_thermodynamics(
            result, host, temperature_K, quench_K, dos_smearing_eV=dos_smearing,
            sites_per_cell=None if sites is None else {defect_name: sites})
    if emit_document(result, output, as_json):
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
    if result.thermodynamics is not None:
        _echo_thermodynamics(result.thermodynamics)
    for w in result.warnings + (result.thermodynamics.warnings if result.thermodynamics
                                else []):
        echo_warning(w)


def _check_fermi_options(fermi, temperature_K, quench_K, sites, chempots) -> None:
    """--temperature, --quench-temperature and --sites go with --fermi, which needs
    --temperature and --chempots."""
    if not fermi:
        if temperature_K is not None or quench_K is not None or sites is not None:
            raise click.UsageError("--temperature, --quench-temperature and --sites go with "
                                   "--fermi")
        return
    if temperature_K is None:
        raise click.UsageError("--fermi needs --temperature (K)")
    if not chempots:
        raise click.UsageError("--fermi needs --chempots: defect concentrations depend on the "
                               "chemical potentials")


def _echo_thermodynamics(th) -> None:
    """Fermi level vs limit, then the concentration table (cm^-3)."""
    dos = th.host_dos
    quench = th.quench_temperature_K
    click.echo(f"Fermi level and concentrations at {th.temperature_K:g} K"
               + (f", quenched to {quench:g} K (defect totals frozen)" if quench else "")
               + f"; sites per cell: {th.sites_per_cell}")
    click.echo(f"  host DOS: {dos.smearing} smearing {dos.smearing_width_eV:g} eV of the "
               f"eigenvalues at {dos.kpoints}, {dos.nspins} spin(s), {dos.n_bands} bands, "
               f"step {dos.energy_step_eV:.4f} eV, {dos.electrons_below_midgap:.2f} electrons "
               "below mid-gap")
    cols = [("equilibrium", th.temperature_K)] + ([("quenched", quench)] if quench else [])
    click.echo(f"  {'limit':<24} {'T (K)':>7} {'E_F - VBM (eV)':>15} {'n (cm^-3)':>11} "
               f"{'p (cm^-3)':>11}")
    for lim in th.limits:
        for attr, _ in cols:
            s = getattr(lim, attr)
            click.echo(f"  {lim.limit:<24} {s.temperature_K:>7g} "
                       f"{s.fermi_level_above_vbm_eV:>15.4f} {s.electrons_cm3:>11.3e} "
                       f"{s.holes_cm3:>11.3e}")
    click.echo("  concentrations (cm^-3):")
    heads = [f"{lim.limit[:14]}@{t:g}K" for lim in th.limits for _, t in cols]
    click.echo(f"  {'defect':<10} {'q':>3} " + " ".join(f"{h:>20}" for h in heads))
    first = th.limits[0].equilibrium.concentrations
    for i, c in enumerate(first):
        vals = [getattr(lim, a).concentrations[i].concentration_cm3 for lim in th.limits
                for a, _ in cols]
        click.echo(f"  {c.defect:<10} {c.charge:>+3d} " + " ".join(f"{v:>20.3e}" for v in vals))


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
@click.option("--padding", type=FiniteFloat(min=2.0, max=20.0), default=5.0,
              show_default=True, help="Vacuum around the cluster (A), with --cluster.")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="A setting of the local code over its quick preset (repeatable; values "
                   "read as YAML, checked by the code's backend), e.g. relax_max_steps=40.")
@click.option("--excitation", type=click.Choice(["down:homo->lumo", "up:homo->lumo"]),
              default="down:homo->lumo", show_default=True,
              help="DeltaSCF promotion (V_Br^0: a Br-p hole and the Pb-6p electron).")
@click.option("--hybrid", type=click.Choice(["HSE06", "PBE0"]), help="With --compute: also "
              "the transitions at this hybrid, as single points of both states at the two PBE "
              "minima (the ladder's cheap correction; RUN_DIR/level-HYBRID/).")
@click.option("--hybrid-setting", "hybrid_settings", multiple=True, metavar="KEY=VALUE",
              help="Backend setting of the --hybrid single points, over --setting and the "
                   "backend's hybrid preset (GPAW: plane waves), e.g. nbands=200 (repeatable).")
@click.option("--hybrid-cutoff-eV", "hybrid_cutoff", type=FiniteFloat(min=100, max=2000),
              help="Plane-wave cutoff of the --hybrid single points (eV; default 400).")
@click.option("--temperature", "temperature_K", type=FiniteFloat(min=0, max=2000),
              default=295.0, show_default=True, help="K")
@click.option("--broadening-meV", "broadening", type=FiniteFloat(min=0, min_open=True,
                                                                   max=1000),
              default=20.0, show_default=True, help="Gaussian FWHM of every phonon line.")
@click.option("--pl-nm", type=FiniteFloat(min=100, max=3000), help="Measured PL peak.")
@click.option("--pl-fwhm-nm", type=FiniteFloat(min=0, min_open=True, max=500),
              help="Measured PL FWHM.")
@click.option("--from-runs", is_flag=True, help="Build the result from the finished single "
              "points under RUN_DIR made elsewhere (any code: the ground and excited or the "
              "two charge states' minima and the geometries between them, recognised from the "
              "calculations themselves).")
@click.option("--charges", metavar="Q_INITIAL,Q_FINAL",
              type=NumberList(min=-MAX_ABS_CHARGE, max=MAX_ABS_CHARGE, integer=True, length=2),
              help="With --from-runs on two charge "
              "states: which emits, e.g. 1,0 for q+1 + e(CBM) -> q0.")
@click.option("--host", "host_run", type=click.Path(exists=True), help="With --charges: the "
              "host run (same level of theory) whose band edge gives or takes the carrier.")
@click.option("--band-edge-eV", "band_edge", type=FiniteFloat(min=-100.0, max=100.0),
              help="With --charges: the band edge "
              "(eV, the runs' scale) instead of --host.")
@click.option("--correction-eV", "correction", type=FiniteFloat(min=-20.0, max=20.0),
              help="With --charges: E_corr(q_i) - "
              "E_corr(q_f), the finite-size correction difference of the two charged cells.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="With --from-runs: write the LuminescenceResult JSON here.")
@click.option("--force", is_flag=True, help="Overwrite --output.")
@click.option("--json", "as_json", is_flag=True)
def luminescence(run_dir, compute, structure_file, charge, cluster, padding, settings,
                 excitation, hybrid, hybrid_settings, hybrid_cutoff, temperature_K, broadening,
                 pl_nm, pl_fwhm_nm, from_runs, charges, host_run, band_edge, correction, output,
                 force, as_json) -> None:
    """ZPL, absorption, emission, Delta Q, hbar omega, Huang-Rhys factors and the predicted PL
    peak and FWHM of a luminescence calculation (RUN_DIR/luminescence.json), or of finished
    runs made elsewhere (--from-runs)."""
    from pathlib import Path

    from perovdefect.errors import AnalysisError
    from perovdefect.optics.run import RESULT, LuminescenceResult, run_luminescence
    root = Path(run_dir)
    if (structure_file or charge is not None or settings or hybrid) and not compute:
        raise click.UsageError("--structure, --charge, --setting and --hybrid go with --compute")
    if (hybrid_settings or hybrid_cutoff) and not hybrid:
        raise click.UsageError("--hybrid-setting and --hybrid-cutoff-eV go with --hybrid")
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
        hybrid_backend = cls(**{**overrides, **cls.presets["hybrid"],
                                **_key_values(hybrid_settings, "--hybrid-setting")}) \
            if hybrid else None
        result = run_luminescence(record, cls(**overrides), root, excitation, hybrid=hybrid,
                                  hybrid_backend=hybrid_backend, hybrid_cutoff_eV=hybrid_cutoff,
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
    if as_json:  # the LuminescenceResult document itself (what --from-runs -o writes)
        click.echo(result.to_json(indent=1))
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
    if result.level_correction is not None:
        lc = result.level_correction
        click.echo(f"  {lc.level_of_theory}: ZPL {lc.corrected_zpl_eV:.3f} eV, emission "
                   f"{lc.corrected_em_eV:.3f} eV, PL peak {lc.corrected_pl_peak_nm:.1f} nm "
                   f"(shifts {lc.shift_zpl_eV:+.3f} / {lc.shift_em_eV:+.3f} eV)")
        if lc.soc_estimate is not None:
            click.echo(f"  {lc.functional}+SOC (estimate): ZPL {lc.corrected_soc_zpl_eV:.3f} eV, "
                       f"emission {lc.corrected_soc_em_eV:.3f} eV, PL peak "
                       f"{lc.corrected_soc_pl_peak_nm:.1f} nm (SOC shift "
                       f"{lc.soc_estimate.shift_em_eV:+.3f} eV; {lc.soc})")
            for w in lc.soc_estimate.warnings:
                echo_warning(w)
        else:
            click.echo(f"  {lc.soc}")
    if result.comparison:
        c = result.comparison
        click.echo(f"  vs measured {c.measured_peak_nm:.1f} nm / FWHM {c.measured_fwhm_nm:.1f} "
                   f"nm: peak {c.peak_deviation_eV:+.3f} eV ({c.peak_deviation_nm:+.1f} nm), FWHM "
                   f"{c.fwhm_deviation_meV:+.0f} meV ({c.fwhm_deviation_nm:+.1f} nm)")
    for w in result.warnings:
        echo_warning(w)


def _from_runs(root, charges, host_run, band_edge, correction, temperature_K, broadening,
               pl_nm, pl_fwhm_nm, output, force):
    """`luminescence RUN_DIR --from-runs`: the result of finished runs (optics.from_runs)."""
    from perovdefect.optics.from_runs import luminescence_from_runs
    output_file(output, force)
    result = luminescence_from_runs(root, charges, host_run, band_edge, correction,
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
            out[key.strip()] = _number_or_as_read(yaml.safe_load(value))
        except yaml.YAMLError:
            raise click.BadParameter(f"{v!r}: unreadable value", param_hint=option) from None
    return out


def _number_or_as_read(value):
    """A string that Python reads as a finite number (YAML 1.1 reads 1e-4, without a dot,
    as a string) as that number; anything else unchanged."""
    import math
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


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
