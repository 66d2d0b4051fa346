"""TransitionDipoles: what a backend returns for Backend.transition_dipoles (a typed Part).

Code-neutral: the dipole matrix elements d_if = <i|e r|f> (e*A) between two sets of Kohn-Sham
bands of one spin channel at the Gamma point, the way they were obtained (`method`), and the
file they came from. perovdefect.optics.radiative turns them into rates and lifetimes.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from perovdefect.documents import Part


class TransitionDipoles(Part):
    """d[i][f] = <initial_bands[i]| e r |final_bands[f]> (e*A) of spin channel `spin` (0: up,
    1: down), real and imaginary parts per Cartesian component (x, y, z)."""

    spin: int
    initial_bands: list[int]
    final_bands: list[int]
    dipoles_eA: list[list[list[float]]]
    dipoles_imag_eA: list[list[list[float]]]
    #: how the matrix elements were obtained (gauge, origin, corrections), in words
    method: str
    #: the file holding the wave functions (or matrix elements) that were read
    source: str
    #: periodic cells: the states' common centre (A) that r was measured from, and the
    #: largest weight of either state farther than 40 % of the cell from it (the criterion)
    centre_A: list[float] | None = None
    boundary_weight: float | None = None
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shapes(self) -> TransitionDipoles:
        shape = (len(self.initial_bands), len(self.final_bands), 3)
        for name in ("dipoles_eA", "dipoles_imag_eA"):
            if np.asarray(getattr(self, name), dtype=float).shape != shape:
                raise ValueError(f"{name} must have the shape [initial][final][xyz] = {shape}")
        return self

    def vector_eA(self, i: int, f: int) -> np.ndarray:
        """The complex dipole vector (e*A) between initial band i and final band f (indices
        of the calculation, not positions in the lists)."""
        a, b = self.initial_bands.index(i), self.final_bands.index(f)
        return np.asarray(self.dipoles_eA[a][b]) + 1j * np.asarray(self.dipoles_imag_eA[a][b])

    def abs2_e2A2(self, i: int, f: int) -> float:
        """|d_if|^2 = sum over x, y, z of |<i|e r_v|f>|^2 (e^2 A^2)."""
        return float(np.sum(np.abs(self.vector_eA(i, f)) ** 2))


__all__ = ["TransitionDipoles"]
