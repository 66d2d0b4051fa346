"""VASP outputs (vasprun.xml[.gz], OUTCAR[.gz]) -> ElectronicStructure, through pymatgen / ASE."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from perovdefect.errors import ParseError
from perovdefect.calcs.document import (ElectronicStructure, StructureData, build_document,
                                        functional_from_parameters)
from perovdefect.calcs.theory import KPointSampling, LevelOfTheory, PotentialFile

#: states this far below the HOMO and above the LUMO get localisation records (eV), as the
#: other backends' localization_window_eV default
LOCALIZATION_WINDOW_EV = 8.0


def parse_vasprun(path: str | Path, parse_projections: bool = False) -> ElectronicStructure:
    """Parse a vasprun.xml(.gz). The functional is named from LHFCALC/AEXX/HFSCREEN/GGA as run;
    SOC from LSORBIT/LNONCOLLINEAR. An unconverged run is parsed, flagged and warned about."""
    from pymatgen.io.vasp import Vasprun
    path = Path(path)
    if not path.is_file():
        raise ParseError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = Vasprun(str(path), parse_potcar_file=False, parse_dos=False,
                          parse_projected_eigen=parse_projections, exception_on_bad_xml=True)
    except Exception as exc:  # ElementTree / pymatgen errors deep inside: name the file instead
        raise ParseError(f"{path}: malformed or truncated vasprun.xml ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
    p = run.parameters
    if not run.eigenvalues:
        raise ParseError(f"{path}: vasprun.xml holds no eigenvalues (run stopped before the "
                         "first electronic step finished?)")
    spins = sorted(run.eigenvalues, key=lambda s: -int(s))  # up, then down
    eig = np.array([run.eigenvalues[s][:, :, 0] for s in spins])
    occ = np.array([run.eigenvalues[s][:, :, 1] for s in spins])
    lhfcalc = bool(p.get("LHFCALC", False))
    aexx = float(p.get("AEXX", 0.25 if lhfcalc else 0.0)) if lhfcalc else 0.0
    hfscreen = float(p.get("HFSCREEN", 0.0)) if lhfcalc else 0.0
    soc = bool(p.get("LSORBIT", False)) or bool(p.get("LNONCOLLINEAR", False))
    nelect = p.get("NELECT")
    structure = run.final_structure
    # charge = (sum of ZVAL) - NELECT: the valences come from vasprun.xml's own atominfo block
    # (what VASP read from the POTCARs), else from a configured POTCAR library; otherwise the
    # charge stays unknown (None), never guessed
    charge = _charge_from_atominfo(path, nelect)
    if charge is None:
        charge = _charge_from_potcars(run, nelect)
    converged = bool(run.converged_electronic) and bool(run.converged_ionic)
    from pymatgen.io.ase import AseAtomsAdaptor
    doc = build_document(
        code="vasp", functional=functional_from_parameters(lhfcalc, aexx, hfscreen,
                                                           p.get("GGA") or run.incar.get("GGA")),
        exact_exchange_fraction=aexx, screening_inv_A=hfscreen, soc=soc, converged=converged,
        total_energy_eV=float(run.final_energy), eigenvalues_eV=eig.tolist(),
        occupations=occ.tolist(), kpoint_weights=list(map(float, run.actual_kpoints_weights)),
        fermi_level_eV=None if run.efermi is None else float(run.efermi),
        n_electrons=None if nelect is None else float(nelect), charge=charge,
        nspins=len(spins), is_cluster=False,
        formula=structure.composition.reduced_formula, source=str(path),
        structure=StructureData.from_atoms(AseAtomsAdaptor.get_atoms(structure)),
        settings={"ENCUT": p.get("ENCUT"), "ISPIN": p.get("ISPIN"), "NBANDS": p.get("NBANDS"),
                  "kpoints": run.kpoints.kpts[0] if run.kpoints and run.kpoints.kpts else None,
                  "n_kpoints": len(run.actual_kpoints), "vasp_version": run.vasp_version,
                  "potcars": run.potcar_symbols,
                  "electronic_converged": bool(run.converged_electronic),
                  "ionic_converged": bool(run.converged_ionic)},
        theory=_vasprun_theory(run, functional_from_parameters(
            lhfcalc, aexx, hfscreen, p.get("GGA") or run.incar.get("GGA")), aexx, hfscreen, soc))
    if parse_projections and run.projected_eigenvalues:
        doc.band_localization = _procar_localization(run, eig, occ, spins)
    _check_constrained_occupations(doc, run.incar, occ, eig, path)
    if not converged:
        doc.warn_if_unconverged()
    return doc


#: INCAR tags (as vasprun.xml's <parameters> echo them) that change total energies besides
#: the functional, cutoff and k-points: doped's fatal_incar_mismatch_tags
ENERGY_TAGS = ("PREC", "PRECFOCK", "LASPH", "LREAL", "ADDGRID", "GGA", "METAGGA", "LDAU",
               "NKRED", "IVDW")
#: ISMEAR -> smearing method (VASP manual)
SMEARING = {-5: "tetrahedron (Bloechl)", -4: "tetrahedron", -3: "scan", -2: "fixed",
            -1: "fermi-dirac", 0: "gaussian"}


def potcar_files(titles: list[str]) -> list[PotentialFile]:
    """POTCAR titles ("PAW_PBE Ga_d 06Jul2010", as vasprun.xml's atominfo or OUTCAR's TITEL
    give them) -> one PotentialFile per element (name: the title without its date, version:
    the date), sorted by element."""
    out = {}
    for title in titles:
        words = title.split()
        symbol = next((w for w in words[1:] if w[:1].isupper()), words[-1])
        element = symbol.split("_")[0].split(".")[0]
        version = words[-1] if len(words) > 2 else None
        name = " ".join(words[:-1]) if version else title
        out[element] = PotentialFile(element=element, name=name, version=version)
    return [out[e] for e in sorted(out)]


def _vasprun_theory(run, functional: str, aexx: float, hfscreen: float, soc: bool
                    ) -> LevelOfTheory:
    """The level of theory the run used, from vasprun.xml: ENMAX (the ENCUT VASP ran with),
    the POTCARs VASP read (atominfo titles; no checksum in vasprun.xml), the KPOINTS
    generation, the FFT grid (NGX/NGY/NGZ), ISMEAR/SIGMA and doped's energy-changing tags."""
    p = run.parameters
    ismear = p.get("ISMEAR")
    return LevelOfTheory(
        code="vasp", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=hfscreen, soc=soc,
        cutoff_eV=None if p.get("ENMAX") is None else float(p["ENMAX"]),
        basis_set="plane waves", potential_kind="POTCAR",
        potentials=potcar_files(list(run.potcar_symbols)) or None,
        kpoints=_vasprun_kpoints(run),
        grid_points=[int(p[k]) for k in ("NGX", "NGY", "NGZ")] if all(
            p.get(k) for k in ("NGX", "NGY", "NGZ")) else None,
        smearing=None if ismear is None else SMEARING.get(int(ismear),
                                                          f"methfessel-paxton {ismear}"),
        smearing_width_eV=None if p.get("SIGMA") is None else float(p["SIGMA"]),
        code_tags={k: _tag_text(p[k]) for k in ENERGY_TAGS if p.get(k) not in (None, "")})


def _tag_text(value) -> str:
    """A tag's value as compared text (doped compares strings by their first word, case
    folded: vasprun.xml writes PREC 'accura' for INCAR's 'Accurate')."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return (value.split() or [""])[0].lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _vasprun_kpoints(run) -> KPointSampling | None:
    from pymatgen.io.vasp.inputs import Kpoints
    k = run.kpoints
    if k is None:
        return None
    n_irr = len(run.actual_kpoints)
    style = k.style
    if style in (Kpoints.supported_modes.Gamma, Kpoints.supported_modes.Monkhorst) and k.kpts:
        return KPointSampling(mesh=[int(x) for x in k.kpts[0]],
                              shift=[float(x) for x in k.kpts_shift], n_irreducible=n_irr)
    if style == Kpoints.supported_modes.Reciprocal:
        return KPointSampling(explicit_frac=[[float(x) for x in kp] for kp in k.kpts],
                              n_irreducible=n_irr)
    return KPointSampling(n_irreducible=n_irr)


def _check_constrained_occupations(doc: ElectronicStructure, incar, occ: np.ndarray,
                                   eig: np.ndarray, path: Path) -> None:
    """A DeltaSCF run (ISMEAR = -2 with FERWE/FERDO): record the promotion and whether the
    last ionic step kept the occupations asked for; warn (document and Python) when not."""
    from perovdefect.calcs.vasp.deltascf import occupation_check, requested_occupations
    requested = requested_occupations(dict(incar or {}))
    if requested is None:
        return
    summary, problems = occupation_check(requested, occ, eig, str(path))
    doc.settings["constrained_occupations"] = summary
    for msg in problems:
        if msg not in doc.warnings:
            doc.warnings.append(msg)
        warnings.warn(msg, stacklevel=3)


def _charge_from_atominfo(path: Path, nelect) -> float | None:
    """(sum over atoms of the species' valence) - NELECT, from vasprun.xml's atominfo block
    (<array name="atomtypes">: atomspertype, element, mass, valence, pseudopotential)."""
    import gzip
    import xml.etree.ElementTree as ET
    if nelect is None:
        return None
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for _, elem in ET.iterparse(fh, events=("end",)):
                if elem.tag == "array" and elem.get("name") == "atomtypes":
                    fields = [f.text.strip() for f in elem.findall("field")]
                    i_n, i_v = fields.index("atomspertype"), fields.index("valence")
                    total = 0.0
                    for rc in elem.find("set").findall("rc"):
                        cols = [c.text.strip() for c in rc.findall("c")]
                        total += int(cols[i_n]) * float(cols[i_v])
                    return round(total - float(nelect), 6)
    except (ET.ParseError, OSError, ValueError, AttributeError, IndexError):
        return None  # no usable atominfo: fall back to the POTCAR library or None
    return None


def _charge_from_potcars(run, nelect) -> float | None:
    if nelect is None:
        return None
    try:
        from pymatgen.io.vasp import Potcar
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            potcar = Potcar(run.potcar_symbols, functional="PBE_54")
        zval = {p.element: p.ZVAL for p in potcar}
        counts = run.final_structure.composition.element_composition
        return float(sum(zval[str(el)] * n for el, n in counts.items()) - float(nelect))
    except Exception:  # no POTCAR library configured: charge is not knowable from vasprun alone
        return None


def _procar_localization(run, eig: np.ndarray, occ: np.ndarray, spins,
                         window_eV: float = LOCALIZATION_WINDOW_EV) -> list:
    """Atom-resolved weights / IPR from vasprun projections (LORBIT) of the states within
    `window_eV` below the HOMO and above the LUMO of each spin and k-point: every state that
    can fall into a host's gap (a fixed number of bands missed the upper ones of a defect with
    many empty gap states)."""
    from perovdefect.calcs.localization import character, ipr
    symbols = [site.specie.symbol for site in run.final_structure]
    out = []
    for si, s in enumerate(spins):
        proj = run.projected_eigenvalues[s]  # (nk, nb, natoms, norb)
        for k in range(eig.shape[1]):
            e = eig[si, k]
            occupied = np.nonzero(occ[si, k] > 0.5)[0]
            homo = int(occupied.max()) if occupied.size else -1  # -1: an empty spin channel
            lumo_e = e[homo + 1] if homo + 1 < e.size else e[homo]
            homo_e = e[homo] if homo >= 0 else lumo_e
            for n in np.nonzero((e >= homo_e - window_eV) & (e <= lumo_e + window_eV))[0]:
                w = proj[k, n].sum(axis=-1)
                out.append({"spin": si, "k": k, "band": int(n), "energy_eV": float(e[n]),
                            "occupation": float(occ[si, k, n]), "ipr": round(ipr(w), 4),
                            "character": character(w / max(w.sum(), 1e-12), symbols)})
    return out


def parse_outcar(path: str | Path) -> ElectronicStructure:
    """Parse eigenvalues from an OUTCAR(.gz) with ASE (pymatgen's Outcar has no eigenvalues);
    the hybrid/SOC tags are read from the parameter block VASP echoes into OUTCAR."""
    import gzip
    import re

    from perovdefect.calcs.ase_reader import read_ase_eigenvalues
    path = Path(path)
    if not path.is_file():
        raise ParseError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            text = fh.read()
        atoms, eig, occ_raw, weights, fermi = read_ase_eigenvalues(path, "vasp-out")
        nspins = eig.shape[0]
    except Exception as exc:  # ASE parser errors: name the file instead
        raise ParseError(f"{path}: cannot read eigenvalues from OUTCAR ({exc})") from exc

    def tag(name: str) -> str | None:
        m = re.search(rf"^\s*{name}\s*=\s*([^\s;]+)", text, re.M)
        return m.group(1) if m else None

    lhfcalc = (tag("LHFCALC") or "F").upper().startswith("T")
    aexx = float(tag("AEXX") or 0.25) if lhfcalc else 0.0
    hfscreen = float(tag("HFSCREEN") or 0.0) if lhfcalc else 0.0
    soc = (tag("LSORBIT") or "F").upper().startswith("T")
    # OUTCAR prints occupations per band: up to 2 for ISPIN=1, 1 per spin channel or spinor
    occ = occ_raw if (soc or nspins == 2) else occ_raw / 2.0
    nelect = tag("NELECT")
    converged = "aborting loop because EDIFF is reached" in text
    doc = build_document(
        code="vasp", functional=functional_from_parameters(lhfcalc, aexx, hfscreen, tag("GGA")),
        exact_exchange_fraction=aexx, screening_inv_A=hfscreen, soc=soc, converged=converged,
        total_energy_eV=float(atoms.get_potential_energy()), eigenvalues_eV=eig.tolist(),
        occupations=np.clip(occ, 0, 1).tolist(), kpoint_weights=weights.tolist(),
        fermi_level_eV=float(fermi),
        n_electrons=float(nelect) if nelect else None, charge=None, nspins=nspins,
        formula=atoms.get_chemical_formula(mode="metal"), source=str(path),
        structure=StructureData.from_atoms(atoms))
    if not converged:
        doc.warn_if_unconverged()
    return doc
