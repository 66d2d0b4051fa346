"""Shipped reference data of the thermodynamics: dielectric constants (with sources), the
Cs-Pb-Br competing-phase list (from perovdefect.structures.phases); experimental binary formation
enthalpies read from pymatgen."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from perovdefect.documents import Part
from perovdefect.errors import AnalysisError


class DielectricConstant(Part):
    """A shipped dielectric constant with its source and uncertainty."""

    host: str
    kind: Literal["total", "electronic"]
    value: float
    uncertainty: float | None
    source: str
    note: str = ""


def _load(name: str) -> dict[str, Any]:
    with resources.files("perovdefect.data").joinpath("thermo", name).open() as fh:
        return json.load(fh)


def dielectric_constant(host: str, kind: Literal["total", "electronic"] = "total"
                        ) -> DielectricConstant:
    """Shipped dielectric constant of a host ('total' = electronic + ionic, 'electronic' =
    eps_inf). Raises AnalysisError, saying what to do, where no value is shipped."""
    hosts = _load("dielectric.json")["hosts"]
    if host not in hosts:
        raise AnalysisError(f"no dielectric data for {host!r}; known: {sorted(hosts)}")
    if kind not in hosts[host]:
        raise AnalysisError(f"kind must be 'total' or 'electronic', got {kind!r}")
    rec = hosts[host][kind]
    if rec["value"] is None:
        raise AnalysisError(f"{host}: no {kind} dielectric constant is shipped ({rec['note']}); "
                            "pass your own value")
    return DielectricConstant(host=host, kind=kind, value=rec["value"],
                              uncertainty=rec["uncertainty"], source=rec["source"],
                              note=rec.get("note", ""))


def competing_phases() -> list[dict[str, Any]]:
    """The Cs-Pb-Br competing phases (name, formula, space group, structure source, whether a
    structure is shipped): a view of perovdefect.structures.phases, where they are built."""
    from perovdefect.structures.phases import PHASES, phase_spec, shipped_phases
    return [{"name": n, "formula": phase_spec(n).formula,
             "space_group": phase_spec(n).space_group_symbol, "source": phase_spec(n).source,
             "shipped": n in shipped_phases()} for n in PHASES]


@lru_cache(maxsize=1)
def _exp_compounds() -> dict[str, dict[str, Any]]:
    import pymatgen.analysis.compatibility as comp

    path = Path(comp.__file__).with_name("exp_compounds.json.gz")
    with gzip.open(path, "rt") as fh:
        return {d["formula"]: d for d in json.load(fh)}


def experimental_formation_enthalpy(formula: str) -> tuple[float, float]:
    """Experimental standard formation enthalpy (eV per formula unit) and its uncertainty (eV per
    atom, as given) from pymatgen's MP2020 fitting data (A. Wang et al., Sci. Rep. 11, 15496
    (2021)). Available for CsBr and PbBr2, not for the Cs-Pb-Br ternaries."""
    data = _exp_compounds()
    if formula not in data:
        raise AnalysisError(f"no experimental formation enthalpy for {formula} in pymatgen's "
                            "exp_compounds.json.gz")
    d = data[formula]
    return float(d["exp energy"]), float(d["uncertainty"])
