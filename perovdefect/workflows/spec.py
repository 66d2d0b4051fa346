"""Campaign specifications (YAML), validated before anything is submitted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perovdefect.calcs.backend import get_backend
from perovdefect.calcs.protocol import LADDERS, Protocol, ladder
from perovdefect.errors import CampaignError, ProtocolError


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
    defects: list[Literal["V_Br"]] = ["V_Br"]
    charges: list[int] = [0]
    host_charge: int | None = None

    @field_validator("charges")
    @classmethod
    def _charges(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v) or any(abs(q) > 4 for q in v):
            raise ValueError("charges must be distinct integers with |q| <= 4")
        return v

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


class CampaignSpec(_Strict):
    """A whole campaign: models x defects x charges, each through the ladder tier with one code."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: a registered backend (perovdefect.calcs.backend.available_backends())
    code: str = Field(..., min_length=1)
    tier: str = "pbe"
    relax: bool = False
    models: list[ModelSpec] = Field(..., min_length=1)
    #: code-independent physics (perovdefect.calcs.Protocol fields)
    protocol: dict[str, Any] = {}
    #: the code's own settings over its defaults (validated by its backend)
    settings: dict[str, Any] = {}
    resources: Resources = Resources()
    pl_nm: float | None = Field(None, gt=0, allow_inf_nan=False)

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
        return self

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
