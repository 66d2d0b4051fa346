"""Draw the report's figures and render the model: HTML (Jinja2 template, autoescaped), JSON
(the model itself), PDF (the figures, matplotlib PdfPages) and PNG files. Everything here reads
the ReportModel alone, so report.json rebuilds the same report."""

from __future__ import annotations

import base64
import io
import json
from functools import partial
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, PackageLoader, select_autoescape

from perovdefect.report.candidates import candidate_view
from perovdefect.report.concentrations import concentration_view
from perovdefect.report.model import ReportModel
from perovdefect.report.population import FIGURE as POPULATION_FIGURE
from perovdefect.report.population import population_section


def png(fig) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def figure_makers(model: ReportModel) -> dict[str, Callable[[], Any]]:
    """name -> a function drawing that figure from the model alone (a matplotlib Figure, or
    None where the data hold nothing to draw), for every figure the model calls for."""
    from perovdefect.photons.figures import population_figure, power_series_figure
    from perovdefect.report import figures as rf
    makers: dict[str, Callable[[], Any]] = {}
    if model.analyses:
        gap = model.reference.experimental_gap
        makers["level_diagram.png"] = lambda: rf.level_diagram(
            model.analyses, model.pl_reference, (gap.low_eV, gap.high_eV))
    if model.pl is not None:
        compared = [s.transition_nm for s in model.in_gap_states if s.compared_with_pl]
        makers["pl_spectrum.png"] = lambda: rf.pl_figure(
            model.pl.spectrum.wavelength_nm, model.pl.spectrum.values, model.pl.peak, compared)
    if model.absorption is not None:
        makers["absorption.png"] = lambda: rf.absorption_figure(
            model.absorption.wavelength_nm, model.absorption.values)
    for i, st in enumerate(model.photon_stats):
        for name, maker in particle_figures(st).items():
            makers[f"particle{i}_{name}.png"] = partial(maker, st)
    for i, f in enumerate(model.formation):
        makers[f"formation{i}.png"] = partial(rf.formation_figure, f)
    for i, gs in enumerate(model.ground_states):
        makers[f"ground_state{i}.png"] = partial(rf.ground_state_figure, gs)
    for i, c in enumerate(model.concentrations):
        if c.result is not None:
            makers[f"concentrations{i}.png"] = partial(rf.concentration_figure, c.result)
    measured = model.pl.spectrum if model.pl is not None else None
    for i, lum in enumerate(model.luminescence):
        makers[f"cc{i}.png"] = partial(rf.cc_figure, lum)
        makers[f"pl_overlay{i}.png"] = partial(
            rf.pl_overlay_figure, lum, measured and measured.wavelength_nm,
            measured and measured.values)
    if model.power_series is not None:
        makers["power_series.png"] = partial(power_series_figure, model.power_series)
    if model.population is not None:
        makers[POPULATION_FIGURE] = partial(population_figure, model.population)
    return makers


def draw_figures(model: ReportModel, data: dict[str, Any] | None = None) -> dict[str, bytes]:
    """name -> PNG bytes for every figure the model calls for, drawn from the model alone;
    `data`, when given, receives name -> the data each figure draws (report.figdata)."""
    from perovdefect.report.figdata import figure_data
    figs: dict[str, bytes] = {}  # each figure is rendered and closed as soon as it is drawn
    for name, make in figure_makers(model).items():
        fig = make()
        if fig is None:
            continue
        if data is not None:
            data[name] = figure_data(fig)
        figs[name] = png(fig)
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
    if e.hybrid_peak_nm is not None:
        rows.append(["PREDICTED PL peak, hybrid single points (nm)", e.hybrid_peak_nm,
                     e.hybrid_note])
    if e.radiative_lifetime_ns is not None:
        ratios = "; ".join(f"{k}: measured {t.tau_ns:.2f} ns, ratio {e.lifetime_ratios[k]:.3g}"
                           for t in e.measured_lifetimes for k in [t.level])
        rows.append(["PREDICTED radiative lifetime (ns)", e.radiative_lifetime_ns,
                     f"{e.lifetime_note}; {ratios or 'no measured lifetimes given'}"])
    rows.append(["origin of the prediction", e.origin, "; ".join(e.limitations)])
    return rows


def _model_size(lum) -> str:
    if lum.model == "periodic":
        return f"crystal, {lum.n_atoms} atoms"
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
        rows.append(["measured PL peak (eV)", m.pl_reference.pl_eV,
                     f"{m.pl_reference.pl_nm:.1f} nm"])
    for i, p in enumerate(m.particles):
        if p.g2_0 is not None:
            rows.append([f"particle {i}: g2(0)", p.g2_0,
                         f"M = {p.n_emitters:.2f} +- {p.n_emitters_err:.2f}"
                         if p.n_emitters else "M undefined (g2(0) >= 1)"])
        if p.levels_g2_agree is not None:
            rows.append([f"particle {i}: emitters from levels vs g2", p.emitters_from_levels,
                         "agree" if p.levels_g2_agree else "DISAGREE"])
    if m.power_series:
        fit = m.power_series.mean_intensity_fit
        rows.append(["power-law exponent", fit.exponent, fit.regime])
    for f in m.formation:
        for t in f.diagram.transition_levels:
            rows.append([f"{f.diagram.defect} eps({t.charges[0]:+d}/{t.charges[1]:+d}) above "
                         "VBM (eV)", t.level_above_vbm_eV, f"correction {f.correction}"])
    for lum in m.luminescence:
        s = lum.spectrum
        rows.append([f"predicted PL peak, {lum.structure} (eV)", s.peak_eV,
                     f"{s.peak_nm:.1f} nm, FWHM {s.fwhm_nm:.1f} nm"])
        if lum.comparison is not None:
            c = lum.comparison
            rows.append(["predicted minus measured PL peak (eV)", c.peak_deviation_eV,
                         f"{c.peak_deviation_nm:+.1f} nm; FWHM "
                         f"{c.fwhm_deviation_nm:+.1f} nm"])
    return rows


def _particle_sections(m: ReportModel, figures: dict[str, bytes]) -> list[dict[str, Any]]:
    """What the template shows of each particle: its summary, lines, levels, figures."""
    out = []
    for i, (st, p, levels) in enumerate(zip(m.photon_stats, m.particles, m.particle_levels)):
        lines = []
        if p.g2_interpretation:
            lines.append(f"g2(0) read as: {p.g2_interpretation}")
        if p.levels_g2_agree is not None:
            lines.append(f"emitters from the intensity levels: {p.emitters_from_levels}; "
                         f"from g2: {_fmt(p.n_emitters, 2)} -> "
                         f"{'they agree' if p.levels_g2_agree else 'they DISAGREE'}")
        out.append({
            "name": Path(st.source).name, "summary": p, "lines": lines,
            "level_rows": [[r.level, r.counts_per_bin, r.fraction, r.tau_ns, r.photons, r.kind]
                           for r in levels],
            "figures": [f"particle{i}_{n}.png" for n in particle_figures(st)
                        if f"particle{i}_{n}.png" in figures]})
    return out


THEORY_HEADER = ["run", "code", "functional", "exact exchange", "screening (1/A)",
                 "cutoff (eV)", "basis", "potentials", "k-points", "grid spacing (A)",
                 "grid points", "smearing", "further inputs", "source"]


def _kpoints_text(k) -> str | None:
    if k is None:
        return None
    if k.mesh is not None:
        text = "x".join(str(n) for n in k.mesh)
        return text + (f" shifted {k.shift}" if k.shift and any(k.shift) else "")
    if k.explicit_frac is not None:
        return f"{len(k.explicit_frac)} listed"
    return None if k.density_inv_A is None else f"density {k.density_inv_A:g} /A"


def _theory_rows(m: ReportModel) -> list[list]:
    """One row per calculation: the level of theory it ran at (THEORY_HEADER)."""
    rows = []
    for c in m.provenance.calculations:
        t = c.theory
        if t is None:
            rows.append([c.run, c.note or "not recorded (a result written before levels of "
                         "theory were)"] + [None] * (len(THEORY_HEADER) - 3) + [c.source])
            continue
        rows.append([
            c.run, t.code, f"{t.functional}{'+SOC' if t.soc else ''}", t.exact_exchange_fraction,
            t.screening_inv_A, t.cutoff_eV, t.basis_set,
            "; ".join(p.label() + (f" ({p.checksum})" if p.checksum else "")
                      for p in t.potentials) if t.potentials else None,
            _kpoints_text(t.kpoints), t.grid_spacing_A,
            "x".join(map(str, t.grid_points)) if t.grid_points else None,
            f"{t.smearing} {t.smearing_width_eV:g} eV" if t.smearing_width_eV is not None
            else t.smearing,
            "; ".join(f"{k}={v}" for k, v in sorted(t.code_tags.items())) or None, c.source])
    return rows


def _formation_rows(m: ReportModel) -> tuple[list[list], list[list]]:
    """(E_f at the VBM per defect, limit and charge; transition levels in and outside the
    gap)."""
    energies = [[f.diagram.defect, fe.limit, c.charge, c.at_vbm_eV] for f in m.formation
                for fe in f.diagram.formation_energies for c in fe.formation_energies]
    levels = [[f.diagram.defect, f"{t.charges[0]:+d}/{t.charges[1]:+d}", t.level_above_vbm_eV,
               where] for f in m.formation
              for where, group in (("inside", f.diagram.transition_levels),
                                   ("outside", f.diagram.levels_outside_gap)) for t in group]
    return energies, levels


def render_html(model: ReportModel, figures: dict[str, bytes]) -> str:
    """The report page, from the model and its figures alone."""
    env = Environment(loader=PackageLoader("perovdefect.report", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["fmt"] = _fmt
    b64 = {name: base64.b64encode(data).decode() for name, data in figures.items()}
    ps = model.power_series
    power_rows = [] if ps is None else [list(r) for r in zip(
        ps.excitation_N, ps.mean_counts_per_bin, ps.brightest_level_counts_per_bin,
        ps.brightest_level_tau_ns)]
    calc_rows = [[s.model, s.label, s.step, s.code, s.functional, s.soc, s.converged, s.gap_eV,
                  s.state] for s in model.steps]
    formation_rows, level_rows = _formation_rows(model)
    return env.get_template("report.html.j2").render(
        m=model, figures=b64, summary_rows=_summary_rows(model),
        gap_rows=[[g.model, g.level, g.gap_eV, g.experimental_gap_eV,
                   g.gap_minus_experiment_eV, g.hse06_soc_corrected_eV]
                  for g in model.host_gaps],
        state_rows=[[s.model, s.defect, s.charge, s.spin, s.kind, s.energy_above_vbm_eV,
                     s.occupation, s.transition_eV, s.transition_nm, s.compared_with_pl,
                     s.deviation_from_pl_eV, s.ipr, s.character, s.basis]
                    for s in model.in_gap_states],
        particles=_particle_sections(model, figures), power_rows=power_rows,
        calc_rows=calc_rows, formation_rows=formation_rows, level_rows=level_rows,
        lum_rows=[[lum.structure, _model_size(lum), lum.level_of_theory, lum.cc.zpl_eV,
                   lum.cc.e_abs_eV, lum.cc.e_em_eV, lum.cc.delta_q_amu05_A,
                   lum.cc.ground.hbar_omega_meV, lum.cc.huang_rhys_ground,
                   lum.spectrum.peak_nm, lum.spectrum.fwhm_nm,
                   lum.radiative.radiative_lifetime_ns if lum.radiative else None]
                  for lum in model.luminescence],
        theory_header=THEORY_HEADER, theory_rows=_theory_rows(model),
        population=population_section(model.population),
        concentrations=concentration_view(model.concentrations),
        candidates=candidate_view(model.candidates),
        gs_rows=[[[r.distortion, r.bond_distortion, r.relative_energy_eV,
                   r.reconstruction or "", r.converged] for r in gs.results]
                 for gs in model.ground_states])


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
