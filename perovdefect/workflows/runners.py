"""Run one ladder step with the campaign's code, durably.

A step's result is written to RUN_DIR/result.json, then RUN_DIR/step.json (structure+protocol
hash) as the last act; a step whose step.json matches is never recomputed. VASP runs under
custodian with its error handlers; the executable (vasp_std / vasp_ncl / vasp_gam) is chosen
from the protocol and resolved from the FireWorker's env (my_fworker.yaml)."""

from __future__ import annotations

import json
import os
import shlex
from contextlib import contextmanager
from pathlib import Path

from perovdefect.calcs.gpaw_backend import CalculationError, job_hash, run_gpaw
from perovdefect.calcs.protocol import Protocol
from perovdefect.parsers.document import ElectronicStructure
from perovdefect.structures.record import StructureRecord

MARKER = "step.json"
ENV_KEYS = {"vasp_std": "vasp_cmd", "vasp_ncl": "vasp_ncl_cmd", "vasp_gam": "vasp_gam_cmd"}


@contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def finished(run_dir: Path, digest: str) -> ElectronicStructure | None:
    """The stored result if this exact step already finished in run_dir."""
    marker = run_dir / MARKER
    if marker.is_file() and (run_dir / "result.json").is_file():
        try:
            if json.loads(marker.read_text()).get("hash") == digest:
                return ElectronicStructure.from_json(run_dir / "result.json")
        except (json.JSONDecodeError, OSError):
            return None
    return None


def run_step(record: StructureRecord, protocol: Protocol, code: str, run_dir: str | Path,
             env: dict | None = None, pseudopotentials: dict | None = None,
             log=None) -> tuple[ElectronicStructure, bool]:
    """(result, skipped). Runs GPAW, VASP (custodian) or pw.x for one step."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = env or {}
    digest = job_hash(record, protocol) + f"-{code}"
    done = finished(run_dir, digest)
    if done is not None:
        return done, True
    if code == "gpaw":
        cores = env.get("gpaw_cores")
        doc = run_gpaw(record, protocol, run_dir, cores=int(cores) if cores else None, log=log)
    elif code == "vasp":
        doc = run_vasp(record, protocol, run_dir, env)
    elif code == "qe":
        from perovdefect.calcs.qe import run_pw, write_pw_input
        write_pw_input(record, protocol, run_dir, pseudopotentials or {})
        doc = run_pw(run_dir, env.get("pw_cmd"))
    else:
        raise CalculationError(f"unknown code {code!r}")
    doc.to_json(run_dir / "result.json")
    tmp = run_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"hash": digest, "code": code, "protocol": protocol.as_dict()}))
    os.replace(tmp, run_dir / MARKER)
    return doc, False


def run_vasp(record: StructureRecord, protocol: Protocol, run_dir: Path,
             env: dict) -> ElectronicStructure:
    """Write inputs, run VASP under custodian (VaspErrorHandler, UnconvergedErrorHandler,
    NonConvergingErrorHandler; VasprunXMLValidator), parse, and record the corrections."""
    from custodian import Custodian
    from custodian.vasp.handlers import (NonConvergingErrorHandler, UnconvergedErrorHandler,
                                         VaspErrorHandler)
    from custodian.vasp.jobs import VaspJob
    from custodian.vasp.validators import VasprunXMLValidator

    from perovdefect.calcs.vasp import write_vasp_inputs
    from perovdefect.parsers.vasp import parse_vasprun
    inputs = write_vasp_inputs(record, protocol, run_dir)
    cmd = env.get(ENV_KEYS[inputs.executable]) or inputs.executable
    handlers = [VaspErrorHandler(), UnconvergedErrorHandler(), NonConvergingErrorHandler()]
    job = VaspJob(vasp_cmd=shlex.split(cmd), output_file="vasp.out", auto_npar=False,
                  copy_magmom=False)
    with _chdir(run_dir):
        try:
            Custodian(handlers, [job], validators=[VasprunXMLValidator()], max_errors=5,
                      polling_time_step=1, monitor_freq=1).run()
        except Exception as exc:  # custodian gave up: keep its log, say where
            raise CalculationError(f"VASP ({cmd}) failed in {run_dir} under custodian: "
                                   f"{exc}") from exc
    doc = parse_vasprun(run_dir / "vasprun.xml")
    log_file = run_dir / "custodian.json"
    corrections = []
    if log_file.is_file():
        for run in json.loads(log_file.read_text()):
            for c in run.get("corrections", []):
                corrections.append({"errors": c.get("errors"), "actions": c.get("actions"),
                                    "handler": str(c.get("handler", ""))})
    doc.settings.update({"executable": cmd, "custodian_corrections": corrections,
                         "potcar_written": inputs.potcar_written, "notes": inputs.notes})
    return doc
