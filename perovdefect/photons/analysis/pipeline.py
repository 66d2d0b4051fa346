"""One call from a PhotonStream to a PhotonStats document, and a power series of recordings."""

from __future__ import annotations

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis.decay import decay_histogram, fit_decay, flid
from perovdefect.photons.analysis.g2 import g2_analysis
from perovdefect.photons.analysis.levels import (change_points, mixture_levels,
                                                 segments_from_change_points, threshold_levels)
from perovdefect.photons.analysis.power import power_law_exponent
from perovdefect.photons.analysis.trace import intensity_trace, photon_bin_index
from perovdefect.photons.stats import PhotonStats
from perovdefect.photons.stream import PhotonStream

MAX_STORED_TRACE_BINS = 20000


def _rebin(tau: np.ndarray, counts: np.ndarray, factor: int) -> tuple[list, list]:
    n = (len(counts) // factor) * factor
    return (tau[:n].reshape(-1, factor).mean(1).round(4).tolist(),
            counts[:n].reshape(-1, factor).sum(1).tolist())


def analyze_stream(stream: PhotonStream, bin_width_s: float = 0.01,
                   thresholds: list[float] | None = None, max_levels: int = 4,
                   decay_bin_ns: float = 0.1, g2_window_ns: float = 500.0,
                   g2_bin_ns: float = 0.1, gate_ns: float = 0.0,
                   background_cps: float | None = None, excitation_N: float | None = None,
                   detect_change_points: bool = True, biexponential: bool = True,
                   progress=None) -> PhotonStats:
    """Trace -> levels (thresholds or Poisson mixture) -> decay fit per level (T3) -> overall
    mono/bi-exponential fit -> change points -> g2 and M (two detectors) -> FLID."""
    def step(msg: str) -> None:
        if progress:
            progress(msg)

    step("intensity trace")
    _, counts = intensity_trace(stream, bin_width_s)
    step("intensity levels")
    levels = threshold_levels(counts, thresholds) if thresholds else \
        mixture_levels(counts, max_levels)
    bg_level = levels[0].mean_counts
    background = (background_cps * bin_width_s * 2) if background_cps is not None else None
    ref_bg = background if background is not None else bg_level
    n_emitting = sum(1 for lv in levels if lv.mean_counts > max(3 * ref_bg, ref_bg + 5))
    level_docs = []
    decay_hists: dict = {}
    overall = None
    t3 = stream.microtime is not None and stream.sync_rate_hz
    bin_idx = photon_bin_index(stream, bin_width_s) if t3 else None
    micro_ns = stream.microtimes_ns() if t3 else None  # once, for every decay and the FLID
    for i, lv in enumerate(levels):
        d = lv.to_dict()
        d["n_bins"] = int(((counts >= lv.lo) & (counts < lv.hi)).sum())
        if t3:
            step(f"decay of level {i} ({lv.mean_counts:.0f} counts/bin)")
            bins = np.nonzero((counts >= lv.lo) & (counts < lv.hi))[0]
            mask = np.isin(bin_idx, bins)
            t, h, period = decay_histogram(stream, mask, decay_bin_ns, micro_ns)
            d["n_photons"] = int(h.sum())
            if h.sum() >= 200:
                d["decay"] = fit_decay(t, h, period, 1).to_dict()
            decay_hists[str(i)] = {"t_ns": t.round(4).tolist(), "counts": h.tolist()}
        level_docs.append(d)
    if t3:
        step("overall decay (mono- and bi-exponential)")
        t, h, period = decay_histogram(stream, None, decay_bin_ns, micro_ns)
        overall = {"mono": fit_decay(t, h, period, 1).to_dict()}
        if biexponential:
            try:
                overall["bi"] = fit_decay(t, h, period, 2).to_dict()
            except AnalysisError as exc:
                overall["bi_error"] = str(exc)
        decay_hists["all"] = {"t_ns": t.round(4).tolist(), "counts": h.tolist()}
    segments = []
    if detect_change_points:
        step("change-point detection")
        times = stream.times_s()
        cps = change_points(times)
        segments = segments_from_change_points(times, cps, stream.duration_s())
    g2 = None
    if len(stream.channels()) >= 2:
        step("g2 cross-correlation")
        tau = (overall or {}).get("mono", {}).get("tau_ns", [None])[0] if overall else None
        res = g2_analysis(stream, g2_window_ns, g2_bin_ns, gate_ns, background_cps,
                          decay_tau_ns=tau)
        g2 = res.to_dict()
        factor = max(1, int(round(1.0 / res.bin_width_ns)))  # store at ~1 ns bins
        g2["tau_ns"], g2["coincidences"] = _rebin(np.asarray(res.tau_ns),
                                                  np.asarray(res.coincidences), factor)
        g2["stored_bin_ns"] = res.bin_width_ns * factor
        g2["peak_areas"] = {str(k): v for k, v in res.peak_areas.items()}
    flid_doc = None
    if t3:
        step("FLID")
        c, delay = flid(stream, bin_width_s, irf_offset_ns=(overall or {}).get("mono", {}).get(
            "irf_center_ns") or 0.0, micro_ns=micro_ns, bin_index=bin_idx)
        ok = c > 0
        h2, xe, ye = np.histogram2d(c[ok], delay[ok], bins=(40, 40))
        flid_doc = {"counts_edges": xe.tolist(), "delay_edges_ns": ye.tolist(),
                    "histogram": h2.astype(int).tolist()}
    stored = counts if counts.size <= MAX_STORED_TRACE_BINS else counts[:MAX_STORED_TRACE_BINS]
    return PhotonStats(
        source=stream.source, info=stream.info(), bin_width_s=bin_width_s,
        trace_counts=stored.tolist(), levels=level_docs, n_levels=len(levels),
        n_emitting_levels=n_emitting, decay_overall=overall, decay_histograms=decay_hists,
        segments=segments[:500], g2=g2, flid=flid_doc, excitation_N=excitation_N,
        background_counts_per_bin=background,
        settings={"bin_width_s": bin_width_s, "decay_bin_ns": decay_bin_ns,
                  "g2_window_ns": g2_window_ns, "g2_bin_ns": g2_bin_ns, "gate_ns": gate_ns,
                  "levels": "thresholds" if thresholds else "poisson-mixture"})


def power_series(stats: list[PhotonStats]) -> dict:
    """Intensity of the brightest level and the mean intensity vs <N>, the exponent of each,
    and lifetimes of the brightest level."""
    pts = sorted((s for s in stats if s.excitation_N), key=lambda s: s.excitation_N)
    if len(pts) < 3:
        raise AnalysisError("a power series needs >= 3 recordings with known <N>")
    N = [s.excitation_N for s in pts]
    mean_counts = [float(np.mean(s.trace_counts)) - (s.background_counts_per_bin or 0.0)
                   for s in pts]
    top = [s.levels[-1]["mean_counts"] for s in pts]
    taus = [s.levels[-1].get("decay", {}).get("tau_ns", [None])[0] for s in pts]
    return {"excitation_N": N, "mean_counts_per_bin": mean_counts,
            "brightest_level_counts_per_bin": top, "brightest_level_tau_ns": taus,
            "mean_intensity_fit": power_law_exponent(N, mean_counts),
            "brightest_level_fit": power_law_exponent(N, top)}
