"""Draw the report's figures and render the model: HTML (Jinja2 template, autoescaped), JSON
(the model itself), PDF (the figures, matplotlib PdfPages) and PNG files."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from perovdefect.report.model import ReportModel
from perovdefect.report.population import population_figures, population_section


def png(fig) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def draw_figures(model: ReportModel, inputs) -> dict[str, bytes]:
    """name -> PNG bytes for every figure the model calls for."""
    from perovdefect.photons.figures import power_series_figure
    from perovdefect.report.figures import (cc_figure, formation_figure, level_diagram,
                                            pl_figure, pl_overlay_figure)
    figs: dict[str, bytes] = {}  # each figure is rendered and closed as soon as it is drawn
    if inputs.analyses:
        exp = model.reference["experimental_gap"]
        figs["level_diagram.png"] = png(level_diagram(inputs.analyses, model.pl_reference,
                                                      (exp[0], exp[1])))
    if inputs.pl is not None:
        wl, y, peak = inputs.pl
        compared = [s.transition_nm for s in model.in_gap_states if s.compared_with_pl]
        figs["pl_spectrum.png"] = png(pl_figure(wl, y, peak, compared))
    if inputs.absorption is not None:
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(*inputs.absorption, color="k")
        ax.set_xlabel("wavelength (nm)")
        ax.set_ylabel("absorbance")
        fig.tight_layout()
        figs["absorption.png"] = png(fig)
    for i, st in enumerate(inputs.photon_stats):
        for name, maker in particle_figures(st).items():
            fig = maker(st)
            if fig is not None:
                figs[f"particle{i}_{name}.png"] = png(fig)
    for i, f in enumerate(inputs.formation):
        figs[f"formation{i}.png"] = png(formation_figure(f))
    for i, lum in enumerate(inputs.luminescence):
        figs[f"cc{i}.png"] = png(cc_figure(lum))
        wl, y = (inputs.pl[0], inputs.pl[1]) if inputs.pl is not None else (None, None)
        figs[f"pl_overlay{i}.png"] = png(pl_overlay_figure(lum, wl, y))
    if inputs.power_series:
        figs["power_series.png"] = png(power_series_figure(inputs.power_series))
    figs.update(population_figures(model.population))
    return figs


def particle_figures(st) -> dict[str, Any]:
    """Figure makers for one particle (name -> function of the PhotonStats)."""
    from perovdefect.photons import figures as pf
    out: dict[str, Any] = {"trace": pf.trace_figure}
    if st.decay_histograms:
        out.update(decays=pf.decay_figure, flid=pf.flid_figure)
    if st.g2:
        out["g2"] = pf.g2_figure
    out["dwell"] = pf.dwell_time_figure  # None (no figure) without dwell times
    return out


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, dict):
        return json.dumps(x)
    return str(x)


def _headline_rows(m: ReportModel) -> list[list]:
    """The predicted emission first: peak, width and radiative lifetime against the measured."""
    e = m.emission
    if e is None:
        return []
    where = f"{e.structure}, {e.model}" + (f" {e.n_atoms} atoms" if e.n_atoms else "")
    rows: list[list] = [[f"PREDICTED PL peak (total-energy DeltaSCF, relaxed; {where}) (nm)",
                         e.predicted_peak_nm,
                         f"{e.predicted_peak_eV:.3f} eV; measured "
                         + (f"{e.measured_peak_nm:.1f} nm ({e.peak_deviation_nm:+.1f} nm)"
                            if e.measured_peak_nm else "not given")],
                        ["PREDICTED PL FWHM (nm)", e.predicted_fwhm_nm,
                         f"measured {e.measured_fwhm_nm:.1f} nm" if e.measured_fwhm_nm
                         else "measured: not given"]]
    if e.radiative_lifetime_ns is not None:
        ratios = "; ".join(f"{k}: measured {t.tau_ns:.2f} ns, ratio {e.lifetime_ratios[k]:.3g}"
                           for t in e.measured_lifetimes for k in [t.level])
        rows.append(["PREDICTED radiative lifetime (ns)", e.radiative_lifetime_ns,
                     f"{e.lifetime_note}; {ratios or 'no measured lifetimes given'}"])
    rows.append(["origin of the prediction", e.origin, "; ".join(e.limitations)])
    return rows


def _model_size(lum: dict) -> str:
    if lum.get("model") == "periodic":
        return f"crystal, {lum.get('n_atoms')} atoms"
    return "isolated cluster"


def _summary_rows(m: ReportModel) -> list[list]:
    rows: list[list] = _headline_rows(m)
    for g in m.host_gaps:
        rows.append([f"host gap ({g.model}, {g.level})", g.gap_eV,
                     f"experiment {g.experimental_gap_eV} eV"])
    for s in m.in_gap_states:
        if s.compared_with_pl:
            rows.append([f"Kohn-Sham screen (a level, not an emission energy): {s.defect} "
                         f"(spin {s.spin}) above the VBM",
                         s.energy_above_vbm_eV, f"{s.transition_nm:.0f} nm"])
    if m.pl_reference:
        rows.append(["measured PL peak (eV)", m.pl_reference["pl_eV"],
                     f"{m.pl_reference['pl_nm']:.1f} nm"])
    for i, p in enumerate(m.particles):
        if p.get("g2_0") is not None:
            rows.append([f"particle {i}: g2(0)", p["g2_0"],
                         f"M = {p['n_emitters']:.2f} +- {p['n_emitters_err']:.2f}"
                         if p.get("n_emitters") else "M undefined (g2(0) >= 1)"])
        if p.get("levels_g2_agree") is not None:
            rows.append([f"particle {i}: emitters from levels vs g2",
                         p.get("emitters_from_levels"),
                         "agree" if p["levels_g2_agree"] else "DISAGREE"])
    if m.power_series:
        fit = m.power_series["mean_intensity_fit"]
        rows.append(["power-law exponent", fit["exponent"], fit["regime"]])
    for f in m.formation:
        for t in f["transition_levels"]:
            rows.append([f"{f['defect']} eps({t['charges'][0]:+d}/{t['charges'][1]:+d}) above "
                         "VBM (eV)", t["level_above_vbm_eV"], f"correction {f['correction']}"])
    for lum in m.luminescence:
        rows.append([f"predicted PL peak, {lum['structure']} (eV)", lum["predicted_pl_peak_eV"],
                     f"{lum['predicted_pl_peak_nm']:.1f} nm, FWHM "
                     f"{lum['predicted_pl_fwhm_nm']:.1f} nm"])
        if "comparison" in lum:
            c = lum["comparison"]
            rows.append(["predicted minus measured PL peak (eV)", c["peak_deviation_eV"],
                         f"{c['peak_deviation_nm']:+.1f} nm; FWHM "
                         f"{c['fwhm_deviation_nm']:+.1f} nm"])
    return rows


def render_html(model: ReportModel, figures: dict[str, bytes], inputs) -> str:
    env = Environment(loader=PackageLoader("perovdefect.report", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["fmt"] = _fmt
    b64 = {name: base64.b64encode(data).decode() for name, data in figures.items()}
    particles = []
    for i, (st, summary, levels) in enumerate(zip(inputs.photon_stats, model.particles,
                                                  model.particle_levels)):
        lines = []
        if summary.get("g2_interpretation"):
            lines.append(f"g2(0) read as: {summary['g2_interpretation']}")
        if summary.get("levels_g2_agree") is not None:
            lines.append(f"emitters from the intensity levels: "
                         f"{summary.get('emitters_from_levels')}; from g2: "
                         f"{_fmt(summary.get('n_emitters'), 2)} -> "
                         f"{'they agree' if summary['levels_g2_agree'] else 'they DISAGREE'}")
        particles.append({
            "name": Path(st.source).name, "summary": summary, "lines": lines,
            "level_rows": [[r.get("level"), r.get("counts_per_bin"), r.get("fraction"),
                            r.get("tau_ns"), r.get("photons"), r.get("kind")] for r in levels],
            "figures": [f"particle{i}_{n}.png" for n in particle_figures(st)
                        if f"particle{i}_{n}.png" in figures]})
    ps = model.power_series or {}
    power_rows = [list(r) for r in zip(ps.get("excitation_N", []),
                                       ps.get("mean_counts_per_bin", []),
                                       ps.get("brightest_level_counts_per_bin", []),
                                       ps.get("brightest_level_tau_ns", []))]
    calc_rows = [[s.get("model"), s.get("label"), s.get("step"), s.get("code"),
                  s.get("functional"), s.get("soc"), s.get("converged"), s.get("gap_eV"),
                  s.get("state")] for s in inputs.steps]
    return env.get_template("report.html.j2").render(
        m=model, figures=b64, summary_rows=_summary_rows(model),
        gap_rows=[[g.model, g.level, g.gap_eV, g.experimental_gap_eV,
                   g.gap_minus_experiment_eV, g.hse06_soc_corrected_eV]
                  for g in model.host_gaps],
        state_rows=[[s.model, s.defect, s.charge, s.spin, s.kind, s.energy_above_vbm_eV,
                     s.occupation, s.transition_eV, s.transition_nm, s.compared_with_pl,
                     s.deviation_from_pl_eV, s.ipr, s.character, s.basis]
                    for s in model.in_gap_states],
        particles=particles, power_rows=power_rows, calc_rows=calc_rows,
        formation_rows=[[f["defect"], lim, q, e] for f in model.formation
                        for lim, per_q in f["formation_energies_at_vbm_eV"].items()
                        for q, e in per_q.items()],
        level_rows=[[f["defect"], f"{t['charges'][0]:+d}/{t['charges'][1]:+d}",
                     t["level_above_vbm_eV"], "inside" if t in f["transition_levels"] else
                     "outside"] for f in model.formation
                    for t in f["transition_levels"] + f["levels_outside_gap"]],
        lum_rows=[[lum["structure"], _model_size(lum), lum["level_of_theory"], lum["zpl_eV"],
                   lum["absorption_eV"], lum["emission_eV"], lum["delta_q_amu05_A"],
                   lum["hbar_omega_ground_meV"], lum["huang_rhys_ground"],
                   lum["predicted_pl_peak_nm"], lum["predicted_pl_fwhm_nm"],
                   lum.get("radiative_lifetime_ns")] for lum in model.luminescence],
        settings_rows=[[k, v] for k, v in model.provenance.calculations.items()],
        population=population_section(model.population))


def write_pdf(path: Path, figures: dict[str, bytes]) -> None:
    """One page per figure."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    with PdfPages(path) as pdf:
        for data in figures.values():
            img = mpimg.imread(io.BytesIO(data), format="png")
            fig = plt.figure(figsize=(img.shape[1] / 110, img.shape[0] / 110))
            fig.figimage(img)
            pdf.savefig(fig)
            plt.close(fig)
