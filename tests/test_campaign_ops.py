"""Issue 13, campaign operations: lost-run reruns, atomic submission, CLI validation, MongoDB.

What is real and what stands in: FireWorks (LaunchPad, rlaunch, Rocket, detect_lostruns) is the
real one throughout. The cheap Fireworks here are FireWorks' own ScriptTask (shell one-liners
writing to a log) carrying perovdefect's `spec._perovdefect` labels, so no DFT code runs.
MongoDB: no server package is installable here. Two servers are used when available:
`PEROVDEFECT_TEST_MONGODB_URI` (a real MongoDB, the reference) and briskdb (a PyPI beta with a
MongoDB-wire listener, started per session on a free local port). briskdb 0.1.0b3 speaks an older
handshake than the pymongo installed here (it rejects the `backpressure` hello field pymongo >= 4.20
sends and reports wire version 8 where pymongo now needs 9), so its fixture puts a small proxy in
front that drops that one field and reports 9; everything else passes through unchanged. It has
no `$lookup` aggregation: FireWorks' detect_lostruns finds lost launches with plain queries, then
runs one `$lookup` pipeline to list *inconsistent* Fireworks (RUNNING with a finished launch),
which briskdb refuses. The kill -9 test first checks that perovdefect says so in one line, then
continues with that one pipeline answered empty (a sitecustomize shim on PYTHONPATH of the CLI
processes, briskdb only); the lost-run detection itself runs for real. The same rerun logic is
also tested on FireWorks' LaunchPad API over mongomock, with a genuinely running Rocket
(pinging) beside a lost launch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from fireworks import Firework, FWorker, LaunchPad, ScriptTask, Workflow

from perovdefect.errors import CampaignError
from perovdefect.workflows import campaign as ops
from tests.conftest import run_cli

BIN = Path(sys.executable).parent
MONGO_URI = os.environ.get("PEROVDEFECT_TEST_MONGODB_URI")


# ------------------------------------------------------------------------------------ helpers

def cheap_fw(name: str, script: str, label: str = "host", step: str = "pbe") -> Firework:
    """A FireWorks ScriptTask Firework labelled like one of perovdefect's ladder steps."""
    info = {"campaign": "ops", "model": name, "label": label, "role": "host", "charge": 0,
            "step": step, "key": f"ops/{name}"}
    return Firework(ScriptTask.from_str(script), name=f"ops/{name}/{label}/{step}",
                    spec={"_perovdefect": info})


def logged_script(name: str, log: Path, seconds: float | str) -> str:
    """Shell: 'start NAME', sleep, 'end NAME' appended to `log` (counts executions)."""
    return f"echo start {name} >> {log}; sleep {seconds}; echo end {name} >> {log}"


def log_counts(log: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for line in log.read_text().split("\n") if log.exists() else []:
        if line.strip():
            what, name = line.split()
            counts.setdefault(name, {"start": 0, "end": 0})[what] += 1
    return counts


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code != 0, exactly one non-empty stderr line naming `needles`, no traceback."""
    assert r.returncode != 0, r.stdout
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """`perovdefect ARGS` through click's CliRunner (fast; for argument checks only)."""
    from click.testing import CliRunner

    from perovdefect.cli.main import main
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return subprocess.CompletedProcess(list(args), r.exit_code, r.stdout, r.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ------------------------------------------------------------------------------------ durations

@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("30m", 1800),
                                          ("4h", 14400), ("2d", 172800), ("1.5h", 5400),
                                          (" 4H ", 14400), (7.5, 7.5)])
def test_parse_duration(text, seconds):
    assert ops.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "4x", "1h30m", "h", "4 h", "1e3",
                                  "four hours", "nan"])
def test_parse_duration_is_strict(text):
    with pytest.raises(CampaignError, match="invalid duration"):
        ops.parse_duration(text)


# ------------------------------------------------------------------------------------ CLI errors

@pytest.mark.parametrize("command", ["status", "run", "collect", "rerun"])
def test_commands_outside_a_project_say_so_and_create_nothing(tmp_path, command):
    r = run_cli("campaign", command, cwd=tmp_path)
    assert_one_line_error(r, "not a perovdefect project folder", "perovdefect-project",
                          "campaign submit")
    assert tree(tmp_path) == set()  # nothing created


def test_bad_argument_from_the_command_line(tmp_path):
    """The same one-line error from the installed command (a new process)."""
    r = run_cli("campaign", "rerun", "--lost-after", "4 hours", cwd=tmp_path)
    assert_one_line_error(r, "--lost-after", "4 hours", "invalid duration")
    assert r.returncode == 2 and tree(tmp_path) == set()


def _bad_cases(tmp: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    camp = write_yaml(tmp / "c.yaml", {"name": "x", "code": "vasp",
                                       "models": [{"model": "cluster"}]})
    lp = write_yaml(tmp / "lp.yaml", {"host": "localhost", "name": "fw"})
    fw = write_yaml(tmp / "fw.yaml", {"name": "w"})
    (tmp / "results.json").write_text("{}")
    (tmp / "my_qadapter.yaml").write_text("keep: me\n")
    (tmp / "a_file").write_text("")
    q = ["qadapter", str(camp)]
    return [
        (["run", "--nlaunches", "-1"], ("--nlaunches", "-1")),
        (["run", "--nlaunches", "many"], ("--nlaunches", "many")),
        (["status", "--lost-after", "4x"], ("--lost-after", "4x")),
        (["rerun", "--lost-after", "0"], ("--lost-after", "0")),
        (["rerun", "--lost-after", "1h30m"], ("--lost-after", "1h30m")),
        (["rerun", "--reserved-after", "-2d"], ("--reserved-after",)),
        (["run", "--fworker", "missing_fw.yaml"], ("--fworker", "missing_fw.yaml")),
        (["status", "--launchpad", "missing_lp.yaml"], ("--launchpad", "missing_lp.yaml")),
        (["status", "--project", "a_file"], ("--project", "a_file")),
        (["submit", "missing_campaign.yaml"], ("CAMPAIGN_FILE", "missing_campaign.yaml")),
        (["submit"], ("CAMPAIGN_FILE",)),
        (q + ["--launchpad", "nolp.yaml", "--fworker", str(fw)], ("--launchpad", "nolp.yaml")),
        (q + ["--launchpad", str(lp), "--fworker", "nofw.yaml"], ("--fworker", "nofw.yaml")),
        (q + ["--launchpad", str(lp)], ("--fworker",)),
        (q + ["--launchpad", str(lp), "--fworker", str(fw), "--scheduler", "lsf"],
         ("--scheduler", "lsf")),
        (q + ["--launchpad", str(lp), "--fworker", str(fw)], ("my_qadapter.yaml", "--force")),
        (["collect", "-o", "results.json"], ("results.json", "--force")),
        (["collect", "-o", "nodir/r.json"], ("nodir",)),
    ]


def test_bad_arguments_are_one_line_errors_and_change_nothing(tmp_path, monkeypatch):
    cases = _bad_cases(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    for args, needles in cases:
        r = cli_in_process("campaign", *args)
        assert_one_line_error(r, *needles)
        assert r.returncode == 2, (args, r.stderr)
        assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before, args


def test_outputs_are_replaced_only_with_force(tmp_path):
    lp = write_yaml(tmp_path / "lp.yaml", {"host": "localhost", "name": "fw"})
    fw = write_yaml(tmp_path / "fw.yaml", {"name": "w"})
    from perovdefect.workflows.spec import Resources
    from perovdefect.workflows.queue import write_qadapter
    out = tmp_path / "q.yaml"
    out.write_text("keep: me\n")
    with pytest.raises(CampaignError, match="exists; not overwritten without `force`"):
        write_qadapter(Resources(), "slurm", out, lp, fw)
    assert out.read_text() == "keep: me\n"
    write_qadapter(Resources(nodes=2), "pbs", out, lp, fw, force=True)
    q = yaml.safe_load(out.read_text())
    assert q["_fw_q_type"] == "PBS" and q["nnodes"] == 2
    assert f"-l {lp.resolve()} -w {fw.resolve()}" in q["rocket_launch"]  # absolute: jobs cd
    for missing in ("lp", "fw"):
        args = {"lp": lp, "fw": fw, missing: tmp_path / f"no_{missing}.yaml"}
        with pytest.raises(CampaignError, match=f"no_{missing}.yaml: no such"):
            write_qadapter(Resources(), "slurm", tmp_path / "new.yaml", args["lp"], args["fw"])


@pytest.mark.parametrize("mode", ["uri", "host"])
def test_unreachable_mongodb_fails_fast_naming_the_host(tmp_path, mode):
    port = free_port()  # closed again: nothing listens there
    if mode == "uri":
        lp = {"host": f"mongodb://bob:hunter2pw@127.0.0.1:{port}/fw", "uri_mode": True,
              "name": "fw"}
        where = f"127.0.0.1:{port}"
    else:
        lp = {"host": "127.0.0.1", "port": port, "name": "fwdb", "username": "bob",
              "password": "hunter2pw"}
        where = f"127.0.0.1:{port}/fwdb"
    path = write_yaml(tmp_path / "lp.yaml", lp)  # no timeouts given: perovdefect's apply
    camp = write_yaml(tmp_path / "c.yaml", {"name": "x", "code": "vasp",
                                            "models": [{"model": "cluster"}]})
    commands = ([["status"], ["submit", str(camp)]] if mode == "uri" else
                [["rerun", "--no-run"], ["collect", "-o", "r.json"]])
    for args in commands:
        t = time.perf_counter()
        r = run_cli("campaign", *args, "--launchpad", str(path), "--project",
                    str(tmp_path / "p"), cwd=tmp_path)
        # pymongo alone would wait 30 s; 20 s leaves room for a loaded machine (parallel tests)
        assert time.perf_counter() - t < 20, args
        line = assert_one_line_error(r, "lp.yaml", "cannot reach MongoDB", where)
        assert "hunter2pw" not in r.stderr + r.stdout and "bob" not in line, line
        assert not (tmp_path / "p").exists() and not (tmp_path / "r.json").exists()


# ------------------------------------------------------------------------------------ submit

def test_submit_is_atomic_when_the_last_model_fails_to_build(tmp_path, monkeypatch):
    """Every model is built before anything is added: a failure in the last one names it and
    leaves no workflow (and no project folder) behind; fixing it submits all."""
    good = {"compound": "Cs4PbBr6", "model": "cluster", "cluster": "pbbr6-octahedron",
            "charges": [0]}
    bad = {"compound": "Cs4PbBr6", "model": "cluster", "cluster": "crystal-cutout",
           "radius_A": 0.5, "charges": [0]}  # valid YAML, but no Br site within 0.5 A
    camp = write_yaml(tmp_path / "c.yaml", {"name": "atomic", "code": "vasp",
                                            "models": [good, bad]})
    proj = tmp_path / "proj"
    r = run_cli("campaign", "submit", str(camp), "--project", str(proj))
    assert_one_line_error(r, "c.yaml", "model 2", "crystal-cutout-r0.5", "nothing was submitted")
    assert not proj.exists()
    # an existing project: still nothing added, status unchanged
    from perovdefect.workflows import builder
    real = builder.model_workflow
    calls = []

    def fail_last(spec, model, runs_root):
        calls.append(model.label)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(spec, model, runs_root)

    other = write_yaml(tmp_path / "o.yaml", {"name": "first", "code": "vasp", "models": [good]})
    ops.submit(other, proj)
    three = write_yaml(tmp_path / "t.yaml", {"name": "three", "code": "vasp", "models": [
        good, dict(good, cluster="cs4pbbr6-molecule"), dict(good, compound="Cs4PbBr6",
                                                            cluster="crystal-cutout")]})
    monkeypatch.setattr(builder, "model_workflow", fail_last)
    before = ops.status(proj)
    with pytest.raises(CampaignError, match=r"t.yaml: model 3 .*RuntimeError: disk full.*nothing"):
        ops.submit(three, proj)
    assert ops.status(proj) == before and before["total"] > 0
    monkeypatch.setattr(builder, "model_workflow", real)
    out = ops.submit(three, proj)
    assert len(out["added"]) == 3
    assert ops.status(proj)["total"] == before["total"] + out["fireworks_added"]


def test_duplicate_model_labels_are_refused(tmp_path):
    m = {"compound": "Cs4PbBr6", "model": "cluster", "cluster": "pbbr6-octahedron"}
    camp = write_yaml(tmp_path / "c.yaml", {"name": "dup", "code": "vasp", "models": [
        dict(m, padding_A=4.0), dict(m, padding_A=5.0)]})
    r = run_cli("campaign", "submit", str(camp), "--project", str(tmp_path / "p"))
    assert_one_line_error(r, "models 1 and 2", "same label")
    assert not (tmp_path / "p").exists()


# ------------------------------------------------------------------------------------ embedded

def embedded_project(tmp_path: Path, n: int = 3) -> tuple[Path, list[int]]:
    """A project whose embedded LaunchPad holds `n` one-Firework workflows."""
    from perovdefect.workflows.store import embedded_launchpad
    proj = tmp_path / "proj"
    with embedded_launchpad(proj, create=True) as lpad:
        for i in range(n):
            lpad.add_wf(Workflow([cheap_fw(f"m{i}", "true")]))
        ids = sorted(lpad.get_fw_ids())
    return proj, ids


def test_store_is_read_back_as_mongomock_persistence_reads_it(tmp_path):
    """perovdefect reads the embedded store itself (faster, no exit-time writer): the documents
    must be exactly those mongomock-persistence (the `rlaunch` child) reads from the file."""
    import bson.json_util

    from perovdefect.workflows.store import _load_store, embedded_launchpad
    proj, ids = embedded_project(tmp_path)
    with embedded_launchpad(proj) as lpad:
        lpad.checkout_fw(FWorker(), str(tmp_path), fw_id=ids[0])  # launches: dates, ObjectIds
    path = proj / "launchpad_store.json"
    store = _load_store(path)
    theirs = bson.json_util.loads(path.read_text())  # mongomock-persistence's own reader
    for name, db in theirs.items():
        for coll, data in db.items():
            mine = store[name][coll]._documents
            assert dict(data["documents"]) == dict(mine), (name, coll)
    assert len(store["perovdefect"]["launches"]._documents) == 1
    assert json.loads(bson.json_util.dumps(store.to_dict())) == json.loads(path.read_text())
    assert store._finalizer is None  # written by flush() only
    path.write_text('{"perovdefect": ')
    r = run_cli("campaign", "status", "--project", str(proj))
    assert_one_line_error(r, "launchpad_store.json", "corrupt embedded store")


def test_embedded_status_shows_and_rerun_resets_what_a_killed_worker_left(tmp_path):
    from perovdefect.workflows.store import embedded_launchpad
    proj, (running, fizzled, reserved) = embedded_project(tmp_path)
    with embedded_launchpad(proj) as lpad:  # what a kill -9'd rlaunch leaves behind
        lpad.checkout_fw(FWorker(), str(tmp_path), fw_id=running)
        _, lid = lpad.checkout_fw(FWorker(), str(tmp_path), fw_id=fizzled)
        lpad.mark_fizzled(lid)
        lpad.reserve_fw(FWorker(), str(tmp_path), fw_id=reserved)
    r = run_cli("campaign", "status", "--project", str(proj), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["states"] == {"RUNNING": 1, "FIZZLED": 1, "RESERVED": 1}
    assert sorted(f["fw_id"] for f in out["suspected_lost"]) == [running, reserved]
    text = run_cli("campaign", "status", "--project", str(proj)).stdout
    assert "suspected lost" in text and f"fw {running} ops/m0/host/pbe (RUNNING" in text
    r = run_cli("campaign", "rerun", "--project", str(proj), "--no-run", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["rerun_fizzled"], out["rerun_lost"], out["rerun_unreserved"],
            out["left_alone"]) == ([fizzled], [running], [reserved], [])
    out = json.loads(run_cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert out["states"] == {"READY": 3} and out["suspected_lost"] == []


# ------------------------------------------------------------------------------------ rerun logic

@pytest.fixture
def mongomock_lpad(monkeypatch):
    """FireWorks' LaunchPad on an in-memory mongomock client (one process, shared by threads)."""
    import mongomock
    import mongomock_persistence  # noqa: F401  patches mongomock's store; unset file = memory
    from fireworks.core import launchpad as lp_module
    monkeypatch.delenv("MONGOMOCK_SERVERSTORE_FILE", raising=False)
    monkeypatch.setattr(lp_module, "MongoClient", mongomock.MongoClient)
    lpad = LaunchPad(host="localhost", name=f"t{uuid.uuid4().hex[:8]}", strm_lvl="ERROR")
    lpad.reset("", require_password=False)
    return lpad


def test_rerun_resets_only_lost_runs_beside_a_live_rocket(tmp_path, mongomock_lpad,
                                                           monkeypatch):
    """FireWorks' API throughout: a Rocket running in a thread pings its launch every 0.2 s;
    another launch was checked out by a worker that died (no pings since); a reservation went
    stale while a fresh one was made later. With --lost-after 2 s only the dead worker's
    Firework and the stale reservation are reset (plus the FIZZLED one); the live one finishes
    and runs once."""
    from fireworks.core import rocket
    from fireworks.core.rocket_launcher import launch_rocket
    lpad = mongomock_lpad
    monkeypatch.setattr(rocket, "PING_TIME_SECS", 0.2)
    monkeypatch.chdir(tmp_path)
    log, stop = tmp_path / "log", tmp_path / "stop"
    live_script = f"echo start live >> {log}; while [ ! -f {stop} ]; do sleep 0.1; done; " \
                  f"echo end live >> {log}"
    names = ["live", "lost", "fizzled", "stale_res", "fresh_res"]
    for name in names:
        lpad.add_wf(Workflow([cheap_fw(name, live_script if name == "live" else "true")]))
    ids = {lpad.fireworks.find_one({"name": f"ops/{n}/host/pbe"})["fw_id"]: n for n in names}
    fw = {n: i for i, n in ids.items()}
    lpad.checkout_fw(FWorker(name="dead"), str(tmp_path), fw_id=fw["lost"])
    _, lid = lpad.checkout_fw(FWorker(), str(tmp_path), fw_id=fw["fizzled"])
    lpad.mark_fizzled(lid)
    lpad.reserve_fw(FWorker(name="queue"), str(tmp_path), fw_id=fw["stale_res"])
    worker = threading.Thread(target=launch_rocket, args=(lpad, FWorker(name="alive")),
                              kwargs={"fw_id": fw["live"], "strm_lvl": "ERROR"})
    worker.start()
    try:
        deadline = time.time() + 30
        while lpad.get_fw_by_id(fw["live"]).state != "RUNNING" and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)
        lpad.reserve_fw(FWorker(name="queue"), str(tmp_path), fw_id=fw["fresh_res"])
        found = ops.find_lost(lpad, False, 2.0, 2.0)
        assert (found["lost"], found["unreserved"]) == ([fw["lost"]], [fw["stale_res"]])
        assert sorted(found["left_alone"]) == sorted([fw["live"], fw["fresh_res"]])
        out = ops.reset_on(lpad, embedded=False, lost_after_s=2.0, reserved_after_s=2.0)
    finally:
        stop.write_text("")
        worker.join(60)
    assert (out["rerun_fizzled"], out["rerun_lost"], out["rerun_unreserved"]) == \
        ([fw["fizzled"]], [fw["lost"]], [fw["stale_res"]])
    assert sorted(f["fw_id"] for f in out["left_alone"]) == sorted([fw["live"],
                                                                     fw["fresh_res"]])
    live = next(f for f in out["left_alone"] if f["fw_id"] == fw["live"])
    assert live["state"] == "RUNNING" and live["last_update"]
    states = {n: lpad.get_fw_by_id(i).state for i, n in ids.items()}
    assert states == {"live": "COMPLETED", "lost": "READY", "fizzled": "READY",
                      "stale_res": "READY", "fresh_res": "RESERVED"}
    assert log_counts(log) == {"live": {"start": 1, "end": 1}}
    # the embedded store's rule: under its lock nothing can run, so RUNNING/RESERVED = lost
    lpad.checkout_fw(FWorker(), str(tmp_path), fw_id=fw["lost"])
    everything = ops.find_lost(lpad, True, 1e9, 1e9)
    assert (everything["lost"], everything["unreserved"]) == ([fw["lost"]], [fw["fresh_res"]])


# ------------------------------------------------------------------------------------ MongoDB

BRISKDB_SERVER = r'''
"""briskdb Mongo listener behind a handshake proxy (see tests/test_campaign_ops.py)."""
import asyncio, os, signal, struct, sys
import briskdb

BACKPRESSURE = b"\x02backpressure\x00" + struct.pack("<i", 2) + b"2\x00"
WIRE8 = b"\x10maxWireVersion\x00" + struct.pack("<i", 8)
WIRE9 = b"\x10maxWireVersion\x00" + struct.pack("<i", 9)


def to_server(msg):
    """Drop the hello command's `backpressure` field (OP_MSG body or OP_QUERY query)."""
    if BACKPRESSURE not in msg:
        return msg
    op = struct.unpack_from("<i", msg, 12)[0]
    if op == 2013:
        doc = 21
    elif op == 2004:
        doc = msg.index(b"\x00", 20) + 9
    else:
        return msg
    at, size = msg.find(BACKPRESSURE, doc), struct.unpack_from("<i", msg, doc)[0]
    if not doc < at < doc + size:
        return msg
    out = bytearray(msg[:at] + msg[at + len(BACKPRESSURE):])
    struct.pack_into("<i", out, 0, len(out))
    struct.pack_into("<i", out, doc, size - len(BACKPRESSURE))
    return bytes(out)


def to_client(msg):
    return msg.replace(WIRE8, WIRE9, 1) if WIRE8 in msg else msg


async def pump(reader, writer, fix):
    try:
        while True:
            head = await reader.readexactly(4)
            msg = head + await reader.readexactly(struct.unpack("<i", head)[0] - 4)
            writer.write(fix(msg))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(folder, port):
    db = briskdb.open(folder, shards=2, documents=True)
    server = db.serve(mongo="127.0.0.1:0", http="127.0.0.1:0", admin=None)
    host, inner = server.mongo_address.rsplit(":", 1)

    async def handle(cr, cw):
        sr, sw = await asyncio.open_connection(host, int(inner))
        await asyncio.gather(pump(cr, sw, to_server), pump(sr, cw, to_client))

    proxy = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    parent = os.getppid()

    async def orphaned():  # pytest itself was killed: do not outlive it
        while os.getppid() == parent:
            await asyncio.sleep(1)
        stop.set()

    watch = asyncio.ensure_future(orphaned())
    print("ready", flush=True)
    async with proxy:
        await stop.wait()
    watch.cancel()
    server.close()
    db.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
'''


NO_LOOKUP_SHIM = """
# briskdb has no $lookup: answer FireWorks' inconsistent-Firework pipeline (detect_lostruns'
# last step) with no documents. Test processes only; see tests/test_campaign_ops.py.
from pymongo.synchronous.collection import Collection
_aggregate = Collection.aggregate


def aggregate(self, pipeline, *args, **kwargs):
    if any("$lookup" in stage for stage in pipeline):
        return iter([])
    return _aggregate(self, pipeline, *args, **kwargs)


Collection.aggregate = aggregate
"""


@pytest.fixture(scope="session", params=["mongodb", "briskdb"])
def mongo_server(request, tmp_path_factory):
    """(kind, URI without database, environment for CLI processes that detect lost runs)."""
    if request.param == "mongodb":
        if not MONGO_URI:
            pytest.skip("no MongoDB server here: set PEROVDEFECT_TEST_MONGODB_URI="
                        "mongodb://host:port to run against one")
        yield "mongodb", MONGO_URI.rstrip("/"), {}
        return
    pytest.importorskip("briskdb", reason="briskdb is not installed (pip install briskdb)")
    folder = tmp_path_factory.mktemp("briskdb")
    port = free_port()
    script = folder / "server.py"
    script.write_text(BRISKDB_SERVER)
    errlog = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(script), str(folder / "data"), str(port)],
                            stdout=subprocess.PIPE, stderr=errlog, text=True,
                            start_new_session=True)
    ready = proc.stdout.readline().strip() == "ready"
    if not ready:
        proc.kill()
        proc.wait()
        errlog.close()
        pytest.skip(f"briskdb did not start: {(folder / 'server.log').read_text()[-500:]}")
    shim = folder / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_LOOKUP_SHIM)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
    yield "briskdb", f"mongodb://127.0.0.1:{port}", {"PYTHONPATH": path}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    errlog.close()


@pytest.fixture
def mongo_lp(mongo_server, tmp_path):
    """A fresh, reset LaunchPad database on the session's server: (kind, my_launchpad.yaml,
    environment for lost-run detection)."""
    kind, uri, env = mongo_server
    db = f"perovdefect_test_{uuid.uuid4().hex[:10]}"
    lp = write_yaml(tmp_path / "my_launchpad.yaml", {
        "host": f"{uri}/{db}", "uri_mode": True, "name": db, "strm_lvl": "ERROR",
        "mongoclient_kwargs": {"serverSelectionTimeoutMS": 5000}})
    lpad = LaunchPad.from_file(str(lp))
    lpad.reset("", require_password=False)
    lpad.connection.close()
    yield kind, lp, env
    if kind == "mongodb":
        lpad = LaunchPad.from_file(str(lp))
        lpad.connection.drop_database(db)
        lpad.connection.close()


def add_fws(lp: Path, fws: list[Firework]) -> dict[str, int]:
    lpad = LaunchPad.from_file(str(lp))
    try:
        for fw in fws:
            lpad.add_wf(Workflow([fw]))
        return {d["name"].split("/")[1]: d["fw_id"]
                for d in lpad.fireworks.find({}, {"name": 1, "fw_id": 1})}
    finally:
        lpad.connection.close()


@pytest.fixture
def workers():
    """Worker processes started by a test; any still running at its end are killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_worker(lp: Path, folder: Path, fw_config: Path,
                 procs: list[subprocess.Popen]) -> subprocess.Popen:
    """FireWorks' `rlaunch rapidfire` in `folder`, in its own process group (kill -9 able)."""
    folder.mkdir(exist_ok=True)
    env = dict(os.environ, FW_CONFIG_FILE=str(fw_config))
    cmd = [str(BIN / "rlaunch"), "-l", str(lp), "--loglvl", "ERROR", "rapidfire",
           "--nlaunches", "0", "--sleep", "1"]
    procs.append(subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True))
    return procs[-1]


@pytest.fixture
def fw_config(tmp_path) -> Path:
    """FW_config.yaml for the workers: ping the LaunchPad every second."""
    return write_yaml(tmp_path / "FW_config.yaml", {"PING_TIME_SECS": 1})


def running_in(lp: Path, folder: Path) -> list[int]:
    lpad = LaunchPad.from_file(str(lp))
    try:
        return [d["fw_id"] for d in lpad.launches.find({"state": "RUNNING"},
                                                       {"fw_id": 1, "launch_dir": 1})
                if str(d["launch_dir"]).startswith(str(folder.resolve()))]
    finally:
        lpad.connection.close()


@pytest.mark.slow
def test_two_rlaunch_workers_run_each_firework_exactly_once(mongo_lp, tmp_path, fw_config,
                                                            workers):
    kind, lp, _ = mongo_lp
    log = tmp_path / "log"
    ids = add_fws(lp, [cheap_fw(f"s{i}", logged_script(f"s{i}", log, 0.3)) for i in range(10)])
    for k in (1, 2):
        start_worker(lp, tmp_path / f"w{k}", fw_config, workers)
    for w in workers:
        _, err = w.communicate(timeout=180)
        assert w.returncode == 0, err[-2000:]
    assert log_counts(log) == {name: {"start": 1, "end": 1} for name in ids}
    for k in (1, 2):  # both took part
        assert any((tmp_path / f"w{k}").glob("launcher_*")), f"worker {k} launched nothing"
    r = run_cli("campaign", "status", "--launchpad", str(lp), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["states"] == {"COMPLETED": 10} and out["suspected_lost"] == []


@pytest.mark.slow
def test_kill9_worker_then_rerun_resets_only_the_lost_one(mongo_lp, tmp_path, fw_config,
                                                          workers):
    """Two workers each run a long Firework; one is killed with SIGKILL mid-task. After
    --lost-after 3s (the live worker pings every second) status names only the dead worker's
    Firework and `rerun --no-run` resets only it; a new worker then completes it, and nothing
    that finished ran twice."""
    kind, lp, lost_env = mongo_lp
    log = tmp_path / "log"
    quick = tmp_path / "quick"  # made after the kill: the rerun need not wait 40 s again
    add_fws(lp, [cheap_fw(n, logged_script(n, log, f"$([ -f {quick} ] && echo 0 || echo 40)"))
                 for n in ("a", "b")])
    w1 = start_worker(lp, tmp_path / "w1", fw_config, workers)
    deadline = time.time() + 60
    while not running_in(lp, tmp_path / "w1") and time.time() < deadline:
        time.sleep(0.2)
    w2 = start_worker(lp, tmp_path / "w2", fw_config, workers)
    while not running_in(lp, tmp_path / "w2") and time.time() < deadline:
        time.sleep(0.2)
    (alive,), (dead,) = running_in(lp, tmp_path / "w1"), running_in(lp, tmp_path / "w2")
    while len(log_counts(log)) < 2 and time.time() < deadline:  # both tasks have started
        time.sleep(0.1)
    os.killpg(w2.pid, signal.SIGKILL)  # kill -9 the worker and its task, mid-task
    w2.wait()
    time.sleep(4.5)
    common = ("--launchpad", str(lp), "--lost-after", "3s")
    r = run_cli("campaign", "status", *common, "--json")
    assert "shorter than FireWorks' ping interval" in r.stderr  # this process: 1 h
    env = {"FW_CONFIG_FILE": str(fw_config)}  # the workers' ping interval: 1 s
    if kind == "briskdb":
        r = run_cli("campaign", "status", *common, "--json", env=env)
        assert_one_line_error(r, "detect_lostruns", "127.0.0.1", "unsupported")
        env.update(lost_env)  # from here on: its $lookup step answered empty (module doc)
    r = run_cli("campaign", "status", *common, "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert [f["fw_id"] for f in json.loads(r.stdout)["suspected_lost"]] == [dead]
    r = run_cli("campaign", "rerun", *common, "--no-run", "--json", env=env)
    assert r.returncode == 0 and not r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["rerun_lost"] == [dead] and out["rerun_fizzled"] == []
    assert [f["fw_id"] for f in out["left_alone"]] == [alive]
    text = run_cli("campaign", "rerun", *common, "--no-run", env=env).stdout
    assert "left alone 1" in text and f"fw {alive}" in text
    quick.write_text("")
    _, err = w1.communicate(timeout=120)
    assert w1.returncode == 0, err[-2000:]
    w3 = start_worker(lp, tmp_path / "w3", fw_config, workers)
    _, err = w3.communicate(timeout=120)
    assert w3.returncode == 0, err[-2000:]
    out = json.loads(run_cli("campaign", "status", "--launchpad", str(lp), "--json").stdout)
    assert out["states"] == {"COMPLETED": 2}
    counts = log_counts(log)
    assert all(c["end"] == 1 for c in counts.values()), counts  # each finished once
    names = {v: k for k, v in add_fws(lp, []).items()}
    assert counts[names[alive]]["start"] == 1 and counts[names[dead]]["start"] == 2
