"""One k-point rule for every backend, so `kpoint_density_inv_A` means the same thing in every
code: ASE's convention (n_i = ceil(2 pi * density * |b_i|), b_i the reciprocal vectors without
2 pi, i.e. k-points per A^-1 of reciprocal length), the same as GPAW's kpts={'density': d}."""

from __future__ import annotations

from ase import Atoms

from perovdefect.calcs.protocol import Protocol

#: k-point density (per A^-1) used for periodic cells when the protocol gives neither kpoints
#: nor a density
DEFAULT_DENSITY_INV_A = 3.0


def monkhorst_pack(atoms: Atoms, protocol: Protocol) -> tuple[int, int, int]:
    """Gamma-centred mesh for `atoms`: the protocol's kpoints, else its density, else Gamma
    only for clusters and DEFAULT_DENSITY_INV_A for periodic cells."""
    from ase.calculators.calculator import kptdensity2monkhorstpack
    if protocol.kpoints:
        return tuple(int(k) for k in protocol.kpoints)  # type: ignore[return-value]
    if not any(atoms.pbc):
        return (1, 1, 1)
    density = protocol.kpoint_density_inv_A or DEFAULT_DENSITY_INV_A
    mesh = kptdensity2monkhorstpack(atoms, kptdensity=density, even=False)
    return tuple(int(k) for k in mesh)  # type: ignore[return-value]
