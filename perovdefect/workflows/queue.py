"""qlaunch queue files (FireWorks CommonAdapter) for SLURM and PBS from campaign resources."""

from __future__ import annotations

from pathlib import Path

import yaml

from perovdefect.errors import CampaignError
from perovdefect.workflows.spec import Resources

SCHEDULERS = {"slurm": "SLURM", "pbs": "PBS"}


def qadapter_dict(resources: Resources, scheduler: str, launchpad_file: str | Path,
                  fworker_file: str | Path) -> dict:
    """CommonAdapter settings; the job runs `rlaunch ... singleshot` on the node (the config
    files by absolute path, since the job starts in its own launch directory)."""
    if scheduler not in SCHEDULERS:
        raise CampaignError(f"unknown scheduler {scheduler!r}; known: {sorted(SCHEDULERS)}")
    lp, fw = Path(launchpad_file).resolve(), Path(fworker_file).resolve()
    rocket = f"rlaunch -l {lp} -w {fw} singleshot"
    d = {"_fw_name": "CommonAdapter", "_fw_q_type": SCHEDULERS[scheduler],
         "rocket_launch": rocket, "walltime": resources.walltime, "job_name": "perovdefect",
         "logdir": "."}
    # FireWorks' templates name the node count differently: SLURM nodes, PBS nnodes
    if scheduler == "slurm":
        d["nodes"] = resources.nodes
        d["ntasks_per_node"] = resources.ntasks_per_node
    else:
        d["nnodes"] = resources.nodes
        d["ppnode"] = resources.ntasks_per_node
    if resources.queue:
        d["queue"] = resources.queue
    if resources.account:
        d["account"] = resources.account
    return d


def write_qadapter(resources: Resources, scheduler: str, output: str | Path,
                   launchpad_file: str | Path, fworker_file: str | Path,
                   force: bool = False) -> Path:
    """Write my_qadapter.yaml. The LaunchPad and FireWorker files must exist; an existing
    output is only replaced with `force`."""
    from perovdefect.documents import write_atomic
    from perovdefect.workflows.campaign import check_output
    for what, f in (("LaunchPad", launchpad_file), ("FireWorker", fworker_file)):
        if not Path(f).is_file():
            raise CampaignError(f"{f}: no such {what} file")
    path = check_output(output, force)
    write_atomic(path, yaml.safe_dump(qadapter_dict(resources, scheduler, launchpad_file,
                                                    fworker_file), sort_keys=False))
    return path
