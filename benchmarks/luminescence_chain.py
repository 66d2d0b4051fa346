"""The periodic luminescence chain, timed step by step (issue 18, goal: <= 30 min on 2 cores):
`.venv/bin/python benchmarks/luminescence_chain.py [--out DIR] [--min-image-distance 9.5]
[--setting KEY=VALUE ...]` (a backend setting, e.g. the local backend's `mom_carry_over=true`,
which carries the excited state between the geometries of the excited relaxation; use a fresh
DIR to time a change).

Runs (or resumes) the whole DeltaSCF chain of V_Br^0 in the Cs4PbBr6 crystal on the smallest
primitive-cell supercell whose images are at least --min-image-distance apart (21 atoms at
9.5 A) with the local code's quick settings and a small basis (the settings of the shipped
result), then prints the wall time of every step, the total and the goal, and the run's
E_abs, ZPL, E_em, Delta Q, S and PL peak and width beside the shipped result's (what a faster
setting costs in accuracy). A finished DIR is only read (`--out` of an earlier run): each step
keeps the wall time recorded when it ran.
Half an hour to an hour of DFT on 2 cores: not part of the test suite. Measured 2026-12-05 on
2 idle cores with --setting mom_carry_over=true --setting grid_spacing_A=0.3: 48.7 min, goal
not met; adding --setting relax_density_convergence=1e-4: 28.6 min, goal met (29.0 min
before the excited relaxation started from the ground relaxation's state).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

GOAL_S = 30 * 60
#: the code settings of the shipped 21-atom result (perovdefect/data/luminescence)
SETTINGS = {"basis": "szp(dzp)", "grid_spacing_A": 0.25, "relax_fmax_eV_per_A": 0.1,
            "relax_max_steps": 30}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-luminescence", help="run directory (resumable)")
    ap.add_argument("--min-image-distance", type=float, default=9.5, help="A")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a backend setting over the shipped result's (YAML value)")
    args = ap.parse_args()
    import click

    from perovdefect.cli.thermo import _key_values  # the CLI's own --setting reader
    try:
        extra = _key_values(tuple(args.setting), "--setting")
    except click.BadParameter as exc:
        ap.error(exc.format_message())
    from perovdefect.calcs.backend import local_backend
    from perovdefect.optics.run import run_luminescence
    from perovdefect.structures import build_vacancies
    rec = build_vacancies("Cs4PbBr6", args.min_image_distance, charges=(0,))[0]
    cls = local_backend()
    backend = cls(**{**cls.presets["quick"], **SETTINGS, **extra})
    t0 = time.perf_counter()
    result = run_luminescence(rec, backend, Path(args.out), "down:homo->lumo",
                              measured_peak_nm=517.0, measured_fwhm_nm=14.0,
                              log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - t0
    total = sum(result.timings_s.values())
    print(f"\n{rec.name}: {len(rec.atoms)} atoms ({backend.name}, {result.level_of_theory})"
          + (f", settings {extra}" if extra else ""))
    for name, t in result.timings_s.items():
        print(f"  {name:18s} {t:8.0f} s")
    print(f"  {'total':18s} {total:8.0f} s = {total / 60:.1f} min (this call: {wall:.0f} s); "
          f"goal {GOAL_S / 60:.0f} min: {'met' if total <= GOAL_S else 'NOT met'}")
    _beside_shipped(result)


def _beside_shipped(result) -> None:
    """The physics of this run beside the shipped 21-atom result (szp(dzp), h 0.25 A, fresh
    starts): what a faster setting costs in accuracy, in the same printout as its time."""
    from perovdefect.optics.shipped import load_shipped
    ref = load_shipped()
    rows = [("E_abs (eV)", lambda r: r.delta_scf.e_abs_eV),
            ("ZPL (eV)", lambda r: r.delta_scf.zpl_eV),
            ("E_em (eV)", lambda r: r.delta_scf.e_em_eV),
            ("Delta Q (amu^1/2 A)", lambda r: r.cc.delta_q_amu05_A),
            ("S ground", lambda r: r.cc.huang_rhys_ground),
            ("PL peak (nm)", lambda r: r.comparison.predicted_peak_nm),
            ("PL FWHM (meV)", lambda r: r.comparison.predicted_fwhm_meV)]
    print(f"\n  {'':20s} {'this run':>10s} {'shipped':>10s} {'change':>10s}")
    for label, get in rows:
        a, b = get(result), get(ref)
        print(f"  {label:20s} {a:10.3f} {b:10.3f} {a - b:+10.3f}")


if __name__ == "__main__":
    main()
