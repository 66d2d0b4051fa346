"""Campaign operations: submit, status, run (rlaunch), rerun, collect.

Default LaunchPad: the embedded store in a project folder (one process at a time, see store.py);
`launchpad_file` switches to MongoDB (my_launchpad.yaml) where many workers may run.

Lost runs. On the embedded store every command holds the project lock, under which no worker
can exist: a RUNNING or RESERVED Firework found there was left by a killed worker, so it is
lost. On MongoDB other workers may be alive anywhere, so only what FireWorks' own lost-run
detection reports is taken for lost: RUNNING launches not pinged for `lost_after` seconds
(LaunchPad.detect_lostruns; rlaunch pings every PING_TIME_SECS, 1 h by default) and RESERVED
ones not updated for `reserved_after` seconds (LaunchPad.detect_unreserved; a queued job may wait
that long). Everything else RUNNING/RESERVED is left alone and reported.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from perovdefect.errors import CampaignError, PerovDefectError
from perovdefect.workflows.tasks import step_kind

if TYPE_CHECKING:  # the table imports every result document: loaded when collect runs
    from perovdefect.workflows.table import CampaignTable
from perovdefect.workflows.store import (init_project, open_launchpad, project_lock,
                                         project_paths, require_project)

DEFAULT_PROJECT = "perovdefect-project"
#: FireWorks' own defaults (fw_config.RUN_EXPIRATION_SECS = 4 x PING_TIME_SECS,
#: RESERVATION_EXPIRATION_SECS = 14 days)
DEFAULT_LOST_AFTER = "4h"
DEFAULT_RESERVED_AFTER = "14d"
ACTIVE_STATES = ("RUNNING", "RESERVED")
ProgressFn = Callable[[int, int, str], None]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int) -> float:
    """Seconds from '90', '90s', '30m', '4h' or '2d' (one number, one optional unit, > 0)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.fullmatch(str(text).strip().lower())
        if not m:
            raise CampaignError(f"invalid duration {text!r}: give seconds or a number with "
                                "s, m, h or d (e.g. 90, 30m, 4h, 2d)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not seconds > 0:
        raise CampaignError(f"invalid duration {text!r}: it must be longer than 0 s")
    return seconds


def format_duration(seconds: float) -> str:
    """'4h', '30m', '2d', '90s': the largest unit that divides `seconds`."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT_S[unit] and seconds % _UNIT_S[unit] == 0:
            return f"{int(seconds // _UNIT_S[unit])}{unit}"
    return f"{seconds:g}s"


# ---------------------------------------------------------------------------------------- submit

def check_labels(spec, source: str | Path = "campaign") -> None:
    """Two models with one label would share run directories: refuse before anything runs."""
    labels: dict[str, int] = {}
    for i, model in enumerate(spec.models, 1):
        if model.label in labels:
            raise CampaignError(f"{source}: models {labels[model.label]} and {i} have the same "
                                f"label {model.label!r} (their run directories would collide); "
                                "nothing was submitted")
        labels[model.label] = i


def workflow_units(spec) -> list[tuple[str, str]]:
    """(label, key) of every workflow a campaign submits: its models, then the competing phases
    when it has a `thermodynamics:` block."""
    from perovdefect.workflows.builder import THERMO_LABEL, model_key, thermo_key
    units = [(m.label, model_key(spec, m)) for m in spec.models]
    if spec.thermodynamics is not None:
        units.append((THERMO_LABEL, thermo_key(spec)))
    return units


def build_workflows(spec, runs_root: Path, source: str | Path = "campaign",
                    only: set[int] | None = None) -> dict[int, object]:
    """{unit index: Workflow} for every model (and the competing phases, index len(models)), or
    the indices in `only`, each built and serialised before anything touches a LaunchPad. A
    unit that cannot be built is one CampaignError naming it (1-based index and label)."""
    from perovdefect.workflows import builder
    check_labels(spec, source)
    makers = [(m.label, lambda m=m: builder.model_workflow(spec, m, runs_root))
              for m in spec.models]
    if spec.thermodynamics is not None:
        makers.append((builder.THERMO_LABEL, lambda: builder.thermo_workflow(spec, runs_root)))
    wfs = {}
    for i, (label, make) in enumerate(makers):
        if only is not None and i not in only:
            continue
        what = f"model {i + 1} ({label})" if i < len(spec.models) else "the competing phases"
        try:
            wf = make()
            wf.to_dict()  # what the LaunchPad stores: fails here, not half-way through adding
        except PerovDefectError as exc:
            raise CampaignError(f"{source}: {what} cannot be built: {exc}; nothing was "
                                "submitted") from None
        except Exception as exc:  # noqa: BLE001  any builder failure: name the model
            raise CampaignError(f"{source}: {what} cannot be built ({type(exc).__name__}: "
                                f"{exc}); nothing was submitted") from exc
        wfs[i] = wf
    return wfs


def _present_keys(lpad, keys: list[str]) -> set[str]:
    return {d["metadata"]["perovdefect_key"] for d in lpad.workflows.find(
        {"metadata.perovdefect_key": {"$in": keys}}, {"metadata.perovdefect_key": 1})}


def submit(campaign_file: str | Path, project: str | Path = DEFAULT_PROJECT,
           launchpad_file: str | Path | None = None) -> dict:
    """Validate the campaign, build the workflow of every model not yet in the LaunchPad, then
    add them all in one bulk insert (FireWorks' LaunchPad.bulk_add_wfs). Models already present
    are skipped; if any model fails to build, nothing is added (and no project folder made)."""
    from perovdefect.workflows.spec import load_campaign
    from perovdefect.workflows.store import is_project
    spec = load_campaign(campaign_file)
    check_labels(spec, campaign_file)
    units = workflow_units(spec)
    keys = [k for _, k in units]
    present: set[str] = set()
    if launchpad_file is not None or is_project(project):  # cheap: skip building those
        with open_launchpad(project, launchpad_file, write=False) as lpad:
            present = _present_keys(lpad, keys)
    todo = {i for i, k in enumerate(keys) if k not in present}
    wfs = build_workflows(spec, project_paths(project)["runs"], campaign_file, todo)
    with open_launchpad(project, launchpad_file, create=True) as lpad:
        present = _present_keys(lpad, keys)  # again: under the lock / just before adding
        new = [i for i in sorted(wfs) if keys[i] not in present]
        if new:
            with contextlib.redirect_stderr(io.StringIO()):  # bulk_add_wfs draws a tqdm bar
                lpad.bulk_add_wfs([wfs[i] for i in new])
    paths = init_project(project)  # run directories (also for a MongoDB LaunchPad)
    dest = paths["root"] / "campaigns"
    dest.mkdir(exist_ok=True)
    shutil.copy(campaign_file, dest / f"{spec.name}.yaml")
    return {"campaign": spec.name, "added": [units[i][0] for i in new],
            "already_present": [lab for lab, k in units if k in present],
            "fireworks_added": sum(len(wfs[i].fws) for i in new)}


# ---------------------------------------------------------------------------------------- status

def _query(campaign: str | None = None) -> dict:
    query: dict = {"spec._perovdefect": {"$exists": True}}
    if campaign:
        query["spec._perovdefect.campaign"] = campaign
    return query


def _fireworks(lpad, campaign: str | None, tasks: bool = True) -> list[dict]:
    """perovdefect's Fireworks, projected to what the commands need (`tasks`: run dirs)."""
    fields = {"_id": 0, "fw_id": 1, "state": 1, "name": 1, "spec._perovdefect": 1}
    if tasks:
        fields["spec._tasks.run_dir"] = 1
    return list(lpad.fireworks.find(_query(campaign), fields))


def _run_dir(fw: dict) -> Path | None:
    for t in fw.get("spec", {}).get("_tasks", []):
        if "run_dir" in t:
            return Path(t["run_dir"])
    return None


def find_lost(lpad, embedded: bool, lost_after_s: float, reserved_after_s: float,
              fws: list[dict] | None = None, reset: bool = False) -> dict:
    """RUNNING/RESERVED perovdefect Fireworks split into lost and alive (see module doc).

    Returns {"lost": [fw_id], "unreserved": [fw_id], "left_alone": [fw_id], "active": {fw_id:
    {name, state, last_update, host}}}. With `reset`, lost ones are rerun through FireWorks
    (detect_lostruns(rerun=True) / cancel_reservation; on the embedded store rerun_fw)."""
    fws = _fireworks(lpad, None, tasks=False) if fws is None else fws
    active = {fw["fw_id"]: fw for fw in fws if fw["state"] in ACTIVE_STATES}
    info = _active_info(lpad, active)
    if embedded:  # under the project lock: no worker can be alive
        lost = sorted(i for i, fw in active.items() if fw["state"] == "RUNNING")
        unreserved = sorted(i for i, fw in active.items() if fw["state"] == "RESERVED")
        if reset:
            for fw_id in lost + unreserved:
                lpad.rerun_fw(fw_id)
        return {"lost": lost, "unreserved": unreserved, "left_alone": [], "active": info}
    if not active:
        return {"lost": [], "unreserved": [], "left_alone": [], "active": {}}
    ours = sorted(active)
    from pymongo.errors import OperationFailure
    try:
        _, lost, _ = lpad.detect_lostruns(expiration_secs=lost_after_s, rerun=reset,
                                          query={"fw_id": {"$in": ours}}, launch_query={})
        expired = lpad.detect_unreserved(expiration_secs=reserved_after_s, rerun=False)
    except OperationFailure as exc:  # a server without what FireWorks' queries need
        from perovdefect.workflows.store import describe_host
        raise CampaignError(f"FireWorks' lost-run detection (LaunchPad.detect_lostruns) failed "
                            f"on the MongoDB server at {describe_host(lpad)}: "
                            f"{exc.details.get('errmsg') if exc.details else exc}") from None
    lost = sorted(set(lost) & set(active))
    unreserved = []
    if expired:
        for launch in lpad.launches.find({"launch_id": {"$in": list(expired)},
                                          "fw_id": {"$in": ours}}, {"launch_id": 1, "fw_id": 1}):
            unreserved.append(launch["fw_id"])
            if reset:
                lpad.cancel_reservation(launch["launch_id"])
    unreserved = sorted(set(unreserved))
    left = sorted(set(active) - set(lost) - set(unreserved))
    return {"lost": lost, "unreserved": unreserved, "left_alone": left, "active": info}


def _active_info(lpad, active: dict[int, dict]) -> dict[int, dict]:
    """name, state, host and last update (ping) of each RUNNING/RESERVED Firework."""
    out = {i: {"name": fw["name"], "state": fw["state"], "last_update": None, "host": None}
           for i, fw in active.items()}
    if not active:
        return out
    for launch in lpad.launches.find({"fw_id": {"$in": list(active)},
                                      "state": {"$in": list(ACTIVE_STATES)}},
                                     {"fw_id": 1, "host": 1, "state_history": 1}):
        history = launch.get("state_history") or [{}]
        entry = out[launch["fw_id"]]
        entry["host"] = launch.get("host")
        entry["last_update"] = str(history[-1].get("updated_on") or
                                   history[-1].get("created_on") or "") or None
    return out


def status(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
           campaign: str | None = None, lost_after: str | float = DEFAULT_LOST_AFTER,
           reserved_after: str | float = DEFAULT_RESERVED_AFTER) -> dict:
    """Counts by state overall and per model / defect+charge, each step's state, and the
    RUNNING/RESERVED Fireworks suspected lost (see find_lost)."""
    lost_s, reserved_s = parse_duration(lost_after), parse_duration(reserved_after)
    with open_launchpad(project, launchpad_file, write=False) as lpad:
        fws = _fireworks(lpad, campaign, tasks=False)
        lost = find_lost(lpad, launchpad_file is None, lost_s, reserved_s, fws)
    if campaign and not fws:
        raise CampaignError(f"no campaign named {campaign!r} in this LaunchPad")
    overall = Counter(fw["state"] for fw in fws)
    per: dict = defaultdict(lambda: defaultdict(Counter))
    steps: dict = defaultdict(dict)
    for fw in fws:
        i = fw["spec"]["_perovdefect"]
        per[f"{i['campaign']}/{i['model']}"][i["label"]][fw["state"]] += 1
        steps[f"{i['campaign']}/{i['model']}/{i['label']}"][i["step"]] = fw["state"]
    suspected = [{"fw_id": i, **lost["active"][i],
                  "reason": "unreserved" if i in lost["unreserved"] else "lost"}
                 for i in lost["lost"] + lost["unreserved"]]
    return {"total": len(fws), "states": dict(overall),
            "by_model": {m: {lab: dict(c) for lab, c in d.items()} for m, d in per.items()},
            "steps": dict(steps), "suspected_lost": suspected,
            "lost_after": "no worker can run (embedded store, locked)" if launchpad_file is None
            else format_duration(lost_s)}


# ---------------------------------------------------------------------------------------- run

def _rlaunch_command(lp_yaml: Path, fw_yaml: Path, nlaunches: int) -> list[str]:
    """FireWorks' `rlaunch rapidfire` (its script beside this Python, else its module)."""
    exe = Path(sys.executable).parent / "rlaunch"
    head = [str(exe)] if exe.exists() else [
        sys.executable, "-c",
        "import sys; from fireworks.scripts.rlaunch_run import rlaunch; sys.exit(rlaunch())"]
    return head + ["-l", str(lp_yaml), "-w", str(fw_yaml), "--loglvl", "WARNING",
                   "rapidfire", "--nlaunches", str(nlaunches), "--sleep", "1"]


def run(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
        fworker_file: str | Path | None = None, nlaunches: int = 0,
        progress: ProgressFn | None = None,
        reset: Callable[[object, bool], dict] | None = None) -> dict:
    """Launch Fireworks with FireWorks' own `rlaunch rapidfire` in a child process.

    Embedded store: the project lock is held for the whole run, so a second run/submit fails at
    once. `progress(done, total, label)` is called while the worker runs (results on disk).
    `reset(lpad, embedded)` runs first on the same LaunchPad (under the same lock)."""
    paths = require_project(project)
    if nlaunches < 0:
        raise CampaignError(f"nlaunches must be >= 0 (0: until done), not {nlaunches}")
    fw_yaml = Path(fworker_file) if fworker_file else paths["fworker_yaml"]
    if not fw_yaml.is_file():
        raise CampaignError(f"{fw_yaml}: no such FireWorker file")
    if launchpad_file is not None:
        with open_launchpad(project, launchpad_file) as lpad:
            done_reset = reset(lpad, False) if reset else {}
            pending = [fw for fw in _fireworks(lpad, None) if fw["state"] != "COMPLETED"]
        out = _spawn(_rlaunch_command(Path(launchpad_file), fw_yaml, nlaunches), pending,
                     paths, dict(os.environ), progress)
        with open_launchpad(project, launchpad_file, write=False) as lpad:
            out["fizzled"] = fizzled(lpad)
        return {**done_reset, **out}
    with project_lock(project):
        from perovdefect.workflows.store import embedded_launchpad_unlocked
        with embedded_launchpad_unlocked(paths, write=reset is not None) as lpad:
            done_reset = reset(lpad, True) if reset else {}
            pending = [fw for fw in _fireworks(lpad, None) if fw["state"] != "COMPLETED"]
        env = dict(os.environ, MONGOMOCK_SERVERSTORE_FILE=str(paths["store"]),
                   PEROVDEFECT_PROJECT=str(paths["root"]))
        out = _spawn(_rlaunch_command(paths["launchpad_yaml"], fw_yaml, nlaunches), pending,
                     paths, env, progress)
        with embedded_launchpad_unlocked(paths, write=False) as lpad:
            out["fizzled"] = fizzled(lpad)
        return {**done_reset, **out}


def fizzled(lpad) -> list[dict]:
    """perovdefect's FIZZLED Fireworks: name, run directory and the last line of the error
    FireWorks stored with the launch."""
    out = []
    for fw in _fireworks(lpad, None):
        if fw["state"] != "FIZZLED":
            continue
        error = ""
        for launch in lpad.launches.find({"fw_id": fw["fw_id"], "state": "FIZZLED"},
                                         {"action.stored_data._exception": 1}):
            exc = ((launch.get("action") or {}).get("stored_data") or {}).get("_exception") or {}
            lines = str(exc.get("_stacktrace") or "").strip().splitlines()
            error = lines[-1] if lines else error
        out.append({"fw_id": fw["fw_id"], "name": fw["name"], "run_dir": str(_run_dir(fw)),
                    "error": error})
    return out


def _spawn(cmd: list[str], pending: list[dict], paths: dict, env: dict,
           progress: ProgressFn | None) -> dict:
    dirs = [(fw["name"], _run_dir(fw), fw["spec"]["_perovdefect"]["step"]) for fw in pending]

    def n_done() -> tuple[int, str]:
        done, last = 0, ""
        for name, d, step in dirs:
            if d is not None and (d / step_kind(step).DONE_FILE).is_file():
                done += 1
                last = name
        return done, last

    paths["launches"].mkdir(exist_ok=True)
    log = open(paths["root"] / "rlaunch.log", "a")
    proc = subprocess.Popen(cmd, cwd=paths["launches"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    (paths["root"] / "worker.pid").write_text(str(proc.pid))
    try:
        while proc.poll() is None:
            if progress:
                done, last = n_done()
                progress(done, len(dirs), last)
            time.sleep(0.5)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    finally:
        log.close()
    done, _ = n_done()
    if progress:
        progress(done, len(dirs), "")
    if proc.returncode != 0:
        raise CampaignError(f"the worker (rlaunch) exited with code {proc.returncode}; "
                            f"{done}/{len(dirs)} steps have results on disk, which a "
                            f"`perovdefect campaign rerun` will not recompute. Log: "
                            f"{paths['root'] / 'rlaunch.log'}")
    return {"launched_steps": len(dirs), "steps_with_results": done,
            "returncode": proc.returncode}


# ---------------------------------------------------------------------------------------- rerun

def reset_on(lpad, embedded: bool, lost_after_s: float, reserved_after_s: float) -> dict:
    """Rerun FIZZLED and lost Fireworks on an open LaunchPad (see find_lost); report what was
    reset and which RUNNING/RESERVED ones were left alone."""
    fws = _fireworks(lpad, None, tasks=False)
    fizzled = sorted(fw["fw_id"] for fw in fws if fw["state"] == "FIZZLED")
    for fw_id in fizzled:
        lpad.rerun_fw(fw_id)
    lost = find_lost(lpad, embedded, lost_after_s, reserved_after_s, fws, reset=True)
    return {"rerun_fizzled": fizzled, "rerun_lost": lost["lost"],
            "rerun_unreserved": lost["unreserved"],
            "left_alone": [{"fw_id": i, **lost["active"][i]} for i in lost["left_alone"]],
            "lost_after": None if embedded else format_duration(lost_after_s),
            "reserved_after": None if embedded else format_duration(reserved_after_s)}


def reset_failed(project: str | Path = DEFAULT_PROJECT,
                 launchpad_file: str | Path | None = None,
                 lost_after: str | float = DEFAULT_LOST_AFTER,
                 reserved_after: str | float = DEFAULT_RESERVED_AFTER) -> dict:
    """Mark FIZZLED and lost Fireworks for rerun, without running anything."""
    lost_s, reserved_s = parse_duration(lost_after), parse_duration(reserved_after)
    with open_launchpad(project, launchpad_file) as lpad:
        return reset_on(lpad, launchpad_file is None, lost_s, reserved_s)


def rerun(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
          progress: ProgressFn | None = None, lost_after: str | float = DEFAULT_LOST_AFTER,
          reserved_after: str | float = DEFAULT_RESERVED_AFTER,
          fworker_file: str | Path | None = None, run_worker: bool = True) -> dict:
    """Reset failed/lost steps and (unless not `run_worker`) run again; steps with results on
    disk are not recomputed. On the embedded store reset and run share one lock."""
    lost_s, reserved_s = parse_duration(lost_after), parse_duration(reserved_after)
    if not run_worker:
        return reset_failed(project, launchpad_file, lost_s, reserved_s)
    return run(project, launchpad_file, fworker_file, progress=progress,
               reset=lambda lpad, embedded: reset_on(lpad, embedded, lost_s, reserved_s))


# ---------------------------------------------------------------------------------------- collect

def check_output(output: str | Path, force: bool = False) -> Path:
    """An output path that may be written: its folder exists, and an existing file is only
    replaced with `force`."""
    path = Path(output)
    if path.is_dir():
        raise CampaignError(f"{path}: is a directory, not an output file")
    if path.exists() and not force:
        raise CampaignError(f"{path}: exists; not overwritten without `force`")
    if not path.parent.is_dir():
        raise CampaignError(f"{path}: its folder {path.parent} does not exist")
    return path




def collect(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
            output: str | Path | None = None, campaign: str | None = None,
            force: bool = False) -> CampaignTable:
    """All step results and analyses as one typed CampaignTable (written to `output` if given;
    an existing file only with `force`): steps, level analyses, and -- where the campaign has
    them -- the competing phases with each host's chemical-potential limits, the formation
    energies of every defect type of every model of such a host at those limits, and the
    luminescence results. Each Firework's task class says how its row is read (StepKind)."""
    from perovdefect.workflows.table import CampaignTable
    out_path = check_output(output, force) if output else None
    with open_launchpad(project, launchpad_file, write=False) as lpad:
        fws = _fireworks(lpad, campaign)
    if campaign and not fws:
        raise CampaignError(f"no campaign named {campaign!r} in this LaunchPad")
    table = CampaignTable(project=str(project_paths(project)["root"]))
    docs: dict = {}  # run dir -> its ElectronicStructure, read once
    for fw in sorted(fws, key=lambda f: f["fw_id"]):
        info = fw["spec"]["_perovdefect"]
        d = _run_dir(fw)
        kind = step_kind(info["step"])
        done = d is not None and (d / kind.DONE_FILE).is_file()
        if done or kind.STEP is None:  # ladder steps get a row, finished or not
            kind.collect_into(table, info, fw, d, docs)
    if table.thermodynamics:
        _formation(project, table, docs)
    from perovdefect.candidates import campaign_candidates  # ranked against each pl_nm
    table.candidates = campaign_candidates(project_paths(project)["root"] / "campaigns", table)
    if out_path is not None:
        table.to_json(out_path, indent=1)
    return table


def _formation(project: str | Path, table: CampaignTable, docs: dict) -> None:
    """Formation energies (perovdefect.thermo) of every defect type of each model whose
    compound has chemical-potential limits, at the thermodynamics step and with the campaign's
    correction, and, with a synthesis temperature, the Fermi level and concentrations of the
    periodic models; a model or defect that cannot be analysed gets its reason instead.
    `docs`: the step results collect read, by run directory."""
    from perovdefect.thermo.calculations import shift_unstable_hosts
    from perovdefect.workflows.spec import load_campaign
    for name, phases in table.thermodynamics.items():
        spec_file = project_paths(project)["root"] / "campaigns" / f"{name}.yaml"
        if not spec_file.is_file():
            continue
        spec = load_campaign(spec_file)
        t = spec.thermodynamics
        phases = table.thermodynamics[name] = shift_unstable_hosts(
            phases, t.max_host_above_hull_meV_per_atom * 1e-3, t.rich_element)
        for model in spec.models:
            if _formula_unit(model.compound) in spec.thermodynamics.hosts:
                _model_formation(table, docs, spec, model, phases)


def _formula_unit(compound: str) -> str:
    """The formula unit of a model's compound (CsPbBr3-cubic -> CsPbBr3): the name of its
    limits in the competing-phase table."""
    from perovdefect.structures.crystals import crystal_spec
    try:
        return crystal_spec(compound).formula_unit
    except PerovDefectError:
        return compound


def _model_formation(table: CampaignTable, docs: dict, spec, model, phases) -> None:
    """The formation (and concentration) entries of one model: rows picked from the table,
    the thermodynamics done by perovdefect.thermo."""
    from perovdefect.thermo.concentrations import solve_thermodynamics
    from perovdefect.thermo.model_formation import formation_by_defect
    from perovdefect.workflows.table import ConcentrationEntry, FormationEntry
    t, name = spec.thermodynamics, spec.name
    rows = table.latest_steps(name, model.label, t.step)
    host = [r for r in rows if r.role == "host"]
    defects: dict[str, list] = {}
    sites: dict[str, float] = {}
    for r in rows:
        if r.role == "defect":
            defects.setdefault(r.defect or r.label, []).append(docs[r.run_dir])
            if r.sites_per_cell:
                sites[r.defect or r.label] = r.sites_per_cell
    if not host or not defects:
        table.formation.append(FormationEntry(
            campaign=name, model=model.label, defect=None, step=t.step,
            problem=f"the host and defects of {model.label} have no finished {t.step} "
                    "results yet"))
        return
    host_doc = docs[host[0].run_dir]
    results = formation_by_defect(host_doc, defects, phases, _formula_unit(model.compound),
                                  t.correction, t.dielectric, f"campaign {name} thermodynamics",
                                  dielectric_compound=model.compound)
    for defect, res in results.items():
        table.formation.append(FormationEntry(
            campaign=name, model=model.label, defect=defect, step=t.step,
            result=None if isinstance(res, str) else res,
            problem=res if isinstance(res, str) else None))
    if t.temperature_K is None:
        return
    entry = ConcentrationEntry(campaign=name, model=model.label)
    done = [r for r in results.values() if not isinstance(r, str)]
    try:
        if len(done) != len(results):
            raise PerovDefectError("concentrations need the formation energies of every "
                                   "defect of the model; see the formation problems")
        entry.result = solve_thermodynamics(done, host_doc, t.temperature_K,
                                            t.quench_temperature_K, sites_per_cell=sites)
    except PerovDefectError as exc:
        entry.problem = str(exc)
    table.concentrations.append(entry)
