"""Figures of a PhotonStats document (matplotlib, Agg). Each returns a Figure."""

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
    for i, lv in enumerate(stats.levels):
        ax.axhline(lv["mean_counts"], color=LEVEL_COLORS[i % 6], lw=1,
                   label=f"level {i}: {lv['mean_counts']:.0f}")
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
        tau = lv.get("decay", {}).get("tau_ns", [None])[0]
        c = np.asarray(h["counts"], float)
        if c.sum() == 0:
            continue
        label = f"level {key} ({lv['mean_counts']:.0f}/bin)" + (f", tau {tau:.2f} ns" if tau
                                                                else "")
        ax.semilogy(h["t_ns"], np.maximum(c / c.max(), 1e-4), lw=0.8,
                    color=LEVEL_COLORS[int(key) % 6], label=label)
    ax.set_xlabel("delay after sync (ns)")
    ax.set_ylabel("normalised counts")
    ax.set_xlim(0, 60)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def g2_figure(stats: PhotonStats):
    """Coincidence histogram with g2(0) and M."""
    fig, ax = plt.subplots(figsize=(6, 3))
    g = stats.g2 or {}
    ax.plot(g.get("tau_ns", []), g.get("coincidences", []), lw=0.7, color="k")
    title = "g2: "
    if g.get("g2_0") is not None:
        title += f"g2(0) = {g['g2_0']:.3f} +- {g['g2_0_err']:.3f}"
        if g.get("n_emitters"):
            title += f", M = {g['n_emitters']:.2f} +- {g['n_emitters_err']:.2f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("tau (ns)")
    ax.set_ylabel(f"coincidences / {g.get('stored_bin_ns', 1):g} ns")
    fig.tight_layout()
    return fig


def flid_figure(stats: PhotonStats):
    """Fluorescence lifetime-intensity distribution."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    f = stats.flid
    if f:
        h = np.asarray(f["histogram"], float).T
        ax.pcolormesh(f["counts_edges"], f["delay_edges_ns"], np.log1p(h), cmap="viridis")
    ax.set_xlabel(f"counts / {stats.bin_width_s * 1e3:g} ms")
    ax.set_ylabel("mean delay (ns)")
    fig.tight_layout()
    return fig


def power_series_figure(series: dict):
    """Intensity vs <N> (log-log) with the fitted exponents."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    N = np.asarray(series["excitation_N"])
    for key, fit_key, label in (("mean_counts_per_bin", "mean_intensity_fit", "mean"),
                                ("brightest_level_counts_per_bin", "brightest_level_fit",
                                 "brightest level")):
        y = np.asarray(series[key])
        fit = series[fit_key]
        ax.loglog(N, y, "o", label=f"{label}: exponent {fit['exponent']:.2f} +- "
                                   f"{fit['exponent_err']:.2f}")
        ax.loglog(N, fit["prefactor"] * N ** fit["exponent"], "-", lw=0.8)
    ax.set_xlabel("<N> (absorbed photons per pulse)")
    ax.set_ylabel("counts per bin")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def save(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
