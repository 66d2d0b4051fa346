"""Mass-weighted displacement Delta Q between two geometries and the geometries between them.

Accepts pymatgen Structure/Molecule or ASE Atoms (with masses). Delta Q is the same quantity as
nonrad.ccd.get_dQ (sqrt(sum_i m_i |dR_i|^2), minimum image in periodic cells), written here so
that ASE Atoms and molecules (no lattice) work too; the tests cross-check it against nonrad.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perovdefect.errors import AnalysisError

def _arrays(geom: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list]:
    """(cartesian positions A, masses amu, cell rows A or None, species symbols)."""
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover - ase is a dependency
        Atoms = ()  # type: ignore[assignment]
    from pymatgen.core import Molecule, Structure

    if isinstance(geom, Structure):
        return (np.array(geom.cart_coords, float),
                np.array([float(s.specie.atomic_mass) for s in geom], float),
                np.array(geom.lattice.matrix, float), [s.specie.symbol for s in geom])
    if isinstance(geom, Molecule):
        return (np.array(geom.cart_coords, float),
                np.array([float(s.specie.atomic_mass) for s in geom], float), None,
                [s.specie.symbol for s in geom])
    if Atoms and isinstance(geom, Atoms):
        cell = np.array(geom.cell.array, float) if all(geom.pbc) else None
        if any(geom.pbc) and not all(geom.pbc):
            raise AnalysisError(f"{what}: partially periodic Atoms (pbc={list(geom.pbc)}) "
                                "are not supported")
        return (geom.get_positions(), np.array(geom.get_masses(), float), cell,
                geom.get_chemical_symbols())
    raise AnalysisError(f"{what}: expected a pymatgen Structure/Molecule or ASE Atoms, got "
                        f"{type(geom).__name__}")


def _displacement(ground: Any, excited: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray | None]:
    rg, mg, cg, sg = _arrays(ground, "ground geometry")
    re, me, ce, se = _arrays(excited, "excited geometry")
    if len(rg) != len(re):
        raise AnalysisError(f"ground has {len(rg)} atoms, excited {len(re)}: the two "
                            "geometries must hold the same atoms in the same order")
    if sg != se:
        raise AnalysisError("ground and excited geometries list different species (or a "
                            "different atom order)")
    if (cg is None) != (ce is None):
        raise AnalysisError("one geometry is periodic and the other is not")
    d = re - rg
    if cg is not None:
        if not np.allclose(cg, ce, atol=1e-4):
            raise AnalysisError("ground and excited cells differ: Delta Q needs one cell")
        frac = d @ np.linalg.inv(cg)
        frac -= np.round(frac)  # minimum image
        d = frac @ cg
    return rg, d, mg, cg


def delta_q(ground: Any, excited: Any) -> float:
    """Delta Q = sqrt(sum_i m_i |R_i(excited) - R_i(ground)|^2), amu^1/2 A."""
    _, d, m, _ = _displacement(ground, excited)
    return float(np.sqrt(np.sum(m[:, None] * d**2)))


DEFAULT_FRACTIONS: tuple[float, ...] = (-0.2, -0.1, 0.0, 0.1, 0.2, 0.8, 0.9, 1.0, 1.1, 1.2)


def interpolate_geometries(ground: Any, excited: Any,
                           fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[Any]:
    """Geometries R(f) = R_ground + f (R_excited - R_ground) (minimum image), one per fraction.

    f = 0 is the ground geometry, f = 1 the excited one; Q(f) = f Delta Q. At least 5 fractions
    (a parabola through fewer points is not a fit). Returns objects of the input's type.
    """
    fr = [float(f) for f in fractions]
    if len(fr) < 5:
        raise AnalysisError(f"give at least 5 interpolation fractions, got {len(fr)}")
    if len(set(fr)) != len(fr):
        raise AnalysisError("interpolation fractions must be distinct")
    r0, d, _, cell = _displacement(ground, excited)
    out = []
    for f in fr:
        pos = r0 + f * d
        if hasattr(ground, "get_positions"):  # ASE Atoms
            g = ground.copy()
            g.set_positions(pos)
        else:
            from pymatgen.core import Molecule, Structure

            if isinstance(ground, Structure):
                g = Structure(ground.lattice, ground.species, pos, coords_are_cartesian=True,
                              site_properties=ground.site_properties)
            else:
                g = Molecule(ground.species, pos, charge=ground.charge,
                             spin_multiplicity=ground.spin_multiplicity)
        out.append(g)
    return out
