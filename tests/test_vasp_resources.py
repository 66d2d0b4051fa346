"""Issue 20: the VASP backend runs the command the worker's resources name for the build a step
needs (vasp_cmd / vasp_gam_cmd / vasp_ncl_cmd), given to `run` with the step, and says in one
line when the worker names none. VASP is licensed and cannot exist here: the scripted stand-in
tests/fakes/fake_vasp.py (under custodian, as the real one runs) logs the name it was called by.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perovdefect.calcs.backend import CalculationError, get_backend
from perovdefect.calcs.protocol import Protocol
from perovdefect.structures import build_crystal

FAKE = Path(__file__).parent / "fakes" / "fake_vasp.py"


@pytest.fixture
def site_commands(tmp_path, shared_data, monkeypatch) -> dict[str, str]:
    """Three differently named copies of the fake, off the PATH, as a worker's resources."""
    monkeypatch.setenv("FAKE_VASP_TEMPLATE", str(shared_data / "vasp" /
                                                 "doped_Br2_competing_phase" / "vasprun.xml.gz"))
    bindir = tmp_path / "site-bin"
    bindir.mkdir()
    resources = {}
    for key, name in (("vasp_cmd", "site_std"), ("vasp_gam_cmd", "site_gam"),
                      ("vasp_ncl_cmd", "site_ncl")):
        (bindir / name).symlink_to(FAKE)
        resources[key] = str(bindir / name)
    return resources


def ran(directory: Path) -> list[str]:
    return (directory / "executables.log").read_text().split()


def test_each_step_runs_the_command_its_build_needs(tmp_path, site_commands):
    rec = build_crystal("CsPbBr3-cubic")
    vasp = get_backend("vasp")
    cases = {"std": (Protocol(kpoints=(2, 2, 2)), ["site_std"]),
             "gam": (Protocol(kpoints=(1, 1, 1)), ["site_gam"]),
             "ncl": (Protocol(soc=True, kpoints=(2, 2, 2)), ["site_ncl"])}
    for label, (protocol, expected) in cases.items():
        doc, skipped = vasp.execute(rec, protocol, tmp_path / label, site_commands)
        assert not skipped and doc.converged and ran(tmp_path / label) == expected, label
    # run needs no file of ours: its step and the worker's commands come as arguments
    p = vasp.effective_protocol(rec, Protocol(kpoints=(1, 1, 1)))
    vasp.write_inputs(rec, p, tmp_path / "bare")
    (tmp_path / "bare" / "perovdefect_inputs.json").unlink()
    vasp.run(rec, p, tmp_path / "bare", {**site_commands, "vasp_cmd": "/nonexistent"})
    assert ran(tmp_path / "bare") == ["site_gam"]


def test_a_worker_without_the_command_is_refused_in_one_line(tmp_path, site_commands):
    rec = build_crystal("CsPbBr3-cubic")
    vasp = get_backend("vasp")
    without_gam = {k: v for k, v in site_commands.items() if k != "vasp_gam_cmd"}
    with pytest.raises(CalculationError) as err:
        vasp.execute(rec, Protocol(kpoints=(1, 1, 1)), tmp_path / "a", without_gam)
    assert str(err.value) == ("vasp: no command for vasp_gam: set vasp_gam_cmd in the worker's "
                              "resources (FireWorker env, e.g. my_fworker.yaml: vasp_gam_cmd: "
                              "srun vasp_gam)")
    assert not (tmp_path / "a" / "executables.log").exists()
    with pytest.raises(CalculationError, match="no command for vasp_std"):
        vasp.execute(rec, Protocol(kpoints=(2, 2, 2)), tmp_path / "b")  # no resources at all
    with pytest.raises(CalculationError, match=r"vasp_cmd 'srun-nowhere vasp_std': "
                                               r"srun-nowhere not found on the PATH"):
        vasp.execute(rec, Protocol(kpoints=(2, 2, 2)), tmp_path / "c",
                     {"vasp_cmd": "srun-nowhere vasp_std"})
