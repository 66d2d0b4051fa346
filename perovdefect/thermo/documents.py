"""Typed result documents of the defect thermodynamics (pydantic, see perovdefect.documents).

Energies are in eV, chemical potentials in eV per atom, concentrations in cm^-3, temperatures
in K. Every field name carries its unit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from perovdefect.calcs.theory import LevelOfTheory
from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError


class PhaseEnergy(Part):
    """One competing phase: its formula and total energy per formula unit (eV)."""

    formula: str
    energy_per_formula_unit_eV: float
    source: str = "user calculation"


class HostStability(Part):
    """Where the host sits with respect to the convex hull of the competing phases."""

    host: str
    stable: bool
    energy_above_hull_eV_per_atom: float
    #: decomposition products (formula -> fraction of atoms) when above the hull, else {host: 1}
    decomposition: dict[str, float]
    formation_energy_eV_per_formula_unit: float


class ChemicalPotentialLimit(Part):
    """A vertex of the host's stability region in chemical-potential space."""

    label: str
    #: phases (besides the host) in equilibrium with the host at this vertex
    competing_phases: list[str]
    #: mu_i - mu_i(elemental reference), eV per atom (<= 0 inside the region)
    delta_mu_eV: dict[str, float]
    #: absolute mu_i = elemental reference energy per atom + delta_mu_i, eV per atom
    mu_eV: dict[str, float]


class StabilityRegion(Document):
    """The host's stability region: its vertices (chemical-potential limits) and the phases."""

    host: str
    elements: list[str]
    elemental_reference_eV_per_atom: dict[str, float]
    phases: list[PhaseEnergy]
    stability: HostStability
    limits: list[ChemicalPotentialLimit]
    #: eV/atom the host's energy was lowered to put it onto the hull (0: it is on the hull);
    #: `stability` keeps the unshifted numbers
    host_shift_eV_per_atom: float = 0.0

    def shift_note(self) -> str | None:
        """What a shifted host means for every number built on these limits, else None."""
        if not self.host_shift_eV_per_atom:
            return None
        s = self.stability
        products = " + ".join(f"{f:.3f} {k}" for k, f in s.decomposition.items())
        return (f"{self.host} lies {s.energy_above_hull_eV_per_atom * 1e3:.1f} meV/atom above "
                f"the hull of its competing phases at this level of theory (decomposes into "
                f"{products} per atom); its energy was lowered by "
                f"{self.host_shift_eV_per_atom * 1e3:.1f} meV/atom onto the hull (doped's "
                "treatment of an unstable host), so these are the limits of a just-stable "
                f"{self.host}: formation energies and concentrations at them rest on that shift")

    def limit(self, label: str) -> ChemicalPotentialLimit:
        """The vertex with this label ('Br-rich', 'Br-poor', 'vertex-3', ...)."""
        for lim in self.limits:
            if lim.label == label:
                return lim
        raise AnalysisError(f"no chemical-potential limit {label!r}; have "
                            f"{[x.label for x in self.limits]}")


class CompetingPhases(Document):
    """The competing phases computed at one level of theory and each host's place on their
    convex hull: its stability region (chemical-potential limits) where it is stable."""

    code: str
    level_of_theory: str
    #: what else fixes absolute total energies: the step's basis and plane-wave cutoff
    basis: str | None = None
    cutoff_eV: float | None = None
    #: the first phase's full level of theory (None in tables written before it was recorded)
    theory: LevelOfTheory | None = None
    phases: list[PhaseEnergy]
    stability: dict[str, HostStability]
    #: host -> its stability region; a host above the hull has none (see `problems`)
    regions: dict[str, StabilityRegion] = Field(default_factory=dict)
    problems: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def limits(self, host: str) -> dict[str, dict[str, float]]:
        """{limit label: {element: absolute mu (eV/atom)}} of one host."""
        if host not in self.regions:
            why = self.problems.get(host, f"not among {sorted(self.regions)}")
            if host in self.stability and not self.stability[host].stable:
                why += ("; a host near the hull can be shifted onto it: "
                        "`max_host_above_hull_meV_per_atom`")
            raise AnalysisError(f"no chemical-potential limits for {host}: {why}")
        return {lim.label: dict(lim.mu_eV) for lim in self.regions[host].limits}


class Correction(Part):
    """An energy correction applied to one charge state (eV); name 'none' when none applied."""

    name: Literal["none", "freysoldt", "efnv", "gkfo", "band-filling", "user"]
    energy_eV: float
    detail: str = ""


class FreysoldtCorrection(Part):
    """Freysoldt (FNV) finite-size correction of one charged periodic cell (eV)."""

    charge: int
    dielectric_tensor: list[list[float]]
    electrostatic_eV: float
    #: q * mean(alignment C over the three axes), eV
    alignment_eV: float
    alignment_per_axis_eV: list[float]
    energy_eV: float
    method: str = "Freysoldt, Neugebauer, Van de Walle, PRL 102, 016402 (2009), " \
                  "via pymatgen-analysis-defects"

    def as_correction(self) -> Correction:
        """The generic Correction entry for a formation-energy calculation."""
        return Correction(name="freysoldt", energy_eV=self.energy_eV,
                          detail=f"electrostatic {self.electrostatic_eV:.4f} eV, alignment "
                                 f"{self.alignment_eV:.4f} eV")


class EfnvCorrection(Part):
    """Extended FNV (Kumagai-Oba) correction from atomic-site potentials (eV)."""

    charge: int
    dielectric_tensor: list[list[float]]
    point_charge_eV: float
    #: -q * mean(V_defect - V_host - V_pc) over the sites outside the defect region, eV
    alignment_eV: float
    defect_region_radius_A: float
    n_sampled_sites: int
    energy_eV: float
    method: str = "Kumagai & Oba, PRB 89, 195205 (2014), via pydefect " \
                  "(pymatgen-analysis-defects' get_efnv_correction)"

    def as_correction(self) -> Correction:
        """The generic Correction entry for a formation-energy calculation."""
        return Correction(name="efnv", energy_eV=self.energy_eV,
                          detail=f"point charge {self.point_charge_eV:.4f} eV, alignment "
                                 f"{self.alignment_eV:.4f} eV")


class ClusterBoundCheck(Part):
    """Whether a charged isolated cluster holds its electrons (HOMO below the vacuum level)."""

    charge: int
    homo_eV: float
    vacuum_level_eV: float
    #: HOMO - vacuum level (eV); > 0 means the occupied state is unbound
    homo_above_vacuum_eV: float
    bound: bool
    message: str


class ChargeState(Part):
    """The inputs of one charge state: total energy (eV) and the corrections applied."""

    charge: int
    total_energy_eV: float
    corrections: list[Correction]
    correction_total_eV: float


class ChargeFormationEnergy(Part):
    """Formation energy of one charge state at E_F = VBM (eV); E_f(E_F) = this + q E_F."""

    charge: int
    at_vbm_eV: float


class FormationEnergiesAtLimit(Part):
    """Formation energies of every charge state at one chemical-potential limit."""

    limit: str
    mu_eV: dict[str, float]
    formation_energies: list[ChargeFormationEnergy]
    stable_charge_at_vbm: int
    stable_charge_at_cbm: int


class TransitionLevel(Part):
    """eps(q1/q2): Fermi level (above the VBM, eV) where the two formation energies cross."""

    charges: list[int] = Field(min_length=2, max_length=2)
    level_above_vbm_eV: float


class FormationEnergyDiagram(Document):
    """E_f(q, E_F) = E_def(q) - E_host - sum_i n_i mu_i + q (E_VBM + E_F) + E_corr(q).

    `transition_levels` are the kinks of the lower envelope inside the gap (they do not depend
    on the chemical potentials); kinks outside [0, gap] are in `levels_outside_gap`.
    """

    defect: str
    host_energy_eV: float
    #: n_i: atoms added (+) or removed (-) to make the defect, e.g. {"Br": -1} for V_Br
    atoms_added: dict[str, int]
    vbm_eV: float
    band_gap_eV: float
    charge_states: list[ChargeState]
    formation_energies: list[FormationEnergiesAtLimit]
    transition_levels: list[TransitionLevel]
    levels_outside_gap: list[TransitionLevel]

    def at_limit(self, limit: str) -> FormationEnergiesAtLimit:
        """The formation energies at one chemical-potential limit (by label)."""
        for lim in self.formation_energies:
            if lim.limit == limit:
                return lim
        raise AnalysisError(f"no chemical-potential limit {limit!r}; have "
                            f"{[x.limit for x in self.formation_energies]}")

    def formation_energy(self, charge: int, fermi_level_eV: float, limit: str) -> float:
        """E_f(q, E_F) in eV, E_F measured from the VBM."""
        for fe in self.at_limit(limit).formation_energies:
            if fe.charge == charge:
                return fe.at_vbm_eV + charge * fermi_level_eV
        raise AnalysisError(f"charge {charge} not in {[c.charge for c in self.charge_states]}")

    def stable_charge(self, fermi_level_eV: float) -> int:
        """The charge with the lowest formation energy at E_F (above the VBM, eV)."""
        lim = self.formation_energies[0]
        return min(lim.formation_energies,
                   key=lambda fe: (fe.at_vbm_eV + fe.charge * fermi_level_eV, -fe.charge)).charge


class DefectConcentration(Part):
    """Equilibrium concentration of one charge state (cm^-3) at the self-consistent E_F."""

    defect: str
    charge: int
    formation_energy_eV: float
    concentration_cm3: float


class FermiLevelSolution(Document):
    """Self-consistent Fermi level from charge neutrality (dilute defects, Boltzmann occupation
    of the defect sites, Fermi-Dirac occupation of the host bands).

    mode "equilibrium": every charge state in equilibrium at temperature_K. Mode "frozen":
    each defect's total concentration fixed (`total_concentrations_cm3`, e.g. at the synthesis
    temperature) and only its charge states and the carriers re-equilibrated at temperature_K
    (a sample quenched from the growth temperature)."""

    temperature_K: float
    limit: str
    fermi_level_above_vbm_eV: float
    electrons_cm3: float
    holes_cm3: float
    concentrations: list[DefectConcentration]
    method: str = "charge neutrality: p - n + sum_q q c_q = 0 (brentq)"
    mode: Literal["equilibrium", "frozen"] = "equilibrium"
    #: defect -> sum over its charge states (cm^-3); in mode "frozen" the fixed totals
    total_concentrations_cm3: dict[str, float] = Field(default_factory=dict)


class HostDensityOfStates(Part):
    """How the host DOS entering the carrier densities was built from the bulk calculation:
    its Kohn-Sham eigenvalues at the run's k-points (weights from the run), each broadened by a
    normalised Gaussian, on an energy grid with the VBM at 0 (eV)."""

    source: str
    smearing: Literal["gaussian"] = "gaussian"
    smearing_width_eV: float
    energy_step_eV: float
    n_kpoints: int
    kpoints: str
    nspins: int
    soc: bool
    n_bands: int
    cell_volume_A3: float
    band_gap_eV: float
    #: the DOS integrated up to mid-gap (electrons per cell): equals the run's electron count
    electrons_below_midgap: float
    n_electrons: float | None = None
    #: highest computed band above the CBM (eV): carriers beyond it are not counted
    bands_reach_above_cbm_eV: float


class ThermodynamicsAtLimit(Part):
    """Fermi level and concentrations at one chemical-potential limit: in equilibrium at the
    (synthesis) temperature, and after quenching with the defect totals frozen (if asked)."""

    limit: str
    equilibrium: FermiLevelSolution
    quenched: FermiLevelSolution | None = None


class DefectThermodynamics(Document):
    """Equilibrium and frozen-defect Fermi levels, carrier and defect concentrations (cm^-3)
    per chemical-potential limit, from formation energies and the host DOS."""

    temperature_K: float
    quench_temperature_K: float | None = None
    defects: list[str]
    #: defect -> equivalent sites per host cell (the concentration prefactor N / V)
    sites_per_cell: dict[str, float]
    sites_from: dict[str, str]
    #: defect -> charge -> degeneracy g (1 where not given)
    degeneracies: dict[str, dict[int, int]] = Field(default_factory=dict)
    host_dos: HostDensityOfStates
    limits: list[ThermodynamicsAtLimit]
    assumptions: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def at_limit(self, limit: str) -> ThermodynamicsAtLimit:
        """The solutions at one chemical-potential limit (by label)."""
        for lim in self.limits:
            if lim.limit == limit:
                return lim
        raise AnalysisError(f"no chemical-potential limit {limit!r}; have "
                            f"{[x.limit for x in self.limits]}")
