"""The embedded (no-server) LaunchPad: FireWorks on its mongomock-persistence store in a
project folder, made safe for one process at a time.

Measured here: mongomock-persistence reads its JSON file when a client is created and writes it
only when that client is garbage-collected or the process exits, with no lock; two workers at
once ran every Firework twice and lost half of the records. So every perovdefect command that
touches the embedded store holds an exclusive lock (fcntl.flock on PROJECT/launchpad.lock); a
second one fails at once. In-process use flushes the store atomically (temp file + rename) and
detaches the library's exit-time writer, so a stale copy can never overwrite newer state.
Workers (`rlaunch`) run as a child process of the lock holder; every finished step also writes
its result to its run directory, so a killed worker loses no computed result.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from perovdefect.errors import CampaignError

STORE_FILE = "launchpad_store.json"
LOCK_FILE = "launchpad.lock"
DB_NAME = "perovdefect"


def project_paths(project: str | Path) -> dict[str, Path]:
    root = Path(project).resolve()
    return {"root": root, "store": root / STORE_FILE, "lock": root / LOCK_FILE,
            "launchpad_yaml": root / "my_launchpad.yaml", "fworker_yaml": root / "my_fworker.yaml",
            "runs": root / "runs", "launches": root / "launches"}


def init_project(project: str | Path) -> dict[str, Path]:
    """Create the project folder, an empty store, and FireWorks config files for the embedded
    LaunchPad (used by the `rlaunch` child)."""
    import yaml
    paths = project_paths(project)
    paths["root"].mkdir(parents=True, exist_ok=True)
    for key in ("runs", "launches"):
        paths[key].mkdir(exist_ok=True)
    if not paths["store"].exists():
        paths["store"].write_text("{}")
    if not paths["launchpad_yaml"].exists():
        paths["launchpad_yaml"].write_text(yaml.safe_dump(
            {"host": "localhost", "port": 27017, "name": DB_NAME, "logdir": None,
             "strm_lvl": "WARNING"}))
    if not paths["fworker_yaml"].exists():
        paths["fworker_yaml"].write_text(yaml.safe_dump(
            {"name": "perovdefect-embedded", "category": "", "query": "{}",
             "env": {"gpaw_cores": None, "vasp_cmd": "vasp_std", "vasp_ncl_cmd": "vasp_ncl",
                     "vasp_gam_cmd": "vasp_gam", "pw_cmd": "pw.x"}}))
    return paths


@contextmanager
def project_lock(project: str | Path) -> Iterator[Path]:
    """Exclusive, non-blocking lock on the project's embedded store."""
    paths = init_project(project)
    fh = open(paths["lock"], "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise CampaignError(
            f"the embedded LaunchPad in {paths['root']} is in use by {holder}; its store is not "
            "safe for two processes (runs would be duplicated and records lost). Wait for it to "
            "finish, or use a MongoDB LaunchPad (--launchpad my_launchpad.yaml) for several "
            "workers") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    try:
        yield paths["root"]
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _use_mongomock(store_file: Path) -> None:
    """Point FireWorks at mongomock-persistence for this store, even if fireworks was imported
    before the environment variable was set."""
    os.environ["MONGOMOCK_SERVERSTORE_FILE"] = str(store_file)
    import mongomock.gridfs
    import mongomock_persistence
    from fireworks import fw_config
    from fireworks.core import launchpad as lp_module
    fw_config.MONGOMOCK_SERVERSTORE_FILE = str(store_file)
    lp_module.MongoClient = mongomock_persistence.MongoClient
    mongomock.gridfs.enable_gridfs_integration()  # as fw_config does for the env variable


def flush(lpad) -> None:
    """Write the embedded store atomically and detach the library's exit-time writer."""
    import bson.json_util
    store = lpad.connection._store
    target = Path(store._filename)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(bson.json_util.dumps(store.to_dict()))
    os.replace(tmp, target)
    finalizer = getattr(store, "_finalizer", None)
    if finalizer is not None:
        finalizer.detach()


@contextmanager
def embedded_launchpad(project: str | Path, write: bool = True):
    """LaunchPad on the project's embedded store, under the project lock. The store is flushed
    on exit when `write` (also after an exception, so nothing done is lost)."""
    with project_lock(project) as root:
        with embedded_launchpad_unlocked(project_paths(root), write) as lpad:
            yield lpad


@contextmanager
def embedded_launchpad_unlocked(paths: dict, write: bool = True):
    """The same, for a caller that already holds the project lock."""
    _use_mongomock(paths["store"])
    from fireworks import LaunchPad
    try:
        fresh = not json.loads(paths["store"].read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise CampaignError(f"{paths['store']}: corrupt embedded store ({exc})") from exc
    lpad = LaunchPad(host="localhost", name=DB_NAME, strm_lvl="ERROR")
    if fresh:
        lpad.reset("", require_password=False)  # initialise the new store (fw id counters)
    try:
        yield lpad
    finally:
        if write:
            flush(lpad)
        else:
            finalizer = getattr(lpad.connection._store, "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()


@contextmanager
def open_launchpad(project: str | Path, launchpad_file: str | Path | None = None,
                   write: bool = True):
    """The embedded LaunchPad (default) or a MongoDB one from my_launchpad.yaml."""
    if launchpad_file is None:
        with embedded_launchpad(project, write) as lpad:
            yield lpad
        return
    from fireworks import LaunchPad
    path = Path(launchpad_file)
    if not path.is_file():
        raise CampaignError(f"{path}: no such LaunchPad file")
    try:
        lpad = LaunchPad.from_file(str(path))
    except Exception as exc:  # bad YAML or fields: name the file, never echo credentials
        raise CampaignError(f"{path}: invalid LaunchPad file ({type(exc).__name__}: "
                            f"{redact(str(exc))})") from exc
    try:
        lpad.connection.admin.command("ping")
    except Exception as exc:  # pymongo connection errors
        raise CampaignError(f"{path}: cannot reach MongoDB at {redact(str(lpad.host))} "
                            f"({type(exc).__name__})") from exc
    if lpad.fw_id_assigner.find_one({}) is None:
        raise CampaignError(f"{path}: the LaunchPad database is not initialised; run "
                            f"`lpad -l {path} reset` once")
    yield lpad


def redact(text: str) -> str:
    """Hide credentials in a MongoDB URI or host string (mongodb://user:pass@host)."""
    import re
    return re.sub(r"(mongodb(?:\+srv)?://)[^@/]+@", r"\1***:***@", text)
