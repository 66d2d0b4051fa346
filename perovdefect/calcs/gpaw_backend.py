"""GPAW backend: write a run directory and execute perovdefect.calcs.gpaw_runner in a subprocess
(under mpiexec when GPAW has MPI and more than one core is present).

Parallel choice (measured here on 2 cores): MPI ranks beat OpenBLAS threads ~2x for LCAO, so
LCAO runs on min(cores, 2*k) ranks with one thread each. Plane-wave mode on several ranks needs a
ScaLAPACK-enabled GPAW; without it PW runs on one rank with OpenBLAS threads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.rundir import finished, mark_finished, step_digest
from perovdefect.errors import PerovDefectError
from perovdefect.parsers.document import ElectronicStructure
from perovdefect.structures.record import StructureRecord


class CalculationError(PerovDefectError):
    """A backend run that failed; the message names the run directory and log."""


def gpaw_available() -> bool:
    """True when GPAW and its PAW setups can be imported."""
    try:
        import gpaw  # noqa: F401
    except ImportError:
        return False
    return True


def _has_mpi_and_scalapack() -> tuple[bool, bool]:
    try:
        import _gpaw
    except ImportError:
        return False, False
    mpi = hasattr(_gpaw, "Communicator")
    scalapack = any("blacs" in n.lower() for n in dir(_gpaw))
    return mpi, scalapack


def choose_parallel(protocol: Protocol, cores: int | None = None) -> tuple[int, int]:
    """(MPI ranks, threads per rank) for this protocol on `cores` cores."""
    cores = cores or os.cpu_count() or 1
    mpi, scalapack = _has_mpi_and_scalapack()
    if os.environ.get("PEROVDEFECT_GPAW_NPROCS"):
        return int(os.environ["PEROVDEFECT_GPAW_NPROCS"]), 1
    if not mpi or shutil.which("mpiexec") is None or cores < 2:
        return 1, cores
    if protocol.mode == "pw" and not scalapack:
        return 1, cores
    return cores, 1


def gpaw_protocol(record: StructureRecord, protocol: Protocol) -> Protocol:
    """The protocol GPAW actually runs: the record's charge, and collinear spin for an odd
    electron count."""
    if protocol.charge != record.charge:
        protocol = protocol.with_(charge=record.charge)
    if record.metadata.get("spin_multiplicity", 1) > 1 and not protocol.spin_polarized:
        protocol = protocol.with_(spin_polarized=True)
    return protocol


def run_gpaw(record: StructureRecord, protocol: Protocol, run_dir: str | Path,
             cores: int | None = None, log=None) -> ElectronicStructure:
    """Run one protocol step on `record` in `run_dir`; returns the ElectronicStructure.

    A run directory that already holds a result for the same structure and protocol is not
    recomputed. The GPAW text output is RUN_DIR/gpaw.txt, the runner's log RUN_DIR/run.log.
    """
    if not gpaw_available():
        raise CalculationError("GPAW is not installed: pip install 'perovdefect[gpaw]' "
                               "(needs libxc-dev, libopenblas-dev and an MPI; see README)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    protocol = gpaw_protocol(record, protocol)
    h = step_digest(record, protocol, "gpaw")
    done = finished(run_dir, h)
    if done is not None:
        return done
    result = run_dir / "result.json"
    result.unlink(missing_ok=True)  # a stale result of another job must not pass for this one
    record.write(run_dir / "structure.extxyz")
    (run_dir / "job.json").write_text(json.dumps({"hash": h, "protocol": protocol.as_dict(),
                                    "structure": "structure.extxyz",
                                    "metadata": record.summary()}, indent=1, default=str))
    ranks, threads = choose_parallel(protocol, cores)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               GPAW_MPI_BACKEND="cgpaw", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    cmd = [sys.executable, "-m", "perovdefect.calcs.gpaw_runner", str(run_dir)]
    if ranks > 1:
        cmd = ["mpiexec", "-n", str(ranks), *cmd]
    with open(run_dir / "run.log", "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            fh.flush()
            if log is not None and line.startswith("[perovdefect"):
                log(line.rstrip())
        rc = proc.wait()
    if rc != 0 or not result.is_file():
        tail = (run_dir / "run.log").read_text().strip().splitlines()[-5:]
        raise CalculationError(f"GPAW run in {run_dir} failed (exit {rc}); last lines of "
                               f"run.log:\n  " + "\n  ".join(tail))
    doc = ElectronicStructure.from_json(result)
    mark_finished(run_dir, h, doc, {"code": "gpaw", "protocol": protocol.as_dict()})
    return doc
