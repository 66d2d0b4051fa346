"""A population of particles: many recordings analysed once each (resumable, two processes),
grouped into particles (each with its own power series), and read as a population.

Particles and their <N> come from the file names (`group_by`: a regular expression whose group
`particle` (or first group) names the particle and whose optional group `N` gives <N>, with `p`
read as the decimal point: `nc07_N0p5.ptu`), from a CSV manifest (columns particle, file,
excitation_N) or, without either, one particle per file.

Per particle, at its lowest <N>: g2(0) +- error, M = 1/(1 - g2(0)) (the brightest level's g2,
else all photons), BX/X, levels (counts per bin, lifetime), ON/OFF dwell exponents and the
levels-vs-g2 check; over its power series (>= 3 recordings with <N>): the intensity exponent and
the photobrightening flag (superlinear beyond 2 sigma, `analysis.power`). Population fractions
with binomial errors sqrt(p (1 - p) / n): single emitters at the lowest <N> (M < 1.5, i.e.
g2(0) < 1/3), multi-emitters (M >= 1.5), photobrightening (of the particles with a power
series), levels-vs-g2 disagreement (of the particles where both were read).

Memory: each worker process holds one recording at a time (the analysis needs the whole
recording: `perovdefect.photons.memory`, ~40 bytes per photon + 0.3 GB per process), so the
population needs `workers` recordings' worth, not the population's; recordings larger than the
memory budget are refused before any is read and fewer workers run when the largest together
would exceed it. A recording that cannot be read or analysed is listed with its error; the rest
are analysed. Finished recordings (their PhotonStats in DIR/recordings with the same settings)
are not analysed again.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError, ParseError, PerovDefectError
from perovdefect.photons.stats import AnalysisSettings, PhotonStats

RAW_SUFFIXES = (".ptu", ".ht3", ".ht2", ".pt3", ".pt2", ".h5", ".hdf5")
SINGLE_MAX_M = 1.5  # M below which a particle is one emitter (g2(0) < 1/3)
RECORDINGS = "recordings"


@dataclass(frozen=True)
class Recording:
    """One raw file of one particle at one <N> (None when unknown)."""

    particle: str
    path: Path
    excitation_N: float | None

    @property
    def key(self) -> str:
        """File name of its PhotonStats in DIR/recordings (particle and file stem)."""
        return f"{self.particle}__{self.path.stem}"


# ------------------------------------------------------------------------------ inputs

def _files(inputs: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in RAW_SUFFIXES
                          and f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise PerovDefectError(f"{p}: no such file or folder")
    return out


def _N_from_text(text: str, where: str) -> float:
    try:
        x = float(text.replace("p", "."))
    except ValueError:
        raise PerovDefectError(f"{where}: <N> {text!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise PerovDefectError(f"{where}: <N> {text!r} must be finite and > 0")
    return x


def read_manifest(path: Path) -> list[Recording]:
    """A CSV with columns particle, file (relative to the CSV) and excitation_N (may be
    empty)."""
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParseError(f"{path}: cannot read the manifest ({exc})") from None
    need = {"particle", "file"}
    if not rows or not need <= set(rows[0]):
        raise ParseError(f"{path}: a manifest needs the columns particle, file[, excitation_N]")
    out = []
    for i, r in enumerate(rows, 2):
        f = (path.parent / r["file"]).resolve()
        if not f.is_file():
            raise ParseError(f"{path}: line {i}: {r['file']} is not a file")
        n = (r.get("excitation_N") or "").strip()
        out.append(Recording(r["particle"].strip(), f,
                             _N_from_text(n, f"{path} line {i}") if n else None))
    return out


def recordings(inputs: Iterable[str | Path], group_by: str | None = None,
               excitation_N: list[float] | None = None) -> list[Recording]:
    """The recordings of INPUT files, folders and CSV manifests (module docstring).
    excitation_N: one <N> per file (in the order listed), or one for all."""
    inputs = list(inputs)
    manifests = [Path(p) for p in inputs if str(p).lower().endswith(".csv")]
    out = [r for m in manifests for r in read_manifest(m)]
    files = _files(p for p in inputs if not str(p).lower().endswith(".csv"))
    if excitation_N is not None and len(excitation_N) not in (1, len(files)):
        raise PerovDefectError(f"`excitation_N` has {len(excitation_N)} values for "
                               f"{len(files)} files (give one per file or one for all)")
    pattern = None
    if group_by:
        try:
            pattern = re.compile(group_by)
        except re.error as exc:
            raise PerovDefectError(f"`group_by` {group_by!r}: not a regular expression "
                                   f"({exc})") from None
    for i, f in enumerate(files):
        particle, N = f.stem, None
        if pattern is not None:
            m = pattern.search(f.name)
            if m is None:
                raise PerovDefectError(f"{f}: the name does not match `group_by` {group_by!r}")
            groups = m.groupdict()
            particle = groups.get("particle") or (m.group(1) if m.groups() else m.group(0))
            if groups.get("N"):
                N = _N_from_text(groups["N"], str(f))
        if excitation_N is not None:
            N = excitation_N[0] if len(excitation_N) == 1 else excitation_N[i]
        out.append(Recording(particle, f, N))
    keys = [r.key for r in out]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise PerovDefectError(f"two recordings of one particle share the name {dup!r}")
    if not out:
        raise PerovDefectError("no recordings found in the inputs")
    return out


# ------------------------------------------------------------------------------ analysis

def _analyze_one(job: tuple[str, str, float | None, str, str]) -> tuple[str, str | None]:
    """Worker: analyse one recording and write its PhotonStats; (key, error or None)."""
    import warnings

    from perovdefect.photons.analysis.pipeline import analyze_file
    key, path, N, settings_json, out = job
    settings = AnalysisSettings.model_validate_json(settings_json)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = analyze_file(path, settings, excitation_N=N)
        stats.to_json(out)
    except (PerovDefectError, ArithmeticError, MemoryError, ValueError) as exc:
        msg = str(exc)
        return key, msg if msg.startswith(path) else f"{path}: {msg}"
    return key, None


def finished(rec: Recording, folder: Path, settings: AnalysisSettings) -> bool:
    """True when the recording's PhotonStats exists with the same settings and <N>."""
    f = folder / f"{rec.key}.photonstats.json"
    if not f.is_file():
        return False
    try:
        st = PhotonStats.from_json(f)
    except ParseError:
        return False
    return (st.settings.analysis_choices() == settings.analysis_choices()
            and st.excitation_N == rec.excitation_N)


def analyze_recordings(recs: list[Recording], settings: AnalysisSettings, out: Path,
                       workers: int = 2,
                       progress: Callable[[Recording, str | None], None] | None = None,
                       memory_budget_bytes: int | None = None,
                       notes: list[str] | None = None) -> tuple[dict[str, str], int]:
    """Analyse every recording not finished yet in `workers` processes; (errors by key,
    number skipped as finished). memory_budget_bytes (None: no limit): recordings whose
    analysis alone exceeds it are refused (listed in the errors) and fewer workers run when the
    largest recordings together would exceed it (`perovdefect.photons.memory`; said in
    `notes`). The workers are fresh processes (forkserver, else spawn), so a script that calls
    this needs the usual `if __name__ == "__main__":` guard."""
    import multiprocessing as mp

    from perovdefect.photons import memory
    folder = out / RECORDINGS
    folder.mkdir(parents=True, exist_ok=True)
    todo = [r for r in recs if not finished(r, folder, settings)]
    workers, refused, note = memory.plan({r.key: memory.photons_in(r.path) for r in todo},
                                         workers, memory_budget_bytes)
    if note and notes is not None:
        notes.append(note)
    errors = {r.key: f"{r.path}: {refused[r.key]}" for r in todo if r.key in refused}
    for r in todo:
        if r.key in refused and progress:
            progress(r, errors[r.key])
    todo = [r for r in todo if r.key not in refused]
    by_key = {r.key: r for r in todo}
    jobs = [(r.key, str(r.path), r.excitation_N, settings.model_dump_json(),
             str(folder / f"{r.key}.photonstats.json")) for r in todo]
    if jobs:
        # fresh worker processes, never a fork of this one: once numba's OpenMP threading
        # layer has run here (a notebook, a test session), GNU libgomp hangs in forked children
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods()
                             else "spawn")
        pool = ctx.Pool(max(1, min(workers, len(jobs))), maxtasksperchild=8)
        try:
            for key, err in pool.imap_unordered(_analyze_one, jobs):
                if err:
                    errors[key] = err
                if progress:
                    progress(by_key[key], err)
            pool.close()
        finally:
            pool.terminate()
            pool.join()
    return errors, len(recs) - len(todo) - len(refused)


# ------------------------------------------------------------------------------ document

class Fraction(Part):
    """k of n particles, the fraction and its binomial standard error, and the definition."""

    k: int
    n: int
    fraction: float | None
    fraction_err: float | None
    definition: str


class LevelRow(Part):
    """One level of a particle's lowest-<N> recording: counts per bin, lifetime (ns), kind."""

    counts_per_bin: float
    tau_ns: float | None
    kind: str


class ParticleRow(Part):
    """One particle: its recordings and what its lowest-<N> recording and power series say."""

    particle: str
    files: list[str]
    excitation_N: list[float | None]
    photons: int | None = None
    n_levels: int | None = None
    levels: list[LevelRow] = []
    g2_0: float | None = None
    g2_0_err: float | None = None
    n_emitters: float | None = None
    n_emitters_err: float | None = None
    emitters_from_levels: int | None = None
    bx_x_ratio: float | None = None
    bx_x_ratio_err: float | None = None
    alpha_on: float | None = None
    alpha_off: float | None = None
    levels_g2_agree: bool | None = None
    single_emitter: bool | None = None
    intensity_exponent: float | None = None
    intensity_exponent_err: float | None = None
    photobrightening: bool | None = None
    errors: list[str] = []


class PopulationStats(Document):
    """The population: settings, one row per particle, fractions with binomial errors,
    recordings that failed, the figures written and notes (e.g. fewer workers for memory)."""

    SCHEMA_VERSION = 1
    schema_version: int = 1
    settings: AnalysisSettings
    particles: list[ParticleRow]
    fractions: dict[str, Fraction]
    failed: dict[str, str] = {}
    n_recordings: int
    n_reused: int = 0
    figures: list[str] = []
    notes: list[str] = []


def _m_of(st: PhotonStats) -> tuple[float | None, float | None]:
    """M and its error: the brightest level's g2 (the emitter check's) else all photons."""
    if st.emitters is not None and st.emitters.from_g2 is not None:
        return st.emitters.from_g2, st.emitters.from_g2_err
    if st.g2 is not None and st.g2.n_emitters is not None:
        return st.g2.n_emitters, st.g2.n_emitters_err
    return None, None


def particle_row(name: str, recs: list[Recording], stats: dict[str, PhotonStats],
                 errors: dict[str, str]) -> ParticleRow:
    """The row of one particle from its recordings' PhotonStats."""
    from perovdefect.photons.analysis.pipeline import power_series
    recs = sorted(recs, key=lambda r: (r.excitation_N is None, r.excitation_N or 0.0))
    row = ParticleRow(particle=name, files=[str(r.path) for r in recs],
                      excitation_N=[r.excitation_N for r in recs],
                      errors=[errors[r.key] for r in recs if r.key in errors])
    ok = [stats[r.key] for r in recs if r.key in stats]
    if not ok:
        return row
    st = ok[0]
    m, m_err = _m_of(st)
    dw = st.dwell_times or {}
    row = row.model_copy(update=dict(
        photons=st.info.get("number_photons"), n_levels=st.n_levels,
        levels=[LevelRow(counts_per_bin=lv.mean_counts_per_bin, tau_ns=lv.tau_ns, kind=lv.kind)
                for lv in st.levels],
        g2_0=st.g2.g2_0 if st.g2 else None, g2_0_err=st.g2.g2_0_err if st.g2 else None,
        n_emitters=m, n_emitters_err=m_err,
        emitters_from_levels=st.emitters.from_levels if st.emitters else None,
        bx_x_ratio=st.g2.bx_x_ratio if st.g2 else None,
        bx_x_ratio_err=st.g2.bx_x_ratio_err if st.g2 else None,
        alpha_on=dw["on"].alpha if "on" in dw else None,
        alpha_off=dw["off"].alpha if "off" in dw else None,
        levels_g2_agree=st.emitters.agree if st.emitters else None,
        single_emitter=None if m is None else m < SINGLE_MAX_M))
    if sum(s.excitation_N is not None for s in ok) >= 3:
        try:
            fit = power_series(ok).mean_intensity_fit
        except AnalysisError:
            return row
        row = row.model_copy(update=dict(
            intensity_exponent=fit.exponent, intensity_exponent_err=fit.exponent_err,
            photobrightening=fit.regime.startswith("superlinear")))
    return row


def binomial(k: int, n: int, definition: str) -> Fraction:
    """k of n with the binomial standard error sqrt(p (1 - p) / n)."""
    p = k / n if n else None
    err = math.sqrt(p * (1 - p) / n) if n else None
    return Fraction(k=k, n=n, fraction=p, fraction_err=err, definition=definition)


def fractions(rows: list[ParticleRow]) -> dict[str, Fraction]:
    """The population fractions (module docstring)."""
    g2 = [r for r in rows if r.single_emitter is not None]
    series = [r for r in rows if r.photobrightening is not None]
    both = [r for r in rows if r.levels_g2_agree is not None]
    return {
        "single_emitter": binomial(sum(r.single_emitter for r in g2), len(g2), (
            f"M = 1/(1 - g2(0)) < {SINGLE_MAX_M} at the particle's lowest <N>, of the "
            "particles with a g2(0)")),
        "multi_emitter": binomial(sum(not r.single_emitter for r in g2), len(g2), (
            f"M >= {SINGLE_MAX_M} at the lowest <N>, of the particles with a g2(0)")),
        "photobrightening": binomial(sum(r.photobrightening for r in series), len(series), (
            "mean intensity superlinear in <N> beyond 2 sigma, of the particles with a power "
            "series (>= 3 recordings with <N>)")),
        "levels_g2_disagree": binomial(sum(not r.levels_g2_agree for r in both), len(both), (
            "emitter number from the levels and M from g2 disagree at the lowest <N>, of the "
            "particles where both were read")),
    }


def population(recs: list[Recording], out: Path, settings: AnalysisSettings,
               errors: dict[str, str], n_reused: int = 0,
               notes: list[str] | None = None) -> PopulationStats:
    """The population document from the PhotonStats in OUT/recordings."""
    folder = out / RECORDINGS
    stats: dict[str, PhotonStats] = {}
    for r in recs:
        f = folder / f"{r.key}.photonstats.json"
        if r.key not in errors and f.is_file():
            stats[r.key] = PhotonStats.from_json(f)
    groups: dict[str, list[Recording]] = {}
    for r in recs:
        groups.setdefault(r.particle, []).append(r)
    rows = [particle_row(name, g, stats, errors) for name, g in sorted(groups.items())]
    return PopulationStats(settings=settings, particles=rows, fractions=fractions(rows),
                           failed={str(next(r.path for r in recs if r.key == k)): e
                                   for k, e in errors.items()},
                           n_recordings=len(recs), n_reused=n_reused, notes=notes or [])


def summary_lines(doc: PopulationStats) -> list[str]:
    """A few lines for the terminal."""
    lines = [f"{len(doc.particles)} particles, {doc.n_recordings} recordings "
             f"({doc.n_reused} reused, {len(doc.failed)} failed)"]
    for name, f in doc.fractions.items():
        val = "-" if f.fraction is None else f"{f.fraction:.2f} +- {f.fraction_err:.2f}"
        lines.append(f"{name:20s} {f.k}/{f.n} = {val}")
    return lines + [f"failed: {k}: {v}" for k, v in doc.failed.items()]


def rows_as_dicts(doc: PopulationStats) -> list[dict[str, Any]]:
    return [r.model_dump() for r in doc.particles]
