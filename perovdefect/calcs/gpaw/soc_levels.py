"""SOC shifts of chosen Kohn-Sham levels of a finished GPAW run (RUN_DIR/gs.gpw), any
occupations (a constrained DeltaSCF state's included), computed in a subprocess,
`python -m perovdefect.calcs.gpaw.soc_levels JOB_JSON`, as the dipoles are.

GPAW's second-variation SOC (gpaw.spinorbit.soc_eigenstates) mixes the collinear states:
spinor m = sum over (band n, spin s) of v_m,(n,s) |n s>. The SOC level of collinear state
(n, s) is taken as the spinor with the largest weight |v_m,(n,s)|^2 on it (its continuation),
and its shift is that spinor's energy minus the collinear eigenvalue (eV), at the Gamma point.
The weight is reported: a state spread over several spinors (weight well below 1) has no
single SOC level. Hand-written because GPAW returns spinor energies and vectors only, not the
continuation of one collinear level."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def soc_level_shifts(directory: Path, spin: int, bands: list[int],
                     timeout_s: float = 3600.0) -> dict[int, tuple[float, float]]:
    """{band: (SOC shift (eV), weight)} of the collinear states (`bands`, spin channel `spin`,
    Gamma) of the run in `directory`, from its saved wave functions."""
    from perovdefect.calcs.gpaw.dipole import wavefunction_file
    from perovdefect.calcs.gpaw.subjob import run_job
    gpw = wavefunction_file(Path(directory))
    data = run_job("perovdefect.calcs.gpaw.soc_levels",
                   {"gpw": str(gpw), "spin": int(spin), "bands": [int(b) for b in bands]},
                   "SOC calculation", gpw, Path(directory), timeout_s)
    return {int(b): (float(s), float(w)) for b, (s, w) in data["shifts"].items()}


def _load(gpw: str):
    """The saved calculation: plane-wave runs were made with gpaw.old's calculator (and a
    DeltaSCF state's MOM occupations load only there); LCAO runs with the new one."""
    try:
        from gpaw.old.calculator import GPAW
        return GPAW(gpw, txt=None)
    except Exception:  # noqa: BLE001 - not an old-calculator file: the new one reads it
        from gpaw import GPAW
        return GPAW(gpw, txt=None)


def _main(job: dict) -> None:
    from gpaw.occupations import create_occ_calc
    from gpaw.spinorbit import soc_eigenstates
    calc = _load(job["gpw"])
    spin, bands = job["spin"], job["bands"]
    nspins, nbands = calc.get_number_of_spins(), calc.get_number_of_bands()
    error = None
    if spin >= nspins:
        error = f"spin {spin} asked, but the run has {nspins} spin channel(s)"
    elif any(not 0 <= b < nbands for b in bands):
        error = f"a band of {bands} is outside the run's bands 0..{nbands - 1}"
    if error:
        Path(job["out"]).write_text(json.dumps({"error": error}))
        return
    # the occupation calculator only places the SOC Fermi level (a MOM run's cannot be copied)
    soc = soc_eigenstates(calc, occcalc=create_occ_calc({"name": "fermi-dirac",
                                                          "width": 0.01}))
    e_m = np.asarray(soc.eigenvalues())[0]
    v = np.asarray(soc.eigenvectors())[0]  # (spinor m, collinear index 2 n + s)
    eps = calc.get_eigenvalues(kpt=0, spin=spin)
    shifts = {}
    for n in bands:
        w = np.abs(v[:, 2 * n + spin if nspins == 2 else 2 * n]) ** 2
        m = int(np.argmax(w))
        shifts[n] = (float(e_m[m] - eps[n]), float(w[m]))
    Path(job["out"]).write_text(json.dumps({"shifts": shifts}))


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
