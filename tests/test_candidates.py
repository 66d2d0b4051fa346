"""Issue 21: candidate emitters -- every computed defect and charge of a campaign table ranked
against the measured PL (perovdefect.candidates), in `campaign collect` and in the report
(typed, so `report --from` rebuilds it).

Real documents, no DFT run: the V_N in GaN set of ../shared/data/vasp (32-atom bulk and the
q=-1, 0, +1, +2 cells; levels by perovdefect.levels, Fermi level and concentrations by
perovdefect.thermo as tests/test_fermi_cli.py checks them against py-sc-fermi; the chemical
potentials are test inputs) and the shipped DeltaSCF luminescence result of the Cs4PbBr6
molecule's V_Br (perovdefect/data/luminescence). The two hosts share one hand-built table only
to exercise every kind of row; the measured PL (517 nm, FWHM 14 nm: the single-particle fit
the shipped result was compared with) and the measured lifetime are test inputs."""

from __future__ import annotations

import warnings

import pytest
import yaml
from scipy import constants
from tests.conftest import html_text

CHARGES = ("q-1", "q0", "q+1", "q+2")
LIMITS = {"N-rich": {"Ga": -3.0, "N": -8.3}, "off-region low mu_N": {"Ga": 0.0, "N": -10.9}}
PL_NM, FWHM_NM, TAU_NS = 517.0, 14.0, {"ON (brightest level)": 12.0}
CAMPAIGN = "c21"
#: the shipped V_Br^0 result of the isolated molecule (the "molecule" model below)
MOLECULE = "Cs4PbBr6_molecule_V_Br_q0.json"


def _ev(nm: float) -> float:
    """Photon energy (eV) of a vacuum wavelength, written here from scipy's constants."""
    return constants.h * constants.c / (nm * 1e-9) / constants.e


@pytest.fixture(scope="module")
def gan(shared_data):
    """(analyses by charge label, thermodynamics 1300 K -> 300 K, 1500 K -> 300 K)."""
    from perovdefect.levels.ingap import find_in_gap_states
    from perovdefect.levels.model import DefectAnalysis
    from perovdefect.parsers import parse
    from perovdefect.thermo.calculations import formation_from_calculations
    from perovdefect.thermo.concentrations import solve_thermodynamics
    root = shared_data / "vasp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = parse(root / "pmgad_v_N_GaN_bulk")
        docs = {q: parse(root / f"pmgad_v_N_GaN_{q}") for q in CHARGES}
    result = formation_from_calculations(host, list(docs.values()), None, LIMITS, "none", None,
                                         "V_N")
    defects = {f"V_N_{q}": DefectAnalysis(charge=int(d.charge), **find_in_gap_states(
        host, d).model_dump()) for q, d in docs.items()}
    return (host, defects, solve_thermodynamics(result, host, 1300.0, 300.0),
            solve_thermodynamics(result, host, 1500.0, 300.0))


@pytest.fixture(scope="module")
def table(gan):
    """GaN-32 (1300 K) and GaN-32-hot (1500 K): the same levels, two syntheses; GaN-64: a
    finished step and a concentration problem; the molecule: the shipped emission of V_Br q0
    and a finished V_Br q+1 step with nothing else."""
    from perovdefect.levels.model import ModelAnalysis
    from perovdefect.optics.shipped import load_shipped
    from perovdefect.workflows.table import (CampaignTable, ConcentrationEntry, LuminescenceRow,
                                             StepRow)
    host, defects, th, th_hot = gan
    analyses = [ModelAnalysis(campaign=CAMPAIGN, model=m, final_step="static",
                              host=host.calc_summary(), defects=defects)
                for m in ("GaN-32", "GaN-32-hot")]
    step = {"campaign": CAMPAIGN, "role": "defect", "step": "static", "state": "COMPLETED",
            "fw_id": 1, "run_dir": None}
    return CampaignTable(
        project="p", analyses=analyses,
        steps=[StepRow(**step, model="GaN-64", label="V_N_q0", defect="V_N", charge=0,
                       total_energy_eV=-100.0),
               StepRow(**step, model="molecule", label="V_Br_q+1", defect="V_Br", charge=1,
                       total_energy_eV=-20.0),
               StepRow(**{**step, "state": "READY"}, model="molecule", label="V_Br_q-1",
                       defect="V_Br", charge=-1)],
        concentrations=[ConcentrationEntry(campaign=CAMPAIGN, model="GaN-32", result=th),
                        ConcentrationEntry(campaign=CAMPAIGN, model="GaN-32-hot", result=th_hot),
                        ConcentrationEntry(campaign=CAMPAIGN, model="GaN-64",
                                           problem="no finished static results yet")],
        luminescence=[LuminescenceRow(campaign=CAMPAIGN, model="molecule", defect="V_Br_q0",
                                      run_dir="shipped", result=load_shipped(MOLECULE))])


def _expected_order(gan, limit: str, min_cm3: float = 1e12) -> list[tuple]:
    """The ranking rule written out from the source documents (not from the rows)."""
    _, defects, th, th_hot = gan
    keys = []
    for model, doc in (("GaN-32", th), ("GaN-32-hot", th_hot)):
        sol = doc.at_limit(limit).quenched
        total = sol.total_concentrations_cm3["V_N"]
        for label, d in defects.items():
            conc = next(c.concentration_cm3 for c in sol.concentrations if c.charge == d.charge)
            keys.append(((total < min_cm3, 1, abs(d.verdict.pl_transition_eV - _ev(PL_NM)),
                          -conc), (model, "V_N", d.charge)))
    # the molecule's emission (no concentration: not filtered), then the rows with nothing
    keys.append(((False, 0, 0.0, 0.0), ("molecule", "V_Br", 0)))
    keys += [((False, 2, 0.0, 0.0), ("GaN-64", "V_N", 0)),
             ((False, 2, 0.0, 0.0), ("molecule", "V_Br", 1))]
    return [k for _, k in sorted(keys)]


@pytest.mark.parametrize("limit", ["off-region low mu_N", "N-rich"])
def test_rows_are_ranked_by_the_stated_rule(gan, table, limit):
    """Emission first, then the Kohn-Sham screens by |deviation|, the higher concentration of
    equal screens first (the hotter synthesis), the rows with nothing last; at N-rich (V_N
    totals ~1e4 cm^-3) every GaN row falls below the 1e12 cm^-3 threshold and goes last."""
    from perovdefect.candidates import candidate_table
    out = candidate_table(table, PL_NM, FWHM_NM, TAU_NS, limit=limit, campaign=CAMPAIGN)
    got = [(r.model, r.defect, r.charge) for r in out.rows]
    assert got == _expected_order(gan, limit)
    assert [r.rank for r in out.rows] == list(range(1, len(got) + 1))
    assert "1e+12 cm^-3" in out.ranking_rule
    assert out.limit_rule == f"the chemical-potential limit {limit!r}"
    assert ("molecule", "V_Br", -1) not in got  # no finished step: not computed
    gan_rows = [r for r in out.rows if r.model.startswith("GaN-32")]
    assert all(r.below_threshold for r in gan_rows) == (limit == "N-rich")
    assert not any(r.below_threshold for r in gan_rows) == (limit != "N-rich")
    if limit != "N-rich":  # equal screens: 1500 K before 1300 K for every charge
        pairs = [(r.model, r.charge) for r in gan_rows]
        assert pairs[0::2] == [("GaN-32-hot", q) for _, q in pairs[1::2]]


def test_rows_carry_the_documents_numbers_and_say_what_is_missing(gan, table):
    """Concentration after synthesis (frozen at 300 K, first limit by default), state counts,
    the screen and the emission against the measurement, each equal to its source document."""
    from perovdefect.candidates import candidate_table
    from perovdefect.optics.shipped import load_shipped
    _, defects, th, _ = gan
    out = candidate_table(table, PL_NM, FWHM_NM, TAU_NS, campaign=CAMPAIGN)
    assert out.limit_rule.startswith("the first chemical-potential limit")
    assert out.measured_pl_eV == pytest.approx(_ev(PL_NM), abs=1e-9)
    rows = {(r.model, r.defect, r.charge): r for r in out.rows}
    first = th.limits[0]
    for label, d in defects.items():
        r = rows[("GaN-32", "V_N", d.charge)]
        c = r.concentration
        assert (c.limit, c.mode, c.temperature_K) == (first.limit, "frozen", 300.0)
        assert c.conditions == "frozen at 300 K after equilibrium at 1300 K"
        assert c.concentration_cm3 == next(x.concentration_cm3 for x in
                                           first.quenched.concentrations if x.charge == d.charge)
        assert c.defect_total_cm3 == first.quenched.total_concentrations_cm3["V_N"]
        assert c.fermi_level_above_vbm_eV == first.quenched.fermi_level_above_vbm_eV
        kinds = [s.kind for s in d.in_gap_states]
        assert (r.states.defect_states, r.states.perturbed_host_states) == (
            kinds.count("defect"), kinds.count("perturbed_host"))
        assert r.screen.transition_eV == d.verdict.pl_transition_eV
        assert r.screen.deviation_eV == pytest.approx(d.verdict.pl_transition_eV - _ev(PL_NM),
                                                      abs=1e-9)
        assert r.screen.deviation_nm == pytest.approx(d.verdict.pl_transition_nm - PL_NM)
        assert r.label == label and r.ranked_by == "Kohn-Sham screen"
        assert r.missing == ["no luminescence chain for this defect and charge"]
    assert rows[("GaN-32", "V_N", 0)].states.perturbed_host_states >= 1  # the GaN V_N0 case
    lum = load_shipped(MOLECULE)
    e = rows[("molecule", "V_Br", 0)].emission
    assert rows[("molecule", "V_Br", 0)].rank == 1
    assert (e.predicted_peak_nm, e.predicted_fwhm_nm) == (lum.spectrum.peak_nm,
                                                          lum.spectrum.fwhm_nm)
    assert e.peak_deviation_nm == pytest.approx(lum.spectrum.peak_nm - PL_NM)
    assert e.peak_deviation_eV == pytest.approx(lum.spectrum.peak_eV - _ev(PL_NM), abs=1e-9)
    assert e.fwhm_deviation_nm == pytest.approx(lum.spectrum.fwhm_nm - FWHM_NM)
    # the comparison the luminescence chain itself made against the same measurement
    assert e.peak_deviation_nm == pytest.approx(lum.comparison.peak_deviation_nm)
    assert e.fwhm_deviation_nm == pytest.approx(lum.comparison.fwhm_deviation_nm)
    tau = lum.radiative.radiative_lifetime_ns
    assert e.radiative_lifetime_ns == tau
    assert e.lifetime_ratios == {"ON (brightest level)": pytest.approx(tau / 12.0)}
    assert e.route == "delta-scf" and e.origin.startswith("shipped result")
    missing = {k: r.missing for k, r in rows.items()}
    assert any("no level analysis" in m for m in missing[("molecule", "V_Br", 0)])
    assert any("no Fermi level was solved" in m for m in missing[("molecule", "V_Br", 0)])
    assert "no concentration: no finished static results yet" in missing[("GaN-64", "V_N", 0)]
    assert len(missing[("molecule", "V_Br", 1)]) == 3
    assert rows[("molecule", "V_Br", 1)].ranked_by == "nothing"


def test_a_chains_hybrid_correction_ranks_it(tmp_path):
    """A chain with hybrid single points is ranked by its corrected peak (with the SOC estimate
    where there is one, else the hybrid's), not its PBE peak: the shipped 21-atom crystal
    result (PBE 429 nm, HSE06+SOC estimate 417 nm) against copies of itself, one without any
    correction (PBE only) and one without the SOC estimate. Model names are chosen so that the
    tie-break (model name) would give a different order from the rule's."""
    from perovdefect.candidates import candidate_table
    from perovdefect.optics.shipped import load_shipped
    from perovdefect.workflows.table import CampaignTable, LuminescenceRow
    crystal = load_shipped("Cs4PbBr6_V_Br_q0_21atoms.json")
    lc = crystal.level_correction
    assert lc is not None and lc.corrected_soc_pl_peak_nm is not None
    pbe_only = crystal.model_copy(update={"level_correction": None})
    no_soc = crystal.model_copy(update={"level_correction": lc.model_copy(update={
        "soc_estimate": None, "corrected_soc_pl_peak_eV": None,
        "corrected_soc_pl_peak_nm": None})})

    def row(model, result):
        return LuminescenceRow(campaign=CAMPAIGN, model=model, defect="V_Br_q0",
                               run_dir="shipped", result=result)

    table = CampaignTable(project="p", luminescence=[
        row("a-hse06-soc", crystal), row("b-hse06", no_soc), row("c-pbe", pbe_only)])
    out = candidate_table(table, PL_NM, FWHM_NM, campaign=CAMPAIGN)
    rows = {r.model: r.emission for r in out.rows}
    pl = _ev(PL_NM)
    assert rows["c-pbe"].corrected_peak_nm is None and rows["c-pbe"].corrected_by is None
    assert rows["a-hse06-soc"].corrected_peak_nm == lc.corrected_soc_pl_peak_nm
    assert "SOC estimated from Kohn-Sham levels" in rows["a-hse06-soc"].corrected_by
    assert rows["b-hse06"].corrected_peak_nm == lc.corrected_pl_peak_nm
    assert rows["b-hse06"].corrected_by == lc.level_of_theory
    assert rows["a-hse06-soc"].corrected_deviation_nm == pytest.approx(
        lc.corrected_soc_pl_peak_nm - PL_NM)
    assert rows["a-hse06-soc"].corrected_warnings == lc.warnings != []  # e.g. a SOC weight
    for e in rows.values():  # the PBE chain's own comparison is kept beside the correction
        assert e.predicted_peak_nm == crystal.spectrum.peak_nm
    # |deviation| from 517 nm (2.398 eV): PBE 429 nm < HSE06+SOC 417 nm < HSE06 374 nm
    devs = {m: abs(e.ranking_deviation_eV) for m, e in rows.items()}
    assert devs["a-hse06-soc"] == pytest.approx(abs(lc.corrected_soc_pl_peak_eV - pl))
    assert devs["c-pbe"] < devs["a-hse06-soc"] < devs["b-hse06"]
    assert [r.model for r in out.rows] == ["c-pbe", "a-hse06-soc", "b-hse06"]
    assert "highest level of theory" in out.ranking_rule


def test_bad_arguments_are_clear_errors(table):
    from perovdefect.candidates import candidate_table
    from perovdefect.errors import AnalysisError
    with pytest.raises(AnalysisError, match="limit 'Ga-rich'.*N-rich"):
        candidate_table(table, PL_NM, limit="Ga-rich")
    with pytest.raises(AnalysisError, match="measured_pl_nm: must be > 0"):
        candidate_table(table, 0.0)
    with pytest.raises(AnalysisError, match="measured lifetime 'ON' \\(ns\\): must be > 0"):
        candidate_table(table, PL_NM, measured_lifetimes_ns={"ON": -1.0})


def test_collect_ranks_each_campaign_with_a_measured_pl(table, tmp_path):
    """`campaign collect` adds one table per campaign whose YAML gives pl_nm (its
    luminescence pl_fwhm_nm as the width); a campaign without pl_nm gets none."""
    from perovdefect.candidates import campaign_candidates, candidate_table
    from perovdefect.workflows.campaign import collect, submit
    spec = {"name": CAMPAIGN, "code": "gpaw", "tier": "pbe", "relax": False, "pl_nm": PL_NM,
            "luminescence": {"pl_fwhm_nm": FWHM_NM},
            "models": [{"compound": "Cs4PbBr6", "model": "cluster",
                        "cluster": "pbbr6-octahedron", "padding_A": 4.0, "charges": [0]}],
            "settings": {"mode": "lcao", "grid_spacing_A": 0.25}}
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / f"{CAMPAIGN}.yaml").write_text(yaml.safe_dump(spec))
    (out,) = campaign_candidates(tmp_path / "campaigns", table)
    assert out == candidate_table(table, PL_NM, FWHM_NM, campaign=CAMPAIGN)
    # the real collect of a submitted (not yet run) campaign: the table is there, empty
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(spec))
    submit(path, tmp_path / "proj")
    (t,) = collect(tmp_path / "proj").candidates
    assert (t.campaign, t.measured_pl_nm, t.measured_fwhm_nm, t.rows) == (
        CAMPAIGN, PL_NM, FWHM_NM, [])
    path.write_text(yaml.safe_dump({**spec, "name": "nopl", "pl_nm": None}))
    submit(path, tmp_path / "proj2")
    assert collect(tmp_path / "proj2").candidates == []


def _section(html: str) -> str:
    text = html_text(html.split('<section id="candidates">')[1].split('<section id="pl">')[0])
    return " ".join(text.split())


def test_report_section_and_rebuild(table, tmp_path):
    """`report --campaign results.json`: the collected candidate table in report.json (typed)
    and as a table in the HTML; `report --from` draws the same section; `--pl` ranks again
    against the fitted peak."""
    import numpy as np
    from click.testing import CliRunner

    from perovdefect.candidates import candidate_table
    from perovdefect.cli.main import main
    from perovdefect.report.model import ReportModel
    full = table.model_copy(update={"candidates": [
        candidate_table(table, PL_NM, FWHM_NM, campaign=CAMPAIGN)]})
    full.to_json(tmp_path / "results.json")
    run = CliRunner().invoke
    r = run(main, ["report", "--campaign", str(tmp_path / "results.json"), "-o",
                   str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    m = ReportModel.from_json(tmp_path / "a" / "report.json")
    assert m.candidates == full.candidates
    text = _section((tmp_path / "a" / "report.html").read_text())
    assert "Candidate emitters" in text and "Ranking rule: 1. rows whose defect" in text
    assert "not an emission energy" in text and "517.0 nm" in text
    (cand,) = full.candidates
    for row in cand.rows:
        assert f"{row.model} {row.defect} {row.charge:+d}" in text
        if row.concentration and row.concentration.concentration_cm3:
            assert f"{row.concentration.concentration_cm3:.3e}" in text
        if row.screen:
            assert f"{row.screen.deviation_eV:+.3f}" in text
    e = cand.rows[0].emission
    assert "1 molecule V_Br +0" in text
    assert f"{e.predicted_peak_nm:.1f} {e.peak_deviation_nm:+.1f} - - {e.predicted_fwhm_nm:.1f} "\
           f"{e.radiative_lifetime_ns:.4g} emission" in text
    r = run(main, ["report", "--from", str(tmp_path / "a"), "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert ReportModel.from_json(tmp_path / "b" / "report.json").candidates == m.candidates
    assert _section((tmp_path / "b" / "report.html").read_text()) == text
    # a PL spectrum given to the report: ranked again against its fitted peak and width
    wl = np.linspace(480, 560, 161)
    np.savetxt(tmp_path / "pl.csv", np.c_[wl, np.exp(-0.5 * ((wl - 520.0) / 6.0) ** 2)],
               delimiter=",", header="wavelength_nm,intensity")
    r = run(main, ["report", "--campaign", str(tmp_path / "results.json"), "--pl",
                   str(tmp_path / "pl.csv"), "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    (again,) = ReportModel.from_json(tmp_path / "c" / "report.json").candidates
    assert again.measured_pl_nm == pytest.approx(520.0, abs=0.01)
    assert again.measured_fwhm_nm == pytest.approx(6.0 * 2 * np.sqrt(2 * np.log(2)), rel=1e-3)
    assert again.rows[0].emission.peak_deviation_nm == pytest.approx(
        e.predicted_peak_nm - again.measured_pl_nm)


def test_ranked_at_both_ends_of_the_rich_element(gan, table):
    """Where the concentrations were solved at '<X>-rich' and '<X>-poor', a campaign's
    candidates are ranked at each (which defect exists, so which can glow, turns on that
    chemical potential), else at the first limit; the report's re-ranking keeps the limits."""
    from types import SimpleNamespace

    from perovdefect.candidates import candidate_table, synthesis_limits
    from perovdefect.report.candidates import candidate_view, report_candidates
    assert synthesis_limits(table, CAMPAIGN) == [None]
    assert synthesis_limits(table, CAMPAIGN, "N") == ["N-rich"]

    def relabel(doc):
        return doc.model_copy(update={"limits": [lim.model_copy(update={
            "limit": "N-poor" if lim.limit.startswith("off") else lim.limit})
            for lim in doc.limits]})
    both = table.model_copy(update={"concentrations": [
        c.model_copy(update={"result": relabel(c.result) if c.result else None})
        for c in table.concentrations]})
    limits = synthesis_limits(both, CAMPAIGN, "N")
    assert limits == ["N-rich", "N-poor"]
    tables = [candidate_table(both, PL_NM, FWHM_NM, limit=x, campaign=CAMPAIGN) for x in limits]
    for t, x in zip(tables, limits):
        assert t.limit == x and x in t.limit_rule
        assert {r.concentration.limit for r in t.rows if r.concentration} == {x}
    # V_N totals ~1e4 cm^-3 at N-rich (below the threshold), far more at the low mu_N end
    assert all(r.below_threshold for r in tables[0].rows if r.concentration)
    assert not any(r.below_threshold for r in tables[1].rows if r.concentration)
    again = report_candidates(both.model_copy(update={"candidates": tables}),
                              lifetimes=[SimpleNamespace(level="ON", tau_ns=9.0)])
    assert [t.limit for t in again] == limits
    assert [v["label"] for v in candidate_view(again)] == [f"{CAMPAIGN}, {x}" for x in limits]


def test_unconverged_steps_are_named_on_their_row(table):
    """A ladder step of a defect charge state that did not converge (a relaxation stopped at
    its step limit) is a warning on that row; an unconverged ground-state-search start is
    not (the search chose among them), and other rows get none."""
    from perovdefect.candidates import candidate_table
    from perovdefect.workflows.table import StepRow
    step = {"campaign": CAMPAIGN, "role": "defect", "state": "COMPLETED", "fw_id": 9,
            "model": "GaN-64", "defect": "V_N", "charge": 0, "total_energy_eV": -99.0}
    rows = [StepRow(**step, label="V_N_q0", step="relax", run_dir="r/relax", converged=False),
            StepRow(**step, label="V_N_q0@Rattled", step="relax", run_dir="r/rattled",
                    converged=False)]
    t = candidate_table(table.model_copy(update={"steps": table.steps + rows}), PL_NM,
                        campaign=CAMPAIGN)
    warned = {(r.model, r.defect, r.charge): r.warnings for r in t.rows if r.warnings}
    assert list(warned) == [("GaN-64", "V_N", 0)]
    (w,) = warned[("GaN-64", "V_N", 0)]
    assert "relax step did not converge (r/relax)" in w
