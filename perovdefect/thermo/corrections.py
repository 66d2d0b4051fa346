"""Finite-size corrections of charged defects, and the isolated-cluster counterparts.

* Periodic cells: Freysoldt (FNV) from planar-averaged electrostatic potentials, a thin adapter
  over pymatgen-analysis-defects' `get_freysoldt_correction` (which does the physics); this
  module checks the inputs (three axes, matching grids and lattices, a charge) and returns a
  typed part.
* eFNV (Kumagai-Oba) from atomic-site potentials: a thin adapter over
  pymatgen-analysis-defects' `get_efnv_correction`, which needs pydefect (optional: `pip install
  pydefect`; a clear error says so when it is absent).
* Isolated clusters: no periodic images, so no correction (`isolated_cluster_correction`), but
  a charged cluster must hold its electrons: `check_cluster_bound` flags an occupied state above
  the vacuum level.

Potentials follow the LOCPOT convention of the codes (electrostatic potential energy of an
electron, eV); lengths are in A.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from pymatgen.core import Lattice

from perovdefect.errors import AnalysisError, UnboundStateError
from perovdefect.thermo.documents import (
    ClusterBoundCheck,
    Correction,
    EfnvCorrection,
    FreysoldtCorrection,
)


def _lattice(lattice: Lattice | ArrayLike, what: str) -> Lattice:
    if isinstance(lattice, Lattice):
        return lattice
    m = np.asarray(lattice, float)
    if m.shape != (3, 3):
        raise AnalysisError(f"{what}: lattice must be a 3x3 matrix of row vectors (A), got "
                            f"shape {m.shape}")
    if abs(np.linalg.det(m)) < 1e-6:
        raise AnalysisError(f"{what}: lattice is singular")
    return Lattice(m)


def _planar(avg: Sequence[ArrayLike], what: str) -> list[np.ndarray]:
    if len(avg) != 3:
        raise AnalysisError(f"{what}: need the planar-averaged potential along each of the 3 "
                            f"lattice vectors, got {len(avg)} arrays")
    out = []
    for i, a in enumerate(avg):
        arr = np.asarray(a, float)
        if arr.ndim != 1 or arr.size < 4:
            raise AnalysisError(f"{what}: axis {i} must be a 1-D array of at least 4 points, "
                                f"got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise AnalysisError(f"{what}: axis {i} has NaN/inf values")
        out.append(arr)
    return out


def freysoldt_correction(
    charge: int | None,
    defect_planar_avg_eV: Sequence[ArrayLike],
    host_planar_avg_eV: Sequence[ArrayLike],
    defect_lattice: Lattice | ArrayLike,
    host_lattice: Lattice | ArrayLike,
    dielectric: float | ArrayLike,
    defect_frac_coords: ArrayLike,
    energy_cutoff_eV: float = 520.0,
    lattice_tolerance_A: float = 1e-3,
) -> FreysoldtCorrection:
    """FNV correction (eV) of a charged defect in a periodic cell.

    Args:
        charge: defect charge q (required; 0 gives a zero correction).
        defect_planar_avg_eV / host_planar_avg_eV: three 1-D arrays, the potential averaged
            over planes along lattice vectors a, b, c, on the same grid for defect and host.
        defect_lattice / host_lattice: the two cells (pymatgen Lattice or 3x3 rows, A); the
            host must be the same supercell as the defect.
        dielectric: static dielectric constant (scalar, 3 diagonal values or 3x3; electronic +
            ionic for relaxed defects).
        defect_frac_coords: defect position in fractional coordinates of the defect cell.
        energy_cutoff_eV: reciprocal-space cutoff of the Madelung sums.

    Raises:
        AnalysisError: missing charge, grids of different lengths, lattices that differ, a
            non-positive dielectric constant.
    """
    if charge is None:
        raise AnalysisError("the defect charge is required for the Freysoldt correction")
    if int(charge) != charge:
        raise AnalysisError(f"charge must be an integer, got {charge}")
    charge = int(charge)
    d_lat = _lattice(defect_lattice, "defect cell")
    h_lat = _lattice(host_lattice, "host cell")
    if not np.allclose(d_lat.matrix, h_lat.matrix, atol=lattice_tolerance_A):
        raise AnalysisError(
            "defect and host lattices differ (max |delta| = "
            f"{np.abs(d_lat.matrix - h_lat.matrix).max():.4f} A): the host potential must come "
            "from the same supercell as the defect")
    dav = _planar(defect_planar_avg_eV, "defect potential")
    hav = _planar(host_planar_avg_eV, "host potential")
    for i, (d, h) in enumerate(zip(dav, hav)):
        if d.shape != h.shape:
            raise AnalysisError(f"axis {i}: defect grid has {d.size} points, host grid "
                                f"{h.size}: use the same FFT grid for both calculations")
    eps_t = _dielectric_tensor(dielectric)
    frac = np.asarray(defect_frac_coords, float)
    if frac.shape != (3,):
        raise AnalysisError(f"defect_frac_coords must be 3 numbers, got shape {frac.shape}")
    if charge == 0:
        return FreysoldtCorrection(charge=0, dielectric_tensor=eps_t.tolist(),
                                   electrostatic_eV=0.0, alignment_eV=0.0,
                                   alignment_per_axis_eV=[0.0, 0.0, 0.0], energy_eV=0.0)
    from pymatgen.analysis.defects.corrections.freysoldt import get_freysoldt_correction

    res = get_freysoldt_correction(
        q=charge, dielectric=eps_t, defect_locpot={i: dav[i] for i in range(3)},
        bulk_locpot={i: hav[i] for i in range(3)}, defect_frac_coords=frac % 1.0,
        lattice=d_lat, energy_cutoff=energy_cutoff_eV)
    md = res.metadata
    return FreysoldtCorrection(
        charge=charge, dielectric_tensor=eps_t.tolist(),
        electrostatic_eV=float(md["electrostatic"]), alignment_eV=float(md["potential"]),
        alignment_per_axis_eV=[float(md["alignments"][i]) for i in range(3)],
        energy_eV=float(res.correction_energy))


def _dielectric_tensor(dielectric: float | ArrayLike) -> np.ndarray:
    eps = np.asarray(dielectric, float)
    if eps.shape not in {(), (3,), (3, 3)}:
        raise AnalysisError(f"dielectric must be a scalar, 3 values or 3x3, got {eps.shape}")
    eps_t = np.diag(np.broadcast_to(eps, (3,))) if eps.shape != (3, 3) else eps
    if np.any(np.linalg.eigvalsh((eps_t + eps_t.T) / 2) <= 0):
        raise AnalysisError("dielectric tensor must be positive definite")
    return eps_t


def efnv_correction(
    charge: int | None,
    defect_structure: "Structure",  # noqa: F821 - pymatgen Structure
    host_structure: "Structure",  # noqa: F821
    defect_site_potentials_V: ArrayLike,
    host_site_potentials_V: ArrayLike,
    dielectric: float | ArrayLike,
    lattice_tolerance_A: float = 1e-3,
) -> EfnvCorrection:
    """eFNV correction (eV) of a charged defect from atomic-site electrostatic potentials.

    Args:
        charge: defect charge q (required).
        defect_structure / host_structure: the defect and defect-free supercells (pymatgen
            Structure, same lattice); the defect is located by comparing them (pydefect).
        defect_site_potentials_V / host_site_potentials_V: electrostatic potential (V, as felt
            by a positive test charge) averaged around each atom, one per site in structure
            order. VASP users: minus the "average (electrostatic) potential at core" values of
            OUTCAR (pydefect's convention).
        dielectric: static dielectric constant (scalar, 3 values or 3x3).

    Raises:
        AnalysisError: missing charge, potentials not one per site, lattices that differ,
            pydefect not installed.
    """
    if charge is None:
        raise AnalysisError("the defect charge is required for the eFNV correction")
    if int(charge) != charge:
        raise AnalysisError(f"charge must be an integer, got {charge}")
    charge = int(charge)
    if not np.allclose(defect_structure.lattice.matrix, host_structure.lattice.matrix,
                       atol=lattice_tolerance_A):
        raise AnalysisError("defect and host lattices differ: the host must be the same "
                            "supercell as the defect")
    dpot = np.asarray(defect_site_potentials_V, float)
    hpot = np.asarray(host_site_potentials_V, float)
    for pot, st, what in ((dpot, defect_structure, "defect"), (hpot, host_structure, "host")):
        if pot.shape != (len(st),):
            raise AnalysisError(f"{what}: need one site potential per atom ({len(st)}), got "
                                f"shape {pot.shape}")
        if not np.all(np.isfinite(pot)):
            raise AnalysisError(f"{what}: site potentials have NaN/inf values")
    eps_t = _dielectric_tensor(dielectric)
    from pymatgen.analysis.defects.corrections import kumagai

    if not kumagai.__has_pydefect__:
        raise AnalysisError("the eFNV correction needs pydefect: pip install pydefect "
                            "(or use the Freysoldt correction)")
    d = defect_structure.copy(site_properties={"potential": dpot.tolist()})
    h = host_structure.copy(site_properties={"potential": hpot.tolist()})
    try:
        res = kumagai.get_efnv_correction(charge, d, h, eps_t.tolist())
    except Exception as exc:  # pydefect raises its own classes (SupercellError, ...)
        raise AnalysisError(f"eFNV correction failed: {type(exc).__name__}: {exc}") from None
    efnv = res.metadata["efnv_corr"]
    sampled = [s for s in efnv.sites if s.distance > efnv.defect_region_radius]
    return EfnvCorrection(charge=charge, dielectric_tensor=eps_t.tolist(),
                          point_charge_eV=float(efnv.point_charge_correction),
                          alignment_eV=float(efnv.alignment_correction) if charge else 0.0,
                          defect_region_radius_A=float(efnv.defect_region_radius),
                          n_sampled_sites=len(sampled),
                          energy_eV=float(res.correction_energy) if charge else 0.0)


def isolated_cluster_correction(charge: int) -> Correction:
    """An isolated (non-periodic) cluster has no image charges: the correction is explicitly
    zero, named 'none', with the reason stated."""
    return Correction(name="none", energy_eV=0.0,
                      detail=f"no correction needed (isolated cluster, charge {int(charge)})")


def check_cluster_bound(charge: int, homo_eV: float, vacuum_level_eV: float,
                        tolerance_eV: float = 0.0) -> ClusterBoundCheck:
    """Flag a charged isolated cluster whose highest occupied state lies above the vacuum level.

    Such an electron is not bound: in a finite box it sits in a box state, and its total
    energy is not a result. The check is a flag (bound=False, message), never a number;
    `require_bound` turns it into an error.

    Args:
        charge: cluster charge (a neutral or positive cluster is reported bound when its HOMO
            is below vacuum, like any other).
        homo_eV: HOMO (highest occupied Kohn-Sham state) energy, eV.
        vacuum_level_eV: electrostatic potential far from the cluster, same scale, eV.
    """
    if not (np.isfinite(homo_eV) and np.isfinite(vacuum_level_eV)):
        raise AnalysisError("HOMO and vacuum level must be finite numbers (eV)")
    above = float(homo_eV - vacuum_level_eV)
    bound = above <= tolerance_eV
    msg = (f"bound: HOMO {-above:.3f} eV below the vacuum level" if bound else
           f"UNBOUND: the occupied HOMO of the charge {int(charge):+d} cluster lies "
           f"{above:.3f} eV above the vacuum level; its energy is not a result (the extra "
           "electron is not held; use a larger/embedded cluster or another charge state)")
    return ClusterBoundCheck(charge=int(charge), homo_eV=float(homo_eV),
                             vacuum_level_eV=float(vacuum_level_eV),
                             homo_above_vacuum_eV=above, bound=bool(bound), message=msg)


def require_bound(check: ClusterBoundCheck) -> ClusterBoundCheck:
    """Raise UnboundStateError when the check says unbound; return it otherwise."""
    if not check.bound:
        raise UnboundStateError(check.message)
    return check
