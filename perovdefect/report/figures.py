"""Report figures from documents: the level diagram and the PL spectrum with its fit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from perovdefect.units import ev_to_nm, nm_to_ev  # noqa: E402


#: how each kind of in-gap state is drawn: colour, line style
KIND_STYLE = {"defect": ("k", "-"), "perturbed_host": ("tab:orange", "--"),
              "delocalized": ("0.6", ":")}


def level_diagram(analyses: list, pl: dict | None = None,
                  experimental_gap: tuple[float, float] | None = None):
    """Host band edges (VBM at 0) and in-gap states per defect and charge (eV above the VBM),
    with a wavelength axis for transitions, the measured PL peak (centre +- FWHM/2) as a band,
    and the experimental gap as a dashed line. Localised defect states are black and solid,
    perturbed host states orange and dashed, delocalised states grey and dotted; occupied states
    carry a triangle. `analyses`: ModelAnalysis documents."""
    columns = []
    for a in analyses:
        for label, d in a.defects.items():
            columns.append((f"{a.model or ''}\n{label}", a, d))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(columns) + 2), 4.5))
    gap_max = 0.0
    for i, (name, a, d) in enumerate(columns):
        gap = d.host_gap_eV
        gap_max = max(gap_max, gap)
        ax.fill_between([i - 0.4, i + 0.4], -0.6, 0, color="tab:blue", alpha=0.35)
        ax.fill_between([i - 0.4, i + 0.4], gap, gap + 0.6, color="tab:red", alpha=0.35)
        for s in d.in_gap_states:
            x0, x1 = (i - 0.35, i - 0.02) if s.spin == 0 else (i + 0.02, i + 0.35)
            color, ls = KIND_STYLE[s.kind]
            ax.plot([x0, x1], [s.energy_above_vbm_eV] * 2, color=color, ls=ls,
                    lw=2.5 if s.kind == "defect" else 1.5)
            if s.occupation > 0.5:
                ax.plot((x0 + x1) / 2, s.energy_above_vbm_eV, marker="^", color=color, ms=5)
        ax.text(i, -0.55, f"{d.host_functional}{'+SOC' if d.soc else ''}",
                ha="center", va="bottom", fontsize=7)
    for kind, (color, ls) in KIND_STYLE.items():
        ax.plot([], [], color=color, ls=ls, label=kind.replace("_", " ") + " state")
    if pl:
        half = (pl.get("pl_fwhm_meV") or 0.0) / 2e3  # a PL value without a width: a line
        lo, hi = pl["pl_eV"] - half, pl["pl_eV"] + half
        ax.axhspan(lo, hi if hi > lo else lo + 0.01, color="tab:green", alpha=0.35,
                   label=f"PL {pl['pl_nm']:.0f} nm ({pl['pl_eV']:.2f} eV) above VBM")
    if experimental_gap:
        ax.axhline(experimental_gap[0], ls="--", color="tab:red", lw=1,
                   label=f"experimental gap {experimental_gap[0]:.2f} eV")
    ax.set_xticks(range(len(columns)), [c[0] for c in columns], fontsize=7)
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(-0.6, max(gap_max, experimental_gap[0] if experimental_gap else 0) + 0.6)
    ax.set_ylabel("energy above host VBM (eV)")
    sec = ax.secondary_yaxis("right", functions=(lambda e: ev_to_nm(np.clip(e, 0.3, None)),
                                                 lambda nm: nm_to_ev(np.clip(nm, 50, None))))
    sec.set_ticks([350, 400, 450, 500, 550, 600, 700, 800, 1000, 1500, 3000])
    sec.set_ylabel("transition to VBM (nm)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("host edges and in-gap states (filled: occupied; left/right: spin up/down)",
                 fontsize=8)
    fig.tight_layout()
    return fig


def pl_figure(wavelength_nm: np.ndarray, intensity: np.ndarray, peak,
              transitions_nm: list[float] | None = None):
    """Spectrum, fitted PLPeak position/width, and the computed transitions compared with it
    as vertical lines."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(wavelength_nm, intensity, color="k", lw=1, label="PL spectrum")
    c, w = peak.center_nm, peak.fwhm_nm
    ax.axvspan(c - w / 2, c + w / 2, color="tab:green", alpha=0.25,
               label=f"fit: {c:.1f} nm, FWHM {w:.1f} nm ({peak.fwhm_meV:.0f} meV)")
    for t in transitions_nm or []:
        if wavelength_nm.min() <= t <= wavelength_nm.max():
            ax.axvline(t, color="tab:purple", ls=":", lw=1.2)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("intensity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
