"""The code-independent physics of one calculation step, shared by every backend, and the ladder
relax (PBE) -> static (PBE) -> HSE06 -> HSE06+SOC (or the cheaper SOC correction).

Only quantities every code understands live here (functional with its exact-exchange fraction
and screening, SOC, task, charge, spin, cutoff, k-points). How a code realises them (GPAW's mode
and basis, VASP's MAGMOM, QE's pseudopotentials) belongs to that code's backend settings; each
backend honours every field here or refuses it with a ProtocolError (Backend.check)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from perovdefect.errors import ProtocolError

#: Hybrid functionals: exact-exchange fraction and screening (1/A). HSE06: omega = 0.2 A^-1 as in
#: VASP's HFSCREEN; PBE0 is unscreened.
HYBRIDS: dict[str, dict[str, float]] = {
    "HSE06": {"exact_exchange_fraction": 0.25, "screening_inv_A": 0.2},
    "PBE0": {"exact_exchange_fraction": 0.25, "screening_inv_A": 0.0},
}
FUNCTIONALS = ("PBE", *HYBRIDS)
#: DeltaSCF excitations a protocol may ask for (one electron, HOMO -> LUMO of one spin channel)
EXCITATIONS = ("up:homo->lumo", "down:homo->lumo")


@dataclass(frozen=True)
class Protocol:
    """One calculation step. Units: cutoff in eV, k-point density in k-points per A^-1.

    functional: PBE, HSE06 or PBE0; exact_exchange_fraction / screening_inv_A override the
    hybrid's defaults. soc: spin-orbit coupling (noncollinear). task: relax or static.
    charge: net charge (e); spin_polarized: collinear spin (forced on for odd electron counts
    by the backends).
    """

    name: str = "static"
    functional: str = "PBE"
    exact_exchange_fraction: float | None = None
    screening_inv_A: float | None = None
    soc: bool = False
    task: str = "static"
    cutoff_eV: float = 400.0
    kpoints: tuple[int, int, int] | None = None
    kpoint_density_inv_A: float | None = None
    charge: int = 0
    spin_polarized: bool = False
    #: constrained occupations (DeltaSCF): "up:homo->lumo" or "down:homo->lumo" promotes one
    #: electron in that spin channel; needs a backend with constrained occupations
    excitation: str | None = None

    def __post_init__(self) -> None:
        if self.functional not in FUNCTIONALS:
            raise ProtocolError(f"unknown functional {self.functional!r}; known: {FUNCTIONALS}")
        if self.task not in ("relax", "static"):
            raise ProtocolError(f"task must be relax or static, got {self.task!r}")
        if self.cutoff_eV <= 0:
            raise ProtocolError("cutoff_eV must be positive")
        if self.kpoints is not None and (len(self.kpoints) != 3 or min(self.kpoints) < 1):
            raise ProtocolError(f"kpoints must be three positive integers, got {self.kpoints}")
        if self.kpoints is not None and self.kpoint_density_inv_A is not None:
            raise ProtocolError("give kpoints or kpoint_density_inv_A, not both")
        if int(self.charge) != self.charge:
            raise ProtocolError(f"charge must be an integer, got {self.charge}")
        aexx = self.exact_exchange_fraction
        if aexx is not None and not 0 <= aexx <= 1:
            raise ProtocolError(f"exact_exchange_fraction must be in [0, 1], got {aexx}")
        if self.functional == "PBE" and (aexx not in (None, 0) or self.screening_inv_A):
            raise ProtocolError("exact-exchange settings given for a PBE protocol")
        if self.excitation is not None and self.excitation not in EXCITATIONS:
            raise ProtocolError(f"excitation must be one of {EXCITATIONS}, got "
                                f"{self.excitation!r}")
        if self.excitation is not None and self.soc:
            raise ProtocolError("constrained occupations (excitation) with SOC are not "
                                "supported: spin channels are not defined with spinors")
        if self.functional in HYBRIDS and self.task == "relax":
            raise ProtocolError("hybrid relaxations are not part of the ladder; relax with PBE")

    @property
    def is_hybrid(self) -> bool:
        return self.functional in HYBRIDS

    @property
    def aexx(self) -> float:
        """Exact-exchange fraction actually used (0 for PBE)."""
        if not self.is_hybrid:
            return 0.0
        if self.exact_exchange_fraction is not None:
            return self.exact_exchange_fraction
        return HYBRIDS[self.functional]["exact_exchange_fraction"]

    @property
    def screening(self) -> float:
        """Screening parameter (A^-1) actually used (0 for PBE/PBE0)."""
        if not self.is_hybrid:
            return 0.0
        if self.screening_inv_A is not None:
            return self.screening_inv_A
        return HYBRIDS[self.functional]["screening_inv_A"]

    @property
    def label(self) -> str:
        """Human label, e.g. HSE06+SOC, or PBE (down:homo->lumo) for an excited state."""
        return self.functional + ("+SOC" if self.soc else "") + (
            f" ({self.excitation})" if self.excitation else "")

    def with_(self, **changes: Any) -> Protocol:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kpoints"] = list(self.kpoints) if self.kpoints else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ProtocolError(f"unknown protocol fields: {sorted(unknown)} (the protocol holds "
                                f"only code-independent physics: {sorted(known)}; code-specific "
                                "choices such as mode, basis or MAGMOM go in the campaign's "
                                "`settings:`, which the backend validates)")
        d = dict(d)
        if d.get("kpoints") is not None:
            d["kpoints"] = tuple(int(k) for k in d["kpoints"])
        return cls(**d)


def ladder(tier: str = "hse06-soc", charge: int = 0, spin_polarized: bool = False,
           relax: bool = True, **common: Any) -> list[Protocol]:
    """The calculation ladder for one structure.

    tiers: "pbe" (relax, static), "hse06" (+ HSE06 static), "hse06-soc" (+ HSE06+SOC static),
    "hse06-soc-correction" (+ HSE06 and PBE+SOC statics; gap(HSE06+SOC) is estimated as
    gap(HSE06) + gap(PBE+SOC) - gap(PBE) by perovdefect.levels.soc_corrected_gap).
    """
    if tier not in LADDERS:
        raise ProtocolError(f"unknown ladder tier {tier!r}; known: {list(LADDERS)}")
    base = dict(charge=charge, spin_polarized=spin_polarized, **common)
    steps = []
    for name, functional, soc, task in LADDERS[tier]:
        if task == "relax" and not relax:
            continue
        steps.append(Protocol(name=name, functional=functional, soc=soc, task=task, **base))
    return steps


LADDERS: dict[str, list[tuple[str, str, bool, str]]] = {
    "pbe": [("relax", "PBE", False, "relax"), ("pbe", "PBE", False, "static")],
    "hse06": [("relax", "PBE", False, "relax"), ("pbe", "PBE", False, "static"),
              ("hse06", "HSE06", False, "static")],
    "hse06-soc": [("relax", "PBE", False, "relax"), ("pbe", "PBE", False, "static"),
                  ("hse06", "HSE06", False, "static"), ("hse06-soc", "HSE06", True, "static")],
    "hse06-soc-correction": [("relax", "PBE", False, "relax"), ("pbe", "PBE", False, "static"),
                             ("pbe-soc", "PBE", True, "static"), ("hse06", "HSE06", False, "static")],
}
