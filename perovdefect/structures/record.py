"""StructureRecord: a structure (periodic or cluster) with its provenance metadata, and its
export to CIF / POSCAR / extxyz / xyz / JSON and to ASE and pymatgen objects."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pymatgen.core import Molecule, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from perovdefect.errors import StructureError

#: Export formats by file suffix (lower case) -> ASE/pymatgen writer name.
EXPORT_FORMATS = {".cif": "cif", ".vasp": "poscar", ".poscar": "poscar", ".extxyz": "extxyz",
                  ".xyz": "extxyz", ".json": "json"}


def format_for_path(path: str | Path) -> str:
    """Export format implied by a path's suffix (POSCAR/CONTCAR by name)."""
    p = Path(path)
    if p.name.upper() in ("POSCAR", "CONTCAR"):
        return "poscar"
    fmt = EXPORT_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise StructureError(
            f"{p}: unknown structure format {p.suffix!r}; use one of "
            f"{sorted(EXPORT_FORMATS)} or the name POSCAR")
    return fmt


@dataclass
class StructureRecord:
    """A structure plus metadata.

    `atoms` is an ASE Atoms object (periodic crystal/supercell, or a cluster in a vacuum box with
    pbc=False). `metadata` holds at least: name, kind (crystal|supercell|defect|cluster), parent,
    charge (e), electrons_total (all-electron count), valence_electrons (for the default VASP
    POTCARs), spin_multiplicity; defects add site_index, wyckoff, multiplicity, image_distance_A.
    A structure read from a plain file has none of these: the calculation backends count its
    electrons from their own setups and run an odd count spin-polarised; a spin_multiplicity
    given here overrides that count (1: spin-unpolarised, e.g. a metal).
    """

    atoms: Atoms
    metadata: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> StructureRecord:
        """An independent copy (atoms and metadata), e.g. of a cached build."""
        return StructureRecord(self.atoms.copy(), copy.deepcopy(self.metadata))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.atoms.get_chemical_formula()))

    @property
    def charge(self) -> int:
        return int(self.metadata.get("charge", 0))

    @property
    def is_cluster(self) -> bool:
        return not any(self.atoms.pbc)

    def to_ase(self) -> Atoms:
        """A copy as ASE Atoms, metadata in `info`."""
        atoms = self.atoms.copy()
        atoms.info.update(_jsonable(self.metadata))
        return atoms

    def to_pymatgen(self) -> Structure | Molecule:
        """pymatgen Structure (periodic) or Molecule (cluster, with charge and multiplicity)."""
        if self.is_cluster:
            mol = AseAtomsAdaptor.get_molecule(self.atoms, charge_spin_check=False)
            mol.set_charge_and_spin(self.charge, self.metadata.get("spin_multiplicity"))
            return mol
        return AseAtomsAdaptor.get_structure(self.atoms)

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON form, the only one (structure files, FireWorks specs):
        {"symbols", "positions_A" (Cartesian, A), "cell_A" (rows, A), "pbc", "metadata"}.

        Metadata numpy scalars and arrays become plain numbers and lists, tuples lists, keys
        strings; any other object is refused (StructureError naming its key), never stringified.
        Through JSON, from_dict gives back the same symbols, positions, cell and pbc (bit for
        bit) and metadata equal in value."""
        return {"symbols": self.atoms.get_chemical_symbols(),
                "positions_A": self.atoms.positions.tolist(),
                "cell_A": self.atoms.cell.array.tolist(), "pbc": self.atoms.pbc.tolist(),
                "metadata": _jsonable(self.metadata, strict=f"{self.name}: metadata")}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "structure record") -> StructureRecord:
        """The record of a to_dict form (also what older files and LaunchPad specs hold, the
        same layout); `source` names it in the StructureError for a malformed one."""
        if not isinstance(d, dict):
            raise StructureError(f"{source}: a structure record must be a JSON object, got "
                                 f"{type(d).__name__}")
        missing = [k for k in ("symbols", "positions_A", "cell_A", "pbc") if k not in d]
        if missing:
            raise StructureError(f"{source}: structure record lacks {missing}")
        try:
            atoms = Atoms(d["symbols"], positions=d["positions_A"], cell=d["cell_A"],
                          pbc=d["pbc"])
        except Exception as exc:  # ASE's error for a bad symbol or shape: name the source
            raise StructureError(f"{source}: bad structure record: {exc}") from exc
        metadata = d.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise StructureError(f"{source}: structure record metadata must be a mapping")
        return cls(atoms, copy.deepcopy(metadata))

    def summary(self) -> dict[str, Any]:
        """Metadata plus formula and atom count, JSON-ready."""
        out = {"formula": self.atoms.get_chemical_formula(mode="metal"), "n_atoms": len(self.atoms)}
        out.update(_jsonable(self.metadata))
        return out

    def write(self, path: str | Path) -> Path:
        """Write in the format implied by the suffix (.cif, .vasp/POSCAR, .extxyz/.xyz, .json).

        Clusters written to CIF/POSCAR keep their vacuum box as the cell. Metadata travels in
        extxyz `info` and in JSON; CIF and POSCAR carry the structure only (plus a comment).
        """
        path = Path(path)
        fmt = format_for_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "json":
            path.write_text(json.dumps(self.to_dict(), indent=1))
        elif fmt == "extxyz":
            import ase.io
            atoms = self.to_ase()
            ase.io.write(path, atoms, format="extxyz")
        else:
            periodic = self.atoms.copy()
            periodic.pbc = True
            structure = AseAtomsAdaptor.get_structure(periodic)
            if fmt == "cif":
                from pymatgen.io.cif import CifWriter
                CifWriter(structure).write_file(str(path))
            else:
                from pymatgen.io.vasp import Poscar
                Poscar(structure, comment=self.name).write_file(str(path))
        return path


def read_structure(path: str | Path) -> StructureRecord:
    """Read a structure written by StructureRecord.write (or any CIF/POSCAR/extxyz/JSON file).

    Raises StructureError naming the file when it is missing or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"{path}: no such structure file")
    fmt = format_for_path(path)
    try:
        if fmt == "json":
            return StructureRecord.from_dict(json.loads(path.read_text()), source=str(path))
        if fmt == "extxyz":
            import ase.io
            atoms = ase.io.read(path, format="extxyz")
            meta = dict(atoms.info)
            atoms.info = {}
            return StructureRecord(atoms, meta)
        structure = _read_pymatgen(path)
    except StructureError:
        raise
    except Exception as exc:  # a library error deep inside a parser: name the file instead
        raise StructureError(f"{path}: cannot read as {fmt}: {exc}") from exc
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.info = {}
    return StructureRecord(atoms, {"name": path.stem, "kind": "crystal"})


def _read_pymatgen(path: Path) -> Structure:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_file(str(path))
    if len(structure) == 0:
        raise StructureError(f"{path}: no atoms found")
    structure.remove_oxidation_states()
    return structure


def _jsonable(obj: Any, strict: str | None = None) -> Any:
    """Convert numpy scalars/arrays inside dicts/lists to plain Python for JSON and extxyz.
    strict (a prefix for the message): refuse, with a StructureError naming the key, any
    value JSON cannot hold; otherwise such values pass through unchanged."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, strict and f"{strict}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, strict) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if strict and not (obj is None or isinstance(obj, (str, int, float))):
        raise StructureError(f"{strict} holds a {type(obj).__name__}, which has no JSON form")
    return obj
