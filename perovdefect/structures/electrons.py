"""Electron counts, formal charges and spin multiplicities for Cs-Pb-Br models."""

from __future__ import annotations

from collections.abc import Iterable

from ase.data import atomic_numbers

from perovdefect.errors import StructureError

#: Valence electrons (ZVAL) of the POTCARs the Materials Project / pymatgen recommend for these
#: elements (PBE_54: Cs_sv, Pb_d, Br). These are properties of the licensed POTCAR files, not
#: physical constants; they are listed here so that NELECT and electron counts can be computed
#: when no POTCAR is configured. Override via calcs.vasp when using other POTCARs.
POTCAR_SYMBOLS: dict[str, str] = {"Cs": "Cs_sv", "Pb": "Pb_d", "Br": "Br"}
POTCAR_ZVAL: dict[str, int] = {"Cs": 9, "Pb": 14, "Br": 7}

#: Formal ionic charges in these halide perovskites (Cs+, Pb2+, Br-), used for cluster charges.
FORMAL_CHARGE: dict[str, int] = {"Cs": 1, "Pb": 2, "Br": -1}


def check_elements(symbols: Iterable[str]) -> None:
    """Raise StructureError for an element outside Cs/Pb/Br or unknown to ASE."""
    for s in set(symbols):
        if s not in atomic_numbers:
            raise StructureError(f"unknown element {s!r}")
        if s not in POTCAR_ZVAL:
            raise StructureError(
                f"element {s!r} is not part of the Cs-Pb-Br system perovdefect models "
                f"(known: {sorted(POTCAR_ZVAL)})")


def electron_counts(symbols: Iterable[str], charge: int) -> dict[str, int]:
    """All-electron and valence electron counts for a model with net charge `charge` (e).

    A positive charge removes electrons. Raises StructureError for a non-integer charge or one
    that removes more valence electrons than exist.
    """
    symbols = list(symbols)
    check_elements(symbols)
    if int(charge) != charge:
        raise StructureError(f"charge must be an integer number of electrons, got {charge}")
    charge = int(charge)
    total = sum(atomic_numbers[s] for s in symbols) - charge
    valence = sum(POTCAR_ZVAL[s] for s in symbols) - charge
    if valence < 0:
        raise StructureError(
            f"impossible charge q={charge:+d}: it removes more electrons than the "
            f"{valence + charge} valence electrons of the model")
    return {"electrons_total": total, "valence_electrons": valence}


def spin_multiplicity(n_electrons: int) -> int:
    """Lowest spin multiplicity 2S+1 for `n_electrons` (1 for even, 2 for odd)."""
    return 1 if n_electrons % 2 == 0 else 2


def formal_charge(symbols: Iterable[str]) -> int:
    """Net formal charge (e) of a set of ions with Cs+, Pb2+, Br-."""
    symbols = list(symbols)
    check_elements(symbols)
    return sum(FORMAL_CHARGE[s] for s in symbols)
