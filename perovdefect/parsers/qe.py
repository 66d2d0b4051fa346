"""Quantum ESPRESSO pw.x output (stdout) -> ElectronicStructure, through ASE's espresso-out reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from perovdefect.errors import ParseError
from perovdefect.parsers.document import ElectronicStructure


def parse_pw_output(path: str | Path) -> ElectronicStructure:
    """Parse pw.x stdout. A run that stopped early (no 'JOB DONE', no final energy, no
    eigenvalues) raises ParseError naming the file; an SCF that did not converge is flagged."""
    from perovdefect.parsers.ase_reader import read_ase_eigenvalues
    path = Path(path)
    if not path.is_file():
        raise ParseError(f"{path}: no such file")
    text = path.read_text(errors="replace")
    if "Program PWSCF" not in text:
        raise ParseError(f"{path}: not a Quantum ESPRESSO pw.x output")
    if "JOB DONE" not in text and "convergence NOT achieved" not in text:
        raise ParseError(f"{path}: pw.x output stopped early (no 'JOB DONE'); the run was "
                         "killed or crashed, so no levels are reported")
    try:
        atoms, eig, _, weights, fermi = read_ase_eigenvalues(path, "espresso-out")
        nspins, nk = eig.shape[0], eig.shape[1]
    except Exception as exc:  # ASE parser errors: name the file instead
        raise ParseError(f"{path}: cannot read eigenvalues from pw.x output ({exc})") from exc
    soc = bool(re.search(r"spin-orbit|Noncollinear calculation with spin-orbit", text))
    nelec_m = re.search(r"number of electrons\s*=\s*([\d.]+)", text)
    nelec = float(nelec_m.group(1)) if nelec_m else None
    # occupations: pw.x prints them only with verbosity='high'; otherwise fill by aufbau
    per_state = 1.0 if (soc or nspins == 2) else 2.0
    occ = np.zeros_like(eig)
    if nelec is not None:
        for k in range(nk):
            flat = np.sort(eig[:, k, :].ravel())
            n_states = int(round(nelec / per_state))
            if n_states >= len(flat):
                raise ParseError(f"{path}: too few bands ({eig.shape[2]}) for {nelec} electrons")
            cut = (flat[n_states - 1] + flat[n_states]) / 2
            occ[:, k, :] = eig[:, k, :] < cut
    xc = re.search(r"Exchange-correlation\s*=\s*(\S+)", text)
    exx = re.search(r"EXX-fraction\s*=\s*([\d.]+)", text)
    hybrid = "EXX" in text and exx is not None
    screening = re.search(r"screening parameter\s*=\s*([\d.]+)", text)
    functional = "PBE"
    aexx = float(exx.group(1)) if hybrid else 0.0
    omega = float(screening.group(1)) * 1.8897261 if (hybrid and screening) else 0.0  # bohr^-1
    if hybrid:
        functional = "HSE06" if (abs(aexx - 0.25) < 1e-6 and screening) else "PBE0"
    elif xc and "SLA" in xc.group(1) and "PBX" not in text and "PSX" in text:
        functional = "PBEsol"
    converged = "convergence NOT achieved" not in text and "convergence has been achieved" in text
    energy = re.findall(r"!\s+total energy\s+=\s+([-\d.]+)\s+Ry", text)
    from ase.units import Ry
    doc = ElectronicStructure(
        code="qe", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega, 4), soc=soc, converged=converged,
        total_energy_eV=float(energy[-1]) * Ry if energy else None,
        eigenvalues_eV=eig.tolist(), occupations=occ.tolist(),
        kpoint_weights=(weights / weights.sum()).tolist(),
        fermi_level_eV=None if fermi is None else float(np.mean(fermi)), n_electrons=nelec,
        charge=None, nspins=nspins, formula=atoms.get_chemical_formula(mode="metal"),
        source=str(path), settings={"xc": xc.group(1) if xc else None})
    if not converged:
        doc.warn_if_unconverged()
    return doc
