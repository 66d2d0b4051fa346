"""VASP backend: pymatgen input sets, VASP under custodian (its error handlers and validator),
vasprun.xml / OUTCAR parsing. VASP itself is licensed and is never installed by perovdefect;
the executables come from the worker (my_fworker.yaml: vasp_cmd, vasp_ncl_cmd, vasp_gam_cmd)."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any, Callable

from perovdefect.calcs.backend import Backend, CalculationError
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.transition import TransitionDipoles
from perovdefect.errors import ParseError, ProtocolError
from perovdefect.structures.electrons import POTCAR_SYMBOLS
from perovdefect.structures.record import StructureRecord

#: worker-env key for each executable
ENV_KEYS = {"vasp_std": "vasp_cmd", "vasp_ncl": "vasp_ncl_cmd", "vasp_gam": "vasp_gam_cmd"}


def vasp_command(executable: str, resources: dict[str, Any]) -> list[str]:
    """The command line that runs `executable` (vasp_std / vasp_ncl / vasp_gam) on this
    worker: its entry in `resources` (ENV_KEYS). CalculationError when the worker gives none,
    or gives one whose program is not on its PATH (never a guess at an installed VASP)."""
    key = ENV_KEYS[executable]
    cmd = str(resources.get(key) or "").strip()
    if not cmd:
        raise CalculationError(f"vasp: no command for {executable}: set {key} in the worker's "
                               f"resources (FireWorker env, e.g. my_fworker.yaml: {key}: srun "
                               f"{executable})")
    argv = shlex.split(cmd)
    if shutil.which(argv[0]) is None:
        raise CalculationError(f"vasp: {key} {cmd!r}: {argv[0]} not found on the PATH")
    return argv


class VaspBackend(Backend):
    """VASP through pymatgen (inputs) and custodian (runs).

    Settings: incar (INCAR tags over the protocol's, e.g. {"NCORE": 8}), magmom_per_atom
    (initial moment, mu_B, on every atom; along z with SOC), potcar_symbols ({element: POTCAR}),
    potcar_functional (pymatgen's name, PBE_54), max_errors (custodian), nbands_multiple
    (NBANDS of constrained-occupation steps is a multiple of it: make it a multiple of NPAR =
    cores / NCORE, since VASP stops when it must change NBANDS under FERWE/FERDO).

    Constrained occupations (a protocol's excitation, DeltaSCF): ISMEAR = -2 with FERWE/FERDO
    from the cell's electron count, Gamma only (perovdefect.calcs.vasp.deltascf); custodian
    runs them without the corrections that would drop the occupations, and the parser says
    when the finished run did not keep them. With SOC the Protocol refuses an excitation."""

    name = "vasp"
    packages = ("pymatgen", "custodian")
    capabilities = frozenset({"hybrid", "soc", "relax", "transition_dipole",
                              "constrained_occupations"})
    calc_defaults = {"incar": {}, "magmom_per_atom": None, "potcar_symbols": dict(POTCAR_SYMBOLS),
                     "potcar_functional": "PBE_54", "max_errors": 5, "nbands_multiple": 8}
    output_files = ("vasprun.xml", "vasprun.xml.gz", "OUTCAR", "OUTCAR.gz")

    def validate_settings(self) -> None:
        s = self.settings
        if not isinstance(s["incar"], dict):
            raise ProtocolError("vasp setting incar must be a mapping of INCAR tags")
        protected = {"LHFCALC", "AEXX", "HFSCREEN", "LSORBIT", "NELECT", "ENCUT", "FERWE",
                     "FERDO"} & {k.upper() for k in s["incar"]}
        if protected:
            raise ProtocolError(f"vasp setting incar may not set {sorted(protected)}: the "
                                "protocol does (functional, soc, charge, cutoff_eV, "
                                "excitation)")
        for key in ("max_errors", "nbands_multiple"):
            if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1:
                raise ProtocolError(f"vasp setting {key} must be a positive integer")

    def check(self, record: StructureRecord | None, protocol: Protocol) -> None:
        """Also: constrained occupations only at Gamma (FERWE/FERDO list the bands of each
        irreducible k-point, which VASP chooses)."""
        super().check(record, protocol)
        if not protocol.excitation:
            return
        mesh = tuple(protocol.kpoints) if protocol.kpoints else None
        if record is not None:
            from perovdefect.calcs.kpoints import monkhorst_pack
            mesh = monkhorst_pack(record.atoms, protocol)
        if mesh is not None and tuple(mesh) != (1, 1, 1):
            raise ProtocolError(f"vasp constrained occupations ({protocol.name}) need a "
                                f"Gamma-only calculation, got the k-mesh {tuple(mesh)}: set "
                                "kpoints (1, 1, 1) and converge the supercell size instead")

    def valence_electrons(self, record: StructureRecord, protocol: Protocol) -> int:
        """From the ZVAL of the POTCARs the input set names (settings potcar_symbols over
        pymatgen's MP choices; vasp.inputs.potcar_zval says where each ZVAL comes from)."""
        from perovdefect.calcs.vasp.inputs import valence_electrons
        return valence_electrons(record, self.settings["potcar_symbols"],
                                 self.settings["potcar_functional"])

    def write_inputs(self, record: StructureRecord, protocol: Protocol, directory: Path,
                     previous: Path | None = None) -> None:
        from perovdefect.calcs.vasp.inputs import write_vasp_inputs
        write_vasp_inputs(record, protocol, directory, self.settings["incar"],
                          self.settings["magmom_per_atom"], self.settings["potcar_symbols"],
                          self.settings["potcar_functional"], self.settings["nbands_multiple"])

    def run(self, record: StructureRecord, protocol: Protocol, directory: Path,
            resources: dict[str, Any], log: Callable | None = None) -> None:
        """VASP under custodian (VaspErrorHandler, UnconvergedErrorHandler,
        NonConvergingErrorHandler; VasprunXMLValidator) in `directory`: the build the step
        needs (inputs.vasp_executable) run with the worker's command for it (vasp_command).
        A constrained-occupation step runs without the VaspErrorHandler corrections that would
        set ISMEAR = 0 or change NBANDS (deltascf.CONSTRAINT_BREAKING_ERRORS)."""
        from custodian import Custodian
        from custodian.vasp.handlers import (NonConvergingErrorHandler, UnconvergedErrorHandler,
                                             VaspErrorHandler)
        from custodian.vasp.jobs import VaspJob
        from custodian.vasp.validators import VasprunXMLValidator

        from perovdefect.calcs.vasp.deltascf import CONSTRAINT_BREAKING_ERRORS
        from perovdefect.calcs.vasp.inputs import vasp_executable
        cmd = vasp_command(vasp_executable(record, protocol), resources)
        errors = None
        if protocol.excitation:
            errors = [e for e in VaspErrorHandler.error_msgs
                      if e not in CONSTRAINT_BREAKING_ERRORS]
        handlers = [VaspErrorHandler(errors_subset_to_catch=errors), UnconvergedErrorHandler(),
                    NonConvergingErrorHandler()]
        job = VaspJob(vasp_cmd=cmd, output_file="vasp.out", auto_npar=False,
                      copy_magmom=False)
        try:
            Custodian(handlers, [job], validators=[VasprunXMLValidator()],
                      max_errors=self.settings["max_errors"], polling_time_step=1,
                      monitor_freq=1, directory=str(directory)).run()
        except Exception as exc:  # custodian gave up: keep its log, say where
            raise CalculationError(f"VASP ({shlex.join(cmd)}) failed in {directory} under "
                                   f"custodian: {exc}") from exc

    def parse(self, directory: Path) -> ElectronicStructure:
        from perovdefect.calcs.vasp.parse import parse_vasprun
        # LORBIT = 11 is written for every step: the projections localise the states
        doc = parse_vasprun(directory / "vasprun.xml", parse_projections=True)
        corrections = []
        log_file = directory / "custodian.json"
        if log_file.is_file():
            for run in json.loads(log_file.read_text()):
                for c in run.get("corrections", []):
                    corrections.append({"errors": c.get("errors"), "actions": c.get("actions"),
                                        "handler": str(c.get("handler", ""))})
        inputs = directory / "perovdefect_inputs.json"
        info = json.loads(inputs.read_text()) if inputs.is_file() else {}
        doc.settings.update({"executable": info.get("executable"),
                             "custodian_corrections": corrections,
                             "potcar_written": info.get("potcar_written"),
                             "notes": info.get("notes", [])})
        asked = info.get("constrained_occupations")
        if asked and "constrained_occupations" not in doc.settings:
            # vasprun.xml did not echo FERWE/FERDO: check against what was written
            self._check_occupations(doc, asked, directory)
        return doc

    @staticmethod
    def _check_occupations(doc: ElectronicStructure, asked: dict, directory: Path) -> None:
        import warnings

        import numpy as np

        from perovdefect.calcs.vasp.deltascf import occupation_check
        summary, problems = occupation_check(
            [np.asarray(asked["up"], float), np.asarray(asked["down"], float)],
            np.asarray(doc.occupations, float), np.asarray(doc.eigenvalues_eV, float),
            str(directory / "vasprun.xml"))
        doc.settings["constrained_occupations"] = summary
        for msg in problems:
            doc.warnings.append(msg)
            warnings.warn(msg, stacklevel=2)

    @classmethod
    def transition_dipoles(cls, directory: Path, initial: list[int], final: list[int],
                           spin: int) -> TransitionDipoles:
        """From the run's WAVEDER (LOPTICS = .TRUE.; perovdefect.calcs.vasp.waveder)."""
        from perovdefect.calcs.vasp.waveder import transition_dipoles
        return transition_dipoles(Path(directory), initial, final, spin)

    def relaxed_structure(self, directory: Path, record: StructureRecord
                          ) -> StructureRecord | None:
        import ase.io
        contcar = directory / "CONTCAR"
        if not contcar.is_file() or contcar.stat().st_size == 0:
            return None
        atoms = ase.io.read(contcar, format="vasp")
        atoms.pbc = record.atoms.pbc
        return StructureRecord(atoms, dict(record.metadata))

    def describe(self, protocol: Protocol) -> dict[str, Any]:
        return {"code": self.name, "functional": protocol.label, "cutoff_eV": protocol.cutoff_eV,
                "kpoints": protocol.kpoints or protocol.kpoint_density_inv_A,
                "settings": {"INCAR overrides": self.settings["incar"]}}

    @classmethod
    def recognises(cls, path: Path) -> bool:
        name = path.name.lower()
        if name.startswith("vasprun") and name.endswith((".xml", ".xml.gz")):
            return True
        if name.startswith("outcar"):
            return True
        if name.endswith(".xml"):
            try:
                head = path.read_bytes()[:4096].decode(errors="replace")
            except OSError:
                return False
            return head.lstrip().startswith("<?xml") and "<modeling>" in head
        return False

    @classmethod
    def parse_file(cls, path: Path, parse_projections: bool = False) -> ElectronicStructure:
        from perovdefect.calcs.vasp.parse import parse_outcar, parse_vasprun
        if path.name.lower().startswith("outcar"):
            return parse_outcar(path)
        if not path.is_file():
            raise ParseError(f"{path}: no such file")
        return parse_vasprun(path, parse_projections)
