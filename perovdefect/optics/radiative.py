"""Radiative rates from transition dipoles: spontaneous emission, oscillator strength, lifetime.

Textbook formulas (SI; e.g. Hilborn, Am. J. Phys. 50, 982 (1982); Dreyer et al., Appl. Phys.
Lett. 108, 141101 (2016) for defects in a host of refractive index n), with the dipole
d = <i|e r|f> (length gauge) and the photon energy E = hbar omega:

    A   = n chi omega^3 S / (3 pi eps0 hbar c^3 g_upper)      (1/s, spontaneous emission)
    f   = 2 m_e omega S / (3 hbar e^2 g_lower)                 (absorption oscillator strength)
    tau = 1 / A

Degeneracy conventions (one spin channel, spin-orbitals; spin is conserved and not counted):
the initial and the final band each stand for their level, i.e. every band of the same spin
within `degeneracy_tol_eV` of it (g sublevels; 0 gives the single pair). S is the line
strength, the sum of |d|^2 over all pairs of sublevels of the two levels and over x, y, z. A
is the rate of each upper sublevel into the whole lower level (the inverse radiative lifetime
of the upper level when this is its only decay channel); f is the oscillator strength of the
absorption from each lower sublevel into the whole upper level (g_l f_lu = g_u f_ul). For a
non-degenerate pair S = |d|^2 and both are the single-pair values; Na 3s -> 3p: S = 3 |d|^2
over the three 3p bands, A = C |d|^2, f = 3 x the single-pair f (the line's f ~ 0.96).

The medium: n = 1 for an isolated system unless given; in a crystal, the host's refractive
index (with its source) and a local-field factor chi: "none" (chi = 1, the default, as in
Dreyer et al. 2016 for defect wave functions computed inside their host), "virtual-cavity"
(Lorentz, ((n^2 + 2)/3)^2) or "empty-cavity" ((3 n^2/(2 n^2 + 1))^2).

Constants from scipy.constants only. Band labels: `homo` (the highest band with occupation
> 0.5 in the spin channel, Gamma point), `lumo` (the lowest with occupation < 0.5),
`homo-N`, `lumo+N` (N bands below / above them by index) or a 0-based index. In a DeltaSCF
excited state the promoted electron's band is the `homo` and the hole the `lumo`, so
homo -> lumo is its emission.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from pydantic import Field
from scipy import constants as sc

from perovdefect.calcs.backend import backend_for_run
from perovdefect.calcs.document import OCC_THRESHOLD, ElectronicStructure
from perovdefect.documents import Document
from perovdefect.errors import AnalysisError
from perovdefect.parsers import parse

#: local-field models: chi(n)
LOCAL_FIELD_MODELS = {
    "none": lambda n: 1.0,
    "virtual-cavity": lambda n: ((n ** 2 + 2.0) / 3.0) ** 2,
    "empty-cavity": lambda n: (3.0 * n ** 2 / (2.0 * n ** 2 + 1.0)) ** 2,
}
DEFAULT_LOCAL_FIELD = "none"
SPINS = {"up": 0, "down": 1}
_LABEL = re.compile(r"^(homo|lumo)(?:([+-])(\d+))?$")


class OpticalTransition(Document):
    """One radiative transition between two Kohn-Sham levels of a finished calculation.

    energy_eV: the photon energy used (Kohn-Sham eigenvalue difference unless given:
    energy_source says which); dipole_eA: |<initial|e r|final>| of the given pair (e*A);
    line_strength_e2A2: S over the degenerate sublevels (module docstring); rate_per_s: A per
    upper sublevel; radiative_lifetime_ns: 1/A (None when the transition is dipole-forbidden).
    """

    source: str
    code: str
    level_of_theory: str
    spin: str
    initial: str
    final: str
    initial_band: int
    final_band: int
    initial_energy_eV: float
    final_energy_eV: float
    initial_occupation: float
    final_occupation: float
    #: "emission" when the initial band lies above the final one, else "absorption"
    direction: str
    energy_eV: float
    energy_source: str
    dipole_eA: float
    dipole_components_eA: list[float]
    degenerate_initial_bands: list[int]
    degenerate_final_bands: list[int]
    degeneracy_tol_eV: float
    line_strength_e2A2: float
    oscillator_strength: float
    rate_per_s: float
    radiative_lifetime_ns: float | None
    refractive_index: float
    refractive_index_source: str
    local_field: str
    local_field_factor: float
    method: str
    centre_A: list[float] | None = None
    boundary_weight: float | None = None
    warnings: list[str] = Field(default_factory=list)

    def summary(self) -> dict:
        """The four headline numbers."""
        return {"energy_eV": self.energy_eV, "dipole_eA": self.dipole_eA,
                "oscillator_strength": self.oscillator_strength,
                "radiative_lifetime_ns": self.radiative_lifetime_ns}


# -- formulas ------------------------------------------------------------------------------------
def local_field_factor(model: str, refractive_index: float) -> float:
    """chi of `model` (LOCAL_FIELD_MODELS) at refractive index n."""
    if model not in LOCAL_FIELD_MODELS:
        raise AnalysisError(f"unknown local-field model {model!r}; known: "
                            f"{', '.join(LOCAL_FIELD_MODELS)}")
    return float(LOCAL_FIELD_MODELS[model](refractive_index))


def _omega(energy_eV: float) -> float:
    """Angular frequency (rad/s) of a photon of energy_eV."""
    return energy_eV * sc.e / sc.hbar


def spontaneous_emission_rate_per_s(energy_eV: float, line_strength_e2A2: float,
                                    refractive_index: float = 1.0, local_field: float = 1.0,
                                    upper_degeneracy: int = 1) -> float:
    """A = n chi omega^3 S / (3 pi eps0 hbar c^3 g_upper) (1/s); S in e^2 A^2."""
    s_si = line_strength_e2A2 * (sc.e * sc.angstrom) ** 2  # C^2 m^2
    return (refractive_index * local_field * _omega(energy_eV) ** 3 * s_si
            / (3 * sc.pi * sc.epsilon_0 * sc.hbar * sc.c ** 3 * upper_degeneracy))


def oscillator_strength(energy_eV: float, line_strength_e2A2: float,
                        lower_degeneracy: int = 1) -> float:
    """f = 2 m_e omega S / (3 hbar e^2 g_lower) (dimensionless, absorption); S in e^2 A^2."""
    r2 = line_strength_e2A2 * sc.angstrom ** 2  # m^2 (S / e^2)
    return 2 * sc.m_e * _omega(energy_eV) * r2 / (3 * sc.hbar * lower_degeneracy)


# -- bands ---------------------------------------------------------------------------------------
def resolve_band(label: str | int, occupations: np.ndarray, what: str) -> int:
    """The 0-based band index `label` names (module docstring) in one spin channel."""
    if isinstance(label, (int, np.integer)) or str(label).strip().isdigit():
        return int(label)
    m = _LABEL.match(str(label).strip().lower().replace(" ", ""))
    if not m:
        raise AnalysisError(f"{what} band {label!r} is not a band: give homo, lumo, homo-N, "
                            "lumo+N or a 0-based index")
    base, sign, n = m.group(1), m.group(2), int(m.group(3) or 0)
    occupied = np.nonzero(occupations > OCC_THRESHOLD)[0]
    empty = np.nonzero(occupations <= OCC_THRESHOLD)[0]
    pool = occupied if base == "homo" else empty
    if not len(pool):
        raise AnalysisError(f"{what} band {label!r}: the spin channel has no "
                            f"{'occupied' if base == 'homo' else 'empty'} band")
    ref = int(pool.max()) if base == "homo" else int(pool.min())
    return ref + n if sign == "+" else ref - n


def degenerate_level(eps: np.ndarray, band: int, tol_eV: float) -> list[int]:
    """The bands within tol_eV of `band`'s eigenvalue (itself included)."""
    return [int(b) for b in np.nonzero(np.abs(eps - eps[band]) <= tol_eV)[0]] if tol_eV > 0 \
        else [band]


def _spin_index(spin: str | int, doc: ElectronicStructure, source: Path) -> tuple[int, str]:
    name = {0: "up", 1: "down"}.get(spin, spin) if isinstance(spin, int) else str(spin).lower()
    if name not in SPINS:
        raise AnalysisError(f"spin must be up or down, got {spin!r}")
    if SPINS[name] >= doc.nspins:
        raise AnalysisError(f"{source}: spin {name} asked, but the run is spin-unpolarised "
                            "(one spin channel): use spin up")
    return SPINS[name], name


def _medium(refractive_index: float | None, source: str | None, local_field: str,
            periodic: bool, warnings: list[str]) -> tuple[float, str, float]:
    """(n, its source, chi)."""
    if refractive_index is None:
        n, src = 1.0, "vacuum (isolated system)" if not periodic else "none given: vacuum"
        if periodic:
            warnings.append("periodic cell without a refractive index: n = 1 (vacuum) used; "
                            "give the host's refractive index and its source")
    else:
        if not (math.isfinite(refractive_index) and refractive_index >= 1.0):
            raise AnalysisError(f"refractive index must be a finite number >= 1, got "
                                f"{refractive_index}")
        n, src = float(refractive_index), source or "given by the user (no source stated)"
    return n, src, local_field_factor(local_field, n)


def _band_index(label: str | int, occ: np.ndarray, what: str, run_dir: Path,
                spin_name: str) -> int:
    """resolve_band, checked against the bands the calculation has."""
    b = resolve_band(label, occ, what)
    if not 0 <= b < len(occ):
        raise AnalysisError(f"{run_dir}: {what} band {label!r} (index {b}) is outside the "
                            f"calculation (bands 0..{len(occ) - 1} in spin {spin_name})")
    return b


# -- the analysis --------------------------------------------------------------------------------
def radiative_transition(run_dir: str | Path, initial: str | int = "homo",
                         final: str | int = "lumo", spin: str | int = "up",
                         refractive_index: float | None = None,
                         refractive_index_source: str | None = None,
                         local_field: str = DEFAULT_LOCAL_FIELD,
                         energy_eV: float | None = None, energy_source: str | None = None,
                         degeneracy_tol_eV: float = 0.01) -> OpticalTransition:
    """The radiative transition between bands `initial` and `final` (labels as in the module
    docstring) of spin channel `spin` of the finished calculation in `run_dir` (any backend
    with the transition_dipole capability; Gamma point). energy_eV replaces the Kohn-Sham
    eigenvalue difference as the photon energy (e.g. a DeltaSCF emission energy; say which in
    energy_source). Raises AnalysisError / ParseError / ProtocolError with one-line messages.
    """
    run_dir = Path(run_dir)
    if energy_eV is not None and not (math.isfinite(energy_eV) and energy_eV > 0):
        raise AnalysisError(f"the photon energy must be a positive number of eV, got "
                            f"{energy_eV}")
    if not run_dir.is_dir():
        raise AnalysisError(f"{run_dir}: not a run directory")
    doc = parse(run_dir)
    if doc.soc:
        raise AnalysisError(f"{run_dir}: transition dipoles between SOC spinors are not "
                            "supported; use the collinear step of the same structure")
    s, spin_name = _spin_index(spin, doc, run_dir)
    warnings: list[str] = []
    n, n_source, chi = _medium(refractive_index, refractive_index_source, local_field,
                               not doc.is_cluster, warnings)
    eps = np.asarray(doc.eigenvalues_eV[s][0], dtype=float)
    occ = np.asarray(doc.occupations[s][0], dtype=float)
    i, f = (_band_index(label, occ, what, run_dir, spin_name)
            for what, label in (("initial", initial), ("final", final)))
    level_i = degenerate_level(eps, i, degeneracy_tol_eV)
    level_f = degenerate_level(eps, f, degeneracy_tol_eV)
    if f in level_i:
        raise AnalysisError(f"{run_dir}: bands {i} and {f} are degenerate (within "
                            f"{degeneracy_tol_eV} eV): no radiative transition between them")
    dip = backend_for_run(run_dir, doc.code).transition_dipoles(run_dir, level_i, level_f, s)
    warnings = [*dip.warnings, *warnings]
    if len(doc.kpoint_weights) > 1:
        warnings.append("the eigenvalues are those of the first k-point (Gamma)")
    line_strength = sum(dip.abs2_e2A2(a, b) for a in level_i for b in level_f)
    upper, lower = (level_i, level_f) if eps[i] > eps[f] else (level_f, level_i)
    energy = abs(float(eps[f] - eps[i])) if energy_eV is None else float(energy_eV)
    rate = spontaneous_emission_rate_per_s(energy, line_strength, n, chi, len(upper))
    if rate == 0:
        warnings.append("the dipole vanishes: a dipole-forbidden transition, no radiative "
                        "lifetime")
    vec = dip.vector_eA(i, f)
    return OpticalTransition(
        source=str(run_dir), code=doc.code, level_of_theory=doc.level_of_theory,
        spin=spin_name, initial=str(initial), final=str(final), initial_band=i, final_band=f,
        initial_energy_eV=float(eps[i]), final_energy_eV=float(eps[f]),
        initial_occupation=float(occ[i]), final_occupation=float(occ[f]),
        direction="emission" if eps[i] > eps[f] else "absorption", energy_eV=energy,
        energy_source=energy_source or ("Kohn-Sham eigenvalue difference" if energy_eV is None
                                        else "given"),
        dipole_eA=float(np.sqrt(np.sum(np.abs(vec) ** 2))),
        dipole_components_eA=[float(x) for x in np.abs(vec)],
        degenerate_initial_bands=level_i, degenerate_final_bands=level_f,
        degeneracy_tol_eV=degeneracy_tol_eV, line_strength_e2A2=line_strength,
        oscillator_strength=oscillator_strength(energy, line_strength, len(lower)),
        rate_per_s=rate, radiative_lifetime_ns=1e9 / rate if rate > 0 else None,
        refractive_index=n, refractive_index_source=n_source, local_field=local_field,
        local_field_factor=chi, method=dip.method, centre_A=dip.centre_A,
        boundary_weight=dip.boundary_weight, warnings=warnings)


__all__ = ["DEFAULT_LOCAL_FIELD", "LOCAL_FIELD_MODELS", "OpticalTransition", "degenerate_level",
           "local_field_factor", "oscillator_strength", "radiative_transition", "resolve_band",
           "spontaneous_emission_rate_per_s"]
