"""The host density of states for carrier densities, from the bulk calculation's eigenvalues.

Each Kohn-Sham state at each of the run's k-points (its weight from the run, spin degeneracy
2 / nspins, 1 with spin-orbit coupling) becomes a normalised Gaussian (ASE's RawDOSData), on a
grid with the VBM at 0 eV. The smearing should stay well below k_B T: a Gaussian of width
sigma raises a Boltzmann carrier density by exp(sigma^2 / 2 (k_B T)^2), 1.9 % at 300 K for
the default 5 meV. The DOS is only as good as the run's k-point sampling (stated in the
HostDensityOfStates part).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.integrate import trapezoid

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.errors import AnalysisError
from perovdefect.thermo.documents import HostDensityOfStates

#: Gaussian width (eV) of each state in the host DOS
DEFAULT_DOS_SMEARING_eV = 0.005
#: grid points per smearing width
POINTS_PER_WIDTH = 5
#: grid margin beyond the lowest and highest computed states, in smearing widths
MARGIN_WIDTHS = 8


class SampledDos(NamedTuple):
    """Host DOS on a grid: energies above the VBM (eV), states/eV per cell (spin included)."""

    energies_eV: np.ndarray
    states_per_eV: np.ndarray
    info: HostDensityOfStates


def host_density_of_states(host: ElectronicStructure,
                           smearing_eV: float = DEFAULT_DOS_SMEARING_eV) -> SampledDos:
    """The host's DOS per cell (states/eV) with the VBM at 0, and how it was built."""
    from ase.spectrum.dosdata import RawDOSData
    name = str(host.source or "host calculation")
    if not (np.isfinite(smearing_eV) and smearing_eV > 0):
        raise AnalysisError(f"the DOS smearing must be a positive number of eV, got {smearing_eV}")
    if host.is_cluster or host.structure is None or not all(host.structure.pbc):
        raise AnalysisError(f"{name}: carrier and defect concentrations need a periodic host "
                            "cell (its volume and band DOS); this one is a cluster or has no "
                            "structure")
    if host.vbm_eV is None or host.gap_eV is None or host.gap_eV <= 0:
        raise AnalysisError(f"{name}: the host needs a band gap (VBM and CBM) for its DOS")
    eps = np.asarray(host.eigenvalues_eV, float) - host.vbm_eV  # [spin][k][band]
    weights = np.asarray(host.kpoint_weights, float)
    if eps.size == 0 or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise AnalysisError(f"{name}: no eigenvalues, or k-point weights not summing to 1")
    per_state = 1.0 if host.soc else 2.0 / host.nspins
    w = np.broadcast_to((weights * per_state)[None, :, None], eps.shape)
    lo, hi = eps.min() - MARGIN_WIDTHS * smearing_eV, eps.max() + MARGIN_WIDTHS * smearing_eV
    npts = int(np.ceil((hi - lo) / smearing_eV * POINTS_PER_WIDTH)) + 1
    sampled = RawDOSData(eps.ravel(), w.ravel()).sample_grid(
        npts, xmin=lo, xmax=hi, width=smearing_eV, smearing="Gauss")
    grid, dos = sampled.get_energies(), sampled.get_weights()
    step = float(grid[1] - grid[0])
    gap = float(host.gap_eV)
    below = grid <= gap / 2
    info = HostDensityOfStates(
        source=name, smearing_width_eV=smearing_eV, energy_step_eV=step,
        n_kpoints=len(weights), kpoints=_kpoint_text(host), nspins=host.nspins, soc=host.soc,
        n_bands=eps.shape[2], cell_volume_A3=float(abs(np.linalg.det(host.structure.cell_A))),
        band_gap_eV=gap, electrons_below_midgap=float(trapezoid(dos[below], grid[below])),
        n_electrons=host.n_electrons, bands_reach_above_cbm_eV=float(eps.max() - gap))
    return SampledDos(grid, dos, info)


def _kpoint_text(host: ElectronicStructure) -> str:
    """The run's k-point sampling in words (mesh, explicit points or just the count)."""
    n = len(host.kpoint_weights)
    kp = host.theory.kpoints if host.theory is not None else None
    if kp is not None and kp.mesh:
        shift = f", shift {kp.shift}" if kp.shift and any(kp.shift) else ""
        return f"{'x'.join(map(str, kp.mesh))} mesh{shift} ({n} irreducible k-points)"
    if kp is not None and kp.explicit_frac:
        pts = "; ".join(" ".join(f"{x:g}" for x in k) for k in kp.explicit_frac[:4])
        more = " ..." if len(kp.explicit_frac) > 4 else ""
        return f"{n} explicit k-point(s) ({pts}{more}, fractional)"
    return f"{n} k-point(s) (weights from the run)"
