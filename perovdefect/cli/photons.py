"""`perovdefect photons info|analyze|simulate`.

Every number and path is validated before any work starts: numbers through click types with
ranges (NaN and infinities refused by `FiniteFloat`), comma lists parsed strictly, input files
must exist, output folders must be writable, existing outputs are never overwritten without
--force. A bad argument is one line `error: ...` on stderr and exit code 2, never a traceback;
JSON output holds null where a value is NaN or infinite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from perovdefect.cli.common import (ErrorGroup, FiniteFloat, NumberList, dump_json, echo_json,
                                    echo_warning, emit_document, output_dir, output_file,
                                    writable_folder)
from perovdefect.errors import PerovDefectError


MIN_BIN_MS = 1e-3        # finest trace bin accepted (ms)
MAX_BIN_MS = 1e6         # coarsest trace bin accepted (ms)
MAX_G2_WINDOW_NS = 1e6   # widest g2 half-window accepted (ns): 2e7 bins of 0.1 ns
MAX_TRACE_BINS = 50_000_000  # trace bins one recording may need (duration / bin width)
MAX_SIM_DURATION_S = 3600.0  # longest simulated recording (s)
MAX_SIM_EMITTERS = 100       # most emitters (bright or dark) simulated
MAX_SIM_PHOTONS = 1e8        # most photons a simulation may be expected to produce
MIN_SIM_REP_RATE_MHZ = 1.91  # one period must fit 2**15 microtime bins of 16 ps (1.907 MHz)
MAX_GATE_NS = 1e6            # latest gate accepted (ns): far beyond any laser period
MAX_BACKGROUND_CPS = 1e8     # most background per detector (counts/s): beyond detector dead time
MAX_COUNTS_PER_BIN = 1e12    # highest level threshold (counts/bin)
MAX_EXCITATION_N = 1e4       # highest mean excitations per pulse <N>
MAX_TIMESTAMPS_UNIT_S = 1.0  # coarsest Photon-HDF5 timestamp unit (s)
#: --excitation-N: <N> per file, each finite and > 0
EXCITATION_LIST = NumberList(min=0, min_open=True, max=MAX_EXCITATION_N)


def _analyze_outputs(out: Path, files: Iterable[str]) -> list[Path]:
    """Every file `photons analyze` may write into `out` for these inputs (two inputs with the
    same stem would write the same outputs: PerovDefectError)."""
    stems: dict[str, str] = {}
    paths = [out / "summary.json", out / "power_series.png"]
    for f in files:
        stem = Path(f).stem
        if stem in stems:
            raise PerovDefectError(f"{stems[stem]} and {f} have the same name stem {stem!r}: "
                                   "their results would overwrite each other in "
                                   f"{out}; analyse them into separate folders (-o)")
        stems[stem] = f
        paths += [out / f"{stem}.photonstats.json"] + [
            out / f"{stem}_{kind}.png" for kind in ("trace", "decays", "flid", "g2", "dwell")]
    return paths


REP_RATE_HELP = ("Laser repetition rate (MHz) of T3 files that state none (Photon-HDF5 without "
                 "setup/laser_repetition_rates); must agree with a rate the file states.")


def write_particle_outputs(stats: Any, out: Path, stem: str) -> None:
    """OUT/STEM.photonstats.json and the recording's figures (trace, decays, FLID, g2,
    dwell times)."""
    from perovdefect.photons.figures import (decay_figure, dwell_time_figure, flid_figure,
                                             g2_figure, save, trace_figure)
    stats.to_json(out / f"{stem}.photonstats.json")
    save(trace_figure(stats), out / f"{stem}_trace.png")
    if stats.decay_histograms:
        save(decay_figure(stats), out / f"{stem}_decays.png")
        save(flid_figure(stats), out / f"{stem}_flid.png")
    if stats.g2:
        save(g2_figure(stats), out / f"{stem}_g2.png")
    dwell_fig = dwell_time_figure(stats)
    if dwell_fig is not None:
        save(dwell_fig, out / f"{stem}_dwell.png")


def _check_bins(stream: Any, bin_ms: float) -> None:
    """Refuse a trace that would need more than MAX_TRACE_BINS bins of bin_ms (memory)."""
    last_s = float(stream.macrotime.max() * stream.macrotime_resolution_s) if len(stream) else 0.0
    span_s = max(stream.duration_s(), last_s)
    n_bins = span_s / (bin_ms / 1e3)
    if not math.isfinite(n_bins) or n_bins > MAX_TRACE_BINS:
        raise PerovDefectError(f"{stream.source}: {span_s:.6g} s in bins of {bin_ms:g} ms "
                               f"needs {n_bins:.3g} trace bins (at most {MAX_TRACE_BINS:.0e}); "
                               "use a larger --bin-ms")


@click.group(cls=ErrorGroup)
def photons() -> None:
    """Time-tagged TCSPC data: read, simulate, analyse."""


@photons.command("info")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--allow-truncated", is_flag=True, help="Decode the records of a cut-short file.")
@click.option("--timestamps-unit",
              type=FiniteFloat(min=0, min_open=True, max=MAX_TIMESTAMPS_UNIT_S),
              help="Photon-HDF5 unit (s) when the file has none.")
@click.option("--rep-rate-mhz", type=FiniteFloat(min=0, min_open=True, max=1e4),
              help=REP_RATE_HELP)
@click.option("--chunk-records", type=click.IntRange(min=1),
              help="Records decoded at a time, the memory bound for big files [default: "
                   "perovdefect.photons.io.CHUNK_RECORDS, 20 million].")
def info(file: str, as_json: bool, allow_truncated: bool, timestamps_unit: float | None,
         chunk_records: int, rep_rate_mhz: float | None = None) -> None:
    """Record type, counts per channel, markers, overflows, resolutions, sync rate (and where
    it came from)."""
    from perovdefect.photons.io import CHUNK_RECORDS, info_by_pieces
    d = info_by_pieces(file, chunk_records or CHUNK_RECORDS, timestamps_unit, allow_truncated,
                       None if rep_rate_mhz is None else rep_rate_mhz * 1e6)
    for w in d["warnings"]:
        echo_warning(w)
    if as_json:
        echo_json(d)
    else:
        for k, v in d.items():
            click.echo(f"{k:24s} {v}")


@photons.command("analyze")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default="photons-out",
              show_default=True)
@click.option("--bin-ms", type=FiniteFloat(min=MIN_BIN_MS, max=MAX_BIN_MS), default=10.0,
              show_default=True, help="Trace bin (ms).")
@click.option("--thresholds", type=NumberList(min=0, max=MAX_COUNTS_PER_BIN),
              help="Comma-separated level thresholds (counts/bin, >= 0).")
@click.option("--gate-ns", type=FiniteFloat(min=0, max=MAX_GATE_NS), default=0.0,
              help="Drop photons earlier than this (g2, ns, >= 0).")
@click.option("--background-cps", type=FiniteFloat(min=0, max=MAX_BACKGROUND_CPS),
              help="Background per detector (counts/s, >= 0).")
@click.option("--excitation-N", "excitation", type=EXCITATION_LIST,
              help="Comma-separated <N> per file (power series; each finite and > 0).")
@click.option("--g2-window-ns", type=FiniteFloat(min=0, min_open=True, max=MAX_G2_WINDOW_NS),
              default=500.0, show_default=True, help="g2 half-window (ns).")
@click.option("--allow-truncated", is_flag=True)
@click.option("--timestamps-unit",
              type=FiniteFloat(min=0, min_open=True, max=MAX_TIMESTAMPS_UNIT_S),
              help="Photon-HDF5 unit (s) when the file has none.")
@click.option("--force", is_flag=True, help="Overwrite existing results in the output folder.")
@click.option("--levels", "level_method",
              type=click.Choice(["change-points", "poisson-mixture", "thresholds"]),
              help="Level method [default: change-points (Watkins-Yang + BIC); thresholds "
                   "when --thresholds is given].")
@click.option("--confidence", type=FiniteFloat(min=0.69, max=0.99), default=0.95,
              show_default=True, help="Confidence level of the change-point test (0.69-0.99).")
@click.option("--rep-rate-mhz", type=FiniteFloat(min=0, min_open=True, max=1e4),
              help=REP_RATE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
def analyze(files, outdir, bin_ms, thresholds, gate_ns, background_cps, excitation,
            g2_window_ns, allow_truncated, timestamps_unit, as_json, force=False,
            level_method=None, confidence=0.95, rep_rate_mhz=None) -> None:
    """Trace, levels, decays per level, g2/M and FLID per FILE; power series if <N> given."""
    from perovdefect.errors import AnalysisError
    # arguments and paths first, before any (slow) import or work
    ths = list(thresholds) if thresholds is not None else None
    Ns = list(excitation) if excitation is not None else [None] * len(files)
    if len(Ns) != len(files):
        raise AnalysisError(f"--excitation-N has {len(Ns)} values for {len(files)} files")
    out = Path(outdir)
    output_dir(out, force, "--output", _analyze_outputs(out, files))

    from rich.progress import Progress

    from perovdefect.photons.analysis.pipeline import (analyze_stream, power_series,
                                                       read_recording, settings_from_options)
    from perovdefect.photons.figures import power_series_figure, save
    settings = settings_from_options(
        bin_width_s=bin_ms / 1e3, thresholds=ths, gate_ns=gate_ns, background_cps=background_cps,
        g2_window_ns=g2_window_ns, level_method=level_method, confidence=confidence,
        timestamps_unit_s=timestamps_unit, allow_truncated=allow_truncated,
        rep_rate_hz=None if rep_rate_mhz is None else rep_rate_mhz * 1e6,
        origin="perovdefect photons analyze options")
    results = []
    with Progress(transient=True, disable=as_json) as progress:
        task = progress.add_task("analysing", total=len(files))
        for f, N in zip(files, Ns):
            stream = read_recording(f, settings)
            for w in stream.header.get("warnings", []):
                echo_warning(w)
            _check_bins(stream, bin_ms)
            try:
                with warnings.catch_warnings():  # numpy/scipy overflow chatter of the fits
                    warnings.simplefilter("ignore", RuntimeWarning)
                    stats = analyze_stream(
                        stream, settings, excitation_N=N,
                        progress=lambda m, f=f: progress.update(
                            task, description=f"{Path(f).name}: {m}"))
            except (ArithmeticError, MemoryError) as exc:  # damaged data past the readers
                raise PerovDefectError(f"{f}: analysis failed ({type(exc).__name__}: {exc}); "
                                       "the recording may be damaged") from exc
            write_particle_outputs(stats, out, Path(f).stem)
            results.append(stats)
            progress.advance(task)
    summary = {"files": [s.summary() for s in results]}
    if all(N is not None for N in Ns) and len(results) >= 3:
        series = power_series(results)
        summary["power_series"] = series.to_dict()
        save(power_series_figure(series), out / "power_series.png")
    from perovdefect.documents import write_atomic
    write_atomic(out / "summary.json", dump_json(summary))
    if as_json:
        echo_json(summary)
    else:
        for s in summary["files"]:
            g2 = (f", g2(0) {s['g2_0']:.3f}+-{s['g2_0_err']:.3f}, M {s['n_emitters']:.2f}"
                  if s.get("g2_0") is not None and s.get("n_emitters") else "")
            check = f"; {s['emitters_statement']}" if s.get("emitters_statement") else ""
            click.echo(f"{s['source']}: {s['photons']} photons, levels "
                       f"{s['levels_counts_per_bin']} counts/bin{g2}{check}")
        click.echo(f"results in {out}")


@photons.command("simulate")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output .ptu file.")
@click.option("--duration", type=FiniteFloat(min=0, min_open=True, max=MAX_SIM_DURATION_S),
              default=10.0, show_default=True, help="Recording length (s).")
@click.option("--emitters", type=click.IntRange(min=1, max=MAX_SIM_EMITTERS), default=1,
              show_default=True, help="Number of emitters (>= 1).")
@click.option("--excitation-N", "excitation",
              type=FiniteFloat(min=0, min_open=True, max=MAX_EXCITATION_N),
              default=1.0, show_default=True, help="Mean excitations per pulse <N> (> 0).")
@click.option("--rep-rate-mhz", type=FiniteFloat(min=MIN_SIM_REP_RATE_MHZ, max=1000.0),
              default=5.0, show_default=True,
              help="Laser repetition rate (MHz); the T3 microtime (16 ps bins, 15 bits) must "
                   "span one period.")
@click.option("--background-cps", type=FiniteFloat(min=0, max=MAX_BACKGROUND_CPS),
              default=750.0, show_default=True, help="Background per detector (counts/s, >= 0).")
@click.option("--steady", is_flag=True, help="Non-blinking emitters (antibunching reference).")
@click.option("--dark-emitters", type=click.IntRange(min=0, max=MAX_SIM_EMITTERS), default=0,
              help="Photoactivatable extra emitters (>= 0).")
@click.option("--k-act", type=FiniteFloat(min=0, max=1e6), default=2.0, show_default=True,
              help="Activation rate at <N>=1 (1/s, >= 0).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0,
              help="Random seed (>= 0).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def simulate_cmd(output, duration, emitters, excitation, rep_rate_mhz, background_cps, steady,
                 dark_emitters, k_act, seed, force=False) -> None:
    """Monte Carlo single-particle recording written as a HydraHarp T3 PTU."""
    from perovdefect.photons.io.ptu_write import write_ptu
    from perovdefect.photons.simulate import (SEED_STATES, STEADY_STATES, SimulationParams,
                                              simulate)
    output_file(output, force, "--output")
    params = SimulationParams(duration_s=duration, n_emitters=emitters,
                              excitation_N=excitation, rep_rate_hz=rep_rate_mhz * 1e6,
                              background_cps=background_cps,
                              states=STEADY_STATES if steady else SEED_STATES,
                              n_dark=dark_emitters, k_act_hz=k_act, seed=seed)
    bright = max(st.brightness for st in params.states)
    expected = ((emitters + dark_emitters) * params.rep_rate_hz * duration
                * min(1.0, bright * (1.0 - math.exp(-excitation)))
                + 2.0 * background_cps * duration)
    if expected > MAX_SIM_PHOTONS:
        raise PerovDefectError(f"these settings would simulate up to {expected:.3g} photons "
                               f"(at most {MAX_SIM_PHOTONS:.0e}); shorten --duration or lower "
                               "--emitters/--background-cps/--rep-rate-mhz")
    stream = simulate(params)
    if len(stream) == 0:
        raise PerovDefectError(f"these settings simulate no photons in {duration:g} s (raise "
                               "--excitation-N, --duration or --background-cps); "
                               f"{output} not written")
    try:
        write_ptu(output, stream)
    except ValueError as exc:  # a stream the T3 record format cannot hold
        raise PerovDefectError(f"{output}: cannot encode the simulated photons ({exc})") from None
    except OSError as exc:
        raise PerovDefectError(f"{output}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"wrote {len(stream)} photons ({stream.photons_per_channel()}) to {output}")


simulate_cmd.name = "simulate"


@photons.command("population")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              help="Folder of the population (recordings/ holds each PhotonStats; a rerun "
                   "analyses only what is not finished there).")
@click.option("--group-by", help="Regular expression on file names: group 'particle' (or the "
              "first group) names the particle, optional group 'N' gives <N> ('p' = '.').")
@click.option("--excitation-N", "excitation", type=EXCITATION_LIST,
              help="Comma-separated <N>, one per file in the order listed, or one for all.")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              help="AnalysisSettings or PhotonStats JSON whose settings are used (instead of "
                   "the options below).")
@click.option("--bin-ms", type=FiniteFloat(min=MIN_BIN_MS, max=MAX_BIN_MS), default=10.0,
              show_default=True, help="Trace bin (ms).")
@click.option("--gate-ns", type=FiniteFloat(min=0, max=MAX_GATE_NS), default=0.0,
              help="Drop photons earlier than this (g2, ns, >= 0).")
@click.option("--background-cps", type=FiniteFloat(min=0, max=MAX_BACKGROUND_CPS),
              help="Background per detector (counts/s, >= 0).")
@click.option("--confidence", type=FiniteFloat(min=0.69, max=0.99), default=0.95,
              show_default=True, help="Confidence level of the change-point test.")
@click.option("--rep-rate-mhz", type=FiniteFloat(min=0, min_open=True, max=1e4),
              help=REP_RATE_HELP)
@click.option("--timestamps-unit",
              type=FiniteFloat(min=0, min_open=True, max=MAX_TIMESTAMPS_UNIT_S),
              help="Photon-HDF5 unit (s) when the files have none.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=2, show_default=True,
              help="Processes analysing recordings at once.")
@click.option("--max-memory-gb", type=FiniteFloat(min=0, min_open=True, max=1e5),
              help="Memory the analyses may use together (GB) [default: 80 % of the memory "
                   "available at start]; each holds its whole recording, ~40 bytes per photon.")
@click.option("--force", is_flag=True, help="Analyse every recording again.")
@click.option("--json", "as_json", is_flag=True, help="Print the population document as JSON.")
def population_cmd(inputs, outdir, group_by, excitation, settings_file, bin_ms, gate_ns,
                   background_cps, confidence, rep_rate_mhz, timestamps_unit, workers, force,
                   as_json, max_memory_gb=None) -> None:
    """Many particles (files, folders or a CSV manifest of particle,file,excitation_N): each
    recording analysed once, then the population: per-particle table, fractions with binomial
    errors, figures."""
    from perovdefect.photons import population as pop
    Ns = list(excitation) if excitation is not None else None
    recs = pop.recordings(inputs, group_by, Ns)
    out = writable_folder(outdir)
    if settings_file:
        from perovdefect.photons.stats import AnalysisSettings
        settings = AnalysisSettings.from_file(settings_file)
    else:
        from perovdefect.photons.analysis.pipeline import settings_from_options
        settings = settings_from_options(
            bin_width_s=bin_ms / 1e3, gate_ns=gate_ns, background_cps=background_cps,
            confidence=confidence, timestamps_unit_s=timestamps_unit,
            rep_rate_hz=None if rep_rate_mhz is None else rep_rate_mhz * 1e6,
            origin="perovdefect photons population options")
    if force:
        for r in recs:
            (out / pop.RECORDINGS / f"{r.key}.photonstats.json").unlink(missing_ok=True)
    from rich.progress import Progress
    with Progress(disable=as_json, transient=True) as progress:
        task = progress.add_task("recordings", total=len(recs))
        done = sum(pop.finished(r, out / pop.RECORDINGS, settings) for r in recs)
        progress.update(task, completed=done)

        def tick(rec, err) -> None:
            progress.advance(task)
            if err:
                echo_warning(f"not analysed: {err}")
        from perovdefect.photons.memory import budget_from_gb
        notes: list[str] = []
        errors, reused = pop.analyze_recordings(recs, settings, out, workers, tick,
                                                budget_from_gb(max_memory_gb), notes)
    for note in notes:
        echo_warning(note, "note")
    doc = pop.population(recs, out, settings, errors, reused, notes)
    from perovdefect.photons.figures import population_figure, save
    save(population_figure(doc), out / "population.png")
    doc.figures = [str(out / "population.png")]
    if not emit_document(doc, out / "population.json", as_json):
        for line in pop.summary_lines(doc):
            click.echo(line)
        click.echo(f"population in {out / 'population.json'}")


population_cmd.name = "population"
