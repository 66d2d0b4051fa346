"""Configuration-coordinate diagram: harmonic fits of the ground and excited surfaces, Huang-Rhys
factors, Franck-Condon shifts, absorption/emission/zero-phonon energies.

The fit is a linear least-squares parabola written here because nonrad's get_omega_from_PES
returns omega only, and the diagram also needs each minimum's position and energy; the tests
cross-check omega against nonrad on the same points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import constants

from perovdefect.errors import AnalysisError
from perovdefect.optics.documents import CCDiagram, HarmonicFit
from perovdefect.optics.geometry import delta_q

#: sqrt(eV / (amu A^2)) in rad/s: omega (SI) = sqrt(curvature in eV/(amu A^2)) * this
_OMEGA_SI = np.sqrt(constants.e / (constants.atomic_mass * 1e-20))
#: hbar in eV s
_HBAR_EV_S = constants.hbar / constants.e


def hbar_omega_eV(curvature_eV_per_amu_A2: float) -> float:
    """hbar omega (eV) of E = 1/2 omega^2 Q^2 with the curvature omega^2 in eV/(amu A^2)."""
    return float(_HBAR_EV_S * np.sqrt(curvature_eV_per_amu_A2) * _OMEGA_SI)


def huang_rhys(hbar_omega: float, dq_amu05_A: float) -> float:
    """S = omega Delta Q^2 / (2 hbar), SI throughout (hbar omega in eV, Delta Q in amu^1/2 A)."""
    omega = hbar_omega * constants.e / constants.hbar                # rad/s
    dq_si = dq_amu05_A * np.sqrt(constants.atomic_mass) * 1e-10      # kg^1/2 m
    return float(omega * dq_si**2 / (2 * constants.hbar))


def fit_harmonic(q_amu05_A: ArrayLike, energies_eV: ArrayLike,
                 q0_amu05_A: float | None = None) -> HarmonicFit:
    """Least-squares E = e0 + 1/2 omega^2 (Q - q0)^2 (q0 free, or fixed when given)."""
    q = np.asarray(q_amu05_A, float)
    e = np.asarray(energies_eV, float)
    if q.shape != e.shape or q.ndim != 1:
        raise AnalysisError("Q and energies must be 1-D arrays of the same length")
    if q.size < 3 or np.unique(q).size < 3:
        raise AnalysisError(f"a harmonic fit needs at least 3 distinct Q points, got {q.size}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(e))):
        raise AnalysisError("Q and energies must be finite")
    if q0_amu05_A is None:
        c2, c1, c0 = np.polyfit(q, e, 2)
        if c2 <= 0:
            raise AnalysisError("the surface curves downwards (no minimum): not a harmonic "
                                "well; check the energies and the interpolation")
        q0 = -c1 / (2 * c2)
        e0 = c0 - c1**2 / (4 * c2)
        a = c2
    else:
        q0 = float(q0_amu05_A)
        x = (q - q0) ** 2
        (a, e0), *_ = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), e, rcond=None)
        if a <= 0:
            raise AnalysisError("the surface curves downwards around the fixed minimum")
    model = e0 + a * (q - q0) ** 2
    rms = float(np.sqrt(np.mean((e - model) ** 2)))
    return HarmonicFit(hbar_omega_meV=1e3 * hbar_omega_eV(2 * a), q0_amu05_A=float(q0),
                       e0_eV=float(e0), minimum_fixed=q0_amu05_A is not None,
                       n_points=int(q.size), rms_residual_meV=1e3 * rms)


def _energy(fit: HarmonicFit, q: float) -> float:
    w2 = (fit.hbar_omega_meV * 1e-3 / (_HBAR_EV_S * _OMEGA_SI)) ** 2  # eV/(amu A^2)
    return fit.e0_eV + 0.5 * w2 * (q - fit.q0_amu05_A) ** 2


def surface_energy(fit: HarmonicFit, q_amu05_A: float | np.ndarray) -> float | np.ndarray:
    """Energy (eV) of a fitted harmonic surface at Q (amu^1/2 A)."""
    return _energy(fit, q_amu05_A)


def cc_diagram(delta_q_amu05_A: float,
               ground_fractions: Sequence[float], ground_energies_eV: Sequence[float],
               excited_fractions: Sequence[float], excited_energies_eV: Sequence[float],
               fix_minima: bool = True) -> CCDiagram:
    """Configuration-coordinate diagram from energies along the linear interpolation.

    Args:
        delta_q_amu05_A: Delta Q between the relaxed ground and excited geometries.
        ground_fractions / ground_energies_eV: interpolation fractions f (0 = ground geometry,
            1 = excited geometry; Q = f Delta Q) and total energies of the electronic ground
            state there (eV).
        excited_fractions / excited_energies_eV: the same for the excited state, on the same
            energy scale.
        fix_minima: the relaxed geometries are the minima (ground at Q = 0, excited at Q =
            Delta Q); False fits the minima freely (then S and FC use the fitted positions).
    """
    if delta_q_amu05_A <= 0:
        raise AnalysisError(f"Delta Q must be positive, got {delta_q_amu05_A}")
    qg = np.asarray(ground_fractions, float) * delta_q_amu05_A
    qe = np.asarray(excited_fractions, float) * delta_q_amu05_A
    g = fit_harmonic(qg, ground_energies_eV, 0.0 if fix_minima else None)
    x = fit_harmonic(qe, excited_energies_eV, delta_q_amu05_A if fix_minima else None)
    dq = x.q0_amu05_A - g.q0_amu05_A
    warnings = []
    if not fix_minima and abs(abs(dq) - delta_q_amu05_A) > 0.1 * delta_q_amu05_A:
        warnings.append(f"fitted minima are {abs(dq):.3f} apart but the geometries "
                        f"{delta_q_amu05_A:.3f} amu^1/2 A: relaxations or energies inconsistent")
    for name, f in (("ground", g), ("excited", x)):
        if f.rms_residual_meV > 0.05 * f.hbar_omega_meV + 1.0:
            warnings.append(f"{name} surface is not harmonic within the sampled range "
                            f"(rms residual {f.rms_residual_meV:.1f} meV)")
    zpl = x.e0_eV - g.e0_eV
    e_abs = _energy(x, g.q0_amu05_A) - g.e0_eV
    e_em = x.e0_eV - _energy(g, x.q0_amu05_A)
    fc_g = _energy(g, x.q0_amu05_A) - g.e0_eV
    fc_e = _energy(x, g.q0_amu05_A) - x.e0_eV
    if zpl <= 0:
        warnings.append(f"the excited minimum lies {-zpl:.3f} eV below the ground minimum")
    return CCDiagram(delta_q_amu05_A=float(abs(dq)), ground=g, excited=x,
                     huang_rhys_ground=huang_rhys(g.hbar_omega_meV * 1e-3, dq),
                     huang_rhys_excited=huang_rhys(x.hbar_omega_meV * 1e-3, dq),
                     franck_condon_ground_eV=float(fc_g), franck_condon_excited_eV=float(fc_e),
                     zpl_eV=float(zpl), e_abs_eV=float(e_abs), e_em_eV=float(e_em),
                     warnings=warnings)


def cc_diagram_from_geometries(ground: Any, excited: Any,
                               ground_fractions: Sequence[float],
                               ground_energies_eV: Sequence[float],
                               excited_fractions: Sequence[float],
                               excited_energies_eV: Sequence[float],
                               fix_minima: bool = True) -> CCDiagram:
    """`cc_diagram` with Delta Q taken from the two relaxed geometries (Structure or Atoms)."""
    return cc_diagram(delta_q(ground, excited), ground_fractions, ground_energies_eV,
                      excited_fractions, excited_energies_eV, fix_minima)
