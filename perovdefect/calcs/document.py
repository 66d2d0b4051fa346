"""ElectronicStructure: the one result document every backend produces (a typed Document)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from perovdefect.documents import Document, Part
from perovdefect.errors import ParseError
from perovdefect.calcs.theory import (LevelOfTheory, TheoryTolerances, compare_levels_of_theory,
                                      not_compared)

OCC_THRESHOLD = 0.5  # a state counts as occupied above this fraction of its maximum occupation
#: a state holding between this fraction and 1 minus it of its capacity is partially occupied
#: (a half-filled level or a metal). Smearing tails stay below it in insulators: a tail reaches
#: 5 % only for a state within ~3 kT of the Fermi level (0.03 eV for GPAW's 0.01 eV
#: Fermi-Dirac width, 0.06 eV for VASP's 0.05 eV Gaussian), i.e. for gaps below ~0.1 eV.
PARTIAL_OCCUPATION = 0.05
#: highest occupied and lowest empty states closer than this (eV) are one degenerate level
#: that the occupations split (a partially filled level, not a gap)
DEGENERATE_eV = 1e-3


class BandState(Part):
    """Localisation of one Kohn-Sham state (or spinor): atom-resolved weights reduced to an
    inverse participation ratio (1 on one atom, 1/N spread over N atoms) and the elemental
    character (weight per element, summing to the weight within the atoms' spheres)."""

    spin: int
    k: int
    band: int
    energy_eV: float
    occupation: float
    ipr: float
    character: dict[str, float] = Field(default_factory=dict)
    #: weight farther than the sphere cutoff from every atom (diffuse, vacuum-like states)
    outside_weight: float | None = None


class StructureData(Part):
    """The structure a calculation ran on (A), enough to rebuild ASE Atoms."""

    symbols: list[str]
    positions_A: list[list[float]]
    cell_A: list[list[float]]
    pbc: list[bool]

    @classmethod
    def from_atoms(cls, atoms) -> StructureData:
        return cls(symbols=atoms.get_chemical_symbols(), positions_A=atoms.positions.tolist(),
                   cell_A=atoms.cell.array.tolist(), pbc=[bool(p) for p in atoms.pbc])

    def to_atoms(self):
        from ase import Atoms
        return Atoms(self.symbols, positions=self.positions_A, cell=self.cell_A, pbc=self.pbc)


class PlanarPotential(Part):
    """Planar averages of the electrostatic potential (eV) along each lattice vector, on the
    code's grid (point i at fractional coordinate i / len), the input of the FNV correction."""

    averages_eV: list[list[float]]
    cell_A: list[list[float]]
    #: sign convention: "electron" (V seen by an electron, as VASP LOCPOT) or "hartree"
    convention: str = "electron"


class CalcSummary(Part):
    """The scalar fields of an ElectronicStructure (energies in eV): what tables and analyses
    carry instead of the eigenvalue arrays."""

    code: str
    functional: str
    exact_exchange_fraction: float
    screening_inv_A: float
    soc: bool
    converged: bool
    total_energy_eV: float | None = None
    fermi_level_eV: float | None = None
    vbm_eV: float | None = None
    cbm_eV: float | None = None
    gap_eV: float | None = None
    direct_gap: bool | None = None
    n_electrons: float | None = None
    charge: float | None = None
    nspins: int = 1
    vacuum_level_eV: float | None = None
    is_cluster: bool = False
    formula: str | None = None
    source: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.functional}{'+SOC' if self.soc else ''}"


class ElectronicStructure(Document):
    """Result of one calculation (all energies in eV, absolute as the code reports them).

    eigenvalues_eV[spin][k][band] and occupations[spin][k][band] (0..1 per state, or 0..1 per
    spinor for SOC where nspins == 1 and each band holds one electron); kpoint_weights sum to 1.
    vbm/cbm come from occupations (highest state holding electrons, lowest state with room) and
    gap_eV = cbm - vbm only when the highest band is full: a partially occupied highest band (a
    half-filled level, a metal, an odd count's unpaired electron) has gap_eV = None and says why
    in `warnings` (_partial_frontier; threshold PARTIAL_OCCUPATION). `code` names
    the backend that produced it (data, not a branch: nothing outside perovdefect.calcs reads it
    to decide anything but "same code as the host?").
    """

    REGENERATE_HINT = "re-parse the calculation with `perovdefect parse RUN_DIR`"

    code: str
    functional: str
    exact_exchange_fraction: float
    screening_inv_A: float
    soc: bool
    converged: bool
    total_energy_eV: float | None
    eigenvalues_eV: list[list[list[float]]]
    occupations: list[list[list[float]]]
    kpoint_weights: list[float]
    fermi_level_eV: float | None
    n_electrons: float | None
    charge: float | None
    nspins: int
    vbm_eV: float | None = None
    cbm_eV: float | None = None
    gap_eV: float | None = None
    direct_gap: bool | None = None
    vacuum_level_eV: float | None = None
    is_cluster: bool = False
    formula: str | None = None
    source: str | None = None
    band_localization: list[BandState] = Field(default_factory=list)
    structure: StructureData | None = None
    planar_potential: PlanarPotential | None = None
    #: electrostatic potential at each atomic site (V), one per atom in `structure` order, as
    #: felt by a POSITIVE test charge (pydefect's convention: minus the electron's potential
    #: energy that codes print, e.g. OUTCAR's "average electrostatic potential at core"); the
    #: input of the eFNV and GKFO corrections. Periodic cells only; None where the code or
    #: run gave none.
    site_potentials_V: list[float] | None = None
    #: the level of theory the run really used, filled by every backend from the run's own
    #: inputs/outputs (perovdefect.calcs.theory); None in documents written before it existed
    theory: LevelOfTheory | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _edges(self) -> ElectronicStructure:
        eps = np.asarray(self.eigenvalues_eV, dtype=float)
        occ = np.asarray(self.occupations, dtype=float)
        if eps.ndim != 3 or eps.shape != occ.shape or eps.shape[1] != len(self.kpoint_weights):
            raise ValueError(f"eigenvalues {eps.shape}, occupations {occ.shape} and "
                             f"{len(self.kpoint_weights)} k-point weights do not match "
                             "[spin][k][band]")
        if self.vbm_eV is None and eps.size:
            self._compute_edges(eps, occ)
        return self

    def _compute_edges(self, eps: np.ndarray, occ: np.ndarray) -> None:
        """VBM = highest state holding electrons, CBM = lowest state with room (eV); the gap
        between them only when the highest band is completely filled (_partial_frontier)."""
        held = occ > PARTIAL_OCCUPATION  # holds electrons (beyond a smearing tail)
        room = occ < 1.0 - PARTIAL_OCCUPATION  # has room for more
        if not held.any() or not room.any():
            raise ValueError(f"{self.source}: no occupied/unoccupied split in the eigenvalues "
                             "(too few bands?)")
        vbm, cbm = float(eps[held].max()), float(eps[room].min())
        # object.__setattr__: validate_assignment would re-run this validator
        object.__setattr__(self, "vbm_eV", vbm)
        object.__setattr__(self, "cbm_eV", cbm)
        reason = self._partial_frontier(eps, occ, vbm, cbm)
        if reason is not None:
            if reason not in self.warnings:
                self.warnings.append(reason)
            return
        # direct if the VBM and CBM sit at the same k-point
        k_vbm = np.unravel_index(np.argmax(np.where(held, eps, -np.inf)), eps.shape)[1]
        k_cbm = np.unravel_index(np.argmin(np.where(room, eps, np.inf)), eps.shape)[1]
        object.__setattr__(self, "gap_eV", max(0.0, cbm - vbm))
        object.__setattr__(self, "direct_gap", bool(k_vbm == k_cbm))

    def _partial_frontier(self, eps: np.ndarray, occ: np.ndarray, vbm: float, cbm: float
                          ) -> str | None:
        """Why the highest band is partially occupied (None: it is full and the gap is one):
        a state holding a fraction of its capacity (a half-filled level, a metal), an odd
        electron count in a spin-polarised or spin-orbit run (one unpaired electron whose
        partner state is empty: the splitting between them is no band gap), or a degenerate
        level split between occupied and empty. An even-count open shell with integer
        occupations (a triplet) is not recognisable from the eigenvalues and keeps its gap."""
        head = "the highest band is partially occupied"
        partial = (occ >= PARTIAL_OCCUPATION) & (occ <= 1.0 - PARTIAL_OCCUPATION)
        if partial.any():
            s, k, n = np.argwhere(partial)[np.argmin(np.abs(occ[partial] - 0.5))]  # clearest
            return (f"{head}: a state at {eps[s, k, n]:.3f} eV holds {occ[s, k, n]:.2f} of its "
                    f"capacity (a half-filled level or a metal), so no band gap is reported")
        electrons = self._electron_count(occ)
        if (self.nspins == 2 or self.soc) and electrons is not None and electrons % 2 == 1:
            partner = "its Kramers partner" if self.soc else "the same level in the other spin"
            return (f"{head}: {electrons} electrons, an odd count, leave one unpaired electron "
                    f"in the highest occupied level ({partner} is empty); the "
                    f"{cbm - vbm:.3f} eV between the highest occupied and lowest empty states "
                    "is a spin splitting, not a band gap, so no band gap is reported")
        if abs(cbm - vbm) < DEGENERATE_eV:
            return (f"{head}: the highest occupied and lowest empty states are one degenerate "
                    f"level at {vbm:.3f} eV split by the occupations, so no band gap is reported")
        return None

    def _electron_count(self, occ: np.ndarray) -> int | None:
        """Electrons in the calculation: n_electrons, else the k-weighted occupations (None:
        not an integer)."""
        n = self.n_electrons
        if n is None:
            per_state = 1.0 if self.soc else 2.0 / occ.shape[0]
            n = per_state * float(np.einsum("skn,k->", occ, np.asarray(self.kpoint_weights)))
        return int(round(n)) if abs(n - round(n)) < 1e-3 else None

    @classmethod
    def _upgrade(cls, data: dict[str, Any], source: str) -> dict[str, Any]:
        """Schema 1 (perovdefect 0.1): the same fields without structure/potential."""
        if data.get("schema_version") != 1:
            return super()._upgrade(data, source)
        return data

    @property
    def level_of_theory(self) -> str:
        """e.g. 'HSE06+SOC (a=0.25, w=0.2/A)'."""
        return (f"{self.functional}{'+SOC' if self.soc else ''} "
                f"(a={self.exact_exchange_fraction:g}, w={self.screening_inv_A:g}/A)")

    def theory_or_legacy(self) -> LevelOfTheory:
        """`theory`, or for a document written before it what the document holds: code,
        functional, exact exchange, screening, SOC and the basis/cutoff its backend recorded
        in settings["step"] (everything else unknown)."""
        if self.theory is not None:
            return self.theory
        step = self.settings.get("step") if isinstance(self.settings.get("step"), dict) else {}
        basis = step.get("basis")
        if isinstance(basis, str) and basis.startswith("PW "):
            basis = "plane waves"  # the step's "PW 500 eV": the cutoff is compared on its own
        return LevelOfTheory(code=self.code, functional=self.functional,
                             exact_exchange_fraction=self.exact_exchange_fraction,
                             screening_inv_A=self.screening_inv_A, soc=self.soc,
                             cutoff_eV=step.get("cutoff_eV"), basis_set=basis)

    def theory_differences(self, other: ElectronicStructure,
                           tolerances: TheoryTolerances | None = None,
                           same_cell: bool = True) -> list[str]:
        """How two calculations differ in code or level of theory, one message per field
        (empty: comparable); perovdefect.calcs.theory.compare_levels_of_theory on `theory`
        (what an older document holds where it has none). same_cell=False: different crystals
        (competing phases), whose k-mesh and grid points differ by construction."""
        return compare_levels_of_theory(self.theory_or_legacy(), other.theory_or_legacy(),
                                        tolerances, same_cell)

    def theory_not_compared(self, other: ElectronicStructure) -> list[str]:
        """What `theory_differences` could not compare (one of the two did not record it)."""
        if self.theory is None or other.theory is None:
            return not_compared(None, None)
        return not_compared(self.theory, other.theory)

    def summary(self) -> dict[str, Any]:
        """The scalar fields (no eigenvalue arrays): those of CalcSummary."""
        return {k: getattr(self, k) for k in CalcSummary.model_fields}

    def calc_summary(self) -> CalcSummary:
        return CalcSummary(**self.summary())

    def warn_if_unconverged(self) -> None:
        if not self.converged:
            msg = f"{self.source}: calculation did not converge; its levels are unreliable"
            if msg not in self.warnings:
                self.warnings.append(msg)
            warnings.warn(msg, stacklevel=2)


def build_document(**fields: Any) -> ElectronicStructure:
    """ElectronicStructure from a parser's fields; an inconsistent set is a ParseError naming
    the source (not a pydantic traceback)."""
    return ElectronicStructure.from_dict(fields, str(fields.get("source") or "calculation"))


def functional_from_parameters(lhfcalc: bool, aexx: float | None, hfscreen: float | None,
                               gga: str | None = None) -> str:
    """Name the functional from what was actually run (hybrid tags), not from a label."""
    if not lhfcalc:
        return "PBEsol" if (gga or "").upper() == "PS" else "PBE"
    aexx = 0.25 if aexx is None else aexx
    hfscreen = hfscreen or 0.0
    if abs(aexx - 0.25) < 1e-6 and 0.19 <= hfscreen <= 0.21:
        return "HSE06"
    if abs(aexx - 0.25) < 1e-6 and hfscreen == 0:
        return "PBE0"
    if hfscreen > 0:
        return f"HSE(a={aexx:g},w={hfscreen:g})"
    return f"PBE0(a={aexx:g})"


__all__ = ["DEGENERATE_eV", "OCC_THRESHOLD", "PARTIAL_OCCUPATION", "BandState", "CalcSummary",
           "ElectronicStructure", "LevelOfTheory", "ParseError", "PlanarPotential",
           "StructureData",
           "build_document", "functional_from_parameters"]
