"""One call from a PhotonStream to a PhotonStats document, and a power series of recordings.

Primary segmentation: Watkins-Yang change points and BIC levels (`changepoints`); the binned
Poisson mixture and user thresholds stay as options. Everything downstream is per level and per
segment: decays from each level's photons, level-resolved g2, FLID, ON/OFF dwell times.

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

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis.changepoints import cluster_levels
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
from perovdefect.photons.stats import (G2, Background, ChangePoints, DwellFit, EmitterCheck,
                                       Flid, Histogram, IntensityLevel, LevelG2, OverallDecay,
                                       PhotonStats, PowerLawFit, PowerSeries, Segment)
from perovdefect.photons.stream import PhotonStream

MAX_STORED_TRACE_BINS = 20000
MAX_STORED_SEGMENTS = 5000
MAX_STORED_DWELLS = 5000
#: Fewest photons in a level for a decay fit, and for a level-resolved g2.
MIN_DECAY_PHOTONS = 200
MIN_LEVEL_G2_PHOTONS = 5000
LEVEL_METHODS = ("change-points", "poisson-mixture", "thresholds")


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


def _g2_part(res, excitation_N: float | None, photons: str) -> G2:
    factor = max(1, int(round(1.0 / res.bin_width_ns)))  # store at ~1 ns bins
    tau, co = _rebin(np.asarray(res.tau_ns), np.asarray(res.coincidences), factor)
    r, r_err, method = bx_x_ratio(res.g2_0, res.g2_0_err, excitation_N)
    return G2(tau_ns=tau, coincidences=[int(x) for x in co],
              stored_bin_ns=res.bin_width_ns * factor,
              bin_width_ns=res.bin_width_ns, period_ns=res.period_ns,
              peak_areas={str(k): float(v) for k, v in res.peak_areas.items()},
              area_method=res.area_method, g2_0_raw=res.g2_0_raw, g2_0=res.g2_0,
              g2_0_err=res.g2_0_err, n_emitters=res.n_emitters,
              n_emitters_err=res.n_emitters_err, bx_x_ratio=r, bx_x_ratio_err=r_err,
              bx_x_method=method, rho=list(res.rho) if res.rho else None, gate_ns=res.gate_ns,
              channels=[int(c) for c in res.channels], photons=photons)


def analyze_stream(stream: PhotonStream, bin_width_s: float = 0.01,
                   thresholds: list[float] | None = None, max_levels: int = 6,
                   decay_bin_ns: float = 0.1, g2_window_ns: float = 500.0,
                   g2_bin_ns: float = 0.1, gate_ns: float = 0.0,
                   background_cps: float | None = None, excitation_N: float | None = None,
                   detect_change_points: bool = True, biexponential: bool = True,
                   level_method: str | None = None, confidence: float = 0.95,
                   level_g2: bool = True, progress=None) -> PhotonStats:
    """Trace -> change points (Watkins-Yang at `confidence`) -> levels by BIC (or the binned
    Poisson mixture / thresholds) -> background and emitting levels -> decay per level (T3)
    -> overall mono/bi-exponential fit -> g2 overall and per level (two detectors), read as M
    and as BX/X -> levels-vs-g2 emitter check -> ON/OFF dwell-time fits -> FLID.

    level_method: "change-points" (default), "poisson-mixture" (binned; the default when
    detect_change_points is False) or "thresholds" (when thresholds are given).
    background_cps: background per detector (counts/s); None estimates it (module docstring)."""
    def step(msg: str) -> None:
        if progress:
            progress(msg)

    if level_method is None:
        level_method = ("thresholds" if thresholds else
                        "change-points" if detect_change_points else "poisson-mixture")
    if level_method not in LEVEL_METHODS:
        raise AnalysisError(f"level method must be one of {LEVEL_METHODS}, got {level_method!r}")
    if level_method == "thresholds" and not thresholds:
        raise AnalysisError("level method 'thresholds' needs thresholds (counts/bin)")
    if len(stream) == 0:
        raise AnalysisError(f"{stream.source}: no photons to analyse")
    duration = stream.duration_s()
    ccounts = _channel_counts(stream)
    n_det = max(len(ccounts), 1)
    step("intensity trace")
    pbi = photon_bin_index(stream, bin_width_s)
    _, counts = intensity_trace(stream, bin_width_s, bin_index=pbi)
    t3 = stream.microtime is not None and bool(stream.sync_rate_hz) \
        and bool(stream.microtime_resolution_s)

    # ---------------------------------------------------------------- segmentation and levels
    cpr = None
    seg_level = None
    bic = {}
    if level_method == "change-points" or detect_change_points:
        step("change points (Watkins-Yang)")
        times = stream.macrotime * stream.macrotime_resolution_s
        cpr = _watkins_yang(times, max(duration, float(times[-1]) * (1 + 1e-12)),
                                   confidence)
    seg_photons = cpr.photons() if cpr is not None else None
    if level_method == "change-points":
        step("levels (BIC)")
        cl = cluster_levels(seg_photons, cpr.durations_s(), max_levels)
        seg_level = cl.assignment
        bic = {str(k): float(v) for k, v in cl.bic.items()}
        photon_level = segment_fill(cpr.photon_edges, seg_level.astype(np.int8))
        n_lv = cl.rates_cps.size
        lv_photons = np.bincount(seg_level, weights=seg_photons, minlength=n_lv)
        lv_time = np.bincount(seg_level, weights=cpr.durations_s(), minlength=n_lv)
        lv_nseg = np.bincount(seg_level, minlength=n_lv)
        bounds = [(None, None)] * n_lv
        lv_bins = [None] * n_lv
    else:
        step("intensity levels (binned)")
        lv_list = threshold_levels(counts, thresholds) if level_method == "thresholds" else \
            mixture_levels(counts, max_levels)
        n_lv = len(lv_list)
        edges = np.array([lv.lo for lv in lv_list] + [np.inf])
        bin_level = np.clip(np.searchsorted(edges, counts, side="right") - 1, 0, n_lv - 1)
        idx = np.minimum(pbi, counts.size - 1)
        photon_level = bin_level[idx].astype(np.int8)
        lv_photons = np.bincount(photon_level, minlength=n_lv).astype(float)
        lv_bins = np.bincount(bin_level, minlength=n_lv)
        lv_time = lv_bins * bin_width_s
        lv_nseg = [None] * n_lv
        bounds = [(lv.lo, lv.hi) for lv in lv_list]
        if cpr is not None:  # segments get the level their mean counts per bin fall in
            seg_rate_bin = seg_photons / np.maximum(cpr.durations_s(), 1e-12) * bin_width_s
            seg_level = np.clip(np.searchsorted(edges, seg_rate_bin, side="right") - 1, 0,
                                n_lv - 1)
    lv_rate = lv_photons / np.maximum(lv_time, 1e-12)
    total_time = max(float(lv_time.sum()), 1e-12)

    # ---------------------------------------------------------------- decays per level
    decay_hists: dict[str, Histogram] = {}
    fits: list = [None] * n_lv
    sig_frac: list = [None] * n_lv
    overall = None
    factor = width = n_mbins = period_ns = None
    if t3:
        factor, width, n_mbins, period_ns = _micro_bins(stream, decay_bin_ns)
        hist2 = level_decay_histograms(photon_level, stream.microtime, factor, n_mbins, n_lv)
        t_ns = np.arange(n_mbins) * width
        step("overall decay (mono- and bi-exponential)")
        h_all = hist2.sum(0)
        try:
            overall = OverallDecay(mono=fit_decay(t_ns, h_all, period_ns, 1))
        except AnalysisError:
            overall = None  # too few photons: no decay fits at all
        if biexponential and overall is not None:
            try:
                overall.bi = fit_decay(t_ns, h_all, period_ns, 2, start=overall.mono)
            except AnalysisError as exc:
                overall.bi_error = str(exc)
        for i in range(n_lv):
            h = hist2[i]
            decay_hists[str(i)] = Histogram(t_ns=t_ns.round(4).tolist(), counts=h.tolist())
            if h.sum() >= MIN_DECAY_PHOTONS:
                step(f"decay of level {i} ({lv_rate[i] * bin_width_s:.0f} counts/bin)")
                try:
                    fits[i] = fit_decay(t_ns, h, period_ns, 1,
                                        start=overall.mono if overall else None)
                    sig_frac[i] = _signal_fraction(fits[i], n_mbins, period_ns)
                except AnalysisError:
                    pass
        decay_hists["all"] = Histogram(t_ns=t_ns.round(4).tolist(), counts=h_all.tolist())

    # ---------------------------------------------------------------- background, kinds
    kinds, background = _classify(lv_rate, lv_photons, lv_time, sig_frac, fits, n_mbins,
                                  background_cps, n_det, t3)
    bg_levels = [i for i in range(n_lv) if kinds[i] == "background"]
    if level_method == "change-points" and len(bg_levels) > 1:
        # background is one flat rate: BIC splits it when the change-point search, which
        # places its splits where the rate fluctuates most, leaves the background segments
        # overdispersed; merge those levels into one and classify again
        step("one background level")
        remap = np.arange(n_lv)
        remap[bg_levels] = bg_levels[0]
        kept, remap = np.unique(remap, return_inverse=True)
        seg_level = remap[seg_level]
        photon_level = remap[photon_level].astype(np.int8)
        old_fits, old_sf = fits, sig_frac
        n_lv = kept.size
        lv_photons = np.bincount(seg_level, weights=seg_photons, minlength=n_lv)
        lv_time = np.bincount(seg_level, weights=cpr.durations_s(), minlength=n_lv)
        lv_nseg = np.bincount(seg_level, minlength=n_lv)
        lv_rate = lv_photons / np.maximum(lv_time, 1e-12)
        bounds, lv_bins = [(None, None)] * n_lv, [None] * n_lv
        fits = [old_fits[k] for k in kept]
        sig_frac = [old_sf[k] for k in kept]
        if t3:
            merged = np.zeros((n_lv, n_mbins), np.int64)
            np.add.at(merged, remap[np.arange(hist2.shape[0])], hist2)
            hist2 = merged
            j = int(remap[bg_levels[0]])
            decay_hists = {str(i): Histogram(t_ns=t_ns.round(4).tolist(),
                                             counts=hist2[i].tolist()) for i in range(n_lv)}
            decay_hists["all"] = Histogram(t_ns=t_ns.round(4).tolist(), counts=h_all.tolist())
            fits[j] = sig_frac[j] = None
            if hist2[j].sum() >= MIN_DECAY_PHOTONS:
                try:
                    fits[j] = fit_decay(t_ns, hist2[j], period_ns, 1,
                                        start=overall.mono if overall else None)
                    sig_frac[j] = _signal_fraction(fits[j], n_mbins, period_ns)
                except AnalysisError:
                    pass
        kinds, background = _classify(lv_rate, lv_photons, lv_time, sig_frac, fits, n_mbins,
                                      background_cps, n_det, t3)
    bg_cps = background.cps
    background.counts_per_bin = None if bg_cps is None else bg_cps * bin_width_s
    levels = []
    for i in range(n_lv):
        levels.append(IntensityLevel(
            index=i, mean_counts_per_bin=float(lv_rate[i] * bin_width_s),
            rate_cps=float(lv_rate[i]), fraction=float(lv_time[i] / total_time),
            photons=int(lv_photons[i]), kind=kinds[i],
            n_segments=None if lv_nseg[i] is None else int(lv_nseg[i]),
            n_bins=None if lv_bins[i] is None else int(lv_bins[i]),
            lo_counts_per_bin=_finite(bounds[i][0]), hi_counts_per_bin=_finite(bounds[i][1]),
            signal_fraction=sig_frac[i], decay=fits[i]))
    n_emitting = sum(k == "emitting" for k in kinds)

    # ---------------------------------------------------------------- g2 and emitters
    g2 = None
    emitters = None
    if len(ccounts) >= 2:
        step("g2 cross-correlation")
        g2_bg = None if bg_cps is None else bg_cps / n_det
        tau = overall.mono.tau_ns[0] if overall else None
        t_ps = _times_ps(stream)
        bidx = pbi if bin_width_s == 0.01 else photon_bin_index(stream, 0.01)  # g2 background
        g2_note = ""
        if stream.sync_rate_hz and g2_window_ns < 2.5e9 / stream.sync_rate_hz:
            g2_window_ns = 2.5e9 / stream.sync_rate_hz  # room for the +-1 and +-2 side peaks
            g2_note = f" (window widened to +-{g2_window_ns:.0f} ns: 2.5 laser periods)"
        try:
            res = g2_analysis(stream, g2_window_ns, g2_bin_ns, gate_ns, g2_bg, decay_tau_ns=tau,
                              times_ps=t_ps, bin_index=bidx, channel_counts=ccounts)
        except AnalysisError as exc:
            res = None
            if g2_bg is not None:
                g2_note += f" (not background-corrected: {exc})"
                g2_bg = None
                try:
                    res = g2_analysis(stream, g2_window_ns, g2_bin_ns, gate_ns, None,
                                      decay_tau_ns=tau, times_ps=t_ps, bin_index=bidx,
                                      channel_counts=ccounts)
                except AnalysisError as exc2:
                    exc = exc2
            if res is None:  # the histogram without g2(0)
                g2_note = f" (no g2(0): {exc})"
                level_g2 = False
                res = correlate(stream, g2_window_ns, g2_bin_ns, None, gate_ns, None, t_ps,
                                ccounts)
        g2 = _g2_part(res, excitation_N, "all")
        todo = [lv for lv in levels
                if level_g2 and lv.kind == "emitting" and lv.photons >= MIN_LEVEL_G2_PHOTONS]
        if todo and res.period_ns:
            step("g2 per level")
            _level_g2(stream, todo, photon_level, t_ps, res, g2_window_ns, g2_bin_ns,
                      gate_ns, g2_bg, total_time, tau)
        emitters = _emitter_check(levels, g2, bg_cps or 0.0, t3)
        g2.interpretation = _interpretation(g2, emitters) + g2_note

    # ---------------------------------------------------------------- segments and dwell times
    segments: list[Segment] = []
    dwell = None
    rule = None
    micro_ns = stream.microtimes_ns() if t3 else None
    irf0 = (overall.mono.irf_center_ns or 0.0) if overall else 0.0
    if cpr is not None:
        n_seg = cpr.n_segments
        delays = None
        if t3:
            sums = segment_sums(cpr.photon_edges, stream.microtime) * \
                (stream.microtime_resolution_s * 1e9)
            with np.errstate(invalid="ignore", divide="ignore"):
                delays = sums / seg_photons - irf0
        e = cpr.edges_s
        dur = np.maximum(np.diff(e), 1e-12)
        for j in range(min(n_seg, MAX_STORED_SEGMENTS)):
            segments.append(Segment(
                start_s=float(e[j]), stop_s=float(e[j + 1]), photons=int(seg_photons[j]),
                rate_cps=float(seg_photons[j] / dur[j]),
                level=None if seg_level is None else int(seg_level[j]),
                mean_delay_ns=None if delays is None or not np.isfinite(delays[j])
                else float(delays[j])))
        if seg_level is not None and n_lv >= 2:
            step("dwell times")
            on, rule = _on_levels(levels)
            d = dwell_times(seg_level, cpr.edges_s, on)
            dwell = {k: _dwell_fit(v) for k, v in d.items()}

    # ---------------------------------------------------------------- FLID
    flid_doc = None
    if t3:
        step("FLID")
        c, delay = flid(stream, bin_width_s, irf_offset_ns=irf0, micro_ns=micro_ns,
                        bin_index=pbi)
        ok = c > 0
        h2, xe, ye = np.histogram2d(c[ok], delay[ok], bins=(40, 40))
        flid_doc = Flid(counts_edges=xe.tolist(), delay_edges_ns=ye.tolist(),
                        histogram=h2.astype(int).tolist())

    stored = counts if counts.size <= MAX_STORED_TRACE_BINS else counts[:MAX_STORED_TRACE_BINS]
    cp_doc = None if cpr is None else ChangePoints(
        confidence=confidence, min_photons=cpr.min_photons,
        n_change_points=int(cpr.index.size), n_segments=cpr.n_segments,
        segments_stored=len(segments), bic_per_levels=bic)
    return PhotonStats(
        source=stream.source, info=_plain(stream.info()), bin_width_s=bin_width_s,
        trace_counts=stored.tolist(), level_method=level_method, levels=levels,
        n_levels=n_lv, n_emitting_levels=n_emitting, background=background,
        background_counts_per_bin=background.counts_per_bin, decay_overall=overall,
        decay_histograms=decay_hists, change_points=cp_doc, segments=segments, g2=g2,
        emitters=emitters, dwell_times=dwell, dwell_rule=rule, flid=flid_doc,
        excitation_N=excitation_N,
        settings={"bin_width_s": bin_width_s, "decay_bin_ns": decay_bin_ns,
                  "g2_window_ns": g2_window_ns, "g2_bin_ns": g2_bin_ns, "gate_ns": gate_ns,
                  "levels": level_method, "change_point_confidence": confidence,
                  "background_cps_per_detector": background_cps, "max_levels": max_levels})


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
                    active_s=lv.fraction * total_time, photons=r.photons)
            pulsed_g2_zero(r, res.rho, background_area=e0, decay_tau_ns=lv.tau_ns or tau_all)
        except AnalysisError:
            continue
        lv.g2 = LevelG2(g2_0=r.g2_0, g2_0_err=r.g2_0_err, n_emitters=r.n_emitters,
                        n_emitters_err=r.n_emitters_err, photons=lv.photons)


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
