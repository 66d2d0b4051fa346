"""The report's "Candidate emitters" section: the ranked CandidateTable documents
(perovdefect.candidates) of a campaign -- as `campaign collect` made them against the
campaign's `pl_nm`, or made again here against the PL peak fitted for the report and the
lifetimes of its photon analysis -- and their rows for the template.

The report model keeps the documents themselves (typed, in report.json), so `report --from`
draws the same section; this module only picks them and turns them into table cells."""

from __future__ import annotations

from typing import Any

from perovdefect.candidates import CandidateRow, CandidateTable, campaigns, candidate_table

HEADER = ["rank", "model", "defect", "charge", "concentration (cm^-3)", "defect total (cm^-3)",
          "after synthesis", "defect / perturbed-host / delocalized states",
          "Kohn-Sham screen (nm; a level, not an emission)", "screen minus PL (eV)",
          "PREDICTED PL peak (nm)", "predicted minus PL (nm)",
          "at its hybrid (+SOC estimate) correction (nm)", "corrected minus PL (nm)",
          "predicted FWHM (nm)",
          "radiative lifetime (ns)", "ranked by", "missing", "warnings"]


def report_candidates(table: Any, peak: Any = None, lifetimes: list | None = None
                      ) -> list[CandidateTable]:
    """The candidate tables of a campaign table (None: none). Without a fitted PL `peak`
    (perovdefect.levels.pl.PLPeak) or measured `lifetimes` (report.headline.MeasuredLifetime)
    those `campaign collect` made; with them, every campaign of the table ranked again
    against the fitted peak and width (else each table's own measurement) and the lifetimes."""
    if table is None:
        return []
    taus = {t.level: t.tau_ns for t in lifetimes or []}
    if peak is None and not taus:
        return list(table.candidates)
    own: dict[str | None, list[CandidateTable]] = {}
    for c in table.candidates:
        own.setdefault(c.campaign, []).append(c)
    out = []
    for name in campaigns(table):
        tables = own.get(name, [])
        if peak is not None:
            pl_nm, fwhm_nm = peak.center_nm, peak.fwhm_nm
        elif tables:
            pl_nm, fwhm_nm = tables[0].measured_pl_nm, tables[0].measured_fwhm_nm
        else:
            continue  # no measured PL for this campaign
        out += [candidate_table(table, pl_nm, fwhm_nm, taus or None, limit=limit,
                                campaign=name)
                for limit in [t.limit for t in tables] or [None]]
    return out


def _cm3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3e}"


def _cells(r: CandidateRow) -> list:
    c, s, k, e = r.concentration, r.states, r.screen, r.emission
    return [
        r.rank, r.model, r.defect, f"{r.charge:+d}",
        _cm3(c.concentration_cm3 if c else None), _cm3(c.defect_total_cm3 if c else None)
        + (" (below threshold)" if r.below_threshold else ""),
        f"{c.conditions}, {c.limit}" if c else "-",
        f"{s.defect_states} / {s.perturbed_host_states} / {s.delocalized_states}" if s else "-",
        f"{k.transition_nm:.1f}" if k else "-", f"{k.deviation_eV:+.3f}" if k else "-",
        f"{e.predicted_peak_nm:.1f}" if e else "-", f"{e.peak_deviation_nm:+.1f}" if e else "-",
        "-" if e is None or e.corrected_peak_nm is None else f"{e.corrected_peak_nm:.1f}",
        "-" if e is None or e.corrected_deviation_nm is None
        else f"{e.corrected_deviation_nm:+.1f}",
        f"{e.predicted_fwhm_nm:.1f}" if e else "-",
        "-" if e is None or e.radiative_lifetime_ns is None
        else f"{e.radiative_lifetime_ns:.4g}", r.ranked_by, "; ".join(r.missing) or "-",
        "; ".join(r.warnings) or "-"]


def _measured(t: CandidateTable) -> str:
    text = f"{t.measured_pl_nm:.1f} nm ({t.measured_pl_eV:.3f} eV)"
    if t.measured_fwhm_nm is not None:
        text += f", FWHM {t.measured_fwhm_nm:.1f} nm"
    if t.measured_lifetimes_ns:
        text += "; lifetimes " + ", ".join(f"{k}: {v:.3g} ns"
                                           for k, v in t.measured_lifetimes_ns.items())
    return text


def _emission_notes(t: CandidateTable) -> list[str]:
    """Per predicted emission: what it is, where it comes from, its lifetime ratios."""
    out = []
    for r in t.rows:
        e = r.emission
        if e is None:
            continue
        where = f"{e.structure}, {e.model}" + (f" {e.n_atoms} atoms" if e.n_atoms else "")
        text = (f"rank {r.rank} ({r.model}/{r.defect} {r.charge:+d}): {where}, "
                f"{e.level_of_theory}, route {e.route}; {e.origin}")
        if e.corrected_by is not None:
            text += (f"; corrected peak {e.corrected_peak_nm:.1f} nm ({e.corrected_by}; line "
                     "shape of the chain's CC diagram; it ranks the row)")
            if e.corrected_warnings:
                text += "; correction warnings: " + "; ".join(e.corrected_warnings)
        if e.fwhm_deviation_nm is not None:
            text += f"; FWHM minus measured {e.fwhm_deviation_nm:+.1f} nm"
        if e.lifetime_ratios:
            text += "; radiative / measured lifetime: " + ", ".join(
                f"{k}: {v:.3g}" for k, v in e.lifetime_ratios.items())
        out.append(text)
    return out


def candidate_view(tables: list[CandidateTable]) -> list[dict[str, Any]]:
    """What the template's candidate section shows, one entry per table."""
    return [{"label": (t.campaign or "campaign") + (f", {t.limit}" if t.limit else ""),
             "measured": _measured(t),
             "rule": t.ranking_rule, "limit_rule": t.limit_rule, "screen": t.screen_note,
             "charge_rule": t.emission_charge_rule, "header": HEADER,
             "rows": [_cells(r) for r in t.rows], "emissions": _emission_notes(t)}
            for t in tables]
