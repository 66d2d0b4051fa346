"""Quantum ESPRESSO pw.x output (stdout) -> ElectronicStructure, through ASE's espresso-out reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from perovdefect.errors import ParseError
from perovdefect.calcs.document import ElectronicStructure, StructureData, build_document
from perovdefect.calcs.qe.theory import pw_output_theory, qe_xml_theory


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
    from perovdefect.calcs.ase_reader import read_ase_eigenvalues
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
    from ase.units import Bohr
    omega = float(screening.group(1)) / Bohr if (hybrid and screening) else 0.0  # bohr^-1 -> 1/A
    if hybrid:
        functional = "HSE06" if (abs(aexx - 0.25) < 1e-6 and screening) else "PBE0"
    converged = "convergence NOT achieved" not in text and "convergence has been achieved" in text
    energy = re.findall(r"!\s+total energy\s+=\s+([-\d.]+)\s+Ry", text)
    from ase.units import Ry
    doc = build_document(
        code="qe", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega, 4), soc=soc, converged=converged,
        total_energy_eV=float(energy[-1]) * Ry if energy else None,
        eigenvalues_eV=eig.tolist(), occupations=occ.tolist(),
        kpoint_weights=(weights / weights.sum()).tolist(),
        fermi_level_eV=None if fermi is None else float(np.mean(fermi)), n_electrons=nelec,
        charge=None, nspins=nspins, formula=atoms.get_chemical_formula(mode="metal"),
        source=str(path), settings={"xc": xc_name}, structure=StructureData.from_atoms(atoms),
        theory=pw_output_theory(text, path, functional, aexx, omega, soc))
    if not converged:
        doc.warn_if_unconverged()
    return doc


def parse_qe_xml(path: str | Path) -> ElectronicStructure:
    """Parse pw.x's data-file-schema.xml (OUTDIR/PREFIX.save/). Energies in the file are in
    Hartree; occupations are per state (0..1) as this document wants them."""
    import xml.etree.ElementTree as ET

    from ase.units import Bohr, Hartree
    path = Path(path)
    if not path.is_file():
        raise ParseError(f"{path}: no such file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ParseError(f"{path}: malformed or truncated QE XML ({exc})") from exc
    out = root.find("output")
    bands = out.find("band_structure") if out is not None else None
    if bands is None:
        raise ParseError(f"{path}: no <output><band_structure> (the run did not finish)")

    def text(node, tag, default=None):
        found = node.find(tag) if node is not None else None
        return found.text.strip() if found is not None and found.text else default

    lsda = text(bands, "lsda") == "true"
    soc = text(bands, "spinorbit") == "true"
    nbnd = int(text(bands, "nbnd", 0) or 0) or int(text(bands, "nbnd_up", 0))
    ks = bands.findall("ks_energies")
    eig = np.array([[float(x) for x in k.find("eigenvalues").text.split()] for k in ks]) * Hartree
    occ = np.array([[float(x) for x in k.find("occupations").text.split()] for k in ks])
    weights = np.array([float(k.find("k_point").get("weight")) for k in ks])
    if lsda:  # up bands, then down bands, per k-point
        eig = np.stack([eig[:, :nbnd], eig[:, nbnd:]])
        occ = np.stack([occ[:, :nbnd], occ[:, nbnd:]])
    else:
        eig, occ = eig[None], occ[None]
    dft = out.find("dft")
    name = text(dft, "functional", "unknown")
    hybrid = dft.find("hybrid") if dft is not None else None
    aexx = float(text(hybrid, "exx_fraction", 0.0)) if hybrid is not None else 0.0
    omega = float(text(hybrid, "screening_parameter", 0.0)) / Bohr if hybrid is not None else 0.0
    functional = {"PBE": "PBE", "PBESOL": "PBEsol", "PZ": "LDA", "PBE0": "PBE0",
                  "HSE": "HSE06"}.get(name.upper(), name)
    conv = out.find("convergence_info/scf_conv/convergence_achieved")
    converged = conv is not None and conv.text.strip() == "true"
    fermi = text(bands, "fermi_energy")
    etot = text(out, "total_energy/etot")
    charge = text(root.find("input/bands"), "tot_charge") or text(root.find("input"),
                                                                    "bands/tot_charge")
    doc = build_document(
        code="qe", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega, 4), soc=soc, converged=converged,
        total_energy_eV=float(etot) * Hartree if etot else None, eigenvalues_eV=eig.tolist(),
        occupations=occ.tolist(), kpoint_weights=(weights / weights.sum()).tolist(),
        fermi_level_eV=float(fermi) * Hartree if fermi else None,
        n_electrons=float(text(bands, "nelec", "nan")), charge=float(charge) if charge else None,
        nspins=eig.shape[0], is_cluster=out.find("boundary_conditions/assume_isolated") is not None,
        source=str(path), settings={"xc": name},
        theory=qe_xml_theory(root, functional, aexx, omega, soc))
    if not converged:
        doc.warn_if_unconverged()
    return doc
