"""Run one ladder step with the campaign's code, durably.

Durability comes from perovdefect.calcs.rundir: result.json, then the step.json hash marker as
the last act; a step whose marker matches is never recomputed. VASP runs under
custodian with its error handlers; the executable (vasp_std / vasp_ncl / vasp_gam) is chosen
from the protocol and resolved from the FireWorker's env (my_fworker.yaml)."""

from __future__ import annotations

import json
import os
import shlex
from contextlib import contextmanager
from pathlib import Path

from perovdefect.calcs.gpaw_backend import CalculationError, gpaw_protocol, run_gpaw
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.rundir import finished, mark_finished, step_digest
from perovdefect.parsers.document import ElectronicStructure
from perovdefect.structures.record import StructureRecord

ENV_KEYS = {"vasp_std": "vasp_cmd", "vasp_ncl": "vasp_ncl_cmd", "vasp_gam": "vasp_gam_cmd"}


@contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_step(record: StructureRecord, protocol: Protocol, code: str, run_dir: str | Path,
             env: dict | None = None, pseudopotentials: dict | None = None,
             log=None) -> tuple[ElectronicStructure, bool]:
    """(result, skipped). Runs GPAW, VASP (custodian) or pw.x for one step."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = env or {}
    if code == "gpaw":
        protocol = gpaw_protocol(record, protocol)  # hash what GPAW runs, as run_gpaw does
    digest = step_digest(record, protocol, code)
    done = finished(run_dir, digest)
    if done is not None:
        return done, True
    if code == "gpaw":
        cores = env.get("gpaw_cores")
        # run_gpaw writes result.json and the marker itself
        return run_gpaw(record, protocol, run_dir, cores=int(cores) if cores else None,
                        log=log), False
    if code == "vasp":
        doc = run_vasp(record, protocol, run_dir, env)
    elif code == "qe":
        from perovdefect.calcs.qe import run_pw, write_pw_input
        write_pw_input(record, protocol, run_dir, pseudopotentials or {})
        doc = run_pw(run_dir, env.get("pw_cmd"))
    else:
        raise CalculationError(f"unknown code {code!r}")
    mark_finished(run_dir, digest, doc, {"code": code, "protocol": protocol.as_dict()})
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
