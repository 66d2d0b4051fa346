"""Issue 22, part 4: `perovdefect photons population` on a simulated population of known mix
(single, double and triple emitters, blinking and steady, photobrightening power series and
non-brightening controls, two lifetimes), ~1e5 photons per recording, and a damaged file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.photons.io.ptu_write import write_ptu
from perovdefect.photons.population import PopulationStats, recordings
from perovdefect.photons.simulate import (SEED_STATES, STEADY_STATES, EmitterState,
                                          SimulationParams, simulate)

BLINK = (EmitterState("ON", 0.0105, 9.0, 0.2), EmitterState("OFF", 0.0, 1.0, 0.2))
BLINK_SHORT = (EmitterState("ON", 0.0105, 4.0, 0.2), EmitterState("OFF", 0.0, 1.0, 0.2))
SERIES_N = (0.5, 1.0, 2.0, 3.0)
#: photobrightening: dark emitters switched on at 2 (<N> - 0.5)^2 /s, off at 10 /s
BRIGHTENING = dict(duration_s=3.0, n_dark=8, k_act_hz=2.0, activation_order=2.0,
                   activation_threshold_N=0.5, k_deact_hz=10.0)
GROUP_BY = r"(?P<particle>p\d+)_N(?P<N>[\dp]+)\.ptu"

# particle -> (true M at the lowest <N>, photobrightening or None without a series,
#              levels and g2 disagree, [(<N>, SimulationParams)])
MIX: dict[str, tuple] = {}
for i in range(6):  # steady single emitters, 9 ns
    MIX[f"p{i:02d}"] = (1, None, False, [(1.0, dict(duration_s=3, states=STEADY_STATES))])
for i in range(6, 10):  # blinking doubles, 9 ns and 4 ns
    st = BLINK if i % 2 else BLINK_SHORT
    MIX[f"p{i:02d}"] = (2, None, False, [(1.0, dict(duration_s=4, n_emitters=2, states=st))])
for i in range(10, 13):  # blinking triples
    MIX[f"p{i:02d}"] = (3, None, False, [(1.0, dict(duration_s=6, n_emitters=3,
                                                    states=BLINK))])
for i in range(13, 15):  # steady doubles: one level, but g2 says two emitters
    MIX[f"p{i:02d}"] = (2, None, True, [(1.0, dict(duration_s=2, n_emitters=2,
                                                   states=STEADY_STATES))])
for i in range(15, 18):  # eight photoactivatable emitters above <N> = 0.5 (as the demo's)
    MIX[f"p{i:02d}"] = (1, True, False, [(N, "bright") for N in SERIES_N])
for i in range(18, 20):  # the same ON/GRAY/OFF emitter without dark emitters: saturates
    MIX[f"p{i:02d}"] = (1, False, False, [(N, dict(duration_s=3, states=SEED_STATES))
                                          for N in SERIES_N])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("population")
    for j, (name, (_, _, _, recs)) in enumerate(MIX.items()):
        for k, (N, kw) in enumerate(recs):
            seed = 1000 + 10 * j + k
            p = (SimulationParams(**BRIGHTENING, excitation_N=N, seed=seed) if kw == "bright"
                 else SimulationParams(excitation_N=N, seed=seed, **kw))
            write_ptu(d / f"{name}_N{N:g}.ptu".replace(".", "p", 1)
                      if "." in f"{N:g}" else d / f"{name}_N{N:g}.ptu", simulate(p))
    # a damaged recording among them: a PTU header cut short
    (d / "p99_N1.ptu").write_bytes(b"PQTTTR\0\0" + b"1.0.00\0\0" + b"\x01" * 40)
    return d


def test_names_are_grouped_into_particles(folder):
    recs = recordings([folder], GROUP_BY)
    assert {r.particle for r in recs} == set(MIX) | {"p99"}
    assert sorted(r.excitation_N for r in recs if r.particle == "p15") == list(SERIES_N)


def test_population_recovers_the_mix_and_resumes(folder, tmp_path):
    out = tmp_path / "pop"
    args = ["photons", "population", str(folder), "-o", str(out), "--group-by", GROUP_BY,
            "--background-cps", "750", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    doc = PopulationStats.from_json(out / "population.json")
    assert (out / "population.png").stat().st_size > 10_000
    # the damaged file is reported, the rest analysed
    assert list(doc.failed) == [str(folder / "p99_N1.ptu")]
    assert "p99_N1.ptu" in r.stderr
    rows = {row.particle: row for row in doc.particles}
    for name, (M, bright, disagree, _) in MIX.items():
        row = rows[name]
        assert row.n_emitters is not None, name
        assert abs(row.n_emitters - M) < 3 * row.n_emitters_err + 0.15, (name, row)
        assert row.single_emitter == (M == 1), name
        assert row.photobrightening == bright, (name, row.intensity_exponent)
        assert row.levels_g2_agree == (not disagree), (name, row)
    # lifetimes: 9 ns and 4 ns doubles
    assert rows["p06"].levels[-1].tau_ns == pytest.approx(4.0, rel=0.1)
    assert rows["p07"].levels[-1].tau_ns == pytest.approx(9.0, rel=0.1)
    # the fractions, against the known mix, within their binomial errors
    n = len(MIX)
    truth = {"single_emitter": sum(m[0] == 1 for m in MIX.values()) / n,
             "multi_emitter": sum(m[0] > 1 for m in MIX.values()) / n,
             "photobrightening": 3 / 5,
             "levels_g2_disagree": sum(m[2] for m in MIX.values()) / n}
    for name, p in truth.items():
        f = doc.fractions[name]
        assert abs(f.fraction - p) <= 2 * f.fraction_err + 1e-12, (name, f)
    assert doc.fractions["photobrightening"].n == 5
    printed = json.loads(r.stdout)
    assert printed["fractions"]["single_emitter"]["k"] == doc.fractions["single_emitter"].k
    # a rerun analyses nothing that is finished (only the damaged file is tried again)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "recordings").iterdir()}
    r2 = CliRunner().invoke(main, args)
    assert r2.exit_code == 0, r2.output
    again = PopulationStats.from_json(out / "population.json")
    assert again.n_reused == again.n_recordings - 1
    assert {p.name: p.stat().st_mtime_ns for p in (out / "recordings").iterdir()} == stamps
    assert again.fractions == doc.fractions


def test_bad_inputs_are_one_line_errors(folder, tmp_path):
    r = CliRunner().invoke(main, ["photons", "population", str(folder), "-o",
                                  str(tmp_path / "x"), "--group-by", "q(\\d+"])
    assert r.exit_code != 0 and "not a regular expression" in r.output
    r = CliRunner().invoke(main, ["photons", "population", str(folder / "p00_N1.ptu"), "-o",
                                  str(tmp_path / "x"), "--group-by", "zzz(\\d)"])
    assert r.exit_code != 0 and "does not match" in r.output
    assert "Traceback" not in r.output


def test_report_shows_the_population(folder, tmp_path):
    """`report --population`: the section (per-particle table, fractions, figure) in the HTML
    and the typed population, fractions included, in report.json."""
    from perovdefect.report.model import ReportModel
    files = [str(folder / f) for f in ("p00_N1.ptu", "p06_N1.ptu", "p10_N1.ptu", "p99_N1.ptu")]
    out = tmp_path / "pop"
    r = CliRunner().invoke(main, ["photons", "population", *files, "-o", str(out),
                                  "--group-by", GROUP_BY, "--background-cps", "750"])
    assert r.exit_code == 0, r.output
    doc = PopulationStats.from_json(out / "population.json")
    rep = tmp_path / "report"
    r = CliRunner().invoke(main, ["report", "--population", str(out), "-o", str(rep)])
    assert r.exit_code == 0, r.output
    html = (rep / "report.html").read_text()
    section = html[html.index('<section id="population">'):]
    section = section[:section.index("</section>")]
    for name in ("p00", "p06", "p10"):
        assert f"<td>{name}</td>" in section
    assert 'alt="population.png" src="data:image/png;base64,' in section
    assert (rep / "figures" / "population.png").stat().st_size > 10_000
    single = doc.fractions["single_emitter"]
    assert single.k == 1 and single.n == 3  # one single, one double, one triple
    assert f"{single.fraction:.3f} +- {single.fraction_err:.3f}" in section
    assert "p99_N1.ptu" in section and "Recordings not analysed" in section
    model = ReportModel.from_json(rep / "report.json")
    assert model.population is not None and model.population.fractions == doc.fractions
    assert json.loads((rep / "report.json").read_text())["population"]["fractions"][
        "multi_emitter"]["k"] == 2
    assert str(out / "population.json") in model.provenance.input_files
    # a file that is not a population document: one line, no traceback
    r = CliRunner().invoke(main, ["report", "--population", str(folder / "p00_N1.ptu"),
                                  "-o", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "PopulationStats" in r.output and "Traceback" not in r.output
