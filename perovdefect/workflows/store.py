"""The embedded (no-server) LaunchPad: FireWorks on its mongomock-persistence store in a
project folder, made safe for one process at a time.

Measured here: mongomock-persistence reads its JSON file when a client is created and writes it
only when that client is garbage-collected or the process exits, with no lock; two workers at
once ran every Firework twice and lost half of the records. So every perovdefect command that
touches the embedded store holds an exclusive lock (fcntl.flock on PROJECT/launchpad.lock); a
second one fails at once. In-process, perovdefect reads the store itself (_load_store) and writes
it only through flush() (temp file + fsync + rename), never at exit, so a stale copy can never
overwrite newer state.
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
    """Where a project's store, lock, FireWorks config files and run directories are."""
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


def is_project(project: str | Path) -> bool:
    """Whether `project` is a project folder made by `campaign submit` (it has a store)."""
    return project_paths(project)["store"].is_file()


def require_project(project: str | Path) -> dict[str, Path]:
    """The paths of an existing project folder; a CampaignError (and nothing created) if there is
    none, since only `campaign submit` creates one."""
    paths = project_paths(project)
    if not paths["store"].is_file():
        what = "no such folder" if not paths["root"].exists() else f"no {STORE_FILE} in it"
        raise CampaignError(f"{paths['root']}: not a perovdefect project folder ({what}); "
                            "`perovdefect campaign submit CAMPAIGN.yaml` creates one (or give "
                            "`project`)")
    return paths


@contextmanager
def project_lock(project: str | Path, create: bool = False) -> Iterator[Path]:
    """Exclusive, non-blocking lock on the project's embedded store. Only `create` (submit)
    makes a missing project folder; otherwise a missing one is a CampaignError."""
    paths = init_project(project) if create else require_project(project)
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
            "finish, or use a MongoDB LaunchPad (`launchpad_file`) for several "
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


def _extended_json(d: dict):
    """bson.json_util's decoding of MongoDB extended JSON ({"$oid": ...}, {"$date": ...}),
    applied only to objects whose first key starts with '$' (as every extended-JSON type
    wrapper's does; the others are left as parsed)."""
    for key in d:
        if key[:1] == "$":
            from bson.json_util import object_hook
            return object_hook(d)
        return d
    return d


def _load_store(store_file: Path):
    """mongomock's ServerStore with the project's documents, read from the file that
    mongomock-persistence writes (and the `rlaunch` child reads).

    It is read here rather than by mongomock-persistence's ServerStore.__init__ because (1) its
    bson.json_util.loads runs a Python hook on every JSON object (a 5000-Firework store: 0.8 s
    against 0.25 s), and (2) it registers an exit-time writer, which perovdefect never wants:
    flush() writes the store explicitly and atomically."""
    import mongomock_persistence  # noqa: F401  adds to_dict/from_dict to mongomock's stores
    from mongomock.store import DatabaseStore, ServerStore
    text = store_file.read_text(encoding="utf-8")
    data = json.loads(text, object_hook=_extended_json) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("the store is not a JSON object")
    store = ServerStore.__new__(ServerStore)
    store._filename = str(store_file)
    store._databases = {name: DatabaseStore.from_dict(db) for name, db in data.items()}
    store._finalizer = None
    return store


@contextmanager
def _use_mongomock(store) -> Iterator[None]:
    """FireWorks' LaunchPad gets a mongomock client on `store` while it is created; pymongo is
    restored afterwards, so a MongoDB LaunchPad made later in the same process is a real one."""
    import functools

    import mongomock
    import mongomock.gridfs
    from fireworks.core import launchpad as lp_module
    saved = lp_module.MongoClient
    lp_module.MongoClient = functools.partial(mongomock.MongoClient, _store=store)
    mongomock.gridfs.enable_gridfs_integration()  # as fw_config does for mongomock stores
    try:
        yield
    finally:
        lp_module.MongoClient = saved


def flush(lpad) -> None:
    """Write the embedded store atomically (temp file, fsync, rename). The format is
    mongomock-persistence's own (bson.json_util), which the `rlaunch` child reads."""
    import bson.json_util
    store = lpad.connection._store
    target = Path(store._filename)
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(bson.json_util.dumps(store.to_dict()))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    finalizer = getattr(store, "_finalizer", None)  # a store made by mongomock-persistence
    if finalizer is not None:
        finalizer.detach()


@contextmanager
def embedded_launchpad(project: str | Path, write: bool = True, create: bool = False):
    """LaunchPad on the project's embedded store, under the project lock. The store is flushed
    on exit when `write` (also after an exception, so nothing done is lost). Only `create`
    (submit) makes a new project folder."""
    with project_lock(project, create=create) as root:
        with embedded_launchpad_unlocked(project_paths(root), write) as lpad:
            yield lpad


def _drop_mongomock_indexes(lpad) -> None:
    """LaunchPad.reset builds FireWorks' indexes; mongomock-persistence never saves indexes, so
    a store read back from its file has none, and mongomock checks a unique index by scanning
    every document on each insert (5000 Fireworks: ~40 s). Dropping them right after reset makes
    a new store behave as every reloaded one does. fw_ids stay unique: FireWorks assigns them
    from its counter under the project lock."""
    for name in lpad.db.list_collection_names():
        lpad.db[name].drop_indexes()


@contextmanager
def embedded_launchpad_unlocked(paths: dict, write: bool = True):
    """The same, for a caller that already holds the project lock."""
    from fireworks import LaunchPad
    try:
        store = _load_store(paths["store"])
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise CampaignError(f"{paths['store']}: corrupt embedded store "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from None
    fresh = not store._databases
    with _use_mongomock(store):
        lpad = LaunchPad(host="localhost", name=DB_NAME, strm_lvl="ERROR")
    if fresh:
        lpad.reset("", require_password=False)  # initialise the new store (fw id counters)
        _drop_mongomock_indexes(lpad)
    try:
        yield lpad
    finally:
        if write:
            flush(lpad)


#: pymongo timeouts (ms) used unless my_launchpad.yaml's mongoclient_kwargs sets them: an
#: unreachable server fails in seconds, not after pymongo's 30 s default.
CONNECT_TIMEOUTS_MS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}


def mongo_launchpad(launchpad_file: str | Path):
    """FireWorks LaunchPad from my_launchpad.yaml, checked to be reachable and initialised.

    Every failure is one CampaignError naming the file and the host, never credentials."""
    import yaml
    from fireworks import LaunchPad
    path = Path(launchpad_file)
    if not path.is_file():
        raise CampaignError(f"{path}: no such LaunchPad file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path}: invalid LaunchPad file (bad YAML: "
                            f"{redact(str(getattr(exc, 'problem', exc)))})") from None
    if not isinstance(data, dict):
        raise CampaignError(f"{path}: invalid LaunchPad file (a YAML mapping with host, name, "
                            "... is needed)")
    kwargs = dict(data.get("mongoclient_kwargs") or {})
    for key, value in CONNECT_TIMEOUTS_MS.items():
        kwargs.setdefault(key, value)
    data["mongoclient_kwargs"] = kwargs
    try:
        lpad = LaunchPad.from_dict(data)
    except Exception as exc:  # bad fields: name the file, never echo credentials
        raise CampaignError(f"{path}: invalid LaunchPad file ({type(exc).__name__}: "
                            f"{redact(str(exc))})") from None
    where = describe_host(lpad)
    try:
        lpad.connection.admin.command("ping")
    except Exception as exc:  # pymongo connection errors (timeouts, refused, auth)
        raise CampaignError(f"{path}: cannot reach MongoDB at {where} "
                            f"({type(exc).__name__})") from None
    try:
        initialised = lpad.fw_id_assigner.find_one({}) is not None
    except Exception as exc:  # e.g. not authorised for this database
        raise CampaignError(f"{path}: cannot read the LaunchPad database at {where} "
                            f"({type(exc).__name__}: {redact(str(exc))[:200]})") from None
    if not initialised:
        raise CampaignError(f"{path}: the LaunchPad database at {where} is not initialised; "
                            f"run `lpad -l {path} reset` once")
    return lpad


def describe_host(lpad) -> str:
    """host[:port]/database of a LaunchPad, credentials hidden."""
    host = redact(str(lpad.host))
    if getattr(lpad, "uri_mode", False):
        return host
    return f"{host}:{lpad.port}/{lpad.name}"


@contextmanager
def open_launchpad(project: str | Path, launchpad_file: str | Path | None = None,
                   write: bool = True, create: bool = False):
    """The embedded LaunchPad (default) or a MongoDB one from my_launchpad.yaml. Only `create`
    (submit) makes a new project folder for the embedded store."""
    if launchpad_file is None:
        with embedded_launchpad(project, write, create=create) as lpad:
            yield lpad
        return
    lpad = mongo_launchpad(launchpad_file)
    try:
        yield lpad
    finally:
        lpad.connection.close()


def redact(text: str) -> str:
    """Hide credentials in a MongoDB URI or host string (mongodb://user:pass@host)."""
    import re
    return re.sub(r"(mongodb(?:\+srv)?://)[^@/]+@", r"\1***:***@", text)
