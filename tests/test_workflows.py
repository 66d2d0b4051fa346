"""Issue 4: FireWorks campaigns on the embedded LaunchPad, launched with rlaunch in a worker
process; kill -9 and rerun; custodian with a scripted fake VASP; qlaunch with fake queues.

What is mocked and why: VASP is licensed and cannot exist here, so a scripted fake `vasp`
(tests/fakes/fake_vasp.py) stands in for the binary; custodian, its handlers, FireWorks and
rlaunch/qlaunch are the real ones. No SLURM/PBS exists here: fake sbatch/squeue/qsub/qstat only
record the job script FireWorks' CommonAdapter writes. GPAW runs for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from perovdefect.calcs.gpaw import gpaw_available
from perovdefect.errors import CampaignError
from perovdefect.workflows.spec import load_campaign
from tests.conftest import run_cli

FAKES = Path(__file__).parent / "fakes"
GPAW_CAMPAIGN = {
    "name": "vbr-clusters", "code": "gpaw", "tier": "pbe", "relax": False, "pl_nm": 518,
    "models": [{"compound": "Cs4PbBr6", "model": "cluster", "cluster": "pbbr6-octahedron",
                "padding_A": 4.0, "charges": [0, -1]}],
    "settings": {"mode": "lcao", "grid_spacing_A": 0.25}}

needs_gpaw = pytest.mark.skipif(not gpaw_available(), reason="GPAW not installed")


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args, **kw):
    r = run_cli(*args, **kw)
    return r


def test_campaign_validation_errors(tmp_path):
    bad_yaml = tmp_path / "a.yaml"
    bad_yaml.write_text("name: x\nmodels: [\n")
    with pytest.raises(CampaignError, match=r"a.yaml: bad YAML \(line"):
        load_campaign(bad_yaml)
    for change, msg in [({"tier": "hse07"}, "unknown tier"),
                        ({"models": [{"charges": [0, 0]}]}, "distinct"),
                        ({"models": [{"colour": "red"}]}, "colour"),
                        ({"protocol": {"functional": "HSE06"}}, "ladder tier"),
                        ({"protocol": {"cutoff_eV": -5}}, "cutoff"),
                        ({"code": "castep"}, "unknown code 'castep'"),
                        ({"name": "has space"}, "name"),
                        ({"code": "qe", "settings": {}}, "pseudopotentials"),
                        ({"settings": {"mode": "pw", "basis_set": "x"}}, "basis_set"),
                        ({"tier": "hse06"}, "plane-wave mode"),
                        ({"protocol": {"mode": "lcao"}}, "code setting now"),
                        ({"pseudopotentials": {"Br": "Br.UPF"}}, "moved under settings")]:
        data = {**GPAW_CAMPAIGN, **change}
        with pytest.raises(CampaignError, match=msg):
            load_campaign(write_yaml(tmp_path / "c.yaml", data))
    r = cli("campaign", "submit", str(bad_yaml), "--project", str(tmp_path / "p"))
    assert r.returncode == 2 and "bad YAML" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p" / "launchpad_store.json").exists()  # nothing submitted


@needs_gpaw
@pytest.mark.slow
def test_embedded_campaign_rlaunch_resubmit_and_lock(tmp_path):
    camp = write_yaml(tmp_path / "c.yaml", GPAW_CAMPAIGN)
    proj = tmp_path / "proj"
    r = cli("campaign", "submit", str(camp), "--project", str(proj), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == ["Cs4PbBr6_pbbr6-octahedron"]
    r = cli("campaign", "submit", str(camp), "--project", str(proj), "--json")
    assert json.loads(r.stdout)["added"] == []  # re-submission adds nothing
    status = json.loads(cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert status["total"] == 4  # host + 2 charge states + analysis
    # the worker runs as `perovdefect campaign run` -> rlaunch child process
    worker = subprocess.Popen([sys.executable, "-m", "perovdefect", "campaign", "run",
                               "--project", str(proj)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if (proj / "worker.pid").exists():
            break
        time.sleep(0.1)
    second = cli("campaign", "run", "--project", str(proj))
    assert second.returncode == 2 and "in use" in second.stderr  # refused at once
    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    status = json.loads(cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert status["states"] == {"COMPLETED": 4}
    r = cli("campaign", "collect", "--project", str(proj), "-o", str(tmp_path / "res.json"))
    assert r.returncode == 0, r.stderr
    table = json.loads((tmp_path / "res.json").read_text())
    assert len(table["steps"]) == 3
    # each step's wall time as it ran (GPAW's runner records its own), and their sum
    walls = [s["wall_time_s"] for s in table["steps"]]
    assert all(w > 0 for w in walls), walls
    assert f"3 finished calculation steps took {sum(walls) / 3600:.2f} h" in r.stdout
    # V_Br^0's odd count leaves its highest level half filled: no gap there (issue 18)
    assert [s["gap_eV"] is None for s in table["steps"]] == [
        s["n_electrons"] % 2 == 1 for s in table["steps"]] and any(
        s["gap_eV"] is None for s in table["steps"])
    assert all(s["gap_eV"] > 0 for s in table["steps"] if s["gap_eV"] is not None)
    (analysis,) = table["analyses"]
    for label in ("V_Br_q0", "V_Br_q-1"):
        assert analysis["defects"][label]["in_gap_states"], label
    assert analysis["defects"]["V_Br_q0"]["pl_comparison"]["pl_nm"] == 518
    assert (proj / "launches").is_dir() and any((proj / "launches").iterdir())


@needs_gpaw
@pytest.mark.slow
def test_kill_worker_then_rerun_loses_nothing(tmp_path):
    camp = write_yaml(tmp_path / "c.yaml", GPAW_CAMPAIGN)
    proj = tmp_path / "proj"
    assert cli("campaign", "submit", str(camp), "--project", str(proj)).returncode == 0
    worker = subprocess.Popen([sys.executable, "-m", "perovdefect", "campaign", "run",
                               "--project", str(proj)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    runs = proj / "runs" / "vbr-clusters" / "Cs4PbBr6_pbbr6-octahedron"
    deadline = time.time() + 300
    while time.time() < deadline and not list(runs.glob("*/pbe/step.json")):
        time.sleep(0.2)
    finished = list(runs.glob("*/pbe/step.json"))
    assert finished, "no step finished before the deadline"
    rlaunch_pid = int((proj / "worker.pid").read_text())
    os.killpg(rlaunch_pid, signal.SIGKILL)  # kill -9 the rlaunch worker and its GPAW run
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 2 and "rerun" in err
    assert len(list(runs.glob("*/pbe/step.json"))) < 3  # killed mid-campaign
    done_before = {p: p.stat().st_mtime for p in runs.glob("*/pbe/result.json")
                   if (p.parent / "step.json").exists()}
    r = cli("campaign", "rerun", "--project", str(proj))
    assert r.returncode == 0, r.stderr
    for path, mtime in done_before.items():
        assert path.stat().st_mtime == mtime, f"{path} was recomputed"
    status = json.loads(cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert status["states"] == {"COMPLETED": 4}
    assert (runs / "analysis" / "analysis.json").is_file()


@pytest.fixture
def fake_vasp_env(tmp_path, shared_data):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("vasp_std", "vasp_ncl", "vasp_gam"):
        (bindir / name).symlink_to(FAKES / "fake_vasp.py")
    return {"PATH": f"{bindir}:{os.environ['PATH']}",
            "FAKE_VASP_TEMPLATE": str(shared_data / "vasp" / "doped_Br2_competing_phase" /
                                      "vasprun.xml.gz")}


def test_custodian_fixes_zbrent_and_edddav_and_soc_uses_vasp_ncl(tmp_path, fake_vasp_env):
    campaign = {"name": "vasp-mock", "code": "vasp", "tier": "hse06-soc", "relax": True,
                "models": [{"compound": "CsPbBr3-cubic", "model": "supercell", "charges": [0]}],
                "protocol": {"cutoff_eV": 400, "kpoints": [2, 2, 2]}}
    camp = write_yaml(tmp_path / "c.yaml", campaign)
    proj = tmp_path / "proj"
    assert cli("campaign", "submit", str(camp), "--project", str(proj)).returncode == 0
    r = cli("campaign", "run", "--project", str(proj), env=fake_vasp_env)
    assert r.returncode == 0, r.stderr + (proj / "rlaunch.log").read_text()[-3000:]
    status = json.loads(cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert status["states"] == {"COMPLETED": 9}  # 2 structures x 4 steps + analysis
    runs = proj / "runs" / "vasp-mock" / "CsPbBr3-cubic_supercell-unit"
    relax = json.loads((runs / "host" / "relax" / "result.json").read_text())
    zbrent = [c for c in relax["settings"]["custodian_corrections"] if "zbrent" in c["errors"]]
    assert zbrent and any("NELMIN" in json.dumps(a) for a in zbrent[0]["actions"])
    hse = json.loads((runs / "host" / "hse06" / "result.json").read_text())
    edddav = [c for c in hse["settings"]["custodian_corrections"] if "edddav" in c["errors"]]
    assert edddav and "All" in json.dumps(edddav[0]["actions"])
    # the SOC step goes to vasp_ncl (twice: its hybrid first attempt also hit EDDDAV)
    assert set((runs / "host" / "hse06-soc" / "executables.log").read_text().split()) == \
        {"vasp_ncl"}
    assert (runs / "host" / "pbe" / "executables.log").read_text().split() == ["vasp_std"]
    assert (runs / "host" / "relax" / "executables.log").read_text().split() == ["vasp_std"] * 2
    # the relaxed structure (cell expanded 1 % by the fake relaxation) reached every later step
    from pymatgen.io.vasp import Poscar
    a_relax = Poscar.from_file(runs / "host" / "relax" / "POSCAR").structure.lattice.a
    for step in ("pbe", "hse06", "hse06-soc"):
        a = Poscar.from_file(runs / "host" / step / "POSCAR").structure.lattice.a
        assert a == pytest.approx(1.01 * a_relax, rel=1e-6), step
    incar = (runs / "host" / "hse06-soc" / "INCAR").read_text()
    assert "LSORBIT = True" in incar and "LHFCALC = True" in incar
    table = json.loads(cli("campaign", "collect", "--project", str(proj), "-o",
                           str(tmp_path / "r.json")).stdout and (tmp_path / "r.json").read_text())
    assert all(s["state"] == "COMPLETED" for s in table["steps"])
    # the shared durable execution times every backend's step (here custodian + fake vasp)
    assert all(s["wall_time_s"] > 0 for s in table["steps"])


@pytest.mark.parametrize("scheduler,submit_cmd,directive", [("slurm", "sbatch", "#SBATCH"),
                                                            ("pbs", "qsub", "#PBS")])
def test_qlaunch_writes_job_script(tmp_path, scheduler, submit_cmd, directive):
    campaign = dict(GPAW_CAMPAIGN, resources={"nodes": 2, "ntasks_per_node": 16,
                                              "walltime": "12:00:00", "queue": "regular"})
    camp = write_yaml(tmp_path / "c.yaml", campaign)
    proj = tmp_path / "proj"
    assert cli("campaign", "submit", str(camp), "--project", str(proj)).returncode == 0
    qa = tmp_path / "my_qadapter.yaml"
    r = cli("campaign", "qadapter", str(camp), "--scheduler", scheduler, "-o", str(qa),
            "--launchpad", str(proj / "my_launchpad.yaml"), "--fworker",
            str(proj / "my_fworker.yaml"))
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, PATH=f"{FAKES}:{os.environ['PATH']}",
               MONGOMOCK_SERVERSTORE_FILE=str(proj / "launchpad_store.json"),
               FAKE_QUEUE_LOG=str(tmp_path / "qlog"))
    qdir = tmp_path / "q"
    qdir.mkdir()
    qlaunch = Path(sys.executable).parent / "qlaunch"
    r = subprocess.run([str(qlaunch), "-l", str(proj / "my_launchpad.yaml"), "-w",
                        str(proj / "my_fworker.yaml"), "-q", str(qa), "singleshot"],
                       cwd=qdir, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    script = (tmp_path / "qlog.script").read_text()
    assert f"{directive}" in script
    assert "rlaunch -l" in script and "singleshot" in script
    if scheduler == "slurm":
        assert "#SBATCH --nodes=2" in script and "#SBATCH --time=12:00:00" in script
        assert "#SBATCH --ntasks-per-node=16" in script and "#SBATCH --partition=regular" in script
    else:
        assert "#PBS -l nodes=2:ppn=16" in script and "#PBS -l walltime=12:00:00" in script
        assert "#PBS -q regular" in script


def test_mongodb_credentials_never_logged(tmp_path):
    lp = tmp_path / "my_launchpad.yaml"
    lp.write_text(yaml.safe_dump({"host": "mongodb://alice:s3cretpw@127.0.0.1:9/fw",
                                  "name": "fw", "uri_mode": True,
                                  "mongoclient_kwargs": {"serverSelectionTimeoutMS": 300}}))
    r = cli("campaign", "status", "--launchpad", str(lp), "--project", str(tmp_path / "p"))
    assert r.returncode == 2 and "cannot reach MongoDB" in r.stderr
    assert "s3cretpw" not in r.stderr + r.stdout and "***" in r.stderr


MONGO_URI = os.environ.get("PEROVDEFECT_TEST_MONGODB_URI")


@pytest.mark.skipif(not MONGO_URI, reason="no MongoDB server here: set "
                    "PEROVDEFECT_TEST_MONGODB_URI=mongodb://host:port/db to run against one")
@needs_gpaw
@pytest.mark.slow
def test_mongodb_launchpad_campaign(tmp_path):
    db = f"perovdefect_test_{os.getpid()}"
    lp = write_yaml(tmp_path / "lp.yaml", {"host": MONGO_URI, "uri_mode": True, "name": db})
    subprocess.run([str(Path(sys.executable).parent / "lpad"), "-l", str(lp), "reset",
                    "--password", time.strftime("%Y-%m-%d")], check=True)
    camp = write_yaml(tmp_path / "c.yaml", GPAW_CAMPAIGN)
    common = ("--project", str(tmp_path / "proj"), "--launchpad", str(lp))
    assert cli("campaign", "submit", str(camp), *common).returncode == 0
    assert cli("campaign", "run", *common).returncode == 0
    status = json.loads(cli("campaign", "status", *common, "--json").stdout)
    assert status["states"] == {"COMPLETED": 4}


def test_campaign_wall_time_counts_each_run_directory_once():
    """A resubmitted campaign lists a shared run directory once per workflow: its wall time
    counts once; steps without a record (unfinished, or older) add nothing."""
    from perovdefect.workflows.table import CampaignTable, StepRow
    row = {"campaign": "c", "model": "m", "label": "V_Br_q0", "role": "defect", "charge": 0,
           "step": "relax", "state": "COMPLETED"}
    table = CampaignTable(project="p", steps=[
        StepRow(**row, fw_id=1, run_dir="/r/a", wall_time_s=100.0),
        StepRow(**row, fw_id=7, run_dir="/r/a", wall_time_s=100.0),  # the resubmitted one
        StepRow(**row, fw_id=2, run_dir="/r/b", wall_time_s=50.0),
        StepRow(**{**row, "state": "READY"}, fw_id=3, run_dir="/r/c")])
    assert table.step_wall_times() == {"/r/a": 100.0, "/r/b": 50.0}
    assert table.wall_time_s() == pytest.approx(150.0)
