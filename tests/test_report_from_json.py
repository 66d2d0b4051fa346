"""Issue 20: `perovdefect report --from report.json -o DIR` rebuilds the same report from its typed
model alone (the HTML's numbers and the data every figure draws), the report shows the level of
theory of its calculations, and a report.json of another version, of another kind or corrupted
is one line of error.

Real inputs, no DFT run: the V_N GaN vasprun.xml set (../shared/data/vasp; levels and a
formation-energy diagram), the shipped luminescence result, a simulated PL spectrum and three
simulated TCSPC recordings of one particle (PTU files) analysed by `photons population`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.demo import demo_photon_params, write_pl_spectrum
from perovdefect.optics.shipped import DEMO_RESULT, shipped_dir
from perovdefect.photons.io.ptu_write import write_ptu
from perovdefect.photons.simulate import simulate
from perovdefect.report.model import ReportModel
from tests.conftest import html_text

GAN = ("pmgad_v_N_GaN_bulk", "pmgad_v_N_GaN_q0", "pmgad_v_N_GaN_q+1", "pmgad_v_N_GaN_q-1")
SERIES_N = ("0p25", "1", "2")


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def reports(tmp_path_factory, shared_data):
    """(the report built from the inputs, the report rebuilt from its report.json alone)."""
    root = tmp_path_factory.mktemp("from_json")
    inp = root / "inputs"
    (inp / "photons").mkdir(parents=True)
    vasp = {name: shared_data / "vasp" / name for name in GAN}
    for i, n in enumerate(SERIES_N):
        write_ptu(inp / "photons" / f"p00_N{n}.ptu",
                  simulate(demo_photon_params(float(n.replace("p", ".")), 2.0, seed=300 + i)))
    r = cli("photons", "population", str(inp / "photons"), "-o", str(inp / "pop"),
            "--group-by", r"(?P<particle>p\d+)_N(?P<N>[\dp]+)\.ptu", "--background-cps", "750")
    assert r.exit_code == 0, r.output
    stats = sorted((inp / "pop" / "recordings").glob("*.photonstats.json"))
    assert len(stats) == 3
    (inp / "mu.json").write_text(json.dumps({"N-rich": {"N": -8.3}, "N-poor": {"N": -9.6}}))
    r = cli("formation", "--bulk", str(vasp[GAN[0]]), *[a for name in GAN[1:] for a in
                                                        ("--defect", str(vasp[name]))],
            "--chempots", str(inp / "mu.json"), "--correction", "none", "--name", "V_N",
            "-o", str(inp / "formation.json"))
    assert r.exit_code == 0, r.output
    pl = write_pl_spectrum(inp / "pl.csv")
    wl = np.arange(300.0, 500.0, 2.0)
    (inp / "absorption.csv").write_text("wavelength_nm,absorbance\n" + "\n".join(
        f"{w:g},{1 / (1 + np.exp((w - 420.0) / 8.0)):.5f}" for w in wl))
    shutil.copy(shipped_dir() / DEMO_RESULT, inp / "luminescence.json")
    first = root / "first"
    r = cli("report", "--host", str(vasp[GAN[0]]), "--defect", str(vasp[GAN[1]]),
            "--defect", str(vasp[GAN[2]]), "--pl", str(pl),
            "--absorption", str(inp / "absorption.csv"),
            *[a for s in stats for a in ("--photons", str(s))], "--excitation-N", "0.25,1,2",
            "--population", str(inp / "pop"), "--formation", str(inp / "formation.json"),
            "--luminescence", str(inp / "luminescence.json"), "--compound", "CsPbBr3",
            "--title", "GaN V_N levels <and> photons", "-o", str(first))
    assert r.exit_code == 0, r.output
    # the rebuilt report may read nothing but report.json: every input is gone
    shutil.rmtree(inp)
    again = root / "again"
    r = cli("report", "--from", str(first / "report.json"), "-o", str(again))
    assert r.exit_code == 0, r.output
    return first, again


NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def html_numbers(path: Path) -> list[str]:
    return NUMBER.findall(html_text(path.read_text()))


def test_rebuilt_html_shows_the_same_numbers(reports):
    first, again = reports
    a, b = html_numbers(first / "report.html"), html_numbers(again / "report.html")
    assert len(a) > 500  # every section holds numbers: a real comparison, not two empty pages
    assert a == b
    m = ReportModel.from_json(first / "report.json")
    (f,) = m.formation
    text = " ".join(a)
    for t in f.diagram.transition_levels:  # numbers the reader looks for are among them
        assert f"{t.level_above_vbm_eV:.3f}" in text
    assert f"{m.particles[0].g2_0:.3f}" in text and f"{m.emission.predicted_peak_nm:.3f}" in text


def test_rebuilt_figures_draw_the_same_data(reports):
    first, again = reports
    names = {p.name for p in (first / "figures").glob("*.png")}
    assert names == {p.name for p in (again / "figures").glob("*.png")}
    for expected in ("level_diagram.png", "pl_spectrum.png", "absorption.png",
                     "formation0.png", "cc0.png", "pl_overlay0.png", "power_series.png",
                     "population.png", "particle0_trace.png", "particle2_g2.png"):
        assert expected in names
    drawn = json.loads((first / "figures" / "data.json").read_text())
    assert set(drawn) == names
    assert drawn == json.loads((again / "figures" / "data.json").read_text())
    # the data are what the model holds: each figure is drawn from its part of the model
    m = ReportModel.from_json(again / "report.json")
    trace = drawn["particle0_trace.png"]["axes"][0]["lines"][0]["xy"]
    assert [y for _, y in trace] == m.photon_stats[0].trace_counts
    (ax,) = drawn["formation0.png"]["axes"]
    lines = {ln["xy"][0][0] for ln in ax["lines"] if len(ln["xy"]) == 2}  # axvline: 2 points
    assert lines == {t.level_above_vbm_eV for t in m.formation[0].diagram.transition_levels}
    levels = {xy[0][1] for ln in drawn["level_diagram.png"]["axes"][0]["lines"]
              for xy in [ln["xy"]] if len(xy) == 2 and xy[0][1] == xy[1][1]}
    assert {s.energy_above_vbm_eV for s in m.in_gap_states} <= levels
    spectrum = drawn["pl_spectrum.png"]["axes"][0]["lines"][0]["xy"]
    assert [x for x, _ in spectrum] == m.pl.spectrum.wavelength_nm


def test_report_shows_the_level_of_theory(reports):
    """The provenance names each run's level of theory as its backend recorded it: the GaN
    runs are PBEsol, 420 eV, PAW_PBE Ga_d (06Jul2010) and N (08Apr2002) POTCARs (their
    vasprun.xml)."""
    first, _ = reports
    m = ReportModel.from_json(first / "report.json")
    runs = {c.run: c.theory for c in m.provenance.calculations}
    assert set(runs) == set(GAN[:3])
    for t in runs.values():
        assert (t.code, t.functional, t.cutoff_eV, t.soc) == ("vasp", "PBEsol", 420.0, False)
        assert [p.label() for p in t.potentials] == ["PAW_PBE Ga_d 06Jul2010",
                                                     "PAW_PBE N 08Apr2002"]
    text = html_text((first / "report.html").read_text().split('<section id="provenance">')[1])
    assert "Level of theory" in text and "PBEsol" in text and "PAW_PBE Ga_d 06Jul2010" in text


def _one_line_error(r, *words: str) -> None:
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "Traceback" not in r.output
    for w in words:
        assert w in lines[0], lines[0]


def test_bad_report_json_is_one_line(reports, tmp_path):
    first, _ = reports
    data = json.loads((first / "report.json").read_text())
    older = tmp_path / "older" / "report.json"
    older.parent.mkdir()
    older.write_text(json.dumps({**data, "schema_version": 2}))
    _one_line_error(cli("report", "--from", str(older), "-o", str(tmp_path / "a")),
                    "report.json", "schema version 2", "perovdefect report")
    other = tmp_path / "other.json"  # a report.json of another layout (a field renamed)
    other.write_text(json.dumps({**{k: v for k, v in data.items() if k != "particles"},
                                 "particle_rows": data["particles"]}))
    _one_line_error(cli("report", "--from", str(other), "-o", str(tmp_path / "b")),
                    "other.json", "particle_rows", "not a report.json written by this")
    cut = tmp_path / "cut.json"
    text = (first / "report.json").read_text()
    cut.write_text(text[: len(text) // 2])
    _one_line_error(cli("report", "--from", str(cut), "-o", str(tmp_path / "c")),
                    "cut.json", "not a readable ReportModel JSON")
    _one_line_error(cli("report", "--from", str(tmp_path / "missing"), "-o",
                        str(tmp_path / "d")), "missing", "no such report.json")
    _one_line_error(cli("report", "--from", str(first), "--pl", str(cut), "-o",
                        str(tmp_path / "e")), "--pl", "no other input")
    for folder in "abcde":
        assert not (tmp_path / folder / "report.html").exists()
