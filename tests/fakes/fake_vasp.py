#!/usr/bin/env python3
"""A scripted stand-in for the licensed VASP binary (tests only; VASP cannot exist here).

Called as vasp_std / vasp_ncl / vasp_gam (symlinks): appends its name to executables.log, then
- a relaxation (NSW > 0) without NELMIN >= 8 prints VASP's ZBRENT error and stops;
- a hybrid (LHFCALC) with ALGO other than All prints VASP's EDDDAV error and stops;
- otherwise writes a real vasprun.xml (the template in FAKE_VASP_TEMPLATE, a finished HSE06
  run), CONTCAR, OUTCAR and OSZICAR, as a finished run would.
These are the strings custodian's VaspErrorHandler looks for; its corrections (NELMIN=8 for
ZBRENT, ALGO=All for EDDDAV) make the second attempt succeed.
With FAKE_VASP_SURFACES set (a JSON file, see fake_vasp_surfaces.py) the finished run's outputs
follow harmonic potential-energy surfaces instead of the template: energies from the geometry,
the electron count and the constrained occupations, relaxations ending at their minimum.
"""

import gzip
import os
import shutil
import sys
from pathlib import Path


def incar() -> dict:
    tags = {}
    for line in Path("INCAR").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            tags[k.strip().upper()] = v.split("#")[0].strip()
    return tags


def main() -> int:
    name = Path(sys.argv[0]).name
    with open("executables.log", "a") as fh:
        fh.write(name + "\n")
    tags = incar()
    print(" running on    1 total cores")
    if int(tags.get("NSW", "0")) > 0 and int(tags.get("NELMIN", "2")) < 8:
        shutil.copy("POSCAR", "CONTCAR")
        print(" ZBRENT: fatal error in bracketing")
        print("     please rerun with smaller EDIFF, or copy CONTCAR")
        return 0
    if tags.get("LHFCALC", "F").upper().startswith("T") and tags.get("ALGO", "").upper()[:1] != "A":
        print(" Error EDDDAV: Call to ZHEGV failed. Returncode =   7 1  16")
        return 0
    if os.environ.get("FAKE_VASP_SURFACES"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import fake_vasp_surfaces
        fake_vasp_surfaces.run(tags)
        print(" reached required accuracy - stopping structural energy minimisation")
        return 0
    template = os.environ["FAKE_VASP_TEMPLATE"]
    relaxing = int(tags.get("NSW", "0")) > 0
    with gzip.open(template, "rb") as src, open("vasprun.xml", "wb") as dst:
        shutil.copyfileobj(src, dst)
    lines = Path("POSCAR").read_text().splitlines()
    if relaxing:  # a "relaxation" that expands the cell by 1 %, so tests can follow it downstream
        lines[1] = f"{float(lines[1].split()[0]) * 1.01:.8f}"
    Path("CONTCAR").write_text("\n".join(lines) + "\n")
    Path("OUTCAR").write_text(" General timing and accounting informations for this job:\n")
    Path("OSZICAR").write_text(
        "       N       E                     dE             d eps       ncg     rms          rms(c)\n"
        "DAV:   1    -0.914610632E+01   -0.91461E+01   -0.12345E+02   100   0.123E+01\n"
        "DAV:   2    -0.914610632E+01    0.00000E+00   -0.12345E-05   100   0.123E-03\n"
        "   1 F= -.91461063E+01 E0= -.91461063E+01  d E =-.914611E+01\n")
    print(" reached required accuracy - stopping structural energy minimisation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
