"""Formation energies of every defect type of one model at a competing-phase table's limits:
what `campaign collect` computes from its typed table (the workflow layer only picks the rows;
the thermodynamics is done here)."""

from __future__ import annotations

from collections.abc import Mapping

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.errors import PerovDefectError
from perovdefect.thermo.calculations import (CorrectionKind, FormationResult,
                                             formation_from_calculations, limits_for,
                                             shift_note_for)
from perovdefect.thermo.documents import CompetingPhases


def formation_by_defect(host: ElectronicStructure,
                        defects: Mapping[str, list[ElectronicStructure]],
                        phases: CompetingPhases, compound: str,
                        correction: CorrectionKind = "none", dielectric: float | None = None,
                        source: str = "competing-phase table",
                        dielectric_compound: str | None = None
                        ) -> dict[str, FormationResult | str]:
    """{defect name: its formation energies (every charge state given) at each chemical-
    potential limit of `compound`, or the one-line reason it cannot be computed}.

    defects: defect name (without charge, e.g. V_Br, Br_Cs) -> its step results, one per
    charge. correction applies to a defect with a charged state of a periodic host only (a
    neutral defect or a cluster needs none); dielectric: the host's constant for it (eps)."""
    from perovdefect.thermo.data import dielectric_constant
    out: dict[str, FormationResult | str] = {}
    for name, docs in defects.items():
        try:
            # clusters and neutral-only defects need no correction (formation_from_calculations
            # says so); only a charged periodic defect needs the dielectric constant
            charged = not host.is_cluster and any(
                round((d.charge or 0.0) - (host.charge or 0.0)) for d in docs)
            eps = dielectric
            if eps is None and charged and correction != "none":
                eps = dielectric_constant(dielectric_compound or compound).value
            out[name] = with_limits_note(formation_from_calculations(
                host, list(docs), chemical_potentials=limits_for(phases, host, compound, source),
                correction=correction, dielectric=eps, defect_name=name),
                shift_note_for(phases, host, compound))
        except PerovDefectError as exc:
            out[name] = str(exc)
    return out


def with_limits_note(result: FormationResult, note: str | None) -> FormationResult:
    """The result with what its chemical-potential limits rest on (a host shifted onto the
    hull) in its chemical_potentials text and its warnings; unchanged when note is None."""
    if note:
        result.chemical_potentials = f"given limits; {note}"
        result.warnings.append(note)
    return result
