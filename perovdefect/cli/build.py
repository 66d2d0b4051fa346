"""`perovdefect build crystal|vacancies|cluster`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from perovdefect.cli.common import echo_json


@click.group()
def build() -> None:
    """Build crystals, Br-vacancy supercells and cluster models."""


@build.command("crystal")
@click.argument("compound")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File; format by extension "
              "(.cif, .vasp/POSCAR, .extxyz, .xyz, .json).")
@click.option("--lattice", type=click.Choice(["pbe", "experimental"]), default="pbe",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print metadata as JSON.")
def crystal(compound: str, output: str | None, lattice: str, as_json: bool) -> None:
    """A shipped crystal: Cs4PbBr6, CsPbBr3-Pnma or CsPbBr3-cubic."""
    from perovdefect.structures.crystals import build_crystal
    record = build_crystal(compound, lattice)
    m = record.metadata
    _write_and_report(record, output, as_json, f"{m['space_group_symbol']} "
                      f"({m['space_group_number']}), Z={m['Z']}")


@build.command("vacancies")
@click.argument("compound")
@click.option("--min-image-distance", type=float, help="Minimum periodic-image distance (A).")
@click.option("--target-atoms", type=int, help="Aim for about this many atoms instead.")
@click.option("--charges", default="1,0,-1", show_default=True, help="Comma-separated charges.")
@click.option("--lattice", type=click.Choice(["pbe", "experimental"]), default="pbe",
              show_default=True)
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False),
              help="Directory for one structure per vacancy and charge plus summary.json.")
@click.option("--format", "fmt", default="vasp", show_default=True,
              type=click.Choice(["vasp", "cif", "extxyz", "json"]))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def vacancies(compound: str, min_image_distance: float | None, target_atoms: int | None,
              charges: str, lattice: str, outdir: str | None, fmt: str, as_json: bool) -> None:
    """One supercell per symmetry-distinct Br site and charge state."""
    from perovdefect.errors import StructureError
    from perovdefect.structures.vacancies import build_vacancies
    try:
        qs = tuple(int(c) for c in charges.split(",") if c.strip())
    except ValueError:
        raise StructureError(f"--charges must be comma-separated integers, got {charges!r}")
    records = build_vacancies(compound, min_image_distance, target_atoms, qs, lattice)
    keys = ("name", "parent", "site_index", "wyckoff", "multiplicity", "charge",
            "electrons_total", "valence_electrons", "spin_multiplicity", "image_distance_A",
            "n_atoms", "formula")
    summary = [{k: r.summary().get(k) for k in keys} for r in records]
    if outdir:
        out = Path(outdir)
        for r, s in zip(records, summary):
            s["file"] = str(r.write(out / f"{r.name}.{fmt}").name)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if as_json:
        echo_json(summary)
    else:
        for s in summary:
            click.echo(f"{s['name']:16s} Wyckoff {s['wyckoff']:4s} x{s['multiplicity']:<3d} "
                       f"q={s['charge']:+d} N_val={s['valence_electrons']} "
                       f"image {s['image_distance_A']:.2f} A")
        if outdir:
            click.echo(f"wrote {len(records)} structures and summary.json to {outdir}")


@build.command("cluster")
@click.argument("kind", type=click.Choice(["pbbr6-octahedron", "cs4pbbr6-molecule",
                                           "crystal-cutout"], case_sensitive=False))
@click.option("--vacancy", is_flag=True, help="Remove one Br (V_Br).")
@click.option("--compound", default="Cs4PbBr6", show_default=True, help="For crystal-cutout.")
@click.option("--radius", type=float, default=6.0, show_default=True,
              help="Cut-out radius (A) around the central Pb.")
@click.option("--vacancy-site", type=int, help="Unit-cell index of the Br to remove (cut-out).")
@click.option("--padding", type=float, default=6.0, show_default=True, help="Vacuum (A).")
@click.option("--charge", type=int, help="Net charge (default: the model's formal charge).")
@click.option("-o", "--output", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def cluster(kind: str, vacancy: bool, compound: str, radius: float, vacancy_site: int | None,
            padding: float, charge: int | None, output: str | None, as_json: bool) -> None:
    """Isolated cluster: [PbBr6]4- octahedron, Cs4PbBr6 molecule or a crystal cut-out."""
    from perovdefect.structures.clusters import build_cluster
    kwargs: dict = {"padding_A": padding}
    if kind == "crystal-cutout":
        kwargs.update(compound=compound, radius_A=radius, vacancy_site=vacancy_site)
        if charge is not None:
            kwargs["charge"] = charge
    elif charge is not None:
        kwargs["charge"] = charge
    record = build_cluster(kind, vacancy=vacancy or vacancy_site is not None, **kwargs)
    m = record.metadata
    _write_and_report(record, output, as_json, f"charge {m['charge']:+d} (formal "
                      f"{m['formal_charge']:+d}), {m['valence_electrons']} valence e-, "
                      f"2S+1={m['spin_multiplicity']}")


def _write_and_report(record, output: str | None, as_json: bool, details: str) -> None:
    """Write the record when asked, then print its metadata (JSON) or one line."""
    if output:
        record.write(output)
    if as_json:
        echo_json(record.summary())
    else:
        click.echo(f"{record.metadata['name']}: {record.atoms.get_chemical_formula()} {details}"
                   + (f" -> {output}" if output else ""))
