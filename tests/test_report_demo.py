"""Issue 6: the main job (`perovdefect demo`) end to end, the report in headless Chromium, and
bad inputs to `perovdefect report`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from perovdefect.calcs.gpaw import gpaw_available
from perovdefect.photons.analysis.pipeline import analyze_stream
from perovdefect.photons.simulate import SimulationParams, simulate
from perovdefect.report import ReportInputs, build_report
from tests.conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ("summary", "levels", "pl", "photons", "power-series", "provenance")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    if not gpaw_available():
        pytest.skip("GPAW not installed")
    out = tmp_path_factory.mktemp("demo") / "out"
    r = run_cli("demo", "-o", str(out), "--quick")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"output folder: {out}" in r.stdout.replace("\n", "")
    return out


@pytest.mark.slow
def test_demo_report_holds_in_gap_state_and_g2(demo_dir):
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert (demo_dir / "report.html").stat().st_size > 100_000
    assert (demo_dir / "report.pdf").stat().st_size > 10_000
    occupied = [s for s in summary["in_gap_states"] if s["occupation"] > 0.5
                and s["kind"] == "defect"]
    assert occupied, "no occupied defect state in the demo report"
    gap = summary["host_gaps"][0]["gap_eV"]
    (state,) = [s for s in summary["in_gap_states"] if s["compared_with_pl"]]
    assert state in occupied
    assert 0 < state["energy_above_vbm_eV"] < gap and 0 < state["ipr"] <= 1
    assert abs(state["deviation_from_pl_eV"]) < 0.5  # PBE level vs the 517 nm PL
    # below the photobrightening threshold the particle is one emitter: g2(0) = 1 - 1/1 = 0
    low = [p for p in summary["particles"] if p["excitation_N"] <= 0.5]
    assert low and all(abs(p["g2_0"]) < 2 * p["g2_0_err"] + 0.02 for p in low)
    high = [p for p in summary["particles"] if p["excitation_N"] >= 1.5]
    assert all(p["n_emitters"] > 1.5 for p in high)  # activated emitters join
    assert summary["power_series"]["mean_intensity_fit"]["exponent"] > 1.0
    for name in ("level_diagram.png", "pl_spectrum.png", "power_series.png",
                 "particle0_g2.png", "particle0_trace.png"):
        assert (demo_dir / "figures" / name).stat().st_size > 5000
    prov = summary["provenance"]
    assert prov["versions"]["gpaw"] != "not installed"
    assert any(k.endswith(".ptu") for k in prov["input_files"])
    assert all(len(v) == 64 for v in prov["input_files"].values())  # sha256


@pytest.mark.slow
def test_demo_headline_is_the_predicted_emission(demo_dir):
    """The main job headlines a total-energy emission with its line shape and radiative
    lifetime beside the measured PL and photon lifetimes (issue 18), labelled as the shipped
    result it is (its model's limitation stated); the Kohn-Sham level is shown as a screen, after it."""
    from perovdefect.optics.shipped import load_shipped
    summary = json.loads((demo_dir / "summary.json").read_text())
    e = summary["emission"]
    shipped = load_shipped().summary()
    assert e["model"] == load_shipped().model
    limitation = "periodic supercell of 21 atoms" if e["model"] == "periodic" else \
        "isolated cluster"
    assert any(limitation in x for x in e["limitations"]), e["limitations"]
    assert e["predicted_peak_nm"] == pytest.approx(shipped["predicted_pl_peak_nm"])
    assert e["predicted_fwhm_nm"] == pytest.approx(shipped["predicted_pl_fwhm_nm"])
    assert e["measured_peak_nm"] == pytest.approx(517, abs=2)  # the fitted demo spectrum
    assert e["radiative_lifetime_ns"] > 0 and "shipped result" in e["origin"]
    assert "regenerate with" in e["origin"]
    levels = {m["level"].split()[0]: m["tau_ns"] for m in e["measured_lifetimes"]}
    assert levels["ON"] == pytest.approx(9.0, rel=0.2)  # the simulated particles' tau_ON
    assert e["lifetime_ratios"]["ON (brightest level)"] == pytest.approx(
        e["radiative_lifetime_ns"] / levels["ON"])
    html = (demo_dir / "report.html").read_text()
    body = html.split('<section id="summary">')[1]
    assert body.index("Predicted emission") < body.index("Kohn-Sham")
    assert "a screen, not an emission energy" in body
    lc = load_shipped().level_correction
    if load_shipped().model == "periodic":  # the crystal ships with its hybrid single points
        assert lc is not None
    if lc is not None:  # the hybrid (+SOC estimate) beside the PBE headline, said as what it is
        assert e["hybrid_peak_nm"] == pytest.approx(lc.corrected_pl_peak_nm)
        assert lc.level_of_theory in e["hybrid_note"]
        assert "With hybrid single points" in body
        assert any("single points at the PBE minima" in x for x in e["limitations"])
        if lc.soc_estimate is not None:
            assert "SOC (estimate)" in e["hybrid_note"] and "Kohn-Sham" in e["hybrid_note"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/setup.sh "
                    "installs Debian's chromium when run as root)")
def test_report_in_headless_chromium(demo_dir, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(cmd + ["--dump-dom", (demo_dir / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for sec in SECTIONS:
        assert re.search(rf"<section id=\"{sec}\">\s*<h2>", dom), f"section {sec} missing"
    assert len(re.findall(r"<img alt=", dom)) >= 8
    assert "data:image/png;base64," in dom and "http" not in dom.split("<body>")[1][:2000]
    shot = tmp_path / "shot.png"
    subprocess.run(cmd + [f"--screenshot={shot}", "--window-size=1200,1600",
                          (demo_dir / "report.html").as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_report_from_documents_and_escaping(tmp_path, shared_data):
    stream = simulate(SimulationParams(duration_s=3, n_emitters=2, seed=1))
    stream.source = "<img src=x onerror=alert(1)>.ptu"  # hostile text from a file name
    stats = analyze_stream(stream)
    vasp = shared_data / "vasp"
    r_in = ReportInputs(photon_stats=[stats])
    from perovdefect.report import analyses_from_documents
    r_in.analyses = analyses_from_documents(vasp / "doped_Cs2AgBiBr6_bulk_supercell",
                                            [vasp / "doped_Br2_competing_phase"], pl_nm=518,
                                            # two unrelated real runs (k-mesh, grid and tags
                                            # differ, now refused by default): the test is
                                            # about escaping, not about a defect
                                            allow_mixed=True)
    summary = build_report(r_in, tmp_path, "escape <b>test</b>")
    page = (tmp_path / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.ptu" in page
    assert "escape &lt;b&gt;test&lt;/b&gt;" in page
    for sec in SECTIONS:
        assert f'<section id="{sec}">' in page
    assert summary["particles"][0]["g2_0"] == pytest.approx(stats.g2["g2_0"])
    assert summary["host_gaps"][0]["gap_eV"] == pytest.approx(2.311, abs=0.01)


def test_report_bad_inputs(tmp_path):
    r = run_cli("report", "--campaign", str(tmp_path / "missing"), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "no such campaign" in r.stderr and "Traceback" not in r.stderr
    old = tmp_path / "old.photonstats.json"
    old.write_text(json.dumps({"schema_version": 0, "source": "x"}))
    r = run_cli("report", "--photons", str(old), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "schema version" in r.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("wavelength_nm,intensity\n")
    r = run_cli("report", "--pl", str(empty), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "empty" in r.stderr
    notproj = tmp_path / "notproj"
    notproj.mkdir()
    r = run_cli("report", "--campaign", str(notproj), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "not a perovdefect project" in r.stderr
    r = run_cli("report", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "nothing to report" in r.stderr


def test_demo_without_gpaw_is_a_clear_error_and_no_dft_runs(tmp_path):
    """Issue 13: `perovdefect demo` without GPAW died with a TypeError; now one line says how to
    install it, and --no-dft runs the rest (photons, PL, report)."""
    import os
    import sys
    code = ("import sys; sys.modules['gpaw'] = None; from perovdefect.cli.main import main; "
            "sys.argv = ['perovdefect'] + sys.argv[1:]; main()")
    r = subprocess.run([sys.executable, "-c", code, "demo", "-o", str(tmp_path / "a"),
                        "--quick"], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # (ASE's own warning about its GPAW IO plug-in comes from the simulated removal)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "GPAW is not installed" in errors[0]
    assert not (tmp_path / "a" / "project").exists()
    r = subprocess.run([sys.executable, "-c", code, "demo", "-o", str(tmp_path / "b"),
                        "--quick", "--no-dft"], capture_output=True, text=True, timeout=900,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["particles"] and not summary["in_gap_states"]
    assert (tmp_path / "b" / "report.html").stat().st_size > 50_000
