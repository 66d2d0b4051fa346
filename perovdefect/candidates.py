"""Candidate emitters (issue 21): every computed defect and charge of a campaign table in one
ranked table against the measured PL -- its concentration after synthesis, its classified
in-gap states, its Kohn-Sham screen and, where a luminescence chain ran, its predicted emission,
line width and radiative lifetime beside the measured ones.

Nothing is computed here that another stage computes: the numbers are carried from the typed
documents of a `campaign collect` table (perovdefect.workflows.table.CampaignTable: the level
analyses, the Fermi-level solutions, the luminescence results); this module matches them by
(campaign, model, defect, charge), ranks the rows by the rule it writes into the table
(RANKING_RULE) and says per row what is missing. Hand-written because no library of the field
joins these documents (pydefect and doped stop at formation energies and concentrations).

Units: energies eV, wavelengths and widths nm, concentrations cm^-3, lifetimes ns, T in K.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError
from perovdefect.units import nm_to_ev

if TYPE_CHECKING:
    from perovdefect.levels.model import DefectAnalysis
    from perovdefect.optics.run import LuminescenceResult
    from perovdefect.thermo.documents import DefectThermodynamics
    from perovdefect.workflows.table import CampaignTable

#: default filter: a defect rarer than this after synthesis (all its charge states) is ranked
#: after every other row: below it a crystal of one cubic micrometre (1e-12 cm^3) holds less
#: than one such defect on average. The defect's total, not its charge state's: the
#: photoexcitation that makes the PL changes the charge states the dark solution gives
MIN_CONCENTRATION_CM3 = 1e12

RANKING_RULE = (
    "1. rows whose defect's total concentration after synthesis (all its charge states, at the "
    "limit used) is known and below {min:.0e} cm^-3 (fewer than one defect per cubic "
    "micrometre) come after all others; 2. rows with a predicted emission (the total-energy "
    "luminescence chain) first, ordered by |predicted - measured PL peak| (eV), the predicted "
    "peak taken at the highest level of theory the chain has (its hybrid single points with "
    "the SOC estimate, else its hybrid single points, else the chain itself; rows at "
    "different levels share one ordering); 3. then rows "
    "with only a Kohn-Sham screen, ordered by |screen transition - measured PL peak| (eV); "
    "4. then rows with neither; ties: the higher concentration of the row's own charge state "
    "first (unknown last), then model, defect, charge.")
LIMIT_RULE_FIRST = ("the first chemical-potential limit of each model's thermodynamics (the "
                    "competing-phase table lists the rich element's richest vertex, '<X>-rich', "
                    "first)")
SCREEN_NOTE = ("Kohn-Sham screen: the one in-gap Kohn-Sham transition the level analysis picks "
               "(the occupied defect state farthest above the VBM, else the empty one farthest "
               "below the CBM) -- a single-particle level at the defect's ground-state "
               "geometry, not an emission energy (no excited-state relaxation, no "
               "Franck-Condon shift)")
EMISSION_CHARGE_RULE = (
    "a luminescence result belongs to the row of the charge in its defect label (DeltaSCF: "
    "the defect it excites), else of the charge route's final charge (q_initial + carrier -> "
    "q_final), else of the result's charge")

_CHARGE = re.compile(r"_q([+-]?\d+)$")


class SynthesisConcentration(Part):
    """The concentration of one defect charge state after synthesis (cm^-3): frozen at the
    quench temperature where the campaign quenched, else in equilibrium at the synthesis
    temperature, at one chemical-potential limit."""

    limit: str
    mode: Literal["equilibrium", "frozen"]
    #: what the numbers are: e.g. "frozen at 300 K after equilibrium at 1300 K"
    conditions: str
    temperature_K: float
    fermi_level_above_vbm_eV: float
    #: this charge state (cm^-3; None: the solution lists no such charge)
    concentration_cm3: float | None
    #: the defect over all its charge states (cm^-3)
    defect_total_cm3: float | None


class StateCounts(Part):
    """The classified in-gap states of one defect charge state (perovdefect.levels.ingap)."""

    defect_states: int
    occupied_defect_states: int
    empty_defect_states: int
    perturbed_host_states: int
    delocalized_states: int


class KohnShamScreen(Part):
    """The level analysis' one Kohn-Sham transition against the measured PL peak (deviation =
    screen - measured). A screen, not an emission energy (CandidateTable.screen_note)."""

    transition_eV: float
    transition_nm: float
    deviation_eV: float
    deviation_nm: float


class EmissionPrediction(Part):
    """The predicted emission of a luminescence chain (total energies, relaxed states, CC
    line shape) beside the measured PL (deviation = predicted - measured; lifetime ratio =
    predicted / measured)."""

    run_dir: str | None = None
    structure: str
    #: "cluster" or "periodic" and the level of theory of the chain
    model: str
    n_atoms: int | None = None
    level_of_theory: str
    #: "delta-scf" or "charge q_i -> q_f (carrier from the VBM/CBM)"
    route: str
    #: "computed" or the shipped result's provenance
    origin: str
    predicted_peak_eV: float
    predicted_peak_nm: float
    predicted_fwhm_nm: float
    predicted_fwhm_meV: float
    peak_deviation_eV: float
    peak_deviation_nm: float
    fwhm_deviation_nm: float | None = None
    radiative_lifetime_ns: float | None = None
    lifetime_ratios: dict[str, float] = Field(default_factory=dict)
    #: the chain's PL peak at a higher level of theory (None: the chain ran none): its hybrid
    #: single points at the two minima, with the SOC estimate where there is one
    corrected_peak_eV: float | None = None
    corrected_peak_nm: float | None = None
    corrected_by: str | None = None
    corrected_deviation_eV: float | None = None
    corrected_deviation_nm: float | None = None
    #: the correction's own warnings (a PBE reference off the chain's, low SOC weights, ...)
    corrected_warnings: list[str] = Field(default_factory=list)

    @property
    def ranking_deviation_eV(self) -> float:
        """Predicted minus measured peak (eV) at the highest level of theory there is."""
        return self.peak_deviation_eV if self.corrected_deviation_eV is None \
            else self.corrected_deviation_eV


class CandidateRow(Part):
    """One computed defect charge state of one model, ranked."""

    rank: int
    campaign: str | None
    model: str
    defect: str
    charge: int
    #: the structure label of its level analysis (e.g. V_Br_36f_q0)
    label: str | None = None
    concentration: SynthesisConcentration | None = None
    states: StateCounts | None = None
    screen: KohnShamScreen | None = None
    emission: EmissionPrediction | None = None
    #: what placed the row: its predicted emission, its Kohn-Sham screen, or nothing
    ranked_by: Literal["emission", "Kohn-Sham screen", "nothing"]
    #: the defect's total concentration is known and below the table's threshold
    below_threshold: bool = False
    #: what the row lacks, in words (empty: nothing)
    missing: list[str] = Field(default_factory=list)
    #: what its numbers rest on that the user must know (an unconverged step, ...)
    warnings: list[str] = Field(default_factory=list)


class CandidateTable(Document):
    """Candidate emitters of one campaign (or table): every computed (model, defect, charge)
    against the measured PL, ranked by `ranking_rule`."""

    campaign: str | None = None
    measured_pl_nm: float
    measured_pl_eV: float
    measured_fwhm_nm: float | None = None
    #: measured lifetimes the radiative ones are compared with (label -> ns)
    measured_lifetimes_ns: dict[str, float] = Field(default_factory=dict)
    min_concentration_cm3: float
    #: the chemical-potential limit of the concentrations (None: LIMIT_RULE_FIRST's)
    limit: str | None = None
    limit_rule: str
    ranking_rule: str
    screen_note: str = SCREEN_NOTE
    emission_charge_rule: str = EMISSION_CHARGE_RULE
    rows: list[CandidateRow] = Field(default_factory=list)


Key = tuple[str | None, str, str, int]  # (campaign, model, defect, charge)


def candidate_table(table: CampaignTable, measured_pl_nm: float,
                    measured_fwhm_nm: float | None = None,
                    measured_lifetimes_ns: dict[str, float] | None = None,
                    limit: str | None = None, campaign: str | None = None,
                    min_concentration_cm3: float = MIN_CONCENTRATION_CM3) -> CandidateTable:
    """The ranked candidate emitters of `table` (of one `campaign` where given) against the
    measured PL peak (nm), FWHM (nm) and lifetimes (label -> ns). `limit`: the
    chemical-potential limit of the concentrations (None: LIMIT_RULE_FIRST). AnalysisError
    for a non-positive measurement or a limit no model has."""
    for name, value in (("measured_pl_nm", measured_pl_nm), ("measured_fwhm_nm",
                        measured_fwhm_nm), ("min_concentration_cm3", min_concentration_cm3),
                        *((f"measured lifetime {k!r} (ns)", v)
                          for k, v in (measured_lifetimes_ns or {}).items())):
        if value is not None and not value > 0:
            raise AnalysisError(f"{name}: must be > 0, got {value}")
    _check_limit(table, limit, campaign)
    pl_eV = float(nm_to_ev(measured_pl_nm))
    lifetimes = dict(measured_lifetimes_ns or {})
    analyses = _analyses(table, campaign)
    emissions = _emissions(table, campaign)
    keys = sorted(set(analyses) | set(emissions) | _step_keys(table, campaign)
                  | _concentration_keys(table, campaign, limit), key=_order)
    rows = []
    for key in keys:
        label, analysis = analyses.get(key, (None, None))
        rows.append(_row(table, key, label, analysis, emissions.get(key), limit,
                         (measured_pl_nm, pl_eV, measured_fwhm_nm, lifetimes),
                         min_concentration_cm3))
    rows.sort(key=_rank_key)
    for i, r in enumerate(rows, 1):
        r.rank = i
    return CandidateTable(
        campaign=campaign, measured_pl_nm=measured_pl_nm, measured_pl_eV=pl_eV,
        measured_fwhm_nm=measured_fwhm_nm, measured_lifetimes_ns=lifetimes,
        min_concentration_cm3=min_concentration_cm3, limit=limit,
        limit_rule=LIMIT_RULE_FIRST if limit is None
        else f"the chemical-potential limit {limit!r}",
        ranking_rule=RANKING_RULE.format(min=min_concentration_cm3), rows=rows)


def campaign_candidates(campaigns_dir: str | Path, table: CampaignTable) -> list[CandidateTable]:
    """The candidate tables of every campaign in `table` whose campaign file
    (campaigns_dir/NAME.yaml, as `campaign submit` copied it) gives a measured PL (`pl_nm`;
    its `luminescence: pl_fwhm_nm` as the measured width), one per limit of
    synthesis_limits: what `campaign collect` adds."""
    from perovdefect.workflows.spec import load_campaign
    out = []
    for name in campaigns(table):
        spec_file = Path(campaigns_dir) / f"{name}.yaml"
        if not spec_file.is_file():
            continue
        spec = load_campaign(spec_file)
        if spec.pl_nm is None:
            continue
        fwhm = spec.luminescence.pl_fwhm_nm if spec.luminescence is not None else None
        rich = spec.thermodynamics.rich_element if spec.thermodynamics is not None else "Br"
        out += [candidate_table(table, spec.pl_nm, fwhm, limit=limit, campaign=name)
                for limit in synthesis_limits(table, name, rich)]
    return out


def synthesis_limits(table: CampaignTable, campaign: str | None, rich_element: str = "Br"
                     ) -> list[str | None]:
    """The limits a campaign's candidates are ranked at: both ends of the rich element's
    range ('<X>-rich', '<X>-poor') where its concentrations were solved there -- which defect
    exists, so which one can glow, turns on that chemical potential -- else [None]
    (LIMIT_RULE_FIRST)."""
    have = {lim.limit for e in table.concentrations if e.result is not None
            and (campaign is None or e.campaign == campaign) for lim in e.result.limits}
    return [x for x in (f"{rich_element}-rich", f"{rich_element}-poor") if x in have] or [None]


def campaigns(table: CampaignTable) -> list[str]:
    """The campaign names a table holds, in order of first appearance."""
    names = [r.campaign for r in table.steps] + [a.campaign for a in table.analyses] + [
        e.campaign for e in table.concentrations] + [r.campaign for r in table.luminescence]
    return [n for n in dict.fromkeys(names) if n]


# ------------------------------------------------------------------------ gathering by key

def _defect(label: str) -> str:
    from perovdefect.workflows.table import defect_of
    return defect_of(label)


def _order(key: Key) -> tuple:
    return (key[0] or "", key[1], key[2], key[3])


def _analyses(table: CampaignTable, campaign: str | None
              ) -> dict[Key, tuple[str, DefectAnalysis]]:
    """(structure label, DefectAnalysis) of every analysed defect charge state (the last
    analysis of a model wins)."""
    out = {}
    for a in table.analyses:
        if campaign is not None and a.campaign != campaign:
            continue
        for label, d in a.defects.items():
            m = _CHARGE.search(label)
            charge = d.charge if d.charge is not None else int(m.group(1)) if m else None
            if charge is None:
                continue
            out[(a.campaign, a.model or "", _defect(label), charge)] = (label, d)
    return out


def _emission_charge(defect_label: str, result: LuminescenceResult) -> int:
    """EMISSION_CHARGE_RULE."""
    m = _CHARGE.search(defect_label)
    if m:
        return int(m.group(1))
    if result.charge_route is not None:
        return result.charge_route.charge_final
    return result.charge


def _emissions(table: CampaignTable, campaign: str | None) -> dict[Key, tuple[str, object]]:
    """(run dir, LuminescenceResult) by key (a later row of the same key wins)."""
    return {(r.campaign, r.model, _defect(r.defect), _emission_charge(r.defect, r.result)):
            (r.run_dir, r.result)
            for r in table.luminescence if campaign is None or r.campaign == campaign}


def _step_keys(table: CampaignTable, campaign: str | None) -> set[Key]:
    """Defect charge states with at least one finished ladder step."""
    return {(r.campaign, r.model, r.defect or _defect(r.label), r.charge) for r in table.steps
            if r.role == "defect" and r.total_energy_eV is not None
            and (campaign is None or r.campaign == campaign)}


def _thermodynamics(table: CampaignTable, campaign: str | None, model: str
                    ) -> tuple[DefectThermodynamics | None, str | None, bool]:
    """(document, problem, has an entry) of one model's concentration entry (the last)."""
    found = [e for e in table.concentrations
             if e.model == model and (campaign is None or e.campaign == campaign)]
    if not found:
        return None, None, False
    return found[-1].result, found[-1].problem, True


def _check_limit(table: CampaignTable, limit: str | None, campaign: str | None) -> None:
    if limit is None:
        return
    have = {lim.limit for e in table.concentrations if e.result is not None
            and (campaign is None or e.campaign == campaign) for lim in e.result.limits}
    if have and limit not in have:
        raise AnalysisError(f"limit {limit!r}: no model's thermodynamics has it (have "
                            f"{sorted(have)})")


def _concentration_keys(table: CampaignTable, campaign: str | None,
                        limit: str | None) -> set[Key]:
    out = set()
    for e in table.concentrations:
        if e.result is None or (campaign is not None and e.campaign != campaign):
            continue
        sol = _solution(e.result, limit)
        if sol is not None:
            out |= {(e.campaign, e.model, c.defect, c.charge) for c in sol[1].concentrations}
    return out


def _solution(th: DefectThermodynamics, limit: str | None):
    """(limit, solution after synthesis: frozen where quenched, else at T), or None where
    the document has no such limit."""
    lims = [x for x in th.limits if limit is None or x.limit == limit]
    if not lims:
        return None
    lim = lims[0]
    return lim, lim.quenched if lim.quenched is not None else lim.equilibrium


# ------------------------------------------------------------------------------- one row

def _row(table: CampaignTable, key: Key, label: str | None,
         analysis: DefectAnalysis | None, emission, limit: str | None, measured: tuple,
         min_cm3: float) -> CandidateRow:
    campaign, model, defect, charge = key
    pl_nm, pl_eV, fwhm_nm, lifetimes = measured
    missing: list[str] = []
    conc = _concentration(table, key, limit, missing)
    states = screen = None
    if analysis is None:
        missing.append("no level analysis (no classified states, no Kohn-Sham screen)")
    else:
        states = _states(analysis)
        screen = _screen(analysis, pl_nm, pl_eV)
        if screen is None:
            missing.append("no localised defect state in the gap: no Kohn-Sham screen")
    pred = None
    if emission is None:
        missing.append("no luminescence chain for this defect and charge")
    else:
        pred = _emission(*emission, pl_nm, pl_eV, fwhm_nm, lifetimes)
        if pred.radiative_lifetime_ns is None:
            missing.append("no radiative lifetime (the luminescence chain gave no transition "
                           "dipole)")
    total = conc.defect_total_cm3 if conc is not None else None
    return CandidateRow(
        rank=0, campaign=campaign, model=model, defect=defect, charge=charge, label=label,
        concentration=conc, states=states, screen=screen, emission=pred,
        ranked_by="emission" if pred else "Kohn-Sham screen" if screen else "nothing",
        below_threshold=total is not None and total < min_cm3, missing=missing,
        warnings=_unconverged(table, key))


def _unconverged(table: CampaignTable, key: Key) -> list[str]:
    """The finished ladder steps of this defect charge state whose calculation did not
    converge (a relaxation stopped at its step limit, an SCF that did not converge): the
    row's energies and levels are of that state. Ground-state search starts are left out
    (their search document lists them)."""
    return [f"its {r.step} step did not converge ({r.run_dir}): the row's numbers rest on "
            "that unconverged result" for r in table.steps
            if (r.campaign, r.model, r.defect or _defect(r.label), r.charge) == key
            and r.role == "defect" and "@" not in r.label and r.converged is False]


def _concentration(table: CampaignTable, key: Key, limit: str | None,
                   missing: list[str]) -> SynthesisConcentration | None:
    campaign, model, defect, charge = key
    th, problem, entry = _thermodynamics(table, campaign, model)
    if th is None:
        missing.append(f"no concentration: {problem}" if problem else
                       "no concentration (no Fermi level was solved for this model: its "
                       "campaign needs `thermodynamics:` with a temperature_K)"
                       if not entry else "no concentration")
        return None
    sol = _solution(th, limit)
    if sol is None:
        missing.append(f"no concentration: the model's thermodynamics have no limit {limit!r}"
                       f" (have {[x.limit for x in th.limits]})")
        return None
    lim, s = sol
    if defect not in th.defects:
        missing.append(f"no concentration: the model's thermodynamics do not include {defect}")
        return None
    values = [c.concentration_cm3 for c in s.concentrations
              if c.defect == defect and c.charge == charge]
    if not values:
        missing.append(f"no concentration of charge {charge:+d} (the formation energies have "
                       "no such charge state)")
    total = s.total_concentrations_cm3.get(defect)
    if total is None:
        total = sum(c.concentration_cm3 for c in s.concentrations if c.defect == defect)
    conditions = (f"frozen at {th.quench_temperature_K:g} K after equilibrium at "
                  f"{th.temperature_K:g} K" if s.mode == "frozen" else
                  f"equilibrium at {th.temperature_K:g} K")
    return SynthesisConcentration(
        limit=lim.limit, mode=s.mode, conditions=conditions, temperature_K=s.temperature_K,
        fermi_level_above_vbm_eV=s.fermi_level_above_vbm_eV,
        concentration_cm3=values[0] if values else None, defect_total_cm3=total)


def _states(d: DefectAnalysis) -> StateCounts:
    from perovdefect.calcs.document import OCC_THRESHOLD
    kinds = [s.kind for s in d.in_gap_states]
    occ = [s for s in d.in_gap_states if s.kind == "defect" and s.occupation > OCC_THRESHOLD]
    return StateCounts(defect_states=kinds.count("defect"), occupied_defect_states=len(occ),
                       empty_defect_states=kinds.count("defect") - len(occ),
                       perturbed_host_states=kinds.count("perturbed_host"),
                       delocalized_states=kinds.count("delocalized"))


def _screen(d: DefectAnalysis, pl_nm: float, pl_eV: float) -> KohnShamScreen | None:
    """The verdict's transition (perovdefect.levels.ingap.verdict picks it) against the PL."""
    v = d.verdict
    if v is None or v.pl_transition_eV is None or v.pl_transition_nm is None:
        return None
    return KohnShamScreen(transition_eV=v.pl_transition_eV, transition_nm=v.pl_transition_nm,
                          deviation_eV=v.pl_transition_eV - pl_eV,
                          deviation_nm=v.pl_transition_nm - pl_nm)


def _emission(run_dir: str | None, lum: LuminescenceResult, pl_nm: float, pl_eV: float,
              fwhm_nm: float | None, lifetimes: dict[str, float]) -> EmissionPrediction:
    s, r = lum.spectrum, lum.radiative
    tau = r.radiative_lifetime_ns if r is not None else None
    c = lum.charge_route
    route = "delta-scf" if c is None else (
        f"charge {c.charge_initial:+d} -> {c.charge_final:+d} (carrier from the "
        f"{c.band_edge.upper()})")
    prov = lum.provenance
    origin = "computed" if prov is None else (
        f"shipped result, computed {prov.computed_on}; regenerate with: {prov.command}")
    return EmissionPrediction(
        run_dir=run_dir, structure=lum.structure, model=lum.model, n_atoms=lum.n_atoms,
        level_of_theory=lum.level_of_theory, route=route, origin=origin,
        predicted_peak_eV=s.peak_eV, predicted_peak_nm=s.peak_nm,
        predicted_fwhm_nm=s.fwhm_nm, predicted_fwhm_meV=1e3 * s.fwhm_eV,
        peak_deviation_eV=s.peak_eV - pl_eV, peak_deviation_nm=s.peak_nm - pl_nm,
        fwhm_deviation_nm=None if fwhm_nm is None else s.fwhm_nm - fwhm_nm,
        radiative_lifetime_ns=tau,
        lifetime_ratios={k: tau / v for k, v in lifetimes.items()} if tau else {},
        **_corrected(lum, pl_nm, pl_eV))


def _corrected(lum: LuminescenceResult, pl_nm: float, pl_eV: float) -> dict:
    """The EmissionPrediction fields of the chain's hybrid (+SOC estimate) peak, if any."""
    lc = lum.level_correction
    if lc is None:
        return {}
    if lc.corrected_soc_pl_peak_eV is not None:
        peak, nm = lc.corrected_soc_pl_peak_eV, lc.corrected_soc_pl_peak_nm
        by = f"{lc.level_of_theory} + SOC estimated from Kohn-Sham levels"
    else:
        peak, nm, by = lc.corrected_pl_peak_eV, lc.corrected_pl_peak_nm, lc.level_of_theory
    return dict(corrected_peak_eV=peak, corrected_peak_nm=nm, corrected_by=by,
                corrected_deviation_eV=peak - pl_eV, corrected_deviation_nm=nm - pl_nm,
                corrected_warnings=list(lc.warnings))


def _rank_key(r: CandidateRow) -> tuple:
    """RANKING_RULE as a sort key."""
    if r.emission is not None:
        tier, dev = 0, abs(r.emission.ranking_deviation_eV)
    elif r.screen is not None:
        tier, dev = 1, abs(r.screen.deviation_eV)
    else:
        tier, dev = 2, 0.0
    c = r.concentration.concentration_cm3 if r.concentration is not None else None
    return (r.below_threshold, tier, dev, c is None, -(c or 0.0), r.model, r.defect, r.charge)
