"""The joint theory-experiment report: one self-contained HTML file (figures embedded as PNG
data URIs, no scripts, opens offline), the figures as PNG, the numbers as JSON, and a PDF of
the figures (matplotlib PdfPages). Text from input files is HTML-escaped."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import ReportError
from perovdefect.photons.stats import PhotonStats

PACKAGES = ("perovdefect", "gpaw", "ase", "pymatgen", "spglib", "FireWorks", "custodian",
            "ptufile", "numpy", "scipy", "matplotlib")
SECTIONS = ("summary", "levels", "pl", "photons", "power-series", "provenance")


@dataclass
class ReportInputs:
    """Everything the report shows. analyses/steps: campaign results (collect); photon_stats:
    one PhotonStats per particle or recording; pl: (wavelength_nm, intensity, fitted peak)."""

    analyses: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    photon_stats: list[PhotonStats] = field(default_factory=list)
    power_series: dict | None = None
    pl: tuple[np.ndarray, np.ndarray, dict] | None = None
    absorption: tuple[np.ndarray, np.ndarray] | None = None
    input_files: list[Path] = field(default_factory=list)
    compound: str = "Cs4PbBr6"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def load_campaign_results(source: str | Path) -> dict:
    """Campaign results from a project folder (embedded LaunchPad), a `campaign collect` JSON,
    or a MongoDB my_launchpad.yaml."""
    from perovdefect.workflows.campaign import collect
    path = Path(source)
    if not path.exists():
        raise ReportError(f"{path}: no such campaign folder, results JSON or LaunchPad file")
    if path.is_dir():
        if not (path / "launchpad_store.json").is_file():
            raise ReportError(f"{path}: not a perovdefect project folder (no "
                              "launchpad_store.json)")
        return collect(path)
    if path.suffix in (".yaml", ".yml"):
        return collect(launchpad_file=path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not a campaign results JSON ({exc})") from exc
    if not isinstance(data, dict) or "steps" not in data or "analyses" not in data:
        raise ReportError(f"{path}: not a `perovdefect campaign collect` table "
                          "(needs 'steps' and 'analyses')")
    return data


def analyses_from_documents(host: str | Path, defects: list[str | Path],
                            pl_nm: float | None = None) -> list[dict]:
    """Level analyses from ElectronicStructure outputs of any code (no campaign needed)."""
    from perovdefect.levels import compare_with_pl, find_in_gap_states
    from perovdefect.parsers import parse
    host_doc = parse(host)
    out = {"model": Path(host).name, "final_step": "documents", "host": host_doc.summary(),
           "defects": {}}
    for d in defects:
        levels = find_in_gap_states(host_doc, parse(d))
        if pl_nm:
            levels.pl_comparison = compare_with_pl(levels.transitions_eV, pl_nm)
        out["defects"][Path(d).name] = {"charge": None, **levels.to_dict()}
    return [out]


def load_photon_stats(paths: list[str | Path], excitation_N: list[float] | None = None,
                      background_cps: float | None = None) -> list[PhotonStats]:
    """PhotonStats JSON files as they are; raw TCSPC files are analysed here."""
    from perovdefect.photons.analysis.pipeline import analyze_stream
    from perovdefect.photons.io import read_photons
    out = []
    Ns = excitation_N or [None] * len(paths)
    if len(Ns) != len(paths):
        raise ReportError(f"{len(Ns)} excitation levels for {len(paths)} photon files")
    for p, N in zip(paths, Ns):
        p = Path(p)
        if not p.is_file():
            raise ReportError(f"{p}: no such photon file")
        if p.suffix == ".json":
            stats = PhotonStats.from_json(p)
            if N is not None:
                stats.excitation_N = N
        else:
            stats = analyze_stream(read_photons(p), excitation_N=N, background_cps=background_cps)
        out.append(stats)
    return out


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _table(rows: list[list], header: list[str]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def build_report(inputs: ReportInputs, out_dir: str | Path,
                 title: str = "perovdefect joint report") -> dict:
    """Write OUT/report.html, OUT/report.json, OUT/report.pdf and OUT/figures/*.png; returns
    the JSON summary."""
    from matplotlib.backends.backend_pdf import PdfPages

    from perovdefect.photons.figures import (decay_figure, flid_figure, g2_figure,
                                             power_series_figure, trace_figure)
    from perovdefect.report.figures import level_diagram, pl_figure
    from perovdefect.report.reference import EXPERIMENTAL_GAP_EV, SEED_DFT
    if not inputs.analyses and not inputs.photon_stats:
        raise ReportError("nothing to report: give campaign results / documents and/or photon "
                          "data")
    out = Path(out_dir)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    e = html.escape
    figures: list[tuple[str, str, bytes]] = []  # (section, name, png)
    summary: dict[str, Any] = {"title": title, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "notes": inputs.notes, **inputs.extra}
    sections: dict[str, str] = {}

    # --- PL
    pl_cmp = None
    if inputs.pl is not None:
        wl, y, peak = inputs.pl
        pl_cmp = {"pl_nm": peak["center_nm"], "pl_eV": peak["center_eV"],
                  "pl_fwhm_meV": peak["fwhm_meV"], "fwhm_nm": peak["fwhm_nm"]}
        summary["pl_peak"] = peak
    elif inputs.analyses:
        for a in inputs.analyses:
            for d in a["defects"].values():
                if d.get("pl_comparison"):
                    pl_cmp = pl_cmp or d["pl_comparison"]

    # --- levels
    comp_key = "CsPbBr3" if "CsPbBr3" in inputs.compound else "Cs4PbBr6"
    exp_gap = EXPERIMENTAL_GAP_EV[comp_key]
    exp_text = (f"{exp_gap[0]:.2f}" if exp_gap[0] == exp_gap[1] else
                f"{exp_gap[0]:.2f}-{exp_gap[1]:.2f}")
    level_rows, gap_rows, states_out = [], [], []
    if inputs.analyses:
        fig = level_diagram(inputs.analyses, pl_cmp, (exp_gap[0], exp_gap[1]))
        figures.append(("levels", "level_diagram.png", _png(fig)))
        for a in inputs.analyses:
            host = a["host"]
            gap_rows.append([a.get("model"), f"{host['functional']}{'+SOC' if host['soc'] else ''}",
                             host["gap_eV"], exp_text,
                             (host["gap_eV"] or 0) - exp_gap[0],
                             a.get("host_gap_hse06_soc_corrected_eV")])
            for label, d in a["defects"].items():
                for s in d["in_gap_states"]:
                    dev = None
                    if pl_cmp:
                        dev = s["transition_eV"] - pl_cmp["pl_eV"]
                    level_rows.append([a.get("model"), label, d.get("charge"), s["spin"],
                                       s["energy_above_vbm_eV"], s["occupation"],
                                       s["transition_eV"], s["transition_nm"], dev,
                                       s.get("ipr"), json.dumps(s.get("character", {}))])
                    states_out.append({"model": a.get("model"), "defect": label,
                                       "charge": d.get("charge"), **s,
                                       "deviation_from_pl_eV": dev})
        summary["host_gaps"] = [dict(zip(["model", "level", "gap_eV", "experimental_gap_eV",
                                          "gap_minus_experiment_eV", "hse06_soc_corrected_eV"],
                                         r)) for r in gap_rows]
        summary["in_gap_states"] = states_out
        summary["reference"] = {"seed_dft": SEED_DFT, "experimental_gap": exp_gap}
    sections["levels"] = (
        "<h2>Defect levels</h2>"
        + ("<p>Host band edges and in-gap states per defect and charge (energies above the host "
           "VBM); the measured PL peak is the green band, the experimental gap the dashed "
           f"line. Seed study: host gap {SEED_DFT['host_gap_eV']} eV, mid-gap state "
           f"{SEED_DFT['mid_gap_state_eV']} eV (HSE06+SOC).</p>"
           + "{fig:level_diagram.png}"
           + "<h3>Host gap vs experiment</h3>"
           + _table(gap_rows, ["model", "level of theory", "gap (eV)", "experiment (eV)",
                               "difference (eV)", "HSE06+SOC (corrected, eV)"])
           + "<h3>In-gap states</h3>"
           + _table(level_rows, ["model", "defect", "charge", "spin", "E - VBM (eV)",
                                 "occupation", "transition (eV)", "transition (nm)",
                                 "minus PL (eV)", "IPR", "character"])
           if inputs.analyses else "<p>No calculation results were given.</p>"))

    # --- PL section
    if inputs.pl is not None:
        wl, y, peak = inputs.pl
        trans_nm = [s["transition_nm"] for s in states_out]
        figures.append(("pl", "pl_spectrum.png", _png(pl_figure(wl, y, peak, trans_nm))))
        sections["pl"] = ("<h2>Photoluminescence</h2>" + _table(
            [[peak.get("source"), peak["model"], peak["center_nm"], peak["center_eV"],
              peak["fwhm_nm"], peak["fwhm_meV"]]],
            ["spectrum", "model", "centre (nm)", "centre (eV)", "FWHM (nm)", "FWHM (meV)"])
            + "{fig:pl_spectrum.png}")
    else:
        sections["pl"] = "<h2>Photoluminescence</h2><p>No PL spectrum was given.</p>"
    if inputs.absorption is not None:
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(*inputs.absorption, color="k")
        ax.set_xlabel("wavelength (nm)")
        ax.set_ylabel("absorbance")
        fig.tight_layout()
        figures.append(("pl", "absorption.png", _png(fig)))
        sections["pl"] += "<h3>Absorption</h3>{fig:absorption.png}"

    # --- photons
    particle_html, particles = [], []
    for i, st in enumerate(inputs.photon_stats):
        stem = f"particle{i}"
        figs = [(f"{stem}_trace.png", trace_figure(st))]
        if st.decay_histograms:
            figs += [(f"{stem}_decays.png", decay_figure(st)), (f"{stem}_flid.png",
                                                               flid_figure(st))]
        if st.g2:
            figs.append((f"{stem}_g2.png", g2_figure(st)))
        for name, fig in figs:
            figures.append((f"particle-{i}", name, _png(fig)))
        s = st.summary()
        particles.append(s)
        rows = [[j, round(lv["mean_counts"], 1), round(lv["fraction"], 3),
                 lv.get("decay", {}).get("tau_ns", [None])[0], lv.get("n_photons")]
                for j, lv in enumerate(st.levels)]
        g2 = st.g2 or {}
        particle_html.append(
            f"<section id='particle-{i}'><h3>{e(Path(st.source).name)}"
            + (f" (&lt;N&gt; = {st.excitation_N:g})" if st.excitation_N else "") + "</h3>"
            + _table([[s["photons"], st.n_levels, st.n_emitting_levels, g2.get("g2_0"),
                       g2.get("g2_0_err"), g2.get("n_emitters"), g2.get("n_emitters_err")]],
                     ["photons", "levels", "emitting levels", "g2(0)", "+-", "M", "+-"])
            + _table(rows, ["level", "counts/bin", "fraction of time", "lifetime (ns)",
                            "photons"])
            + "".join("{fig:" + name + "}" for name, _ in figs) + "</section>")
    summary["particles"] = particles
    sections["photons"] = ("<h2>Single-particle photon statistics</h2>"
                           + ("".join(particle_html) if particle_html else
                              "<p>No photon data were given.</p>"))
    if inputs.power_series:
        figures.append(("power-series", "power_series.png",
                        _png(power_series_figure(inputs.power_series))))
        fit = inputs.power_series["mean_intensity_fit"]
        summary["power_series"] = inputs.power_series
        sections["power-series"] = (
            "<h2>Power series</h2>"
            f"<p>Mean intensity ~ &lt;N&gt;<sup>{fit['exponent']:.2f} +- "
            f"{fit['exponent_err']:.2f}</sup>: {e(fit['regime'])}.</p>"
            + _table([[n, m, b, t] for n, m, b, t in zip(
                inputs.power_series["excitation_N"], inputs.power_series["mean_counts_per_bin"],
                inputs.power_series["brightest_level_counts_per_bin"],
                inputs.power_series["brightest_level_tau_ns"])],
                ["<N>", "mean counts/bin", "brightest level counts/bin", "its lifetime (ns)"])
            + "{fig:power_series.png}")
    else:
        sections["power-series"] = "<h2>Power series</h2><p>No power series was given.</p>"

    # --- provenance
    calc_rows = []
    for st in inputs.steps:
        calc_rows.append([st.get("model"), st.get("label"), st.get("step"), st.get("code"),
                          st.get("functional"), st.get("soc"), st.get("converged"),
                          st.get("gap_eV"), st.get("state")])
    settings = _step_settings(inputs.steps)
    files = [[str(p), _sha256(Path(p))] for p in inputs.input_files if Path(p).is_file()]
    versions = _versions()
    summary["provenance"] = {"versions": versions, "input_files": dict(files),
                             "calculations": settings}
    sections["provenance"] = (
        "<h2>Provenance</h2><h3>Calculations</h3>"
        + _table(calc_rows, ["model", "structure", "step", "code", "functional", "SOC",
                             "converged", "gap (eV)", "state"])
        + _table([[k, json.dumps(v)] for k, v in settings.items()], ["run", "settings"])
        + "<h3>Input files</h3>" + _table(files, ["file", "sha256"])
        + "<h3>Software</h3>" + _table([[k, v] for k, v in versions.items()],
                                       ["package", "version"]))

    # --- summary table
    srows = []
    for g in summary.get("host_gaps", []):
        srows.append([f"host gap ({g['model']}, {g['level']})", g["gap_eV"],
                      f"experiment {g['experimental_gap_eV']} eV"])
    for s in states_out:
        if s["occupation"] > 0.5:
            srows.append([f"occupied in-gap state {s['defect']} (spin {s['spin']})",
                          s["energy_above_vbm_eV"], f"{s['transition_nm']:.0f} nm"])
    if pl_cmp:
        srows.append(["measured PL peak (eV)", pl_cmp["pl_eV"], f"{pl_cmp['pl_nm']:.1f} nm"])
    for i, p in enumerate(particles):
        if p.get("g2_0") is not None:
            srows.append([f"particle {i}: g2(0)", p["g2_0"],
                          f"M = {p['n_emitters']:.2f} +- {p['n_emitters_err']:.2f}"
                          if p.get("n_emitters") else "M undefined (g2(0) >= 1)"])
    if inputs.power_series:
        fit = inputs.power_series["mean_intensity_fit"]
        srows.append(["power-law exponent", fit["exponent"], fit["regime"]])
    notes = "".join(f"<li>{e(n)}</li>" for n in inputs.notes)
    sections["summary"] = ("<h2>Summary</h2>" + _table(srows, ["quantity", "value", "note"])
                           + (f"<ul>{notes}</ul>" if notes else ""))

    # --- write
    fig_map = {}
    for section, name, png in figures:
        (figdir / name).write_bytes(png)
        fig_map[name] = ("<figure><img alt='" + e(name) + "' src='data:image/png;base64,"
                         + base64.b64encode(png).decode() + "'></figure>")
    body = ""
    for sec in SECTIONS:
        content = sections.get(sec, "")
        for name, tag in fig_map.items():
            content = content.replace("{fig:" + name + "}", tag)
        body += f"<section id='{sec}'>{content}</section>\n"
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}"
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
            "table{border-collapse:collapse;margin:.5em 0;font-size:.85em}"
            "td,th{border:1px solid #bbb;padding:2px 6px}img{max-width:100%}</style></head>"
            f"<body><h1>{e(title)}</h1><p>Generated {e(summary['created'])} by perovdefect "
            f"{e(versions['perovdefect'])}.</p>{body}</body></html>")
    (out / "report.html").write_text(page)
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    with PdfPages(out / "report.pdf") as pdf:
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt
        for _, name, _png_bytes in figures:
            img = mpimg.imread(figdir / name)
            fig = plt.figure(figsize=(img.shape[1] / 110, img.shape[0] / 110))
            fig.figimage(img)
            pdf.savefig(fig)
            plt.close(fig)
    summary["files"] = {"html": str(out / "report.html"), "json": str(out / "report.json"),
                        "pdf": str(out / "report.pdf"), "figures": str(figdir)}
    return summary


def _step_settings(steps: list[dict]) -> dict:
    out = {}
    for st in steps:
        path = Path(st.get("run_dir") or "") / "result.json"
        if not path.is_file():
            continue
        settings = json.loads(path.read_text()).get("settings", {})
        p = settings.get("protocol") or {}
        out[f"{st.get('model')}/{st.get('label')}/{st.get('step')}"] = {
            "code": st.get("code"), "functional": st.get("functional"), "soc": st.get("soc"),
            "mode": p.get("mode"), "cutoff_eV": p.get("cutoff_eV") or settings.get("ENCUT"),
            "basis": p.get("basis") if p.get("mode") == "lcao" else None,
            "kpoints": p.get("kpoints") or settings.get("kpoints"),
            "processes": settings.get("gpaw_processes")}
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(type(obj))
