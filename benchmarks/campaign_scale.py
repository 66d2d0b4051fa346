"""Campaign scale, one command: `.venv/bin/python benchmarks/campaign_scale.py [--models 122]`.

A campaign of ~5000 Fireworks (Cs4PbBr6 crystal-cutout cluster models x 9 V_Br charge states x
the relaxed hse06-soc-correction ladder: (1 host + 9 defects) x 4 steps + 1 analysis = 41 per
model) is submitted to the embedded LaunchPad of a fresh project, then `campaign status` is run
on it. Prints wall times of the CLI commands (a new Python process each, as a user runs them) and
an in-process breakdown of submit: building the workflows (builder/structures) vs adding them to
the LaunchPad and writing the store (workflows/campaign.py, store.py).
Targets (issue 13): submit <= 30 s, status <= 2 s. Not a unit test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def campaign(n_models: int) -> dict:
    charges = [-4, -3, -2, -1, 0, 1, 2, 3, 4]
    models = [{"compound": "Cs4PbBr6", "model": "cluster", "cluster": "crystal-cutout",
               "radius_A": round(5.0 + 0.01 * i, 2), "charges": charges}
              for i in range(n_models)]
    return {"name": "scale", "code": "vasp", "tier": "hse06-soc-correction", "relax": True,
            "models": models}


def cli(*args: str) -> tuple[str, subprocess.CompletedProcess]:
    """Run `perovdefect ARGS`; (wall and CPU seconds as text, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "perovdefect", *args], capture_output=True,
                       text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if r.returncode != 0:
        sys.exit(f"perovdefect {' '.join(args)} failed:\n{r.stderr}")
    return f"{wall:7.2f} s wall ({cpu:6.2f} s CPU)", r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=122, help="cluster models (41 Fireworks each)")
    ap.add_argument("--dir", type=Path, help="work here (kept) instead of a temp folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        camp = work / "scale.yaml"
        camp.write_text(yaml.safe_dump(campaign(args.models)))
        proj = work / "proj"

        # in-process breakdown of what `submit` does: build every workflow, then one bulk add
        # to the embedded LaunchPad and one store write
        import contextlib
        import io

        from perovdefect.workflows.campaign import build_workflows
        from perovdefect.workflows.spec import load_campaign
        from perovdefect.workflows.store import embedded_launchpad
        spec = load_campaign(camp)
        t = time.perf_counter()
        wfs = build_workflows(spec, proj / "runs", camp)
        t_build = time.perf_counter() - t
        n_fws = sum(len(wf.fws) for wf in wfs.values())
        t = time.perf_counter()
        with embedded_launchpad(work / "proj-inprocess", create=True) as lpad:
            with contextlib.redirect_stderr(io.StringIO()):
                lpad.bulk_add_wfs(list(wfs.values()))
            t_add = time.perf_counter() - t
        t_add_write = time.perf_counter() - t

        t_submit, r = cli("campaign", "submit", str(camp), "--project", str(proj), "--json")
        added = json.loads(r.stdout)["fireworks_added"]
        t_status, r = cli("campaign", "status", "--project", str(proj), "--json")
        total = json.loads(r.stdout)["total"]
        t_status_txt, _ = cli("campaign", "status", "--project", str(proj))
        t_resubmit, _ = cli("campaign", "submit", str(camp), "--project", str(proj))
        size = (proj / "launchpad_store.json").stat().st_size / 1e6
        t_start, _ = cli("--version")

    print(f"campaign: {args.models} models, {n_fws} Fireworks (submit added {added}, status "
          f"counted {total}); embedded store {size:.1f} MB; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"CLI campaign submit                {t_submit}   (target <= 30 s)")
    print(f"CLI campaign status --json         {t_status}   (target <= 2 s)")
    print(f"CLI campaign status (table)        {t_status_txt}")
    print(f"CLI campaign submit again (adds 0) {t_resubmit}")
    print(f"CLI perovdefect --version          {t_start}   (start-up and imports alone)")
    print(f"in-process: build workflows {t_build:.2f} s (builder + structures); bulk_add_wfs "
          f"{t_add:.2f} s; + store write {t_add_write - t_add:.2f} s")


if __name__ == "__main__":
    main()
