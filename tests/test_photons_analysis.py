"""Issue 5: simulated data recovers what was put in (ground truth)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis.decay import decay_histogram, fit_decay
from perovdefect.photons.analysis.excitation import (cross_section_from_absorption,
                                                     cross_section_from_extinction,
                                                     excitation_level, photon_fluence_per_pulse,
                                                     power_for_excitation)
from perovdefect.photons.analysis.g2 import g2_analysis
from perovdefect.photons.analysis.changepoints import detect_change_points
from perovdefect.photons.analysis.levels import mixture_levels, threshold_levels
from perovdefect.photons.analysis.pipeline import analyze_stream, power_series
from perovdefect.photons.analysis.trace import intensity_trace
from perovdefect.photons.simulate import (STEADY_STATES, EmitterState, SimulationParams,
                                          simulate)
from perovdefect.photons.stats import PhotonStats
from tests.conftest import run_cli


@pytest.mark.parametrize("M", [1, 2, 3])
def test_g2_zero_gives_emitter_number(M):
    s = simulate(SimulationParams(duration_s=20, n_emitters=M, states=STEADY_STATES,
                                  background_cps=0, seed=100 + M))
    r = g2_analysis(s)
    expected = 1 - 1 / M
    assert abs(r.g2_0 - expected) < 2 * r.g2_0_err + 1e-9, (r.g2_0, r.g2_0_err)
    assert r.n_emitters == pytest.approx(M, abs=max(2 * r.n_emitters_err, 0.02))


def test_g2_background_correction_for_a_blinking_emitter():
    s = simulate(SimulationParams(duration_s=20, n_emitters=1, seed=5, background_cps=1500))
    raw = g2_analysis(s)
    corrected = g2_analysis(s, background_cps=1500)
    assert raw.g2_0 > 0.1  # background coincidences fill the zero-delay peak
    assert abs(corrected.g2_0) < 2 * corrected.g2_0_err + 0.01


def test_time_gating_removes_prompt_scatter():
    s = simulate(SimulationParams(duration_s=10, n_emitters=1, states=STEADY_STATES, seed=9,
                                  background_cps=0, scatter_cps=8000))
    ungated = g2_analysis(s)
    gated = g2_analysis(s, gate_ns=2.6)  # IRF at 2.0 ns, sigma 0.1 ns
    assert ungated.g2_0 > 0.2  # scatter counts fill the zero-delay peak
    assert gated.gate_ns == 2.6 and abs(gated.g2_0) < 2 * gated.g2_0_err + 0.01


def test_lifetimes_recovered_within_3_percent():
    s = simulate(SimulationParams(duration_s=10, n_emitters=1, seed=3,
                                  states=(EmitterState("ON", 0.0105, 9.0, 1e9),),
                                  background_cps=200))
    t, h, period = decay_histogram(s)
    fit = fit_decay(t, h, period, 1)
    assert fit.tau_ns[0] == pytest.approx(9.0, rel=0.03)
    assert fit.irf_center_ns == pytest.approx(2.0, abs=0.05)


def test_biexponential_recovers_both_components():
    states = (EmitterState("A", 0.006, 2.5, 1e9),)
    a = simulate(SimulationParams(duration_s=10, states=states, seed=4, background_cps=50))
    b = simulate(SimulationParams(duration_s=10, states=(EmitterState("B", 0.006, 10.0, 1e9),),
                                  seed=5, background_cps=50))
    from dataclasses import replace
    both = replace(a, channel=np.concatenate([a.channel, b.channel]),
                   macrotime=np.concatenate([a.macrotime, b.macrotime]),
                   microtime=np.concatenate([a.microtime, b.microtime]))
    t, h, period = decay_histogram(both)
    fit = fit_decay(t, h, period, 2)
    assert fit.tau_ns[0] == pytest.approx(2.5, rel=0.05)
    assert fit.tau_ns[1] == pytest.approx(10.0, rel=0.05)
    mono = fit_decay(t, h, period, 1)
    assert fit.reduced_deviance < mono.reduced_deviance


def test_on_and_gray_levels_and_their_lifetimes():
    """The seed's 0D emitter: ON (9 ns, ~350 counts/10 ms) and GRAY (1 ns) separated."""
    s = simulate(SimulationParams(duration_s=30, n_emitters=1, seed=21))
    stats = analyze_stream(s, background_cps=750, detect_change_points=False)
    top = stats.levels[-1]
    assert 300 <= top["mean_counts"] <= 400
    assert top["decay"]["tau_ns"][0] == pytest.approx(9.0, rel=0.03)
    gray = [lv for lv in stats.levels if 60 < lv["mean_counts"] < 150]
    assert gray, [lv["mean_counts"] for lv in stats.levels]
    assert gray[0]["decay"]["tau_ns"][0] == pytest.approx(1.0, rel=0.1)
    assert stats.g2["g2_0"] < 0.1  # a single emitter antibunches


def test_levels_methods():
    rng = np.random.default_rng(0)
    counts = np.concatenate([rng.poisson(15, 500), rng.poisson(350, 1500)])
    lv = mixture_levels(counts)
    assert [x.mean_counts for x in lv] == [pytest.approx(15, abs=1), pytest.approx(350, abs=1.5)]
    assert lv[1].fraction == pytest.approx(0.75, abs=0.01)
    th = threshold_levels(counts, [100])
    assert [x.mean_counts for x in th] == [pytest.approx(15, abs=1), pytest.approx(350, abs=1.5)]


def test_change_points_find_a_rate_step():
    rng = np.random.default_rng(1)
    t1 = np.cumsum(rng.exponential(1 / 2000, 4000))  # 2 s at 2000 cps
    t2 = t1[-1] + np.cumsum(rng.exponential(1 / 500, 1000))  # then 500 cps
    res = detect_change_points(np.concatenate([t1, t2]))
    assert res.index.size == 1 and abs(int(res.index[0]) - 4000) < 60


def test_excitation_level_units():
    j = photon_fluence_per_pulse(1e-6, 5e6, 445.0, 0.5)  # 1 uW, 5 MHz, 445 nm, 0.5 um spot
    photons = 1e-6 / 5e6 / (6.62607015e-34 * 299792458 / 445e-9)  # E = hc/lambda (SI values)
    assert j == pytest.approx(photons / (np.pi * (0.25e-4) ** 2), rel=1e-9)
    sigma = cross_section_from_extinction(1e6)
    assert sigma == pytest.approx(3.82e-15, rel=1e-3)
    assert cross_section_from_absorption(1e5, 1000) == pytest.approx(1e-13)
    N = excitation_level(1e-6, 5e6, 445.0, 0.5, sigma)
    assert power_for_excitation(N, 5e6, 445.0, 0.5, sigma) == pytest.approx(1e-6)
    with pytest.raises(AnalysisError):
        photon_fluence_per_pulse(-1, 5e6, 445, 0.5)


def test_photobrightening_power_series_is_superlinear():
    series = []
    for i, N in enumerate([0.5, 0.8, 1.2, 1.8, 2.5]):
        s = simulate(SimulationParams(duration_s=8, excitation_N=N, n_dark=4, k_act_hz=1.0,
                                      k_deact_hz=3.0, seed=40 + i))
        series.append(analyze_stream(s, background_cps=750, excitation_N=N, biexponential=False,
                                     detect_change_points=False))
    ps = power_series(series)
    fit = ps["mean_intensity_fit"]
    assert fit["exponent"] > 1.2 and fit["regime"].startswith("superlinear")
    # control: the same emitter without photoactivation saturates (sublinear)
    control = []
    for i, N in enumerate([0.5, 0.8, 1.2, 1.8, 2.5]):
        s = simulate(SimulationParams(duration_s=4, excitation_N=N, seed=60 + i))
        control.append(analyze_stream(s, background_cps=750, excitation_N=N,
                                      biexponential=False, detect_change_points=False))
    assert power_series(control)["mean_intensity_fit"]["exponent"] < 1.0
    # new emitters, not multiexcitons: the brightest level keeps the ON lifetime
    taus = [t for t in ps["brightest_level_tau_ns"] if t]
    assert all(abs(t - 9.0) < 1.0 for t in taus)


def test_photonstats_json_round_trip_and_version(tmp_path):
    s = simulate(SimulationParams(duration_s=3, n_emitters=2, seed=8))
    stats = analyze_stream(s)
    stats.to_json(tmp_path / "a.json")
    back = PhotonStats.from_json(tmp_path / "a.json")
    assert back.g2.g2_0 == pytest.approx(stats.g2.g2_0)
    assert back.g2["g2_0"] == back.g2.g2_0  # version-1 style item access still works
    assert back.to_dict() == stats.to_dict()
    d = json.loads((tmp_path / "a.json").read_text())
    d["schema_version"] = 99
    (tmp_path / "b.json").write_text(json.dumps(d))
    from perovdefect.errors import ParseError
    with pytest.raises(ParseError, match="schema version 99.*re-run `perovdefect photons "
                                         "analyze`"):
        PhotonStats.from_json(tmp_path / "b.json")


def test_trace_bin_widths():
    s = simulate(SimulationParams(duration_s=2, seed=1))
    _, a = intensity_trace(s, 0.01)
    _, b = intensity_trace(s, 0.001)
    assert a.size == 200 and b.size == 2000 and a.sum() == b.sum() == len(s)


def test_cli_simulate_and_analyze(tmp_path):
    out = tmp_path / "sim.ptu"
    r = run_cli("photons", "simulate", "-o", str(out), "--emitters", "2", "--steady",
                "--duration", "10", "--background-cps", "0", "--seed", "3")
    assert r.returncode == 0, r.stderr
    r = run_cli("photons", "analyze", str(out), "-o", str(tmp_path / "res"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)["files"][0]
    assert abs(summary["g2_0"] - 0.5) < 2 * summary["g2_0_err"] + 0.01
    for name in ("sim_trace.png", "sim_decays.png", "sim_g2.png", "sim.photonstats.json"):
        assert (tmp_path / "res" / name).stat().st_size > 1000


def test_fit_with_a_measured_irf():
    """IRF reconvolution with a measured IRF histogram (here: the simulator's prompt scatter,
    which has the IRF's shape) instead of the fitted Gaussian."""
    sig = simulate(SimulationParams(duration_s=10, n_emitters=1, seed=31, background_cps=100,
                                    states=(EmitterState("ON", 0.0105, 4.0, 1e9),)))
    irf_run = simulate(SimulationParams(duration_s=2, n_emitters=0, seed=32, background_cps=0,
                                        scatter_cps=200_000))
    t, h, period = decay_histogram(sig)
    _, irf, _ = decay_histogram(irf_run)
    fit = fit_decay(t, h, period, 1, irf=irf)
    assert fit.model == "measured-irf"
    assert fit.tau_ns[0] == pytest.approx(4.0, rel=0.03)


def test_g2_with_lifetime_comparable_to_the_laser_period():
    """tau = 30 ns at 20 MHz (50 ns period): decay tails overlap neighbouring peaks; full-period
    windows still give g2(0) = 1 - 1/M."""
    long_lived = (EmitterState("ON", 0.02, 30.0, 1e9),)
    s = simulate(SimulationParams(duration_s=20, n_emitters=2, states=long_lived, seed=21,
                                  rep_rate_hz=20e6, background_cps=0))
    r = g2_analysis(s, window_ns=300)
    assert r.area_method.startswith("laplace-fit")
    assert abs(r.g2_0 - 0.5) < 2 * r.g2_0_err + 1e-9, (r.g2_0, r.g2_0_err)
    windows = g2_analysis(s, window_ns=300, decay_tau_ns=0.0)  # plain window sums
    assert windows.area_method == "windows" and windows.g2_0 > 0.65  # tails inflate the centre


def test_power_law_dwell_times_have_a_heavy_tail():
    """Power-law (Pareto) blinking dwells keep the requested mean but, unlike Markov
    (exponential) dwells, produce rare very long ON periods."""
    from perovdefect.photons.simulate import _dwell
    rng = np.random.default_rng(0)
    markov = _dwell(rng, EmitterState("ON", 0.01, 9.0, 0.1), 200_000)
    power = _dwell(rng, EmitterState("ON", 0.01, 9.0, 0.1, power_law_alpha=2.5), 200_000)
    assert markov.mean() == pytest.approx(0.1, rel=0.02)
    assert np.median(power) == pytest.approx(0.1 * 1.5 / 2.5 * 2 ** (1 / 1.5), rel=0.03)
    assert np.percentile(power, 99.99) > 3 * np.percentile(markov, 99.99)


def test_decay_deviance_is_infinite_not_a_crash_for_degenerate_parameters():
    """A fit step to an underflowing IRF width or a lifetime beyond float range (seen on a
    damaged HT3 file) gives an infinite deviance, never a ZeroDivisionError."""
    import math

    import numpy as np

    from perovdefect.photons.analysis.kernels import gauss_irf_deviance
    t = np.linspace(0.0, 50.0, 64)
    y = np.ones_like(t)
    ok = np.array([0.0, math.log(5.0), 0.0, 2.0, math.log(0.2)])
    assert math.isfinite(gauss_irf_deviance(ok, t, y, 50.0, 1, 0.0))
    for bad in ([0.0, math.log(5.0), 0.0, 2.0, -800.0],   # sigma underflows to 0
                [0.0, 800.0, 0.0, 2.0, math.log(0.2)],    # tau overflows
                [0.0, -800.0, 0.0, 2.0, math.log(0.2)]):  # tau underflows
        assert gauss_irf_deviance(np.array(bad), t, y, 50.0, 1, 0.0) == math.inf
