"""ElectronicStructure: the one result document every backend produces (a typed Document)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from perovdefect.documents import Document, Part
from perovdefect.errors import ParseError

OCC_THRESHOLD = 0.5  # a state counts as occupied above this fraction of its maximum occupation


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
    vbm/cbm/gap come from occupations (highest occupied, lowest unoccupied state). `code` names
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
        occupied = occ > OCC_THRESHOLD
        if not occupied.any() or occupied.all():
            raise ValueError(f"{self.source}: no occupied/unoccupied split in the eigenvalues "
                             "(too few bands?)")
        vbm, cbm = float(eps[occupied].max()), float(eps[~occupied].min())
        # direct if the VBM and CBM sit at the same k-point
        k_vbm = np.unravel_index(np.argmax(np.where(occupied, eps, -np.inf)), eps.shape)[1]
        k_cbm = np.unravel_index(np.argmin(np.where(~occupied, eps, np.inf)), eps.shape)[1]
        # object.__setattr__: validate_assignment would re-run this validator
        object.__setattr__(self, "vbm_eV", vbm)
        object.__setattr__(self, "cbm_eV", cbm)
        object.__setattr__(self, "gap_eV", max(0.0, cbm - vbm))
        object.__setattr__(self, "direct_gap", bool(k_vbm == k_cbm))

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

    def theory_differences(self, other: ElectronicStructure) -> list[str]:
        """How two calculations differ in code or level of theory (empty: comparable). The
        screening is compared to 0.011/A: VASP's HSE06 (0.2/A) and libxc's (0.11/bohr =
        0.208/A) are the same functional."""
        out = []
        if self.code != other.code:
            out.append(f"codes differ ({self.code} vs {other.code})")
        if (self.functional != other.functional or self.soc != other.soc
                or abs(self.exact_exchange_fraction - other.exact_exchange_fraction) > 1e-3
                or abs(self.screening_inv_A - other.screening_inv_A) > 0.011):
            out.append(f"levels of theory differ ({self.level_of_theory} vs "
                       f"{other.level_of_theory})")
        return out

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


__all__ = ["OCC_THRESHOLD", "BandState", "CalcSummary", "ElectronicStructure", "ParseError", "PlanarPotential",
           "StructureData", "build_document", "functional_from_parameters"]
