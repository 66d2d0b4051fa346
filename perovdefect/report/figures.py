"""Report figures from documents: the level diagram, the PL spectrum with its fit, the
formation-energy and configuration-coordinate diagrams and the predicted vs measured PL. Each
takes the typed parts of the report model (perovdefect.report.model) and nothing else."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from perovdefect.units import ev_to_nm, nm_to_ev  # noqa: E402


#: how each kind of in-gap state is drawn: colour, line style
KIND_STYLE = {"defect": ("k", "-"), "perturbed_host": ("tab:orange", "--"),
              "delocalized": ("0.6", ":")}


def level_diagram(analyses: list, pl=None,
                  experimental_gap: tuple[float, float] | None = None):
    """Host band edges (VBM at 0) and in-gap states per defect and charge (eV above the VBM),
    with a wavelength axis for transitions, the measured PL peak (centre +- FWHM/2) as a band,
    and the experimental gap as a dashed line. Localised defect states are black and solid,
    perturbed host states orange and dashed, delocalised states grey and dotted; occupied states
    carry a triangle. `analyses`: ModelAnalysis documents; `pl`: a PLReference
    (perovdefect.report.model)."""
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
        half = (pl.pl_fwhm_meV or 0.0) / 2e3  # a PL value without a width: a line
        lo, hi = pl.pl_eV - half, pl.pl_eV + half
        ax.axhspan(lo, hi if hi > lo else lo + 0.01, color="tab:green", alpha=0.35,
                   label=f"PL {pl.pl_nm:.0f} nm ({pl.pl_eV:.2f} eV) above VBM")
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
    ax.legend(fontsize=6, loc="center right", framealpha=0.85)  # the middle of the gap
    ax.set_title("host edges and in-gap states (filled: occupied; left/right: spin up/down)",
                 fontsize=8)
    fig.tight_layout()
    return fig


def pl_figure(wavelength_nm, intensity, peak, transitions_nm: list[float] | None = None):
    """Spectrum, fitted PLPeak position/width, and the computed transitions compared with it
    as vertical lines."""
    wavelength_nm = np.asarray(wavelength_nm, float)
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


def formation_figure(result):
    """Formation energy vs Fermi level (E_F from the VBM to the CBM) at each chemical-potential
    limit: every charge state as a thin line, the lower envelope bold, transition levels
    marked. `result`: a FormationResult (perovdefect.thermo.calculations)."""
    d = result.diagram
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ef = np.linspace(0.0, d.band_gap_eV, 200)
    for i, fe in enumerate(d.formation_energies):
        color = f"C{i}"
        lines = {c.charge: c.at_vbm_eV + c.charge * ef for c in fe.formation_energies}
        for q, y in lines.items():
            ax.plot(ef, y, color=color, lw=0.6, alpha=0.5)
        env = np.min(np.vstack(list(lines.values())), axis=0)
        ax.plot(ef, env, color=color, lw=2.2, label=fe.limit)
    for lvl in d.transition_levels:
        ax.axvline(lvl.level_above_vbm_eV, color="k", ls=":", lw=1)
        ax.text(lvl.level_above_vbm_eV, ax.get_ylim()[1], f"({lvl.charges[0]:+d}/"
                f"{lvl.charges[1]:+d})", ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("Fermi level above the VBM (eV)")
    ax.set_ylabel("formation energy (eV)")
    ax.set_title(f"{d.defect}: correction {result.correction}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cc_figure(lum):
    """Configuration-coordinate diagram: both surfaces' computed points and harmonic fits,
    with the absorption, emission and ZPL arrows. `lum`: a LuminescenceResult."""
    from perovdefect.optics.ccd import surface_energy
    c = lum.cc
    q = np.asarray(lum.fractions) * c.delta_q_amu05_A
    e0 = lum.ground_energies_eV[lum.fractions.index(0.0)]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    qq = np.linspace(q.min(), q.max(), 200)
    for fit, energies, color, name in ((c.ground, lum.ground_energies_eV, "tab:blue", "ground"),
                                       (c.excited, lum.excited_energies_eV, "tab:red",
                                        "excited")):
        ax.plot(q, np.asarray(energies) - e0, "o", color=color, label=f"{name} (computed)")
        ax.plot(qq, surface_energy(fit, qq) - e0, color=color, lw=1)
    ax.annotate("", xy=(0, c.e_abs_eV), xytext=(0, 0), arrowprops={"arrowstyle": "->"})
    ax.annotate("", xy=(c.delta_q_amu05_A, c.zpl_eV - c.e_em_eV),
                xytext=(c.delta_q_amu05_A, c.zpl_eV), arrowprops={"arrowstyle": "->",
                                                                  "color": "tab:green"})
    ax.set_xlabel("Q (amu$^{1/2}$ A)")
    ax.set_ylabel("energy (eV)")
    ax.set_title(f"ZPL {c.zpl_eV:.2f} eV, abs {c.e_abs_eV:.2f} eV, em {c.e_em_eV:.2f} eV, "
                 f"S_g {c.huang_rhys_ground:.1f}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pl_overlay_figure(lum, wavelength_nm=None, intensity=None, measured=None):
    """The predicted PL line shape beside the measured spectrum (both scaled to peak 1), in
    energy; the measured fit's peak and FWHM and the deviations in the title."""
    s = lum.spectrum
    fig, ax = plt.subplots(figsize=(5, 3.2))
    e = np.asarray(s.energies_eV)
    y = np.asarray(s.intensity_per_eV)
    ax.plot(e, y / y.max(), color="tab:purple", label=f"predicted ({s.temperature_K:g} K)")
    if wavelength_nm is not None and intensity is not None:
        em = nm_to_ev(np.asarray(wavelength_nm, float))
        ym = np.asarray(intensity, float)
        ax.plot(em, (ym - ym.min()) / max(np.ptp(ym), 1e-12), color="k", lw=1,
                label="measured")
    elif lum.comparison is not None:  # no spectrum given: the measured peak and FWHM as a band
        c = lum.comparison
        half = np.sort(nm_to_ev(c.measured_peak_nm + np.array([-0.5, 0.5]) * c.measured_fwhm_nm))
        ax.axvspan(*half, color="k", alpha=0.15,
                   label=f"measured {c.measured_peak_nm:.0f} nm, FWHM {c.measured_fwhm_nm:.0f} nm")
        ax.axvline(c.measured_peak_eV, color="k", lw=1)
    title = f"predicted {s.peak_eV:.2f} eV ({s.peak_nm:.0f} nm), FWHM {1e3 * s.fwhm_eV:.0f} meV"
    if lum.comparison is not None:
        c = lum.comparison
        title += (f"; vs measured: {c.peak_deviation_eV:+.2f} eV, FWHM "
                  f"{c.fwhm_deviation_meV:+.0f} meV")
    ax.set_title(title, fontsize=6)
    ax.set_xlabel("photon energy (eV)")
    ax.set_ylabel("normalised intensity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def absorption_figure(wavelength_nm, absorbance):
    """The measured absorption spectrum."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(wavelength_nm, absorbance, color="k")
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("absorbance")
    fig.tight_layout()
    return fig


def ground_state_figure(search):
    """Relaxed energy (eV, relative to the unperturbed start) against the bond distortion of
    ShakeNBreak's starts of one defect in one charge state; the other starts (Rattled, Dimer)
    as labelled points at the right; the chosen start ringed. `search`: a GroundStateSearch
    (perovdefect.thermo.ground_state)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bonds = sorted((r.bond_distortion if r.bond_distortion is not None else 0.0,
                    r.relative_energy_eV, r.distortion) for r in search.results
                   if r.relative_energy_eV is not None and (r.bond_distortion is not None
                                                            or r.distortion == "Unperturbed"))
    ax.plot([100 * b for b, _, _ in bonds], [e for _, e, _ in bonds], "o-", color="k")
    others = [r for r in search.results if r.relative_energy_eV is not None
              and r.bond_distortion is None and r.distortion != "Unperturbed"]
    right = 100 * max([b for b, _, _ in bonds] + [0.0]) + 10
    for i, r in enumerate(others):
        ax.plot([right + 10 * i], [r.relative_energy_eV], "s", color=f"C{i + 1}",
                label=r.distortion)
    chosen = next(r for r in search.results if r.distortion == search.lowest)
    x = right + 10 * others.index(chosen) if chosen in others else \
        100 * (chosen.bond_distortion or 0.0)
    ax.plot([x], [chosen.relative_energy_eV], "o", ms=14, mfc="none", color="tab:red",
            label=f"chosen: {search.lowest}")
    ax.set_xlabel("bond distortion (%)")
    ax.set_ylabel("E - E(unperturbed) (eV)")
    ax.set_title(f"{search.model or ''} {search.defect}", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def concentration_figure(th):
    """Left: the Fermi level (eV above the VBM) at each chemical-potential limit, in
    equilibrium at the synthesis temperature and frozen after the quench, inside the host's
    band edges. Right: each defect's charge states and the carriers (cm^-3, log scale) at each
    limit (filled: synthesis temperature; open, dotted: frozen). `th`: a DefectThermodynamics
    (perovdefect.thermo.documents)."""
    labels = [lim.limit for lim in th.limits]
    x = np.arange(len(labels))
    gap = th.host_dos.band_gap_eV
    quenched = th.quench_temperature_K is not None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.5, 4))
    ax.axhspan(-0.3, 0.0, color="tab:blue", alpha=0.3, label="valence band")
    ax.axhspan(gap, gap + 0.3, color="tab:red", alpha=0.3, label="conduction band")
    ax.plot(x, [lim.equilibrium.fermi_level_above_vbm_eV for lim in th.limits], "o-",
            color="k", label=f"equilibrium, {th.temperature_K:g} K")
    if quenched:
        ax.plot(x, [lim.quenched.fermi_level_above_vbm_eV for lim in th.limits], "s--",
                color="tab:green", label=f"frozen, {th.quench_temperature_K:g} K")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(-0.3, gap + 0.3)
    ax.set_ylabel("Fermi level above the VBM (eV)")
    ax.legend(fontsize=6)
    series = _concentration_series(th)
    for i, (name, eq, frozen) in enumerate(series):
        bx.plot(x, eq, "o-", color=f"C{i}", label=name)
        if quenched:
            bx.plot(x, frozen, "o:", color=f"C{i}", mfc="none")
    bx.set_yscale("log")
    positive = [v for _, eq, fr in series for v in (*eq, *fr) if v > 0]
    if positive:  # a charge state 30 decades below the largest shows as zero
        bx.set_ylim(max(min(positive), max(positive) * 1e-30) / 3, max(positive) * 3)
    bx.set_xticks(x, labels, fontsize=7)
    bx.set_ylabel("concentration (cm$^{-3}$)")
    bx.legend(fontsize=6, loc="best")
    bx.set_title("filled: synthesis; open, dotted: frozen" if quenched else
                 f"at {th.temperature_K:g} K", fontsize=8)
    fig.tight_layout()
    return fig


def _concentration_series(th) -> list[tuple[str, list[float], list[float]]]:
    """(name, concentrations at each limit at T, frozen at T2 (empty without a quench)) of
    every defect charge state, then of electrons and holes (cm^-3; NaN where absent)."""
    def at(sol, defect, q):
        return next((c.concentration_cm3 for c in sol.concentrations
                     if (c.defect, c.charge) == (defect, q)), float("nan"))
    keys = list(dict.fromkeys((c.defect, c.charge) for lim in th.limits
                              for c in lim.equilibrium.concentrations))
    sols = [(lim.equilibrium, lim.quenched) for lim in th.limits]
    out = [(f"{d} {q:+d}", [at(e, d, q) for e, _ in sols],
            [at(f, d, q) for _, f in sols if f is not None]) for d, q in keys]
    out += [(name, [getattr(e, attr) for e, _ in sols],
             [getattr(f, attr) for _, f in sols if f is not None])
            for name, attr in (("electrons n", "electrons_cm3"), ("holes p", "holes_cm3"))]
    return out
