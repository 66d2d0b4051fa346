"""Level analysis of one model: host vs each defect charge state at the ladder's final step."""

from __future__ import annotations

from perovdefect.errors import AnalysisError
from perovdefect.levels import compare_with_pl, find_in_gap_states, soc_corrected_gap
from perovdefect.parsers.document import ElectronicStructure


def analyze_model(results: list[dict], final_step: str, pl_nm: float | None = None) -> dict:
    """`results`: dicts with role (host/defect), charge, step, path (result.json)."""
    final = [r for r in results if r["step"] == final_step]
    hosts = [r for r in final if r["role"] == "host"]
    if not hosts:
        raise AnalysisError(f"no host result at step {final_step!r} among {len(results)} results")
    host = ElectronicStructure.from_json(hosts[0]["path"])
    out: dict = {"final_step": final_step, "host": host.summary(), "defects": {}}
    gaps = {r["step"]: ElectronicStructure.from_json(r["path"]).gap_eV
            for r in results if r["role"] == "host"}
    if {"pbe", "pbe-soc", "hse06"} <= set(gaps):
        out["host_gap_hse06_soc_corrected_eV"] = soc_corrected_gap(gaps["hse06"], gaps["pbe"],
                                                                   gaps["pbe-soc"])
    out["host_gaps_by_step_eV"] = gaps
    for r in sorted((r for r in final if r["role"] == "defect"), key=lambda r: r["charge"]):
        levels = find_in_gap_states(host, ElectronicStructure.from_json(r["path"]))
        if pl_nm:
            levels.pl_comparison = compare_with_pl(levels.transitions_eV, pl_nm)
        out["defects"][r["label"]] = {"charge": r["charge"], **levels.to_dict()}
    return out
