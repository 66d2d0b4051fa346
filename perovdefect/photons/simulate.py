"""Monte Carlo single-particle TCSPC streams: ground truth for tests and the demo.

Model (pulsed excitation; each emitter gives an exciton (X) photon at most per pulse and, with
`bx_x_ratio` > 0, a biexciton (BX) photon first when it absorbed two or more photons: Poisson
absorption of mean <N>, X detected with probability brightness on pulses with >= 1 absorption,
BX with brightness * bx_x_ratio on pulses with >= 2, so that g2(0) -> QY_BX/QY_X at low <N>,
Nair, Zhao and Bawendi, Nano Lett. 11, 1136 (2011)):
- M independent emitters, each switching between ON / GRAY / OFF with Markov (exponential) or
  power-law dwell times; each state has its own lifetime (ns) and detection probability per pulse.
- Photoactivation: `n_dark` extra emitters switch on at a rate
  k_act * max(0, <N> - activation_threshold_N)**activation_order (photobrightening: bursts of new
  emitters with unchanged lifetime) and off at k_deact.
- Brightness scales with excitation as 1 - exp(-<N>) (Poisson absorption, saturation).
- Background (counts/s per detector, flat in time), prompt laser scatter (counts/s per detector,
  arriving with the IRF, removed by time gating), Gaussian IRF jitter (ns), a 50/50 beam splitter onto two
  detectors, detector dead time (ns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perovdefect.photons.stream import PhotonStream


@dataclass(frozen=True)
class EmitterState:
    """One blinking state: detection probability per pulse at saturation, lifetime (ns), mean
    dwell time (s; Markov) and the power-law exponent (None = exponential dwell)."""

    name: str
    brightness: float
    lifetime_ns: float
    mean_dwell_s: float
    power_law_alpha: float | None = None


#: The seed's 0D Cs4PbBr6 emitter: ON (tau 9 ns) and GRAY (tau 1 ns), plus a short OFF state.
#: At 5 MHz and <N> = 1 the ON level gives ~350 counts per 10 ms bin, as measured.
SEED_STATES = (EmitterState("ON", 0.0105, 9.0, 0.30), EmitterState("GRAY", 0.0030, 1.0, 0.10),
               EmitterState("OFF", 0.0, 1.0, 0.05))
#: A non-blinking emitter (for antibunching ground truth: g2(0) = 1 - 1/M exactly).
STEADY_STATES = (EmitterState("ON", 0.0105, 9.0, 1e9),)


@dataclass
class SimulationParams:
    """All times in s unless named otherwise; rates in Hz; probabilities per pulse."""

    duration_s: float = 10.0
    rep_rate_hz: float = 5e6
    n_emitters: int = 1
    states: tuple[EmitterState, ...] = SEED_STATES
    excitation_N: float = 1.0
    n_dark: int = 0
    k_act_hz: float = 0.0
    activation_order: float = 2.0
    activation_threshold_N: float = 0.0
    k_deact_hz: float = 5.0
    background_cps: float = 750.0
    scatter_cps: float = 0.0
    irf_sigma_ns: float = 0.1
    irf_offset_ns: float = 2.0
    microtime_resolution_s: float = 16e-12
    dead_time_ns: float = 50.0
    splitter: float = 0.5
    bx_x_ratio: float = 0.0
    bx_lifetime_ns: float | None = None
    seed: int | None = 0
    extra: dict = field(default_factory=dict)


def _dwell(rng: np.random.Generator, state: EmitterState, n: int) -> np.ndarray:
    if state.power_law_alpha is None:
        return rng.exponential(state.mean_dwell_s, n)
    # Pareto (power law) with minimum t_min chosen so that alpha > 1 gives the same mean
    a = state.power_law_alpha - 1.0
    t_min = state.mean_dwell_s * a / (a + 1.0) if a > 0 else state.mean_dwell_s
    return t_min * (1.0 + rng.pareto(a if a > 0 else 0.5, n))


def state_trajectory(rng: np.random.Generator, states: tuple[EmitterState, ...],
                     duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(segment start times (s), state indices): a random walk among `states` (uniform jumps)."""
    starts, idx = [0.0], [int(rng.integers(len(states)))]
    t = 0.0
    while True:
        t += float(_dwell(rng, states[idx[-1]], 1)[0])
        if t >= duration_s:
            break
        nxt = int(rng.integers(len(states) - 1)) if len(states) > 1 else 0
        nxt = nxt + 1 if (len(states) > 1 and nxt >= idx[-1]) else nxt
        starts.append(t)
        idx.append(nxt)
    return np.asarray(starts), np.asarray(idx)


def _emit(rng, starts, idx, states, duration_s, rep_rate_hz, scale, times_ns, taus,
          excitation_N: float = 1.0, bx_x_ratio: float = 0.0, bx_lifetime_ns=None):
    """Photons of one emitter: distinct pulses per segment (one X photon per pulse at most, and
    a BX photon before it on pulses with >= 2 absorptions when bx_x_ratio > 0)."""
    ends = np.append(starts[1:], duration_s)
    for t0, t1, s in zip(starts, ends, idx):
        p = states[s].brightness * scale
        if p <= 0:
            continue
        first, last = int(np.ceil(t0 * rep_rate_hz)), int(np.floor(t1 * rep_rate_hz))
        n_pulses = last - first
        if n_pulses <= 0:
            continue
        if bx_x_ratio > 0:
            _emit_bx(rng, first, n_pulses, states[s], excitation_N, bx_x_ratio,
                     bx_lifetime_ns, rep_rate_hz, times_ns, taus)
            continue
        k = rng.binomial(n_pulses, min(p, 1.0))
        if k == 0:
            continue
        pulses = first + rng.choice(n_pulses, size=k, replace=False)
        times_ns.append(pulses * (1e9 / rep_rate_hz) + rng.exponential(states[s].lifetime_ns, k))
        taus.append(np.full(k, states[s].lifetime_ns))


def _emit_bx(rng, first, n_pulses, state, N, ratio, bx_tau, rep_rate_hz, times_ns, taus):
    """X and BX photons of one segment: pulses with >= 1 absorption (P1 = 1 - e^-N), of which
    those with >= 2 (P2 = P1 - N e^-N) may give a BX photon (BX lifetime, then the X delay)."""
    p1 = -np.expm1(-N)
    p2 = p1 - N * np.exp(-N)
    k1 = rng.binomial(n_pulses, p1)
    if k1 == 0:
        return
    pulses = first + rng.choice(n_pulses, size=k1, replace=False)
    two = rng.random(k1) < p2 / p1
    x_on = rng.random(k1) < state.brightness
    bx_on = two & (rng.random(k1) < min(state.brightness * ratio, 1.0))
    tau_bx = bx_tau if bx_tau else state.lifetime_ns / 4.0
    t_bx = np.where(two, rng.exponential(tau_bx, k1), 0.0)
    t_pulse = pulses * (1e9 / rep_rate_hz)
    times_ns.append(t_pulse[x_on] + t_bx[x_on] + rng.exponential(state.lifetime_ns,
                                                                 int(x_on.sum())))
    taus.append(np.full(int(x_on.sum()), state.lifetime_ns))
    times_ns.append(t_pulse[bx_on] + t_bx[bx_on])
    taus.append(np.full(int(bx_on.sum()), tau_bx))


def _dead_time(t_ns: np.ndarray, dead_ns: float) -> np.ndarray:
    """Keep-mask for one detector: a photon within dead_ns after the last kept one is lost."""
    if dead_ns <= 0 or t_ns.size == 0:
        return np.ones(t_ns.size, bool)
    from perovdefect.photons.analysis.kernels import dead_time_mask
    return dead_time_mask(t_ns, dead_ns)


def simulate(params: SimulationParams) -> PhotonStream:
    """Simulate one single-particle recording as a T3 PhotonStream (two detectors)."""
    rng = np.random.default_rng(params.seed)
    p = params
    scale = 1.0 - np.exp(-p.excitation_N)
    times, taus = [], []
    truth = []
    for _ in range(p.n_emitters):
        starts, idx = state_trajectory(rng, p.states, p.duration_s)
        truth.append({"starts_s": starts.tolist(), "states": idx.tolist()})
        _emit(rng, starts, idx, p.states, p.duration_s, p.rep_rate_hz, scale, times, taus,
              p.excitation_N, p.bx_x_ratio, p.bx_lifetime_ns)
    k_on = p.k_act_hz * max(0.0, p.excitation_N - p.activation_threshold_N) ** p.activation_order
    on_state = (p.states[0],)
    for _ in range(p.n_dark):
        if k_on <= 0:
            break
        # two-state telegraph: dark (mean 1/k_on) <-> active ON (mean 1/k_deact)
        t, segs = 0.0, []
        active = False
        while t < p.duration_s:
            dwell = rng.exponential(1.0 / (p.k_deact_hz if active else k_on))
            if active:
                segs.append((t, min(t + dwell, p.duration_s)))
            t += dwell
            active = not active
        for a, b in segs:
            _emit(rng, np.array([a]), np.array([0]), on_state, b, p.rep_rate_hz, scale, times,
                  taus)
    t_ns = np.concatenate(times) if times else np.zeros(0)
    t_ns = t_ns + rng.normal(p.irf_offset_ns, p.irf_sigma_ns, t_ns.size)
    det = (rng.random(t_ns.size) >= p.splitter).astype(np.int8)
    n_bg = rng.poisson(2 * p.background_cps * p.duration_s)
    t_ns = np.concatenate([t_ns, rng.uniform(0, p.duration_s * 1e9, n_bg)])
    det = np.concatenate([det, rng.integers(0, 2, n_bg).astype(np.int8)])
    n_sc = rng.poisson(2 * p.scatter_cps * p.duration_s)
    if n_sc:
        pulses = rng.integers(0, int(p.duration_s * p.rep_rate_hz), n_sc)
        t_sc = pulses * (1e9 / p.rep_rate_hz) + rng.normal(p.irf_offset_ns, p.irf_sigma_ns, n_sc)
        t_ns = np.concatenate([t_ns, t_sc])
        det = np.concatenate([det, rng.integers(0, 2, n_sc).astype(np.int8)])
    t_ns = np.clip(t_ns, 0, p.duration_s * 1e9 - 1)
    order = np.argsort(t_ns, kind="stable")
    t_ns, det = t_ns[order], det[order]
    keep = np.ones(t_ns.size, bool)
    for d in (0, 1):
        sel = np.nonzero(det == d)[0]
        keep[sel] = _dead_time(t_ns[sel], p.dead_time_ns)
    t_ns, det = t_ns[keep], det[keep]
    period_ns = 1e9 / p.rep_rate_hz
    macro = np.floor(t_ns / period_ns).astype(np.int64)
    micro = np.floor((t_ns - macro * period_ns) / (p.microtime_resolution_s * 1e9)).astype(np.int32)
    return PhotonStream(channel=det, macrotime=macro, microtime=micro,
                        macrotime_resolution_s=1.0 / p.rep_rate_hz,
                        microtime_resolution_s=p.microtime_resolution_s, mode="T3",
                        sync_rate_hz=p.rep_rate_hz, record_type="simulated HydraHarp2T3",
                        n_records=int(t_ns.size), acquisition_time_s=p.duration_s,
                        n_microtime_bins=int(round(period_ns / (p.microtime_resolution_s * 1e9))),
                        source="simulation", header={"params": _params_dict(p),
                                                     "trajectories": truth})


def _params_dict(p: SimulationParams) -> dict:
    from dataclasses import asdict
    return asdict(p)
