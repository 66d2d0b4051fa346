"""In-gap (mid-gap) states of a defect calculation relative to its host's band edges, each
classified as a localised defect state, a perturbed host state or a delocalised state.

Classification (in the spirit of pydefect's band-edge-state analysis, which doped uses): each
state is compared with the host state at the band edge it resembles in elemental character
(cosine similarity of the element-weight vectors; without localisation data, the nearer edge):
- host-like (similarity >= SIMILAR_CHARACTER) with its band's occupation (an occupied
  valence-like or an empty conduction-like state), or host-like within EDGE_WINDOW_EV of its
  edge, and -- in periodic hosts -- not LOCALIZED_RATIO times more localised than the host
  edge (near the edge or deep: the alignment must not decide it): "perturbed_host" -- the
  host band shifted by the defect (a shallow level, or the valence states of a charged
  cluster pushed up by its extra charge);
- host-like but deep in the gap with the opposite occupation (an electron in a conduction-like
  state, a hole in a valence-like state): "defect" -- a trapped carrier, such as the Pb-6p
  electron of a Br vacancy;
- unlike either edge: "defect" when deep in the gap or more localised than the host edge
  (IPR ratio > LOCALIZED_RATIO), else "delocalized".
Measured on GPAW [PbBr5] models: the Br-p states that symmetry breaking localises on one Br
(IPR 0.9 against the host VBM's 0.15) are valence-like and occupied, so an IPR rule alone would
call them defect states; the occupation rule does not. Without localisation data only the
energy rule applies (within the window: perturbed host; deeper: defect) and `basis` says so.
The numbers behind each decision are stored with the state.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from perovdefect.calcs.document import OCC_THRESHOLD, BandState, ElectronicStructure
from perovdefect.documents import Document, Part
from perovdefect.errors import AnalysisError
from perovdefect.levels.pl import PLComparison
from perovdefect.units import ev_to_nm

EDGE_TOLERANCE_EV = 0.05  # a state must lie this far inside the host gap to count as in-gap
EDGE_WINDOW_EV = 0.2  # states this close to a host edge may be perturbed host states
LOCALIZED_RATIO = 1.5  # IPR / IPR(host edge state) above this: localised beyond the host
SIMILAR_CHARACTER = 0.9  # cosine similarity of elemental character: host-like above this

Kind = Literal["defect", "perturbed_host", "delocalized"]


class InGapState(Part):
    """One state inside the host gap (energies in eV; above_vbm after alignment)."""

    spin: int
    k: int
    band: int
    energy_above_vbm_eV: float
    energy_eV: float
    occupation: float
    state_to_vbm_eV: float
    cbm_to_state_eV: float
    transition_eV: float
    transition_nm: float
    kind: Kind = "defect"
    #: what the classification rests on: "localisation" or "energy only"
    basis: str = "energy only"
    ipr: float | None = None
    character: dict[str, float] = Field(default_factory=dict)
    outside_weight: float | None = None
    nearest_edge: Literal["VBM", "CBM"] = "VBM"
    edge_distance_eV: float = 0.0
    localization_ratio: float | None = None
    character_similarity: float | None = None


class Verdict(Part):
    """Short verdict for one defect and charge: its localised states, the perturbed host states
    it creates, and the one transition compared with the PL (rule stated)."""

    occupied_defect_states: int
    empty_defect_states: int
    perturbed_host_states: int
    shallow: bool
    pl_transition_eV: float | None
    pl_transition_nm: float | None
    rule: str
    text: str


class DefectLevels(Document):
    """Host edges and in-gap states (eV). Energies of states are given above the host VBM,
    after aligning the defect calculation to the host (see `alignment`)."""

    REGENERATE_HINT = "re-run `perovdefect levels` on the calculations"

    host_vbm_eV: float
    host_cbm_eV: float
    host_gap_eV: float
    alignment: str
    alignment_shift_eV: float
    alignment_fallback: bool = False
    in_gap_states: list[InGapState] = Field(default_factory=list)
    defect_gap_eV: float | None = None
    host_functional: str = ""
    defect_functional: str = ""
    host_code: str = ""
    defect_code: str = ""
    mixed_levels_of_theory: bool = False
    soc: bool = False
    unbound: bool = False
    verdict: Verdict | None = None
    pl_comparison: PLComparison | None = None
    warnings: list[str] = Field(default_factory=list)

    UNVERSIONED_IS_LEGACY = True

    @classmethod
    def _upgrade(cls, data, source):
        """perovdefect 0.1 wrote no schema version (or 1); its states had no kind."""
        if data.get("schema_version", 1) != 1:
            return super()._upgrade(data, source)
        for s in data.get("in_gap_states", []):
            s.setdefault("kind", "defect")
        return data

    @property
    def defect_states(self) -> list[InGapState]:
        return [s for s in self.in_gap_states if s.kind == "defect"]

    @property
    def transitions_eV(self) -> list[float]:
        """Candidate optical transitions of the localised defect states only: occupied state ->
        VBM hole, CBM electron -> empty state."""
        return [s.transition_eV for s in self.defect_states]


def _alignment(host: ElectronicStructure, defect: ElectronicStructure,
               how: str) -> tuple[str, float, bool]:
    """(label, shift added to defect energies, fell back to the deepest level?)."""
    if how == "auto":
        if host.is_cluster and defect.is_cluster and host.vacuum_level_eV is not None and \
                defect.vacuum_level_eV is not None:
            how = "vacuum"
        elif host.planar_potential is not None and defect.planar_potential is not None:
            how = "potential"
        else:
            label, shift, _ = _alignment(host, defect, "deep_level")
            return label, shift, True
    if how == "vacuum":
        if host.vacuum_level_eV is None or defect.vacuum_level_eV is None:
            raise AnalysisError("vacuum alignment needs vacuum levels in both documents "
                                "(cluster calculations)")
        return "vacuum level (electrostatic potential at the box faces)", \
            host.vacuum_level_eV - defect.vacuum_level_eV, False
    if how == "potential":
        return "electrostatic potential far from the defect", potential_alignment(host, defect), \
            False
    if how == "deep_level":
        # deepest eigenvalue (a core-like semicore band) of each calculation
        return "deepest (core-like) eigenvalue", float(
            np.min(host.eigenvalues_eV) - np.min(defect.eigenvalues_eV)), False
    if how == "none":
        return "none (absolute eigenvalues)", 0.0, False
    raise AnalysisError(f"unknown alignment {how!r}; use auto, vacuum, potential, deep_level "
                        "or none")


def potential_alignment(host: ElectronicStructure, defect: ElectronicStructure) -> float:
    """Shift (eV) that puts the defect's eigenvalues on the host's scale: the host minus defect
    planar-averaged electrostatic potential, averaged over the half of each axis farthest from
    the potential's largest deviation (the region the FNV correction also samples)."""
    hp, dp = host.planar_potential, defect.planar_potential
    if hp is None or dp is None:
        raise AnalysisError("potential alignment needs the electrostatic potential in both "
                            "documents (periodic calculations)")
    if not np.allclose(hp.cell_A, dp.cell_A, atol=1e-3):
        raise AnalysisError("potential alignment needs host and defect cells of the same shape "
                            "and size")
    shifts = []
    for h, d in zip(hp.averages_eV, dp.averages_eV):
        h, d = np.asarray(h), np.asarray(d)
        if h.shape != d.shape:
            raise AnalysisError(f"host and defect potential grids differ ({h.shape} vs "
                                f"{d.shape}): use the same cutoff and grid")
        diff = h - d
        centre = int(np.argmax(np.abs(diff - np.median(diff))))
        n = len(diff)
        far = [(centre + n // 4 + i) % n for i in range(n // 2)]
        shifts.append(float(np.mean(diff[far])))
    return float(np.mean(shifts))


def _vector(character: dict[str, float], elements: list[str]) -> np.ndarray:
    return np.array([character.get(e, 0.0) for e in elements])


def _similarity(a: dict[str, float], b: dict[str, float]) -> float:
    elements = sorted(set(a) | set(b))
    va, vb = _vector(a, elements), _vector(b, elements)
    norm = np.linalg.norm(va) * np.linalg.norm(vb)
    return float(va @ vb / norm) if norm > 0 else 0.0


def _host_edge_states(host: ElectronicStructure) -> dict[str, BandState | None]:
    """The host's localisation records of its VBM and CBM states (None where absent)."""
    occ = [b for b in host.band_localization if b.occupation > OCC_THRESHOLD]
    emp = [b for b in host.band_localization if b.occupation <= OCC_THRESHOLD]
    return {"VBM": max(occ, key=lambda b: b.energy_eV) if occ else None,
            "CBM": min(emp, key=lambda b: b.energy_eV) if emp else None}


def classify(item: dict, loc: BandState | None, edges: dict[str, BandState | None],
             host: ElectronicStructure, e_aligned: float) -> dict:
    """Add kind, basis and the numbers behind them to one in-gap state's fields."""
    d_vbm, d_cbm = e_aligned - host.vbm_eV, host.cbm_eV - e_aligned
    edge = "VBM" if d_vbm <= d_cbm else "CBM"
    if loc is not None and loc.character:
        sims = {e: _similarity(loc.character, s.character) for e, s in edges.items()
                if s is not None and s.character}
        if sims:
            edge = max(sims, key=sims.get)
    depth = d_vbm if edge == "VBM" else d_cbm
    item.update(nearest_edge=edge, edge_distance_eV=round(depth, 4))
    ref = edges.get(edge)
    if loc is None or ref is None or not loc.character or ref.ipr <= 0:
        item["basis"] = "energy only"
        item["kind"] = "perturbed_host" if depth <= EDGE_WINDOW_EV else "defect"
        return item
    ratio = loc.ipr / ref.ipr
    sim = _similarity(loc.character, ref.character)
    item.update(basis="localisation", localization_ratio=round(ratio, 3),
                character_similarity=round(sim, 3))
    occupied = item["occupation"] > OCC_THRESHOLD
    band_occupation = occupied == (edge == "VBM")  # occupied valence-like / empty conduction-like
    # in a periodic host the host's edge states spread over the whole cell, so a host-like
    # state LOCALIZED_RATIO times more localised is a defect state, however near the edge the
    # alignment puts it (measured: the empty Pb-p state of V_Br+ in 2x2x2 CsPbBr3, 0.94 eV
    # below the CBM, 3.7x, beside its CBM-like states 0.19 eV below the CBM at 1.43x; the
    # empty Ga dangling-bond state of GaN V_N+2 at 3.4x, which FNV's alignment term puts
    # 0.15 eV below the CBM, beside valence-like states 0.15-0.19 eV above the VBM at 1.2-1.4x);
    # in a cluster of a few atoms every state is "localised" and the ratio says nothing
    localized = not host.is_cluster and ratio > LOCALIZED_RATIO
    if sim >= SIMILAR_CHARACTER:
        item["kind"] = "perturbed_host" if (band_occupation or depth <= EDGE_WINDOW_EV) \
            and not localized else "defect"
    elif depth > EDGE_WINDOW_EV or ratio > LOCALIZED_RATIO:
        item["kind"] = "defect"
    else:
        item["kind"] = "delocalized"
    return item


def verdict(states: list[InGapState]) -> Verdict:
    """The short verdict; the PL transition is the occupied defect state deepest in the gap
    (emission by recombination of a VBM hole with its electron) or, with none occupied, the
    empty defect state deepest below the CBM."""
    occ = [s for s in states if s.kind == "defect" and s.occupation > OCC_THRESHOLD]
    emp = [s for s in states if s.kind == "defect" and s.occupation <= OCC_THRESHOLD]
    host = [s for s in states if s.kind == "perturbed_host"]
    rule = ("the occupied defect state farthest above the VBM (state -> VBM hole); with none "
            "occupied, the empty defect state farthest below the CBM (CBM electron -> state)")
    pick = max(occ, key=lambda s: s.state_to_vbm_eV) if occ else (
        max(emp, key=lambda s: s.cbm_to_state_eV) if emp else None)
    shallow = not occ and not emp and bool(host)
    text = (f"{len(occ)} occupied and {len(emp)} empty localised defect state(s), "
            f"{len(host)} perturbed host state(s)")
    if shallow:
        text += "; a shallow defect (only perturbed host states)"
    if pick is not None:
        text += f"; compared with the PL: {pick.transition_eV:.3f} eV ({pick.transition_nm:.0f} nm)"
    return Verdict(occupied_defect_states=len(occ), empty_defect_states=len(emp),
                   perturbed_host_states=len(host), shallow=shallow,
                   pl_transition_eV=pick.transition_eV if pick else None,
                   pl_transition_nm=pick.transition_nm if pick else None, rule=rule, text=text)


def check_comparable(host: ElectronicStructure, defect: ElectronicStructure,
                     allow_mixed: bool = False) -> list[str]:
    """Refuse a host and a defect of different codes or levels of theory (AnalysisError), or
    with allow_mixed return the warning that says so."""
    problems = host.theory_differences(defect)
    if not problems:
        return []
    msg = f"host {host.source} and defect {defect.source}: " + "; ".join(problems)
    if not allow_mixed:
        raise AnalysisError(msg + " (`allow_mixed` compares them anyway)")
    return [msg + " (compared anyway: `allow_mixed`)"]


def find_in_gap_states(host: ElectronicStructure, defect: ElectronicStructure,
                       alignment: str = "auto", tolerance_eV: float = EDGE_TOLERANCE_EV,
                       allow_mixed: bool = False) -> DefectLevels:
    """States of `defect` lying inside the host gap after alignment, with occupation, spin,
    k-point, localisation (IPR, elemental character) where the document has it, and a kind."""
    if host.gap_eV is None or host.gap_eV <= 0:
        raise AnalysisError(f"{host.source}: host has no gap ({host.gap_eV} eV)")
    mixed = check_comparable(host, defect, allow_mixed)
    warnings = [w for doc in (host, defect) for w in doc.warnings] + mixed + [
        f"host {host.source} and defect {defect.source}: level of theory not compared: {n}"
        for n in host.theory_not_compared(defect)]
    label, shift, fallback = _alignment(host, defect, alignment)
    if fallback:
        warnings.append("alignment fell back to the deepest eigenvalue: no vacuum level or "
                        "electrostatic potential in both documents; not valid for charged "
                        "periodic cells")
    eps = np.asarray(defect.eigenvalues_eV, dtype=float) + shift
    occ = np.asarray(defect.occupations, dtype=float)
    loc = {(b.spin, b.k, b.band): b for b in defect.band_localization}
    edges = _host_edge_states(host)
    lo, hi = host.vbm_eV + tolerance_eV, host.cbm_eV - tolerance_eV
    states = []
    for s, k, n in zip(*np.nonzero((eps > lo) & (eps < hi))):
        e = float(eps[s, k, n])
        b = loc.get((int(s), int(k), int(n)))
        transition = e - host.vbm_eV if occ[s, k, n] > OCC_THRESHOLD else host.cbm_eV - e
        item = {"spin": int(s), "k": int(k), "band": int(n),
                "energy_above_vbm_eV": round(e - host.vbm_eV, 4), "energy_eV": round(e, 4),
                "occupation": round(float(occ[s, k, n]), 4),
                "state_to_vbm_eV": round(e - host.vbm_eV, 4),
                "cbm_to_state_eV": round(host.cbm_eV - e, 4),
                "transition_eV": round(transition, 4),
                "transition_nm": round(float(ev_to_nm(transition)), 1)}
        if b is not None:
            item.update(ipr=b.ipr, character=b.character, outside_weight=b.outside_weight)
        states.append(InGapState(**classify(item, b, edges, host, e)))
    states.sort(key=lambda x: x.energy_above_vbm_eV)
    unbound = bool(defect.is_cluster and defect.charge and defect.vacuum_level_eV is not None
                   and defect.vbm_eV is not None and defect.vbm_eV > defect.vacuum_level_eV)
    if unbound:
        warnings.append(f"{defect.source}: charged isolated cluster whose highest occupied state "
                        f"({defect.vbm_eV:.2f} eV) lies above the vacuum level "
                        f"({defect.vacuum_level_eV:.2f} eV): the extra electron is unbound, so "
                        "its levels are not a result")
    return DefectLevels(host_vbm_eV=host.vbm_eV, host_cbm_eV=host.cbm_eV,
                        host_gap_eV=host.gap_eV, alignment=label,
                        alignment_shift_eV=round(shift, 4), alignment_fallback=fallback,
                        in_gap_states=states, defect_gap_eV=defect.gap_eV,
                        host_functional=host.functional, defect_functional=defect.functional,
                        host_code=host.code, defect_code=defect.code,
                        mixed_levels_of_theory=bool(mixed), soc=defect.soc, unbound=unbound,
                        verdict=verdict(states), warnings=warnings)


def soc_corrected_gap(gap_hse_eV: float, gap_pbe_eV: float, gap_pbe_soc_eV: float) -> float:
    """gap(HSE06+SOC) ~ gap(HSE06) + [gap(PBE+SOC) - gap(PBE)] (eV): the cheap SOC correction."""
    return gap_hse_eV + (gap_pbe_soc_eV - gap_pbe_eV)
