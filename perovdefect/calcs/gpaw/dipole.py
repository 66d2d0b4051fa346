"""Transition dipoles <i|e r|f> (e*A) from the wave functions a GPAW run kept (RUN_DIR/gs.gpw).

The matrix elements are computed in a subprocess, `python -m perovdefect.calcs.gpaw.dipole
JOB_JSON` (as the runner: GPAW, its memory and a crash stay out of the caller's process), on the
Gamma point, in the length gauge, all-electron through the PAW corrections:

    d_if = <psi~_i| r |psi~_f> + sum_a sum_jk P^a_ij* (Delta^a_jk,L=1 + R_a Delta^a_jk,L=0) P^a_fk

- Clusters (no periodic direction): GPAW's own gpaw.utilities.dipole.
  dipole_matrix_elements_from_calc, r measured from the box origin (the origin does not matter
  between orthogonal states).
- Periodic cells: the dipole of localised states (chosen over momentum matrix elements, which
  GPAW offers only in plane-wave mode while the project's default is LCAO): the same two terms
  with r measured from the two states' common centre under the minimum-image convention
  (GPAW's function measures r from the cell origin, wrong for a state that straddles a cell
  face; this part is written here for that reason, following GPAW's formula). Valid when both
  states are localised well inside the cell: the criterion reported is the largest weight of
  either state's pseudo density farther than 40 % of a lattice vector from the centre along
  any lattice vector (`boundary_weight`); above 1 % the result carries a warning.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from perovdefect.calcs.transition import TransitionDipoles
from perovdefect.errors import ParseError

#: the wave-function file of a static step (written by the runner, mode='all')
GPW = "gs.gpw"
#: the periodic criterion: a state's weight beyond this fraction of a lattice vector from the
#: centre, and the weight above which the document warns
EDGE_FRACTION = 0.4
MAX_BOUNDARY_WEIGHT = 0.01


def wavefunction_file(directory: Path) -> Path:
    """The .gpw file holding the wave functions of the run in `directory`: its own gs.gpw, or
    the one its ground_state.json names (a hybrid step reusing the previous step's ground
    state); ParseError naming the directory when it kept none."""
    own = directory / GPW
    if own.is_file():
        return own
    info = directory / "ground_state.json"
    if info.is_file():
        try:
            named = Path(json.loads(info.read_text()).get("gpw", ""))
        except (OSError, json.JSONDecodeError, AttributeError):
            named = None
        if named is not None and named.is_file():
            return named
    raise ParseError(f"{directory}: the run kept no wave functions (no {GPW}); static steps "
                     "keep them with the gpaw setting keep_wavefunctions (on by default), "
                     "relax steps never: rerun the static step in a fresh directory")


def transition_dipoles(directory: Path, initial: list[int], final: list[int],
                       spin: int, timeout_s: float = 3600.0) -> TransitionDipoles:
    """<i|e r|f> for every i in `initial` and f in `final` (band indices, spin channel `spin`)
    from `directory`'s wave functions, computed in a subprocess."""
    from perovdefect.calcs.gpaw.subjob import run_job
    gpw = wavefunction_file(directory)
    data = run_job("perovdefect.calcs.gpaw.dipole",
                   {"gpw": str(gpw), "initial": [int(b) for b in initial],
                    "final": [int(b) for b in final], "spin": int(spin)},
                   "dipole calculation", gpw, directory, timeout_s)
    return TransitionDipoles(**data)


# -- the subprocess -----------------------------------------------------------------------------
def _refusal(calc, bands: list[int], spin: int) -> str | None:
    """Why the saved calculation cannot give these matrix elements (None: it can)."""
    ibzwfs = calc.dft.ibzwfs
    if spin >= ibzwfs.nspins:
        return (f"spin {'down' if spin == 1 else spin} asked, but the run is "
                "spin-unpolarised (one spin channel)")
    bad = [b for b in bands if not 0 <= b < ibzwfs.nbands]
    if bad:
        return f"band {bad[0]} is outside the saved wave functions (bands 0..{ibzwfs.nbands - 1})"
    if getattr(ibzwfs, "ncomponents", 1) == 4:
        return "the saved wave functions are spinors (noncollinear): not supported"
    if not ibzwfs.ibz.bz.gamma_only:
        return (f"the dipole of localised states needs a Gamma-point-only calculation; this "
                f"run has {len(ibzwfs.ibz)} irreducible k-points")
    return None


def _cluster_dipoles(calc, bands: list[int], spin: int) -> tuple[np.ndarray, int]:
    """(d[n - n1, m - n1, v] (A) over bands n1..n2-1 from GPAW's own routine, n1)."""
    from gpaw.utilities.dipole import dipole_matrix_elements_from_calc
    n1, n2 = min(bands), max(bands) + 1
    return dipole_matrix_elements_from_calc(calc, n1, n2)[spin], n1


def _grid_wave_functions(calc, spin: int, n1: int, n2: int):
    """Bands n1..n2-1 of the spin channel's Gamma-point wave functions as GPAW's
    PWFDWaveFunctions (LCAO coefficients expanded on the density grid, as GPAW's own dipole
    routine does) and their pseudo wave functions psi~_n(R) on a uniform grid (bohr^-3/2)."""
    from gpaw.core import UGArray, UGDesc
    from gpaw.fftw import get_efficient_fft_size
    from gpaw.new.lcao.wave_functions import LCAOWaveFunctions
    wfs = next(w for w in calc.dft.ibzwfs if w.spin == spin)
    if isinstance(wfs, LCAOWaveFunctions):  # only the bands asked go onto the grid
        wfs = wfs.collect_bands(n1, n2).to_uniform_grid_wave_functions(
            calc.dft.density.nt_sR.desc, calc.dft.scf_loop.hamiltonian.basis)
        n1, n2 = 0, n2 - n1
    wfs = wfs.collect_bands_and_domain(n1, n2)  # reads the bands from the file (serial)
    psit = wfs.psit_nX
    if not isinstance(psit, UGArray):  # plane waves: a grid fine enough for products of two
        size_c = [get_efficient_fft_size(2 * n + 2, 2)
                  for n in np.ptp(psit.desc.indices_cG, axis=1)]
        psit = psit.ifft(grid=UGDesc(cell=psit.desc.cell_cv, size=size_c,
                                     dtype=psit.desc.dtype))
    return wfs, psit


def _wrapped(frac: np.ndarray) -> np.ndarray:
    """Fractional displacements mapped into [-0.5, 0.5) (minimum image along each vector)."""
    return (np.asarray(frac) + 0.5) % 1.0 - 0.5


def _localised_dipoles(calc, bands: list[int], spin: int) -> tuple[dict, np.ndarray, float]:
    """Periodic cells: d[(n, m)] (A) with r from the states' common centre (minimum image),
    the centre (A) and the boundary weight (the criterion in the module docstring)."""
    from ase.units import Bohr
    n1 = min(bands)
    wfs, psit = _grid_wave_functions(calc, spin, n1, max(bands) + 1)
    desc = psit.desc
    cell_cv, size_c, dv = desc.cell_cv, np.asarray(desc.size_c), desc.dv
    psi = {n: np.asarray(psit.data[n - n1]) for n in bands}
    rho = sum(np.abs(p) ** 2 for p in psi.values()) / len(psi)
    shape_c = rho.shape  # zero-boundary (cluster) grids hold points start_c.. only
    s_c = [(desc.start_c[c] + np.arange(shape_c[c])) / size_c[c] for c in range(3)]
    centre_c = np.empty(3)
    for c in range(3):  # circular mean of the density along each lattice vector
        marginal = rho.sum(axis=tuple(a for a in range(3) if a != c))
        angle = 2 * np.pi * s_c[c]
        centre_c[c] = np.arctan2(marginal @ np.sin(angle), marginal @ np.cos(angle)) / (2 * np.pi)
    ds_c = [_wrapped(s_c[c] - centre_c[c]) for c in range(3)]
    edge = np.zeros(shape_c, dtype=bool)
    for c in range(3):
        shape = [1, 1, 1]
        shape[c] = -1
        edge |= (np.abs(ds_c[c]) > EDGE_FRACTION).reshape(shape)
    boundary = max(float((np.abs(p) ** 2)[edge].sum() / (np.abs(p) ** 2).sum())
                   for p in psi.values())
    # PAW part: GPAW's formula (PWFDWaveFunctions.dipole_matrix_elements) with the atoms'
    # positions taken from the centre under the minimum image
    R_aiiv = []
    for setup, relpos_c in zip(wfs.setups, wfs.relpos_ac):
        pos_v = _wrapped(relpos_c - centre_c) @ cell_cv
        Delta_iiL = setup.Delta_iiL
        R_aiiv.append(Delta_iiL[:, :, [3, 1, 2]] * (4 * np.pi / 3) ** 0.5
                      + pos_v * Delta_iiL[:, :, :1] * (4 * np.pi) ** 0.5)
    P_ani = {a: np.asarray(P_ni) for a, P_ni in wfs.P_ani.items()}
    out = {}
    for n in bands:
        for m in bands:
            prod = np.conj(psi[n]) * psi[m]
            d_c = [ds_c[c] @ prod.sum(axis=tuple(a for a in range(3) if a != c))
                   for c in range(3)]
            d_v = np.asarray(d_c) @ cell_cv * dv
            for a, P_ni in P_ani.items():
                d_v = d_v + np.einsum("i,ijv,j->v", np.conj(P_ni[n - n1]), R_aiiv[a],
                                      P_ni[m - n1])
            out[(n, m)] = d_v * Bohr
    return out, (_wrapped(centre_c) % 1.0) @ cell_cv * Bohr, boundary


def _main(job: dict) -> None:
    import gpaw
    from gpaw import GPAW
    initial, final, spin = job["initial"], job["final"], job["spin"]
    calc = GPAW(job["gpw"], txt=None)
    bands = sorted(set(initial) | set(final))
    reason = _refusal(calc, bands, spin)
    if reason:
        Path(job["out"]).write_text(json.dumps({"error": reason}))
        return
    result: dict = {"spin": spin, "initial_bands": initial, "final_bands": final,
                    "source": job["gpw"], "warnings": []}
    if not any(calc.get_atoms().pbc):
        d_nnv, n1 = _cluster_dipoles(calc, bands, spin)
        vec = {(i, f): d_nnv[i - n1, f - n1] for i in initial for f in final}
        result["method"] = (f"length gauge <i|r|f> of the Kohn-Sham states (GPAW "
                            f"{gpaw.__version__} dipole_matrix_elements_from_calc: pseudo wave "
                            "functions on the grid plus PAW corrections), r from the box origin "
                            "(cluster)")
    else:
        vec, centre, boundary = _localised_dipoles(calc, bands, spin)
        result.update(centre_A=[float(x) for x in centre], boundary_weight=round(boundary, 6))
        result["method"] = (
            f"dipole of localised states (GPAW {gpaw.__version__} wave functions, Gamma point): "
            "length gauge <i|r|f>, pseudo part on the grid plus PAW corrections, r from the "
            "states' common centre under the minimum-image convention; valid when both states "
            f"lie well inside the cell (weight beyond {EDGE_FRACTION:.0%} of a lattice vector "
            f"from the centre below {MAX_BOUNDARY_WEIGHT:.0%})")
        if boundary > MAX_BOUNDARY_WEIGHT:
            result["warnings"].append(
                f"{boundary:.1%} of a state's density lies farther than {EDGE_FRACTION:.0%} of a "
                "lattice vector from the states' centre: the states are not localised well "
                "inside the cell and the localised-state dipole is unreliable")
    result["dipoles_eA"] = [[[float(np.real(x)) for x in vec[(i, f)]] for f in final]
                            for i in initial]
    result["dipoles_imag_eA"] = [[[float(np.imag(x)) for x in vec[(i, f)]] for f in final]
                                 for i in initial]
    Path(job["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
