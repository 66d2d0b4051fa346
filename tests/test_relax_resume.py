"""An interrupted GPAW relaxation resumes where it stopped (relax.traj + the BFGS Hessian),
and only for the same job: a changed step starts afresh from its own structure."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read

from perovdefect.calcs import Protocol, get_backend
from perovdefect.calcs.gpaw import gpaw_available
from perovdefect.structures.record import StructureRecord

pytestmark = pytest.mark.skipif(not gpaw_available(), reason="GPAW not installed")

SETTINGS = {"mode": "lcao", "basis": "szp(dzp)", "grid_spacing_A": 0.3, "relax_max_steps": 2,
            "relax_fmax_eV_per_A": 0.05}


def _water() -> StructureRecord:
    atoms = molecule("H2O")
    atoms.positions[1] += (0.0, 0.15, 0.1)  # stretched: several BFGS steps from the minimum
    atoms.center(vacuum=3.0)
    return StructureRecord(atoms, {"name": "H2O-stretched", "charge": 0,
                                   "spin_multiplicity": 1})


def _kill(run_dir) -> None:
    """What a killed worker leaves: the trajectory, but no result and no finished marker."""
    (run_dir / "result.json").unlink()
    (run_dir / "step.json").unlink()


def test_an_interrupted_relaxation_resumes_where_it_stopped(tmp_path):
    rec, relax = _water(), Protocol(name="relax", task="relax")
    backend = get_backend("gpaw", **SETTINGS)
    first, _ = backend.execute(rec, relax, tmp_path / "r", {"gpaw_cores": 1})
    frames = read(tmp_path / "r" / "relax.traj", index=":")
    assert len(frames) == 3 and not first.converged  # 2 steps: 3 geometries, not done
    _kill(tmp_path / "r")
    again, skipped = backend.execute(rec, relax, tmp_path / "r", {"gpaw_cores": 1})
    assert not skipped
    assert "resuming the relaxation from the last of 3 geometries" in \
        (tmp_path / "r" / "run.log").read_text()
    frames = read(tmp_path / "r" / "relax.traj", index=":")
    # the resumed run starts at the last geometry: its step 0 (relax.log's second block) has
    # that geometry's energy, and its next steps go on from there (ASE appends them)
    restarts = [ln for ln in (tmp_path / "r" / "relax.log").read_text().splitlines()
                if ln.startswith("BFGS:    0")]
    assert len(restarts) == 2
    assert float(restarts[1].split()[3]) == pytest.approx(frames[2].get_potential_energy(),
                                                          abs=1e-4)
    assert len(frames) == 5
    # a changed step (another fmax) in the same folder starts afresh from its structure
    _kill(tmp_path / "r")
    other = get_backend("gpaw", **{**SETTINGS, "relax_fmax_eV_per_A": 0.04})
    other.execute(rec, relax, tmp_path / "r", {"gpaw_cores": 1})
    assert "resuming" not in (tmp_path / "r" / "run.log").read_text()
    frames = read(tmp_path / "r" / "relax.traj", index=":")
    assert len(frames) == 3 and np.allclose(frames[0].positions, rec.atoms.positions)
