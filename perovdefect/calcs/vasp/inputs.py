"""VASP inputs: input sets built on pymatgen's MP input sets, plus the executable choice.

POTCARs are licensed. When pymatgen finds none (PMG_VASP_PSP_DIR unset), everything else is
written and pymatgen writes the POTCAR symbols to POTCAR.spec (its own potcar_spec mechanism); a
POTCAR is never faked. NELECT for charged cells is then computed from the ZVAL of the named
POTCARs (POTCAR_ZVAL).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perovdefect.calcs.protocol import Protocol
from perovdefect.structures.electrons import POTCAR_SYMBOLS, POTCAR_ZVAL
from perovdefect.structures.record import StructureRecord

HYBRID_INCAR = {"LHFCALC": True, "ALGO": "Normal", "PRECFOCK": "Normal", "TIME": 0.4}


@dataclass
class VaspInputs:
    """What was written: directory, executable (vasp_std / vasp_ncl / vasp_gam), INCAR dict,
    whether a real POTCAR was written, and notes for the user."""

    directory: Path
    executable: str
    incar: dict[str, Any]
    potcar_written: bool
    potcar_symbols: list[str]
    notes: list[str]


def vasp_executable(protocol: Protocol, gamma_only: bool) -> str:
    """vasp_ncl for SOC (custodian never switches by itself), vasp_gam for Gamma-only, else
    vasp_std."""
    if protocol.soc:
        return "vasp_ncl"
    return "vasp_gam" if gamma_only else "vasp_std"


def nelect(record: StructureRecord, charge: int) -> int:
    """Valence electrons for the named POTCARs minus the charge (e)."""
    return sum(POTCAR_ZVAL[s] for s in record.atoms.get_chemical_symbols()) - int(charge)


def incar_settings(record: StructureRecord, protocol: Protocol,
                   magmom_per_atom: float | None = None) -> dict[str, Any]:
    """INCAR tags that the protocol implies (merged over pymatgen's MP defaults).
    magmom_per_atom: initial moment (mu_B) on every atom, collinear or along z with SOC."""
    n_atoms = len(record.atoms)
    spin = protocol.spin_polarized or record.metadata.get("spin_multiplicity", 1) > 1
    tags: dict[str, Any] = {"ENCUT": protocol.cutoff_eV, "ISMEAR": 0, "SIGMA": 0.01,
                            "EDIFF": 1e-6, "LORBIT": 11, "LWAVE": protocol.is_hybrid,
                            "ISPIN": 2 if spin else 1, "LASPH": True}
    if protocol.task == "relax":
        tags.update({"IBRION": 2, "ISIF": 2 if record.is_cluster or record.metadata.get(
            "kind") == "defect" else 3, "NSW": 99, "EDIFFG": -0.01})
    else:
        tags.update({"NSW": 0, "IBRION": -1})
    if protocol.is_hybrid:
        tags.update(HYBRID_INCAR)
        tags["AEXX"] = protocol.aexx
        tags["HFSCREEN"] = protocol.screening
    if protocol.charge:
        tags["NELECT"] = nelect(record, protocol.charge)
    moment = magmom_per_atom if magmom_per_atom is not None else (0.6 if spin else 0.0)
    if protocol.soc:
        # noncollinear: a 3-vector per atom along z, no symmetry (ISYM=-1), twice the bands
        tags.update({"LSORBIT": True, "LNONCOLLINEAR": True, "ISYM": -1, "ISPIN": 2,
                     "MAGMOM": [[0.0, 0.0, moment]] * n_atoms, "SAXIS": [0, 0, 1]})
        ne = nelect(record, protocol.charge)
        tags["NBANDS"] = 2 * (int(0.6 * ne) + max(n_atoms // 2, 4))
    elif spin:
        tags["MAGMOM"] = [moment] * n_atoms
    else:
        tags.pop("MAGMOM", None)
    return tags


def write_vasp_inputs(record: StructureRecord, protocol: Protocol, directory: str | Path,
                      user_incar: dict[str, Any] | None = None,
                      magmom_per_atom: float | None = None,
                      potcar_symbols: dict[str, str] | None = None,
                      potcar_functional: str = "PBE_54") -> VaspInputs:
    """Write INCAR, KPOINTS, POSCAR (and POTCAR when configured, else POTCAR.spec)."""
    from pymatgen.io.vasp import Kpoints
    from pymatgen.io.vasp.sets import MPRelaxSet, MPStaticSet
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    protocol = protocol.with_(charge=record.charge) if record.charge != protocol.charge else \
        protocol
    structure = record.to_pymatgen()
    if record.is_cluster:  # a cluster in its vacuum box, periodic for VASP
        periodic = record.atoms.copy()
        periodic.pbc = True
        from pymatgen.io.ase import AseAtomsAdaptor
        structure = AseAtomsAdaptor.get_structure(periodic)
    tags = incar_settings(record, protocol, magmom_per_atom)
    tags.update(user_incar or {})
    magmom = tags.pop("MAGMOM", None)  # pymatgen takes per-element moments; set ours below
    from perovdefect.calcs.kpoints import monkhorst_pack
    mesh = monkhorst_pack(record.atoms, protocol)
    kpoints = Kpoints.gamma_automatic(mesh)
    gamma_only = mesh == (1, 1, 1)
    base = MPRelaxSet if protocol.task == "relax" else MPStaticSet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vis = base(structure, user_incar_settings=tags, user_kpoints_settings=kpoints,
                   user_potcar_settings=potcar_symbols or POTCAR_SYMBOLS,
                   user_potcar_functional=potcar_functional)
        incar = vis.incar
        notes: list[str] = []
        try:  # a real POTCAR when pymatgen has a POTCAR library (PMG_VASP_PSP_DIR)
            vis.write_input(str(directory))
            potcar_written = True
        except Exception:  # none configured: POTCARs are licensed, never faked
            vis.write_input(str(directory), potcar_spec=True)
            potcar_written = False
    symbols = list(vis.potcar_symbols)
    if not potcar_written:
        notes.append("no POTCAR library configured (set PMG_VASP_PSP_DIR): wrote POTCAR.spec "
                     f"with {symbols}; NELECT computed from their ZVAL {POTCAR_ZVAL}")
    if magmom is None:
        incar.pop("MAGMOM", None)  # closed shell: no ferromagnetic default guess
    else:
        incar["MAGMOM"] = magmom
    incar.write_file(directory / "INCAR")  # pymatgen's INCAR with our MAGMOM decision
    exe = vasp_executable(protocol, gamma_only)
    (directory / "perovdefect_inputs.json").write_text(json.dumps(
        {"executable": exe, "protocol": protocol.as_dict(), "potcar_symbols": symbols,
         "potcar_written": potcar_written, "notes": notes, "structure": record.summary()},
        indent=1, default=str))
    return VaspInputs(directory, exe, dict(incar), potcar_written, symbols, notes)
