"""From a PhotonStream to a PhotonStats document, as a sequence of named steps; and a power
series of recordings.

Steps (each a small function over typed parts, shared by `photons analyze`, `photons population`
and the report): `prepare` (trace, channel counts, change points and microtime bins, computed
once) -> `find_levels` (Watkins-Yang change points and BIC levels; the binned Poisson mixture
and user thresholds stay as options) -> `level_decays` (a decay per level, T3) ->
`classify_levels` (background and emitting) -> `merge_background_levels` and
`merge_indistinguishable_levels` (one bookkeeping, `relabel`) -> `intensity_levels` ->
`g2_and_emitters` (g2 overall and per level, the levels-vs-g2 emitter check) ->
`segments_and_dwell` -> `flid_of`. `analyze_stream` runs them; every choice is one typed
`AnalysisSettings` part, stored in the PhotonStats and used again by `analyze_file` whenever the
raw file is re-analysed.

Emitting or background, per level:
- with --background-cps (per detector): a level emits when its rate exceeds twice the
  background (signal > background) by more than 5 Poisson sigma;
- without it, T3 data: a level emits when more than half of its photons are in the fitted
  exponential(s) rather than the flat (microtime-uniform) background of its decay; the
  background rate is then the darkest background level's rate, or, when every level emits, the
  flat component of the darkest level's decay;
- without it, T2 data: the darkest of several levels is taken as background.
The choice made is written to `PhotonStats.background.source`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis import merge
from perovdefect.photons.analysis.changepoints import ChangePointResult, cluster_levels
from perovdefect.photons.analysis.changepoints import detect_change_points as _watkins_yang
from perovdefect.photons.analysis.decay import fit_decay, flid
from perovdefect.photons.analysis.dwell import dwell_times, fit_dwell_times
from perovdefect.photons.analysis.g2 import (_channel_counts, background_coincidences,
                                            bx_x_ratio, correlate, correlate_times,
                                            g2_analysis, pulsed_g2_zero)
from perovdefect.photons.analysis.kernels import (level_decay_histograms, linear_times,
                                                  segment_fill, segment_sums,
                                                  split_levels_channels)
from perovdefect.photons.analysis.levels import mixture_levels, threshold_levels
from perovdefect.photons.analysis.power import power_law_exponent
from perovdefect.photons.analysis.trace import intensity_trace, photon_bin_index
from perovdefect.photons.stats import (G2, AnalysisSettings, Background, ChangePoints,
                                       DecayFit, DwellFit, EmitterCheck, Flid, Histogram,
                                       IntensityLevel, LevelG2, LevelMerge, OverallDecay,
                                       PhotonStats, PowerLawFit, PowerSeries, Segment)
from perovdefect.photons.stream import PhotonStream

MAX_STORED_TRACE_BINS = 20000
MAX_STORED_SEGMENTS = 5000
MAX_STORED_DWELLS = 5000
#: Fewest photons in a level for a decay fit, and for a level-resolved g2.
MIN_DECAY_PHOTONS = 200
MIN_LEVEL_G2_PHOTONS = 5000
LEVEL_METHODS = ("change-points", "poisson-mixture", "thresholds")
G2_BACKGROUND_BIN_S = 0.01  # trace bin (s) of the g2 background estimate

Progress = Callable[[str], None]


def _rebin(tau: np.ndarray, counts: np.ndarray, factor: int) -> tuple[list, list]:
    n = (len(counts) // factor) * factor
    return (tau[:n].reshape(-1, factor).mean(1).round(4).tolist(),
            counts[:n].reshape(-1, factor).sum(1).tolist())


def _micro_bins(stream: PhotonStream, decay_bin_ns: float) -> tuple[int, float, int, float]:
    """Microtime bins of ~decay_bin_ns: (TCSPC bins per decay bin, bin width in ns, number of
    bins, period in ns)."""
    if not stream.sync_rate_hz:
        raise AnalysisError(f"{stream.source}: no sync rate, cannot build a periodic decay")
    period_ns = 1e9 / stream.sync_rate_hz
    res_ns = stream.microtime_resolution_s * 1e9
    factor = max(1, int(round(decay_bin_ns / res_ns)))
    width = factor * res_ns
    return factor, width, int(np.ceil(period_ns / width)), period_ns


def _times_ps(stream: PhotonStream) -> np.ndarray:
    """stream.times_ps() in integer arithmetic when both resolutions are whole picoseconds
    (HydraHarp/PicoHarp T3 at common sync rates; the same numbers, one pass fewer in floats)."""
    macro_ps = stream.macrotime_resolution_s * 1e12
    micro_ps = (stream.microtime_resolution_s or 0.0) * 1e12
    if (stream.mode == "T3" and stream.microtime is not None and macro_ps >= 1
            and abs(macro_ps - round(macro_ps)) < 1e-6 and micro_ps >= 1
            and abs(micro_ps - round(micro_ps)) < 1e-9):
        return linear_times(stream.macrotime, int(round(macro_ps)), stream.microtime,
                            int(round(micro_ps)))
    return stream.times_ps()


def _signal_fraction(fit, n_bins: int, period_ns: float) -> float | None:
    """Fraction of a level's photons in its fitted decay rather than flat in microtime. An
    exponential longer than half the laser period is itself nearly flat over one period (a fit
    to background-only photons may pick one): such a fit counts as no signal."""
    if fit is None or not fit.n_photons:
        return None
    if max(fit.tau_ns) > 0.5 * period_ns:
        return 0.0
    return float(min(max(1.0 - fit.background_per_bin * n_bins / fit.n_photons, 0.0), 1.0))


def _stored_g2(res: G2, excitation_N: float | None, photons: str) -> G2:
    """The G2 of the correlation as the PhotonStats keeps it: the histogram at ~1 ns bins,
    g2(0) read as BX/X too, and which photons it holds."""
    factor = max(1, int(round(1.0 / res.bin_width_ns)))  # store at ~1 ns bins
    tau, co = _rebin(np.asarray(res.tau_ns), np.asarray(res.coincidences), factor)
    r, r_err, method = bx_x_ratio(res.g2_0, res.g2_0_err, excitation_N)
    return res.model_copy(update=dict(
        tau_ns=tau, coincidences=[int(x) for x in co], stored_bin_ns=res.bin_width_ns * factor,
        bx_x_ratio=r, bx_x_ratio_err=r_err, bx_x_method=method, photons=photons))


# ------------------------------------------------------------------------------- settings

def settings_from_options(bin_width_s: float = 0.01, thresholds: list[float] | None = None,
                          max_levels: int = 6, decay_bin_ns: float = 0.1,
                          g2_window_ns: float = 500.0, g2_bin_ns: float = 0.1,
                          gate_ns: float = 0.0, background_cps: float | None = None,
                          detect_change_points: bool = True, biexponential: bool = True,
                          level_method: str | None = None, confidence: float = 0.95,
                          level_g2: bool = True, merge_levels: bool = True,
                          timestamps_unit_s: float | None = None,
                          rep_rate_hz: float | None = None, allow_truncated: bool = False,
                          origin: str = "options") -> AnalysisSettings:
    """AnalysisSettings from the keyword options of `analyze_stream` (and the CLI).

    level_method: "change-points" (default), "poisson-mixture" (binned; the default when
    detect_change_points is False) or "thresholds" (when thresholds are given)."""
    if level_method is None:
        level_method = ("thresholds" if thresholds else
                        "change-points" if detect_change_points else "poisson-mixture")
    if level_method not in LEVEL_METHODS:
        raise AnalysisError(f"level method must be one of {LEVEL_METHODS}, got {level_method!r}")
    if level_method == "thresholds" and not thresholds:
        raise AnalysisError("level method 'thresholds' needs thresholds (counts/bin)")
    from pydantic import ValidationError
    try:
        return AnalysisSettings(
            bin_width_s=bin_width_s, level_method=level_method,
            thresholds_counts_per_bin=list(thresholds) if thresholds else None,
            max_levels=max_levels,
            change_points=level_method == "change-points" or detect_change_points,
            change_point_confidence=confidence, merge_levels=merge_levels,
            decay_bin_ns=decay_bin_ns, biexponential=biexponential, g2_window_ns=g2_window_ns,
            g2_bin_ns=g2_bin_ns, gate_ns=gate_ns, level_g2=level_g2,
            background_cps_per_detector=background_cps, timestamps_unit_s=timestamps_unit_s,
            rep_rate_hz=rep_rate_hz, allow_truncated=allow_truncated, origin=origin)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise AnalysisError(f"analysis setting {'.'.join(map(str, err['loc']))}: "
                            f"{err['msg']}") from None


# ------------------------------------------------------------------------------- typed parts

@dataclass
class Prepared:
    """A recording made ready once for every step: trace counts per bin, each photon's trace
    bin, photons per detector, the change points (None when not asked) and, for T3 data with a
    sync rate, the microtime binning of the decays (TCSPC bins per decay bin, decay bin in ns,
    number of decay bins, laser period in ns)."""

    stream: PhotonStream
    settings: AnalysisSettings
    duration_s: float
    channel_counts: dict[int, int]
    bin_index: np.ndarray
    trace_counts: np.ndarray
    t3: bool
    change_points: ChangePointResult | None
    micro_factor: int | None = None
    decay_bin_width_ns: float | None = None
    n_decay_bins: int | None = None
    period_ns: float | None = None
    _times_ps: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_detectors(self) -> int:
        return max(len(self.channel_counts), 1)

    def times_ps(self) -> np.ndarray:
        """Photon arrival times (int64 ps), computed on first use."""
        if self._times_ps is None:
            self._times_ps = _times_ps(self.stream)
        return self._times_ps

    def t_ns(self) -> np.ndarray:
        """Start of each decay bin (ns)."""
        return np.arange(self.n_decay_bins) * self.decay_bin_width_ns


@dataclass
class LevelTable:
    """Intensity levels (ascending rate) and who belongs to them: each photon's level, each
    segment's level (change points), photons, time (s), segments or trace bins per level, the
    binned methods' bounds (counts/bin) and the BIC per number of levels."""

    method: str
    photon_level: np.ndarray
    seg_level: np.ndarray | None
    photons: np.ndarray
    time_s: np.ndarray
    n_segments: list
    n_bins: list
    bounds: list[tuple[float | None, float | None]]
    bic: dict[str, float]

    @property
    def n(self) -> int:
        return int(len(self.photons))

    @property
    def rate_cps(self) -> np.ndarray:
        return self.photons / np.maximum(self.time_s, 1e-12)


@dataclass
class LevelDecays:
    """Microtime histogram per level (n_levels x decay bins), the overall mono/bi-exponential
    fit, and per level its mono-exponential fit and signal fraction (None without)."""

    hist: np.ndarray
    overall: OverallDecay | None
    fits: list[DecayFit | None]
    signal_fraction: list[float | None]


# ------------------------------------------------------------------------------- steps

def prepare(stream: PhotonStream, settings: AnalysisSettings,
            step: Progress = lambda m: None) -> Prepared:
    """Step 1: trace, photon bins, channel counts, change points, decay binning."""
    if len(stream) == 0:
        raise AnalysisError(f"{stream.source}: no photons to analyse")
    bw = settings.bin_width_s
    step("intensity trace")
    pbi = photon_bin_index(stream, bw)
    _, counts = intensity_trace(stream, bw, bin_index=pbi)
    duration = stream.duration_s()
    cpr = None
    if settings.change_points:
        step("change points (Watkins-Yang)")
        times = stream.macrotime * stream.macrotime_resolution_s
        cpr = _watkins_yang(times, max(duration, float(times[-1]) * (1 + 1e-12)),
                            settings.change_point_confidence)
    t3 = stream.microtime is not None and bool(stream.sync_rate_hz) \
        and bool(stream.microtime_resolution_s)
    prep = Prepared(stream=stream, settings=settings, duration_s=duration,
                    channel_counts=_channel_counts(stream), bin_index=pbi,
                    trace_counts=counts, t3=t3, change_points=cpr)
    if t3:
        (prep.micro_factor, prep.decay_bin_width_ns, prep.n_decay_bins,
         prep.period_ns) = _micro_bins(stream, settings.decay_bin_ns)
    return prep


def find_levels(prep: Prepared, step: Progress = lambda m: None) -> LevelTable:
    """Step 2: levels by BIC over the change-point segments, or binned (mixture/thresholds)."""
    s, cpr = prep.settings, prep.change_points
    if s.level_method == "change-points":
        step("levels (BIC)")
        cl = cluster_levels(cpr.photons(), cpr.durations_s(), s.max_levels)
        table = _segment_table(prep, cl.assignment, s.level_method)
        table.bic = {str(k): float(v) for k, v in cl.bic.items()}
        return table
    step("intensity levels (binned)")
    counts = prep.trace_counts
    lv_list = (threshold_levels(counts, s.thresholds_counts_per_bin)
               if s.level_method == "thresholds" else mixture_levels(counts, s.max_levels))
    n_lv = len(lv_list)
    edges = np.array([lv.lo for lv in lv_list] + [np.inf])
    bin_level = np.clip(np.searchsorted(edges, counts, side="right") - 1, 0, n_lv - 1)
    photon_level = bin_level[np.minimum(prep.bin_index, counts.size - 1)].astype(np.int8)
    lv_bins = np.bincount(bin_level, minlength=n_lv)
    seg_level = None
    if cpr is not None:  # segments get the level their mean counts per bin fall in
        seg_rate_bin = cpr.photons() / np.maximum(cpr.durations_s(), 1e-12) * s.bin_width_s
        seg_level = np.clip(np.searchsorted(edges, seg_rate_bin, side="right") - 1, 0,
                            n_lv - 1)
    return LevelTable(
        method=s.level_method, photon_level=photon_level, seg_level=seg_level,
        photons=np.bincount(photon_level, minlength=n_lv).astype(float),
        time_s=lv_bins * s.bin_width_s, n_segments=[None] * n_lv, n_bins=list(lv_bins),
        bounds=[(lv.lo, lv.hi) for lv in lv_list], bic={})


def _segment_table(prep: Prepared, seg_level: np.ndarray, method: str) -> LevelTable:
    """LevelTable of change-point levels from each segment's level."""
    cpr = prep.change_points
    n_lv = int(seg_level.max()) + 1
    return LevelTable(
        method=method, seg_level=seg_level,
        photon_level=segment_fill(cpr.photon_edges, seg_level.astype(np.int8)),
        photons=np.bincount(seg_level, weights=cpr.photons(), minlength=n_lv),
        time_s=np.bincount(seg_level, weights=cpr.durations_s(), minlength=n_lv),
        n_segments=list(np.bincount(seg_level, minlength=n_lv)), n_bins=[None] * n_lv,
        bounds=[(None, None)] * n_lv, bic={})


def _fit_level(prep: Prepared, h: np.ndarray, overall: OverallDecay | None
               ) -> tuple[DecayFit | None, float | None]:
    """Mono-exponential fit of one level's decay and its signal fraction (None, None with too
    few photons or a failed fit)."""
    if h.sum() < MIN_DECAY_PHOTONS:
        return None, None
    try:
        fit = fit_decay(prep.t_ns(), h, prep.period_ns, 1,
                        start=overall.mono if overall else None)
    except AnalysisError:
        return None, None
    return fit, _signal_fraction(fit, prep.n_decay_bins, prep.period_ns)


def level_decays(prep: Prepared, table: LevelTable,
                 step: Progress = lambda m: None) -> LevelDecays | None:
    """Step 3 (T3): microtime histogram of every level, overall fit, one fit per level."""
    if not prep.t3:
        return None
    hist = level_decay_histograms(table.photon_level, prep.stream.microtime, prep.micro_factor,
                                  prep.n_decay_bins, table.n)
    step("overall decay (mono- and bi-exponential)")
    h_all = hist.sum(0)
    try:
        overall = OverallDecay(mono=fit_decay(prep.t_ns(), h_all, prep.period_ns, 1))
    except AnalysisError:
        overall = None  # too few photons: no decay fits at all
    if prep.settings.biexponential and overall is not None:
        try:
            overall.bi = fit_decay(prep.t_ns(), h_all, prep.period_ns, 2, start=overall.mono)
        except AnalysisError as exc:
            overall.bi_error = str(exc)
    fits, fracs = [], []
    bw = prep.settings.bin_width_s
    for i in range(table.n):
        if hist[i].sum() >= MIN_DECAY_PHOTONS:
            step(f"decay of level {i} ({table.rate_cps[i] * bw:.0f} counts/bin)")
        fit, frac = _fit_level(prep, hist[i], overall)
        fits.append(fit)
        fracs.append(frac)
    return LevelDecays(hist=hist, overall=overall, fits=fits, signal_fraction=fracs)


def classify_levels(prep: Prepared, table: LevelTable, decays: LevelDecays | None
                    ) -> tuple[list[str], Background]:
    """Step 4: emitting or background per level, and the background (module docstring)."""
    n = table.n
    return _classify(table.rate_cps, table.photons, table.time_s,
                     decays.signal_fraction if decays else [None] * n,
                     decays.fits if decays else [None] * n, prep.n_decay_bins,
                     prep.settings.background_cps_per_detector, prep.n_detectors, prep.t3)


def relabel(prep: Prepared, table: LevelTable, decays: LevelDecays | None,
            remap: np.ndarray) -> tuple[LevelTable, LevelDecays | None]:
    """Levels joined by `remap` (old level -> new level, ascending, change-point levels): the
    one bookkeeping of every merge. Joined levels get their summed decay refitted; the others
    keep theirs."""
    new = _segment_table(prep, remap[table.seg_level], table.method)
    new.bic = table.bic
    if decays is None:
        return new, None
    hist = np.zeros((new.n, decays.hist.shape[1]), np.int64)
    np.add.at(hist, remap, decays.hist)
    members = np.bincount(remap, minlength=new.n)
    fits, fracs = [None] * new.n, [None] * new.n
    for old, j in enumerate(remap):
        if members[j] == 1:
            fits[j], fracs[j] = decays.fits[old], decays.signal_fraction[old]
    for j in np.flatnonzero(members > 1):
        fits[j], fracs[j] = _fit_level(prep, hist[j], decays.overall)
    return new, LevelDecays(hist=hist, overall=decays.overall, fits=fits,
                            signal_fraction=fracs)


def merge_background_levels(prep: Prepared, table: LevelTable, decays: LevelDecays | None,
                            kinds: list[str], step: Progress = lambda m: None
                            ) -> tuple[LevelTable, LevelDecays | None] | None:
    """Step 5a: background is one flat rate. BIC splits it when the change-point search, which
    places its splits where the rate fluctuates most, leaves the background segments
    overdispersed: those levels become one (None when there is nothing to merge)."""
    bg = [i for i in range(table.n) if kinds[i] == "background"]
    if table.method != "change-points" or len(bg) < 2:
        return None
    step("one background level")
    remap = np.arange(table.n)
    remap[bg] = bg[0]
    remap = np.unique(remap, return_inverse=True)[1]
    return relabel(prep, table, decays, remap)


def merge_indistinguishable_levels(prep: Prepared, table: LevelTable,
                                   decays: LevelDecays | None, kinds: list[str],
                                   step: Progress = lambda m: None
                                   ) -> tuple[LevelTable, LevelDecays | None, list[LevelMerge]]:
    """Step 5b: adjacent emitting levels the counts cannot tell apart (`merge` module: Poisson
    overlap in one trace bin and equal lifetimes) merged, closest pair first, until none is
    left. Change-point levels only (binned levels are the user's or the mixture's)."""
    merges: list[LevelMerge] = []
    if (table.method != "change-points" or decays is None
            or not prep.settings.merge_levels):
        return table, decays, merges
    bw = prep.settings.bin_width_s
    while table.n > 1:
        views = [merge.LevelView(
            counts_per_bin=float(table.rate_cps[i] * bw), emitting=kinds[i] == "emitting",
            tau_ns=decays.fits[i].tau_ns[0] if decays.fits[i] else None,
            tau_err_ns=decays.fits[i].tau_err_ns[0] if decays.fits[i]
            and decays.fits[i].tau_err_ns else None) for i in range(table.n)]
        i = merge.closest_indistinguishable_pair(views)
        if i is None:
            break
        step(f"merging levels at {views[i].counts_per_bin:.0f} and "
             f"{views[i + 1].counts_per_bin:.0f} counts/bin")
        merges.append(LevelMerge(
            counts_per_bin=[views[i].counts_per_bin, views[i + 1].counts_per_bin],
            tau_ns=[views[i].tau_ns, views[i + 1].tau_ns],
            separation_sigma=merge.separation_sigma(views[i], views[i + 1]),
            criterion=merge.CRITERION))
        remap = np.arange(table.n)
        remap[i + 1:] -= 1
        table, decays = relabel(prep, table, decays, remap)
        kinds, _ = classify_levels(prep, table, decays)
    return table, decays, merges


def intensity_levels(prep: Prepared, table: LevelTable, decays: LevelDecays | None,
                     kinds: list[str]) -> list[IntensityLevel]:
    """Step 6: the IntensityLevel parts."""
    bw = prep.settings.bin_width_s
    total_time = max(float(table.time_s.sum()), 1e-12)
    rate = table.rate_cps
    return [IntensityLevel(
        index=i, mean_counts_per_bin=float(rate[i] * bw), rate_cps=float(rate[i]),
        fraction=float(table.time_s[i] / total_time), photons=int(table.photons[i]),
        kind=kinds[i],
        n_segments=None if table.n_segments[i] is None else int(table.n_segments[i]),
        n_bins=None if table.n_bins[i] is None else int(table.n_bins[i]),
        lo_counts_per_bin=_finite(table.bounds[i][0]),
        hi_counts_per_bin=_finite(table.bounds[i][1]),
        signal_fraction=decays.signal_fraction[i] if decays else None,
        decay=decays.fits[i] if decays else None) for i in range(table.n)]


def g2_and_emitters(prep: Prepared, table: LevelTable, decays: LevelDecays | None,
                    levels: list[IntensityLevel], background: Background,
                    excitation_N: float | None, step: Progress = lambda m: None
                    ) -> tuple[G2 | None, EmitterCheck | None]:
    """Step 7 (two detectors): g2 of all photons, g2 of every bright emitting level, read as M
    and BX/X, and the levels-vs-g2 emitter check."""
    stream, s = prep.stream, prep.settings
    if len(prep.channel_counts) < 2:
        return None, None
    step("g2 cross-correlation")
    bg_cps = background.cps
    g2_bg = None if bg_cps is None else bg_cps / prep.n_detectors
    overall = decays.overall if decays else None
    tau = overall.mono.tau_ns[0] if overall else None
    bidx = (prep.bin_index if s.bin_width_s == G2_BACKGROUND_BIN_S
            else photon_bin_index(stream, G2_BACKGROUND_BIN_S))
    window_ns = s.g2_window_ns
    note = _no_rate_note(stream)
    if stream.sync_rate_hz and window_ns < 2.5e9 / stream.sync_rate_hz:
        window_ns = 2.5e9 / stream.sync_rate_hz  # room for the +-1 and +-2 side peaks
        note += f" (window widened to +-{window_ns:.0f} ns: 2.5 laser periods)"
    level_g2 = s.level_g2
    kw = dict(decay_tau_ns=tau, times_ps=prep.times_ps(), bin_index=bidx,
              channel_counts=prep.channel_counts)
    try:
        res = g2_analysis(stream, window_ns, s.g2_bin_ns, s.gate_ns, g2_bg, **kw)
    except AnalysisError as exc:
        res = None
        if g2_bg is not None:
            note += f" (not background-corrected: {exc})"
            g2_bg = None
            try:
                res = g2_analysis(stream, window_ns, s.g2_bin_ns, s.gate_ns, None, **kw)
            except AnalysisError as exc2:
                exc = exc2
        if res is None:  # the histogram without g2(0)
            note = f" (no g2(0): {exc})"
            level_g2 = False
            res = correlate(stream, window_ns, s.g2_bin_ns, None, s.gate_ns, None,
                            prep.times_ps(), prep.channel_counts)
    g2 = _stored_g2(res, excitation_N, "all")
    todo = [lv for lv in levels
            if level_g2 and lv.kind == "emitting" and lv.photons >= MIN_LEVEL_G2_PHOTONS]
    if todo and res.period_ns:
        step("g2 per level")
        _level_g2(stream, todo, table.photon_level, prep.times_ps(), res, window_ns,
                  s.g2_bin_ns, s.gate_ns, g2_bg, max(float(table.time_s.sum()), 1e-12), tau)
    emitters = _emitter_check(levels, g2, bg_cps or 0.0, prep.t3)
    g2.interpretation = _interpretation(g2, emitters) + note
    return g2, emitters


def segments_and_dwell(prep: Prepared, table: LevelTable, decays: LevelDecays | None,
                       levels: list[IntensityLevel], step: Progress = lambda m: None
                       ) -> tuple[list[Segment], dict[str, DwellFit] | None, str | None]:
    """Step 8: the change-point segments (with their level and mean delay) and the ON/OFF
    dwell-time fits."""
    cpr = prep.change_points
    if cpr is None:
        return [], None, None
    stream = prep.stream
    seg_photons = cpr.photons()
    delays = None
    if prep.t3:
        irf0 = _irf0(decays)
        sums = segment_sums(cpr.photon_edges, stream.microtime) * \
            (stream.microtime_resolution_s * 1e9)
        with np.errstate(invalid="ignore", divide="ignore"):
            delays = sums / seg_photons - irf0
    e = cpr.edges_s
    dur = np.maximum(np.diff(e), 1e-12)
    seg_level = table.seg_level
    segments = [Segment(
        start_s=float(e[j]), stop_s=float(e[j + 1]), photons=int(seg_photons[j]),
        rate_cps=float(seg_photons[j] / dur[j]),
        level=None if seg_level is None else int(seg_level[j]),
        mean_delay_ns=None if delays is None or not np.isfinite(delays[j])
        else float(delays[j])) for j in range(min(cpr.n_segments, MAX_STORED_SEGMENTS))]
    if seg_level is None or table.n < 2:
        return segments, None, None
    step("dwell times")
    on, rule = _on_levels(levels)
    d = dwell_times(seg_level, cpr.edges_s, on)
    return segments, {k: _dwell_fit(v) for k, v in d.items()}, rule


def _irf0(decays: LevelDecays | None) -> float:
    """IRF centre (ns) of the overall decay fit (0 without one)."""
    overall = decays.overall if decays else None
    return (overall.mono.irf_center_ns or 0.0) if overall else 0.0


def flid_of(prep: Prepared, decays: LevelDecays | None,
            step: Progress = lambda m: None) -> Flid | None:
    """Step 9 (T3): fluorescence lifetime-intensity distribution of the trace bins."""
    if not prep.t3:
        return None
    step("FLID")
    c, delay = flid(prep.stream, prep.settings.bin_width_s, irf_offset_ns=_irf0(decays),
                    micro_ns=prep.stream.microtimes_ns(), bin_index=prep.bin_index)
    ok = c > 0
    h2, xe, ye = np.histogram2d(c[ok], delay[ok], bins=(40, 40))
    return Flid(counts_edges=xe.tolist(), delay_edges_ns=ye.tolist(),
                histogram=h2.astype(int).tolist())


def _decay_histograms(prep: Prepared, decays: LevelDecays | None) -> dict[str, Histogram]:
    if decays is None:
        return {}
    t = prep.t_ns().round(4).tolist()
    out = {str(i): Histogram(t_ns=t, counts=h.tolist()) for i, h in enumerate(decays.hist)}
    out["all"] = Histogram(t_ns=t, counts=decays.hist.sum(0).tolist())
    return out


def analyze_stream(stream: PhotonStream, settings: AnalysisSettings | None = None, *,
                   excitation_N: float | None = None, progress: Progress | None = None,
                   **options: Any) -> PhotonStats:
    """Every step (module docstring) on one recording. `settings` (AnalysisSettings) or the
    keyword options of `settings_from_options` (bin_width_s, thresholds, max_levels,
    decay_bin_ns, g2_window_ns, g2_bin_ns, gate_ns, background_cps, detect_change_points,
    biexponential, level_method, confidence, level_g2, merge_levels), not both."""
    if settings is None:
        settings = settings_from_options(**options)
    elif options:
        raise AnalysisError(f"give settings or options, not both (got {sorted(options)})")
    if settings.level_method == "thresholds" and not settings.thresholds_counts_per_bin:
        raise AnalysisError("level method 'thresholds' needs thresholds (counts/bin)")
    step = progress or (lambda m: None)
    prep = prepare(stream, settings, step)
    table = find_levels(prep, step)
    decays = level_decays(prep, table, step)
    kinds, background = classify_levels(prep, table, decays)
    merged = merge_background_levels(prep, table, decays, kinds, step)
    if merged is not None:
        table, decays = merged
        kinds, background = classify_levels(prep, table, decays)
    table, decays, merges = merge_indistinguishable_levels(prep, table, decays, kinds, step)
    if merges:
        kinds, background = classify_levels(prep, table, decays)
    background.counts_per_bin = (None if background.cps is None
                                 else background.cps * settings.bin_width_s)
    levels = intensity_levels(prep, table, decays, kinds)
    g2, emitters = g2_and_emitters(prep, table, decays, levels, background, excitation_N, step)
    segments, dwell, rule = segments_and_dwell(prep, table, decays, levels, step)
    return _document(prep, table, decays, levels, background, g2, emitters, segments, dwell,
                     rule, flid_of(prep, decays, step), merges, excitation_N)


def _document(prep: Prepared, table: LevelTable, decays: LevelDecays | None,
              levels: list[IntensityLevel], background: Background, g2: G2 | None,
              emitters: EmitterCheck | None, segments: list[Segment],
              dwell: dict[str, DwellFit] | None, rule: str | None, flid_doc: Flid | None,
              merges: list[LevelMerge], excitation_N: float | None) -> PhotonStats:
    """The PhotonStats of the steps' results."""
    counts, cpr, s = prep.trace_counts, prep.change_points, prep.settings
    stored = counts if counts.size <= MAX_STORED_TRACE_BINS else counts[:MAX_STORED_TRACE_BINS]
    cp_doc = None if cpr is None else ChangePoints(
        confidence=s.change_point_confidence, min_photons=cpr.min_photons,
        n_change_points=int(cpr.index.size), n_segments=cpr.n_segments,
        segments_stored=len(segments), bic_per_levels=table.bic)
    return PhotonStats(
        source=prep.stream.source, info=_plain(prep.stream.info()), bin_width_s=s.bin_width_s,
        trace_counts=stored.tolist(), level_method=s.level_method, levels=levels,
        n_levels=table.n, n_emitting_levels=sum(lv.kind == "emitting" for lv in levels),
        background=background, background_counts_per_bin=background.counts_per_bin,
        decay_overall=decays.overall if decays else None,
        decay_histograms=_decay_histograms(prep, decays), change_points=cp_doc,
        segments=segments, g2=g2, emitters=emitters, dwell_times=dwell, dwell_rule=rule,
        flid=flid_doc, excitation_N=excitation_N, level_merges=merges, settings=s)


def read_recording(path: str | Path, settings: AnalysisSettings) -> PhotonStream:
    """Read a raw TCSPC file with the reading settings (timestamps unit, repetition rate,
    truncated files) of `settings`."""
    from perovdefect.photons.io import read_photons
    return read_photons(path, settings.timestamps_unit_s, settings.allow_truncated,
                        settings.rep_rate_hz)


def analyze_file(path: str | Path, settings: AnalysisSettings,
                 excitation_N: float | None = None,
                 progress: Progress | None = None) -> PhotonStats:
    """Read and analyse one raw file with `settings` (the one entry point of the CLI, the
    population and the report for raw files)."""
    return analyze_stream(read_recording(path, settings), settings,
                          excitation_N=excitation_N, progress=progress)


def _level_g2(stream: PhotonStream, levels: list[IntensityLevel], photon_level: np.ndarray,
              t_ps: np.ndarray, res, window_ns: float, bin_ns: float, gate_ns: float,
              bg_cps_per_detector: float | None, total_time: float,
              tau_all: float | None) -> None:
    """Level-resolved g2(0): one numba pass splits the two detectors' times by level (time
    order kept inside each level); the background correction uses the level's own time."""
    a, b = res.channels
    lvl = photon_level
    if gate_ns > 0:  # gated photons get level -1 -> excluded (n_levels + 1 buckets)
        lvl = np.where(stream.microtimes_ns() >= gate_ns, photon_level, -1)
    n_lv = int(photon_level.max()) + 1
    ta, oa, tb, ob = split_levels_channels((lvl + 1).astype(np.int8) if gate_ns > 0 else lvl,
                                           stream.channel, t_ps, a, b, n_lv + 1)
    shift = 1 if gate_ns > 0 else 0
    for lv in levels:
        k = lv.index + shift
        try:
            r = correlate_times(ta[oa[k]:oa[k + 1]], tb[ob[k]:ob[k + 1]], window_ns, bin_ns,
                                res.period_ns, gate_ns, (a, b))
            e0 = None
            if bg_cps_per_detector is not None:
                e0 = background_coincidences(
                    stream, (bg_cps_per_detector,) * 2, (a, b), gate_ns,
                    active_s=lv.fraction * total_time,
                    photons=tuple(r.photons_per_detector))
            pulsed_g2_zero(r, res.rho, background_area=e0, decay_tau_ns=lv.tau_ns or tau_all)
        except AnalysisError:
            continue
        lv.g2 = LevelG2(g2_0=r.g2_0, g2_0_err=r.g2_0_err, n_emitters=r.n_emitters,
                        n_emitters_err=r.n_emitters_err, photons=lv.photons)


def _no_rate_note(stream: PhotonStream) -> str:
    """The statement for a T3 recording without a laser repetition rate ("" otherwise)."""
    if stream.microtime is None or stream.sync_rate_hz:
        return ""
    src = stream.header.get("sync_rate_source") or "unknown"
    return (f" (no laser repetition rate, so no pulsed g2(0), M or BX/X: {src}; give it with "
            "`rep_rate_hz`)")


def _plain(x):
    """JSON-ready copy of a reader's info dict (numpy scalars and arrays to Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _finite(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _classify(rate, photons, time, sig_frac, fits, n_mbins, background_cps, n_det, t3):
    """Kind of every level (ascending rate) and the Background part (module docstring)."""
    n = len(rate)
    if background_cps is not None:
        B = float(background_cps) * n_det
        kinds = []
        for r, k, T in zip(rate, photons, time):
            excess = (k - B * T) / math.sqrt(max(B * T, 1.0))
            kinds.append("emitting" if r > 2 * B and excess > 5 else "background")
        return kinds, Background(cps=B, source=f"given: {background_cps:g} counts/s per "
                                                f"detector x {n_det} detectors")
    fitted = [i for i in range(n) if sig_frac[i] is not None]
    if t3 and fitted:
        kinds = ["" if sig_frac[i] is None else "emitting" if sig_frac[i] > 0.5
                 else "background" for i in range(n)]
        bg = [i for i in fitted if kinds[i] == "background"]
        if bg:
            B = float(rate[bg[0]])
            src = (f"darkest background level ({B:.0f} counts/s; its photons are flat in "
                   "microtime)")
        else:
            i = fitted[0]
            B = float(rate[i] * (1.0 - sig_frac[i]))
            src = "flat component of the darkest fitted level's decay (every level emits)"
        for i in range(n):  # too few photons for a decay fit: signal > background?
            if not kinds[i]:
                kinds[i] = "emitting" if rate[i] > 2 * B else "background"
        return kinds, Background(cps=B, source=src)
    if n >= 2:
        B = float(rate[0])
        kinds = ["background"] + ["emitting" if r > 2 * B else "background" for r in rate[1:]]
        return kinds, Background(cps=B, source="darkest level (no microtimes: assumed "
                                               "background)")
    return ["emitting"] * n, Background(cps=None, source=(
        "none (one level; no microtimes or too few photons for a decay fit)"))


def _emitter_check(levels: list[IntensityLevel], g2: G2, bg_cps: float,
                   t3: bool) -> EmitterCheck:
    """Emitters from the levels: signal of the brightest level over the unit step (the dimmest
    emitting level with the brightest level's lifetime, T3; the dimmest emitting level, T2);
    M from the brightest level's g2 (the recording's g2 when the level has too few photons)."""
    em = [lv for lv in levels if lv.kind == "emitting"]
    if not em:
        return EmitterCheck(statement="no emitting level: emitters not counted")
    top = em[-1]
    method = "brightest level / dimmest emitting level"
    units = em
    if t3 and top.decay is not None:
        tau0 = top.decay.tau_ns[0]
        err0 = top.decay.tau_err_ns[0] or 0.0

        def same(lv: IntensityLevel) -> bool:
            if lv.decay is None:
                return False
            e = math.hypot(err0, lv.decay.tau_err_ns[0] or 0.0)
            return abs(lv.decay.tau_ns[0] - tau0) <= max(3 * e, 0.15 * tau0)
        units = [lv for lv in em if same(lv)] or [top]
        method = ("brightest level / dimmest emitting level with its lifetime (levels with "
                  "another lifetime are states of one emitter)")
    unit = max(units[0].rate_cps - bg_cps, 1e-12)
    n_lv = max(1, int(round((top.rate_cps - bg_cps) / unit)))
    if top.g2 is not None and top.g2.n_emitters is not None:
        m, m_err, src = top.g2.n_emitters, top.g2.n_emitters_err, f"level {top.index}"
    elif g2.n_emitters is not None:
        m, m_err, src = g2.n_emitters, g2.n_emitters_err, "all photons"
    else:
        return EmitterCheck(from_levels=n_lv, levels_method=method, statement=(
            f"levels: {n_lv} emitter(s); g2(0) >= 1 gives no emitter number"))
    agree = abs(m - n_lv) <= max(2 * (m_err or 0.0), 0.5)
    return EmitterCheck(
        from_levels=n_lv, levels_method=method, from_g2=m, from_g2_err=m_err, g2_photons=src,
        agree=agree, statement=(
            f"levels: {n_lv} emitter(s); g2 ({src}): M = {m:.2f} +- {m_err or 0:.2f}: "
            + ("agree" if agree else "DISAGREE")))


def _interpretation(g2: G2, em: EmitterCheck) -> str:
    if g2.g2_0 is None:
        return "no g2(0)"
    if em.agree and em.from_levels == 1:
        return ("one emitter (levels and g2 agree): g2(0) read as the biexciton-to-exciton "
                f"quantum-yield ratio QY_BX/QY_X = {g2.bx_x_ratio:.3f} +- "
                f"{g2.bx_x_ratio_err or 0:.3f} ({g2.bx_x_method})"
                if g2.bx_x_ratio is not None else "one emitter (levels and g2 agree)")
    if em.agree:
        return (f"{em.from_levels} emitters (levels and g2 agree): g2(0) read as 1 - 1/M, "
                f"M = {em.from_g2:.2f}")
    if em.agree is None:
        return "g2(0) read as 1 - 1/M (no emitter count from the levels)"
    return ("levels and g2 disagree: M = 1/(1 - g2(0)) assumes independent emitters without "
            "biexciton emission; QY_BX/QY_X assumes one emitter; neither is confirmed")


def _on_levels(levels: list[IntensityLevel]) -> tuple[set[int], str]:
    em = {lv.index for lv in levels if lv.kind == "emitting"}
    if em and len(em) < len(levels):
        return em, "ON: emitting levels; OFF: background levels"
    rates = np.array([lv.rate_cps for lv in levels])
    gap = int(np.argmax(np.diff(np.log(np.maximum(rates, 1e-12)))))
    return set(range(gap + 1, len(levels))), (
        f"ON: levels above the largest rate ratio gap ({rates[gap]:.0f} -> "
        f"{rates[gap + 1]:.0f} counts/s); OFF: below")


def _dwell_fit(x: np.ndarray) -> DwellFit:
    stored = np.sort(x)[::-1][:MAX_STORED_DWELLS].tolist() if x.size else []
    try:
        d = fit_dwell_times(x)
    except AnalysisError as exc:
        return DwellFit(n=int(x.size), mean_s=float(x.mean()) if x.size else None,
                        error=str(exc), dwell_s=stored)
    d["dwell_s"] = stored
    return DwellFit(**d)


def power_series(stats: list[PhotonStats]) -> PowerSeries:
    """Intensity of the brightest level and the mean intensity vs <N>, the exponent of each,
    lifetimes of the brightest level, and g2(0), M and BX/X per <N> (power-resolved g2)."""
    pts = sorted((s for s in stats if s.excitation_N), key=lambda s: s.excitation_N)
    if len(pts) < 3:
        raise AnalysisError("a power series needs >= 3 recordings with known <N>")
    N = [float(s.excitation_N) for s in pts]
    mean_counts = [float(np.mean(s.trace_counts)) - (s.background_counts_per_bin or 0.0)
                   for s in pts]
    top = [s.levels[-1].mean_counts_per_bin for s in pts]
    taus = [s.levels[-1].tau_ns for s in pts]

    def g(s, k):
        return getattr(s.g2, k) if s.g2 is not None else None
    return PowerSeries(
        excitation_N=N, mean_counts_per_bin=mean_counts, brightest_level_counts_per_bin=top,
        brightest_level_tau_ns=taus,
        mean_intensity_fit=PowerLawFit(**power_law_exponent(N, mean_counts)),
        brightest_level_fit=PowerLawFit(**power_law_exponent(N, top)),
        g2_0=[g(s, "g2_0") for s in pts], g2_0_err=[g(s, "g2_0_err") for s in pts],
        n_emitters=[g(s, "n_emitters") for s in pts],
        bx_x_ratio=[g(s, "bx_x_ratio") for s in pts],
        bx_x_ratio_err=[g(s, "bx_x_ratio_err") for s in pts],
        emitters_from_levels=[s.emitters.from_levels if s.emitters else None for s in pts])
