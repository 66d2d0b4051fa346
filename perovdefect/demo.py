"""The main job: `perovdefect demo -o DIR`, end to end on the embedded LaunchPad with GPAW.

1. pristine and Br-vacancy Cs4PbBr6 "molecule" clusters; 2. a simulated PL spectrum (517 nm,
14 nm FWHM) fitted; 3. the clusters submitted as a FireWorks campaign to the embedded LaunchPad
and run by an `rlaunch` worker (GPAW, PBE LCAO; --tier hse06-soc adds the non-self-consistent
HSE06 and SOC steps in PW mode): their Kohn-Sham in-gap states, a screen; 4. the headline: the
predicted emission of V_Br^0 in the 21-atom Cs4PbBr6 crystal cell (total-energy DeltaSCF,
relaxed ground and excited states, CC line shape, radiative lifetime), a result the project
computed (about 3 h of DFT on 1-2 cores) and ships with its provenance and the command that
regenerates it; 5. a simulated
single-particle TCSPC power series of a 0D nanocrystal with the seed's parameters (tau_ON 9 ns,
tau_GRAY 1 ns, photobrightening above <N> = 0.5), written as PTU files and analysed from them;
6. the joint report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from perovdefect.photons.simulate import SimulationParams

DEMO_N = (0.25, 0.5, 1.0, 1.5, 2.0)


def demo_campaign(tier: str, pl_nm: float) -> dict:
    """The demo's campaign: the embedded default's code (perovdefect.calcs.local_backend) with
    its "quick" settings for PBE, its "hybrid" settings (and a 300 eV cutoff) otherwise."""
    from perovdefect.calcs.backend import local_backend
    backend = local_backend()
    settings = backend.presets["quick" if tier == "pbe" else "hybrid"]
    protocol = {} if tier == "pbe" else {"cutoff_eV": 300}
    return {"name": "demo-cs4pbbr6", "code": backend.name, "tier": tier, "relax": False,
            "pl_nm": round(pl_nm, 2),
            "models": [{"compound": "Cs4PbBr6", "model": "cluster",
                        "cluster": "cs4pbbr6-molecule", "padding_A": 4.5 if tier == "pbe"
                        else 4.0, "charges": [0]}],
            "protocol": protocol, "settings": dict(settings)}


def demo_photon_params(N: float, duration_s: float, seed: int) -> SimulationParams:
    """A 0D Cs4PbBr6 nanocrystal: one ON/GRAY/OFF emitter plus three photoactivatable ones
    switched on above <N> = 0.5 (bursts to ~1000 counts per 10 ms with the same lifetime)."""
    return SimulationParams(duration_s=duration_s, n_emitters=1, excitation_N=N, n_dark=3,
                            k_act_hz=2.0, activation_order=2.0, activation_threshold_N=0.5,
                            k_deact_hz=4.0, background_cps=750.0, seed=seed)


def write_pl_spectrum(path: Path, center_nm: float = 517.0, fwhm_nm: float = 14.0,
                      seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    wl = np.arange(470.0, 570.0, 0.25)
    sigma = fwhm_nm / (2 * np.sqrt(2 * np.log(2)))
    y = rng.poisson(2000 * np.exp(-0.5 * ((wl - center_nm) / sigma) ** 2) + 30)
    path.write_text("wavelength_nm,intensity\n" + "\n".join(f"{a:.2f},{b}" for a, b in
                                                              zip(wl, y)))
    return path


def predicted_emission(peak, log: Callable[[str], None]):
    """The shipped luminescence result (optics.shipped.DEMO_RESULT), compared with the fitted
    PL `peak`."""
    from perovdefect.optics.lineshape import compare_with_measurement
    from perovdefect.optics.shipped import load_shipped
    lum = load_shipped()
    lum.comparison = compare_with_measurement(lum.spectrum, peak.center_nm, peak.fwhm_nm)
    s = lum.summary()
    where = (f"{lum.n_atoms}-atom crystal cell" if lum.model == "periodic" else
             "isolated molecule: far too soft, see the report's limitations")
    log(f"      predicted emission ({lum.structure}, {where}, "
        f"{lum.level_of_theory}): {s['predicted_pl_peak_nm']:.0f} nm, FWHM "
        f"{s['predicted_pl_fwhm_nm']:.0f} nm"
        + (f", radiative lifetime {s['radiative_lifetime_ns']:.3g} ns"
           if s.get("radiative_lifetime_ns") else "")
        + f"; measured {peak.center_nm:.0f} nm / {peak.fwhm_nm:.0f} nm")
    log(f"      (shipped result; regenerate with: {lum.provenance.command})")
    return lum


def run_demo(out_dir: str | Path = "demo-out", tier: str = "pbe", quick: bool = False,
             log: Callable[[str], None] = print, progress=None, dft: bool = True) -> dict:
    """Run the whole chain; returns the summary (also OUT/summary.json). dft=False skips the
    calculations (steps 1 and 3), for machines where the local code cannot run."""
    import json

    from perovdefect.levels import fit_pl_spectrum, read_spectrum
    from perovdefect.photons.analysis.pipeline import analyze_stream, power_series
    from perovdefect.photons.io import read_photons
    from perovdefect.photons.io.ptu_write import write_ptu
    from perovdefect.photons.simulate import simulate
    from perovdefect.report import ReportInputs, build_report
    from perovdefect.structures import build_cluster
    from perovdefect.workflows import campaign as camp
    from perovdefect.calcs.backend import local_backend
    if dft:
        local_backend()  # a clear error now, not a failure in the middle of the campaign
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.time()

    log("[1/6] building the pristine and V_Br Cs4PbBr6 molecule clusters")
    for vac in (False, True):
        rec = build_cluster("cs4pbbr6-molecule", vacancy=vac)
        rec.write(out / "structures" / f"{rec.name}.xyz")
        log(f"      {rec.name}: {rec.atoms.get_chemical_formula()}, "
            f"{rec.metadata['valence_electrons']} valence e-, 2S+1 = "
            f"{rec.metadata['spin_multiplicity']}")

    log("[2/6] simulated PL spectrum (517 nm, FWHM 14 nm) and its fit")
    pl_csv = write_pl_spectrum(out / "pl_spectrum.csv")
    wl, y = read_spectrum(pl_csv)
    peak = fit_pl_spectrum(wl, y, "gaussian", source=str(pl_csv))
    log(f"      PL peak {peak.center_nm:.1f} nm = {peak.center_eV:.3f} eV, FWHM "
        f"{peak.fwhm_nm:.1f} nm ({peak.fwhm_meV:.0f} meV)")

    analyses, steps, campaign_files = [], [], []
    if dft:
        log(f"[3/6] FireWorks campaign on the embedded LaunchPad ({out / 'project'}), {tier}")
        campaign_file = out / "campaign.yaml"
        campaign_file.write_text(yaml.safe_dump(demo_campaign(tier, peak.center_nm),
                                                sort_keys=False))
        campaign_files.append(campaign_file)
        project = out / "project"
        sub = camp.submit(campaign_file, project)
        log(f"      submitted {sub['added'] or 'nothing new'} (already present: "
            f"{sub['already_present']})")
        t = time.time()
        camp.run(project, progress=progress)
        results = camp.collect(project, output=out / "campaign_results.json")
        timings["dft_s"] = round(time.time() - t, 1)
        analyses = list(results.analyses)
        steps = [row.model_dump() for row in results.steps]
        for a in analyses:
            for label, d in a.defects.items():
                log(f"      host gap {a.host.gap_eV:.3f} eV; {label} Kohn-Sham screen (a "
                    "level, not the emission): "
                    + (d.verdict.text if d.verdict else "no in-gap states"))
    else:
        log("[3/6] DFT skipped, as asked")
        timings["dft_s"] = 0.0

    lum = predicted_emission(peak, log)

    log("[4/6] simulating the single-particle TCSPC power series (PTU files)")
    t = time.time()
    duration = 4.0 if quick else 10.0
    (out / "photons").mkdir(exist_ok=True)
    ptus = []
    for i, N in enumerate(DEMO_N):
        stream = simulate(demo_photon_params(N, duration, seed=100 + i))
        ptus.append(write_ptu(out / "photons" / f"particle_N{N:g}.ptu", stream))
    timings["simulation_s"] = round(time.time() - t, 1)

    log("[5/6] analysing the recordings: trace, levels, decays, g2, FLID, power series")
    t = time.time()
    stats = []
    for N, path in zip(DEMO_N, ptus):
        st = analyze_stream(read_photons(path), background_cps=750.0, excitation_N=N)
        st.to_json(out / "photons" / f"{path.stem}.photonstats.json")
        s = st.summary()
        g2 = "-" if s.get("g2_0") is None else f"{s['g2_0']:.3f} +- {s['g2_0_err']:.3f}"
        log(f"      <N> = {N:g}: levels {[round(c) for c in s['levels_counts_per_bin']]} "
            f"counts/10 ms, g2(0) = {g2}")
        stats.append(st)
    series = power_series(stats)
    timings["photon_analysis_s"] = round(time.time() - t, 1)
    fit = series["mean_intensity_fit"]
    log(f"      intensity ~ <N>^{fit['exponent']:.2f} ({fit['regime']})")

    log("[6/6] writing the joint report")
    inputs = ReportInputs(
        analyses=analyses, steps=steps, photon_stats=stats, power_series=series,
        luminescence=[lum],
        pl=(wl, y, peak), input_files=[*campaign_files, pl_csv, *ptus],
        notes=["Demo data: the PL spectrum and the TCSPC recordings are simulated (perovdefect."
               "photons.simulate, seed parameters); the Kohn-Sham levels are real GPAW "
               "calculations of unrelaxed cluster models run now (a screen); the predicted "
               "emission is the shipped result named in the summary (real GPAW "
               "DeltaSCF calculations, not run by the demo)."],
        extra={"simulated_truth": {"emitters_below_threshold": 1, "tau_on_ns": 9.0,
                                   "tau_gray_ns": 1.0, "photobrightening_threshold_N": 0.5}})
    summary = build_report(inputs, out, "perovdefect demo: Cs4PbBr6 V_Br levels and "
                           "single-particle photon statistics")
    timings["total_s"] = round(time.time() - t0, 1)
    summary.update({"timings_s": timings, "output_dir": str(out), "tier": tier})
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
