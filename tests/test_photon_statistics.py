"""Issue 14: dwell-time statistics, BX/X from g2, the levels-vs-g2 emitter check, the typed
PhotonStats document (issue 10) and every real TCSPC file through the whole analysis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perovdefect.errors import ParseError, PhotonFileError
from perovdefect.photons.analysis.dwell import (dwell_times, fit_power_law,
                                                fit_truncated_power_law)
from perovdefect.photons.analysis.g2 import bx_x_ratio, g2_analysis
from perovdefect.photons.analysis.pipeline import analyze_stream, power_series
from perovdefect.photons.simulate import EmitterState, SimulationParams, _dwell, simulate
from perovdefect.photons.stats import PhotonStats, PowerSeries

BLINK = (EmitterState("ON", 0.0105, 9.0, 0.2), EmitterState("OFF", 0.0, 1.0, 0.2))


# ----------------------------------------------------------------------------- dwell times

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # powerlaw's own 'sigma' notice
@pytest.mark.parametrize("alpha", [1.5, 1.75, 2.0])
def test_power_law_fit_recovers_alpha_and_agrees_with_the_powerlaw_package(alpha):
    """Simulated Pareto dwell times (the simulator's own sampler): alpha within 0.1 and within
    3 sigma. Cross-checks: the ML exponents at our t_min equal those of the independent
    `powerlaw` package; our KS distance equals scipy's one-sample KS statistic on the tail;
    powerlaw's own t_min search (which measures the KS distance at i/n only) lands on a tail
    with the same exponent within 0.05."""
    powerlaw = pytest.importorskip("powerlaw")
    from scipy import stats
    rng = np.random.default_rng(int(alpha * 100))
    x = _dwell(rng, EmitterState("ON", 0.01, 9.0, 0.01, power_law_alpha=alpha), 1500)
    fit = fit_power_law(x)
    assert abs(fit["alpha"] - alpha) < min(0.1, 3 * fit["alpha_err"] + 0.02), fit
    at_ours = powerlaw.Fit(x, xmin=fit["t_min_s"], verbose=False)
    assert fit["alpha"] == pytest.approx(at_ours.power_law.alpha, rel=1e-6)
    tail = x[x >= fit["t_min_s"]]
    ks = stats.kstest(tail, lambda t: 1 - (t / fit["t_min_s"]) ** (1 - fit["alpha"]))
    assert fit["ks_distance"] == pytest.approx(ks.statistic, rel=1e-9)
    assert abs(powerlaw.Fit(x, verbose=False).power_law.alpha - fit["alpha"]) < 0.05
    tr = fit_truncated_power_law(x, fit["t_min_s"])
    assert tr["alpha"] == pytest.approx(at_ours.truncated_power_law.alpha, abs=0.03)
    # a pure power law: the cut-off lies beyond the data and is not preferred
    assert tr["cutoff_s"] > 0.3 * x.max() or tr["preferred"] == "power law"


def test_truncated_power_law_is_preferred_when_there_is_a_cutoff():
    """Power law alpha 1.6 with an exponential cut-off at 0.2 s (thinned Pareto draws)."""
    rng = np.random.default_rng(5)
    x = 1e-3 * (1 + rng.pareto(0.6, 40000))
    x = x[rng.random(x.size) < np.exp(-x / 0.2)][:3000]
    tr = fit_truncated_power_law(x, 1e-3)
    assert tr["preferred"] == "truncated power law" and tr["p_value"] < 1e-3
    assert tr["alpha"] == pytest.approx(1.6, abs=max(0.1, 3 * tr["alpha_err"]))
    assert tr["cutoff_s"] == pytest.approx(0.2, rel=max(0.3, 3 * tr["cutoff_err_s"] / 0.2))


def test_dwell_times_join_segments_and_drop_the_truncated_ends():
    levels = np.array([0, 1, 1, 0, 2, 0, 1])
    edges = np.array([0.0, 1.0, 1.5, 2.0, 2.2, 3.0, 3.5, 4.0])
    d = dwell_times(levels, edges, on_levels={1, 2})
    assert d["on"].tolist() == pytest.approx([1.0, 0.8]) and d["off"].tolist() == \
        pytest.approx([0.2, 0.5])


@pytest.mark.parametrize("alpha", [1.8, 2.0])
def test_dwell_exponents_recovered_through_the_whole_analysis(alpha):
    """Blinking with power-law ON and OFF dwells: change points -> levels -> dwell times ->
    fit; both exponents within 0.1."""
    states = (EmitterState("ON", 0.0105, 9.0, 0.006, alpha),
              EmitterState("OFF", 0.0, 1.0, 0.006, alpha))
    s = simulate(SimulationParams(duration_s=120, states=states, seed=21))
    st = analyze_stream(s, background_cps=750, level_g2=False, biexponential=False)
    assert st.dwell_rule.startswith("ON: emitting levels")
    for key in ("on", "off"):
        d = st.dwell_times[key]
        assert d.n_tail >= 200, d
        assert abs(d.alpha - alpha) < 0.1, (key, d.alpha, d.alpha_err)
    assert st.summary()["on_dwell_alpha"] == st.dwell_times["on"].alpha


# ----------------------------------------------------------------------------- g2: BX/X, M

@pytest.mark.parametrize("ratio,N,duration", [(0.1, 0.2, 8.0), (0.3, 1.0, 3.0)])
def test_bx_x_ratio_recovered_within_two_sigma(ratio, N, duration):
    s = simulate(SimulationParams(duration_s=duration, states=(EmitterState("ON", 0.05, 9.0,
                                                                            1e9),),
                                  excitation_N=N, bx_x_ratio=ratio, background_cps=0, seed=3))
    g = g2_analysis(s)
    r, err, method = bx_x_ratio(g.g2_0, g.g2_0_err, N)
    assert abs(r - ratio) < 2 * err, (r, err)
    assert "inverted" in method


def test_bx_x_reading_inverts_the_poisson_absorption_model():
    """g2(0) = 2 r P2 / (P1 + r P2)^2 for Poisson absorption; reading it back gives r, the
    low-excitation limit is g2(0) itself, and a negative g2(0) reads as a negative ratio."""
    for N in (0.05, 0.5, 1.0, 3.0):
        p1 = -np.expm1(-N)
        p2 = p1 - N * np.exp(-N)
        for r in (0.0, 0.05, 0.3, 0.8):
            g = 2 * r * p2 / (p1 + r * p2) ** 2
            got, err, _ = bx_x_ratio(g, 0.01, N)
            assert got == pytest.approx(r, abs=1e-9) and err > 0
    assert bx_x_ratio(0.2, 0.03)[:2] == (0.2, 0.03)
    assert bx_x_ratio(-0.02, 0.01, 1.0)[0] < 0


def test_g2_is_one_type_from_the_correlation_to_the_document():
    """analysis.g2 returns the PhotonStats' own G2 part (no second result type copied field by
    field); a version-2 document written before the fold (no photons_per_detector) loads."""
    from perovdefect.photons.stats import G2
    s = simulate(SimulationParams(duration_s=2.0, states=(EmitterState("ON", 0.05, 9.0, 1e9),),
                                  background_cps=0, seed=5))
    g = g2_analysis(s)
    assert type(g) is G2 and g.g2_0 is not None and g.g2_0 < 0.2
    n = np.bincount(s.channel)
    assert g.photons_per_detector == [int(n[g.channels[0]]), int(n[g.channels[1]])]
    assert set(g.peak_areas) >= {"-1", "0", "1"} and g.stored_bin_ns == g.bin_width_ns
    assert G2.model_validate_json(g.model_dump_json()) == g
    st = analyze_stream(s)
    assert type(st.g2) is G2 and st.g2.photons_per_detector == g.photons_per_detector
    assert st.g2.stored_bin_ns == pytest.approx(1.0) and st.g2.photons == "all"
    old = st.to_dict()
    del old["g2"]["photons_per_detector"]
    again = PhotonStats.from_dict(old, "pre-fold document")
    assert again.g2.g2_0 == st.g2.g2_0 and again.g2.photons_per_detector == []


def test_single_emitter_with_biexcitons_is_read_as_bx_x():
    s = simulate(SimulationParams(duration_s=6, states=BLINK, excitation_N=0.3,
                                  bx_x_ratio=0.2, seed=4))
    st = analyze_stream(s, excitation_N=0.3, biexponential=False)
    assert st.emitters.from_levels == 1 and st.emitters.agree
    assert st.g2.interpretation.startswith("one emitter")
    assert abs(st.g2.bx_x_ratio - 0.2) < 2 * st.g2.bx_x_ratio_err + 0.02
    summ = st.summary()
    assert summ["bx_x_ratio"] == st.g2.bx_x_ratio and summ["levels_g2_agree"] is True


@pytest.mark.parametrize("M", [1, 2, 3])
def test_levels_and_g2_agree_on_the_emitter_number(M):
    """M independently blinking emitters: M + 1 levels; the brightest level's g2 gives
    1/(1 - g2(0)) = M and the level ladder gives M."""
    s = simulate(SimulationParams(duration_s=20, n_emitters=M, states=BLINK, seed=30 + M))
    st = analyze_stream(s, biexponential=False)
    assert st.n_levels == M + 1 and st.n_emitting_levels == M
    em = st.emitters
    assert em.from_levels == M and em.agree, em.statement
    top = st.levels[-1].g2
    assert abs(top.n_emitters - M) < 2 * top.n_emitters_err + 0.05


def test_a_mismatch_between_levels_and_g2_is_flagged():
    """Two steady emitters make one intensity level, but g2(0) = 1/2 says two emitters."""
    s = simulate(SimulationParams(duration_s=8, n_emitters=2, seed=9,
                                  states=(EmitterState("ON", 0.0105, 9.0, 1e9),)))
    st = analyze_stream(s, biexponential=False)
    assert st.n_levels == 1 and st.emitters.from_levels == 1
    assert st.emitters.agree is False and "DISAGREE" in st.emitters.statement
    assert st.g2.interpretation.startswith("levels and g2 disagree")
    assert st.summary()["levels_g2_agree"] is False


# ----------------------------------------------------------------------------- the document

def _v1_document() -> dict:
    """A PhotonStats JSON as perovdefect 0.1 wrote it (schema_version 1, plain dicts)."""
    decay = {"n_exp": 1, "tau_ns": [9.01], "fractions": [1.0], "tau_amplitude_avg_ns": 9.01,
             "tau_intensity_avg_ns": 9.01, "tau_err_ns": [0.05], "irf_center_ns": 2.0,
             "irf_sigma_ns": 0.1, "background_per_bin": 0.2, "reduced_deviance": 1.02,
             "n_photons": 50000, "bin_width_ns": 0.1, "model": "gaussian-irf"}
    return {
        "source": "particle.ptu", "info": {"number_photons": 61000, "mode": "T3"},
        "bin_width_s": 0.01, "trace_counts": [15, 350, 349], "n_levels": 2,
        "n_emitting_levels": 1,
        "levels": [{"mean_counts": 15.2, "fraction": 0.3, "lo": None, "hi": 60.0,
                    "n_bins": 300, "n_photons": 4560},
                   {"mean_counts": 348.0, "fraction": 0.7, "lo": 60.0, "hi": None,
                    "n_bins": 700, "n_photons": 243600, "decay": decay}],
        "decay_overall": {"mono": decay, "bi_error": "too few photons"},
        "decay_histograms": {"1": {"t_ns": [0.0, 0.1], "counts": [3, 5]}},
        "segments": [{"start_s": 0.0, "end_s": 1.2, "photons": 30, "rate_cps": 25.0}],
        "g2": {"tau_ns": [-1.0, 0.0], "coincidences": [3, 0], "bin_width_ns": 0.1,
               "period_ns": 200.0, "peak_areas": {"0": 2.0, "1": 400.0}, "area_method":
               "windows", "g2_0_raw": 0.01, "g2_0": 0.005, "g2_0_err": 0.01,
               "n_emitters": 1.005, "n_emitters_err": 0.01, "rho": [0.9, 0.9], "gate_ns": 0.0,
               "channels": [0, 1], "stored_bin_ns": 1.0},
        "flid": None, "excitation_N": 1.0, "power_series": None,
        "background_counts_per_bin": 15.0, "settings": {"levels": "poisson-mixture"},
        "schema_version": 1}


def test_version_1_document_is_upgraded(tmp_path):
    p = tmp_path / "old.photonstats.json"
    p.write_text(json.dumps(_v1_document()))
    st = PhotonStats.from_json(p)
    assert st.schema_version == 2 and st.level_method == "poisson-mixture"
    assert [lv.kind for lv in st.levels] == ["background", "emitting"]
    assert st.levels[1].tau_ns == 9.01 and st.levels[1].photons == 243600
    assert st.levels[1].rate_cps == pytest.approx(34800.0)
    assert st.g2.g2_0 == 0.005 and st.segments[0].stop_s == 1.2
    s = st.summary()
    for key in ("source", "photons", "n_levels", "n_emitting_levels", "levels_counts_per_bin",
                "level_lifetimes_ns", "brightest_level_counts_per_bin", "g2_0", "g2_0_err",
                "n_emitters", "n_emitters_err", "excitation_N", "bx_x_ratio",
                "bx_x_ratio_err", "g2_interpretation", "emitters_from_levels",
                "levels_g2_agree", "on_dwell_alpha", "off_dwell_alpha",
                "background_source"):
        assert key in s
    assert s["level_lifetimes_ns"] == [None, 9.01] and s["photons"] == 61000
    assert st.level_rows()[1] == {"level": 1, "counts_per_bin": 348.0, "fraction": 0.7,
                                  "tau_ns": 9.01, "photons": 243600, "kind": "emitting"}
    # an unreadable version-1 document says how to regenerate it
    bad = _v1_document()
    del bad["levels"][0]["mean_counts"]
    p.write_text(json.dumps(bad))
    with pytest.raises(ParseError, match="re-run `perovdefect photons analyze`"):
        PhotonStats.from_json(p)


def test_document_round_trip_and_validation(tmp_path):
    s = simulate(SimulationParams(duration_s=4, states=BLINK, seed=2))
    st = analyze_stream(s, excitation_N=0.5)
    st.to_json(tmp_path / "a.json")
    back = PhotonStats.from_json(tmp_path / "a.json")
    assert back.to_dict() == st.to_dict()
    assert back.levels[-1].decay.tau_ns == st.levels[-1].decay.tau_ns
    assert back.dwell_times["on"].n == st.dwell_times["on"].n
    d = json.loads((tmp_path / "a.json").read_text())
    d["levels"][0]["kind"] = "sparkly"
    (tmp_path / "b.json").write_text(json.dumps(d))
    with pytest.raises(ParseError, match="levels.0.kind"):
        PhotonStats.from_json(tmp_path / "b.json")
    d["levels"][0]["kind"] = "emitting"
    d["unknown_field"] = 1
    (tmp_path / "b.json").write_text(json.dumps(d))
    with pytest.raises(ParseError, match="unknown_field"):
        PhotonStats.from_json(tmp_path / "b.json")


def test_power_series_part_and_figures(tmp_path):
    from perovdefect.photons.figures import (decay_figure, dwell_time_figure, flid_figure,
                                             g2_figure, power_series_figure, save,
                                             trace_figure)
    stats = []
    for i, N in enumerate([0.3, 0.6, 1.2]):
        s = simulate(SimulationParams(duration_s=3, states=BLINK, excitation_N=N, seed=50 + i))
        stats.append(analyze_stream(s, excitation_N=N, background_cps=750, level_g2=False,
                                    biexponential=False))
    ps = power_series(stats)
    assert isinstance(ps, PowerSeries)
    assert ps["mean_intensity_fit"]["exponent"] == ps.mean_intensity_fit.exponent
    assert len(ps.g2_0) == 3 and all(g is not None for g in ps.g2_0)
    assert json.loads(json.dumps(ps.to_dict()))["excitation_N"] == [0.3, 0.6, 1.2]
    save(power_series_figure(ps), tmp_path / "ps.png")
    save(power_series_figure(ps.to_dict()), tmp_path / "ps2.png")
    st = stats[-1]
    for name, fig in (("trace", trace_figure(st)), ("decay", decay_figure(st)),
                      ("flid", flid_figure(st)), ("g2", g2_figure(st)),
                      ("dwell", dwell_time_figure(st))):
        save(fig, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    steady = analyze_stream(simulate(SimulationParams(
        duration_s=2, states=(EmitterState("ON", 0.0105, 9.0, 1e9),), seed=1)))
    assert steady.dwell_times is None and dwell_time_figure(steady) is None


# ----------------------------------------------------------------------------- real files

def test_every_real_file_runs_through_the_whole_analysis(shared_data, tmp_path):
    files = sorted(p for p in (shared_data / "tcspc").iterdir()
                   if p.suffix not in (".json", ".txt"))
    assert files
    from perovdefect.photons.io import read_photons
    analysed = 0
    for path in files:
        try:
            stream = read_photons(path, timestamps_unit_s=5e-9 if path.suffix == ".h5"
                                  else None, allow_truncated=True)
        except PhotonFileError as exc:  # the header-only file: no photons at all
            assert "no photon records" in str(exc), exc
            continue
        st = analyze_stream(stream)
        assert st.n_levels >= 1 and sum(lv.photons for lv in st.levels) == len(stream)
        assert st.background.source
        st.to_json(tmp_path / f"{path.stem}.json")
        assert PhotonStats.from_json(tmp_path / f"{path.stem}.json").to_dict() == st.to_dict()
        analysed += 1
    assert analysed >= len(files) - 1
