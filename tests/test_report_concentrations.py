"""Issue 21: the report's "Fermi level and defect concentrations" section, from a
`formation --fermi` result and from a campaign table's concentration rows, kept in report.json
(typed) so that `report --from` rebuilds it.

Real inputs, no DFT run: the V_N in GaN set of ../shared/data/vasp (the 32-atom bulk and the
q=-1, 0, +1, +2 vacancy cells), solved by perovdefect.thermo.concentrations as
tests/test_fermi_cli.py does (which checks the numbers against py-sc-fermi); the chemical
potentials are test inputs. Here the report must carry and show those numbers unchanged."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from tests.conftest import html_text

CHARGES = ("q-1", "q0", "q+1", "q+2")
LIMITS = {"N-rich": {"Ga": -3.0, "N": -8.3}, "off-region low mu_N": {"Ga": 0.0, "N": -10.9}}


@pytest.fixture(scope="module")
def formation(shared_data):
    """The V_N FormationResult with its thermodynamics at 1300 K, quenched to 300 K."""
    from perovdefect.parsers import parse
    from perovdefect.thermo.calculations import formation_from_calculations
    from perovdefect.thermo.concentrations import solve_thermodynamics
    root = shared_data / "vasp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = parse(root / "pmgad_v_N_GaN_bulk")
        docs = [parse(root / f"pmgad_v_N_GaN_{q}") for q in CHARGES]
    result = formation_from_calculations(host, docs, None, LIMITS, "none", None, "V_N")
    result.thermodynamics = solve_thermodynamics(result, host, 1300.0, 300.0)
    return result


def _text(html: str) -> str:
    return html_text(html)


def _section_text(html: str) -> str:
    return _text(html.split('<section id="concentrations">')[1].split('<section id="pl">')[0])


def _numbers(html: str) -> list[str]:
    return re.findall(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?", _text(html))


def test_report_shows_fermi_levels_and_concentrations(formation, shared_data, tmp_path):
    """`report --formation F.json --campaign results.json`: the formation result's
    thermodynamics and the campaign's concentration rows (one solved, one with its problem)."""
    from click.testing import CliRunner

    from perovdefect.cli.main import main
    from perovdefect.report import analyses_from_documents, campaign_extras, rebuild_report
    from perovdefect.report.model import ReportModel
    from perovdefect.workflows.table import CampaignTable, ConcentrationEntry, FormationEntry
    th = formation.thermodynamics
    bare = formation.model_copy(update={"thermodynamics": None})
    root = shared_data / "vasp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyses = analyses_from_documents(root / "pmgad_v_N_GaN_bulk",
                                           [root / "pmgad_v_N_GaN_q0"])
    table = CampaignTable(project="p", analyses=analyses, formation=[FormationEntry(
        campaign="gan", model="GaN-32", defect="V_N", step="static", result=bare)],
        concentrations=[ConcentrationEntry(campaign="gan", model="GaN-32", result=th),
                        ConcentrationEntry(campaign="gan", model="GaN-64",
                                           problem="no finished static results yet")])
    camp_formation, _, entries = campaign_extras(table)
    assert camp_formation == [bare] and entries == table.concentrations
    table.to_json(tmp_path / "results.json")
    formation.to_json(tmp_path / "formation.json")
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["report", "--campaign", str(tmp_path / "results.json"),
                                  "--formation", str(tmp_path / "formation.json"),
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    # report.json: the typed part holds the documents' numbers unchanged
    m = ReportModel.from_json(out / "report.json")
    assert [(s.label, s.problem) for s in m.concentrations] == [
        ("V_N", None), ("gan/GaN-32", None), ("gan/GaN-64", "no finished static results yet")]
    assert m.concentrations[0].result == th == m.concentrations[1].result
    raw = json.loads((out / "report.json").read_text())["concentrations"][0]["result"]
    for lim, doc in zip(raw["limits"], th.limits):
        assert lim["equilibrium"]["fermi_level_above_vbm_eV"] == \
            doc.equilibrium.fermi_level_above_vbm_eV
        assert lim["quenched"]["electrons_cm3"] == doc.quenched.electrons_cm3
    # the HTML: the Fermi level, n and p per limit at both temperatures, every concentration,
    # the DOS provenance and the assumptions beside them; the campaign model's problem
    html = (out / "report.html").read_text()
    text = _section_text(html)
    assert "Fermi level and defect concentrations" in html
    for lim in th.limits:
        assert lim.limit in text
        for sol in (lim.equilibrium, lim.quenched):
            assert f"{sol.fermi_level_above_vbm_eV:.4f}" in text
            assert f"{sol.electrons_cm3:.3e}" in text and f"{sol.holes_cm3:.3e}" in text
            for c in sol.concentrations:
                assert f"{c.concentration_cm3:.3e}" in text, c
            assert f"{sol.total_concentrations_cm3['V_N']:.3e}" in text
    assert "frozen at 300 K" in text and "E_F at 1300 K" in text
    assert "0.005 eV of the eigenvalues at 1 explicit k-point" in text and th.host_dos.kpoints in text
    assert all(a in text for a in th.assumptions) and "no finished static results yet" in text
    # physics carried through: the off-region limit is donor-dominated (E_F above mid-gap)
    off = th.at_limit("off-region low mu_N").equilibrium
    assert off.fermi_level_above_vbm_eV > th.host_dos.band_gap_eV / 2
    # the figure draws the model's numbers, recorded in figures/data.json
    drawn = json.loads((out / "figures" / "data.json").read_text())
    assert "concentrations0.png" in drawn and "concentrations1.png" in drawn
    assert "concentrations2.png" not in drawn  # a model without a result has no figure
    fermi_ax, conc_ax = drawn["concentrations0.png"]["axes"]
    lines = {ln["label"]: [y for _, y in ln["xy"]] for ln in fermi_ax["lines"]}
    assert lines["equilibrium, 1300 K"] == [lim.equilibrium.fermi_level_above_vbm_eV
                                           for lim in th.limits]
    assert lines["frozen, 300 K"] == [lim.quenched.fermi_level_above_vbm_eV for lim in th.limits]
    assert conc_ax["yscale"] == "log"
    conc = {ln["label"]: [y for _, y in ln["xy"]] for ln in conc_ax["lines"]}
    q1 = [next(c.concentration_cm3 for c in lim.equilibrium.concentrations if c.charge == 1)
          for lim in th.limits]
    assert conc["V_N +1"] == q1 and conc["holes p"] == [lim.equilibrium.holes_cm3
                                                         for lim in th.limits]
    # report --from: the same section and figures from report.json alone
    again = tmp_path / "again"
    rebuild_report(out / "report.json", again)
    assert _numbers((again / "report.html").read_text()) == _numbers(html)
    assert json.loads((again / "figures" / "data.json").read_text()) == drawn
