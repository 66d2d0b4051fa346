"""One LuminescenceResult from the energies of two states along the path between their minima,
however they were obtained (the charge-state route, finished runs made elsewhere): the CC
diagram, the vertical transitions, the line shape and the comparison, through the same code as
the DeltaSCF chain (perovdefect.optics.ccd, .vertical, .lineshape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perovdefect.optics.ccd import cc_diagram_from_geometries, surface_energy
from perovdefect.optics.lineshape import compare_with_measurement, pl_spectrum
from perovdefect.optics.run import LuminescenceResult
from perovdefect.optics.vertical import delta_scf_transitions


def _at(fractions: Sequence[float], energies: Sequence[float], f: float) -> float | None:
    for x, e in zip(fractions, energies):
        if abs(x - f) < 1e-6:
            return float(e)
    return None


def assemble(ground: Any, excited: Any, ground_fractions: Sequence[float],
             ground_energies_eV: Sequence[float], excited_fractions: Sequence[float],
             excited_energies_eV: Sequence[float], *, temperature_K: float = 295.0,
             broadening_fwhm_meV: float = 20.0, measured_peak_nm: float | None = None,
             measured_fwhm_nm: float | None = None, warnings: Sequence[str] = (),
             **fields: Any) -> LuminescenceResult:
    """The result of two surfaces sampled at interpolation fractions (0: the ground minimum
    `ground`, 1: the excited minimum `excited`; geometries as Structure or Atoms). The four
    energies of the vertical transitions are the calculations at the two minima where both
    states were computed there, else the fitted surface (said in the warnings). `fields`: the
    other LuminescenceResult fields (structure, code, level_of_theory, excitation, ...)."""
    cc = cc_diagram_from_geometries(ground, excited, ground_fractions, ground_energies_eV,
                                    excited_fractions, excited_energies_eV)
    notes = list(warnings)
    four = []
    for name, fr, en, fit in (("ground", ground_fractions, ground_energies_eV, cc.ground),
                              ("excited", excited_fractions, excited_energies_eV, cc.excited)):
        for f, where in ((0.0, "ground"), (1.0, "excited")):
            e = _at(fr, en, f)
            if e is None:
                e = float(surface_energy(fit, f * cc.delta_q_amu05_A))
                notes.append(f"no {name}-state calculation at the {where} minimum: its energy "
                             "there is the fitted surface's")
            four.append(e)
    dscf = delta_scf_transitions(four[0], four[2], four[1], four[3])
    spectrum = pl_spectrum(cc, temperature_K, broadening_fwhm_meV=broadening_fwhm_meV)
    comparison = None
    if measured_peak_nm and measured_fwhm_nm:
        comparison = compare_with_measurement(spectrum, measured_peak_nm, measured_fwhm_nm)
    fr_g, fr_e = list(map(float, ground_fractions)), list(map(float, excited_fractions))
    same = len(fr_g) == len(fr_e) and np.allclose(fr_g, fr_e)
    if not same:
        notes.append("the two surfaces were sampled at different geometries: `fractions` and "
                     "the energies list the ground state's; the excited state's are in the "
                     "points of from_runs")
    return LuminescenceResult(
        temperature_K=temperature_K, fractions=fr_g, ground_energies_eV=list(
            map(float, ground_energies_eV)),
        excited_energies_eV=list(map(float, excited_energies_eV)) if same else [],
        delta_scf=dscf, cc=cc, spectrum=spectrum, comparison=comparison,
        warnings=[*cc.warnings, *dscf.warnings, *notes], **fields)
