"""Issue 14: Watkins-Yang change points, BIC levels, classification of emitting/background."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from perovdefect.photons.analysis import changepoints as cp
from perovdefect.photons.analysis.changepoints import (cluster_levels, critical_value,
                                                       detect_change_points,
                                                       null_max_statistic)
from perovdefect.photons.analysis.pipeline import analyze_stream
from perovdefect.photons.simulate import (STEADY_STATES, EmitterState, SimulationParams,
                                          simulate)

#: two-state telegraph emitter: ON ~33 kcps, OFF (background only), 0.1 s mean dwell
TELEGRAPH = (EmitterState("ON", 0.0105, 9.0, 0.1), EmitterState("OFF", 0.0, 1.0, 0.1))


def test_branch_and_bound_scan_equals_the_full_scan():
    """The block bound skips photons; its maximum must be the full scan's, photon for photon."""
    rng = np.random.default_rng(7)
    for trial in range(12):
        n = int(rng.integers(3000, 60000))
        t = np.cumsum(rng.exponential(1e-5, n))
        if trial % 3:
            j = int(rng.integers(n // 10, n - n // 10))
            t[j:] = t[j] + np.cumsum(rng.exponential(1e-5 * (1 + trial % 3), n - j))
        klnk = cp._klnk_table(n)
        full = cp._scan_range(t, 0, n, 0, n, 0.0, t[-1] * 1.0001, 10, klnk)
        bound = cp._scan_bound(t, 0, n, 0.0, t[-1] * 1.0001, 10, klnk, 32, 0.0)
        assert bound[1:] == full[1:]
        assert bound[0] == pytest.approx(full[0], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n,reps", [(200, 4000), (3000, 1500)])
def test_tabulated_critical_values_match_a_fresh_monte_carlo(n, reps):
    """The shipped 95 % critical value is exceeded by ~5 % of fresh null streams (new seed),
    within 3 binomial sigma."""
    z = null_max_statistic(n, reps, seed=12345 + n)
    frac = float(np.mean(z > critical_value(n, 0.95)))
    sigma = math.sqrt(0.05 * 0.95 / reps)
    assert abs(frac - 0.05) < 3 * sigma, (frac, sigma)
    # and the 69 % and 99 % levels are ordered and calibrated the same way
    assert critical_value(n, 0.69) < critical_value(n, 0.95) < critical_value(n, 0.99)
    assert abs(np.mean(z > critical_value(n, 0.99)) - 0.01) < 3 * math.sqrt(0.0099 / reps)


def test_constant_rate_streams_rarely_get_a_change_point():
    """At 95 % confidence at most ~5 % of constant-rate streams get a false change point; the
    bound is 5 % plus two binomial sigma over the seeds."""
    seeds = 60
    false = 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        rate = float(rng.uniform(2e3, 5e4))
        duration = 20000 / rate
        n = rng.poisson(rate * duration)
        t = np.sort(rng.uniform(0, duration, n))
        false += detect_change_points(t, duration, 0.95).index.size > 0
    err = math.sqrt(0.05 * 0.95 / seeds)  # binomial error of the rate at the nominal 5 %
    assert false / seeds <= 0.05 + 2 * err, (
        f"{false}/{seeds} = {false / seeds:.3f} +- {err:.3f} streams with a false change point")


def _telegraph(seed: int, duration: float = 20.0):
    s = simulate(SimulationParams(duration_s=duration, states=TELEGRAPH, seed=seed))
    tr = s.header["trajectories"][0]
    return s, np.asarray(tr["starts_s"]), np.asarray(tr["states"])


@pytest.mark.parametrize("seed", [11, 12])
def test_telegraph_switches_and_levels_are_recovered(seed):
    s, starts, states = _telegraph(seed)
    times = s.macrotime * s.macrotime_resolution_s
    res = detect_change_points(times, s.duration_s())
    true = starts[1:]
    dist = np.abs(true[:, None] - res.times_s[None, :]).min(axis=1)
    assert np.mean(dist < 3e-3) >= 0.90, np.mean(dist < 3e-3)
    assert res.index.size <= 1.15 * true.size  # few extra change points
    # levels: the rates of the photons truly in each state, within 4 Poisson sigma
    stats = analyze_stream(s, level_g2=False, biexponential=False)
    assert stats.n_levels == 2 and [lv.kind for lv in stats.levels] == ["background",
                                                                        "emitting"]
    ends = np.append(starts[1:], s.duration_s())
    state_of = states[np.searchsorted(starts, times, side="right") - 1]
    for lv, state in zip(stats.levels, (1, 0)):
        t_state = float(((ends - starts) * (states == state)).sum())
        n_state = int((state_of == state).sum())
        true_rate = n_state / t_state
        assert abs(lv.rate_cps - true_rate) < 4 * math.sqrt(n_state) / t_state + 0.002 * \
            true_rate, (lv.rate_cps, true_rate)
        assert lv.fraction == pytest.approx(t_state / s.duration_s(), abs=0.01)
    assert stats.levels[1].tau_ns == pytest.approx(9.0, rel=0.03)


def test_level_clustering_by_bic_separates_three_rates():
    rng = np.random.default_rng(3)
    rates = np.array([1500.0, 12000.0, 35000.0])
    lab = rng.integers(0, 3, 300)
    T = rng.exponential(0.1, 300)
    n = rng.poisson(rates[lab] * T)
    cl = cluster_levels(n, T)
    assert cl.rates_cps.size == 3
    for r, true in zip(cl.rates_cps, rates):
        sel = lab == np.searchsorted(rates, true)
        assert abs(r - true) < 4 * math.sqrt(true / T[sel].sum())
    assert max(cl.bic, key=cl.bic.get) == 3


def _to_t2(s):
    """The same photons as a T2 recording (1 ps time tags, no microtimes)."""
    return replace(s, macrotime=s.times_ps(), microtime=None, macrotime_resolution_s=1e-12,
                   microtime_resolution_s=None, mode="T2", sync_rate_hz=None,
                   n_microtime_bins=None)


@pytest.mark.parametrize("background_cps", [None, 750.0])
def test_steady_blinking_and_background_only_are_classified(background_cps):
    cases = {"steady": dict(states=STEADY_STATES), "blinking": dict(states=TELEGRAPH),
             "background": dict(n_emitters=0)}
    for name, kw in cases.items():
        s = simulate(SimulationParams(duration_s=8, seed=5, **kw))
        st = analyze_stream(s, background_cps=background_cps, level_g2=False,
                            biexponential=False)
        kinds = [lv.kind for lv in st.levels]
        expected = {"steady": ["emitting"], "blinking": ["background", "emitting"],
                    "background": ["background"]}[name]
        assert kinds == expected, (name, st.level_rows(), st.background)
        assert st.background.source.startswith("given" if background_cps else
                                               ("flat" if name == "steady" else "darkest"))
        assert st.background.cps == pytest.approx(1500.0, rel=0.1)  # 2 x 750 counts/s
        assert st.n_emitting_levels == expected.count("emitting")


def test_change_points_and_levels_on_t2_data():
    s, starts, _ = _telegraph(13, duration=10.0)
    st = analyze_stream(_to_t2(s), level_g2=False)
    assert st.level_method == "change-points" and st.info["mode"] == "T2"
    assert [lv.kind for lv in st.levels] == ["background", "emitting"]
    assert st.decay_overall is None and st.change_points.n_change_points >= 0.9 * (starts.size
                                                                                  - 1)
    assert st.dwell_times["on"].n > 10


def test_binned_methods_stay_available():
    s, _, _ = _telegraph(14, duration=6.0)
    mix = analyze_stream(s, level_method="poisson-mixture", level_g2=False)
    th = analyze_stream(s, thresholds=[100.0], level_g2=False)
    cpa = analyze_stream(s, level_g2=False)
    assert mix.level_method == "poisson-mixture" and th.level_method == "thresholds"
    assert [lv.kind for lv in th.levels] == ["background", "emitting"]
    assert mix.levels[0].kind == "background" and mix.levels[-1].kind == "emitting"
    for st in (mix, th):
        assert st.segments and st.segments[0].level is not None
    # bins that straddle a switch make the binned mixture see more levels than there are;
    # the change-point segmentation of the same photons does not
    assert cpa.n_levels == 2 and mix.n_levels >= cpa.n_levels
