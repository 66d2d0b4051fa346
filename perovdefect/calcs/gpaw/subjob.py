"""One analysis of a saved GPAW calculation in a subprocess (`python -m MODULE JOB_JSON`), as
the runner runs its steps: GPAW, its memory and a crash stay out of the caller's process. The
module writes its answer as JSON to job["out"]: {"error": why} or its data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from perovdefect.calcs.backend import CalculationError
from perovdefect.errors import AnalysisError


def run_job(module: str, job: dict, what: str, source: Path, directory: Path,
            timeout_s: float = 3600.0) -> dict:
    """The data `module` wrote for `job` (the "out" path is added here); CalculationError
    naming `source` when it fails or times out, AnalysisError naming `directory` when it
    refused the job (its "error")."""
    with tempfile.TemporaryDirectory(prefix="perovdefect-job-") as tmp:
        out = Path(tmp) / "out.json"
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   GPAW_MPI_BACKEND="cgpaw", OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        cmd = [sys.executable, "-m", module, json.dumps({**job, "out": str(out)})]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise CalculationError(f"{source}: the {what} took over {timeout_s:g} s") from None
        if proc.returncode != 0 or not out.is_file():
            lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise CalculationError(f"{source}: the {what} failed (exit {proc.returncode}): "
                                   + " | ".join(lines[-2:]))
        data = json.loads(out.read_text())
    if "error" in data:
        raise AnalysisError(f"{directory}: {data['error']}")
    return data
