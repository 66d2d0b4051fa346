"""The report's "Fermi level and defect concentrations" section: every DefectThermodynamics
document given to the report (a `formation --fermi` result's, a campaign model's), its table of
Fermi levels and carrier densities per chemical-potential limit, its concentration table per
defect and charge, and what the numbers rest on (host DOS, sites, assumptions, warnings).

The report model keeps the documents themselves (ConcentrationSection, typed, in report.json);
this module only turns them into rows for the template. The figure is
perovdefect.report.figures.concentration_figure, drawn from the same document."""

from __future__ import annotations

from typing import Any

from perovdefect.documents import Part
from perovdefect.thermo.documents import DefectThermodynamics, FermiLevelSolution


class ConcentrationSection(Part):
    """One set of Fermi levels and concentrations in the report: its label, where it comes
    from, and the document (or, for a campaign model, why there is none)."""

    label: str
    source: str
    result: DefectThermodynamics | None = None
    problem: str | None = None


def concentration_sections(formation: list[Any], entries: list[Any]
                           ) -> list[ConcentrationSection]:
    """The sections of the FormationResults that carry thermodynamics (`formation --fermi`) and
    of a campaign table's ConcentrationEntry rows (perovdefect.workflows.table)."""
    out = [ConcentrationSection(label=f.diagram.defect, source="formation result",
                                result=f.thermodynamics)
           for f in formation if f.thermodynamics is not None]
    out += [ConcentrationSection(label=f"{e.campaign}/{e.model}",
                                 source=f"campaign {e.campaign}, model {e.model}",
                                 result=e.result, problem=e.problem) for e in entries]
    return out


def _cm3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3e}"


def _ev(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def fermi_table(th: DefectThermodynamics) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per limit the equilibrium Fermi level (eV above the VBM), n and p
    (cm^-3) at the synthesis temperature, and the frozen-defect ones after the quench."""
    header = ["limit", f"E_F at {th.temperature_K:g} K (eV above VBM)", "n (cm^-3)",
              "p (cm^-3)"]
    if th.quench_temperature_K is not None:
        t2 = f"{th.quench_temperature_K:g} K"
        header += [f"E_F frozen at {t2} (eV above VBM)", f"n at {t2} (cm^-3)",
                   f"p at {t2} (cm^-3)"]
    rows = []
    for lim in th.limits:
        row = [lim.limit] + _fermi_cells(lim.equilibrium)
        if th.quench_temperature_K is not None:
            row += _fermi_cells(lim.quenched)
        rows.append(row)
    return header, rows


def _fermi_cells(sol: FermiLevelSolution | None) -> list[str]:
    if sol is None:
        return ["-"] * 3
    return [_ev(sol.fermi_level_above_vbm_eV), _cm3(sol.electrons_cm3), _cm3(sol.holes_cm3)]


def solutions(th: DefectThermodynamics) -> list[tuple[str, FermiLevelSolution]]:
    """(column title, solution) for every limit: equilibrium, then frozen where quenched."""
    out = [(f"{lim.limit}, {th.temperature_K:g} K", lim.equilibrium) for lim in th.limits]
    if th.quench_temperature_K is not None:
        out += [(f"{lim.limit}, frozen at {th.quench_temperature_K:g} K", lim.quenched)
                for lim in th.limits if lim.quenched is not None]
    return out


def concentration_table(th: DefectThermodynamics) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per defect and charge state (and one total per defect), one
    concentration column (cm^-3) per limit and temperature."""
    cols = solutions(th)
    keys = list(dict.fromkeys((c.defect, c.charge) for _, sol in cols
                              for c in sol.concentrations))
    values = [{(c.defect, c.charge): c.concentration_cm3 for c in sol.concentrations}
              for _, sol in cols]
    rows = []
    for defect in th.defects:
        rows += [[defect, f"{q:+d}"] + [_cm3(v.get((defect, q))) for v in values]
                 for d, q in keys if d == defect]
        rows.append([defect, "total"] + [_cm3(sol.total_concentrations_cm3.get(defect))
                                         for _, sol in cols])
    return ["defect", "charge"] + [f"{title} (cm^-3)" for title, _ in cols], rows


def dos_text(th: DefectThermodynamics) -> str:
    """How the host DOS of the carrier densities was built (its provenance), in one line."""
    d = th.host_dos
    return (f"host DOS from {d.source}: {d.smearing} smearing of {d.smearing_width_eV:g} eV "
            f"of the eigenvalues at {d.kpoints}, {d.nspins} spin "
            f"channel(s){', SOC' if d.soc else ''}, {d.n_bands} bands reaching "
            f"{d.bands_reach_above_cbm_eV:.2f} eV above the CBM, grid step "
            f"{d.energy_step_eV:.3g} eV; gap {d.band_gap_eV:.4f} eV, cell volume "
            f"{d.cell_volume_A3:.3f} A^3, {d.electrons_below_midgap:.3f} electrons below "
            "mid-gap" + ("" if d.n_electrons is None else f" (run: {d.n_electrons:g})"))


def concentration_view(sections: list[ConcentrationSection]) -> list[dict[str, Any]]:
    """What the template's concentration section shows, one entry per section."""
    out = []
    for i, s in enumerate(sections):
        view: dict[str, Any] = {"label": s.label, "source": s.source, "problem": s.problem,
                                "figure": f"concentrations{i}.png"}
        th = s.result
        if th is not None:
            view.update(
                fermi=fermi_table(th), concentrations=concentration_table(th),
                dos=dos_text(th), assumptions=th.assumptions, warnings=th.warnings,
                methods=sorted({sol.method for _, sol in solutions(th)}),
                sites=[[d, th.sites_per_cell[d], th.sites_from.get(d, "-"),
                        ", ".join(f"{q:+d}: {g}" for q, g in th.degeneracies.get(d, {}).items())
                        or "1"] for d in th.defects])
        out.append(view)
    return out
