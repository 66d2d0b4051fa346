"""Campaign operations: submit, status, run (rlaunch), rerun, collect.

Default LaunchPad: the embedded store in a project folder (one process at a time, see store.py);
`launchpad_file` switches to MongoDB (my_launchpad.yaml) where many workers may run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from perovdefect.errors import CampaignError
from perovdefect.workflows.store import init_project, open_launchpad, project_lock, project_paths

DEFAULT_PROJECT = "perovdefect-project"


def submit(campaign_file: str | Path, project: str | Path = DEFAULT_PROJECT,
           launchpad_file: str | Path | None = None) -> dict:
    """Validate, build and add the campaign's workflows; models already present are skipped."""
    from perovdefect.workflows.builder import model_key, model_workflow
    from perovdefect.workflows.spec import load_campaign
    spec = load_campaign(campaign_file)  # validated before anything touches the LaunchPad
    paths = init_project(project)
    added, present = [], []
    with open_launchpad(project, launchpad_file) as lpad:
        for model in spec.models:
            key = model_key(spec, model)
            if lpad.workflows.find_one({"metadata.perovdefect_key": key}):
                present.append(model.label)
                continue
            lpad.add_wf(model_workflow(spec, model, paths["runs"]))
            added.append(model.label)
    dest = paths["root"] / "campaigns"
    dest.mkdir(exist_ok=True)
    shutil.copy(campaign_file, dest / f"{spec.name}.yaml")
    return {"campaign": spec.name, "added": added, "already_present": present}


def _fireworks(lpad, campaign: str | None) -> list[dict]:
    query = {"spec._perovdefect": {"$exists": True}}
    if campaign:
        query["spec._perovdefect.campaign"] = campaign
    return list(lpad.fireworks.find(query, {"fw_id": 1, "state": 1, "name": 1,
                                            "spec._perovdefect": 1, "spec._tasks": 1}))


def _run_dir(fw: dict) -> Path | None:
    for t in fw.get("spec", {}).get("_tasks", []):
        if "run_dir" in t:
            return Path(t["run_dir"])
    return None


def status(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
           campaign: str | None = None) -> dict:
    """Counts by state overall and per model / defect+charge, and each step's state."""
    with open_launchpad(project, launchpad_file, write=False) as lpad:
        fws = _fireworks(lpad, campaign)
    if campaign and not fws:
        raise CampaignError(f"no campaign named {campaign!r} in this LaunchPad")
    overall = Counter(fw["state"] for fw in fws)
    per = defaultdict(lambda: defaultdict(Counter))
    steps = defaultdict(dict)
    for fw in fws:
        i = fw["spec"]["_perovdefect"]
        per[f"{i['campaign']}/{i['model']}"][i["label"]][fw["state"]] += 1
        steps[f"{i['campaign']}/{i['model']}/{i['label']}"][i["step"]] = fw["state"]
    return {"total": len(fws), "states": dict(overall),
            "by_model": {m: {lab: dict(c) for lab, c in d.items()} for m, d in per.items()},
            "steps": dict(steps)}


def _rlaunch_command(lp_yaml: Path, fw_yaml: Path, nlaunches: int) -> list[str]:
    exe = Path(sys.executable).parent / "rlaunch"
    head = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from fireworks."
                                            "scripts.rlaunch_run import rlaunch; sys.exit(rlaunch())"]
    return head + ["-l", str(lp_yaml), "-w", str(fw_yaml), "--loglvl", "WARNING",
                   "rapidfire", "--nlaunches", str(nlaunches), "--sleep", "1"]


def run(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
        fworker_file: str | Path | None = None, nlaunches: int = 0, progress=None) -> dict:
    """Launch Fireworks with FireWorks' own `rlaunch rapidfire` in a child process.

    Embedded store: the project lock is held for the whole run, so a second run/submit fails at
    once. `progress(done, total, label)` is called while the worker runs (results on disk)."""
    paths = init_project(project)
    fw_yaml = Path(fworker_file) if fworker_file else paths["fworker_yaml"]
    if launchpad_file is not None:
        with open_launchpad(project, launchpad_file) as lpad:
            pending = [fw for fw in _fireworks(lpad, None) if fw["state"] != "COMPLETED"]
        return _spawn(_rlaunch_command(Path(launchpad_file), fw_yaml, nlaunches), pending,
                      paths, dict(os.environ), progress)
    with project_lock(project):
        from perovdefect.workflows.store import embedded_launchpad_unlocked
        with embedded_launchpad_unlocked(paths, write=False) as lpad:
            pending = [fw for fw in _fireworks(lpad, None) if fw["state"] != "COMPLETED"]
        env = dict(os.environ, MONGOMOCK_SERVERSTORE_FILE=str(paths["store"]),
                   PEROVDEFECT_PROJECT=str(paths["root"]))
        return _spawn(_rlaunch_command(paths["launchpad_yaml"], fw_yaml, nlaunches), pending,
                      paths, env, progress)


def _spawn(cmd: list[str], pending: list[dict], paths: dict, env: dict, progress) -> dict:
    dirs = [(fw["name"], _run_dir(fw), fw["spec"]["_perovdefect"]["step"]) for fw in pending]

    def n_done() -> tuple[int, str]:
        done, last = 0, ""
        for name, d, step in dirs:
            marker = "analysis.json" if step == "analysis" else "step.json"
            if d is not None and (d / marker).is_file():
                done += 1
                last = name
        return done, last

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


def reset_failed(project: str | Path = DEFAULT_PROJECT,
                 launchpad_file: str | Path | None = None) -> dict:
    """Mark FIZZLED and lost (RUNNING with no live worker) Fireworks for rerun."""
    with open_launchpad(project, launchpad_file) as lpad:
        fws = _fireworks(lpad, None)
        fizzled = [fw["fw_id"] for fw in fws if fw["state"] == "FIZZLED"]
        lost = [fw["fw_id"] for fw in fws if fw["state"] in ("RUNNING", "RESERVED")]
        for fw_id in fizzled + lost:
            lpad.rerun_fw(fw_id)
    return {"rerun_fizzled": fizzled, "rerun_lost": lost}


def rerun(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
          progress=None) -> dict:
    """Reset failed/lost steps and run again; steps with results on disk are not recomputed."""
    reset = reset_failed(project, launchpad_file)
    out = run(project, launchpad_file, progress=progress)
    out.update(reset)
    return out


def collect(project: str | Path = DEFAULT_PROJECT, launchpad_file: str | Path | None = None,
            output: str | Path | None = None, campaign: str | None = None) -> dict:
    """All step results and analyses as one JSON table."""
    from perovdefect.parsers.document import ElectronicStructure
    with open_launchpad(project, launchpad_file, write=False) as lpad:
        fws = _fireworks(lpad, campaign)
    rows, analyses = [], []
    for fw in sorted(fws, key=lambda f: f["fw_id"]):
        info = fw["spec"]["_perovdefect"]
        d = _run_dir(fw)
        if info["step"] == "analysis":
            if d is not None and (d / "analysis.json").is_file():
                analyses.append(json.loads((d / "analysis.json").read_text()))
            continue
        row = {k: info[k] for k in ("campaign", "model", "label", "role", "charge", "step")}
        row.update({"state": fw["state"], "fw_id": fw["fw_id"], "run_dir": str(d)})
        if d is not None and (d / "result.json").is_file():
            doc = ElectronicStructure.from_json(d / "result.json")
            row.update({k: v for k, v in doc.summary().items()
                        if k in ("code", "functional", "soc", "converged", "gap_eV", "vbm_eV",
                                 "cbm_eV", "n_electrons", "total_energy_eV")})
            row["custodian_corrections"] = doc.settings.get("custodian_corrections")
        rows.append(row)
    table = {"project": str(project_paths(project)["root"]), "steps": rows,
             "analyses": analyses}
    if output:
        Path(output).write_text(json.dumps(table, indent=1))
    return table
