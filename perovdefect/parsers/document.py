"""ElectronicStructure: the one result document every backend and parser produces (JSON)."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import ParseError

SCHEMA_VERSION = 1
OCC_THRESHOLD = 0.5  # a state counts as occupied above this fraction of its maximum occupation


@dataclass
class ElectronicStructure:
    """Result of one calculation (all energies in eV, absolute as the code reports them).

    eigenvalues_eV[spin][k][band] and occupations[spin][k][band] (0..1 per state, or 0..1 per
    spinor for SOC where nspins == 1 and each band holds one electron); kpoint_weights sum to 1.
    vbm/cbm/gap come from occupations (highest occupied, lowest unoccupied state).
    """

    code: str
    functional: str
    exact_exchange_fraction: float
    screening_inv_A: float
    soc: bool
    converged: bool
    total_energy_eV: float | None
    eigenvalues_eV: list
    occupations: list
    kpoint_weights: list
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
    band_localization: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.vbm_eV is None and self.eigenvalues_eV:
            self.compute_edges()

    def compute_edges(self) -> None:
        """Set vbm/cbm/gap/direct_gap from eigenvalues and occupations."""
        eps = np.asarray(self.eigenvalues_eV, dtype=float)
        occ = np.asarray(self.occupations, dtype=float)
        occupied = occ > OCC_THRESHOLD
        if not occupied.any() or occupied.all():
            raise ParseError(f"{self.source}: no occupied/unoccupied split in the eigenvalues "
                             "(too few bands?)")
        self.vbm_eV = float(eps[occupied].max())
        self.cbm_eV = float(eps[~occupied].min())
        self.gap_eV = max(0.0, self.cbm_eV - self.vbm_eV)
        # direct if the VBM and CBM sit at the same k-point
        k_vbm = np.unravel_index(np.argmax(np.where(occupied, eps, -np.inf)), eps.shape)[1]
        k_cbm = np.unravel_index(np.argmin(np.where(~occupied, eps, np.inf)), eps.shape)[1]
        self.direct_gap = bool(k_vbm == k_cbm)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), default=_default)
        if path is not None:
            tmp = Path(str(path) + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)  # atomic: a crash never leaves half a result
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "document") -> ElectronicStructure:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ParseError(f"{source}: ElectronicStructure schema version "
                             f"{d.get('schema_version')!r}, this perovdefect reads "
                             f"{SCHEMA_VERSION}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, path: str | Path) -> ElectronicStructure:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ParseError(f"{path}: not a readable ElectronicStructure JSON: {exc}") from exc
        return cls.from_dict(d, str(path))

    def summary(self) -> dict[str, Any]:
        """The scalar fields (no eigenvalue arrays)."""
        keys = ("code", "functional", "exact_exchange_fraction", "screening_inv_A", "soc",
                "converged", "total_energy_eV", "fermi_level_eV", "vbm_eV", "cbm_eV", "gap_eV",
                "direct_gap", "n_electrons", "charge", "nspins", "vacuum_level_eV", "is_cluster",
                "formula", "source", "warnings")
        return {k: getattr(self, k) for k in keys}

    def warn_if_unconverged(self) -> None:
        if not self.converged:
            msg = f"{self.source}: calculation did not converge; its levels are unreliable"
            if msg not in self.warnings:
                self.warnings.append(msg)
            warnings.warn(msg, stacklevel=2)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def functional_from_parameters(lhfcalc: bool, aexx: float | None, hfscreen: float | None,
                               gga: str | None = None) -> str:
    """Name the functional from what was actually run (VASP INCAR tags), not from a label."""
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
