"""The level of theory a calculation really ran at (a typed part every backend fills from the
run's own inputs and outputs) and the one field-by-field comparison that `levels`,
`formation`, the chemical potentials, campaigns and the report use.

Modelled on doped's bulk/defect checks (`_compare_incar_tags`, `_compare_kpoints`,
`_compare_potcar_symbols`): every field that changes absolute total energies or eigenvalues is
compared with a tolerance and each difference is one message naming the field and both values.
A field one of the two documents does not hold (a document written before this part existed,
or a format that does not record it) is not compared and is said so (`not_compared`)."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import Field

from perovdefect.documents import Part


class PotentialFile(Part):
    """One element's PAW setup, POTCAR or pseudopotential file, as the run read it."""

    element: str
    #: POTCAR symbol ("PAW_PBE Ga_d"), UPF file name, or GPAW setup name ("paw")
    name: str
    #: the file's version (a POTCAR's date, a GPAW setup's file name); None: not recorded
    version: str | None = None
    #: the file's checksum as the code printed or computed it (MD5 / SHA-256; prefixed
    #: "md5:" or "sha256:"); None: not recorded
    checksum: str | None = None

    def label(self) -> str:
        return " ".join(x for x in (self.name, self.version) if x)


class KPointSampling(Part):
    """How the Brillouin zone was sampled: a Monkhorst-Pack / Gamma-centred mesh (with its
    shift, in units of the mesh spacing), an explicit list of k-points (fractional, e.g. VASP's
    "Reciprocal" KPOINTS), or a density (1/A) the mesh was chosen from."""

    mesh: list[int] | None = None
    shift: list[float] | None = None
    explicit_frac: list[list[float]] | None = None
    density_inv_A: float | None = None
    #: irreducible k-points the code used (symmetry-dependent: reported, not compared)
    n_irreducible: int | None = None


class LevelOfTheory(Part):
    """What fixes a calculation's absolute energies and eigenvalues (energies in eV, lengths in
    A). Fields None are unknown (not recorded by the code's output, or an older document)."""

    code: str
    functional: str
    exact_exchange_fraction: float
    screening_inv_A: float
    soc: bool
    #: plane-wave kinetic-energy cutoff (eV); None for a localised (LCAO) basis
    cutoff_eV: float | None = None
    #: the wave-function basis: "plane waves" or the LCAO basis name ("dzp")
    basis_set: str | None = None
    #: what `potentials` are: "POTCAR", "pseudopotential" or "PAW setup"
    potential_kind: str | None = None
    #: one per element, sorted by element; None: not recorded
    potentials: list[PotentialFile] | None = None
    kpoints: KPointSampling | None = None
    #: real-space grid spacing (A) where the code takes one (GPAW's h)
    grid_spacing_A: float | None = None
    #: real-space (FFT) grid points along each cell vector: depends on the cell, so compared
    #: only between runs in the same cell
    grid_points: list[int] | None = None
    #: occupation smearing: method ("gaussian", "fermi-dirac", "fixed", ...) and width (eV)
    smearing: str | None = None
    smearing_width_eV: float | None = None
    #: further code inputs that change energies (doped's fatal INCAR tags: PREC, LASPH, LREAL,
    #: ADDGRID, LDAU, GGA, ...), as text; compared where both runs record the tag
    code_tags: dict[str, str] = Field(default_factory=dict)

    def summary(self) -> str:
        """One line, e.g. 'HSE06+SOC (a=0.25, w=0.2/A), 400 eV, PAW_PBE Cs_sv ...'."""
        parts = [f"{self.functional}{'+SOC' if self.soc else ''} "
                 f"(a={self.exact_exchange_fraction:g}, w={self.screening_inv_A:g}/A)"]
        if self.cutoff_eV is not None:
            parts.append(f"{self.cutoff_eV:g} eV")
        if self.basis_set and self.basis_set != "plane waves":
            parts.append(self.basis_set)
        if self.potentials:
            parts.append(", ".join(p.label() for p in self.potentials))
        return ", ".join(parts)


class TheoryTolerances(Part):
    """How far two runs may differ and still count as one level of theory. The screening is
    compared to 0.011/A: VASP's HSE06 (0.2/A) and libxc's (0.11/bohr = 0.208/A) are one
    functional. Smearing is not compared by default: in an insulator it shifts no energy
    beyond its tail, and constrained-occupation (DeltaSCF) steps change it on purpose."""

    exact_exchange_fraction: float = 1e-3
    screening_inv_A: float = 0.011
    cutoff_eV: float = 0.01
    grid_spacing_A: float = 1e-3
    kpoint_frac: float = 1e-6
    smearing_width_eV: float | None = None  # None: smearing not compared


#: (field, label, how) compared by `compare_levels_of_theory` besides the potentials/k-points
_SCALARS: list[tuple[str, str, str]] = [
    ("functional", "the functional", "exact"), ("soc", "spin-orbit coupling", "exact"),
    ("exact_exchange_fraction", "the exact-exchange fraction", "exact_exchange_fraction"),
    ("screening_inv_A", "the screening (1/A)", "screening_inv_A"),
    ("cutoff_eV", "the plane-wave cutoff (eV)", "cutoff_eV"),
    ("basis_set", "the basis set", "exact"),
    ("potential_kind", "the kind of potentials", "exact"),
    ("grid_spacing_A", "the real-space grid spacing (A)", "grid_spacing_A"),
]


def _differ(a: Any, b: Any, tol: float | None) -> bool:
    if tol is None:
        return a != b
    return abs(float(a) - float(b)) > tol


def compare_levels_of_theory(a: LevelOfTheory, b: LevelOfTheory,
                             tolerances: TheoryTolerances | None = None,
                             same_cell: bool = True) -> list[str]:
    """One message per difference between two runs' levels of theory, naming the field and
    both values (a's first); empty: the same level of theory. same_cell=False (competing
    phases: different crystals) leaves out what scales with the cell (k-mesh, grid points).
    Fields either run does not record are skipped (`not_compared` lists them)."""
    tol = tolerances or TheoryTolerances()
    if a.code != b.code:
        return [f"codes differ ({a.code} vs {b.code})"]
    out = []
    for field, label, how in _SCALARS:
        x, y = getattr(a, field), getattr(b, field)
        if x is None or y is None:
            continue
        if _differ(x, y, None if how == "exact" else getattr(tol, how)):
            out.append(f"levels of theory differ in {label} ({x} vs {y})")
    out += _compare_potentials(a, b)
    out += _compare_tags(a.code_tags, b.code_tags)
    if tol.smearing_width_eV is not None:
        out += _compare_smearing(a, b, tol.smearing_width_eV)
    if same_cell:
        out += _compare_kpoints(a.kpoints, b.kpoints, tol.kpoint_frac)
        if a.grid_points is not None and b.grid_points is not None \
                and list(a.grid_points) != list(b.grid_points):
            out.append(f"levels of theory differ in the real-space grid points "
                       f"({a.grid_points} vs {b.grid_points})")
    elif a.kpoints and b.kpoints and a.kpoints.density_inv_A is not None \
            and b.kpoints.density_inv_A is not None \
            and abs(a.kpoints.density_inv_A - b.kpoints.density_inv_A) > 1e-6:
        out.append(f"levels of theory differ in the k-point density (1/A) "
                   f"({a.kpoints.density_inv_A:g} vs {b.kpoints.density_inv_A:g})")
    return out


def _compare_potentials(a: LevelOfTheory, b: LevelOfTheory) -> list[str]:
    """Per element both runs hold (a dopant or a removed species is no difference): the
    name, then the version and checksum where both recorded them."""
    if not a.potentials or not b.potentials:
        return []
    kind = a.potential_kind or "potential"
    theirs = {p.element: p for p in b.potentials}
    out = []
    for p in a.potentials:
        q = theirs.get(p.element)
        if q is None:
            continue
        for field in ("name", "version", "checksum"):
            x, y = getattr(p, field), getattr(q, field)
            if x is not None and y is not None and x != y:
                out.append(f"levels of theory differ in the {kind} of {p.element} ({field} "
                           f"{x} vs {y})")
    return out


def _compare_tags(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [f"levels of theory differ in {tag} ({a[tag]} vs {b[tag]})"
            for tag in sorted(set(a) & set(b)) if a[tag] != b[tag]]


def _compare_smearing(a: LevelOfTheory, b: LevelOfTheory, tol_eV: float) -> list[str]:
    out = []
    if a.smearing and b.smearing and a.smearing != b.smearing:
        out.append(f"levels of theory differ in the smearing ({a.smearing} vs {b.smearing})")
    x, y = a.smearing_width_eV, b.smearing_width_eV
    if x is not None and y is not None and abs(x - y) > tol_eV:
        out.append(f"levels of theory differ in the smearing width (eV) ({x:g} vs {y:g})")
    return out


def _compare_kpoints(a: KPointSampling | None, b: KPointSampling | None,
                     tol_frac: float) -> list[str]:
    """Mesh and shift, or the explicit k-point list (sorted, as doped compares them), where
    both runs recorded them."""
    import numpy as np
    if a is None or b is None:
        return []
    out = []
    for field, label in (("mesh", "the k-point mesh"), ("shift", "the k-point mesh shift")):
        x, y = getattr(a, field), getattr(b, field)
        if x is not None and y is not None and not np.allclose(x, y, atol=tol_frac):
            out.append(f"levels of theory differ in {label} ({x} vs {y})")
    x, y = a.explicit_frac, b.explicit_frac
    if x is not None and y is not None:
        sx, sy = sorted(map(tuple, x)), sorted(map(tuple, y))
        if len(sx) != len(sy) or not np.allclose(sx, sy, atol=tol_frac):
            out.append(f"levels of theory differ in the k-points ({[list(k) for k in sx]} vs "
                       f"{[list(k) for k in sy]})")
    if _only_mesh(a) and _only_list(b) or _only_list(a) and _only_mesh(b):
        out.append(f"levels of theory differ in the k-point sampling ({_kp_text(a)} vs "
                   f"{_kp_text(b)})")
    return out


def _only_mesh(k: KPointSampling) -> bool:
    return k.mesh is not None and k.explicit_frac is None


def _only_list(k: KPointSampling) -> bool:
    return k.mesh is None and k.explicit_frac is not None


def _kp_text(k: KPointSampling) -> str:
    return f"mesh {k.mesh}" if k.mesh is not None else f"k-points {k.explicit_frac}"


#: the fields `not_compared` reports, with how to tell whether a run recorded them
_KNOWN: list[tuple[str, Callable[[LevelOfTheory], bool]]] = [
    ("the plane-wave cutoff or basis set",
     lambda t: t.cutoff_eV is not None or t.basis_set is not None),
    ("the potentials (POTCARs / pseudopotentials / PAW setups)", lambda t: bool(t.potentials)),
    ("the k-point sampling", lambda t: t.kpoints is not None),
]


def not_compared(a: LevelOfTheory | None, b: LevelOfTheory | None) -> list[str]:
    """What could not be compared because one run (or both) did not record it."""
    if a is None or b is None:
        return ["the basis, potentials, cutoff and k-points (a document written before "
                "levels of theory were recorded: re-parse the run)"]
    missing = [label for label, known in _KNOWN if not (known(a) and known(b))]
    return [f"{m} (not recorded by both runs)" for m in missing]


__all__ = ["KPointSampling", "LevelOfTheory", "PotentialFile", "TheoryTolerances",
           "compare_levels_of_theory", "not_compared"]
