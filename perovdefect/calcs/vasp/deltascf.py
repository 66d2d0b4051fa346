"""DeltaSCF (constrained occupations) in VASP: ISMEAR = -2 with the occupation of every band
given in FERWE (spin up) and FERDO (spin down), and the check that a finished run kept them.

The occupations come from the electron count N of the cell (the ZVAL of its POTCARs minus its
charge, i.e. NELECT): the ground state holds ceil(N/2) electrons in spin up and floor(N/2) in
spin down (an odd count's unpaired electron in spin up, as MAGMOM > 0 starts it); an excitation
"S:homo->lumo" empties the highest occupied band of spin channel S (the hole) and fills the
band above it (the electron). One k-point (Gamma): FERWE/FERDO list NBANDS x NKPTS values and
NKPTS is VASP's irreducible count, so a mesh is refused (Backend.check) rather than guessed.

VASP keeps FERWE/FERDO on the band *slots*: a subspace diagonalisation sorts the orbitals by
energy, so when the promoted orbital drops below the hole they swap and the occupations follow
the slots, not the orbitals (VASP wiki, FERWE and LDIAG). The input therefore asks for the
direct all-band minimiser (ALGO = All) with LDIAG = .FALSE. (its final subspace rotation
skipped), which leaves orbital n in slot n. NBANDS is fixed (FERWE must list exactly NBANDS
values; VASP stops when it changes NBANDS for its parallel layout): a multiple of the backend
setting nbands_multiple (choose a multiple of NPAR = cores / NCORE).

Written here because pymatgen's input sets have no constrained-occupation set (they write the
tags we give them); the INCAR itself is written by pymatgen (perovdefect.calcs.vasp.inputs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from perovdefect.calcs.occupations import promotion
from perovdefect.errors import ProtocolError

#: spin channel of an excitation string -> VASP's tag for its occupations
SPIN_TAGS = {"up": "FERWE", "down": "FERDO"}
#: occupations equal to this (electrons per state) count as held
HELD_TOL = 1e-3
#: custodian VaspErrorHandler errors whose corrections set ISMEAR = 0 (tetrahedron / k-point
#: fixes, algo_tet) or change NBANDS (band-count and EDWAV fixes): either silently drops a
#: constrained occupation (or leaves FERWE/FERDO the wrong length), so a DeltaSCF run is not
#: "corrected" that way; VASP's own error then fails the step with its message instead
CONSTRAINT_BREAKING_ERRORS = frozenset({"tet", "dentet", "ibzkpt", "algo_tet", "too_few_bands",
                                        "nbands_not_sufficient", "auto_nbands",
                                        "grad_not_orth"})


@dataclass(frozen=True)
class ConstrainedOccupations:
    """The occupations of one DeltaSCF step (bands 0-based; electrons per state, 0..1)."""

    excitation: str
    spin: str
    n_electrons: int
    #: electrons per spin channel in the ground state (up, down)
    ground_up: int
    ground_down: int
    #: the emptied band (the hole) and the filled one (the electron) in `spin`
    hole_band: int
    electron_band: int
    nbands: int
    up: tuple[float, ...]
    down: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["up"], d["down"] = list(self.up), list(self.down)
        return d


def ground_counts(n_electrons: int) -> tuple[int, int]:
    """(up, down) electrons of the ground state: the unpaired electron of an odd count in up."""
    if n_electrons < 1:
        raise ProtocolError(f"vasp: {n_electrons} electrons cannot be excited")
    return (n_electrons + 1) // 2, n_electrons // 2


def bands_needed(n_electrons: int, excitation: str) -> int:
    """Bands the excitation occupies: up to the electron's band (1-based count)."""
    spin = _spin(excitation)
    up, down = ground_counts(n_electrons)
    return max(up, down + 1) if spin == "down" else up + 1


def default_nbands(n_electrons: int, n_atoms: int, multiple: int = 8) -> int:
    """NBANDS for a DeltaSCF step: the bands either excitation occupies plus empty ones for the
    minimiser (max(8, n_atoms / 2), as VASP's own default adds NIONS/2), rounded up to a
    multiple of `multiple`."""
    if multiple < 1:
        raise ProtocolError("vasp setting nbands_multiple must be a positive integer")
    occupied = ground_counts(n_electrons)[0] + 1
    return int(math.ceil((occupied + max(8, n_atoms // 2)) / multiple) * multiple)


def constrained_occupations(n_electrons: int, excitation: str, nbands: int
                            ) -> ConstrainedOccupations:
    """FERWE/FERDO of `excitation` ("up:homo->lumo" or "down:homo->lumo") for a cell of
    `n_electrons` (NELECT) with `nbands` bands. ProtocolError when NBANDS is too small."""
    spin = _spin(excitation)
    need = bands_needed(n_electrons, excitation)
    if nbands < need:
        raise ProtocolError(f"vasp: NBANDS = {nbands} does not hold the promoted electron of "
                            f"{excitation} ({n_electrons} electrons need {need} bands)")
    n_up, n_down = ground_counts(n_electrons)
    occ = {"up": [1.0] * n_up + [0.0] * (nbands - n_up),
           "down": [1.0] * n_down + [0.0] * (nbands - n_down)}
    filled = n_up if spin == "up" else n_down
    if filled < 1:
        raise ProtocolError(f"vasp: spin {spin} holds no electron to excite "
                            f"({n_electrons} electrons)")
    hole, electron = filled - 1, filled
    occ[spin][hole], occ[spin][electron] = 0.0, 1.0
    return ConstrainedOccupations(excitation=excitation, spin=spin, n_electrons=n_electrons,
                                  ground_up=n_up, ground_down=n_down, hole_band=hole,
                                  electron_band=electron, nbands=nbands,
                                  up=tuple(occ["up"]), down=tuple(occ["down"]))


def incar_tags(occ: ConstrainedOccupations) -> dict[str, Any]:
    """The INCAR tags of a DeltaSCF step (over the ground state's: functional, NELECT, ...)."""
    return {"ISMEAR": -2, "ISPIN": 2, "NBANDS": occ.nbands, "FERWE": list(occ.up),
            "FERDO": list(occ.down), "ALGO": "All", "LDIAG": False}


def _spin(excitation: str) -> str:
    spin, _, what = str(excitation).partition(":")
    if spin not in SPIN_TAGS or what != "homo->lumo":
        raise ProtocolError(f"vasp: unknown excitation {excitation!r} (known: up:homo->lumo, "
                            "down:homo->lumo)")
    return spin


# -- the finished run ----------------------------------------------------------------------------
def requested_occupations(incar: dict[str, Any]) -> list[np.ndarray] | None:
    """[up, down] occupations a run's INCAR asked for (ISMEAR = -2 with FERWE, and FERDO for
    ISPIN = 2), as VASP echoed them into vasprun.xml; None for any other run."""
    try:
        if int(incar.get("ISMEAR", 1)) != -2 or incar.get("FERWE") is None:
            return None
    except (TypeError, ValueError):
        return None
    out = [_values(incar["FERWE"])]
    if incar.get("FERDO") is not None:
        out.append(_values(incar["FERDO"]))
    return out


def _values(v: Any) -> np.ndarray:
    """An occupation list as parsed (numbers) or as written ("89*1.0 15*0.0")."""
    if isinstance(v, str):
        vals: list[float] = []
        for word in v.split():
            n, star, x = word.partition("*")
            vals += [float(x)] * int(n) if star else [float(n)]
        return np.asarray(vals, float)
    return np.asarray(v, float).ravel()


def occupation_check(requested: list[np.ndarray], occupations: np.ndarray,
                     eigenvalues: np.ndarray, source: str) -> tuple[dict[str, Any], list[str]]:
    """Whether a finished run kept the occupations it asked for (VASP 6 can reset them after
    an ionic step; a changed NBANDS misaligns them): (summary, warnings). `occupations` and
    `eigenvalues` are (spin, k, band) arrays from vasprun.xml (its last ionic step)."""
    warnings: list[str] = []
    summary: dict[str, Any] = {"held": True}
    occ = np.asarray(occupations, float)
    for s, want in enumerate(requested[:occ.shape[0]]):
        name = ("up", "down")[s]
        nb = occ.shape[2]
        prom = promotion(want)
        if prom is not None:
            summary.update(spin=name, hole_band=prom[0], electron_band=prom[1])
            if max(prom) < nb:
                summary.update(hole_energy_eV=float(eigenvalues[s][0][prom[0]]),
                               electron_energy_eV=float(eigenvalues[s][0][prom[1]]))
        if want.size != nb * occ.shape[1] and want.size != nb:
            summary["held"] = False
            warnings.append(f"{source}: the constrained occupations did not hold: "
                            f"{SPIN_TAGS[name]} lists {want.size} values but the run has "
                            f"{nb} bands (NBANDS changed?)")
            continue
        got = occ[s].ravel()[:want.size] if want.size != nb else occ[s][0]
        bad = np.nonzero(np.abs(got - want) > HELD_TOL)[0]
        if len(bad):
            summary["held"] = False
            b = int(bad[0])
            warnings.append(f"{source}: the constrained occupations did not hold in spin {name}: "
                            f"band {b % nb} holds {got[b]:.3f} where {SPIN_TAGS[name]} asked "
                            f"{want[b]:.3f} ({len(bad)} band(s) differ; VASP reset or "
                            "reordered them): this is not the excited state asked for")
    return summary, warnings


__all__ = ["CONSTRAINT_BREAKING_ERRORS", "ConstrainedOccupations", "bands_needed",
           "constrained_occupations", "default_nbands", "ground_counts", "incar_tags",
           "occupation_check", "requested_occupations"]
