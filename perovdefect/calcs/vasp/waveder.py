"""Transition dipoles from VASP's WAVEDER (written with LOPTICS = .TRUE.), read by pymatgen.

WAVEDER holds CDER(n, m, k, spin, v) = <u_n| d/dk_v |u_m> (A), the matrix elements VASP's linear
optics uses in epsilon_2 = 4 pi^2 e^2 / V sum |CDER|^2 delta(...) (pymatgen.io.vasp.optics):
between different bands this is the position matrix element <n|r_v|m> (the velocity-gauge
matrix element divided by the transition energy, PAW corrections included by VASP), so
d = e CDER in e*A. The first k-point is used (Gamma in a Gamma-centred or Gamma-only run).
Without LVEL = .TRUE. VASP writes only the pairs whose second band is below NELECT.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from perovdefect.calcs.transition import TransitionDipoles
from perovdefect.errors import AnalysisError, ParseError

WAVEDER = "WAVEDER"


def _gamma_build(directory: Path) -> bool:
    """True when vasprun.xml says a Gamma-only (real wave function) VASP build wrote the run;
    its WAVEDER then holds real numbers."""
    for name in ("vasprun.xml", "vasprun.xml.gz"):
        path = directory / name
        if path.is_file():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as fh:
                head = fh.read(4096).decode(errors="replace").lower()
            line = next((ln for ln in head.splitlines() if 'name="subversion"' in ln), "")
            return "gamma" in line
    return False


def read_waveder(directory: Path):
    """pymatgen's Waveder of `directory`/WAVEDER, its number type chosen from the VASP build
    (as pymatgen.io.vasp.optics.DielectricFunction.from_directory does); ParseError otherwise."""
    from pymatgen.io.vasp.outputs import Waveder
    path = directory / WAVEDER
    if not path.is_file():
        raise ParseError(f"{directory}: no {WAVEDER}, so no transition dipoles: VASP writes it "
                         "with LOPTICS = .TRUE. (and LVEL = .TRUE. for every band pair); rerun "
                         "the static step with those INCAR tags")
    dtypes = ("float64", "float32") if _gamma_build(directory) else ("complex128", "complex64")
    for dtype in dtypes:
        try:
            return Waveder.from_binary(str(path), data_type=dtype)
        except ValueError as exc:
            if "reshape" not in str(exc):
                raise ParseError(f"{path}: unreadable {WAVEDER} ({exc})") from None
        except (RuntimeError, IndexError, OSError) as exc:
            raise ParseError(f"{path}: unreadable {WAVEDER} ({type(exc).__name__}: {exc})"
                             ) from None
    raise ParseError(f"{path}: its size fits none of the number types {dtypes}")


def transition_dipoles(directory: Path, initial: list[int], final: list[int],
                       spin: int) -> TransitionDipoles:
    """d[i][f] = e CDER (e*A) at the first k-point for the bands asked (0-based)."""
    waveder = read_waveder(directory)
    cder = waveder.cder  # (band n, band m, k, spin, xyz)
    n1, n2, nk, nspins = cder.shape[:4]
    if spin >= nspins:
        raise AnalysisError(f"{directory}: spin {'down' if spin == 1 else spin} asked, but "
                            f"{WAVEDER} holds {nspins} spin channel(s)")

    def pair(i: int, f: int) -> np.ndarray:
        if i < n1 and f < n2:
            return cder[i, f, 0, spin]
        if f < n1 and i < n2:  # Hermitian: <i|r|f> = <f|r|i>*
            return np.conj(cder[f, i, 0, spin])
        raise AnalysisError(f"{directory}: {WAVEDER} holds the band pairs 0..{n1 - 1} x "
                            f"0..{n2 - 1} only, not ({i}, {f}): rerun with LVEL = .TRUE.")

    vec = {(i, f): pair(i, f) for i in initial for f in final}
    warnings = [f"{WAVEDER} has {nk} k-points: the first (Gamma) is used"] if nk > 1 else []
    return TransitionDipoles(
        spin=spin, initial_bands=list(initial), final_bands=list(final),
        dipoles_eA=[[np.real(vec[(i, f)]).tolist() for f in final] for i in initial],
        dipoles_imag_eA=[[np.imag(vec[(i, f)]).tolist() for f in final] for i in initial],
        method="position matrix elements <i|r|f> from VASP's WAVEDER (LOPTICS: the velocity "
               "matrix elements over the transition energy, PAW corrections by VASP), first "
               "k-point", source=str(directory / WAVEDER), warnings=warnings)


__all__ = ["read_waveder", "transition_dipoles"]
