"""The level of theory of a GPAW run (perovdefect.calcs.theory.LevelOfTheory): the PAW setups
and LCAO basis files GPAW loads (read by GPAW's own readers, with GPAW's MD5 fingerprint of
each setup file), the mode, cutoff or grid spacing, k-mesh and smearing the runner used."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from perovdefect.calcs.theory import KPointSampling, LevelOfTheory, PotentialFile

#: the runner's PAW setups (GPAW's default set) and their functional: every step's ground
#: state is PBE, hybrids and SOC included (perovdefect.calcs.gpaw.runner)
SETUP_TYPE, SETUP_XC = "paw", "PBE"


@lru_cache(maxsize=None)
def setup_file(symbol: str) -> PotentialFile:
    """The PAW setup GPAW loads for `symbol`: name 'paw PBE', version '<file> v<version>',
    checksum GPAW's fingerprint (MD5 of the setup file)."""
    from gpaw.setup_data import SetupData
    data = SetupData(symbol, SETUP_XC, SETUP_TYPE)
    version = Path(data.filename).name if data.filename else None
    if getattr(data, "version", None):
        version = f"{version} v{data.version}"
    return PotentialFile(element=symbol, name=f"{SETUP_TYPE} {SETUP_XC}", version=version,
                         checksum=f"md5:{data.fingerprint}" if data.fingerprint else None)


@lru_cache(maxsize=None)
def basis_checksum(symbol: str, basis: str) -> str | None:
    """MD5 of the LCAO basis file GPAW finds for `symbol` and `basis` (None: not found)."""
    from gpaw.basis_data import Basis
    try:
        path = Basis.find(symbol, basis).filename
        return "md5:" + hashlib.md5(Path(path).read_bytes()).hexdigest()
    except (RuntimeError, OSError, AttributeError):
        return None


def gpaw_level_of_theory(symbols: list[str], p: dict[str, Any], settings: dict[str, Any],
                         kpoints: list[int] | None, functional: str, aexx: float,
                         omega_inv_A: float, soc: bool) -> LevelOfTheory:
    """What the runner ran with: p is the protocol dict, settings GpawBackend's, kpoints the
    Gamma-centred mesh (None or (1, 1, 1) for a cluster)."""
    elements = sorted(set(symbols))
    lcao = settings["mode"] == "lcao"
    tags = {"mode": settings["mode"]}
    if lcao:
        for el in elements:
            tags[f"basis file {el}"] = basis_checksum(el, settings["basis"]) or "not found"
    return LevelOfTheory(
        code="gpaw", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega_inv_A, 4), soc=soc,
        cutoff_eV=None if lcao else float(p["cutoff_eV"]),
        basis_set=settings["basis"] if lcao else "plane waves", potential_kind="PAW setup",
        potentials=[setup_file(el) for el in elements],
        kpoints=KPointSampling(mesh=[int(k) for k in (kpoints or (1, 1, 1))],
                               shift=[0.0, 0.0, 0.0]),
        grid_spacing_A=float(settings["grid_spacing_A"]) if lcao else None,
        smearing="fermi-dirac", smearing_width_eV=float(settings["smearing_eV"]),
        code_tags=tags)
