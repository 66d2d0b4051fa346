"""In-gap (mid-gap) states of a defect calculation relative to its host's band edges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.parsers.document import OCC_THRESHOLD, ElectronicStructure
from perovdefect.units import ev_to_nm

EDGE_TOLERANCE_EV = 0.05  # a state must lie this far inside the host gap to count as in-gap


@dataclass
class DefectLevels:
    """Host edges and in-gap states (eV). Energies of states are given above the host VBM,
    after aligning the defect calculation to the host (see `alignment`)."""

    host_vbm_eV: float
    host_cbm_eV: float
    host_gap_eV: float
    alignment: str
    alignment_shift_eV: float
    in_gap_states: list[dict[str, Any]] = field(default_factory=list)
    defect_gap_eV: float | None = None
    host_functional: str = ""
    defect_functional: str = ""
    soc: bool = False
    pl_comparison: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def transitions_eV(self) -> list[float]:
        """Candidate optical transitions: occupied state -> VBM hole, CBM electron -> empty state."""
        out = []
        for s in self.in_gap_states:
            out.append(s["state_to_vbm_eV"] if s["occupation"] > OCC_THRESHOLD
                       else s["cbm_to_state_eV"])
        return out


def _alignment(host: ElectronicStructure, defect: ElectronicStructure,
               how: str) -> tuple[str, float]:
    """Shift (eV) added to defect energies to put them on the host's scale."""
    if how == "auto":
        how = "vacuum" if (host.is_cluster and defect.is_cluster and
                           host.vacuum_level_eV is not None and
                           defect.vacuum_level_eV is not None) else "deep_level"
    if how == "vacuum":
        if host.vacuum_level_eV is None or defect.vacuum_level_eV is None:
            raise AnalysisError("vacuum alignment needs vacuum levels in both documents "
                                "(cluster calculations)")
        return "vacuum level (electrostatic potential at the box faces)", \
            host.vacuum_level_eV - defect.vacuum_level_eV
    if how == "deep_level":
        # deepest eigenvalue (a core-like semicore band) of each calculation
        return "deepest (core-like) eigenvalue", float(
            np.min(host.eigenvalues_eV) - np.min(defect.eigenvalues_eV))
    if how == "none":
        return "none (absolute eigenvalues)", 0.0
    raise AnalysisError(f"unknown alignment {how!r}; use auto, vacuum, deep_level or none")


def find_in_gap_states(host: ElectronicStructure, defect: ElectronicStructure,
                       alignment: str = "auto",
                       tolerance_eV: float = EDGE_TOLERANCE_EV) -> DefectLevels:
    """States of `defect` lying inside the host gap after alignment, with occupation, spin,
    k-point and (when the document has it) localisation (IPR, elemental character)."""
    if host.gap_eV is None or host.gap_eV <= 0:
        raise AnalysisError(f"{host.source}: host has no gap ({host.gap_eV} eV)")
    warnings = [w for doc in (host, defect) for w in doc.warnings]
    if host.functional != defect.functional or host.soc != defect.soc:
        warnings.append(f"host ({host.functional}{'+SOC' if host.soc else ''}) and defect "
                        f"({defect.functional}{'+SOC' if defect.soc else ''}) differ in level "
                        "of theory")
    label, shift = _alignment(host, defect, alignment)
    eps = np.asarray(defect.eigenvalues_eV, dtype=float) + shift
    occ = np.asarray(defect.occupations, dtype=float)
    loc = {(b["spin"], b["k"], b["band"]): b for b in defect.band_localization}
    lo, hi = host.vbm_eV + tolerance_eV, host.cbm_eV - tolerance_eV
    states = []
    for s, k, n in zip(*np.nonzero((eps > lo) & (eps < hi))):
        e = float(eps[s, k, n])
        item = {"spin": int(s), "k": int(k), "band": int(n),
                "energy_above_vbm_eV": round(e - host.vbm_eV, 4),
                "energy_eV": round(e, 4), "occupation": round(float(occ[s, k, n]), 4),
                "state_to_vbm_eV": round(e - host.vbm_eV, 4),
                "cbm_to_state_eV": round(host.cbm_eV - e, 4)}
        if (s, k, n) in loc:
            item["ipr"] = loc[(s, k, n)]["ipr"]
            item["character"] = loc[(s, k, n)]["character"]
            if "outside_weight" in loc[(s, k, n)]:
                item["outside_weight"] = loc[(s, k, n)]["outside_weight"]
        transition = item["state_to_vbm_eV"] if item["occupation"] > OCC_THRESHOLD \
            else item["cbm_to_state_eV"]
        item["transition_eV"] = transition
        item["transition_nm"] = round(float(ev_to_nm(transition)), 1)
        states.append(item)
    states.sort(key=lambda x: x["energy_above_vbm_eV"])
    return DefectLevels(host_vbm_eV=host.vbm_eV, host_cbm_eV=host.cbm_eV,
                        host_gap_eV=host.gap_eV, alignment=label,
                        alignment_shift_eV=round(shift, 4), in_gap_states=states,
                        defect_gap_eV=defect.gap_eV, host_functional=host.functional,
                        defect_functional=defect.functional, soc=defect.soc, warnings=warnings)


def soc_corrected_gap(gap_hse_eV: float, gap_pbe_eV: float, gap_pbe_soc_eV: float) -> float:
    """gap(HSE06+SOC) ~ gap(HSE06) + [gap(PBE+SOC) - gap(PBE)] (eV): the cheap SOC correction."""
    return gap_hse_eV + (gap_pbe_soc_eV - gap_pbe_eV)
