"""`perovdefect build defects|distortions`: native defects of a shipped host (pymatgen-analysis-
defects' generators) and ShakeNBreak's distorted starting structures of one of them.

Both commands hang in the `build` group (registered by importing this module, see cli/main.py).
Every bad value is one line `error: ...` with exit code 2; an output folder with files in it is
not written into without --force.
"""

from __future__ import annotations

from pathlib import Path

import click

from perovdefect.cli.build import SUFFIXES, _write, build
from perovdefect.cli.common import FiniteFloat, NumberList, dump_json, echo_json, output_dir
from perovdefect.errors import StructureError
from perovdefect.structures.supercells import DEFAULT_MAX_ATOMS
from perovdefect.structures.vacancies import MAX_ABS_CHARGE

DEFECT_KEYS = ("name", "defect", "defect_label", "defect_type", "parent", "wyckoff",
               "multiplicity", "supercell_multiplicity", "generator_multiplicity", "site_index",
               "supercell_site_index", "site_frac_coords", "defect_position_A", "oxi_state",
               "charges_proposed", "charge", "electrons_total", "valence_electrons",
               "spin_multiplicity", "image_distance_A", "supercell_of", "n_unit_cells",
               "supercell_matrix", "n_atoms", "formula", "generator")
DISTORTION_KEYS = ("name", "defect_label", "charge", "distortion", "bond_distortion",
                   "distortion_factor", "num_distorted_neighbours", "distorted_atoms",
                   "rattle_stdev_A", "rattle_seed", "local_rattle", "dimer_bond_length_A",
                   "defect_position_A", "image_distance_A", "n_atoms", "formula")


def _types(ctx: click.Context, param: click.Parameter, text: str) -> tuple[str, ...]:
    from perovdefect.structures.defects import check_types
    try:
        return check_types(text)
    except StructureError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _size_options(f):
    """--min-image-distance, --target-atoms, --max-atoms, --lattice (as `build vacancies`)."""
    for opt in reversed([
        click.option("--min-image-distance", type=FiniteFloat(min=0, min_open=True),
                     help="Minimum periodic-image distance (A), > 0; the supercell (of the "
                          "primitive cell) with the fewest atoms meeting it is built."),
        click.option("--target-atoms", type=click.IntRange(min=1),
                     help="Aim for about this many atoms instead (>= 1)."),
        click.option("--max-atoms", type=click.IntRange(min=1), default=DEFAULT_MAX_ATOMS,
                     show_default=True, help="Refuse (before searching) larger supercells."),
        click.option("--lattice", type=click.Choice(["pbe", "experimental"]), default="pbe",
                     show_default=True)]):
        f = opt(f)
    return f


def _output_options(f):
    """-o DIR, --format, --force, --json."""
    for opt in reversed([
        click.option("-o", "--output", "outdir", type=click.Path(file_okay=False),
                     help="Folder for one structure file per record plus summary.json."),
        click.option("--format", "fmt", default="poscar", show_default=True,
                     type=click.Choice(list(SUFFIXES)),
                     help="File format (poscar writes NAME.vasp)."),
        click.option("--force", is_flag=True, help="Write into a non-empty output folder."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")]):
        f = opt(f)
    return f


def _check_size(min_image_distance: float | None, target_atoms: int | None) -> None:
    if min_image_distance is not None and target_atoms is not None:
        raise StructureError("give --min-image-distance or --target-atoms, not both")


def _write_all(records, keys: tuple[str, ...], outdir: str | None, fmt: str) -> list[dict]:
    """Summary rows of `records`; with `outdir`, each record's file and summary.json."""
    summary = [{k: r.summary().get(k) for k in keys} for r in records]
    if outdir:
        from perovdefect.documents import write_atomic
        out = Path(outdir)
        for r, s in zip(records, summary):
            s["file"] = _write(r, out / f"{r.name}{SUFFIXES[fmt]}").name
        try:
            write_atomic(out / "summary.json", dump_json(summary))
        except OSError as exc:
            raise StructureError(f"{out / 'summary.json'}: cannot write: {exc.strerror}") from None
    return summary


@build.command("defects")
@click.argument("compound")
@click.option("--types", "types", default=",".join(("vacancies", "antisites", "interstitials")),
              show_default=True, callback=_types,
              help="Comma-separated defect families: vacancies, antisites, interstitials.")
@click.option("--defects", "names",
              help="Only these defects (comma-separated names or labels, e.g. V_Br,Br_Cs_18e).")
@_size_options
@_output_options
def defects(compound: str, types: tuple[str, ...], names: str | None,
            min_image_distance: float | None, target_atoms: int | None, max_atoms: int,
            lattice: str, outdir: str | None, fmt: str, force: bool, as_json: bool) -> None:
    """Native defects of a shipped host, one supercell per defect and charge state.

    Vacancies, antisites and interstitials from pymatgen-analysis-defects' generators, each
    symmetry-distinct with its Wyckoff label and multiplicity (conventional cell) and the charge
    states the library proposes. Supercells are those of `build vacancies`."""
    from perovdefect.structures.defects import build_defects
    _check_size(min_image_distance, target_atoms)
    output_dir(outdir, force)
    records = build_defects(compound, types, names, min_image_distance, target_atoms,
                            lattice=lattice, max_atoms=max_atoms)
    summary = _write_all(records, DEFECT_KEYS, outdir, fmt)
    if as_json:
        echo_json(summary)
        return
    for s in summary:
        click.echo(f"{s['name']:22s} {s['defect_type']:12s} Wyckoff {s['wyckoff']:4s} "
                   f"x{s['multiplicity']:<3d} q={s['charge']:+d} {s['n_atoms']} atoms, "
                   f"image {s['image_distance_A']:.2f} A")
    if outdir:
        click.echo(f"wrote {len(records)} structures and summary.json to {outdir}")


@build.command("distortions")
@click.argument("compound")
@click.argument("defect")
@click.option("--charge", required=True, type=click.IntRange(-MAX_ABS_CHARGE, MAX_ABS_CHARGE),
              help=f"Charge state (e), |q| <= {MAX_ABS_CHARGE}.")
@click.option("--bond-distortions", type=NumberList(min=-1, max=1, min_open=True),
              help="Bond distortions as fractions (e.g. -0.4,-0.2,0.2); default ShakeNBreak's "
                   "-0.6 ... +0.6 in steps of 0.1.")
@click.option("--dimer/--no-dimer", default=None,
              help="Add ShakeNBreak's Dimer distortion (default: for vacancies).")
@click.option("--stdev", type=FiniteFloat(min=0, min_open=True, max=1.0),
              help="Rattle standard deviation (A; default 10% of the nearest-neighbour distance).")
@click.option("--seed", type=click.IntRange(min=0), help="Rattle random seed.")
@click.option("--local-rattle", is_flag=True, help="Rattle amplitude decaying from the defect.")
@_size_options
@_output_options
def distortions(compound: str, defect: str, charge: int, bond_distortions: tuple | None,
                dimer: bool | None, stdev: float | None, seed: int | None, local_rattle: bool,
                min_image_distance: float | None, target_atoms: int | None, max_atoms: int,
                lattice: str, outdir: str | None, fmt: str, force: bool, as_json: bool) -> None:
    """ShakeNBreak's distorted starting structures of DEFECT (one site: a label from `build
    defects`, e.g. V_Br, Br_Cs_18e) in charge state --charge: bond distortions of the number of
    neighbours its electron-count rule gives, rattling, and its Dimer distortion."""
    from perovdefect.structures.distortions import build_distortions
    _check_size(min_image_distance, target_atoms)
    output_dir(outdir, force)
    records = build_distortions(compound, defect, charge, min_image_distance, target_atoms,
                                lattice, max_atoms, bond_distortions=bond_distortions,
                                dimer=dimer, stdev_A=stdev, seed=seed, local_rattle=local_rattle)
    summary = _write_all(records, DISTORTION_KEYS, outdir, fmt)
    if as_json:
        echo_json(summary)
        return
    for s in summary:
        atoms = ",".join(f"{el}{i}" for i, el in s["distorted_atoms"] or [])
        click.echo(f"{s['name']:34s} {s['distortion']:24s} N={s['num_distorted_neighbours']} "
                   f"[{atoms}] rattle {s['rattle_stdev_A']:.3f} A")
    if outdir:
        click.echo(f"wrote {len(records)} structures and summary.json to {outdir}")
