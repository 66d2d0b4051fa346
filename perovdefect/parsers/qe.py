"""Quantum ESPRESSO pw.x output (stdout) -> ElectronicStructure, through ASE's espresso-out reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from perovdefect.errors import ParseError
from perovdefect.parsers.document import ElectronicStructure


# pw.x's XC index quadruple (iexch, icorr, igcx, igcc) -> functional name
_XC_CODES = {(1, 4, 3, 4): "PBE", (1, 4, 10, 8): "PBEsol", (1, 4, 0, 0): "LDA",
             (1, 1, 0, 0): "LDA"}


def _functional(text: str) -> tuple[str | None, str]:
    """(pw.x's XC label, functional name) from the 'Exchange-correlation=' block."""
    m = re.search(r"Exchange-correlation\s*=\s*(.*?)\n\s*\(\s*([\d\s]+)\)", text)
    if not m:
        return None, "unknown"
    codes = tuple(int(x) for x in m.group(2).split()[:4])
    return m.group(1).strip(), _XC_CODES.get(codes, m.group(1).strip())


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
    xc_name, functional = _functional(text)
    exx = re.search(r"EXX-fraction\s*=\s*([\d.]+)", text)
    hybrid = exx is not None
    screening = re.search(r"screening parameter\s*=\s*([\d.]+)", text)
    aexx = float(exx.group(1)) if hybrid else 0.0
    omega = float(screening.group(1)) * 1.8897261 if (hybrid and screening) else 0.0  # bohr^-1
    if hybrid:
        functional = "HSE06" if (abs(aexx - 0.25) < 1e-6 and screening) else "PBE0"
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
        source=str(path), settings={"xc": xc_name})
    if not converged:
        doc.warn_if_unconverged()
    return doc
