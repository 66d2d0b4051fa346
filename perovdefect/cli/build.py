"""`perovdefect build crystal|vacancies|cluster`.

Every number and path is validated before any structure is built: click types with ranges
(NaN and infinity refused), strict charge lists, output files/folders never overwritten without
--force and checked for writability. A bad value gives one line `error: ...` naming the option
and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from perovdefect.cli.common import (ErrorGroup, FiniteFloat, NumberList, dump_json, echo_json,
                                    output_dir, output_file)
from perovdefect.errors import StructureError
from perovdefect.structures.supercells import DEFAULT_MAX_ATOMS
from perovdefect.structures.vacancies import MAX_ABS_CHARGE

#: --format choices of `build vacancies` and the file suffix each writes
SUFFIXES = {"poscar": ".vasp", "cif": ".cif", "extxyz": ".extxyz", "json": ".json"}
#: cluster models' net charge (e): a cut-out's formal charge can be tens of e
MAX_ABS_CLUSTER_CHARGE = 100


def unique_charges(ctx: click.Context | None, param: click.Parameter | None,
                   charges: tuple[int, ...]) -> tuple[int, ...]:
    """--charges (already parsed as integers within |q| <= MAX_ABS_CHARGE): no duplicates."""
    from perovdefect.structures.vacancies import check_charges
    try:
        return check_charges(charges, "--charges")
    except StructureError as exc:
        raise click.BadParameter(str(exc).removeprefix("--charges: "), ctx, param) from None


def check_output_file(output: str | None, force: bool) -> None:
    """Up-front checks for `-o FILE`: a known structure format, then perovdefect.cli.common's
    output_file (no existing file replaced without `force`, a writable folder)."""
    if not output:
        return
    from perovdefect.structures.record import format_for_path
    format_for_path(Path(output))
    output_file(output, force)


def _write(record, path: Path) -> Path:
    """record.write with OS errors (disk full, permissions) as a one-line StructureError."""
    try:
        return record.write(path)
    except OSError as exc:
        raise StructureError(f"{path}: cannot write: {exc.strerror or exc}") from None


@click.group(cls=ErrorGroup)
def build() -> None:
    """Build crystals, Br-vacancy supercells and cluster models."""


@build.command("crystal")
@click.argument("compound")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File; format by extension "
              "(.cif, .vasp/POSCAR, .extxyz, .xyz, .json).")
@click.option("--lattice", type=click.Choice(["pbe", "experimental"]), default="pbe",
              show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print metadata as JSON.")
def crystal(compound: str, output: str | None, lattice: str, force: bool, as_json: bool) -> None:
    """A shipped crystal: Cs4PbBr6, CsPbBr3-Pnma or CsPbBr3-cubic."""
    from perovdefect.structures.crystals import build_crystal
    check_output_file(output, force)
    record = build_crystal(compound, lattice)
    m = record.metadata
    _write_and_report(record, output, as_json, f"{m['space_group_symbol']} "
                      f"({m['space_group_number']}), Z={m['Z']}")


@build.command("vacancies")
@click.argument("compound")
@click.option("--min-image-distance", type=FiniteFloat(min=0, min_open=True),
              help="Minimum periodic-image distance (A), > 0; the supercell with the fewest "
                   "atoms meeting it is built.")
@click.option("--target-atoms", type=click.IntRange(min=1),
              help="Aim for about this many atoms instead (>= 1).")
@click.option("--max-atoms", type=click.IntRange(min=1), default=DEFAULT_MAX_ATOMS,
              show_default=True, help="Refuse (before searching) supercells above this size.")
@click.option("--charges", default="1,0,-1", show_default=True,
              type=NumberList(min=-MAX_ABS_CHARGE, max=MAX_ABS_CHARGE, integer=True),
              callback=unique_charges,
              help=f"Comma-separated distinct integer charges (e), |q| <= {MAX_ABS_CHARGE}.")
@click.option("--lattice", type=click.Choice(["pbe", "experimental"]), default="pbe",
              show_default=True)
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False),
              help="Directory for one structure per vacancy and charge plus summary.json.")
@click.option("--format", "fmt", default="poscar", show_default=True,
              type=click.Choice(list(SUFFIXES)), help="File format (poscar writes NAME.vasp).")
@click.option("--force", is_flag=True, help="Write into an existing non-empty output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def vacancies(compound: str, min_image_distance: float | None, target_atoms: int | None,
              max_atoms: int, charges: tuple[int, ...], lattice: str, outdir: str | None,
              fmt: str, force: bool, as_json: bool) -> None:
    """One supercell per symmetry-distinct Br site and charge state.

    Supercells are those of the primitive cell (Cs4PbBr6: 22, 44, 66, ... atoms); without a size
    the conventional cell. Wyckoff labels and multiplicities are the conventional cell's."""
    from perovdefect.structures.vacancies import build_vacancies
    if min_image_distance is not None and target_atoms is not None:
        raise StructureError("give --min-image-distance or --target-atoms, not both")
    output_dir(outdir, force)
    records = build_vacancies(compound, min_image_distance, target_atoms, charges, lattice,
                              max_atoms=max_atoms)
    keys = ("name", "parent", "site_index", "primitive_site_index", "supercell_site_index",
            "wyckoff", "multiplicity", "supercell_multiplicity", "charge", "electrons_total",
            "valence_electrons", "spin_multiplicity", "image_distance_A", "supercell_of",
            "n_unit_cells", "supercell_matrix", "primitive_to_conventional", "n_atoms", "formula")
    summary = [{k: r.summary().get(k) for k in keys} for r in records]
    if outdir:
        out = Path(outdir)
        for r, s in zip(records, summary):
            s["file"] = str(_write(r, out / f"{r.name}{SUFFIXES[fmt]}").name)
        from perovdefect.documents import write_atomic
        try:
            write_atomic(out / "summary.json", dump_json(summary))
        except OSError as exc:
            raise StructureError(f"{out / 'summary.json'}: cannot write: {exc.strerror}") from None
    if as_json:
        echo_json(summary)
    else:
        for s in summary:
            click.echo(f"{s['name']:16s} Wyckoff {s['wyckoff']:4s} x{s['multiplicity']:<3d} "
                       f"q={s['charge']:+d} N_val={s['valence_electrons']} "
                       f"{s['n_atoms']} atoms ({s['n_unit_cells']} x {s['supercell_of']} cell), "
                       f"image {s['image_distance_A']:.2f} A")
        if outdir:
            click.echo(f"wrote {len(records)} structures and summary.json to {outdir}")


@build.command("cluster")
@click.argument("kind", type=click.Choice(["pbbr6-octahedron", "cs4pbbr6-molecule",
                                           "crystal-cutout"], case_sensitive=False))
@click.option("--vacancy", is_flag=True, help="Remove one Br (V_Br).")
@click.option("--compound", default="Cs4PbBr6", show_default=True, help="For crystal-cutout.")
@click.option("--radius", type=FiniteFloat(min=0, min_open=True, max=50.0), default=6.0,
              show_default=True, help="Cut-out radius (A) around the central Pb.")
@click.option("--vacancy-site", type=click.IntRange(min=0),
              help="Unit-cell index of the Br to remove (cut-out).")
@click.option("--padding", type=FiniteFloat(min=0, min_open=True, max=50.0), default=6.0,
              show_default=True, help="Vacuum (A).")
@click.option("--charge", type=click.IntRange(-MAX_ABS_CLUSTER_CHARGE, MAX_ABS_CLUSTER_CHARGE),
              help="Net charge (e; default: the model's formal charge).")
@click.option("-o", "--output", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--json", "as_json", is_flag=True)
def cluster(kind: str, vacancy: bool, compound: str, radius: float, vacancy_site: int | None,
            padding: float, charge: int | None, output: str | None, force: bool,
            as_json: bool) -> None:
    """Isolated cluster: [PbBr6]4- octahedron, Cs4PbBr6 molecule or a crystal cut-out."""
    from perovdefect.structures.clusters import build_cluster
    check_output_file(output, force)
    kwargs: dict = {"padding_A": padding}
    if kind == "crystal-cutout":
        kwargs.update(compound=compound, radius_A=radius, vacancy_site=vacancy_site)
    if charge is not None:
        kwargs["charge"] = charge
    record = build_cluster(kind, vacancy=vacancy or vacancy_site is not None, **kwargs)
    m = record.metadata
    _write_and_report(record, output, as_json, f"charge {m['charge']:+d} (formal "
                      f"{m['formal_charge']:+d}), {m['valence_electrons']} valence e-, "
                      f"2S+1={m['spin_multiplicity']}")


def _write_and_report(record, output: str | None, as_json: bool, details: str) -> None:
    """Write the record when asked, then print its metadata (JSON) or one line."""
    if output:
        _write(record, Path(output))
    if as_json:
        echo_json(record.summary())
    else:
        click.echo(f"{record.metadata['name']}: {record.atoms.get_chemical_formula()} {details}"
                   + (f" -> {output}" if output else ""))
