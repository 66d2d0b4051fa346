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
            doc = {"metadata": _jsonable(self.metadata),
                   "symbols": self.atoms.get_chemical_symbols(),
                   "positions_A": self.atoms.positions.tolist(),
                   "cell_A": self.atoms.cell.array.tolist(), "pbc": self.atoms.pbc.tolist()}
            path.write_text(json.dumps(doc, indent=1))
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
            doc = json.loads(path.read_text())
            atoms = Atoms(doc["symbols"], positions=doc["positions_A"], cell=doc["cell_A"],
                          pbc=doc["pbc"])
            return StructureRecord(atoms, doc.get("metadata", {}))
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


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays inside dicts/lists to plain Python for JSON and extxyz."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
