"""qlaunch queue files (FireWorks CommonAdapter) for SLURM and PBS from campaign resources."""

from __future__ import annotations

from pathlib import Path

import yaml

from perovdefect.workflows.spec import Resources


def qadapter_dict(resources: Resources, scheduler: str, launchpad_file: str | Path,
                  fworker_file: str | Path) -> dict:
    """CommonAdapter settings; the job runs `rlaunch ... singleshot` on the node."""
    rocket = f"rlaunch -l {launchpad_file} -w {fworker_file} singleshot"
    d = {"_fw_name": "CommonAdapter", "_fw_q_type": {"slurm": "SLURM", "pbs": "PBS"}[scheduler],
         "rocket_launch": rocket, "walltime": resources.walltime, "job_name": "perovdefect",
         "logdir": "."}
    # FireWorks' templates name the node count differently: SLURM nodes, PBS nnodes
    if scheduler == "slurm":
        d["nodes"] = resources.nodes
        d["ntasks_per_node"] = resources.ntasks_per_node
        if resources.queue:
            d["queue"] = resources.queue
    else:
        d["nnodes"] = resources.nodes
        d["ppnode"] = resources.ntasks_per_node
        if resources.queue:
            d["queue"] = resources.queue
    if resources.account:
        d["account"] = resources.account
    return d


def write_qadapter(resources: Resources, scheduler: str, output: str | Path,
                   launchpad_file: str | Path, fworker_file: str | Path) -> Path:
    path = Path(output)
    path.write_text(yaml.safe_dump(qadapter_dict(resources, scheduler, launchpad_file,
                                                 fworker_file), sort_keys=False))
    return path
