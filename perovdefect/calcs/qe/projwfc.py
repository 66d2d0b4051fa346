"""Band localisation for Quantum ESPRESSO from projwfc.x: the projections of each Kohn-Sham state
on the (Loewdin-orthogonalised) atomic wave functions of the pseudopotentials.

projwfc.x writes the complex projections <phi_i|psi_nk> to OUTDIR/PREFIX.save/atomic_proj.xml and
the orbital -> atom table ("state #   7: atom   2 (Br ), wfc  2 (l=1 m= 1)") to its stdout. The
weight of atom a in a state is w_a = sum over a's orbitals of |<phi_i|psi>|^2; the orbitals are
orthonormal and psi is normalised, so w_a is already a fraction of the state and
sum_a w_a = 1 - spilling <= 1. As in the GPAW backend, `character` holds these per element
(summing to 1 - spilling) and `outside_weight` the spilling: the part of the state that the
atomic orbitals do not describe (diffuse, vacuum-like states have it near 1). The IPR is
perovdefect.calcs.localization.ipr of the atom weights, as for VASP and GPAW.

Why a parser of our own: pymatgen and ASE read no projwfc.x output; the projwfc reader of the
pymatgen.io.espresso add-on is not published on PyPI; aiida-quantumespresso's needs an AiiDA
profile and database, pyprocar's a whole plotting stack, and qeschema has no schema for
atomic_proj.xml. The file itself is plain XML (HEADER, then per spin and k-point: K-POINT, E in
Ry, PROJS with one ATOMIC_WFC of nbnd (re, im) pairs per orbital), read here with iterparse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np

PROJWFC_IN = "projwfc.in"
PROJWFC_OUT = "projwfc.out"
ATOMIC_PROJ = "atomic_proj.xml"
PDOS_DIR = "pdos"  # projwfc.x always writes one PDOS file per atom and orbital: kept apart

#: projwfc.x prints eigenvalues to 4 decimals (eV) in pw.out; a larger difference between the
#: pw.x document and atomic_proj.xml means the projections belong to another run
EIGENVALUE_TOLERANCE_EV = 5e-3

_STATE = re.compile(r"state\s*#\s*(\S+?):\s*atom\s*(\S+)\s*\(\s*([A-Za-z]+)[^)]*\),(.*)")


def write_projwfc_input(directory: str | Path, prefix: str = "perovdefect",
                        outdir: str = "tmp") -> Path:
    """Write DIRECTORY/projwfc.in for the pw.x run with this prefix/outdir (relative to the run
    directory, as pw.in has them). PDOS files go to DIRECTORY/pdos/."""
    directory = Path(directory)
    (directory / PDOS_DIR).mkdir(parents=True, exist_ok=True)
    path = directory / PROJWFC_IN
    path.write_text(f"&PROJWFC\n  prefix = '{prefix}'\n  outdir = '{outdir}'\n"
                    f"  filpdos = '{PDOS_DIR}/{prefix}'\n/\n")
    return path


def projwfc_command(pw_command: str | None = None, command: str | None = None) -> list[str]:
    """The projwfc.x command line: `command` (the worker's projwfc_cmd) or
    $PEROVDEFECT_PROJWFC_CMD if given, else pw.x's own command (pw_cmd / $PEROVDEFECT_PW_CMD)
    with pw.x swapped for projwfc.x in the same folder under the same MPI launcher
    ("srun /opt/qe/bin/pw.x -nk 2" -> "srun /opt/qe/bin/projwfc.x"; pw.x's own flags after it
    are dropped), else projwfc.x on PATH."""
    explicit = command or os.environ.get("PEROVDEFECT_PROJWFC_CMD")
    if explicit:
        return explicit.split()
    pw = (pw_command or os.environ.get("PEROVDEFECT_PW_CMD") or "pw.x").split()
    for i, token in enumerate(pw):
        if Path(token).name == "pw.x":
            return [*pw[:i], str(Path(token).with_name("projwfc.x"))]
    return ["projwfc.x"]


def clear_outputs(directory: str | Path) -> None:
    """Remove the projwfc outputs of an earlier run in DIRECTORY (a stale atomic_proj.xml must
    not be read as this run's)."""
    directory = Path(directory)
    (directory / PROJWFC_OUT).unlink(missing_ok=True)
    for stale in directory.glob(f"*/*.save/{ATOMIC_PROJ}"):
        stale.unlink(missing_ok=True)


def run_projwfc(directory: str | Path, pw_command: str | None = None,
                command: str | None = None, timeout_s: float | None = None) -> str | None:
    """Run projwfc.x on DIRECTORY/projwfc.in (stdout to projwfc.out) after pw.x finished. Never
    raises for a missing or failing projwfc.x: returns why it gave nothing (None: it ran), and
    the parser then records that the document has no localisation."""
    from perovdefect.calcs.qe.inputs import qe_env
    directory = Path(directory)
    cmd = projwfc_command(pw_command, command)
    if shutil.which(cmd[0]) is None:
        return f"{cmd[0]} not found (Debian: apt-get install quantum-espresso)"
    try:
        with open(directory / PROJWFC_IN) as fin, open(directory / PROJWFC_OUT, "w") as fout:
            proc = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.STDOUT,
                                  cwd=directory, env=qe_env(), timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)} could not run ({type(exc).__name__}: {exc})"
    if proc.returncode != 0:
        return f"{' '.join(cmd)} failed (exit {proc.returncode}); see {PROJWFC_OUT}"
    return None


# -- reading -----------------------------------------------------------------------------------
def read_state_atoms(stdout: str | Path) -> tuple[np.ndarray, list[str]]:
    """(atom index of each atomic orbital, element of each atom) from projwfc.x's stdout.

    projwfc.x lists the orbitals atom by atom, in pw.x's atom order. Its fixed-width atom field
    overflows past 999 atoms ('***'); then atoms are told apart by the orbital descriptor
    ("wfc  1 (l=0 m= 1)"), which is unique within one atom and repeats on the next."""
    rows = []
    with open(stdout, errors="replace") as fh:
        for line in fh:
            if "state #" in line:
                m = _STATE.search(line)
                if m:
                    rows.append((m.group(2), m.group(3), m.group(4).strip()))
            elif rows and line.startswith(" k = "):
                break  # the orbital table is over; the (long) per-state listing follows
    if not rows:
        raise ValueError(f"{stdout}: no 'state #' table (projwfc.x stopped early?)")
    if all(a.isdigit() for a, _, _ in rows):
        atom = np.array([int(a) - 1 for a, _, _ in rows])
    else:
        atom, a, seen, element = [], -1, set(), None
        for _, el, orbital in rows:
            if el != element or orbital in seen:
                a, seen, element = a + 1, set(), el
            seen.add(orbital)
            atom.append(a)
        atom = np.array(atom)
    symbols = [""] * (int(atom.max()) + 1)
    for a, (_, el, _) in zip(atom, rows):
        symbols[a] = el
    return atom, symbols


def read_atomic_proj(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eigenvalues_eV[spin][k][band], |<phi|psi>|^2[spin][k][band][orbital], k weights) from
    projwfc.x's atomic_proj.xml. Each K-POINT block's spin is the `spin` attribute of its
    ATOMIC_WFC elements, so both orders QE versions wrote (spin outer or k outer) read alike."""
    import xml.etree.ElementTree as ET

    from ase.units import Ry
    header = None
    blocks: dict[int, list] = {}  # spin -> [(weight, eig, proj2)] in k order
    weight = eig = None
    proj: dict[int, np.ndarray] = {}
    spin = 1
    for _, elem in ET.iterparse(str(path), events=("end",)):
        tag = elem.tag
        if tag == "HEADER":
            header = dict(elem.attrib)
        elif tag == "K-POINT":
            weight = float(elem.get("Weight", "nan"))
        elif tag == "E":
            eig = np.array(elem.text.split(), dtype=float) * Ry
        elif tag == "ATOMIC_WFC":
            v = np.array(elem.text.split(), dtype=float).reshape(-1, 2)
            proj[int(elem.get("index")) - 1] = v[:, 0] ** 2 + v[:, 1] ** 2
            spin = int(elem.get("spin", "1"))
            elem.clear()
        elif tag == "PROJS":
            if header is None or eig is None:
                raise ValueError(f"{path}: PROJS before HEADER/E")
            n_wfc = int(header["NUMBER_OF_ATOMIC_WFC"])
            if sorted(proj) != list(range(n_wfc)):
                raise ValueError(f"{path}: {len(proj)} of {n_wfc} atomic orbitals in a block")
            p2 = np.stack([proj[i] for i in range(n_wfc)], axis=-1)  # (band, orbital)
            blocks.setdefault(spin, []).append((weight, eig, p2))
            proj, eig = {}, None
            elem.clear()
    if header is None or not blocks:
        raise ValueError(f"{path}: no HEADER or no projections")
    spins = sorted(blocks)
    eigs = np.array([[b[1] for b in blocks[s]] for s in spins])
    p2 = np.array([[b[2] for b in blocks[s]] for s in spins])
    weights = np.array([b[0] for b in blocks[spins[0]]])
    return eigs, p2, weights


def locate_outputs(directory: str | Path) -> tuple[Path | None, Path | None]:
    """(projwfc.x stdout, atomic_proj.xml) of the run in DIRECTORY (None where absent). The XML
    is where projwfc.out says it read the save folder, else DIR/*/*.save/ or DIR/."""
    directory = Path(directory)
    stdout = directory / PROJWFC_OUT
    candidates = []
    if stdout.is_file():
        with open(stdout, errors="replace") as fh:
            head = fh.read(20000)
        m = re.search(r"Reading xml data from directory:\s*\n\s*\n?\s*(\S+)", head)
        if m:
            save = Path(m.group(1))
            candidates.append(save if save.is_absolute() else directory / save)
    candidates += sorted(directory.glob("*/*.save")) + [directory]
    xml = next((c / ATOMIC_PROJ for c in candidates if (c / ATOMIC_PROJ).is_file()), None)
    return (stdout if stdout.is_file() else None), xml


def localization_from_projwfc(doc, stdout: Path, xml: Path, window_eV: float = 8.0
                              ) -> list[dict]:
    """BandState records of the states of `doc` within `window_eV` below its VBM and above its
    CBM, from projwfc.x's outputs of the same run (ValueError if they do not fit `doc`)."""
    from perovdefect.calcs.localization import character, ipr
    atom, symbols = read_state_atoms(stdout)
    if doc.structure is not None and symbols != list(doc.structure.symbols):
        raise ValueError(f"{stdout}: projwfc.x's atoms {symbols} are not the document's "
                         f"{doc.structure.symbols}")
    eig_p, p2, _ = read_atomic_proj(xml)
    eps = np.asarray(doc.eigenvalues_eV, dtype=float)
    occ = np.asarray(doc.occupations, dtype=float)
    if p2.shape[-1] != len(atom):
        raise ValueError(f"{xml}: {p2.shape[-1]} atomic orbitals, projwfc.out lists {len(atom)}")
    if eig_p.shape[:2] != eps.shape[:2] or eig_p.shape[2] < eps.shape[2]:
        raise ValueError(f"{xml}: projections for [spin][k][band] {eig_p.shape}, the document "
                         f"has {eps.shape}")
    nb = eps.shape[2]
    dev = float(np.max(np.abs(eig_p[:, :, :nb] - eps)))
    if dev > EIGENVALUE_TOLERANCE_EV:
        raise ValueError(f"{xml}: its eigenvalues differ from {doc.source} by up to {dev:.3f} "
                         "eV (projections of another run?)")
    # atom weights of every state: sum of |<phi_i|psi>|^2 over each atom's orbitals
    w_atoms = np.zeros((*p2.shape[:3], len(symbols)))
    for a in range(len(symbols)):
        w_atoms[..., a] = p2[..., atom == a].sum(axis=-1)
    lo = (doc.vbm_eV if doc.vbm_eV is not None else eps.min()) - window_eV
    hi = (doc.cbm_eV if doc.cbm_eV is not None else eps.max()) + window_eV
    out = []
    for s, k, n in zip(*np.nonzero((eps >= lo) & (eps <= hi))):
        w = w_atoms[s, k, n]
        out.append({"spin": int(s), "k": int(k), "band": int(n),
                    "energy_eV": float(eps[s, k, n]), "occupation": float(occ[s, k, n]),
                    "ipr": round(ipr(w), 4), "character": character(w, symbols),
                    # the spilling: what the atomic orbitals do not describe
                    "outside_weight": round(max(0.0, float(1.0 - w.sum())), 4)})
    return out


def attach_localization(doc, directory: str | Path, window_eV: float = 8.0):
    """Give `doc` (a pw.x run in DIRECTORY) its band localisation from projwfc.x's outputs
    there. Missing or unusable outputs leave it without one, with a warning in the document
    (never an exception): the levels are still valid, only their classification is poorer."""
    from xml.etree.ElementTree import ParseError as XMLParseError
    stdout, xml = locate_outputs(directory)
    problem = None
    if stdout is None or xml is None:
        missing = " and ".join(n for n, p in ((PROJWFC_OUT, stdout), (ATOMIC_PROJ, xml))
                               if p is None)
        problem = f"no projwfc.x output ({missing}) in {directory}"
    else:
        try:
            doc.band_localization = localization_from_projwfc(doc, stdout, xml, window_eV)
        except (ValueError, KeyError, OSError, XMLParseError) as exc:
            problem = f"projwfc.x output unusable ({exc})"
    if problem:
        msg = (f"{doc.source}: {problem}: no band localisation (IPR, character); in-gap states "
               "are classified by energy only")
        if msg not in doc.warnings:
            doc.warnings.append(msg)
        warnings.warn(msg, stacklevel=2)
    return doc
