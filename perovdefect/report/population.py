"""The report's population section: a `photons population` document (PopulationStats) read
for the report, its per-particle table, its fractions with binomial errors and its figure.

The report model keeps the PopulationStats itself (typed, in report.json); this module only
turns it into rows for the template (`population.png` is drawn by
perovdefect.photons.figures.population_figure from the same document)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perovdefect.errors import ParseError, ReportError
from perovdefect.photons.population import ParticleRow, PopulationStats

POPULATION_FILE = "population.json"
FIGURE = "population.png"

PARTICLE_HEADER = ["particle", "recordings", "<N>", "photons", "levels",
                   "lifetimes per level (ns)", "g2(0)", "M", "BX/X", "emitters from levels",
                   "levels vs g2", "single emitter", "alpha ON", "alpha OFF",
                   "intensity exponent", "photobrightening", "errors"]
FRACTION_HEADER = ["fraction", "k / n", "value", "definition"]


def load_population(path: str | Path) -> tuple[PopulationStats, Path]:
    """The PopulationStats of `path` (a population.json or the folder of `photons population
    -o`) and the file read; ReportError naming the path otherwise."""
    p = Path(path)
    f = p / POPULATION_FILE if p.is_dir() else p
    if not f.is_file():
        raise ReportError(f"{path}: no population document (expected a {POPULATION_FILE} "
                          "written by `perovdefect photons population`, or its folder)")
    try:
        return PopulationStats.from_json(f), f
    except ParseError as exc:
        raise ReportError(str(exc)) from None


def _pm(x: float | None, err: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" + (f" +- {err:.{digits}f}" if err is not None else "")


def _lifetimes(row: ParticleRow) -> str:
    taus = [f"{lv.tau_ns:.2f}" for lv in row.levels if lv.tau_ns is not None]
    return ", ".join(taus) or "-"


def particle_rows(doc: PopulationStats) -> list[list[Any]]:
    """One table row per particle (PARTICLE_HEADER)."""
    return [[r.particle, len(r.files),
             ", ".join("-" if n is None else f"{n:g}" for n in r.excitation_N),
             r.photons, r.n_levels, _lifetimes(r), _pm(r.g2_0, r.g2_0_err),
             _pm(r.n_emitters, r.n_emitters_err, 2), _pm(r.bx_x_ratio, r.bx_x_ratio_err),
             r.emitters_from_levels,
             None if r.levels_g2_agree is None else ("agree" if r.levels_g2_agree
                                                      else "DISAGREE"),
             r.single_emitter, r.alpha_on, r.alpha_off,
             _pm(r.intensity_exponent, r.intensity_exponent_err, 2), r.photobrightening,
             "; ".join(r.errors) or None] for r in doc.particles]


def fraction_rows(doc: PopulationStats) -> list[list[Any]]:
    """One row per population fraction: name, k / n, fraction +- binomial error, definition."""
    return [[name.replace("_", " "), f"{f.k} / {f.n}", _pm(f.fraction, f.fraction_err),
             f.definition] for name, f in doc.fractions.items()]


def population_section(doc: PopulationStats | None) -> dict[str, Any] | None:
    """What the template's population block shows (None without a population)."""
    if doc is None:
        return None
    s = doc.settings
    return {
        "counts": (f"{len(doc.particles)} particles, {doc.n_recordings} recordings "
                   f"({doc.n_reused} reused from an earlier run, {len(doc.failed)} failed)"),
        "settings": (f"analysed with trace bins of {s.bin_width_s * 1e3:g} ms, levels by "
                     f"{s.level_method}, gate {s.gate_ns:g} ns, background "
                     + ("estimated" if s.background_cps_per_detector is None else
                        f"{s.background_cps_per_detector:g} counts/s per detector")
                     + f" (settings: {s.origin})"),
        "particle_header": PARTICLE_HEADER, "particle_rows": particle_rows(doc),
        "fraction_header": FRACTION_HEADER, "fraction_rows": fraction_rows(doc),
        "failed": [[k, v] for k, v in doc.failed.items()], "notes": doc.notes}
