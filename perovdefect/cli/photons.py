"""`perovdefect photons info|analyze|simulate`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from perovdefect.cli.common import echo_json


@click.group()
def photons() -> None:
    """Time-tagged TCSPC data: read, simulate, analyse."""


@photons.command("info")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True)
@click.option("--allow-truncated", is_flag=True, help="Decode the records of a cut-short file.")
@click.option("--timestamps-unit", type=float, help="Photon-HDF5 unit (s) when the file has none.")
@click.option("--chunk-records", type=click.IntRange(min=1),
              help="Records decoded at a time, the memory bound for big files [default: "
                   "perovdefect.photons.io.CHUNK_RECORDS, 20 million].")
def info(file: str, as_json: bool, allow_truncated: bool, timestamps_unit: float | None,
         chunk_records: int) -> None:
    """Record type, counts per channel, markers, overflows, resolutions, sync rate."""
    from perovdefect.photons.io import CHUNK_RECORDS, info_by_pieces
    d = info_by_pieces(file, chunk_records or CHUNK_RECORDS, timestamps_unit, allow_truncated)
    for w in d["warnings"]:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        echo_json(d)
    else:
        for k, v in d.items():
            click.echo(f"{k:24s} {v}")


@photons.command("analyze")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default="photons-out",
              show_default=True)
@click.option("--bin-ms", type=float, default=10.0, show_default=True, help="Trace bin (ms).")
@click.option("--thresholds", help="Comma-separated level thresholds (counts/bin).")
@click.option("--gate-ns", type=float, default=0.0, help="Drop photons earlier than this (g2).")
@click.option("--background-cps", type=float, help="Background per detector (counts/s).")
@click.option("--excitation-N", "excitation", help="Comma-separated <N> per file (power series).")
@click.option("--g2-window-ns", type=float, default=500.0, show_default=True)
@click.option("--allow-truncated", is_flag=True)
@click.option("--timestamps-unit", type=float)
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
def analyze(files, outdir, bin_ms, thresholds, gate_ns, background_cps, excitation,
            g2_window_ns, allow_truncated, timestamps_unit, as_json) -> None:
    """Trace, levels, decays per level, g2/M and FLID per FILE; power series if <N> given."""
    from rich.progress import Progress

    from perovdefect.errors import AnalysisError
    from perovdefect.photons.analysis.pipeline import analyze_stream, power_series
    from perovdefect.photons.figures import (decay_figure, flid_figure, g2_figure,
                                             power_series_figure, save, trace_figure)
    from perovdefect.photons.io import read_photons
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    ths = [float(x) for x in thresholds.split(",")] if thresholds else None
    Ns = [float(x) for x in excitation.split(",")] if excitation else [None] * len(files)
    if len(Ns) != len(files):
        raise AnalysisError(f"--excitation-N has {len(Ns)} values for {len(files)} files")
    results = []
    with Progress(transient=True, disable=as_json) as progress:
        task = progress.add_task("analysing", total=len(files))
        for f, N in zip(files, Ns):
            stream = read_photons(f, timestamps_unit, allow_truncated)
            stats = analyze_stream(
                stream, bin_width_s=bin_ms / 1e3, thresholds=ths, gate_ns=gate_ns,
                background_cps=background_cps, excitation_N=N, g2_window_ns=g2_window_ns,
                progress=lambda m, f=f: progress.update(task, description=f"{Path(f).name}: {m}"))
            stem = Path(f).stem
            stats.to_json(out / f"{stem}.photonstats.json")
            save(trace_figure(stats), out / f"{stem}_trace.png")
            if stats.decay_histograms:
                save(decay_figure(stats), out / f"{stem}_decays.png")
                save(flid_figure(stats), out / f"{stem}_flid.png")
            if stats.g2:
                save(g2_figure(stats), out / f"{stem}_g2.png")
            results.append(stats)
            progress.advance(task)
    summary = {"files": [s.summary() for s in results]}
    if all(N is not None for N in Ns) and len(results) >= 3:
        series = power_series(results)
        summary["power_series"] = series
        save(power_series_figure(series), out / "power_series.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    if as_json:
        echo_json(summary)
    else:
        for s in summary["files"]:
            g2 = (f", g2(0) {s['g2_0']:.3f}+-{s['g2_0_err']:.3f}, M {s['n_emitters']:.2f}"
                  if s.get("g2_0") is not None and s.get("n_emitters") else "")
            click.echo(f"{s['source']}: {s['photons']} photons, levels "
                       f"{s['levels_counts_per_bin']} counts/bin{g2}")
        click.echo(f"results in {out}")


@photons.command("simulate")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output .ptu file.")
@click.option("--duration", type=float, default=10.0, show_default=True, help="s")
@click.option("--emitters", type=int, default=1, show_default=True)
@click.option("--excitation-N", "excitation", type=float, default=1.0, show_default=True)
@click.option("--rep-rate-mhz", type=float, default=5.0, show_default=True)
@click.option("--background-cps", type=float, default=750.0, show_default=True)
@click.option("--steady", is_flag=True, help="Non-blinking emitters (antibunching reference).")
@click.option("--dark-emitters", type=int, default=0, help="Photoactivatable extra emitters.")
@click.option("--k-act", type=float, default=2.0, show_default=True,
              help="Activation rate at <N>=1 (1/s).")
@click.option("--seed", type=int, default=0)
def simulate_cmd(output, duration, emitters, excitation, rep_rate_mhz, background_cps, steady,
                 dark_emitters, k_act, seed) -> None:
    """Monte Carlo single-particle recording written as a HydraHarp T3 PTU."""
    from perovdefect.photons.io.ptu_write import write_ptu
    from perovdefect.photons.simulate import (SEED_STATES, STEADY_STATES, SimulationParams,
                                              simulate)
    params = SimulationParams(duration_s=duration, n_emitters=emitters,
                              excitation_N=excitation, rep_rate_hz=rep_rate_mhz * 1e6,
                              background_cps=background_cps,
                              states=STEADY_STATES if steady else SEED_STATES,
                              n_dark=dark_emitters, k_act_hz=k_act, seed=seed)
    stream = simulate(params)
    write_ptu(output, stream)
    click.echo(f"wrote {len(stream)} photons ({stream.photons_per_channel()}) to {output}")


simulate_cmd.name = "simulate"
