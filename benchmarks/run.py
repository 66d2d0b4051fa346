"""Speed benchmarks, one command: `.venv/bin/python benchmarks/run.py [--photons 1e7] [--all]`.

Prints times and ratios from one run on this machine:
1. g2 of N photons (two detectors) over +-500 ns in 0.1 ns bins: perovdefect's numba kernel
   (perovdefect.photons.analysis.g2_kernel, all cores; its one-thread time and the plain
   two-pointer loop are printed too) vs a numpy searchsorted implementation vs tttrlib's Correlator in linear mode (one
   cascade, 5000 lag channels per sign) vs pycorrelate (on a 1e6 subset, scaled linearly, unless
   --all). Targets (issue 5): >= 5x numpy, >= 30x tttrlib.
2. PTU decoding: perovdefect.photons.io.read_ptu (header by ptufile, records by
   perovdefect.photons.io.records) vs ptufile.decode_records alone, and read_ptu with
   decoder="ptufile" (ptufile's decode + a split pass). Target: at least as fast as ptufile alone.
3. Whole single-particle analysis of N photons (target: <= 3 s on 2 cores): Watkins-Yang change
   points, BIC levels, background and level kinds, decay fits per level and overall (mono and
   bi), g2 overall and per level (M and BX/X), the levels-vs-g2 check, ON/OFF dwell-time fits,
   FLID; beside it the same with the binned Poisson-mixture levels (no change points) and the
   change-point search alone.
Reference libraries come with `pip install -e .[bench]`; a missing one is reported, not faked.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeat: int = 1):
    best = np.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def two_detector_times(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poissonian photons (int64 ps) split 50/50, ~1e6 counts/s in total."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1e6, n)).astype(np.int64)  # mean spacing 1 us
    det = rng.random(n) < 0.5
    return t[det], t[~det]


def g2_numpy(ta, tb, tmin, bw, nbins):
    """Reference numpy implementation: searchsorted window per ta, then offsets j = 0.. while
    any window still has pairs (vectorised over photons)."""
    lo = np.searchsorted(tb, ta + tmin)
    hi = np.searchsorted(tb, ta + tmin + nbins * bw)
    hist = np.zeros(nbins, np.int64)
    j = 0
    while True:
        idx = lo + j
        ok = idx < hi
        if not ok.any():
            break
        d = tb[idx[ok]] - ta[ok] - tmin
        hist += np.bincount(d // bw, minlength=nbins)[:nbins]
        j += 1
    return hist


def g2_tttrlib(ta, tb, bw, nbins):
    """tttrlib 0.26.2 aborts (heap corruption, 'corrupted size vs. prev_size') when the two
    channels differ in length, as measured here: both are cut to the shorter one."""
    import tttrlib
    m = min(ta.size, tb.size)
    ta, tb = ta[:m], tb[:m]
    out = []
    for t1, t2 in ((ta, tb), (tb, ta)):  # positive and negative lags
        c = tttrlib.Correlator()
        c.n_casc = 1
        c.n_bins = nbins // 2
        c.set_macrotimes((t1 // bw).astype(np.uint64), (t2 // bw).astype(np.uint64))
        c.set_weights(np.ones(t1.size), np.ones(t2.size))
        out.append(np.asarray(c.get_corr()))
    return out


def bench_g2(n: int, run_all: bool) -> dict:
    from perovdefect.photons.analysis.g2_kernel import (cross_correlation_hist,
                                                        cross_correlation_hist_simple)
    ta, tb = two_detector_times(n)
    bw, nbins = 100, 10_000  # 0.1 ns bins, +-500 ns
    tmin = -nbins // 2 * bw
    cross_correlation_hist(ta[:300_000], tb[:300_000], tmin, bw, nbins)  # compile outside timing
    cross_correlation_hist_simple(ta[:1000], tb[:1000], tmin, bw, nbins)
    res = {}
    res["perovdefect_numba_s"], h1 = timed(lambda: cross_correlation_hist(
        ta, tb, tmin, bw, nbins), repeat=3)
    res["perovdefect_one_thread_s"], h0 = timed(lambda: cross_correlation_hist(
        ta, tb, tmin, bw, nbins, n_threads=1), repeat=3)
    res["plain_two_pointer_s"], h3 = timed(lambda: cross_correlation_hist_simple(
        ta, tb, tmin, bw, nbins), repeat=3)
    assert np.array_equal(h0, h1) and np.array_equal(h3, h1), "g2 kernels differ"
    res["numpy_searchsorted_s"], h2 = timed(lambda: g2_numpy(ta, tb, tmin, bw, nbins))
    assert np.array_equal(h1, h2), "numba and numpy histograms differ"
    try:
        res["tttrlib_linear_s"], _ = timed(lambda: g2_tttrlib(ta, tb, bw, nbins))
    except ImportError:
        res["tttrlib_linear_s"] = None
    try:
        import pycorrelate
        bins = np.arange(tmin, tmin + (nbins + 1) * bw, bw)
        m = n if run_all else min(n, 1_000_000)
        sa, sb = two_detector_times(m, seed=1)
        t, _ = timed(lambda: pycorrelate.pcorrelate(sa, sb, bins))
        res["pycorrelate_s"] = t * n / m
        res["pycorrelate_note"] = "measured" if m == n else f"measured on {m:.0e}, scaled to {n:.0e}"
    except ImportError:
        res["pycorrelate_s"] = None
    return res


def bench_ptu_and_analysis(n: int) -> dict:
    import ptufile

    from perovdefect.photons.analysis.pipeline import analyze_stream
    from perovdefect.photons.io.ptu import read_ptu
    from perovdefect.photons.io.ptu_write import write_ptu
    from perovdefect.photons.simulate import SEED_STATES, SimulationParams, simulate
    # a bright blinking particle: enough emitters/duration to reach ~n photons
    duration = max(2.0, n / 1.0e5)  # four blinking emitters give ~1e5 counts/s
    stream = simulate(SimulationParams(duration_s=duration, n_emitters=4, states=SEED_STATES,
                                       seed=3))
    with tempfile.TemporaryDirectory() as d:
        path = write_ptu(Path(d) / "bench.ptu", stream)

        def decode_ptufile():
            with ptufile.PtuFile(path) as f:
                return f.decode_records()
        t_ptufile, _ = timed(decode_ptufile, repeat=3)
        read_ptu(path)  # numba compile outside the timing
        t_ours, s = timed(lambda: read_ptu(path), repeat=3)
        t_split, _ = timed(lambda: read_ptu(path, decoder="ptufile"), repeat=3)
        from perovdefect.photons.analysis.changepoints import detect_change_points
        analyze_stream(s.between(0.0, 2.0))  # numba compile outside the timing
        analyze_stream(s.between(0.0, 2.0), detect_change_points=False)
        t_analysis, st = timed(lambda: analyze_stream(s, background_cps=750.0))
        t_binned, _ = timed(lambda: analyze_stream(s, background_cps=750.0,
                                                   detect_change_points=False))
        times = s.macrotime * s.macrotime_resolution_s
        t_cp, cp = timed(lambda: detect_change_points(times, s.duration_s()))
    return {"photons": len(s), "ptufile_decode_s": t_ptufile, "perovdefect_read_ptu_s": t_ours,
            "read_ptu_via_ptufile_s": t_split, "analysis_s": t_analysis,
            "analysis_binned_levels_s": t_binned, "change_points_alone_s": t_cp,
            "n_change_points": int(cp.index.size), "n_levels": st.n_levels,
            "n_dwell_times": sum(d.n for d in (st.dwell_times or {}).values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, default=1e7)
    ap.add_argument("--all", action="store_true", help="pycorrelate on all photons (minutes)")
    args = ap.parse_args()
    n = int(args.photons)
    print(f"g2 of {n:.0e} photons, +-500 ns in 0.1 ns bins")
    g = bench_g2(n, args.all)
    base = g["perovdefect_numba_s"]
    print(f"  perovdefect g2 kernel          {base:8.3f} s   (all {numba_threads()} threads)")
    print(f"  ... on one thread              {g['perovdefect_one_thread_s']:8.3f} s   ratio "
          f"{g['perovdefect_one_thread_s'] / base:7.1f}x")
    print(f"  ... plain two-pointer loop     {g['plain_two_pointer_s']:8.3f} s   ratio "
          f"{g['plain_two_pointer_s'] / base:7.1f}x")
    for key, label in (("numpy_searchsorted_s", "numpy searchsorted"),
                       ("tttrlib_linear_s", "tttrlib Correlator (linear)"),
                       ("pycorrelate_s", "pycorrelate")):
        if g[key] is None:
            print(f"  {label:30s}  not installed (pip install -e .[bench])")
        else:
            note = f"  [{g['pycorrelate_note']}]" if key == "pycorrelate_s" else ""
            print(f"  {label:30s} {g[key]:8.3f} s   ratio {g[key] / base:7.1f}x{note}")
    print(f"PTU decoding and whole analysis (~{n:.0e} photons, simulated blinking particle)")
    p = bench_ptu_and_analysis(n)
    print(f"  photons {p['photons']}")
    print(f"  ptufile decode_records         {p['ptufile_decode_s']:8.3f} s")
    print(f"  perovdefect read_ptu           {p['perovdefect_read_ptu_s']:8.3f} s   ratio "
          f"{p['perovdefect_read_ptu_s'] / p['ptufile_decode_s']:5.2f}x of ptufile alone")
    print(f"  read_ptu, decoder='ptufile'    {p['read_ptu_via_ptufile_s']:8.3f} s   ratio "
          f"{p['read_ptu_via_ptufile_s'] / p['ptufile_decode_s']:5.2f}x of ptufile alone")
    print(f"  whole analysis (change points, BIC levels, decays, g2 + per level, dwell fits, "
          f"FLID) {p['analysis_s']:8.3f} s (goal <= 3 s)")
    print(f"    {p['n_change_points']} change points, {p['n_levels']} levels, "
          f"{p['n_dwell_times']} ON/OFF dwell times")
    print(f"  ... change-point search alone              {p['change_points_alone_s']:8.3f} s")
    print(f"  ... with binned mixture levels instead     {p['analysis_binned_levels_s']:8.3f} s")
    ok_numpy = g["numpy_searchsorted_s"] / base >= 5
    ok_tttr = None if g["tttrlib_linear_s"] is None else g["tttrlib_linear_s"] / base >= 30
    ok_ptu = p["perovdefect_read_ptu_s"] <= p["ptufile_decode_s"]
    print("targets: g2 >= 5x numpy: " + ("met" if ok_numpy else "NOT met")
          + "; >= 30x tttrlib: " + ("not measured (tttrlib missing)" if ok_tttr is None
                                    else "met" if ok_tttr else "NOT met")
          + "; PTU read <= ptufile alone: " + ("met" if ok_ptu else "NOT met")
          + "; analysis <= 3 s: " + ("met" if p["analysis_s"] <= 3 else "NOT met"))


def numba_threads() -> int:
    import numba
    return numba.get_num_threads()


if __name__ == "__main__":
    main()
