"""Luminescence results the project computed and ships (perovdefect/data/luminescence/), each
with its provenance: the command that regenerates it, when, on how many cores, how long.

They let the main job (`perovdefect demo`) headline a real total-energy prediction without
running an hour of DFT; the report labels them as shipped."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from perovdefect.errors import AnalysisError
from perovdefect.optics.run import LuminescenceResult

#: the shipped result the demo headlines: the neutral Br vacancy in the 21-atom Cs4PbBr6
#: crystal cell (the physical model; the isolated molecule, Cs4PbBr6_molecule_V_Br_q0.json, is
#: far too soft: see README "Luminescence in the crystal")
DEMO_RESULT = "Cs4PbBr6_V_Br_q0_21atoms.json"


def shipped_dir() -> Path:
    return Path(str(resources.files("perovdefect.data").joinpath("luminescence")))


def shipped_results() -> list[str]:
    """Names of the shipped luminescence results."""
    d = shipped_dir()
    return sorted(p.name for p in d.glob("*.json")) if d.is_dir() else []


def load_shipped(name: str = DEMO_RESULT) -> LuminescenceResult:
    """One shipped result; it must carry its provenance (AnalysisError otherwise)."""
    path = shipped_dir() / name
    if not path.is_file():
        raise AnalysisError(f"no shipped luminescence result {name!r} (shipped: "
                            f"{', '.join(shipped_results()) or 'none'})")
    result = LuminescenceResult.from_json(path)
    if result.provenance is None:
        raise AnalysisError(f"{path}: a shipped result must say how it was computed "
                            "(provenance)")
    return result
