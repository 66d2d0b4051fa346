"""Symmetry-breaking starting structures for a defect's ground-state search: ShakeNBreak's bond
distortions (its octet rule picks how many neighbours per charge state), rattling and its Dimer
distortion, as StructureRecords.

Units: lengths in Angstrom (A), charges in elementary charges (e). ShakeNBreak is the optional
`shakenbreak` extra (it pulls in doped and hiphive); it is imported only here, when called.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from perovdefect.errors import StructureError
from perovdefect.structures.record import StructureRecord
from perovdefect.structures.supercells import DEFAULT_MAX_ATOMS

#: ShakeNBreak's name for the undistorted defect structure.
UNPERTURBED = "Unperturbed"


def _shakenbreak():
    """ShakeNBreak's Distortions class and its Dimer function, or StructureError if missing."""
    try:
        from shakenbreak.distortions import apply_dimer_distortion
        from shakenbreak.input import Distortions
    except ImportError:
        raise StructureError("distortions need ShakeNBreak: pip install "
                             "'perovdefect[shakenbreak]'") from None
    return Distortions, apply_dimer_distortion


def defect_entry(record: StructureRecord, host: StructureRecord,
                 oxidation_states: dict[str, int]):
    """A pymatgen-analysis-defects DefectEntry for a defect supercell `record` (from
    `build_defects` or `build_vacancies`) of the host supercell `host`: the Defect in the host
    (Vacancy, Substitution or Interstitial at metadata supercell_site_index; interstitials at
    index 0), the record's own structure as the defect supercell."""
    from pymatgen.analysis.defects.core import Interstitial, Substitution, Vacancy
    from pymatgen.analysis.defects.thermo import DefectEntry
    from pymatgen.core import PeriodicSite
    from pymatgen.entries.computed_entries import ComputedStructureEntry
    kind = defect_type(record)
    bulk = host.to_pymatgen()
    structure = record.to_pymatgen()
    index = int(record.metadata.get("supercell_site_index") or 0)
    change = {"vacancy": -1, "antisite": 0, "interstitial": 1}[kind]
    if not np.allclose(bulk.lattice.matrix, structure.lattice.matrix, atol=1e-6) \
            or len(structure) != len(bulk) + change:
        raise StructureError(f"{record.name}: not a {kind} of the host supercell given "
                             f"({len(structure)} atoms, host {len(bulk)}; cells must match)")
    if kind == "interstitial":
        site = structure[0]
        oxi = oxidation_states[site.specie.symbol]
        defect = Interstitial(bulk, PeriodicSite(site.specie.symbol, site.frac_coords,
                                                 bulk.lattice), multiplicity=1, oxi_state=oxi)
    else:
        old = bulk[index].specie.symbol
        if kind == "vacancy":
            defect = Vacancy(bulk, bulk[index], multiplicity=1, oxi_state=-oxidation_states[old])
        else:
            new = structure[index].specie.symbol
            defect = Substitution(bulk, PeriodicSite(new, bulk[index].frac_coords, bulk.lattice),
                                  multiplicity=1,
                                  oxi_state=oxidation_states[new] - oxidation_states[old])
    frac = bulk[index].frac_coords if kind != "interstitial" else structure[0].frac_coords
    return DefectEntry(defect=defect, charge_state=record.charge,
                       sc_entry=ComputedStructureEntry(structure, 0.0),
                       sc_defect_frac_coords=np.asarray(frac))


def defect_type(record: StructureRecord) -> str:
    """vacancy | antisite | interstitial from the record's metadata (V_Br records of
    `build_vacancies` carry defect = V_Br only)."""
    kind = record.metadata.get("defect_type")
    if kind is None and str(record.metadata.get("defect", "")).startswith("V_"):
        kind = "vacancy"
    if kind not in ("vacancy", "antisite", "interstitial"):
        raise StructureError(f"{record.name}: not a defect record (metadata defect_type "
                             f"{kind!r}); build it with build_defects")
    return kind


def distort_defect(record: StructureRecord, host: StructureRecord,
                   oxidation_states: dict[str, int] | None = None,
                   bond_distortions: Sequence[float] | None = None, dimer: bool | None = None,
                   stdev_A: float | None = None, seed: int | None = None,
                   local_rattle: bool = False) -> list[StructureRecord]:
    """ShakeNBreak's distorted starting structures of one defect in one charge state.

    ShakeNBreak (`Distortions.apply_distortions`) distorts the bonds of the N nearest neighbours
    to the defect, N from its octet rule on the electrons the charged defect adds or removes
    (oxidation states: `oxidation_states`, default the record's, i.e. the host's), by each of
    `bond_distortions` (fractions; default -0.6 ... +0.6 in steps of 0.1), then rattles all
    other atoms (Gaussian, `stdev_A`, default 10 % of the bulk nearest-neighbour distance;
    `seed` for hiphive's Monte Carlo rattle, default ShakeNBreak's). N = 0 gives one rattled
    structure. `dimer`: add the Dimer distortion (its two closest neighbours pushed to a
    covalent bond length); default ShakeNBreak's, for vacancies only. Structures with atoms
    closer than 1 A are dropped by ShakeNBreak. The first record is the unperturbed one.

    Metadata (besides the record's): distortion (ShakeNBreak's label), bond_distortion
    (fraction) and distortion_factor (1 + it; None for Rattled, Dimer, Unperturbed),
    num_distorted_neighbours, distorted_atoms ([index, element]),
    rattle_stdev_A, rattle_seed, local_rattle, dimer_bond_length_A (Dimer).
    """
    Distortions, _ = _shakenbreak()
    oxi = dict(oxidation_states or record.metadata.get("oxidation_states") or {})
    if not oxi:
        raise StructureError(f"{record.name}: no oxidation states (build it with "
                             "build_defects or pass oxidation_states)")
    entry = defect_entry(record, host, oxi)
    kwargs: dict = {"oxidation_states": oxi, "local_rattle": local_rattle}
    if bond_distortions is not None or dimer is not None:
        values = [float(x) for x in (bond_distortions if bond_distortions is not None
                                     else np.round(np.arange(-0.6, 0.601, 0.1), 3))]
        use_dimer = dimer if dimer is not None else defect_type(record) == "vacancy"
        kwargs["bond_distortions"] = values + (["Dimer"] if use_dimer else [])
    if stdev_A is not None:
        kwargs["stdev"] = float(stdev_A)
    if seed is not None:
        kwargs["seed"] = int(seed)
    with _quiet():
        snb = Distortions({record.name: [entry]}, **kwargs)
        out, meta = snb.apply_distortions(verbose=False)
    charge_meta = meta["defects"][record.name]["charges"][record.charge]
    structures = out[record.name]["charges"][record.charge]["structures"]
    common = {"num_distorted_neighbours": charge_meta["num_nearest_neighbours"],
              "rattle_stdev_A": float(snb.stdev), "rattle_seed": seed,
              "local_rattle": local_rattle, "distortion_source": "ShakeNBreak"}
    records = [_record(record, structures[UNPERTURBED], UNPERTURBED,
                       {**common, "num_distorted_neighbours": 0, "distorted_atoms": [],
                        "rattle_stdev_A": 0.0})]
    for label, structure in structures["distortions"].items():
        extra = {**common, "distorted_atoms": charge_meta["distorted_atoms"]}
        if label == "Dimer":
            extra.update(_dimer_metadata(entry, structure))
        records.append(_record(record, structure, label, extra))
    return records


def _dimer_metadata(entry, structure) -> dict:
    """The Dimer's atom pair (ShakeNBreak's choice on the unperturbed structure) and its bond
    length (A) in the distorted structure."""
    _, apply_dimer_distortion = _shakenbreak()
    sc = entry.sc_entry.structure.copy()
    sc.remove_oxidation_states()
    kwargs = ({"frac_coords": entry.sc_defect_frac_coords}
              if entry.defect.defect_type.name.lower() == "vacancy"
              else {"site_index": int(entry.defect.defect_site_index)})
    with _quiet():
        pair = apply_dimer_distortion(sc, **kwargs)["distorted_atoms"]
    i, j = (int(p[0]) for p in pair)
    return {"num_distorted_neighbours": 2, "distorted_atoms": [[int(p[0]), str(p[1])]
                                                                for p in pair],
            "dimer_bond_length_A": round(float(structure.get_distance(i, j)), 4)}


def _record(record: StructureRecord, structure, label: str, extra: dict) -> StructureRecord:
    """A StructureRecord of one ShakeNBreak structure (oxidation states removed)."""
    s = structure.copy()
    s.remove_oxidation_states()
    atoms = Atoms([site.specie.symbol for site in s], positions=s.cart_coords,
                  cell=s.lattice.matrix, pbc=True)
    if atoms.get_chemical_symbols() != record.atoms.get_chemical_symbols():
        raise StructureError(f"{record.name} {label}: ShakeNBreak reordered the atoms")
    bond = _bond_distortion(label)
    meta = dict(record.metadata)
    meta.update(extra)
    meta.update({"name": f"{record.name}_{distortion_tag(label)}", "distortion": label,
                 "bond_distortion": bond,
                 "distortion_factor": None if bond is None else round(1.0 + bond, 6)})
    return StructureRecord(atoms, meta)


def _bond_distortion(label: str) -> float | None:
    """-0.3 for ShakeNBreak's 'Bond_Distortion_-30.0%'; None for other labels."""
    if not label.startswith("Bond_Distortion_"):
        return None
    return round(float(label.removeprefix("Bond_Distortion_").rstrip("%")) / 100.0, 6)


def distortion_tag(label: str) -> str:
    """A file-name-safe tag for a ShakeNBreak label: bd-30.0pct, Rattled, Dimer, Unperturbed."""
    return label.replace("Bond_Distortion_", "bd").replace("%", "pct")


@contextlib.contextmanager
def _quiet():
    """ShakeNBreak prints progress bars and warnings; the CLI and the logs stay clean."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _family_of(defect: str) -> str:
    """The defect family a name belongs to (V_X: vacancies, X_i...: interstitials, else
    antisites), so that only that family is generated (interstitials take seconds)."""
    parts = defect.split("_")
    if parts[0] == "V":
        return "vacancies"
    return "interstitials" if len(parts) > 1 and parts[1] == "i" else "antisites"


def build_distortions(compound: str, defect: str, charge: int,
                      min_image_distance_A: float | None = None,
                      target_atoms: int | None = None, lattice: str = "pbe",
                      max_atoms: int = DEFAULT_MAX_ATOMS, **kwargs) -> list[StructureRecord]:
    """`distort_defect` for the defect labelled `defect` (one site: V_Br, Br_Cs_18e, Br_i_36f_2)
    of a shipped compound in charge state `charge` (e), in `build_defects`' supercell; kwargs
    go to `distort_defect`. StructureError for a name that is unknown or names several sites."""
    from perovdefect.structures.defects import build_defects, native_defects, select_defects
    from perovdefect.structures.vacancies import build_host, check_charges
    (charge,) = check_charges([charge], "charge")
    chosen = select_defects(native_defects(compound, _family_of(defect)), [defect])
    if len(chosen) != 1:
        raise StructureError(f"defect {defect!r} names {len(chosen)} sites of {compound}; "
                             f"give one of {', '.join(d.label for d in chosen)}")
    (record,) = build_defects(compound, names=[chosen[0].label], charges=(charge,),
                              min_image_distance_A=min_image_distance_A,
                              target_atoms=target_atoms, lattice=lattice,
                              max_atoms=max_atoms)
    host = build_host(compound, min_image_distance_A, target_atoms, lattice, max_atoms)
    return distort_defect(record, host, **kwargs)
