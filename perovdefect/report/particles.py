"""The per-particle rows the report shows, typed: one ParticleSummary and one LevelRow per
intensity level of each PhotonStats (perovdefect.photons.stats). The PhotonStats themselves
travel in the report model too: its figures are drawn from them."""

from __future__ import annotations

from typing import Literal

from perovdefect.documents import Part


class LevelRow(Part):
    """One intensity level: its index, mean counts per trace bin, fraction of the recording's
    time, lifetime (ns; None for a background level or without a decay fit), photons, kind."""

    level: int
    counts_per_bin: float
    fraction: float
    tau_ns: float | None = None
    photons: int
    kind: Literal["emitting", "background"]


class ParticleSummary(Part):
    """PhotonStats.summary() of one recording, typed (units in the names; None: not computed)."""

    source: str
    photons: int | None = None
    level_method: str
    n_levels: int
    n_emitting_levels: int
    levels_counts_per_bin: list[float]
    level_lifetimes_ns: list[float | None]
    brightest_level_counts_per_bin: float | None = None
    g2_0: float | None = None
    g2_0_err: float | None = None
    n_emitters: float | None = None
    n_emitters_err: float | None = None
    bx_x_ratio: float | None = None
    bx_x_ratio_err: float | None = None
    g2_interpretation: str | None = None
    emitters_from_levels: int | None = None
    levels_g2_agree: bool | None = None
    emitters_statement: str | None = None
    on_dwell_alpha: float | None = None
    on_dwell_alpha_err: float | None = None
    off_dwell_alpha: float | None = None
    off_dwell_alpha_err: float | None = None
    n_change_points: int | None = None
    background_counts_per_bin: float | None = None
    background_source: str
    excitation_N: float | None = None


def particle_summary(stats) -> ParticleSummary:
    """The summary of one PhotonStats."""
    return ParticleSummary(**stats.summary())


def level_rows(stats) -> list[LevelRow]:
    """One row per intensity level of one PhotonStats."""
    return [LevelRow(**row) for row in stats.level_rows()]
