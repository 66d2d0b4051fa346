"""The level of theory of a pw.x run (perovdefect.calcs.theory.LevelOfTheory) from what pw.x
printed (stdout: the pseudopotential files with the MD5 checksums pw.x computed, the cutoffs,
the FFT grid, the smearing) or wrote (data-file-schema.xml), and the k-mesh of its input."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ase.units import Hartree, Ry

from perovdefect.calcs.theory import KPointSampling, LevelOfTheory, PotentialFile

#: the density cutoff is kept as text rounded to 0.1 eV: pw.x prints it in Ry to 4 decimals
#: (0.0007 eV), the XML in full Hartree precision
#: pw.x's printed smearing names -> the LevelOfTheory names
_SMEARING = {"gaussian": "gaussian", "fermi-dirac": "fermi-dirac",
             "methfessel-paxton": "methfessel-paxton", "marzari-vanderbilt": "marzari-vanderbilt",
             "mv": "marzari-vanderbilt", "mp": "methfessel-paxton", "fd": "fermi-dirac",
             "gauss": "gaussian", "cold": "marzari-vanderbilt"}


def _element(label: str) -> str:
    """Species label (Br, Br1, Pb_sp) -> element symbol."""
    return re.match(r"[A-Z][a-z]?", label.strip()).group(0)


def pw_output_theory(text: str, path: Path, functional: str, aexx: float, omega_inv_A: float,
                     soc: bool) -> LevelOfTheory:
    """From pw.x stdout; the k-mesh from the pw.in next to it (pw.x does not echo it)."""
    pots = {}
    for label, file, md5 in re.findall(r"PseudoPot\.\s*#\s*\d+\s+for\s+(\S+)\s+read from file:"
                                       r"\s*\n\s*(\S+)\s*\n\s*MD5 check sum:\s*(\S+)", text):
        el = _element(label)
        pots[el] = PotentialFile(element=el, name=Path(file).name,
                                 checksum=None if "not" in md5.lower() else f"md5:{md5}")
    ecut = re.search(r"kinetic-energy cutoff\s*=\s*([\d.]+)\s*Ry", text)
    ecutrho = re.search(r"charge density cutoff\s*=\s*([\d.]+)\s*Ry", text)
    fft = re.search(r"Dense\s+grid:.*FFT dimensions:\s*\(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    smear = re.search(r"number of k points=\s*(\d+)\s+(\S+)\s+smearing,\s*width \(Ry\)=\s*"
                      r"([\d.]+)", text)
    nk = re.search(r"number of k points=\s*(\d+)", text)
    kpoints = _pw_input_kpoints(path.parent / "pw.in")
    if kpoints is not None or nk:
        kpoints = (kpoints or KPointSampling()).model_copy(
            update={"n_irreducible": int(nk.group(1)) if nk else None})
    return LevelOfTheory(
        code="qe", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega_inv_A, 4), soc=soc,
        cutoff_eV=round(float(ecut.group(1)) * Ry, 4) if ecut else None,
        basis_set="plane waves", potential_kind="pseudopotential",
        potentials=[pots[e] for e in sorted(pots)] or None, kpoints=kpoints,
        grid_points=[int(x) for x in fft.groups()] if fft else None,
        smearing=_SMEARING.get(smear.group(2).lower(), smear.group(2).lower()) if smear
        else ("fixed" if nk else None),
        smearing_width_eV=round(float(smear.group(3)) * Ry, 6) if smear else None,
        code_tags={"ecutrho_eV": f"{float(ecutrho.group(1)) * Ry:.1f}"} if ecutrho else {})


def _pw_input_kpoints(pw_in: Path) -> KPointSampling | None:
    """The K_POINTS automatic mesh and shift of a pw.x input (None: no input, or another
    K_POINTS kind)."""
    if not pw_in.is_file():
        return None
    m = re.search(r"K_POINTS\s*\{?\(?\s*automatic\s*\)?\}?\s*\n\s*(\d+)\s+(\d+)\s+(\d+)\s+"
                  r"(\d)\s+(\d)\s+(\d)", pw_in.read_text(errors="replace"), re.I)
    if not m:
        return None
    nums = [int(x) for x in m.groups()]
    # pw.x's shift flags (0/1) are half a mesh spacing
    return KPointSampling(mesh=nums[:3], shift=[0.5 * s for s in nums[3:]])


def qe_xml_theory(root, functional: str, aexx: float, omega_inv_A: float, soc: bool
                  ) -> LevelOfTheory:
    """From data-file-schema.xml (energies in Hartree). The XML names the pseudopotential
    files, not their checksums: the MD5 is computed from the file in pseudo_dir where it is
    still there (None otherwise)."""
    out = root.find("output")
    species = out.find("atomic_species") if out is not None else None
    pots = {}
    if species is not None:
        folder = Path(species.get("pseudo_dir") or ".")
        for sp in species.findall("species"):
            el, file = _element(sp.get("name")), sp.findtext("pseudo_file", "").strip()
            pots[el] = PotentialFile(element=el, name=file, checksum=_md5(folder / file))
    basis = out.find("basis_set") if out is not None else None
    ecut = basis.findtext("ecutwfc") if basis is not None else None
    ecutrho = basis.findtext("ecutrho") if basis is not None else None
    fft = basis.find("fft_grid") if basis is not None else None
    mp = root.find("input/k_points_IBZ/monkhorst_pack")
    smear = root.find("input/bands/smearing")
    nks = out.findtext("band_structure/nks") if out is not None else None
    kpoints = None
    if mp is not None:
        kpoints = KPointSampling(mesh=[int(mp.get(f"nk{i}")) for i in (1, 2, 3)],
                                 shift=[0.5 * int(mp.get(f"k{i}")) for i in (1, 2, 3)],
                                 n_irreducible=int(nks) if nks else None)
    return LevelOfTheory(
        code="qe", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega_inv_A, 4), soc=soc,
        cutoff_eV=round(float(ecut) * Hartree, 4) if ecut else None,
        basis_set="plane waves", potential_kind="pseudopotential",
        potentials=[pots[e] for e in sorted(pots)] or None, kpoints=kpoints,
        grid_points=[int(fft.get(f"nr{i}")) for i in (1, 2, 3)] if fft is not None else None,
        smearing=_SMEARING.get(smear.text.strip().lower(), smear.text.strip().lower())
        if smear is not None and smear.text else None,
        smearing_width_eV=round(float(smear.get("degauss")) * Hartree, 6)
        if smear is not None and smear.get("degauss") else None,
        code_tags={"ecutrho_eV": f"{float(ecutrho) * Hartree:.1f}"} if ecutrho else {})


def _md5(path: Path) -> str | None:
    try:
        return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()
    except OSError:
        return None
