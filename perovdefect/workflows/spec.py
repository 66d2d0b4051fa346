"""Campaign specifications (YAML), validated before anything is submitted."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perovdefect.calcs.backend import get_backend
from perovdefect.calcs.protocol import LADDERS, Protocol, ladder
from perovdefect.errors import CampaignError, ProtocolError
from perovdefect.structures.clusters import CLUSTER_DEFECTS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """One host model and its Br vacancies: a periodic supercell or an isolated cluster."""

    compound: str = "Cs4PbBr6"
    model: Literal["supercell", "cluster"] = "cluster"
    cluster: Literal["pbbr6-octahedron", "cs4pbbr6-molecule", "crystal-cutout"] = \
        "cs4pbbr6-molecule"
    radius_A: float = Field(6.0, gt=0)
    padding_A: float = Field(4.5, gt=0)
    min_image_distance_A: float | None = Field(None, gt=0)
    target_atoms: int | None = Field(None, gt=0)
    lattice: Literal["pbe", "experimental"] = "pbe"
    #: native defects by name (V_Br, V_Cs, Br_Cs, Br_i, ...; or a site label such as V_Cs_6a):
    #: clusters have the cluster builders' defects only (CLUSTER_DEFECTS, the default);
    #: supercells any defect perovdefect.structures.defects finds
    defects: list[str] = Field(default_factory=lambda: list(CLUSTER_DEFECTS), min_length=1)
    charges: list[int] = [0]
    host_charge: int | None = None

    @field_validator("defects")
    @classmethod
    def _defects(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("defects are listed twice")
        bad = [d for d in v if not re.fullmatch(r"(V_[A-Z][a-z]?|[A-Z][a-z]?_([A-Z][a-z]?|i))"
                                                r"(_\w+)?", d)]
        if bad:
            raise ValueError(f"defect names look like V_Br, Br_Cs or Br_i, got {bad}")
        return v

    @field_validator("charges")
    @classmethod
    def _charges(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v) or any(abs(q) > 4 for q in v):
            raise ValueError("charges must be distinct integers with |q| <= 4")
        return v

    @model_validator(mode="after")
    def _cluster_defects(self) -> ModelSpec:
        if self.model == "cluster" and set(self.defects) - set(CLUSTER_DEFECTS):
            raise ValueError(f"cluster models have the defects {list(CLUSTER_DEFECTS)} only; "
                             f"{sorted(set(self.defects) - set(CLUSTER_DEFECTS))} need a "
                             "supercell model")
        return self

    @model_validator(mode="after")
    def _sizes(self) -> ModelSpec:
        if self.model == "supercell" and self.min_image_distance_A and self.target_atoms:
            raise ValueError("give min_image_distance_A or target_atoms, not both")
        return self

    @property
    def label(self) -> str:
        if self.model == "cluster":
            extra = f"-r{self.radius_A:g}" if self.cluster == "crystal-cutout" else ""
            return f"{self.compound}_{self.cluster}{extra}"
        size = (f"d{self.min_image_distance_A:g}" if self.min_image_distance_A else
                f"n{self.target_atoms}" if self.target_atoms else "unit")
        return f"{self.compound}_supercell-{size}"


class Resources(_Strict):
    """Queue resources for qlaunch (SLURM/PBS templates)."""

    nodes: int = Field(1, ge=1)
    ntasks_per_node: int = Field(1, ge=1)
    walltime: str = "24:00:00"
    queue: str | None = None
    account: str | None = None


class ThermodynamicsSpec(_Strict):
    """Competing phases computed beside the defects, the hosts' chemical-potential limits and the
    formation energies of the models (campaign YAML `thermodynamics:`)."""

    #: hosts whose stability region (chemical-potential limits) is computed
    hosts: list[str] = Field(["Cs4PbBr6"], min_length=1)
    #: competing phases (perovdefect.structures.phases.PHASES), the hosts included
    phases: list[str] = ["Cs", "Pb", "Br2", "CsBr", "PbBr2", "CsPbBr3", "Cs4PbBr6"]
    #: relax the atomic positions (PBE) before the static steps: every phase (true), none
    #: (false), or the phases listed (e.g. all but the hosts' already PBE-relaxed cells)
    relax: bool | list[str] = True
    #: k-point density of the periodic phases (k-points per A^-1; molecules use Gamma)
    kpoint_density_inv_A: float = Field(3.0, gt=0, allow_inf_nan=False)
    #: the code's settings for the phases over the campaign's (e.g. a wider smearing for metals)
    settings: dict[str, Any] = {}
    #: the ladder step whose total energies enter (a static step of the campaign's tier)
    step: str = "pbe"
    rich_element: str = "Br"
    #: a host at most this far above the hull of the phases (meV/atom) is shifted down onto it
    #: (doped's treatment of an unstable host) by `campaign collect`, and the shift is stated
    #: beside every formation energy; 0: such a host has no limits, so no formation energies
    max_host_above_hull_meV_per_atom: float = Field(0.0, ge=0, le=500, allow_inf_nan=False)
    #: finite-size correction of charged periodic defects (clusters need none); eFNV needs
    #: atomic-site potentials, which the result documents do not hold yet
    correction: Literal["fnv", "none"] = "fnv"
    #: dielectric constant for the correction; None: the shipped value of the model's compound
    dielectric: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: synthesis temperature (K): `collect` then solves the equilibrium Fermi level and every
    #: defect's concentration (cm^-3) of each periodic model at each limit (host DOS from the
    #: host's calculation at `step`); None: formation energies only
    temperature_K: float | None = Field(None, gt=0, le=5000, allow_inf_nan=False)
    #: with temperature_K: the frozen-defect Fermi level after quenching to this temperature
    #: (K; defect totals fixed at temperature_K, charge states and carriers re-equilibrated)
    quench_temperature_K: float | None = Field(None, gt=0, le=5000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _quench(self) -> ThermodynamicsSpec:
        if self.quench_temperature_K is not None and self.temperature_K is None:
            raise ValueError("quench_temperature_K needs temperature_K (the synthesis "
                             "temperature whose defect totals are frozen)")
        return self

    @model_validator(mode="after")
    def _names(self) -> ThermodynamicsSpec:
        from pymatgen.core import Composition

        from perovdefect.structures.phases import PHASES, phase_formula, shipped_phases
        unknown = [p for p in self.phases if p not in PHASES]
        if unknown:
            raise ValueError(f"unknown phases {unknown}; known: {list(PHASES)}")
        missing = [p for p in self.phases if p not in shipped_phases()]
        if missing:
            raise ValueError(f"no structure is shipped for {missing} (no citable source found; "
                             f"see perovdefect/data/structures/phases/SOURCES.txt); "
                             f"shipped: {list(shipped_phases())}")
        if len(set(self.phases)) != len(self.phases):
            raise ValueError("phases are listed twice")
        if isinstance(self.relax, list) and set(self.relax) - set(self.phases):
            raise ValueError(f"relax names {sorted(set(self.relax) - set(self.phases))}, which "
                             "are not among the phases")
        formulas = {phase_formula(p) for p in self.phases}
        for host in self.hosts:
            if host not in formulas:
                raise ValueError(f"host {host} is not among the phases {self.phases}")
            missing = [el.symbol for el in Composition(host).elements
                       if not any(Composition(f).is_element and
                                  Composition(f).elements[0] == el for f in formulas)]
            if missing:
                raise ValueError(f"host {host} needs the elemental reference phase(s) of "
                                 f"{missing} among the phases")
            if self.rich_element not in [el.symbol for el in Composition(host).elements]:
                raise ValueError(f"rich_element {self.rich_element} is not in {host}")
        return self


class LuminescenceSpec(_Strict):
    """A luminescence calculation (CC diagram, predicted PL) of the V_Br of each model named
    (campaign YAML `luminescence:`), by one of two routes:

    * route delta-scf (default): the neutral vacancy's DeltaSCF excited state (`excitation`),
      clusters or supercells (every symmetry-distinct neutral vacancy), always at Gamma (the
      constrained occupations are set at one k-point; the protocol's k-points are the
      ladder's);
    * route charge: two charge states `charges: [q_initial, q_final]` of supercell models
      (both among the model's charges), emission of q_initial plus a carrier at the host's
      band edge into q_final (e.g. [1, 0]: V_Br^+ + e(CBM) -> V_Br^0), at the protocol's
      k-points; `correction_eV` = E_corr(q_initial) - E_corr(q_final) when known.
    """

    #: model labels (default: every model with charge 0, or with both `charges`)
    models: list[str] | None = None
    route: Literal["delta-scf", "charge"] = "delta-scf"
    excitation: Literal["up:homo->lumo", "down:homo->lumo"] = "down:homo->lumo"
    charges: list[int] | None = None
    correction_eV: float | None = Field(None, allow_inf_nan=False)
    temperature_K: float = Field(295.0, ge=0, le=2000, allow_inf_nan=False)
    broadening_fwhm_meV: float = Field(20.0, gt=0, le=1000, allow_inf_nan=False)
    #: measured PL FWHM (nm) beside the campaign's pl_nm
    pl_fwhm_nm: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: delta-scf route: the transitions also at this hybrid, as single points of both states
    #: at the two PBE minima (perovdefect.optics.level_correction), with the backend settings
    #: hybrid_settings over the campaign's and the backend's hybrid preset (GPAW: plane
    #: waves) and the plane-wave cutoff hybrid_cutoff_eV (eV; default: the protocol's)
    hybrid: Literal["HSE06", "PBE0"] | None = None
    hybrid_settings: dict[str, Any] = Field(default_factory=dict)
    hybrid_cutoff_eV: float | None = Field(None, ge=100, le=2000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _route(self) -> LuminescenceSpec:
        if (self.hybrid_settings or self.hybrid_cutoff_eV) and not self.hybrid:
            raise ValueError("hybrid_settings and hybrid_cutoff_eV go with hybrid")
        if self.hybrid and self.route == "charge":
            raise ValueError("hybrid single points belong to route delta-scf")
        if self.route == "charge":
            if self.charges is None or len(self.charges) != 2 or \
                    abs(self.charges[0] - self.charges[1]) != 1:
                raise ValueError("route charge needs charges: [q_initial, q_final], two charge "
                                 "states one carrier apart (e.g. [1, 0])")
        elif self.charges is not None or self.correction_eV is not None:
            raise ValueError("charges and correction_eV belong to route: charge")
        return self

    def key_payload(self) -> dict[str, Any]:
        """What identifies the luminescence work of a model (the route's fields only when set,
        so campaigns written before the charge route keep their keys)."""
        d = self.model_dump(exclude={"models"})
        for k in ("hybrid", "hybrid_settings", "hybrid_cutoff_eV"):
            if not d[k]:  # campaigns written before the hybrid option keep their keys
                d.pop(k)
        if self.route == "delta-scf":
            for k in ("route", "charges", "correction_eV"):
                d.pop(k)
        else:
            d.pop("excitation")
        return d


class GroundStateSearchSpec(_Strict):
    """ShakeNBreak's ground-state search (campaign YAML `ground_state_search:`): every defect
    of every supercell model is relaxed from its distorted starts (and the unperturbed one);
    the lowest relaxed structure goes on through the rest of the ladder."""

    #: bond distortions (fractions of the bond length, e.g. [-0.3, 0.3]); None: ShakeNBreak's
    #: -0.6 ... +0.6 in steps of 0.1
    bond_distortions: list[float] | None = None
    #: add ShakeNBreak's Dimer start (vacancies); None: ShakeNBreak's default
    dimer: bool | None = None
    #: rattle amplitude (A); None: ShakeNBreak's (10 % of the bulk bond length)
    stdev_A: float | None = Field(None, gt=0, le=1.0, allow_inf_nan=False)
    seed: int | None = None
    #: search only these defects (species names such as V_Br or site labels such as
    #: Br_Cs_6a); the others relax from the unperturbed start only. None: every defect
    defects: list[str] | None = Field(None, min_length=1)

    @field_validator("bond_distortions")
    @classmethod
    def _distortions(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not -0.9 <= x <= 0.9 or x == 0 for x in v)):
            raise ValueError("bond_distortions are non-zero fractions between -0.9 and 0.9")
        return v


class CampaignSpec(_Strict):
    """A whole campaign: models x defects x charges, each through the ladder tier with one code."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: a registered backend (perovdefect.calcs.backend.available_backends())
    code: str = Field(..., min_length=1)
    tier: str = "pbe"
    relax: bool = False
    #: host models with their defects (may be empty when a `thermodynamics:` block is given)
    models: list[ModelSpec] = []
    #: code-independent physics (perovdefect.calcs.Protocol fields)
    protocol: dict[str, Any] = {}
    #: the code's own settings over its defaults (validated by its backend)
    settings: dict[str, Any] = {}
    resources: Resources = Resources()
    pl_nm: float | None = Field(None, gt=0, allow_inf_nan=False)
    thermodynamics: ThermodynamicsSpec | None = None
    luminescence: LuminescenceSpec | None = None
    #: true (ShakeNBreak's defaults) or its options: relax every defect from distorted starts
    ground_state_search: GroundStateSearchSpec | None = None

    @field_validator("ground_state_search", mode="before")
    @classmethod
    def _search(cls, v: Any) -> Any:
        return {} if v is True else None if v is False else v

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        """perovdefect 0.1 campaigns: say where code-specific keys went."""
        if isinstance(data, dict):
            if "pseudopotentials" in data:
                raise ValueError("pseudopotentials moved under settings: (settings: "
                                 "{pseudopotentials: {...}})")
            moved = {"mode", "basis", "grid_spacing_A", "magmom_per_atom", "hybrid_mode",
                     "noncollinear_magmom", "extra"} & set(data.get("protocol") or {})
            if moved:
                raise ValueError(f"protocol.{sorted(moved)[0]} is a code setting now: move "
                                 f"{sorted(moved)} from protocol: to settings:")
        return data

    @field_validator("tier")
    @classmethod
    def _tier(cls, v: str) -> str:
        if v not in LADDERS:
            raise ValueError(f"unknown tier {v!r}; known: {list(LADDERS)}")
        return v

    @model_validator(mode="after")
    def _protocol(self) -> CampaignSpec:
        forbidden = {"functional", "soc", "task", "name", "charge"} & set(self.protocol)
        if forbidden:
            raise ValueError(f"protocol may not set {sorted(forbidden)}: the ladder tier does")
        try:
            Protocol.from_dict(self.protocol)
            backend = get_backend(self.code, **self.settings)
            for step in ladder(self.tier, relax=self.relax, **self.protocol):
                backend.check(None, step)  # every step of the tier, before anything runs
        except (ProtocolError, TypeError) as exc:
            raise ValueError(f"{exc}") from None
        if not self.models and self.thermodynamics is None:
            raise ValueError("a campaign needs models (or a thermodynamics: block)")
        if self.thermodynamics is not None:
            self._check_thermodynamics(self.thermodynamics)
        if self.luminescence is not None:
            self._check_luminescence(self.luminescence)
        if self.ground_state_search is not None:
            if not self.relax:
                raise ValueError("ground_state_search relaxes each distorted start: it needs "
                                 "relax: true")
            if not any(m.model == "supercell" for m in self.models):
                raise ValueError("ground_state_search distorts defects of supercell models; "
                                 "this campaign has none")
            self._check_search_defects(self.ground_state_search.defects or [])
        return self

    def _check_search_defects(self, names: list[str]) -> None:
        """Each ground_state_search defect names a defect of a supercell model: one of its
        `defects:` entries, a site label under one (Br_Cs_6a of Br_Cs) or the species of one."""
        listed = [d for m in self.models if m.model == "supercell" for d in m.defects]
        for n in names:
            if not any(n == d or n.startswith(d + "_") or d.startswith(n + "_")
                       for d in listed):
                raise ValueError(f"ground_state_search.defects: {n!r} is not a defect of the "
                                 f"supercell models ({', '.join(listed)})")

    def _check_thermodynamics(self, t: ThermodynamicsSpec) -> None:
        steps = ladder(self.tier, relax=False, **self.protocol)
        static = [p.name for p in steps if p.task == "static" and not p.soc]
        if t.step not in static:
            raise ValueError(f"thermodynamics.step {t.step!r} is not a static step of the "
                             f"{self.tier} tier without SOC ({static})")
        try:
            backend = get_backend(self.code, **{**self.settings, **t.settings})
            for p in self.phase_ladder(True) + self.phase_ladder(False):
                backend.check(None, p)
        except (ProtocolError, TypeError) as exc:
            raise ValueError(f"thermodynamics: {exc}") from None
        if t.correction == "fnv" and t.dielectric is None:
            from perovdefect.errors import AnalysisError
            from perovdefect.thermo.data import dielectric_constant
            for m in self.models:
                if m.model == "supercell" and any(q != 0 for q in m.charges):
                    try:
                        dielectric_constant(m.compound)
                    except AnalysisError as exc:
                        raise ValueError(f"thermodynamics.dielectric: charged {m.compound} "
                                         f"supercells need a dielectric constant for FNV: "
                                         f"{exc}") from None

    def _check_luminescence(self, lum: LuminescenceSpec) -> None:
        labels = [m.label for m in self.models]
        if lum.models is not None:
            unknown = [x for x in lum.models if x not in labels]
            if unknown:
                raise ValueError(f"luminescence.models {unknown} are not model labels "
                                 f"({labels})")
        chosen = self.luminescence_models()
        needed = lum.charges if lum.route == "charge" else [0]
        if not chosen:
            raise ValueError(f"luminescence: no model with charges {needed} to run")
        for m in chosen:
            missing = [q for q in needed if q not in m.charges]
            if missing:
                raise ValueError(f"luminescence: model {m.label} needs charge(s) {missing} "
                                 "among its charges")
            if lum.route == "charge" and m.model != "supercell":
                raise ValueError(f"luminescence: route charge needs a supercell model (the "
                                 f"carrier comes from the host's band edge), {m.label} is a "
                                 "cluster")
        try:
            if lum.route == "charge":
                steps = [Protocol(name="relax", task="relax", **self.protocol)]
            else:
                steps = [Protocol(name="relax-excited", task="relax",
                                  excitation=lum.excitation, **self.luminescence_physics())]
            for p in steps:
                get_backend(self.code, **self.settings).check(None, p)
            if lum.hybrid:
                self.hybrid_backend().check(None, Protocol(
                    functional=lum.hybrid, excitation=lum.excitation,
                    **{**self.luminescence_physics(), **self.hybrid_physics()}))
        except (ProtocolError, TypeError) as exc:
            raise ValueError(f"luminescence: {exc}") from None

    def hybrid_backend_settings(self) -> dict[str, Any]:
        """The settings of the luminescence hybrid single points: the campaign's, the
        backend's hybrid preset, then luminescence.hybrid_settings."""
        from perovdefect.calcs.backend import backend_class
        lum = self.luminescence
        return {**self.settings, **backend_class(self.code).presets["hybrid"],
                **(lum.hybrid_settings if lum else {})}

    def hybrid_backend(self):
        return get_backend(self.code, **self.hybrid_backend_settings())

    def hybrid_physics(self) -> dict[str, Any]:
        lum = self.luminescence
        return {"cutoff_eV": lum.hybrid_cutoff_eV} if lum and lum.hybrid_cutoff_eV else {}

    def luminescence_physics(self) -> dict[str, Any]:
        """The protocol fields of the luminescence steps: the campaign's, without its k-points
        on the DeltaSCF route (Gamma: perovdefect.optics.run sets it for periodic cells)."""
        lum = self.luminescence
        if lum is not None and lum.route == "charge":
            return dict(self.protocol)
        return {k: v for k, v in self.protocol.items()
                if k not in ("kpoints", "kpoint_density_inv_A")}

    def phase_ladder(self, periodic: bool = True, phase: str | None = None) -> list[Protocol]:
        """The steps of a competing phase: the tier's ladder up to thermodynamics.step (with a
        relaxation first where thermodynamics.relax asks for it), with the thermodynamics
        k-point density for crystals and Gamma for molecules."""
        t = self.thermodynamics
        if t is None:
            return []
        relax = t.relax if isinstance(t.relax, bool) else (phase is None or phase in t.relax)
        physics = {k: v for k, v in self.protocol.items()
                   if k not in ("kpoints", "kpoint_density_inv_A")}
        if periodic:
            physics["kpoint_density_inv_A"] = t.kpoint_density_inv_A
        steps = ladder(self.tier, relax=relax, **physics)
        names = [p.name for p in steps]
        return steps[:names.index(t.step) + 1]

    def luminescence_models(self) -> list[ModelSpec]:
        lum = self.luminescence
        if lum is None:
            return []
        if lum.models is None:
            needed = lum.charges if lum.route == "charge" else [0]
            return [m for m in self.models if all(q in m.charges for q in needed)]
        return [m for m in self.models if m.label in lum.models]

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


def load_campaign(path: str | Path) -> CampaignSpec:
    """Read and validate a campaign YAML; every problem is one CampaignError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CampaignError(f"{path}: no such campaign file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise CampaignError(f"{path}: bad YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise CampaignError(f"{path}: a campaign must be a YAML mapping (name, code, models, ...)")
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise CampaignError(f"{path}: invalid campaign: {problems}") from None
