"""Compute the shipped chemical-potential table: runs workflows/competing_phases_gpaw.yaml (every
Cs-Pb-Br competing phase at PBE with GPAW LCAO, positions relaxed) on an embedded project and
writes its CompetingPhases document, with provenance notes, to
perovdefect/data/thermo/competing_phases_limits.json.

    .venv/bin/python scripts/ship_chempot_table.py [PROJECT_DIR] [--force]

A rerun resumes the campaign (finished steps are not recomputed)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

from perovdefect.thermo.calculations import shipped_limits_path
from perovdefect.thermo.documents import CompetingPhases
from perovdefect.workflows.campaign import run, submit

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "workflows" / "competing_phases_gpaw.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("project", nargs="?", default="phases-project")
    ap.add_argument("--force", action="store_true", help="replace the shipped table")
    ap.add_argument("--output", default=str(shipped_limits_path()))
    args = ap.parse_args(argv)
    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"{out}: exists; give --force to replace it", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    submit(CAMPAIGN, args.project)
    seen: set[int] = set()

    def progress(done: int, total: int, last: str) -> None:
        if done not in seen:
            seen.add(done)
            print(f"  {done}/{total} steps done {last}", file=sys.stderr)
    run(args.project, progress=progress)
    wall = time.perf_counter() - t0
    src = Path(args.project) / "runs" / "cs-pb-br-phases" / "thermodynamics" / "limits" / \
        "thermodynamics.json"
    doc = CompetingPhases.from_json(src)
    doc.notes += [
        f"computed {date.today().isoformat()} by scripts/ship_chempot_table.py from "
        "workflows/competing_phases_gpaw.yaml (GPAW PBE, LCAO dzp, grid spacing 0.22 A, "
        "k-point density 3.5/A, Fermi-Dirac 0.05 eV, positions relaxed to 0.05 eV/A at the "
        "shipped lattices, cells fixed)",
        f"perovdefect {version('perovdefect')}, GPAW {version('gpaw')}, ASE {version('ase')}, "
        f"pymatgen {version('pymatgen')}, Python {platform.python_version()}; "
        f"{wall:.0f} s on this machine",
        "absolute chemical potentials: only valid for host/defect calculations of the same "
        "code, level of theory and basis (perovdefect formation --chempots shipped checks)",
    ]
    # run-directory paths of this machine mean nothing elsewhere: keep PHASE/STEP
    for p in doc.phases + [p for r in doc.regions.values() for p in r.phases]:
        p.source = "/".join(Path(p.source).parts[-3:-1]) if p.source else p.source
    doc.to_json(out, indent=1)
    print(json.dumps({h: [(lim.label, lim.delta_mu_eV) for lim in r.limits]
                      for h, r in doc.regions.items()}, indent=1))
    print(f"{out} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
