"""Figures of a PhotonStats document (matplotlib, Agg). Each returns a Figure (dwell_time_figure:
None when the document has no dwell times)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from perovdefect.photons.stats import PhotonStats  # noqa: E402

LEVEL_COLORS = ["0.6", "tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple"]


def trace_figure(stats: PhotonStats, max_seconds: float | None = None):
    """Blinking trace (counts per bin) with the level boundaries, and the intensity histogram."""
    counts = np.asarray(stats.trace_counts)
    t = np.arange(counts.size) * stats.bin_width_s
    if max_seconds:
        keep = t < max_seconds
        t, counts = t[keep], counts[keep]
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(9, 3), sharey=True,
                                  gridspec_kw={"width_ratios": [4, 1]})
    ax.plot(t, counts, lw=0.5, color="k")
    t_end = t[-1] + stats.bin_width_s if t.size else 0.0
    segs = [sg for sg in stats.segments if sg.start_s < t_end]
    if segs:  # change-point segments as a step line (rate in counts per bin)
        xs = np.ravel([[sg.start_s, min(sg.stop_s, t_end)] for sg in segs])
        ys = np.repeat([sg.rate_cps * stats.bin_width_s for sg in segs], 2)
        ax.plot(xs, ys, lw=0.8, color="tab:red", alpha=0.8, label="change-point segments")
    for i, lv in enumerate(stats.levels):
        ax.axhline(lv.mean_counts_per_bin, color=LEVEL_COLORS[i % 6], lw=1, ls="--",
                   label=f"level {i} ({lv.kind}): {lv.mean_counts_per_bin:.0f}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts / {stats.bin_width_s * 1e3:g} ms")
    ax.legend(fontsize=7, loc="upper right")
    axh.hist(counts, bins=min(80, max(10, int(counts.max()) + 1)), orientation="horizontal",
             color="0.3")
    axh.set_xlabel("bins")
    fig.tight_layout()
    return fig


def decay_figure(stats: PhotonStats):
    """Decay histogram per level (log scale) with the fitted lifetime in the legend."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, h in stats.decay_histograms.items():
        if key == "all":
            continue
        lv = stats.levels[int(key)]
        tau = lv.tau_ns
        c = np.asarray(h.counts, float)
        if c.sum() == 0:
            continue
        label = f"level {key} ({lv.mean_counts_per_bin:.0f}/bin)" + (
            f", tau {tau:.2f} ns" if tau else "")
        ax.semilogy(h.t_ns, np.maximum(c / c.max(), 1e-4), lw=0.8,
                    color=LEVEL_COLORS[int(key) % 6], label=label)
    ax.set_xlabel("delay after sync (ns)")
    ax.set_ylabel("normalised counts")
    ax.set_xlim(0, 60)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def g2_figure(stats: PhotonStats):
    """Coincidence histogram with g2(0) and M."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    g = stats.g2
    if g is not None:
        ax.plot(g.tau_ns, g.coincidences, lw=0.7, color="k")
    title = "g2: "
    if g is not None and g.g2_0 is not None:
        title += f"g2(0) = {g.g2_0:.3f} +- {g.g2_0_err or 0:.3f}"
        if g.n_emitters:
            title += f", M = {g.n_emitters:.2f} +- {g.n_emitters_err or 0:.2f}"
        if g.bx_x_ratio is not None:
            title += f", BX/X = {g.bx_x_ratio:.3f} +- {g.bx_x_ratio_err or 0:.3f}"
    ax.set_title(title, fontsize=8)
    if g is not None and g.interpretation:
        ax.text(0.01, 0.97, g.interpretation[:110], transform=ax.transAxes, fontsize=6,
                va="top")
    ax.set_xlabel("tau (ns)")
    ax.set_ylabel(f"coincidences / {(g.stored_bin_ns if g else None) or 1:g} ns")
    fig.tight_layout()
    return fig


def flid_figure(stats: PhotonStats):
    """Fluorescence lifetime-intensity distribution."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    f = stats.flid
    if f:
        h = np.asarray(f.histogram, float).T
        ax.pcolormesh(f.counts_edges, f.delay_edges_ns, np.log1p(h), cmap="viridis")
    pts = [(sg.rate_cps * stats.bin_width_s, sg.mean_delay_ns, sg.photons)
           for sg in stats.segments if sg.mean_delay_ns is not None]
    if pts:  # change-point segments: intensity and mean delay from each segment's photons
        x, y, n = (np.asarray(v, float) for v in zip(*pts))
        ax.scatter(x, y, s=np.clip(n / n.max() * 30, 2, 30), facecolors="none",
                   edgecolors="w", linewidths=0.5, label="segments")
        ax.legend(fontsize=6, loc="upper left")
    ax.set_xlabel(f"counts / {stats.bin_width_s * 1e3:g} ms")
    ax.set_ylabel("mean delay (ns)")
    fig.tight_layout()
    return fig


def dwell_time_figure(stats: PhotonStats):
    """ON and OFF dwell-time densities on log-binned axes with the power-law (and truncated
    power-law) fits; None when the document has no dwell times."""
    from perovdefect.photons.analysis.dwell import log_binned_density
    dw = stats.dwell_times or {}
    if not any(d.dwell_s for d in dw.values()):
        return None
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for key, color in (("on", "tab:blue"), ("off", "tab:gray")):
        d = dw.get(key)
        if d is None or not d.dwell_s:
            continue
        x = np.asarray(d.dwell_s)
        c, dens = log_binned_density(x)
        ok = dens > 0
        label = f"{key.upper()} ({d.n})"
        if d.alpha is not None:
            label += f": alpha {d.alpha:.2f} +- {d.alpha_err or 0:.2f}"
        ax.loglog(c[ok], dens[ok], "o", ms=3, color=color, label=label)
        if d.alpha is not None and d.t_min_s:
            frac = (d.n_tail or x.size) / x.size
            tt = np.logspace(np.log10(d.t_min_s), np.log10(x.max()), 50)
            ax.loglog(tt, frac * (d.alpha - 1) / d.t_min_s * (tt / d.t_min_s) ** -d.alpha,
                      "-", lw=0.8, color=color)
    ax.set_xlabel("dwell time (s)")
    ax.set_ylabel("probability density (1/s)")
    ax.set_title(stats.dwell_rule or "", fontsize=6)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def power_series_figure(series):
    """Intensity vs <N> (log-log) with the fitted exponents and, when the recordings had two
    detectors, g2(0) vs <N> beside it (power-resolved g2). `series`: a PowerSeries or its
    dict."""
    g2 = [np.nan if g is None else g for g in (series.get("g2_0") or [])]
    has_g2 = bool(g2) and np.isfinite(g2).any()
    fig, axes = plt.subplots(1, 2 if has_g2 else 1, figsize=(8.5 if has_g2 else 4.5, 3.5))
    ax = axes[0] if has_g2 else axes
    N = np.asarray(series["excitation_N"])
    for key, fit_key, label in (("mean_counts_per_bin", "mean_intensity_fit", "mean"),
                                ("brightest_level_counts_per_bin", "brightest_level_fit",
                                 "brightest level")):
        y = np.asarray(series[key])
        fit = series[fit_key]
        ax.loglog(N, y, "o", label=f"{label}: exponent {fit['exponent']:.2f} +- "
                                   f"{fit['exponent_err'] or 0:.2f}")
        ax.loglog(N, fit["prefactor"] * N ** fit["exponent"], "-", lw=0.8)
    ax.set_xlabel("<N> (absorbed photons per pulse)")
    ax.set_ylabel("counts per bin")
    ax.legend(fontsize=7)
    if has_g2:
        err = [np.nan if e is None else e for e in (series.get("g2_0_err") or [None] * len(g2))]
        axes[1].errorbar(N, g2, yerr=err, fmt="o", color="k", label="g2(0)")
        for m in (1, 2, 3, 4):
            axes[1].axhline(1 - 1 / m, color="0.7", lw=0.6, ls=":")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("<N> (absorbed photons per pulse)")
        axes[1].set_ylabel("g2(0)  (dotted: 1 - 1/M, M = 1..4)")
    fig.tight_layout()
    return fig


def save(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


def population_figure(doc):
    """A PopulationStats at a glance: g2(0) and M histograms, lifetimes per level, ON/OFF
    dwell exponents, intensity vs lifetime per level, and the fractions with binomial errors."""
    rows = doc.particles
    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    (a_g2, a_m, a_tau), (a_alpha, a_it, a_fr) = axes

    def hist(ax, values, label, bins=20):
        vals = [v for v in values if v is not None and np.isfinite(v)]
        if vals:
            ax.hist(vals, bins=bins, color="0.4")
        ax.set_xlabel(label)
        ax.set_ylabel("particles")
    hist(a_g2, [r.g2_0 for r in rows], "g2(0) at the lowest <N>")
    hist(a_m, [r.n_emitters for r in rows], "M = 1/(1 - g2(0))")
    taus = [lv.tau_ns for r in rows for lv in r.levels if lv.kind == "emitting"]
    hist(a_tau, taus, "lifetime per emitting level (ns)", bins=30)
    a_tau.set_ylabel("levels")
    for key, color in (("alpha_on", "tab:blue"), ("alpha_off", "tab:red")):
        vals = [getattr(r, key) for r in rows if getattr(r, key) is not None]
        if vals:
            a_alpha.hist(vals, bins=15, alpha=0.6, color=color, label=key)
    a_alpha.set_xlabel("dwell-time exponent")
    if a_alpha.get_legend_handles_labels()[1]:  # no dwell exponents: no legend
        a_alpha.legend(fontsize=7)
    pts = [(lv.counts_per_bin, lv.tau_ns) for r in rows for lv in r.levels
           if lv.kind == "emitting" and lv.tau_ns is not None]
    if pts:
        a_it.scatter(*zip(*pts), s=8, color="k")
    a_it.set_xlabel("level intensity (counts/bin)")
    a_it.set_ylabel("level lifetime (ns)")
    names = list(doc.fractions)
    f = [doc.fractions[n].fraction or 0.0 for n in names]
    e = [doc.fractions[n].fraction_err or 0.0 for n in names]
    a_fr.bar(range(len(names)), f, yerr=e, color="0.5", capsize=3)
    a_fr.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
    a_fr.set_ylabel("fraction of particles")
    a_fr.set_ylim(0, 1)
    fig.tight_layout()
    return fig
